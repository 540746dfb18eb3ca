/**
 * TableStateStore packs (issue 13): the detection keys of one vault live as properties of one entity, each with its
 * own version, so that a batch writes one entity per vault instead of one per key. Per-key compare-and-set must hold
 * exactly as with one entity per key: two instances writing different keys of one pack both succeed, two writing one
 * key: exactly one wins; a full pack overflows into entities of its own without losing a key; a large value goes
 * aside; expiry, scans and `STATE.TOO_LARGE` stay per key. Against Azurite.
 */
import type { TableClient } from '@azure/data-tables';
import { isPackedKey, MAX_PACK_KEYS, packRowKeyOf, TableStateStore } from '../../shared/adapters/tableStateStore';
import { ResponderError } from '../../shared/core/errors';
import { type StateKey, type StateWrite, stateKey, type WriteResult } from '../../shared/core/state/store';
import { useAzuriteTables } from '../support/azurite';

const azurite = useAzuriteTables('kvrpk');

const client = (name: string): TableClient => azurite.client(name);

/** Two instances on one new table, each with its own cache (never refreshed within a test) and a fresh reader. */
function instances(): { a: TableStateStore; b: TableStateStore; fresh: () => TableStateStore; raw: TableClient } {
    const name = azurite.newName();
    const opts = { cacheValidityMs: 3_600_000 };
    return {
        a: new TableStateStore(client(name), opts),
        b: new TableStateStore(client(name), opts),
        fresh: () => new TableStateStore(client(name)),
        raw: client(name),
    };
}

async function rows(raw: TableClient): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    for await (const e of raw.listEntities<Record<string, unknown>>()) out.push(e);
    return out;
}

const ok = (r: WriteResult | undefined): boolean => r !== undefined && !(r instanceof Error) && r.ok;
const etagOf = (r: WriteResult | undefined): string | undefined =>
    r !== undefined && !(r instanceof Error) && r.ok ? r.etag : undefined;
const VAULT = 'kv-payments-prod';

