import type { Decision, ErrorDecision, FindingDecision, Severity } from '../core/decisions';
import type { FindingDraft, Rule, RuleContext, RuleToggle, StatefulRule, StatelessRule } from '../core/engine/rule';
import { principalOf, recordIdOf } from '../core/events/identity';
import { ResponderError } from '../core/errors';
import type { AuditEvent } from '../core/events/types';
import type { DetectionSettings, VaultPolicy } from '../core/rules/settings';
import { boundedId, boundedJson, boundedText, MAX_ID_CHARS, MAX_TEXT_CHARS } from '../core/state/limits';
import { putAll, type StateKey, type StateStore, type StateWrite, stateKey } from '../core/state/store';

export interface DetectionEngineOptions {
    readonly rules: readonly Rule[];
    readonly toggles?: ReadonlyMap<string, RuleToggle>;
    readonly settings: DetectionSettings;
    readonly store: StateStore;
    /** Compare-and-set attempts per key before the batch fails as retryable (default 8). */
    readonly maxAttempts?: number;
    /**
     * Stateful evaluators that keep state for rules and never find anything themselves (the CMK inventory): always
     * on, and run before the rules on each event, so a rule reading the same state sees the event counted.
     */
    readonly trackers?: readonly Rule[];
}

interface Candidate {
    readonly order: number; // event index * rule count + rule index: output order
    readonly event: AuditEvent;
    readonly rule: Rule;
    readonly draft: FindingDraft;
}

/** One stateful rule's step for one event. Mutable: the engine reuses these objects from batch to batch. */
interface StatefulItem {
    order: number;
    event: AuditEvent;
    rule: StatefulRule<unknown>;
    /** The rule's `evaluate` (see {@link IndexedRule}). */
    step: StatefulRule<unknown>['evaluate'];
    ctx: RuleContext;
    key: StateKey;
    findings: readonly FindingDraft[];
    /** The working copy of its key's state, bound by `load`. */
    working: Working | undefined;
}

/**
 * Drops what an item held of its batch (its event and the vault's context), so that a reused item keeps nothing of a
 * batch alive: the fields stay unset until the next batch fills them.
 */
function vacate(item: StatefulItem): void {
    item.event = undefined as unknown as AuditEvent;
    item.ctx = undefined as unknown as RuleContext;
    item.findings = NO_FINDINGS;
    item.working = undefined;
}

interface Working {
    readonly key: StateKey;
    value: unknown;
    etag: string | undefined;
    dirty: boolean;
    expiresMs: number;
}

/** Group state: one finding per (rule, vault, principal[, group key]) and window. */
interface GroupState {
    readonly opened: number;
    readonly until: number;
    readonly count: number;
    /** Identities of the records already counted (bounded): redelivered records are dropped. */
    readonly ids: readonly string[];
    /**
     * The finding this group emitted, until its batch's sinks confirmed it (see {@link DetectionEngine.confirm}): if
     * they failed, the redelivered batch emits it again instead of dropping it as a repeat.
     */
    readonly pending?: FindingDecision;
}

interface VaultMeta {
    readonly first: number;
}

/** A rule hit, before grouping: what remediation reacts to. */
export interface Trigger {
    readonly rule: string;
    readonly event: AuditEvent;
    /** The principal of the finding the hit belongs to (its incident is keyed by rule and principal). */
    readonly principal?: string;
    /** A redelivered record (its group counted it already). */
    readonly repeat?: true;
}

/**
 * A rule with its position in the catalogue (the output order within one event), and its functions read once: the
 * rules are objects of many shapes, so reading `kind`, `evaluate` or `stateKey` from one for every (event, rule) pair
 * was a slow lookup each time; these entries all have one shape. Each function is called with its rule as `this`.
 */
interface IndexedRule {
    readonly rule: Rule;
    readonly index: number;
    /** A stateless rule's `evaluate`; undefined for a stateful rule. */
    readonly stateless: StatelessRule['evaluate'] | undefined;
    /** A stateful rule's `stateKey` and `evaluate`; undefined for a stateless rule. */
    readonly stateKey: StatefulRule<unknown>['stateKey'] | undefined;
    readonly step: StatefulRule<unknown>['evaluate'] | undefined;
}

