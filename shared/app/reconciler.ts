import type { Decision, FindingDecision } from '../core/decisions';
import type { VaultRef } from '../core/events/types';
import type { Clock, DecisionSink, Logger, ReconcileMessage, ReconcileQueue } from '../core/ports';
import type { MemoryReconcileQueue } from '../adapters/memoryReconcileQueue';
import { ResponderError } from '../core/errors';
import { describeError } from './armCalls';
import { vaultRefOf } from './alerting';
import type { KnownIntent, ReconcileIntents } from './reconcileIntents';
import type { Remediator } from './remediator';
import type { VaultLeases } from './vaultLease';

export interface ReconcilerOptions {
    readonly remediator: Remediator;
    readonly intents: ReconcileIntents;
    readonly leases: VaultLeases;
    readonly queue: ReconcileQueue;
    readonly clock: Clock;
    readonly log?: Logger;
    /** How long a message for a vault leased by another processor stays hidden before it is tried again. */
    readonly busyDelayMs: number;
    /** Remediations per invocation (blast radius). */
    readonly maxPerInvocation: number;
    /**
     * Vaults {@link Reconciler.drain} reconciles at the same time (default 1: one after another). Only where nothing
     * is applied (no ARM access): runs side by side would each be given the whole remaining blast-radius budget.
     */
    readonly drainConcurrency?: number;
}

/** What one reconcile message came to. */
export type ReconcileRun =
    | { readonly kind: 'noop'; readonly reason: string }
    | { readonly kind: 'busy' }
    | {
          readonly kind: 'done';
          readonly vault: VaultRef;
          readonly version: number;
          readonly decisions: readonly Decision[];
          readonly applied: number;
      }
    /** The lease was lost mid-work: the message was sent again; what was done so far is reported. */
    | { readonly kind: 'retry'; readonly decisions: readonly Decision[]; readonly applied: number };

/** Deliveries of one message before it is poison (the Functions default `maxDequeueCount`, host.json). */
export const MAX_DEQUEUE = 5;

/** Vaults whose intents {@link Reconciler.drain}'s commit completes at the same time. */
const COMMIT_CONCURRENCY = 8;

/** Runs `fn` on every item, at most `limit` at a time. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
        while (next < items.length) await fn(items[next++] as T);
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The reconcile worker: one message names one vault; under the vault's lease (renewed while work runs, released on
 * every path) it reads the vault's intent and reconciles the vault against ARM, then hands the outcome to the
 * decision sink and alerting, and only then marks the intent's version processed. A message whose version was
 * processed already is a no-op; a busy vault is tried again later, never dropped. ARM failures end in decisions;
 * state-store failures throw, for the queue's redelivery (and, in the end, the poison alert).
 */
export class Reconciler {
    /** The intent as each finished run last read or wrote it (see {@link commit}). */
    private readonly known = new WeakMap<ReconcileRun, KnownIntent>();

    constructor(private readonly o: ReconcilerOptions) {}

