/**
 * TableStateStore's request economy and fault model (issue 13): writes as entity-group transactions with a
 * compare-and-set per entity, the instance-local cache of detection reads, a deadline on every call and an explicit
 * retry policy. Against Azurite, and against local endpoints that hang or answer 503.
 */
import { RestError, TableClient } from '@azure/data-tables';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import {
    TABLE_RETRY_OPTIONS,
    TableStateStore,
    tableKeysOf,
    tableLocationOf,
    tableStateStoreAt,
} from '../../shared/adapters/tableStateStore';
import { FaultyStateStore } from '../../shared/simulation/faultyStateStore';
import { type StateKey, type StateStore, type StateWrite, stateKey } from '../../shared/core/state/store';
import { useAzuriteTables } from '../support/azurite';
import { busyEndpoint, hangingEndpoint, tableConnectionStringAt } from '../support/tableEndpoints';

const azurite = useAzuriteTables('kvrts');

/** A client on a new table whose HTTP requests (each retry too) are counted. */
function counted(name = azurite.newName()): { client: TableClient; requests: () => number } {
    const client = TableClient.fromConnectionString(azurite.connectionString, name, { allowInsecureConnection: true });
    let n = 0;
    client.pipeline.addPolicy(
        {
            name: 'testRequestCounter',
            sendRequest: (request, next) => {
                n++;
                return next(request);
            },
        },
        { afterPhase: 'Retry' },
    );
    return { client, requests: () => n };
}

const writes = (keys: readonly StateKey[], value: (i: number) => unknown, etags?: readonly (string | undefined)[]) =>
    keys.map((key, i): StateWrite => ({ key, value: value(i), etag: etags?.[i], expiresMs: 10 }));

describe('TableStateStore writes (Azurite)', () => {
    it('sends the writes of one shard as transactions of up to 100 entities', async () => {
        const { client, requests } = counted();
        const store = new TableStateStore(client);
        await store.getMany([]); // creates the table
        // Key inventory rows: not packed (see the pack tests below), one entity each.
        const keys = Array.from({ length: 250 }, (_, i) => stateKey('kv-payments-prod', `cmk|k${i}`));
        expect(new Set(keys.map((k) => tableKeysOf(k).partitionKey)).size).toBe(1);
        const before = requests();
        const results = await store.putMany(writes(keys, (i) => ({ last: i })));
        expect(requests() - before).toBe(3);
        expect(results.every((r) => !(r instanceof Error) && r.ok)).toBe(true);
        const read = await new TableStateStore(client).getMany(keys);
        expect(read.map((r) => r?.value)).toEqual(keys.map((_, i) => ({ last: i })));
        // Each write's ETag is the entity's own: the next compare-and-set with it succeeds.
        const etags = results.map((r) => (!(r instanceof Error) && r.ok ? r.etag : undefined));
        expect(etags).toEqual(read.map((r) => r?.etag));
    });

    it('a stale ETag or an existing key fails that write alone; the rest of its transaction lands', async () => {
        const table = azurite.newName();
        const store = new TableStateStore(counted(table).client);
        const keys = Array.from({ length: 6 }, (_, i) => stateKey('kv-payments-prod', `mass|p${i}`));
        const created = await store.putMany(writes(keys, () => ({ n: 1 })));
        const etags = created.map((r) => (!(r instanceof Error) && r.ok ? r.etag : undefined));
        // Someone else updates key 2 meanwhile.
        const other = new TableStateStore(counted(table).client);
        expect((await other.put(keys[2] as StateKey, { n: 'other' }, etags[2], 10)).ok).toBe(true);
        const next = [...etags];
        next[4] = undefined; // an insert of a key that exists
        const results = await store.putMany(writes(keys, () => ({ n: 2 }), next));
        expect(results.map((r) => !(r instanceof Error) && r.ok)).toEqual([true, true, false, true, false, true]);
        const read = await other.getMany(keys);
        expect(read.map((r) => r?.value)).toEqual([{ n: 2 }, { n: 2 }, { n: 'other' }, { n: 2 }, { n: 1 }, { n: 2 }]);
    });

    it('two writes of one key in one call: the second meets the first (a conflict), never a failed transaction', async () => {
        const store = new TableStateStore(counted().client);
        const key = stateKey('kv-a', 'enum|x');
        const results = await store.putMany([
            { key, value: { n: 1 }, etag: undefined, expiresMs: 1 },
            { key: stateKey('kv-a', 'enum|y'), value: { n: 1 }, etag: undefined, expiresMs: 1 },
            { key, value: { n: 2 }, etag: undefined, expiresMs: 1 },
        ]);
        expect(results.map((r) => !(r instanceof Error) && r.ok)).toEqual([true, true, false]);
        expect((await store.getMany([key]))[0]?.value).toEqual({ n: 1 });
    });
});

