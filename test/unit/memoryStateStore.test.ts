import { MemoryStateStore, ValueCodec } from '../../shared/adapters/memoryStateStore';
import { type PutResult, type StateKey, stateKey } from '../../shared/core/state/store';

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

    it('reads back every value as JSON.stringify then JSON.parse would give it, packed or not', async () => {
        const store = new MemoryStateStore();
        class Point {
            constructor(readonly x: number) {}
        }
        const nullProto = Object.create(null) as Record<string, unknown>;
        nullProto.a = 1;
        const values: unknown[] = [
            { items: [['api-key', 1_793_606_454_993]] },
            { list: {}, read: { secret: 1_793_606_400_001 } },
            { last: 1_793_606_400_001, extra: true }, // not only `last`: packed, not the last-seen form
            [1, -1, 0, -0, 127, 128, -128, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 1e21, 0.1, -2.5e-8, 1 / 3],
            // Times relative to the first one met (the time base), on either side of it, and integers at the limits.
            [1_793_606_400_001, 1_793_606_399_990, 1e12, 4e12, 2 ** 32 - 1, 2 ** 32, 2 ** 50 - 1, 2 ** 50, -(2 ** 40)],
            { last: -(2 ** 40) },
            { last: 2 ** 50 },
            [Number.NaN, Number.POSITIVE_INFINITY, undefined, () => 1, Symbol('s'), null, true, false],
            { u: undefined, f: () => 1, s: Symbol('s'), kept: 'x', n: null },
            { 2: 'b', a: 1, 1: 'a', constructor: 'c', toString: 't' },
            { text: 'é 🔑 \u0000 "quoted" \\ back', long: 'x'.repeat(300), empty: '' },
            { deep: JSON.parse('['.repeat(80) + ']'.repeat(80)) as unknown },
            { when: new Date(0), point: new Point(3) },
            nullProto,
            JSON.parse('{"__proto__": {"polluted": true}, "b": 1}') as unknown,
            'a string',
            42,
            null,
            false,
        ];
        const keys = values.map((_, i) => stateKey('kv', `v|${i}`));
        for (let i = 0; i < values.length; i++) await store.put(keys[i] as StateKey, values[i], undefined, 0);
        const got = await store.getMany(keys);
        for (let i = 0; i < values.length; i++) {
            const expected: unknown = JSON.parse(JSON.stringify(values[i]));
            expect(got[i]?.value).toStrictEqual(expected);
            expect(JSON.stringify(got[i]?.value)).toBe(JSON.stringify(expected));
            if (typeof expected === 'object' && expected !== null)
                expect(Object.getPrototypeOf(got[i]?.value)).toBe(Object.getPrototypeOf(expected));
        }
        // A value JSON refuses is refused as before, and a refused write leaves no entry behind.
        const size = store.size;
        expect(() => store.put(stateKey('kv', 'bad'), { n: BigInt(1) }, undefined, 0)).toThrow(TypeError);
        const cycle: Record<string, unknown> = {};
        cycle.self = cycle;
        expect(() => store.put(stateKey('kv', 'bad'), cycle, undefined, 0)).toThrow(TypeError);
        expect(() => store.put(stateKey('kv-new', 'bad'), () => 1, undefined, 0)).toThrow();
        expect(await store.getMany([stateKey('kv', 'bad'), stateKey('kv-new', 'bad')])).toEqual([undefined, undefined]);
        expect(store.size).toBe(size);
        expect((await store.put(stateKey('kv', 'bad'), { n: 1 }, undefined, 0)).ok).toBe(true);
    });

    it('packs rule state to a fraction of its JSON, object keys and short strings interned once', () => {
        const codec = new ValueCodec();
        // The first timestamp sets the time base; later ones an hour away take 5 bytes (a tag, 4 of varint), not 7.
        expect(codec.encode(1_793_602_800_001)).toBe(2);
        const window = { items: [['storage-connection', 1_793_606_400_001]] };
        const enumeration = { list: {}, read: { secret: 1_793_606_400_001 } };
        expect(JSON.stringify(window)).toHaveLength(48);
        expect(codec.encode(window)).toBe(15); // 35 before string values were interned and times made relative
        expect(JSON.stringify(enumeration)).toHaveLength(43);
        expect(codec.encode(enumeration)).toBe(17); // 19 before
        expect(codec.encode(1_793_602_800_001 - 86_400_000 * 30)).toBe(6); // a month before the base
        expect(codec.encode(2 ** 32)).toBe(6); // an integer that is no time: its own varint, when shorter
        expect(codec.internedKeys).toBe(4); // items, list, read, secret
        expect(codec.internedStrings).toBe(1); // storage-connection
        // A string longer than 40 characters keeps its bytes.
        expect(codec.encode({ items: [['x'.repeat(41), 1]] })).toBe(8 + 2 + 41 + 1); // object, key, two arrays; tag, length, text; 1
        expect(codec.internedStrings).toBe(1);
        expect(codec.encode(new Map())).toBe(-1); // not plain data: the store keeps its JSON
    });

    it('interns at most 16,384 string values and keeps the others as bytes, reading all back', async () => {
        const store = new MemoryStateStore();
        // Names without digits (those with one, ids and numbered names, are never interned): base 26 in letters.
        const name = (i: number): string =>
            `name-${[...i.toString(26)].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join('')}`;
        const keys = Array.from({ length: 20_000 }, (_, i) => stateKey('kv', `w|${i}`));
        const values = keys.map((_, i) => ({
            items: [
                [name(i), i],
                ['shared', i],
                [`id-${i}`, i],
            ],
        }));
        for (let i = 0; i < keys.length; i++) await store.put(keys[i] as StateKey, values[i], undefined, 0);
        expect(new Set(values.map((v) => v.items[0]?.[0])).size).toBe(20_000);
        expect((await store.getMany(keys)).map((g) => g?.value)).toEqual(values);
        const codec = (store as unknown as { codec: ValueCodec }).codec;
        expect(codec.internedStrings).toBe(16_384);
    });

    it('keeps a row ending in a GUID in 17 bytes and gives it back as text, in reads and scans', async () => {
        const store = new MemoryStateStore();
        const guid = '98534fe1-6d99-49bf-829f-adb7380fe6b0';
        const rows = [
            `mass|${guid}`,
            `enum|${guid}`,
            `app|${guid.toUpperCase()}`, // not canonical: kept as text
            `mass|${guid.slice(0, 35)}`, // not a GUID
            `mass|x${guid}`, // ends with one: packed
            guid, // nothing before it: kept as text
            `group|rule|${guid}|`, // not at the end
        ];
        for (let i = 0; i < rows.length; i++) await store.put(stateKey('kv', rows[i] as string), i, undefined, 0);
        // Packed and plain rows never meet: each key reads its own value, and a key never written reads nothing.
        expect((await store.getMany(rows.map((r) => stateKey('kv', r)))).map((g) => g?.value)).toEqual([
            0, 1, 2, 3, 4, 5, 6,
        ]);
        expect(await value(store, stateKey('kv', `mass|${guid.replace('98', '99')}`))).toBeUndefined();
        expect(await value(store, stateKey('kv', `user|${guid}`))).toBeUndefined();
        expect((await store.scan('', 100)).map((s) => s.key.row)).toEqual(rows);
        expect((await store.scan('mass|', 100)).map((s) => s.key.row)).toEqual([rows[0], rows[3], rows[4]]);
        // A prefix reaching into the packed GUID is matched on the row's text.
        expect((await store.scan('mass|98534fe1-6d', 100)).map((s) => s.key.row)).toEqual([rows[0], rows[3]]);
        expect((await store.scan(`mass|${guid}`, 100)).map((s) => s.key.row)).toEqual([rows[0]]);
        expect((await store.scan(`mass|${guid}0`, 100)).map((s) => s.key.row)).toEqual([]);
    });

    it('holds a window entry of a principal in under 125 bytes at 100,000 entries (columns, index and arena)', async () => {
        // The rule state of a 10,000-vault estate: a window per vault and principal, keyed by the principal's id.
        const store = new MemoryStateStore();
        const hex = (n: number): string => n.toString(16).padStart(8, '0');
        const writes = Array.from({ length: 100_000 }, (_, i) => {
            const id = `${hex(i * 2654435761)}-${hex(i).slice(0, 4)}-4${hex(i).slice(5, 8)}-8${hex(i * 7).slice(1, 4)}-${hex(i * 13)}${hex(i).slice(0, 4)}`;
            return {
                key: stateKey(
                    `kv-est-${String(i % 10_000).padStart(5, '0')}`,
                    `${i % 2 === 0 ? 'mass' : 'enum'}|${id}`,
                ),
                value:
                    i % 2 === 0
                        ? { items: [['storage-connection', 1_793_606_400_001 + i]] }
                        : { list: {}, read: { secret: 1_793_606_400_001 + i } },
                etag: undefined,
                expiresMs: 1_793_610_000_000 + i,
            };
        });
        const results = await store.putMany(writes);
        expect(results.every((r) => 'ok' in r && r.ok)).toBe(true);
        const got = await store.getMany(writes.slice(0, 1_000).map((w) => w.key));
        expect(got.map((g) => g?.value)).toEqual(writes.slice(0, 1_000).map((w) => w.value));
        expect(store.footprintBytes / store.size).toBeLessThan(125);
    });

    it('keeps versions unique past 2^32 writes (the 32-bit column widens) and refuses rows over 1 KiB', async () => {
        const store = new MemoryStateStore();
        const a = stateKey('kv', 'a');
        const b = stateKey('kv', 'b');
        const first = await store.put(a, 1, undefined, 0);
        // As if the store had already made 2^32 - 2 writes.
        (store as unknown as { nextVersion: number }).nextVersion = 2 ** 32 - 2;
        const written: PutResult[] = [];
        let etag: string | undefined;
        for (let i = 0; i < 4; i++) {
            const w = await store.put(b, i, etag, 0);
            written.push(w);
            etag = w.ok ? w.etag : undefined;
        }
        expect(written.map((w) => (w.ok ? w.etag : 'conflict'))).toEqual([
            `m${2 ** 32 - 1}`,
            `m${2 ** 32}`,
            `m${2 ** 32 + 1}`,
            `m${2 ** 32 + 2}`,
        ]);
        // The entry written before the widening kept its version.
        expect((await store.getMany([a, b])).map((g) => g?.etag)).toEqual([
            first.ok ? first.etag : '',
            `m${2 ** 32 + 2}`,
        ]);
        expect((await store.put(b, 9, `m${2 ** 32 - 1}`, 0)).ok).toBe(false);
        expect((await store.put(a, 9, first.ok ? first.etag : '', 0)).ok).toBe(true);
        const long = { partition: 'kv', row: 'x'.repeat(1_025), id: `kv\u0000${'x'.repeat(1_025)}` };
        expect(() => store.put(long, 1, undefined, 0)).toThrow(/1025 bytes: longer than the 1024/);
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