function indexed(rule: Rule, index: number): IndexedRule {
    /* eslint-disable @typescript-eslint/unbound-method -- each is called with `.call(rule, …)` */
    return rule.kind === 'stateless'
        ? { rule, index, stateless: rule.evaluate, stateKey: undefined, step: undefined }
        : { rule, index, stateless: undefined, stateKey: rule.stateKey, step: rule.evaluate };
    /* eslint-enable @typescript-eslint/unbound-method */
}

const NO_FINDINGS: readonly FindingDraft[] = Object.freeze([]);
const MAX_GROUP_IDS = 64;
const MAX_LISTED = 20;
/** Event time between two sweeps of an in-process store (see {@link DetectionEngine.sweepNow}). */
const SWEEP_EVENT_MS = 5 * 60_000;
/** How long after its expiry an in-process entry is kept (see {@link DetectionEngine.sweepNow}). */
const SWEEP_GRACE_MS = 24 * 3_600_000;

/**
 * Runs the rules over a batch of events: stateless rules directly, stateful rules against state read from the store
 * and written back with compare-and-set (a conflict re-reads and re-evaluates the affected events, so no update is
 * lost), then groups findings so that a burst, or a redelivered record, does not page twice.
 */
export class DetectionEngine {
    private readonly byOperation = new Map<string, IndexedRule[]>();
    private readonly anyOperation: IndexedRule[] = [];
    private readonly merged = new Map<string, readonly IndexedRule[]>();
    readonly severities = new Map<string, Severity>();
    private readonly policies = new Map<string, VaultPolicy>();
    private readonly settings: DetectionSettings;
    private readonly store: StateStore;
    private readonly maxAttempts: number;
    private readonly ruleCount: number;
    private highWaterMs = 0;
    private sweptAtMs = 0;
    private batches = 0;
    /**
     * The stateful items of the last batch, emptied (see {@link vacate}), for the next batch to fill: about three per
     * record, they were most of what the engine allocated. A batch takes them while it runs, so that calls that
     * overlap never share them (an overlapping call, or one after a batch that failed, starts with none).
     */
    private spareItems: StatefulItem[] | undefined = [];

    constructor(options: DetectionEngineOptions) {
        this.settings = options.settings;
        this.store = options.store;
        this.maxAttempts = options.maxAttempts ?? 8;
        let index = 0;
        const trackers = new Set(options.trackers ?? []);
        for (const rule of [...trackers, ...options.rules]) {
            const toggle = options.toggles?.get(rule.meta.id);
            if (toggle !== undefined && !toggle.enabled && !trackers.has(rule)) continue;
            const entry = indexed(rule, index++);
            if (!trackers.has(rule)) this.severities.set(rule.meta.id, toggle?.severity ?? rule.meta.severity);
            if (rule.operations === undefined) this.anyOperation.push(entry);
            else
                for (const op of rule.operations) {
                    const list = this.byOperation.get(op) ?? [];
                    list.push(entry);
                    this.byOperation.set(op, list);
                }
        }
        this.ruleCount = Math.max(1, index);
    }

    get enabledRules(): number {
        return this.severities.size;
    }

    /** The rules of an operation: its own plus the every-operation ones, merged once per operation name. */
    private rulesFor(operation: string): readonly IndexedRule[] {
        let list = this.merged.get(operation);
        if (list === undefined) {
            const specific = this.byOperation.get(operation) ?? [];
            list = [...specific, ...this.anyOperation];
            if (this.merged.size < 4096) this.merged.set(operation, list);
        }
        return list;
    }

