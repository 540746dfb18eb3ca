import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { type StateKey, stateKey } from '../../shared/core/state/store';

/**
 * MemoryStateStore against a trivially correct model of the StateStore port (a Map of JSON copies, a version counter),
 * under a seeded random mix of creates, updates with current and stale ETags, reads, scans and sweeps. The keys are
 * chosen to share records: rows of several heads (`mass|`, `enum|`, `app|`, ...) ending in the same GUIDs of the same
 * partitions, rows kept whole, heads too long to intern, and more heads than the store interns.
 */

/** Small seeded generator (mulberry32). */
function random(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

interface ModelEntry {
    readonly key: StateKey;
    value: unknown;
    version: number;
    expires: number;
    readonly created: number;
}

/** The port, as plainly as it can be written. */
class Model {
    private readonly entries = new Map<string, ModelEntry>();
    private readonly partitions = new Map<string, number>();
    private readonly createdIn = new Map<string, number>();
    version = 0;

    get size(): number {
        return this.entries.size;
    }

    get(key: StateKey): { value: unknown; etag: string } | undefined {
        const e = this.entries.get(key.id);
        return e === undefined ? undefined : { value: e.value, etag: `m${e.version}` };
    }

    put(key: StateKey, value: unknown, etag: string | undefined, expires: number): { ok: boolean; etag?: string } {
        const e = this.entries.get(key.id);
        if (etag === undefined ? e !== undefined : e === undefined || `m${e.version}` !== etag) return { ok: false };
        const v = ++this.version;
        const copy: unknown = value === undefined ? undefined : JSON.parse(JSON.stringify(value));
        if (e !== undefined) {
            e.value = copy;
            e.version = v;
            e.expires = expires;
        } else {
            if (!this.partitions.has(key.partition)) this.partitions.set(key.partition, this.partitions.size);
            const created = this.createdIn.get(key.partition) ?? 0;
            this.createdIn.set(key.partition, created + 1);
            this.entries.set(key.id, { key, value: copy, version: v, expires, created });
        }
        return { ok: true, etag: `m${v}` };
    }

    sweep(t: number): number {
        let n = 0;
        for (const [id, e] of this.entries)
            if (e.expires < t) {
                this.entries.delete(id);
                n++;
            }
        return n;
    }

    scan(prefix: string, limit: number): { partition: string; row: string; value: unknown }[] {
        return [...this.entries.values()]
            .filter((e) => e.key.row.startsWith(prefix))
            .sort(
                (x, y) =>
                    (this.partitions.get(x.key.partition) as number) -
                        (this.partitions.get(y.key.partition) as number) || x.created - y.created,
            )
            .slice(0, limit)
            .map((e) => ({ partition: e.key.partition, row: e.key.row, value: e.value }));
    }
}

const GUIDS = [
    '98534fe1-6d99-49bf-829f-adb7380fe6b0',
    '00000000-0000-4000-8000-000000000000',
    'ffffffff-ffff-4fff-bfff-ffffffffffff',
    '0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9',
];

function keyPool(): StateKey[] {
    const keys: StateKey[] = [];
    const heads = ['mass|', 'enum|', 'app|', 'user|', 'group|rule|', `${'h'.repeat(70)}|`];
    for (const partition of ['kv-a', 'kv-b', 'kv-ü']) {
        for (const guid of GUIDS) for (const head of heads) keys.push(stateKey(partition, head + guid));
        keys.push(stateKey(partition, GUIDS[0] as string)); // a GUID alone: kept whole
        keys.push(stateKey(partition, `app|${(GUIDS[0] as string).toUpperCase()}`)); // not canonical: kept whole
        for (const row of ['meta', 'heartbeat', 'cmk|key-1', 'cmk|key-2', '', 'é|🔑'])
            keys.push(stateKey(partition, row));
    }
    return keys;
}

function valueOf(rnd: () => number): unknown {
    const r = rnd();
    if (r < 0.25) return { last: 1_793_606_400_000 + Math.floor(rnd() * 1e9) };
    if (r < 0.3) return { last: rnd() < 0.5 ? -5 : 1.5 };
    if (r < 0.55)
        return {
            items: Array.from({ length: Math.floor(rnd() * 6) }, (_, i) => [`secret-${i}`, 1_793_606_400_000 + i]),
        };
    if (r < 0.65) return { list: {}, read: { secret: Math.floor(rnd() * 1e12) } };
    if (r < 0.72) return { text: 'x'.repeat(Math.floor(rnd() * 12_000)) }; // past a shared record's 8 KiB, at times
    if (r < 0.74) return { text: 'y'.repeat(50_000 + Math.floor(rnd() * 1000)) }; // past 48 KiB
    if (r < 0.78) return undefined;
    if (r < 0.82) return new Date(Math.floor(rnd() * 1e12)); // not plain data: its JSON
    if (r < 0.9) return 'a string é';
    return Math.floor(rnd() * 1000) - 500;
}

function expiryOf(rnd: () => number): number {
    const r = rnd();
    if (r < 0.05) return -1000;
    if (r < 0.1) return 5_000.5;
    return Math.floor(rnd() * 100_000);
}

describe('MemoryStateStore against a model of the port', () => {
    it.each([1, 2, 3, 4])('agrees with the model on a random mix of operations (seed %i)', async (seed) => {
        const rnd = random(seed);
        const store = new MemoryStateStore();
        const model = new Model();
        const keys = keyPool();
        const pick = (): StateKey => keys[Math.floor(rnd() * keys.length)] as StateKey;
        const etags = new Map<string, string>();
        for (let step = 0; step < 6_000; step++) {
            const r = rnd();
            if (r < 0.55) {
                const key = pick();
                const value = valueOf(rnd);
                const expires = expiryOf(rnd);
                const mode = rnd();
                // Absent, the ETag last seen (current or stale), or one never issued.
                const etag = mode < 0.3 ? undefined : mode < 0.9 ? etags.get(key.id) : `m${Math.floor(rnd() * 50)}`;
                const got = await store.put(key, value, etag, expires);
                const want = model.put(key, value, etag, expires);
                expect(got.ok).toBe(want.ok);
                if (got.ok) {
                    expect(got.etag).toBe(want.etag);
                    etags.set(key.id, got.etag);
                }
            } else if (r < 0.85) {
                const batch = Array.from({ length: 1 + Math.floor(rnd() * 8) }, pick);
                const got = await store.getMany(batch);
                expect(got.map((g) => (g === undefined ? undefined : { value: g.value, etag: g.etag }))).toEqual(
                    batch.map((k) => model.get(k)),
                );
            } else if (r < 0.95) {
                const prefix = ['', 'mass|', 'app|', 'app|98', 'mass|98534fe1-6d', 'cmk|', 'h', 'é', 'group|r', 'x'][
                    Math.floor(rnd() * 10)
                ] as string;
                const limit = rnd() < 0.5 ? 1_000 : Math.floor(rnd() * 10);
                const got = await store.scan(prefix, limit);
                expect(got.map((s) => ({ partition: s.key.partition, row: s.key.row, value: s.value }))).toEqual(
                    model.scan(prefix, limit),
                );
                expect(got.every((s) => s.key.id === stateKey(s.key.partition, s.key.row).id)).toBe(true);
            } else {
                const t = Math.floor(rnd() * 30_000) + step * 5;
                expect(store.sweep(t)).toBe(model.sweep(t));
            }
            expect(store.size).toBe(model.size);
        }
        // Everything still reads back, and a full scan lists it all.
        expect((await store.getMany(keys)).map((g) => (g === undefined ? undefined : g.value))).toEqual(
            keys.map((k) => model.get(k)?.value),
        );
        expect((await store.scan('', 10_000)).map((s) => s.key.id)).toEqual(
            model.scan('', 10_000).map((s) => stateKey(s.partition, s.row).id),
        );
    });

    it('keeps rows of more heads than it interns apart, and finds them after a sweep', async () => {
        const store = new MemoryStateStore();
        const model = new Model();
        const guid = GUIDS[0] as string;
        // 100 heads on the same GUID: the first 63 share a record, the others are kept whole.
        for (let i = 0; i < 100; i++) {
            const key = stateKey('kv', `h${i}|${guid}`);
            expect((await store.put(key, { i }, undefined, i)).ok).toBe(true);
            model.put(key, { i }, undefined, i);
        }
        const keys = Array.from({ length: 100 }, (_, i) => stateKey('kv', `h${i}|${guid}`));
        expect((await store.getMany(keys)).map((g) => g?.value)).toEqual(keys.map((k) => model.get(k)?.value));
        expect(store.sweep(50)).toBe(model.sweep(50));
        expect((await store.getMany(keys)).map((g) => g?.value)).toEqual(keys.map((k) => model.get(k)?.value));
        expect((await store.scan('h7', 100)).map((s) => s.key.row)).toEqual(model.scan('h7', 100).map((s) => s.row));
        // A swept key is created again, after the others in scans.
        expect((await store.put(keys[3] as StateKey, { again: true }, undefined, 1_000)).ok).toBe(true);
        model.put(keys[3] as StateKey, { again: true }, undefined, 1_000);
        expect((await store.scan('', 200)).map((s) => s.key.row)).toEqual(model.scan('', 200).map((s) => s.row));
    });
});
