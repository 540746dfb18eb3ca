import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { type StateKey, stateKey } from '../../shared/core/state/store';

/**
 * The compact in-memory store (entries in typed-array columns, rows and values as bytes in an arena): what the
 * compare-and-set contract test (test/integration/stateStore.test.ts) does not reach: growth of the index and the
 * columns, records that move when a value outgrows its room, compaction, sweeps closing gaps, values too large for
 * the arena, rows that are not ASCII.
 */
describe('MemoryStateStore (compact representation)', () => {
    async function value(store: MemoryStateStore, key: StateKey): Promise<unknown> {
        const [s] = await store.getMany([key]);
        return s?.value;
    }

    it('keeps 50,000 keys of 100 partitions apart, with last-seen numbers and objects', async () => {
        const store = new MemoryStateStore();
        const keys: StateKey[] = [];
        const values: unknown[] = [];
        for (let i = 0; i < 50_000; i++) {
            keys.push(stateKey(`kv-${i % 100}`, `${i % 3 === 0 ? 'app' : 'mass'}|principal-${i}`));
            values.push(i % 3 === 0 ? { last: 1_700_000_000_000 + i } : { items: [[`secret-${i}`, i]] });
        }
        const written = await store.putMany(
            keys.map((key, i) => ({ key, value: values[i], etag: undefined, expiresMs: i })),
        );
        expect(written.every((w) => 'ok' in w && w.ok)).toBe(true);
        expect(store.size).toBe(50_000);
        const got = await store.getMany(keys);
        expect(got.map((g) => g?.value)).toEqual(
            keys.map((_, i) => (i % 3 === 0 ? { last: 1_700_000_000_000 + i } : { items: [[`secret-${i}`, i]] })),
        );
        expect(await value(store, stateKey('kv-1', 'app|principal-0'))).toBeUndefined(); // row of another partition
        expect(await value(store, stateKey('kv-0', 'app|principal-'))).toBeUndefined(); // a prefix of a row
    });

    it('hands out a copy: changing a value read does not change the stored state', async () => {
        const store = new MemoryStateStore();
        const key = stateKey('kv', 'enum|x');
        await store.put(key, { list: { key: 1 }, read: {} }, undefined, 0);
        const v = (await value(store, key)) as { list: Record<string, number> };
        v.list.key = 99;
        expect(await value(store, key)).toEqual({ list: { key: 1 }, read: {} });
    });

    it('rewrites values that grow and shrink, moving records and compacting the arena, losing nothing', async () => {
        const store = new MemoryStateStore();
        const keys = Array.from({ length: 500 }, (_, i) => stateKey(`kv-${i % 7}`, `mass|caller-${i}`));
        const etags = new Map<string, string>();
        const expected = new Map<string, unknown>();
        // 60 rounds of growing lists (each round a record outgrows its room: it moves, its old bytes are dead) leave
        // far more dead bytes than live ones: compactions run, and every key must still read back its last value.
        for (let round = 0; round < 60; round++) {
            for (let i = 0; i < keys.length; i++) {
                const key = keys[i] as StateKey;
                const items = Array.from({ length: (round % 30) + 1 }, (_, j) => [
                    `secret-${i}-${j}-${'x'.repeat(40)}`,
                    j,
                ]);
                const v = { items };
                const r = await store.put(key, v, etags.get(key.id), round);
                if (!r.ok) throw new Error(`conflict on ${key.id}`);
                etags.set(key.id, r.etag);
                expected.set(key.id, v);
            }
        }
        const got = await store.getMany(keys);
        expect(got.map((g) => g?.value)).toEqual(keys.map((k) => expected.get(k.id)));
        expect(got.map((g) => g?.etag)).toEqual(keys.map((k) => etags.get(k.id)));
        // Live state is at most 500 × 30 items × 60 bytes (under 1 MB): compaction kept the arena near it, not at the
        // 60 rounds' worth of rewrites (about 30 MB).
        expect(store.footprintBytes).toBeLessThan(8 * 1024 * 1024);
    });

    it('sweeps expired entries and still finds, updates and re-creates the others', async () => {
        const store = new MemoryStateStore();
        const etags = new Map<number, string>();
        for (let i = 0; i < 3_000; i++) {
            const r = await store.put(
                stateKey(`kv-${i % 10}`, `w|${i}`),
                { n: i },
                undefined,
                i % 2 === 0 ? 100_000 : 200_000,
            );
            if (r.ok) etags.set(i, r.etag);
        }
        expect(store.sweep(150_000)).toBe(1_500);
        expect(store.size).toBe(1_500);
        for (let i = 0; i < 3_000; i++)
            expect(await value(store, stateKey(`kv-${i % 10}`, `w|${i}`))).toEqual(i % 2 === 0 ? undefined : { n: i });
        // The survivors keep their ETags; a swept key can be created again.
        const odd = await store.put(stateKey('kv-1', 'w|1'), { n: -1 }, etags.get(1), 300_000);
        expect(odd.ok).toBe(true);
        expect((await store.put(stateKey('kv-0', 'w|0'), { n: -2 }, undefined, 300_000)).ok).toBe(true);
        expect(await value(store, stateKey('kv-1', 'w|1'))).toEqual({ n: -1 });
        expect(await value(store, stateKey('kv-0', 'w|0'))).toEqual({ n: -2 });
        expect(store.sweep(150_000)).toBe(0);
    });

    it('holds values too large for the arena, rows that are not ASCII, an empty row and undefined', async () => {
        const store = new MemoryStateStore();
        const big = { text: 'é'.repeat(400_000) };
        const keys = [
            stateKey('kv', 'cmk|big'),
            stateKey('kv-ü', 'user|Zoë 🔑'),
            stateKey('kv', ''),
            stateKey('kv', 'none'),
        ];
        await store.put(keys[0] as StateKey, big, undefined, 0);
        await store.put(keys[1] as StateKey, { last: 5 }, undefined, 0);
        await store.put(keys[2] as StateKey, { e: true }, undefined, 0);
        await store.put(keys[3] as StateKey, undefined, undefined, 0);
        const got = await store.getMany(keys);
        expect(got.map((g) => g?.value)).toEqual([big, { last: 5 }, { e: true }, undefined]);
        expect(got[3]).toBeDefined(); // exists, with an undefined value
        expect((await store.scan('user|', 10)).map((s) => [s.key.partition, s.key.row])).toEqual([
            ['kv-ü', 'user|Zoë 🔑'],
        ]);
        // The large value becomes small again, and the small one large.
        const e0 = got[0]?.etag;
        await store.put(keys[0] as StateKey, { text: 'small' }, e0, 0);
        await store.put(keys[2] as StateKey, big, got[2]?.etag, 0);
        expect((await store.getMany(keys)).map((g) => g?.value)).toEqual([
            { text: 'small' },
            { last: 5 },
            big,
            undefined,
        ]);
    });

    it('scans in the order partitions and then keys were first written', async () => {
        const store = new MemoryStateStore();
        await store.put(stateKey('b', 'cmk|1'), 1, undefined, 0);
        await store.put(stateKey('a', 'cmk|2'), 2, undefined, 0);
        await store.put(stateKey('b', 'cmk|3'), 3, undefined, 0);
        await store.put(stateKey('a', 'other'), 4, undefined, 0);
        expect((await store.scan('cmk|', 10)).map((s) => s.value)).toEqual([1, 3, 2]);
        expect((await store.scan('cmk|', 2)).map((s) => s.value)).toEqual([1, 3]);
    });
});