    /**
     * Lets an in-process store drop what expired a day ({@link SWEEP_GRACE_MS}) before the events it may still see:
     * whenever the newest event time has moved {@link SWEEP_EVENT_MS} since the last sweep, and every 1,000 batches in
     * any case (a sweep walks every entry, so it runs per span of event time, not per batch). The bound is the older of
     * the newest time seen before this batch and this batch's oldest event, so that a batch spanning hours never loses
     * the state its own older events need; the grace keeps what a redelivery, or a capture replayed again, still finds
     * (as the Table store's maintenance timer keeps expired entities for its grace period).
     */
    private sweepNow(events: readonly AuditEvent[]): void {
        if (this.store.sweep === undefined) return;
        let oldest = Number.POSITIVE_INFINITY;
        let newest = this.highWaterMs;
        for (const e of events) {
            if (e.timeMs < oldest) oldest = e.timeMs;
            if (e.timeMs > newest) newest = e.timeMs;
        }
        const bound = Math.min(this.highWaterMs, oldest) - SWEEP_GRACE_MS;
        this.highWaterMs = newest;
        if (this.sweptAtMs === 0) this.sweptAtMs = newest;
        if (++this.batches % 1000 === 0 || newest - this.sweptAtMs >= SWEEP_EVENT_MS) {
            this.sweptAtMs = newest;
            if (bound > 0) this.store.sweep(bound);
        }
    }

    private policyOf(e: AuditEvent): VaultPolicy {
        let p = this.policies.get(e.vault.resourceId);
        if (p === undefined) {
            p = this.settings.policyFor(e.vault);
            this.policies.set(e.vault.resourceId, p);
        }
        return p;
    }

    /**
     * Evaluates a batch; returns findings and rule errors in event order. Throws only on store failure.
     * @param triggers - Receives every rule hit before grouping (remediation acts on each, not only on reported ones).
     */
    async evaluate(events: readonly AuditEvent[], triggers?: Trigger[]): Promise<Decision[]> {
        if (events.length === 0 || this.severities.size === 0) return [];
        this.sweepNow(events);
        const batchMin = new Map<string, number>();
        // By runs of events of one vault (the same object, from the normalizer's memo): one map update per run.
        let runVault = (events[0] as AuditEvent).vault;
        let runMin = (events[0] as AuditEvent).timeMs;
        for (let i = 1; i < events.length; i++) {
            const e = events[i] as AuditEvent;
            if (e.vault === runVault) {
                if (e.timeMs < runMin) runMin = e.timeMs;
                continue;
            }
            earliest(batchMin, runVault.name, runMin);
            runVault = e.vault;
            runMin = e.timeMs;
        }
        earliest(batchMin, runVault.name, runMin);
        // A vault met for the first time, or met again with a record older than its first-seen time (records out of
        // order), has its first-seen time written with the batch's rule state (one write per vault: with the Table
        // store both are properties of the vault's one entity), not in a call of its own that the rules would wait for.
        // The rules use the batch's time either way; a write that meets a concurrent one is settled after them.
        const { result: firstSeen, deferred } = await this.vaultFirstSeen(batchMin, true);
        const candidates: Candidate[] = [];
        const errors: { order: number; decision: ErrorDecision }[] = [];
        const items = this.spareItems ?? [];
        this.spareItems = undefined;
        const used = this.applyRules(events, firstSeen, candidates, errors, items);
        if (items.length > used) items.length = used;
        let unwritten = deferred;
        if (items.length > 0) {
            const stateful = await this.runStateful(items, deferred);
            for (const e of stateful.errors) errors.push(e);
            unwritten = stateful.unwritten;
            for (let k = 0; k < items.length; k++) {
                const item = items[k] as StatefulItem;
                const drafts = item.findings;
                for (let d = 0; d < drafts.length; d++)
                    candidates.push({
                        order: item.order,
                        event: item.event,
                        rule: item.rule,
                        draft: drafts[d] as FindingDraft,
                    });
            }
        }
        for (let k = 0; k < items.length; k++) vacate(items[k] as StatefulItem);
        this.spareItems = items;
        // First-seen times not written with the rule state (no rule state to write, or another instance wrote that
        // vault's first-seen meanwhile): settled as before, on fresh reads, keeping the earliest time. The rules of
        // this batch used the time this batch saw; another instance's can only be minutes earlier, both at the very
        // start of a learning period, so no decision of this batch can depend on which one is kept.
        if (unwritten.length > 0)
            await this.vaultFirstSeen(
                new Map(unwritten.map((w) => [w.key.partition, (w.value as VaultMeta).first])),
                false,
            );
        const repeats = new Set<Candidate>();
        const findings = candidates.length === 0 ? [] : await this.group(candidates, repeats, errors);
        // Every hit triggers, redelivered records too: a batch that failed after detection must still reconcile on
        // retry (reconciling is idempotent: it reads ARM first, and the intent's version deduplicates the work).
        if (triggers !== undefined)
            for (const c of candidates) {
                const principal = c.draft.principal ?? principalOf(c.event);
                triggers.push({
                    rule: c.rule.meta.id,
                    event: c.event,
                    ...(principal === undefined || principal === '' ? {} : { principal }),
                    ...(repeats.has(c) ? { repeat: true as const } : {}),
                });
            }
        const out = [...findings.map((f) => ({ order: f.order, decision: f.decision })), ...errors];
        out.sort((a, b) => a.order - b.order);
        return out.map((o) => o.decision);
    }

