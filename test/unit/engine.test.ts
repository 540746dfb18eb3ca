import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { DetectionEngine } from '../../shared/app/detectionEngine';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Decision, FindingDecision } from '../../shared/core/decisions';
import type { RuleMeta, StatefulRule, StatelessRule } from '../../shared/core/engine/rule';
import { RecordNormalizer } from '../../shared/core/events/normalize';
import type { AuditEvent } from '../../shared/core/events/types';
import { rules } from '../../shared/core/rules';
import {
    type PutResult,
    type StateKey,
    type StateStore,
    type StateWrite,
    type StoredState,
    stateKey,
    type WriteResult,
} from '../../shared/core/state/store';
import { fixtureRecord } from '../support/fixtures';

const settings = parseResponderConfig(
    { baseline: { learningDays: 1 } },
    rules.map((r) => r.meta.id),
    'test',
).detection;

function event(overrides: { time?: string; secret?: string; correlationId?: string } = {}): AuditEvent {
    const raw = fixtureRecord('secret-get-success.json');
    if (overrides.time !== undefined) raw.time = overrides.time;
    raw.correlationId = overrides.correlationId ?? `${overrides.time ?? 't'}-${overrides.secret ?? 's'}`;
    if (overrides.secret !== undefined)
        (raw.properties as { id: string }).id = `https://kv-payments-prod.vault.azure.net/secrets/${overrides.secret}`;
    const r = new RecordNormalizer().normalize(raw);
    if (r.kind !== 'event') throw new Error('fixture did not normalize');
    return r.event;
}

const at = (minute: number): string => new Date(Date.UTC(2026, 9, 5, 9, 0) + minute * 60_000).toISOString();

function meta(id: string): RuleMeta {
    return {
        id,
        title: id,
        severity: 'low',
        mitre: [],
        description: '',
        falsePositives: [],
        references: [],
        runbook: [],
    };
}

const findings = (ds: readonly Decision[]): FindingDecision[] =>
    ds.filter((d): d is FindingDecision => d.type === 'finding');

describe('DetectionEngine isolation', () => {
    const throwing: StatelessRule = {
        kind: 'stateless',
        meta: meta('throws'),
        operations: ['SecretGet'],
        evaluate: () => {
            throw new Error('boom');
        },
    };
    const always: StatelessRule = {
        kind: 'stateless',
        meta: meta('always'),
        operations: undefined,
        evaluate: () => [{ summary: 'seen' }],
    };
    const throwingStateful: StatefulRule<number> = {
        kind: 'stateful',
        meta: meta('throws-stateful'),
        operations: undefined,
        stateKey: (e) => stateKey(e.vault.name, 'x'),
        stateTtlMs: () => 1000,
        evaluate: () => {
            throw new Error('bad state');
        },
    };

    it('reports a throwing rule as an error decision and still runs the others', async () => {
        const engine = new DetectionEngine({
            rules: [throwing, always, throwingStateful],
            settings,
            store: new MemoryStateStore(),
        });
        const out = await engine.evaluate([event()]);
        expect(out.map((d) => [d.type, 'rule' in d ? d.rule : undefined])).toEqual([
            ['error', 'throws'],
            ['finding', 'always'],
            ['error', 'throws-stateful'],
        ]);
        expect(out[0]).toMatchObject({ message: 'rule throws threw: boom', vault: 'kv-payments-prod' });
    });

    it('applies disabled rules and severity overrides', async () => {
        const engine = new DetectionEngine({
            rules: [throwing, always],
            toggles: new Map([
                ['throws', { enabled: false, severity: undefined }],
                ['always', { enabled: true, severity: 'critical' }],
            ]),
            settings,
            store: new MemoryStateStore(),
        });
        expect(await engine.evaluate([event()])).toEqual([
            expect.objectContaining({ type: 'finding', rule: 'always', severity: 'critical' }),
        ]);
    });
});

