import { createHash } from 'node:crypto';
import { CountingStateStore } from '../bench/countingStateStore';
import { batchesOf, bodiesOf } from '../bench/workloads';
import { CountingDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { MemoryStateStore } from '../shared/adapters/memoryStateStore';
import { createPipeline } from '../shared/app/createPipeline';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import { keyOf, resetCachesForBenchmark as resetInventoryCaches } from '../shared/core/cmk/inventory';
import { KeyMemo, resetCachesForBenchmark, stateKey } from '../shared/core/state/store';
import { DIVERSE_ESTATE, type DiverseOptions, generateDiverseBatches } from '../shared/sample/diverseWorkload';

function bodies(options: DiverseOptions): string[] {
    return [...generateDiverseBatches(options)].map((b) => b.body);
}

function records(all: readonly string[]): Record<string, unknown>[] {
    return all.flatMap((b) => (JSON.parse(b) as { records: Record<string, unknown>[] }).records);
}

describe('the diverse benchmark workload', () => {
    const options: DiverseOptions = { ...DIVERSE_ESTATE, records: 3_000 };

    it('is deterministic for a seed and differs between seeds', () => {
        const first = bodies(options);
        expect(bodies(options)).toEqual(first);
        expect(bodies({ ...options, seed: options.seed + 1 })).not.toEqual(first);
        // A prefix of a longer run is the shorter run: figures from different sizes describe the same traffic.
        expect(bodies({ ...options, records: 6_000 }).slice(0, first.length - 1)).toEqual(first.slice(0, -1));
    });

    it('has not changed (figures measured on it stay comparable)', () => {
        const digest = createHash('sha256').update(bodies(options).join('\n')).digest('hex');
        expect(digest).toBe(EXPECTED_DIGEST);
    });

    it('holds exactly the records asked for, in full bodies, in time order, over many vaults and callers', () => {
        const batches = [...generateDiverseBatches({ ...options, records: 3_010 })];
        expect(batches.map((b) => b.records).reduce((a, b) => a + b, 0)).toBe(3_010);
        expect(batches.slice(0, -1).every((b) => b.records === 50)).toBe(true);
        expect(batches[batches.length - 1]?.records).toBe(10);
        const all = records(batches.map((b) => b.body));
        expect(all).toHaveLength(3_010);
        const times = all.map((r) => Date.parse(r.time as string));
        expect(times.every((t, i) => i === 0 || t >= (times[i - 1] as number))).toBe(true);
        const vaults = new Set(all.map((r) => r.resourceId));
        const pairs = new Set(all.map((r) => `${String(r.resourceId)} ${String(r.callerIpAddress)}`));
        expect(vaults.size).toBeGreaterThan(1_000);
        expect(pairs.size).toBeGreaterThan(2_000);
        expect(new Set(all.map((r) => r.operationName)).size).toBeGreaterThanOrEqual(6);
    });

    it('goes through the pipeline with no record rejected or skipped', async () => {
        const pipeline = createPipeline(
            DEFAULT_CONFIG,
            { decisions: new CountingDecisionSink(), quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: false },
        );
        for (const batch of batchesOf(bodiesOf('diverse', 20_000), 1_000))
            await pipeline.processBatch(batch.bodies.map((body) => ({ body })));
        const s = pipeline.stats;
        expect({ records: s.records, events: s.events, skipped: s.skipped, rejected: s.rejected }).toEqual({
            records: 20_000,
            events: 20_000,
            skipped: 0,
            rejected: 0,
        });
        expect(s.findingsByRule.get('denied-access-burst') ?? 0).toBeGreaterThan(0);
        expect(s.findingsByRule.get('firewall-opened') ?? 0).toBeGreaterThan(0);
    });

    it('rejects bad options, listing every problem', () => {
        expect(() => [
            ...generateDiverseBatches({ ...options, vaults: 0, recordsPerSecond: -1, start: 'yesterday' }),
        ]).toThrow(/vaults must be a positive integer.*recordsPerSecond must be a positive number.*start is not/);
    });
});

describe('benchmark plumbing', () => {
    it('groups bodies into batches of at most the batch size', () => {
        const sizes = [...batchesOf(bodiesOf('sample', 5_000), 1_000)].map((b) => b.records);
        expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5_000);
        expect(Math.max(...sizes)).toBeLessThanOrEqual(1_000);
    });

    it('counts what goes through the state port', async () => {
        const store = new CountingStateStore(new MemoryStateStore());
        const a = stateKey('v1', 'a');
        const b = stateKey('v1', 'b');
        const first = await store.put(a, { n: 1 }, undefined, 10);
        expect(first.ok).toBe(true);
        expect((await store.put(a, { n: 2 }, undefined, 10)).ok).toBe(false);
        const got = await store.getMany([a, b, a]);
        expect(got[0]?.value).toEqual({ n: 1 });
        expect(got[1]).toBeUndefined();
        await store.scan('a', 10);
        expect(store.take()).toEqual({ getManyCalls: 1, keysRead: 3, keysFound: 2, puts: 2, conflicts: 1, scans: 1 });
        expect(store.counts.puts).toBe(0);
        expect(store.sweep?.(100)).toBe(1);
    });

    it('empties the module-level memos between rounds without changing what they answer', () => {
        const memo = new KeyMemo('x|');
        const k1 = memo.get('vault', 'id');
        expect(memo.get('vault', 'id')).toBe(k1);
        resetCachesForBenchmark();
        const k2 = memo.get('vault', 'id');
        expect(k2).not.toBe(k1);
        expect(k2).toEqual(k1);

        const event = { target: { kind: 'key', deleted: false, name: 'K', version: 'V', uri: 'https://v/keys/K/V' } };
        const r1 = keyOf(event as never);
        expect(keyOf(event as never)).toBe(r1);
        resetInventoryCaches();
        const r2 = keyOf(event as never);
        expect(r2).not.toBe(r1);
        expect(r2).toEqual({ name: 'k', version: 'v' });
    });
});

const EXPECTED_DIGEST = 'ccfcc6f80e587f0a4fc31687a3a3d987b06b1db6caf902b2bff3f97f58f35ad0';