    /**
     * Runs the stateless rules of each event and lists the stateful items, filling the item objects `items` already
     * holds before adding new ones; returns how many it used. Synchronous and apart from `evaluate`: this runs for
     * every (event, rule) pair, and the optimizer compiles a plain method better than the middle of an async function.
     */
    private applyRules(
        events: readonly AuditEvent[],
        firstSeen: ReadonlyMap<string, number>,
        candidates: Candidate[],
        errors: { order: number; decision: ErrorDecision }[],
        items: StatefulItem[],
    ): number {
        const contexts = new Map<string, RuleContext>();
        // The vault of the event before, and its context: consecutive events often share one (the same object, from
        // the normalizer's memo), and then skip the map.
        let lastVault: AuditEvent['vault'] | undefined;
        let lastCtx: RuleContext | undefined;
        let used = 0;
        for (let i = 0; i < events.length; i++) {
            const event = events[i] as AuditEvent;
            const rules = this.rulesFor(event.operation);
            if (rules.length === 0) continue;
            let ctx = event.vault === lastVault ? lastCtx : contexts.get(event.vault.resourceId);
            if (ctx === undefined) {
                ctx = {
                    settings: this.settings,
                    policy: this.policyOf(event),
                    vaultFirstSeenMs: firstSeen.get(event.vault.name) ?? event.timeMs,
                };
                contexts.set(event.vault.resourceId, ctx);
            }
            lastVault = event.vault;
            lastCtx = ctx;
            // Indexed loops here and in evaluate: this runs for every (event, rule) pair, and an iterator that the
            // optimizer does not remove allocates a result object per step.
            for (let r = 0; r < rules.length; r++) {
                const entry = rules[r] as IndexedRule;
                const rule = entry.rule;
                const order = i * this.ruleCount + entry.index;
                try {
                    const stateless = entry.stateless;
                    if (stateless !== undefined) {
                        const drafts = stateless.call(rule, event, ctx);
                        if (drafts !== undefined)
                            for (const draft of drafts) candidates.push({ order, event, rule, draft });
                    } else {
                        const key = (entry.stateKey as StatefulRule<unknown>['stateKey']).call(rule, event, ctx);
                        if (key === undefined) continue;
                        const step = entry.step as StatefulRule<unknown>['evaluate'];
                        const stateful = rule as StatefulRule<unknown>;
                        const item = used < items.length ? items[used] : undefined;
                        if (item === undefined)
                            items.push({
                                order,
                                event,
                                rule: stateful,
                                step,
                                ctx,
                                key,
                                findings: NO_FINDINGS,
                                working: undefined,
                            });
                        else {
                            item.order = order;
                            item.event = event;
                            item.rule = stateful;
                            item.step = step;
                            item.ctx = ctx;
                            item.key = key;
                            item.findings = NO_FINDINGS;
                        }
                        used++;
                    }
                } catch (err) {
                    errors.push({ order, decision: ruleError(rule, event, err) });
                }
            }
        }
        return used;
    }