describe('DetectionEngine grouping', () => {
    const engineOf = (store: StateStore = new MemoryStateStore()) => new DetectionEngine({ rules, settings, store });
    const burst = (n: number, from = 0) =>
        Array.from({ length: n }, (_, i) => event({ time: at(from + i * 0.25), secret: `s${from}-${i}` }));

    it('makes one finding with a count out of a burst', async () => {
        const out = findings(await engineOf().evaluate(burst(40)));
        expect(out).toHaveLength(1);
        expect(out[0]).toMatchObject({ rule: 'mass-secret-retrieval', count: 30, operations: ['SecretGet'] });
        expect(out[0]?.correlationIds).toHaveLength(20);
    });

    it('suppresses the same group in a later batch within the window, and reports again after it', async () => {
        const engine = engineOf();
        expect(findings(await engine.evaluate(burst(12)))).toHaveLength(1);
        expect(findings(await engine.evaluate(burst(12, 20)))).toHaveLength(0);
        expect(findings(await engine.evaluate(burst(12, 200)))).toHaveLength(1);
    });

    it('drops redelivered records and records older than the open group', async () => {
        const engine = engineOf();
        const batch = burst(12);
        const first = await engine.evaluate(batch);
        expect(findings(first)).toHaveLength(1);
        await engine.confirm(first);
        expect(await engine.evaluate(batch)).toEqual([]);
        expect(await engine.evaluate(batch.slice(0, 11))).toEqual([]);
    });

    it('emits a finding again when its batch is redelivered before its delivery was confirmed', async () => {
        const engine = engineOf();
        const batch = burst(12);
        const first = findings(await engine.evaluate(batch));
        expect(first).toHaveLength(1);
        // The sinks failed (no confirm): the retried batch produces the same finding once more, not a new group.
        const again = findings(await engine.evaluate(batch));
        expect(again).toHaveLength(1);
        expect(again[0]?.time).toBe(first[0]?.time);
        expect(again[0]?.count).toBe(first[0]?.count);
        await engine.confirm(again);
        expect(await engine.evaluate(batch)).toEqual([]);
    });
});

/** A store where another writer changes a key right before our first write to it. */
class InterferingStore implements StateStore {
    interfered = 0;
    constructor(
        private readonly inner: MemoryStateStore,
        private readonly times: number,
        private readonly interfere: (key: StateKey, current: unknown) => unknown,
    ) {}
    scan(rowPrefix: string, limit: number) {
        return this.inner.scan(rowPrefix, limit);
    }
    getMany(keys: readonly StateKey[]) {
        return this.inner.getMany(keys);
    }
    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        if (this.interfered < this.times && key.row.startsWith('count')) {
            this.interfered++;
            const [cur] = await this.inner.getMany([key]);
            await this.inner.put(key, this.interfere(key, cur?.value), cur?.etag, expiresMs);
        }
        return this.inner.put(key, value, etag, expiresMs);
    }
}

/** Records the rows of each write call (one `putMany` is one call); `beforeWrite` runs once first (another instance). */
class CallRecordingStore implements StateStore {
    readonly calls: string[][] = [];
    beforeWrite: (() => Promise<void>) | undefined;
    readonly inner = new MemoryStateStore();
    scan(rowPrefix: string, limit: number) {
        return this.inner.scan(rowPrefix, limit);
    }
    getMany(keys: readonly StateKey[]) {
        return this.inner.getMany(keys);
    }
    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        this.calls.push([key.row]);
        return this.inner.put(key, value, etag, expiresMs);
    }
    async putMany(writes: readonly StateWrite[]): Promise<PutResult[]> {
        const hook = this.beforeWrite;
        this.beforeWrite = undefined;
        if (hook !== undefined) await hook();
        this.calls.push(writes.map((w) => w.key.row));
        const out: PutResult[] = [];
        for (const w of writes) out.push(await this.inner.put(w.key, w.value, w.etag, w.expiresMs));
        return out;
    }
}