    /**
     * Runs one message. `handOver`, when given, runs while the lease is still held (the queue trigger writes the
     * outcome and commits under it, so another processor never repeats a finished outcome).
     */
    async run(
        message: ReconcileMessage,
        budget = this.o.maxPerInvocation,
        handOver?: (run: ReconcileRun) => Promise<void>,
        /**
         * False: skip the read of the intent before the lease (a cheap no-op for a message whose version is processed
         * already) for a message this process sent just now for an intent it just wrote. The intent is read under the
         * lease either way.
         */
        precheck = true,
    ): Promise<ReconcileRun> {
        let vault: VaultRef;
        try {
            vault = vaultRefOf(message.vaultId);
        } catch {
            this.o.log?.error('kvr.reconcile-bad-message', { vaultId: message.vaultId.slice(0, 200) });
            return { kind: 'noop', reason: 'not-a-vault' };
        }
        if (precheck) {
            const seen = await this.o.intents.read(vault.name);
            if (seen === undefined) return { kind: 'noop', reason: 'no-intent' };
            if (seen.processed >= seen.version) return { kind: 'noop', reason: 'already-processed' };
        }
        const lease = await this.o.leases.hold(vault, (err) =>
            this.o.log?.warn('kvr.lease-renewal-failed', { vault: vault.name, error: describeError(err) }),
        );
        if (lease === undefined) {
            await this.o.queue.send(message, { visibilityDelayMs: this.o.busyDelayMs });
            return { kind: 'busy' };
        }
        try {
            // Under the lease: the intent as it is now (another processor may have finished it meanwhile).
            let known = await this.o.intents.readKnown(vault.name);
            const intent = known?.intent;
            if (intent === undefined || intent.processed >= intent.version)
                return { kind: 'noop', reason: 'already-processed' };
            const outcome = await this.o.remediator.remediate(intent, lease, budget);
            const decisions = [...(intent.unsent ?? []), ...outcome.decisions];
            if (outcome.leaseLost === true) {
                this.o.log?.warn('kvr.lease-lost', { vault: vault.name });
                if (decisions.length > 0) await this.o.intents.setUnsent(vault.name, decisions, known);
                await this.o.queue.send(message, { visibilityDelayMs: this.o.busyDelayMs });
                return { kind: 'retry', decisions, applied: outcome.applied };
            }
            // Durable before anyone is told: a failed hand-over sends it again with the next run.
            if (decisions.length > 0) known = await this.o.intents.setUnsent(vault.name, decisions, known);
            const run: ReconcileRun = {
                kind: 'done',
                vault,
                version: intent.version,
                decisions,
                applied: outcome.applied,
            };
            // What this run last read or wrote of the intent: commit() tries its compare-and-set on it, unread.
            if (known !== undefined) this.known.set(run, known);
            if (handOver !== undefined) {
                // The queue redelivers; the outcome is kept on the intent (`unsent`) for the next run.
                if (lease.lost)
                    throw new ResponderError(
                        'STATE.CONFLICT',
                        `lost the lease of ${vault.name} before handing over its outcome`,
                        true,
                    );
                await handOver(run);
            }
            return run;
        } catch (err) {
            await this.o.intents.setError(vault.name, 'reconcile', describeError(err)).catch(() => undefined);
            throw err;
        } finally {
            await lease.release();
        }
    }

    /** After the run's decisions reached the sinks: the version is processed. */
    async commit(run: ReconcileRun): Promise<void> {
        if (run.kind === 'done') await this.o.intents.complete(run.vault.name, run.version, this.known.get(run));
    }

    /** The queue trigger's path: run, hand the outcome to the sink (decision log and alerting), commit. */
    async process(message: ReconcileMessage, sink: DecisionSink): Promise<ReconcileRun> {
        const run = await this.run(message, this.o.maxPerInvocation, async (done) => {
            if (done.kind === 'done' && done.decisions.length > 0) await sink.write(done.decisions);
            await this.commit(done);
        });
        if (run.kind === 'retry' && run.decisions.length > 0) await sink.write(run.decisions);
        return run;
    }

    /**
     * A message that failed every delivery: a critical `remediation-failed` naming the vault and the last error (from
     * the intent when the state store answers).
     */
    async poisonFinding(message: ReconcileMessage, dequeueCount?: number): Promise<FindingDecision> {
        let vault: VaultRef | undefined;
        try {
            vault = vaultRefOf(message.vaultId);
        } catch {
            vault = undefined;
        }
        let lastError = 'unknown';
        let time = new Date(this.o.clock.now()).toISOString();
        if (vault !== undefined) {
            try {
                const intent = await this.o.intents.read(vault.name);
                if (intent?.lastError !== undefined)
                    lastError = `${intent.lastError.error} (at ${intent.lastError.at}, ${intent.lastError.stage})`;
                if (intent !== undefined) time = new Date(Math.max(intent.latestMs, 0)).toISOString();
            } catch (err) {
                lastError = `unknown: the state store is unreadable too (${describeError(err)})`;
            }
        }
        const name = vault?.name ?? message.vaultId.slice(0, 200);
        return {
            type: 'finding',
            rule: 'remediation-failed',
            severity: 'critical',
            vault: name,
            vaultId: vault?.resourceId ?? message.vaultId.slice(0, 400),
            time,
            operations: [],
            correlationIds: [],
            count: 1,
            summary: `reconcile of ${name} failed ${dequeueCount ?? MAX_DEQUEUE} times and was given up (poison queue); last error: ${lastError}. The vault may be out of policy: check it now.`,
            stage: 'queue',
            error: lastError,
        };
    }