    /**
     * First-seen time per vault (the start of its learning period), kept as the minimum event time ever seen.
     * @param batchMin - Each vault's earliest event time in the batch.
     * @param defer - Return the writes (a first time, or an earlier one: compare-and-set on the ETag read) instead of
     *   writing them: the caller writes them with the rule state.
     */
    private async vaultFirstSeen(
        batchMin: ReadonlyMap<string, number>,
        defer: boolean,
    ): Promise<{ result: Map<string, number>; deferred: StateWrite[] }> {
        const result = new Map<string, number>();
        const deferred: StateWrite[] = [];
        let pending = [...batchMin.keys()];
        for (let attempt = 0; pending.length > 0; attempt++) {
            if (attempt >= this.maxAttempts)
                throw conflictError(
                    'vault first-seen',
                    pending.map((v) => ({ key: stateKey(v, 'meta') })),
                );
            const keys = pending.map((v) => stateKey(v, 'meta'));
            // A cached copy is fine: first-seen only moves earlier, and every move is a compare-and-set write.
            const stored = await this.store.getMany(keys, { cached: true });
            const writes: StateWrite[] = [];
            for (let i = 0; i < keys.length; i++) {
                const key = keys[i] as StateKey;
                const s = stored[i];
                const prev = (s?.value as VaultMeta | undefined)?.first;
                const mine = batchMin.get(key.partition) as number;
                if (prev !== undefined && prev <= mine) {
                    result.set(key.partition, prev);
                    continue;
                }
                const write = {
                    key,
                    value: { first: mine } satisfies VaultMeta,
                    etag: s?.etag,
                    expiresMs: Number.MAX_SAFE_INTEGER,
                };
                if (defer) {
                    result.set(key.partition, mine);
                    deferred.push(write);
                } else writes.push(write);
            }
            const written = await putAll(this.store, writes);
            const retry: string[] = [];
            for (let i = 0; i < writes.length; i++) {
                const w = writes[i] as StateWrite;
                const r = written[i];
                if (r instanceof ResponderError) throw r; // { first } is a few bytes: never too large
                if (r?.ok === true) result.set(w.key.partition, (w.value as VaultMeta).first);
                else retry.push(w.key.partition);
            }
            pending = retry;
        }
        return { result, deferred };
    }

    /**
     * Runs the stateful rules and writes their state, with `alongside` (first-seen times of new vaults) in the first
     * write; returns the rule errors and those of `alongside` that met a concurrent write.
     */
    private async runStateful(
        items: StatefulItem[],
        alongside: readonly StateWrite[],
    ): Promise<{ errors: { order: number; decision: ErrorDecision }[]; unwritten: StateWrite[] }> {
        const errors = new Map<StatefulItem, ErrorDecision>();
        let unwritten: StateWrite[] = [];
        let todo = items;
        for (let attempt = 0; ; attempt++) {
            if (attempt >= this.maxAttempts) throw conflictError('rule state', todo);
            const working = await this.load(todo, true);
            for (let k = 0; k < todo.length; k++) {
                const item = todo[k] as StatefulItem;
                const w = item.working as Working;
                if (errors.size > 0) errors.delete(item);
                try {
                    const step = item.step.call(item.rule, item.event, item.ctx, w.value);
                    item.findings = step.findings ?? NO_FINDINGS;
                    if (step.state !== undefined) {
                        w.value = step.state;
                        w.dirty = true;
                        w.expiresMs = Math.max(w.expiresMs, item.event.timeMs + item.rule.stateTtlMs(this.settings));
                    }
                } catch (err) {
                    item.findings = NO_FINDINGS;
                    errors.set(item, ruleError(item.rule, item.event, err));
                }
            }
            const { conflicts, refused, extra } = await this.commit(working, attempt === 0 ? alongside : []);
            if (attempt === 0) unwritten = extra;
            // State a store refused (too large) is lost for this key only: each event that used it gets an error
            // decision, its findings still go out, and every other key of the batch is written as usual.
            if (refused.size > 0)
                for (const item of todo) {
                    const err = refused.get(item.key.id);
                    if (err !== undefined && !errors.has(item))
                        errors.set(item, stateRefused(item.rule.meta.id, item.event, err));
                }
            if (conflicts.size === 0) break;
            // Re-read only the conflicting keys and re-run, in order, the events that used them.
            todo = items.filter((i) => conflicts.has(i.key.id));
        }
        return { errors: [...errors].map(([item, decision]) => ({ order: item.order, decision })), unwritten };
    }