describe('DetectionEngine compare-and-set', () => {
    /** Counts distinct correlation ids per vault: an update lost to a race would lose ids. */
    const counter: StatefulRule<string[]> = {
        kind: 'stateful',
        meta: meta('counter'),
        operations: undefined,
        stateKey: (e) => stateKey(e.vault.name, 'count'),
        stateTtlMs: () => 3_600_000,
        evaluate: (e, _ctx, s) => ({ state: [...(s ?? []), e.correlationId ?? ''] }),
    };

    it('re-reads and re-evaluates after a conflict, keeping the other writer update', async () => {
        const inner = new MemoryStateStore();
        const store = new InterferingStore(inner, 1, (_k, cur) => [
            ...((cur as string[] | undefined) ?? []),
            'other-writer',
        ]);
        const engine = new DetectionEngine({ rules: [counter], settings, store });
        await engine.evaluate([event({ correlationId: 'a' }), event({ correlationId: 'b' })]);
        const [s] = await inner.getMany([stateKey('kv-payments-prod', 'count')]);
        expect(s?.value).toEqual(['other-writer', 'a', 'b']);
    });

    it("writes a new vault's first-seen time in the same write as its rule state", async () => {
        const store = new CallRecordingStore();
        const engine = new DetectionEngine({ rules: [counter], settings, store });
        await engine.evaluate([event({ correlationId: 'a' })]);
        expect(store.calls).toEqual([['count', 'meta']]);
        const [first] = await store.inner.getMany([stateKey('kv-payments-prod', 'meta')]);
        expect(first?.value).toEqual({ first: event().timeMs });
    });

    it('writes an earlier first-seen time (a record out of order) with the rule state too, not before the rules', async () => {
        const store = new CallRecordingStore();
        const later = event().timeMs + 30 * 60_000;
        await store.inner.put(stateKey('kv-payments-prod', 'meta'), { first: later }, undefined, 0);
        const engine = new DetectionEngine({ rules: [counter], settings, store });
        await engine.evaluate([event({ correlationId: 'a' })]);
        expect(store.calls).toEqual([['count', 'meta']]); // one call: the rules did not wait for a write of their own
        const [first] = await store.inner.getMany([stateKey('kv-payments-prod', 'meta')]);
        expect(first?.value).toEqual({ first: event().timeMs });
    });

    it('an earlier first-seen time that meets a concurrent write is settled after the rules, keeping the earliest', async () => {
        for (const [other, kept] of [
            [-30, -30],
            [10, 0],
        ] as const) {
            const store = new CallRecordingStore();
            const t = event().timeMs;
            await store.inner.put(stateKey('kv-payments-prod', 'meta'), { first: t + 30 * 60_000 }, undefined, 0);
            store.beforeWrite = async () => {
                const [cur] = await store.inner.getMany([stateKey('kv-payments-prod', 'meta')]);
                await store.inner.put(
                    stateKey('kv-payments-prod', 'meta'),
                    { first: t + other * 60_000 },
                    cur?.etag,
                    0,
                );
            };
            const engine = new DetectionEngine({ rules: [counter], settings, store });
            await engine.evaluate([event({ correlationId: 'a' })]);
            const [first] = await store.inner.getMany([stateKey('kv-payments-prod', 'meta')]);
            expect(first?.value).toEqual({ first: t + kept * 60_000 });
        }
    });

    it('keeps the earlier first-seen time another instance wrote between the read and that write', async () => {
        const store = new CallRecordingStore();
        const earlier = Date.parse(at(-30));
        store.beforeWrite = async () => {
            await store.inner.put(stateKey('kv-payments-prod', 'meta'), { first: earlier }, undefined, 0);
        };
        const engine = new DetectionEngine({ rules: [counter], settings, store });
        await engine.evaluate([event({ correlationId: 'a' })]);
        const [first, count] = await store.inner.getMany([
            stateKey('kv-payments-prod', 'meta'),
            stateKey('kv-payments-prod', 'count'),
        ]);
        expect(first?.value).toEqual({ first: earlier });
        expect(count?.value).toEqual(['a']);
    });

    it('confirms the findings of a batch in one read and one write per round; a group changed meanwhile is tried again', async () => {
        const perEvent: StatelessRule = {
            kind: 'stateless',
            meta: meta('per-event'),
            operations: undefined,
            evaluate: (e) => [{ summary: 'seen', groupKey: e.correlationId ?? '' }],
        };
        const store = new CallRecordingStore();
        const engine = new DetectionEngine({ rules: [perEvent], settings, store });
        const batch = ['a', 'b', 'c'].map((id) => event({ correlationId: id }));
        const found = await engine.evaluate(batch);
        expect(findings(found)).toHaveLength(3);
        const groups = (await store.inner.scan('group|', 10)).map((g) => g.key);
        expect(groups).toHaveLength(3);
        // Another instance counts one more event into group b between this instance's read and its write.
        const b = groups.find((k) => k.row.endsWith('|b')) as StateKey;
        store.beforeWrite = async () => {
            const [cur] = await store.inner.getMany([b]);
            const g = cur?.value as { count: number; until: number };
            await store.inner.put(b, { ...g, count: g.count + 1 }, cur?.etag, g.until);
        };
        store.calls.length = 0;
        await engine.confirm(found);
        expect(store.calls.map((rows) => rows.length)).toEqual([3, 1]);
        const after = await store.inner.getMany(groups);
        expect(after.map((s) => (s?.value as { pending?: unknown }).pending)).toEqual([
            undefined,
            undefined,
            undefined,
        ]);
        expect(after.map((s) => (s?.value as { count: number }).count).sort()).toEqual([1, 1, 2]);
        // Delivered: the same batch again is a repeat.
        expect(findings(await engine.evaluate(batch))).toEqual([]);
    });

    it('gives up with a retryable error when conflicts never stop', async () => {
        const store = new InterferingStore(new MemoryStateStore(), Number.MAX_SAFE_INTEGER, () => ['other']);
        const engine = new DetectionEngine({ rules: [counter], settings, store, maxAttempts: 3 });
        await expect(engine.evaluate([event()])).rejects.toMatchObject({ code: 'STATE.CONFLICT', retryable: true });
    });
});