    /**
     * Drains an in-process queue (replay, serve, consume): the same worker, with the queue's retries and poison path
     * played in process. Returns the decisions and the commits to run once the sinks have them. A message's first run
     * skips the read before the lease (its intent was just recorded by this process); a retried one reads.
     */
    async drain(queue: MemoryReconcileQueue): Promise<{ decisions: Decision[]; commit: () => Promise<void> }> {
        const decisions: Decision[] = [];
        const done: ReconcileRun[] = [];
        const attempts = new Map<string, number>();
        let budget = this.o.maxPerInvocation;
        const concurrency = Math.max(1, this.o.drainConcurrency ?? 1);
        /** One message: its run's decisions (the poison finding at the last attempt), in the order they came. */
        // Messages of this drain run once already (retried, or busy): read before the lease again.
        const tried = new Set<string>();
        const handle = async (m: ReconcileMessage): Promise<Decision[]> => {
            const key = `${m.vaultId}|${m.version}`;
            const first = !tried.has(key);
            tried.add(key);
            try {
                const run = await this.run(m, budget, undefined, !first);
                if (run.kind === 'done') done.push(run);
                if (run.kind === 'done' || run.kind === 'retry') {
                    budget -= run.applied;
                    return [...run.decisions];
                }
                return [];
            } catch (err) {
                const n = (attempts.get(key) ?? 0) + 1;
                attempts.set(key, n);
                this.o.log?.warn('kvr.reconcile-retry', { vaultId: m.vaultId, attempt: n, error: describeError(err) });
                if (n >= MAX_DEQUEUE) return [await this.poisonFinding(m, n)];
                await queue.send(m, { visibilityDelayMs: 200 * n });
                return [];
            }
        };
        for (;;) {
            const next = queue.take();
            if (next === undefined) break;
            if ('waitMs' in next) {
                await this.o.clock.sleep(next.waitMs);
                continue;
            }
            if (concurrency === 1) {
                decisions.push(...(await handle(next.message)));
                continue;
            }
            // Every message ready now: different vaults side by side (at most `concurrency`), one vault's in order.
            const ready = [next.message];
            for (let more = queue.take(); more !== undefined && 'message' in more; more = queue.take())
                ready.push(more.message);
            const byVault = new Map<string, number[]>();
            ready.forEach((m, i) => {
                const list = byVault.get(m.vaultId) ?? [];
                list.push(i);
                byVault.set(m.vaultId, list);
            });
            const out: Decision[][] = ready.map(() => []);
            await inParallel([...byVault.values()], concurrency, async (list) => {
                for (const i of list) out[i] = await handle(ready[i] as ReconcileMessage);
            });
            for (const list of out) decisions.push(...list);
        }
        return {
            decisions,
            // Vaults commit side by side (at most COMMIT_CONCURRENCY at a time), one vault's runs in their order.
            commit: async () => {
                const byVault = new Map<string, ReconcileRun[]>();
                for (const run of done) {
                    const name = run.kind === 'done' ? run.vault.name : '';
                    const list = byVault.get(name) ?? [];
                    list.push(run);
                    byVault.set(name, list);
                }
                await inParallel([...byVault.values()], COMMIT_CONCURRENCY, async (list) => {
                    for (const run of list) await this.commit(run);
                });
            },
        };
    }
}