    /**
     * Reads the distinct keys of `users` into a working set (one map, one store round trip).
     * @param bind - Also set each user's `working` to its key's working copy (the stateful items: about three a record,
     *   each then skips a second lookup in the map).
     */
    private async load(
        users: readonly { readonly key: StateKey; working?: Working | undefined }[],
        bind = false,
    ): Promise<Map<string, Working>> {
        const working = new Map<string, Working>();
        const keys: StateKey[] = [];
        const copies: Working[] = [];
        for (let i = 0; i < users.length; i++) {
            const user = users[i] as { readonly key: StateKey; working?: Working | undefined };
            const key = user.key;
            let w = working.get(key.id);
            if (w === undefined) {
                w = { key, value: undefined, etag: undefined, dirty: false, expiresMs: 0 };
                working.set(key.id, w);
                keys.push(key);
                copies.push(w);
            }
            if (bind) user.working = w;
        }
        // Rule and group state changes only through compare-and-set writes: a stale cached copy meets a conflict.
        const stored = await this.store.getMany(keys, { cached: true });
        for (let i = 0; i < keys.length; i++) {
            const s = stored[i];
            if (s === undefined) continue;
            const w = copies[i] as Working;
            w.value = s.value;
            w.etag = s.etag;
        }
        return working;
    }

    /**
     * Writes the dirty keys. Returns the keys that met a concurrent update (to re-read and re-run) and those the store
     * refused as too large (`STATE.TOO_LARGE`: not retried, the same input makes the same state); any other failure
     * throws.
     */
    private async commit(
        working: Map<string, Working>,
        extra: readonly StateWrite[],
    ): Promise<{ conflicts: Set<string>; refused: Map<string, ResponderError>; extra: StateWrite[] }> {
        const conflicts = new Set<string>();
        const refused = new Map<string, ResponderError>();
        const writes: StateWrite[] = [];
        for (const w of working.values()) {
            if (!w.dirty) continue;
            writes.push({ key: w.key, value: w.value, etag: w.etag, expiresMs: w.expiresMs });
        }
        const ruleWrites = writes.length;
        for (const w of extra) writes.push(w);
        const results = await putAll(this.store, writes);
        const extraConflicts: StateWrite[] = [];
        for (let i = ruleWrites; i < writes.length; i++) {
            const r = results[i];
            if (r instanceof ResponderError) throw r; // { first } is a few bytes: never too large
            if (r?.ok !== true) extraConflicts.push(writes[i] as StateWrite);
        }
        for (let i = 0; i < ruleWrites; i++) {
            const ks = (writes[i] as StateWrite).key.id;
            const r = results[i];
            if (r instanceof ResponderError) {
                if (r.code === 'STATE.TOO_LARGE') refused.set(ks, r);
                else throw r;
            } else if (r?.ok !== true) conflicts.add(ks);
        }
        return { conflicts, refused, extra: extraConflicts };
    }

    /** Findings emitted but not yet confirmed delivered, with their group key. */
    private readonly unconfirmed = new WeakMap<object, StateKey>();

    /**
     * Marks findings as delivered (their batch's sinks succeeded): a later redelivery of their records is then a
     * repeat. Until then the group keeps the finding, and a redelivered batch emits it again.
     */
    async confirm(decisions: readonly Decision[]): Promise<void> {
        // Every group of the batch at once (one read, one write call per round), not one group after another: each
        // write is still a compare-and-set of its own, and a group that met a conflict is read and tried again.
        const byId = new Map<string, StateKey>();
        for (const d of decisions) {
            const key = d.type === 'finding' ? this.unconfirmed.get(d) : undefined;
            if (key === undefined) continue;
            this.unconfirmed.delete(d);
            byId.set(key.id, key);
        }
        let keys = [...byId.values()];
        for (let attempt = 0; attempt < this.maxAttempts && keys.length > 0; attempt++) {
            const states = await this.store.getMany(keys, { cached: true });
            const writes: StateWrite[] = [];
            for (const [i, s] of states.entries()) {
                const g = s?.value as GroupState | undefined;
                if (s === undefined || g === undefined || g === null || g.pending === undefined) continue;
                const { pending: _delivered, ...rest } = g;
                writes.push({
                    key: keys[i] as StateKey,
                    value: rest satisfies GroupState,
                    etag: s.etag,
                    expiresMs: g.until,
                });
            }
            const results = await putAll(this.store, writes);
            keys = [];
            for (const [i, r] of results.entries()) {
                if (r instanceof ResponderError) throw r;
                if (r?.ok !== true) keys.push((writes[i] as StateWrite).key);
            }
        }
    }