describe('DetectionEngine and an in-process store', () => {
    it('sweeps state that expired before the newest event time, and keeps what is still in use', async () => {
        const store = new MemoryStateStore();
        const engine = new DetectionEngine({ rules, settings, store });
        const throttled = fixtureRecord('secret-get-success.json');
        throttled.time = at(0);
        (throttled.properties as { httpStatusCode: number }).httpStatusCode = 429;
        const r = new RecordNormalizer().normalize(throttled);
        if (r.kind !== 'event') throw new Error('fixture did not normalize');
        await engine.evaluate([r.event, event({ time: at(1), secret: 'a' })]);
        const throttleKey = stateKey('kv-payments-prod', 'throttle');
        expect((await store.getMany([throttleKey]))[0]).toBeDefined();
        // 999 more batches, two days later: the five-minute throttle window expired long ago; the baseline has not.
        for (let i = 0; i < 999; i++) await engine.evaluate([event({ time: at(2 * 24 * 60 + i), secret: 'b' })]);
        expect((await store.getMany([throttleKey]))[0]).toBeUndefined();
        const [baseline] = await store.getMany([
            stateKey('kv-payments-prod', 'app|a9a9a9a9-0000-4000-8000-0000000000a2'),
        ]);
        expect(baseline).toBeDefined();
    });
});

describe('DetectionEngine batches that overlap', () => {
    /** Reports every event with its secret's name: a step run on another batch's event would name another secret. */
    const echo: StatefulRule<number> = {
        kind: 'stateful',
        meta: meta('echo'),
        operations: undefined,
        stateKey: (e) => stateKey(e.vault.name, 'echo'),
        stateTtlMs: () => 3_600_000,
        evaluate: (e) => ({ findings: [{ summary: `saw ${e.target?.name}`, groupKey: e.target?.name ?? '' }] }),
    };

    /** Holds each read of rule state until released, so that a second batch runs while the first one waits. */
    class GatedStore implements StateStore {
        readonly inner = new MemoryStateStore();
        readonly waiting: (() => void)[] = [];
        private onWait: (() => void) | undefined;
        scan(rowPrefix: string, limit: number): ReturnType<StateStore['scan']> {
            return this.inner.scan(rowPrefix, limit);
        }
        nextWait(): Promise<void> {
            return new Promise((resolve) => (this.onWait = resolve));
        }
        async getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
            if (keys.some((k) => k.row === 'echo')) {
                await new Promise<void>((release) => {
                    this.waiting.push(release);
                    this.onWait?.();
                });
            }
            return this.inner.getMany(keys);
        }
        put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
            return this.inner.put(key, value, etag, expiresMs);
        }
        putMany(writes: readonly StateWrite[]): Promise<readonly WriteResult[]> {
            return this.inner.putMany(writes);
        }
    }

    it('gives each of two overlapping calls the findings of its own events', async () => {
        const store = new GatedStore();
        const engine = new DetectionEngine({ rules: [echo], settings, store });
        const batch = (prefix: string, minute: number): AuditEvent[] =>
            [1, 2, 3].map((n) => event({ time: at(minute + n), secret: `${prefix}-${n}` }));
        // A first batch leaves the engine's reusable items behind.
        const warm = engine.evaluate(batch('warm', 0));
        await store.nextWait();
        store.waiting.shift()?.();
        await warm;
        // The first batch waits for its state; the second runs its rules meanwhile and waits too.
        let waited = store.nextWait();
        const first = engine.evaluate(batch('first', 10));
        await waited;
        waited = store.nextWait();
        const second = engine.evaluate(batch('second', 20));
        await waited;
        for (const release of store.waiting.splice(0)) release();
        const summaries = async (p: Promise<Decision[]>): Promise<string[]> => findings(await p).map((f) => f.summary);
        expect(await summaries(first)).toEqual(['saw first-1', 'saw first-2', 'saw first-3']);
        expect(await summaries(second)).toEqual(['saw second-1', 'saw second-2', 'saw second-3']);
    });
});