describe('TableStateStore packs (Azurite)', () => {
    it('keeps the detection keys of a vault in one entity; other state keeps entities of its own', async () => {
        const { a, raw } = instances();
        const keys = ['meta', 'heartbeat', 'app|a1', 'user|u1', 'mass|u1', 'enum|u1'].map((r) => stateKey(VAULT, r));
        expect(keys.every(isPackedKey)).toBe(true);
        const other = ['cmk|key1', 'incident|x', 'reconcile|intent', 'group|r|p|'].map((r) => stateKey(VAULT, r));
        expect(other.some(isPackedKey)).toBe(false);
        const results = await a.putMany(
            [...keys, ...other].map((key, i) => ({ key, value: { i }, etag: undefined, expiresMs: 10 })),
        );
        expect(results.every(ok)).toBe(true);
        const stored = await rows(raw);
        expect(stored).toHaveLength(1 + other.length);
        expect(stored.filter((e) => e.rowKey === packRowKeyOf(VAULT))).toHaveLength(1);
        const read = await a.getMany([...keys, ...other]);
        expect(read.map((r) => r?.value)).toEqual([...keys, ...other].map((_, i) => ({ i })));
        expect(read.map((r) => r?.etag)).toEqual(results.map(etagOf));
    });

    it('rows with quotes, backslashes and non-ASCII: versions, values and the pack expiry hold, cached or not', async () => {
        const { a, fresh } = instances();
        const rows = ['user|a"b', 'user|c\\d\\', 'app|é😀"\\"', 'mass|x'];
        const keys = rows.map((r) => stateKey(VAULT, r));
        const first = await a.putMany(
            keys.map((key, i) => ({ key, value: { i }, etag: undefined, expiresMs: 100 + i })),
        );
        expect(first.every(ok)).toBe(true);
        // Each key's compare-and-set on its own version: the current one wins, a stale one (the first write's) loses.
        const second = await a.putMany(
            keys.map((key, i) => ({ key, value: { i, n: 2 }, etag: etagOf(first[i]), expiresMs: 200 + i })),
        );
        expect(second.every(ok)).toBe(true);
        const stale = await fresh().putMany([
            { key: keys[1] as StateKey, value: 0, etag: etagOf(first[1]), expiresMs: 1 },
        ]);
        expect(stale.map(ok)).toEqual([false]);
        for (const reader of [a, fresh()])
            for (const cached of [true, false]) {
                const read = await reader.getMany(keys, { cached });
                expect(read.map((r) => r?.value)).toEqual(rows.map((_, i) => ({ i, n: 2 })));
                expect(read.map((r) => r?.etag)).toEqual(second.map(etagOf));
            }
        // The pack's expiry is the earliest of its keys' (200), so the sweep finds it then, and not before.
        expect(await fresh().sweepExpired(200, { maxDeletes: 10 })).toMatchObject({ deleted: 0 });
        expect(await fresh().sweepExpired(201, { maxDeletes: 10 })).toMatchObject({ deleted: 1 });
        expect((await fresh().getMany(keys)).map((r) => r?.value)).toEqual([
            undefined,
            { i: 1, n: 2 },
            { i: 2, n: 2 },
            { i: 3, n: 2 },
        ]);
    });

    it("a cached pack updated write after write: the entity's expiry stays the earliest of its keys', the copy exact", async () => {
        const { a, b, fresh, raw } = instances();
        const keys = ['user|p', 'user|q', 'user|r'].map((r) => stateKey(VAULT, r));
        await a.getMany(keys, { cached: true }); // a's copy of the shard: its writes update the cached pack
        const packExp = async (): Promise<unknown> =>
            (await rows(raw)).find((e) => e.rowKey === packRowKeyOf(VAULT))?.exp;
        let etags = (
            await a.putMany(keys.map((key, i) => ({ key, value: { i }, etag: undefined, expiresMs: 100 * (i + 1) })))
        ).map(etagOf);
        expect(await packExp()).toBe(100);
        // Each step rewrites one key; the earliest expiry moves as the keys' do (100/200/300 at the start).
        const steps: [number, number, number][] = [
            [0, 500, 200], // the earliest key moves later: the next one's
            [2, 50, 50], // another key moves earlier than all
            [1, 600, 50], // a key that was not the earliest: unchanged
            [2, 700, 500], // the earliest again: the walk finds 500
        ];
        for (const [k, exp, expected] of steps) {
            const [r] = await a.putMany([
                { key: keys[k] as StateKey, value: { k, exp }, etag: etags[k], expiresMs: exp },
            ]);
            expect(ok(r)).toBe(true);
            etags = etags.map((e, i) => (i === k ? etagOf(r) : e));
            expect(await packExp()).toBe(expected);
        }
        // The cached copy (updated in place) and a fresh read agree, key by key, with their versions.
        for (const reader of [a, fresh()]) {
            const read = await reader.getMany(keys, { cached: true });
            expect(read.map((r) => r?.etag)).toEqual(etags);
            expect(read.map((r) => r?.value)).toEqual([
                { k: 0, exp: 500 },
                { k: 1, exp: 600 },
                { k: 2, exp: 700 },
            ]);
        }
        // Another instance on the first versions: a conflict for the key it read, success for the key it did not.
        const late = await b.putMany([
            { key: keys[0] as StateKey, value: 'late', etag: undefined, expiresMs: 1 },
            { key: stateKey(VAULT, 'user|s'), value: 's', etag: undefined, expiresMs: 900 },
        ]);
        expect(late.map(ok)).toEqual([false, true]);
        expect((await a.getMany([stateKey(VAULT, 'user|s')], { cached: false }))[0]?.value).toBe('s');
        expect(await packExp()).toBe(500);
    });

    it('the transactions of one shard go side by side, in one round trip; a conflict in one leaves the others', async () => {
        const name = azurite.newName();
        const raw = client(name);
        // Requests in flight: a request's depth is one more than the deepest one answered before it was sent.
        let ended = 0;
        let deepest = 0;
        raw.pipeline.addPolicy(
            {
                name: 'depth',
                sendRequest: async (request, next) => {
                    const d = ended + 1;
                    deepest = Math.max(deepest, d);
                    try {
                        return await next(request);
                    } finally {
                        ended = Math.max(ended, d);
                    }
                },
            },
            { afterPhase: 'Retry' },
        );
        const store = new TableStateStore(raw, { shards: 1, cacheValidityMs: 3_600_000 });
        const vaults = Array.from({ length: 250 }, (_, i) => `kv-lane-${i}`);
        const keys = vaults.map((v) => stateKey(v, 'user|u'));
        await store.getMany(keys, { cached: true }); // the table and the shard's copy: not part of the count
        const other = new TableStateStore(client(name), { shards: 1 });
        const first = await store.putMany(keys.map((key) => ({ key, value: 1, etag: undefined, expiresMs: 10 })));
        expect(first.every(ok)).toBe(true);
        // Someone else changes one key; the next call writes all 250 again (3 transactions of one PartitionKey).
        expect(
            ok(
                (
                    await other.putMany([
                        { key: keys[7] as StateKey, value: 'x', etag: etagOf(first[7]), expiresMs: 10 },
                    ])
                )[0],
            ),
        ).toBe(true);
        ended = 0;
        deepest = 0;
        const second = await store.putMany(
            keys.map((key, i) => ({ key, value: 2, etag: etagOf(first[i]), expiresMs: 10 })),
        );
        // Side by side: the depth is that of one transaction, then the re-read and retry of the conflicting pack's lane.
        expect(deepest).toBeLessThanOrEqual(3);
        expect(second.map(ok)).toEqual(keys.map((_, i) => i !== 7));
        const read = await new TableStateStore(client(name), { shards: 1 }).getMany(keys);
        expect(read.map((r) => r?.value)).toEqual(keys.map((_, i) => (i === 7 ? 'x' : 2)));
        // Without a conflict: one round trip for the whole call.
        ended = 0;
        deepest = 0;
        const third = await store.putMany(
            keys.flatMap((key, i) => (i === 7 ? [] : [{ key, value: 3, etag: etagOf(second[i]), expiresMs: 10 }])),
        );
        expect(third.every(ok)).toBe(true);
        expect(deepest).toBe(1);
    });

    it('two instances writing different keys of one pack on stale copies both succeed; the pack keeps both', async () => {
        const { a, b, fresh } = instances();
        const [x, y] = [stateKey(VAULT, 'app|x'), stateKey(VAULT, 'app|y')] as [StateKey, StateKey];
        // Both load their copies (empty), then write at once: one of the two Merges meets a changed pack (412), reads
        // it again, finds its own key unchanged and applies it again.
        await Promise.all([a.getMany([x], { cached: true }), b.getMany([y], { cached: true })]);
        const [ra, rb] = await Promise.all([
            a.put(x, { by: 'a' }, undefined, 10),
            b.put(y, { by: 'b' }, undefined, 10),
        ]);
        expect([ra.ok, rb.ok]).toEqual([true, true]);
        // Updates on each key's own ETag, from stale copies of the pack: both succeed again.
        const [ua, ub] = await Promise.all([
            a.put(x, { by: 'a', n: 2 }, ra.ok ? ra.etag : undefined, 10),
            b.put(y, { by: 'b', n: 2 }, rb.ok ? rb.etag : undefined, 10),
        ]);
        expect([ua.ok, ub.ok]).toEqual([true, true]);
        const read = await fresh().getMany([x, y]);
        expect(read.map((r) => r?.value)).toEqual([
            { by: 'a', n: 2 },
            { by: 'b', n: 2 },
        ]);
    });

    it('two instances writing the same key: exactly one wins, the other reports a conflict and reads the winner', async () => {
        const { a, b, fresh } = instances();
        const k = stateKey(VAULT, 'mass|u1');
        // Both insert the key at once.
        const inserts = await Promise.all([a.put(k, { by: 'a' }, undefined, 10), b.put(k, { by: 'b' }, undefined, 10)]);
        expect(inserts.filter((r) => r.ok)).toHaveLength(1);
        const winner = inserts[0]?.ok === true ? 'a' : 'b';
        const [stored] = await fresh().getMany([k]);
        expect(stored?.value).toEqual({ by: winner });
        // Both update it on the same ETag: one wins.
        const etag = stored?.etag;
        const updates = await Promise.all([a.put(k, { n: 'a' }, etag, 10), b.put(k, { n: 'b' }, etag, 10)]);
        expect(updates.filter((r) => r.ok)).toHaveLength(1);
        // The loser's cached read goes to the table and sees the winner.
        const loser = updates[0]?.ok === true ? b : a;
        const [seen] = await loser.getMany([k], { cached: true });
        expect(seen?.value).toEqual({ n: updates[0]?.ok === true ? 'a' : 'b' });
        // A write on an ETag of another key of the pack, or an old one, is a conflict.
        expect((await a.put(k, { n: 'late' }, etag, 10)).ok).toBe(false);
    });

    it('a full pack overflows into entities of their own without losing a key, also when two instances fill it', async () => {
        const { a, b, fresh, raw } = instances();
        const n = MAX_PACK_KEYS + 60;
        const keys = Array.from({ length: n }, (_, i) => stateKey(VAULT, `app|p${i}`));
        await Promise.all([
            a.getMany(keys.slice(0, 1), { cached: true }),
            b.getMany(keys.slice(0, 1), { cached: true }),
        ]);
        // Each instance writes half of the keys, interleaved, in several calls at once.
        const half = (s: TableStateStore, odd: number): Promise<readonly WriteResult[]>[] =>
            [0, 1, 2, 3].map((c) =>
                s.putMany(
                    keys
                        .map((key, i): StateWrite => ({ key, value: { i }, etag: undefined, expiresMs: 10 }))
                        .filter((_, i) => i % 2 === odd && Math.floor(i / 2) % 4 === c),
                ),
            );
        const results = (await Promise.all([...half(a, 0), ...half(b, 1)])).flat();
        expect(results).toHaveLength(n);
        expect(results.every(ok)).toBe(true);
        for (const reader of [fresh(), a, b]) {
            for (const cached of [false, true]) {
                const read = await reader.getMany(keys, { cached });
                const missing = keys.filter((_, i) => (read[i]?.value as { i?: number } | undefined)?.i !== i);
                expect({ cached, missing }).toEqual({ cached, missing: [] });
            }
        }
        const stored = await rows(raw);
        const pack = stored.find((e) => e.rowKey === packRowKeyOf(VAULT));
        expect(pack?.full).toBe(true);
        expect(Object.keys(pack ?? {}).filter((p) => /^k[0-9a-f]{16}$/.test(p))).toHaveLength(MAX_PACK_KEYS);
        expect(stored).toHaveLength(1 + n - MAX_PACK_KEYS);
        // An overflowed key and a packed key, updated on their ETags: both land; an insert of an existing one does not.
        const [over, packed] = [keys[n - 1], keys[0]] as [StateKey, StateKey];
        const [ro, rp] = await fresh().getMany([over, packed]);
        const again = await a.putMany([
            { key: over, value: { i: 'over' }, etag: ro?.etag, expiresMs: 10 },
            { key: packed, value: { i: 'packed' }, etag: rp?.etag, expiresMs: 10 },
            { key: keys[n - 2] as StateKey, value: {}, etag: undefined, expiresMs: 10 },
        ]);
        expect(again.map(ok)).toEqual([true, true, false]);
        expect((await fresh().getMany([over, packed])).map((r) => r?.value)).toEqual([{ i: 'over' }, { i: 'packed' }]);
    });

    it('a value too large for the pack goes aside in the same transaction; it grows and shrinks; too large is per key', async () => {
        const { a, fresh, raw } = instances();
        const k = stateKey(VAULT, 'enum|u1');
        const small = stateKey(VAULT, 'enum|u2');
        const big = { items: Array.from({ length: 400 }, (_, i) => `secret-${i}-${'x'.repeat(20)}`) };
        const r1 = await a.putMany([
            { key: k, value: big, etag: undefined, expiresMs: 10 },
            { key: small, value: { items: [] }, etag: undefined, expiresMs: 10 },
        ]);
        expect(r1.every(ok)).toBe(true);
        expect((await rows(raw)).map((e) => String(e.rowKey).slice(0, 3)).sort()).toEqual(['~s|', '~v|']);
        for (const cached of [false, true]) expect((await fresh().getMany([k], { cached }))[0]?.value).toEqual(big);
        // Shrinks: back into the pack, the side entity gone.
        const r2 = await a.put(k, { items: ['one'] }, etagOf(r1[0]), 10);
        expect(r2.ok).toBe(true);
        expect((await rows(raw)).map((e) => String(e.rowKey).slice(0, 3))).toEqual(['~v|']);
        expect((await fresh().getMany([k], { cached: true }))[0]?.value).toEqual({ items: ['one'] });
        // Far too large: refused for that key alone, before anything is sent; the other write lands.
        const huge = { items: ['y'.repeat(600_000)] };
        const r3 = await a.putMany([
            { key: k, value: huge, etag: r2.ok ? r2.etag : undefined, expiresMs: 10 },
            { key: small, value: { items: ['two'] }, etag: etagOf(r1[1]), expiresMs: 10 },
        ]);
        expect(r3[0]).toBeInstanceOf(ResponderError);
        expect((r3[0] as ResponderError).code).toBe('STATE.TOO_LARGE');
        expect(ok(r3[1])).toBe(true);
        expect((await fresh().getMany([k, small])).map((r) => r?.value)).toEqual([
            { items: ['one'] },
            { items: ['two'] },
        ]);
    });

    it('a cached pack counts as its keys towards the bound on cached entities', async () => {
        const name = azurite.newName();
        const c = client(name);
        let requests = 0;
        c.pipeline.addPolicy(
            {
                name: 'testRequestCounter',
                sendRequest: (request, next) => {
                    requests++;
                    return next(request);
                },
            },
            { afterPhase: 'Retry' },
        );
        const store = new TableStateStore(c, { maxCachedEntities: 50, cacheValidityMs: 3_600_000 });
        const keys = Array.from({ length: 120 }, (_, i) => stateKey(VAULT, `app|p${i}`));
        await new TableStateStore(client(name)).putMany(
            keys.map((key, i) => ({ key, value: { i }, etag: undefined, expiresMs: 10 })),
        );
        expect((await store.getMany(keys, { cached: true })).every((r, i) => (r?.value as { i: number }).i === i)).toBe(
            true,
        );
        // One pack of 120 keys is more than the cache may keep (50): it is not kept, and the next read goes out again.
        const before = requests;
        expect((await store.getMany(keys, { cached: true })).every((r) => r !== undefined)).toBe(true);
        expect(requests).toBeGreaterThan(before);
    });

    it('scans by row prefix find packed keys; the maintenance sweep removes expired keys from packs, keeping the others', async () => {
        const { a, fresh, raw } = instances();
        const big = { items: Array.from({ length: 400 }, (_, i) => `s${i}-${'x'.repeat(20)}`) };
        await a.putMany([
            { key: stateKey('kv-a', 'heartbeat'), value: { last: 1 }, etag: undefined, expiresMs: 5_000 },
            { key: stateKey('kv-a', 'mass|old'), value: big, etag: undefined, expiresMs: 100 },
            { key: stateKey('kv-a', 'enum|old'), value: { n: 1 }, etag: undefined, expiresMs: 100 },
            { key: stateKey('kv-b', 'heartbeat'), value: { last: 2 }, etag: undefined, expiresMs: 5_000 },
            { key: stateKey('kv-c', 'enum|old'), value: { n: 3 }, etag: undefined, expiresMs: 100 },
            { key: stateKey('kv-c', 'cmk|key'), value: { k: 1 }, etag: undefined, expiresMs: 5_000 },
        ]);
        const beats = await a.scan('heartbeat', 100);
        expect(beats.map((s) => [s.key.partition, s.key.row, s.value]).sort()).toEqual([
            ['kv-a', 'heartbeat', { last: 1 }],
            ['kv-b', 'heartbeat', { last: 2 }],
        ]);
        expect((await a.scan('mass|', 100)).map((s) => s.value)).toEqual([big]);
        expect((await a.scan('cmk|', 100)).map((s) => s.key.partition)).toEqual(['kv-c']);

        const swept = await a.sweepExpired(1_000, { maxDeletes: 100 });
        expect(swept.deleted).toBe(3);
        const left = await fresh().getMany(
            ['heartbeat', 'mass|old', 'enum|old'].map((r) => stateKey('kv-a', r)).concat(stateKey('kv-c', 'enum|old')),
        );
        expect(left.map((r) => r?.value)).toEqual([{ last: 1 }, undefined, undefined, undefined]);
        // kv-c's pack had only expired keys: gone; kv-a's side entity went with its key.
        const prefixes = (await rows(raw)).map((e) => String(e.rowKey).slice(0, 3)).sort();
        expect(prefixes).toEqual(['cmk', '~v|', '~v|']);
        // A write made on the swept key's old ETag is a conflict; a new insert works.
        expect((await a.put(stateKey('kv-a', 'enum|old'), { n: 2 }, undefined, 5_000)).ok).toBe(true);
        expect((await a.sweepExpired(1_000, { maxDeletes: 100 })).deleted).toBe(0);
    });
});
