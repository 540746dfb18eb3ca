import type { InvocationContext, Timer } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import { decodeReconcileMessage } from '../../adapters/storageReconcileQueue';
import type { VaultRef } from '../../core/events/types';
import type { Clock, DecisionSink, ReconcileMessage, ReconcileQueue } from '../../core/ports';
import type { StateStore } from '../../core/state/store';
import { vaultRefOf } from '../alerting';
import { describeError } from '../armCalls';
import type { ReconcileIntent, ReconcileIntents } from '../reconcileIntents';
import type { Reconciler, ReconcileRun } from '../reconciler';

export interface ReconcileDeps {
    readonly reconciler: Reconciler;
    readonly intents: ReconcileIntents;
    readonly queue: ReconcileQueue;
    readonly store: StateStore;
    readonly clock: Clock;
    /** The decision log and alerting, as for the audit batch. */
    readonly sink: DecisionSink;
    /** Vault resource ids the config names (guardrail overrides): swept even before any event was seen. */
    readonly configuredVaultIds?: readonly string[];
}

/**
 * The `kvr-reconcile` queue trigger: one vault per message. A state-store failure throws, so the host makes the
 * message visible again (its dequeue count rising) and finally moves it to the poison queue.
 */
export async function handleReconcileVault(
    message: unknown,
    context: InvocationContext,
    deps: ReconcileDeps,
): Promise<ReconcileRun | undefined> {
    const log = new InvocationLogger(context);
    const m = decodeReconcileMessage(message);
    if (m === undefined) {
        log.error('kvr.reconcile-bad-message', { message: String(JSON.stringify(message)).slice(0, 300) });
        return undefined;
    }
    try {
        const run = await deps.reconciler.process(m, deps.sink);
        log.info('kvr.reconcile', {
            vaultId: m.vaultId,
            version: m.version,
            outcome: run.kind,
            decisions: run.kind === 'done' || run.kind === 'retry' ? run.decisions.length : 0,
            dequeueCount: context.triggerMetadata?.dequeueCount,
        });
        return run;
    } catch (err) {
        log.error('kvr.reconcile-failed', { vaultId: m.vaultId, error: describeError(err) });
        throw err;
    }
}

/** The `kvr-reconcile-poison` trigger: a message that failed every delivery is a critical alert, never silence. */
export async function handleReconcilePoison(
    message: unknown,
    context: InvocationContext,
    deps: ReconcileDeps,
): Promise<void> {
    const log = new InvocationLogger(context);
    const m = decodeReconcileMessage(message) ?? { vaultId: String(JSON.stringify(message)).slice(0, 400), version: 0 };
    const finding = await deps.reconciler.poisonFinding(m);
    log.error('kvr.reconcile-poison', { vaultId: m.vaultId, error: finding.error });
    await deps.sink.write([finding]);
}

const MAX_SWEEP = 5000;

/**
 * The vaults a drift sweep reconciles: those the config names by resource id and every vault that ever had an intent.
 * `warn` gets each configured id that is not a vault resource id.
 */
export async function sweepVaults(
    store: StateStore,
    configuredVaultIds: readonly string[],
    warn: (badId: string) => void = () => {},
): Promise<{ readonly vaults: readonly VaultRef[]; readonly capped: boolean }> {
    const rows = await store.scan('reconcile|intent', MAX_SWEEP);
    const vaults = new Map<string, VaultRef>();
    for (const id of configuredVaultIds) {
        try {
            const v = vaultRefOf(id);
            vaults.set(v.resourceId, v);
        } catch {
            warn(id.slice(0, 300));
        }
    }
    for (const r of rows) {
        const v = (r.value as ReconcileIntent | null | undefined)?.vault;
        if (v !== undefined && typeof v.resourceId === 'string') vaults.set(v.resourceId, v);
    }
    return { vaults: [...vaults.values()], capped: rows.length >= MAX_SWEEP };
}

/**
 * Records a `sweep` intent at `nowMs` for every vault {@link sweepVaults} finds; returns the wake-up messages. The
 * timer passes the wall clock, `kvr replay` the records' clock (so the drift found carries its event time).
 */
export async function recordSweep(
    intents: ReconcileIntents,
    vaults: readonly VaultRef[],
    nowMs: number,
): Promise<ReconcileMessage[]> {
    return intents.record(
        vaults.map((vault) => ({
            vault,
            reason: 'sweep' as const,
            rules: [],
            incidentKeys: [],
            correlationIds: [],
            timeMs: nowMs,
        })),
    );
}

/**
 * The drift sweep: records a `sweep` intent for every vault the responder knows (named in the config, or that ever
 * had an intent) and wakes the worker, so that lost events, missing diagnostic settings and inferred-field gaps converge.
 */
export async function handleDriftSweep(
    timer: Pick<Timer, 'isPastDue'> | undefined,
    context: InvocationContext,
    deps: ReconcileDeps,
): Promise<{ vaults: number }> {
    const log = new InvocationLogger(context);
    const { vaults, capped } = await sweepVaults(deps.store, deps.configuredVaultIds ?? [], (vaultId) =>
        log.warn('kvr.drift-sweep-bad-vault-id', { vaultId }),
    );
    const messages = await recordSweep(deps.intents, vaults, deps.clock.now());
    // Spread over a few minutes, so a large estate does not hit ARM throttling all at once.
    let i = 0;
    for (const m of messages) await deps.queue.send(m, { visibilityDelayMs: (i++ % 300) * 1000 });
    log.info('kvr.drift-sweep', {
        vaults: messages.length,
        pastDue: timer?.isPastDue ?? false,
        capped,
    });
    return { vaults: messages.length };
}
