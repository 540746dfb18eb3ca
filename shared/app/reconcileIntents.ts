import type { Decision } from '../core/decisions';
import { ResponderError } from '../core/errors';
import type { VaultRef } from '../core/events/types';
import type { Clock, ReconcileMessage } from '../core/ports';
import { type StateKey, type StateStore, stateKey } from '../core/state/store';

/** Why a vault is to be reconciled. */
export type ReconcileReason = 'trigger' | 'vault-write' | 'sweep' | 'concurrent-change';

/**
 * What another writer put on the vault inside one of our read→write windows (from its audit record's after-state):
 * the reconciler restores what of it policy approves and our write wiped.
 */
export interface ConcurrentChange {
    readonly at: string;
    readonly by: string;
    readonly correlationId?: string;
    readonly ipRules?: readonly string[];
    readonly virtualNetworkRules?: readonly string[];
    readonly defaultAction?: string;
    readonly publicNetworkAccess?: string;
}

/** One reason to reconcile a vault, from one batch. */
export interface IntentInput {
    readonly vault: VaultRef;
    readonly reason: ReconcileReason;
    /** Rules with an action that fired (empty for a plain vault write or the sweep). */
    readonly rules: readonly string[];
    /** `rule|principal` of the findings the rules raised, so the outcome lands on their incidents. */
    readonly incidentKeys: readonly string[];
    readonly correlationIds: readonly string[];
    readonly timeMs: number;
    readonly concurrent?: ConcurrentChange;
    /** Role assignments (ARM ids) that role-assignment-granted reported on this vault or above it. */
    readonly roleAssignmentIds?: readonly string[];
}

/** The per-vault reconcile intent in the state store (`reconcile|intent`). Every list is bounded. */
export interface ReconcileIntent {
    readonly vault: VaultRef;
    /** Bumped by every merge; the queue message carries it. */
    readonly version: number;
    /** The last version whose outcome was handed to the decision sink and alerting. */
    readonly processed: number;
    readonly reasons: readonly ReconcileReason[];
    readonly rules: readonly string[];
    readonly incidentKeys: readonly string[];
    readonly correlationIds: readonly string[];
    readonly earliestMs: number;
    readonly latestMs: number;
    readonly concurrent: readonly ConcurrentChange[];
    /** Role assignments to re-read and, when still out of policy, delete (remove-role-assignment); bounded. */
    readonly roleAssignmentIds?: readonly string[];
    /**
     * The outcome of a run not yet confirmed handed to the sinks: sent again with the next run's, so that an outcome
     * (an applied change and its undo id) is never lost to a failed write.
     */
    readonly unsent?: readonly Decision[];
    /** Why the last attempt failed (named by the poison-queue alert). */
    readonly lastError?: { readonly at: string; readonly stage: string; readonly error: string };
}

const MAX_IDS = 10;
const MAX_ID_CHARS = 128;
const MAX_KEYS = 10;
const MAX_KEY_CHARS = 200;
const MAX_CONCURRENT = 2;
const MAX_RULE_LIST = 20;
/** Role assignment ids kept per intent (an id at vault scope is about 200 characters). */
const MAX_ROLE_ASSIGNMENTS = 5;
const MAX_ROLE_ASSIGNMENT_CHARS = 400;
const CAS_ATTEMPTS = 10;
/**
 * The whole intent is one table property (at most 32,000 characters): outcome ≤ 10K, concurrent changes ≤ 2 × 6K,
 * role assignment ids ≤ 2K, incident keys ≤ 2K, rules ≤ 1.6K, correlation ids ≤ 1.3K, last error ≤ 0.6K.
 */
const MAX_UNSENT_CHARS = 10_000;
/** Intents outlive any queue retry; the maintenance job sweeps them after this (wall clock). */
const INTENT_TTL_MS = 30 * 24 * 3_600_000;

export function intentKey(vaultName: string): StateKey {
    return stateKey(vaultName, 'reconcile|intent');
}

function bounded(list: readonly string[], add: readonly string[], max: number, chars: number): string[] {
    const out = [...list];
    for (const raw of add) {
        const v = raw.slice(0, chars);
        if (!out.includes(v)) out.push(v);
    }
    return out.length > max ? out.slice(out.length - max) : out;
}