    /** Turns candidates into findings: one per group and window; duplicates and repeats are counted, not emitted. */
    private async group(
        candidates: Candidate[],
        repeats: Set<Candidate>,
        errors: { order: number; decision: ErrorDecision }[],
    ): Promise<{ order: number; decision: FindingDecision }[]> {
        candidates.sort((a, b) => a.order - b.order);
        const keyed = candidates.map((c) => {
            const principal = c.draft.principal ?? principalOf(c.event) ?? '';
            const key = stateKey(c.event.vault.name, `group|${c.rule.meta.id}|${principal}|${c.draft.groupKey ?? ''}`);
            return { c, key };
        });
        let todo = keyed;
        const emitted = new Map<string, { order: number; decision: MutableFinding }[]>();
        for (let attempt = 0; ; attempt++) {
            if (attempt >= this.maxAttempts) throw conflictError('finding groups', todo);
            const working = await this.load(todo);
            for (const { key, c } of todo) {
                emitted.delete(key.id);
                repeats.delete(c);
            }
            for (const { c, key } of todo) {
                const ks = key.id;
                const w = working.get(ks) as Working;
                const g = w.value as GroupState | undefined;
                const t = c.event.timeMs;
                const id = recordIdOf(c.event);
                if (g !== undefined && t < g.opened) {
                    repeats.add(c); // older than the open group: already covered
                    continue;
                }
                if (g !== undefined && t < g.until) {
                    if (g.ids.includes(id)) {
                        repeats.add(c); // redelivered
                        // ... but its finding never reached the sinks: emit it again (once per batch).
                        if (g.pending !== undefined && g.ids[0] === id && !emitted.has(ks)) {
                            const again = { ...g.pending } as MutableFinding;
                            this.unconfirmed.set(again, key);
                            emitted.set(ks, [{ order: c.order, decision: again }]);
                        }
                        continue;
                    }
                    w.value = {
                        ...g,
                        count: g.count + 1,
                        ids: [...g.ids, id].slice(-MAX_GROUP_IDS),
                    } satisfies GroupState;
                    w.dirty = true;
                    w.expiresMs = Math.max(w.expiresMs, g.until);
                    const open = emitted.get(ks);
                    const last = open?.[open.length - 1];
                    if (last !== undefined) mergeInto(last.decision, c.event);
                    continue;
                }
                const until = t + this.settings.groupWindowMs;
                w.dirty = true;
                w.expiresMs = until;
                const severity = c.draft.severity ?? this.severities.get(c.rule.meta.id) ?? c.rule.meta.severity;
                const decision = findingOf(c.rule, severity, c.event, c.draft);
                w.value = { opened: t, until, count: 1, ids: [id], pending: decision } satisfies GroupState;
                this.unconfirmed.set(decision, key);
                const list = emitted.get(ks) ?? [];
                list.push({ order: c.order, decision });
                emitted.set(ks, list);
            }
            const { conflicts, refused } = await this.commit(working, []);
            // A group the store refused: its finding still goes out (it may page again on redelivery), with an error.
            for (const [ks, err] of refused) {
                const first = todo.find((k) => k.key.id === ks);
                if (first !== undefined)
                    errors.push({
                        order: first.c.order,
                        decision: stateRefused(first.c.rule.meta.id, first.c.event, err),
                    });
            }
            if (conflicts.size === 0) break;
            todo = keyed.filter((k) => conflicts.has(k.key.id));
        }
        return [...emitted.values()].flat();
    }
}

