import type { InvocationContext, Timer } from '@azure/functions';
import { credentialFor } from '../../adapters/credential';
import { InvocationLogger } from '../../adapters/invocationLogger';
import { type SweepResult, tableStateStoreAt } from '../../adapters/tableStateStore';
import { loadSettings } from '../../config/loadSettings';

/** The part of the state store the maintenance job uses (`TableStateStore`). */
export interface ExpiredStateSweeper {
    sweepExpired(beforeMs: number, options: { readonly maxDeletes: number }): Promise<SweepResult>;
}

export interface StateMaintenanceDeps {
    readonly store: ExpiredStateSweeper;
    /** Wall clock (epoch ms). */
    readonly now: () => number;
    /**
     * How long past its expiry an entity is kept. `exp` is in event time and the clock here is the wall clock: the
     * grace covers records that arrive late and replays of recent archives.
     */
    readonly graceMs: number;
    /** Bound on deletes per run; the rest waits for the next run. */
    readonly maxDeletes: number;
}

export const DEFAULT_GRACE_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_MAX_DELETES = 5000;

export interface StateMaintenanceResult extends SweepResult {
    readonly beforeMs: number;
}

/**
 * Deletes rule state that expired more than the grace period ago (Table Storage has no TTL). Logs one
 * `kvr.state-sweep` line with the counts; a failure throws, and the next scheduled run starts over.
 */
export async function handleStateMaintenance(
    timer: Pick<Timer, 'isPastDue'> | undefined,
    context: InvocationContext,
    deps: StateMaintenanceDeps,
): Promise<StateMaintenanceResult> {
    const log = new InvocationLogger(context);
    const beforeMs = deps.now() - deps.graceMs;
    const started = deps.now();
    let result: SweepResult;
    try {
        result = await deps.store.sweepExpired(beforeMs, { maxDeletes: deps.maxDeletes });
    } catch (err) {
        log.error('kvr.state-sweep-failed', {
            error: (err as Error).message,
            before: new Date(beforeMs).toISOString(),
        });
        throw err;
    }
    log.info('kvr.state-sweep', {
        before: new Date(beforeMs).toISOString(),
        scanned: result.scanned,
        deleted: result.deleted,
        skipped: result.skipped,
        more: result.more,
        pastDue: timer?.isPastDue ?? false,
        ms: deps.now() - started,
    });
    return { ...result, beforeMs };
}

/**
 * Builds the maintenance job's dependencies from the same app settings as the audit trigger (`KVR_STATE`,
 * `KVR_STATE_TABLE`, `AZURE_CLIENT_ID`); like `composeApp`, it validates every setting and does no I/O.
 */
export function composeStateMaintenance(env: Readonly<Record<string, string | undefined>>): StateMaintenanceDeps {
    const settings = loadSettings(env);
    const store = tableStateStoreAt(settings.state, () => credentialFor(settings.managedIdentityClientId));
    return { store, now: Date.now, graceMs: DEFAULT_GRACE_MS, maxDeletes: DEFAULT_MAX_DELETES };
}