function boundedChange(c: ConcurrentChange): ConcurrentChange {
    const cut = (l: readonly string[] | undefined) => l?.slice(0, 10).map((v) => v.slice(0, 300));
    const ipRules = cut(c.ipRules);
    const virtualNetworkRules = cut(c.virtualNetworkRules);
    return {
        at: c.at.slice(0, 40),
        by: c.by.slice(0, 200),
        ...(c.correlationId === undefined ? {} : { correlationId: c.correlationId.slice(0, MAX_ID_CHARS) }),
        ...(ipRules === undefined ? {} : { ipRules }),
        ...(virtualNetworkRules === undefined ? {} : { virtualNetworkRules }),
        ...(c.defaultAction === undefined ? {} : { defaultAction: c.defaultAction.slice(0, 20) }),
        ...(c.publicNetworkAccess === undefined ? {} : { publicNetworkAccess: c.publicNetworkAccess.slice(0, 20) }),
    };
}

/** Merges one input into an intent (pure; bumps the version). */
export function mergeIntent(current: ReconcileIntent | undefined, input: IntentInput): ReconcileIntent {
    const base: ReconcileIntent = current ?? {
        vault: input.vault,
        version: 0,
        processed: 0,
        reasons: [],
        rules: [],
        incidentKeys: [],
        correlationIds: [],
        earliestMs: input.timeMs,
        latestMs: input.timeMs,
        concurrent: [],
    };
    const concurrent =
        input.concurrent === undefined
            ? base.concurrent
            : [...base.concurrent, boundedChange(input.concurrent)].slice(-MAX_CONCURRENT);
    return {
        ...base,
        version: base.version + 1,
        reasons: bounded(base.reasons, [input.reason], 4, 40) as ReconcileReason[],
        rules: bounded(base.rules, input.rules, MAX_RULE_LIST, 80),
        incidentKeys: bounded(base.incidentKeys, input.incidentKeys, MAX_KEYS, MAX_KEY_CHARS),
        correlationIds: bounded(base.correlationIds, input.correlationIds, MAX_IDS, MAX_ID_CHARS),
        earliestMs: Math.min(base.earliestMs, input.timeMs),
        latestMs: Math.max(base.latestMs, input.timeMs),
        concurrent,
        ...(input.roleAssignmentIds === undefined && base.roleAssignmentIds === undefined
            ? {}
            : {
                  roleAssignmentIds: bounded(
                      base.roleAssignmentIds ?? [],
                      input.roleAssignmentIds ?? [],
                      MAX_ROLE_ASSIGNMENTS,
                      MAX_ROLE_ASSIGNMENT_CHARS,
                  ),
              }),
    };
}

/**
 * An intent as this instance last read or wrote it, with its ETag: an update can then try its compare-and-set on it
 * without reading the intent again (a stale one fails the compare-and-set, and the update reads it then).
 */
export interface KnownIntent {
    readonly intent: ReconcileIntent;
    readonly etag: string;
}

/** Reconcile intents: recorded (merged, compare-and-set) before a batch is confirmed, consumed by the worker. */
export class ReconcileIntents {
    constructor(
        private readonly store: StateStore,
        private readonly clock: Clock,
    ) {}

    /**
     * Merges the inputs into their vaults' intents; returns one wake-up message per vault.
     * @param known - The intents as just read ({@link readKnownMany}; null: none), tried first instead of a read of
     *   their own. The merge is a compare-and-set on that ETag (an insert where there was none): an intent changed
     *   since fails it and is read again.
     */
    async record(
        inputs: readonly IntentInput[],
        known?: ReadonlyMap<string, KnownIntent | null>,
    ): Promise<ReconcileMessage[]> {
        const byVault = new Map<string, IntentInput[]>();
        for (const i of inputs) {
            const list = byVault.get(i.vault.name) ?? [];
            list.push(i);
            byVault.set(i.vault.name, list);
        }
        return Promise.all(
            [...byVault.values()].map(async (list) => {
                const name = (list[0] as IntentInput).vault.name;
                const intent = await this.update(
                    name,
                    (cur) => list.reduce<ReconcileIntent | undefined>((acc, i) => mergeIntent(acc, i), cur),
                    known?.get(name),
                );
                const v = intent as ReconcileIntent; // a merge always yields an intent
                return { vaultId: v.vault.resourceId, version: v.version };
            }),
        );
    }

    async read(vaultName: string): Promise<ReconcileIntent | undefined> {
        return (await this.readKnown(vaultName))?.intent;
    }

    /** The intents of several vaults in one read (`getMany`), by vault name (null: no intent). */
    async readKnownMany(vaultNames: readonly string[]): Promise<Map<string, KnownIntent | null>> {
        const read = await this.store.getMany(vaultNames.map((v) => intentKey(v)));
        const out = new Map<string, KnownIntent | null>();
        vaultNames.forEach((v, i) => {
            const s = read[i];
            const intent = (s?.value ?? undefined) as ReconcileIntent | undefined;
            out.set(v, s === undefined || intent === undefined ? null : { intent, etag: s.etag });
        });
        return out;
    }