type MutableFinding = FindingDecision & { count: number; operations: string[]; correlationIds: string[] };

/**
 * The finding of a group's first event. Every string that comes from the record is bounded (see
 * ../core/state/limits.ts): the finding is kept in the group state until delivered and in the incident, and the
 * longest fields a record may carry would otherwise take a stored entity past what Table Storage holds.
 */
function findingOf(rule: Rule, severity: Severity, event: AuditEvent, draft: FindingDraft): MutableFinding {
    const p = draft.principal ?? principalOf(event);
    const principal = p === undefined || p === '' ? undefined : boundedText(p);
    const details = draft.details === undefined ? undefined : (boundedJson(draft.details) as Record<string, unknown>);
    return {
        type: 'finding',
        rule: rule.meta.id,
        severity,
        vault: event.vault.name,
        vaultId: event.vault.resourceId,
        time: event.time,
        ...(principal === undefined ? {} : { principal }),
        operations: [boundedId(event.operation)],
        correlationIds: event.correlationId === undefined ? [] : [boundedId(event.correlationId)],
        count: 1,
        summary: boundedText(draft.summary, 2 * MAX_TEXT_CHARS),
        actor: actorOf(event),
        ...details,
    };
}

/** Who made the triggering request and from where, for the people reading the alert. */
function actorOf(e: AuditEvent): Record<string, string> {
    const c = e.caller;
    const out: Record<string, string> = {};
    if (c.upn !== undefined) out.upn = boundedText(c.upn);
    if (c.appId !== undefined) out.appId = boundedText(c.appId);
    if (c.managedIdentityResourceId !== undefined) out.managedIdentity = boundedText(c.managedIdentityResourceId);
    if (c.ipAddress !== undefined) out.ip = boundedId(c.ipAddress);
    if (e.clientInfo !== undefined) out.userAgent = boundedText(e.clientInfo);
    return out;
}

function mergeInto(f: MutableFinding, e: AuditEvent): void {
    f.count++;
    const op = e.operation.length > MAX_ID_CHARS ? boundedId(e.operation) : e.operation;
    if (!f.operations.includes(op) && f.operations.length < MAX_LISTED) f.operations.push(op);
    const raw = e.correlationId;
    const c = raw === undefined || raw.length <= MAX_ID_CHARS ? raw : boundedId(raw);
    if (c !== undefined && !f.correlationIds.includes(c) && f.correlationIds.length < MAX_LISTED)
        f.correlationIds.push(c);
}

/** A state write the store refused as too large: an error decision for the rule and event, the batch goes on. */
function stateRefused(rule: string, event: AuditEvent, err: ResponderError): ErrorDecision {
    return {
        type: 'error',
        rule,
        message: `rule ${rule}: state not saved, ${err.message}`,
        vault: event.vault.name,
        time: event.time,
        ...(event.correlationId === undefined ? {} : { correlationId: boundedId(event.correlationId) }),
    };
}

/** Keeps the earlier of `timeMs` and the time `map` holds for `name` (a map that has none takes `timeMs`). */
function earliest(map: Map<string, number>, name: string, timeMs: number): void {
    const m = map.get(name);
    if (m === undefined || timeMs < m) map.set(name, timeMs);
}

function ruleError(rule: Rule, event: AuditEvent, err: unknown): ErrorDecision {
    return {
        type: 'error',
        rule: rule.meta.id,
        message: `rule ${rule.meta.id} threw: ${err instanceof Error ? err.message : String(err)}`,
        vault: event.vault.name,
        time: event.time,
        ...(event.correlationId === undefined ? {} : { correlationId: boundedId(event.correlationId) }),
    };
}

function conflictError(what: string, users: readonly { readonly key: StateKey }[]): ResponderError {
    const keys = new Set(users.map((u) => `${u.key.partition}/${u.key.row}`));
    return new ResponderError(
        'STATE.CONFLICT',
        `gave up writing ${what} after repeated concurrent updates (${keys.size} key(s), e.g. ${[...keys][0] ?? ''})`,
        true,
    );
}