describe('TableStateStore cached reads (Azurite)', () => {
    it('serves cached reads from a shard copy; a stale copy ends in a conflict and a fresh read, never a lost update', async () => {
        const name = azurite.newName();
        const a = counted(name);
        const mine = new TableStateStore(a.client, { cacheValidityMs: 3_600_000 });
        const other = new TableStateStore(counted(name).client);
        const keys = Array.from({ length: 20 }, (_, i) => stateKey('kv-payments-prod', `app|p${i}`));
        await mine.putMany(writes(keys.slice(0, 10), (i) => ({ last: i })));
        // First cached read loads the shard; the second costs nothing.
        expect((await mine.getMany(keys, { cached: true })).map((r) => r?.value)).toEqual(
            keys.map((_, i) => (i < 10 ? { last: i } : undefined)),
        );
        const before = a.requests();
        await mine.getMany(keys, { cached: true });
        expect(a.requests()).toBe(before);

        // Another instance creates a key this one's copy says is absent.
        const late = keys[15] as StateKey;
        expect((await other.put(late, { last: 99 }, undefined, 10)).ok).toBe(true);
        expect((await mine.getMany([late], { cached: true }))[0]).toBeUndefined(); // stale, within validity
        expect((await mine.getMany([late]))[0]?.value).toEqual({ last: 99 }); // an uncached read goes to the table
        const other2 = stateKey('kv-payments-prod', 'app|p16');
        await other.put(other2, { last: 77 }, undefined, 10);
        expect((await mine.getMany([other2], { cached: true }))[0]).toBeUndefined();
        // Writing on the stale copy: a conflict; the next cached read of that key goes to the table.
        expect(await mine.put(other2, { last: 1 }, undefined, 10)).toEqual({ ok: false });
        expect((await mine.getMany([other2], { cached: true }))[0]?.value).toEqual({ last: 77 });
    });

    it('brings a shard copy up to date once older than its validity, with one query of what changed', async () => {
        const name = azurite.newName();
        const a = counted(name);
        let now = Date.now();
        const mine = new TableStateStore(a.client, { cacheValidityMs: 10_000, now: () => now });
        const other = new TableStateStore(counted(name).client);
        const key = stateKey('kv-payments-prod', 'app|late');
        expect((await mine.getMany([key], { cached: true }))[0]).toBeUndefined();
        await other.put(key, { last: 5 }, undefined, 10);
        expect((await mine.getMany([key], { cached: true }))[0]).toBeUndefined();
        now += 10_001;
        const before = a.requests();
        expect((await mine.getMany([key], { cached: true }))[0]?.value).toEqual({ last: 5 });
        expect(a.requests() - before).toBe(1);
    });
});

function connectionStringAt(port: number): string {
    return tableConnectionStringAt(azurite.connectionString, port);
}