    /** The intent and its ETag (see {@link KnownIntent}). */
    async readKnown(vaultName: string): Promise<KnownIntent | undefined> {
        const [s] = await this.store.getMany([intentKey(vaultName)]);
        const intent = (s?.value ?? undefined) as ReconcileIntent | undefined;
        return s === undefined || intent === undefined ? undefined : { intent, etag: s.etag };
    }

    /**
     * Marks `version` processed (its outcome is with the sinks). What arrived after it stays pending; what it covered
     * is dropped.
     */
    async complete(vaultName: string, version: number, known?: KnownIntent): Promise<void> {
        await this.updateKnown(vaultName, known, (cur) => {
            if (cur === undefined || cur.processed >= version) return cur;
            const { lastError: _done, unsent: _sent, ...all } = cur;
            if (cur.version > version) return { ...all, processed: version };
            const { roleAssignmentIds: _ra, ...rest } = all;
            return {
                ...rest,
                processed: version,
                reasons: [],
                rules: [],
                incidentKeys: [],
                correlationIds: [],
                concurrent: [],
            };
        });
    }

    /**
     * Keeps a run's outcome until {@link complete} confirms it was handed to the sinks (bounded in size). Returns the
     * intent as written, for {@link complete}.
     */
    async setUnsent(
        vaultName: string,
        decisions: readonly Decision[],
        known?: KnownIntent,
    ): Promise<KnownIntent | undefined> {
        // What matters most first, if not everything fits: findings, then changes made or failed, then the rest.
        const rank = (d: Decision): number =>
            d.type === 'finding' ? 0 : d.type === 'action' && (d.status === 'applied' || d.status === 'failed') ? 1 : 2;
        const kept: Decision[] = [];
        let size = 0;
        for (const d of [...decisions].sort((a, b) => rank(a) - rank(b))) {
            const n = JSON.stringify(d).length;
            if (size + n > MAX_UNSENT_CHARS) continue;
            size += n;
            kept.push(d);
        }
        return this.updateKnown(vaultName, known, (cur) => (cur === undefined ? cur : { ...cur, unsent: kept }));
    }

    /** Records why an attempt failed, for the poison-queue alert. */
    async setError(vaultName: string, stage: string, error: string): Promise<void> {
        await this.update(vaultName, (cur) =>
            cur === undefined
                ? cur
                : {
                      ...cur,
                      lastError: {
                          at: new Date(this.clock.now()).toISOString(),
                          stage: stage.slice(0, 40),
                          error: error.slice(0, 500),
                      },
                  },
        );
    }

    /** Reads, changes and writes (compare-and-set) an intent; `first`: the intent as just read (null: none), unread. */
    private async update(
        vaultName: string,
        fn: (cur: ReconcileIntent | undefined) => ReconcileIntent | undefined,
        first?: KnownIntent | null,
    ): Promise<ReconcileIntent | undefined> {
        const key = intentKey(vaultName);
        let given = first;
        for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
            let cur: ReconcileIntent | undefined;
            let etag: string | undefined;
            if (given !== undefined) {
                cur = given?.intent;
                etag = given?.etag;
                given = undefined;
            } else {
                const [s] = await this.store.getMany([key]);
                cur = (s?.value ?? undefined) as ReconcileIntent | undefined;
                etag = s?.etag;
            }
            const next = fn(cur);
            if (next === cur || next === undefined) return cur;
            const r = await this.store.put(key, next, etag, this.clock.now() + INTENT_TTL_MS);
            if (r.ok) return next;
        }
        throw new ResponderError('STATE.CONFLICT', `gave up updating the reconcile intent of ${vaultName}`, true);
    }

    /**
     * {@link update}, trying the first compare-and-set on the intent as known (no read) when given one; the intent and
     * its ETag after the update (undefined: no intent).
     */
    private async updateKnown(
        vaultName: string,
        known: KnownIntent | undefined,
        fn: (cur: ReconcileIntent | undefined) => ReconcileIntent | undefined,
    ): Promise<KnownIntent | undefined> {
        const key = intentKey(vaultName);
        let given = known;
        for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
            let cur: KnownIntent | undefined = given;
            given = undefined;
            if (cur === undefined) cur = await this.readKnown(vaultName);
            const next = fn(cur?.intent);
            if (next === undefined || next === cur?.intent) return cur;
            const r = await this.store.put(key, next, cur?.etag, this.clock.now() + INTENT_TTL_MS);
            if (r.ok) return { intent: next, etag: r.etag };
        }
        throw new ResponderError('STATE.CONFLICT', `gave up updating the reconcile intent of ${vaultName}`, true);
    }
}