describe('TableStateStore deadlines and retries', () => {
    it('gives up on a hung Table endpoint at its call deadline, as a retryable STATE.UNAVAILABLE', async () => {
        const hung = await hangingEndpoint();
        try {
            const store = tableStateStoreAt(
                tableLocationOf(connectionStringAt(hung.port), 'kvrhung'),
                () => {
                    throw new Error('no credential for a connection string');
                },
                { callTimeoutMs: 300 },
            );
            const key = stateKey('v', 'a');
            for (const call of [
                () => store.getMany([key]),
                () => store.getMany([key], { cached: true }),
                () => store.put(key, { n: 1 }, undefined, 1),
                () => store.putMany([{ key, value: 1, etag: undefined, expiresMs: 1 }]),
                () => store.scan('a', 1),
            ]) {
                const err = (await call().then(
                    () => undefined,
                    (e: unknown) => e,
                )) as { code?: string; retryable?: boolean; cause?: { name?: string } } | undefined;
                expect(err).toMatchObject({ code: 'STATE.UNAVAILABLE', retryable: true });
                expect(err?.cause?.name).toBe('AbortError');
            }
        } finally {
            await hung.close();
        }
    });

    it('a transaction that fails while others of its shard are in flight: the call fails once they have ended', async () => {
        const client = TableClient.fromConnectionString(azurite.connectionString, azurite.newName(), {
            allowInsecureConnection: true,
        });
        let batches = 0;
        let inFlight = 0;
        client.pipeline.addPolicy(
            {
                name: 'failSecondTransaction',
                sendRequest: async (request, next) => {
                    if (request.url.includes('$batch') && ++batches === 2)
                        throw new RestError('injected', { statusCode: 400, request });
                    inFlight++;
                    try {
                        return await next(request);
                    } finally {
                        inFlight--;
                    }
                },
            },
            { afterPhase: 'Retry' },
        );
        const store = new TableStateStore(client);
        await store.getMany([]); // creates the table
        const keys = Array.from({ length: 350 }, (_, i) => stateKey('kv-payments-prod', `cmk|k${i}`));
        const failed = await store.putMany(writes(keys, (i) => ({ last: i }))).then(
            () => undefined,
            (err: unknown) => ({ err, inFlight }),
        );
        expect(failed?.err).toMatchObject({ code: 'STATE.UNAVAILABLE' });
        expect(failed?.inFlight).toBe(0);
    });

    it('retries a 503 as its retry policy says, then surfaces STATE.UNAVAILABLE', async () => {
        const busy = await busyEndpoint();
        try {
            const store = tableStateStoreAt(tableLocationOf(connectionStringAt(busy.port), 'kvrbusy'), () => {
                throw new Error('no credential for a connection string');
            });
            await expect(store.getMany([stateKey('v', 'a')])).rejects.toMatchObject({
                code: 'STATE.UNAVAILABLE',
                retryable: true,
            });
            expect(busy.requests()).toBe(1 + TABLE_RETRY_OPTIONS.maxRetries);
        } finally {
            await busy.close();
        }
    });
});

const inners: [string, () => StateStore][] = [
    ['MemoryStateStore', () => new MemoryStateStore()],
    ['TableStateStore on Azurite', () => new TableStateStore(counted().client)],
];

describe.each(inners)('FaultyStateStore.putMany over %s', (_name, make) => {
    it('fails the matching write alone: a conflict as { ok: false }, an outage thrown once the others landed', async () => {
        const inner = make();
        const faulty = new FaultyStateStore(inner);
        const keys = ['a', 'b', 'c'].map((r) => stateKey('kv-a', `app|${r}`));
        faulty.inject({ kind: 'precondition-failed', ops: ['put'], key: 'app|b' });
        const results = await faulty.putMany(writes(keys, () => ({ last: 1 })));
        expect(results.map((r) => !(r instanceof Error) && r.ok)).toEqual([true, false, true]);

        faulty.inject({ kind: 'server-busy', ops: ['put'], key: 'app|b' });
        await expect(
            faulty.putMany([
                { key: keys[1] as StateKey, value: { last: 2 }, etag: undefined, expiresMs: 1 },
                {
                    key: stateKey('kv-a', 'app|d'),
                    value: { last: 2 },
                    etag: undefined,
                    expiresMs: 1,
                },
            ]),
        ).rejects.toMatchObject({ code: 'STATE.UNAVAILABLE', retryable: true });
        const read = await inner.getMany([keys[1] as StateKey, stateKey('kv-a', 'app|d')]);
        expect(read.map((r) => r?.value)).toEqual([undefined, { last: 2 }]);
        expect(faulty.injected.map((f) => f.kind)).toEqual(['precondition-failed', 'server-busy']);
    });
});
