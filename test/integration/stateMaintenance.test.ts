import type { TableClient } from '@azure/data-tables';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import {
    composeStateMaintenance,
    DEFAULT_GRACE_MS,
    handleStateMaintenance,
} from '../../shared/app/handlers/handleStateMaintenance';
import { ConfigError } from '../../shared/core/errors';
import { stateKey } from '../../shared/core/state/store';
import { useAzuriteTables } from '../support/azurite';
import { makeContext } from '../support/context';

const NOW = Date.parse('2026-10-05T12:00:00Z');
const DAY = 24 * 60 * 60 * 1000;

const azurite = useAzuriteTables('kvrsweep');

function newTable(): { client: TableClient; store: TableStateStore } {
    const client = azurite.client(azurite.newName());
    return { client, store: new TableStateStore(client) };
}

/** The state rows left in the table (a RowKey is the row, `|` and the partition: see tableKeysOf). */
async function rowsOf(client: TableClient): Promise<string[]> {
    const rows: string[] = [];
    for await (const e of client.listEntities()) rows.push((e.rowKey ?? '').split('|')[0] ?? '');
    return rows.sort();
}

function deps(store: TableStateStore, maxDeletes = 100) {
    return { store, now: () => NOW, graceMs: DEFAULT_GRACE_MS, maxDeletes };
}

describe('state maintenance against Azurite', () => {
    it('deletes entities that expired before now minus the grace period and keeps the others', async () => {
        const { client, store } = newTable();
        const put = (row: string, exp: number) => store.put(stateKey('kv-a', row), { row }, undefined, exp);
        await put('expired-long-ago', NOW - 40 * DAY);
        await put('expired-2-days', NOW - 2 * DAY);
        await put('expired-within-grace', NOW - DAY / 2);
        await put('live', NOW + 30 * DAY);
        await store.put(stateKey('kv-b', 'expired-other-partition'), {}, undefined, NOW - 3 * DAY);
        const { context, logs } = makeContext();

        const result = await handleStateMaintenance({ isPastDue: false }, context, deps(store));

        expect(result).toMatchObject({ scanned: 3, deleted: 3, skipped: 0, more: false, beforeMs: NOW - DAY });
        expect(await rowsOf(client)).toEqual(['expired-within-grace', 'live']);
        const line = logs.find((l) => l.entry.msg === 'kvr.state-sweep');
        expect(line?.level).toBe('information');
        expect(line?.entry).toMatchObject({ deleted: 3, more: false, before: '2026-10-04T12:00:00.000Z' });
    });

    it('does not delete an entity rewritten after the query read it (ETag changed)', async () => {
        const { client, store } = newTable();
        const key = stateKey('kv-a', 'rewritten');
        const first = await store.put(key, { v: 1 }, undefined, NOW - 5 * DAY);
        await store.put(stateKey('kv-a', 'plain'), {}, undefined, NOW - 5 * DAY);
        // A processor rewrites the entity between the sweep's query and its delete (still with an old expiry, so
        // that only the ETag protects it).
        const racing = new TableStateStore(
            new Proxy(client, {
                get(target, prop, receiver) {
                    if (prop !== 'deleteEntity') return Reflect.get(target, prop, receiver) as unknown;
                    return async (pk: string, rk: string, options: { etag: string }) => {
                        if (rk.startsWith('rewritten|') && first.ok)
                            await store.put(key, { v: 2 }, first.etag, NOW - 4 * DAY);
                        return target.deleteEntity(pk, rk, options);
                    };
                },
            }),
        );
        const result = await racing.sweepExpired(NOW - DAY, { maxDeletes: 10 });
        expect(result).toEqual({ scanned: 2, deleted: 1, skipped: 1, more: false });
        const [kept] = await store.getMany([key]);
        expect(kept?.value).toEqual({ v: 2 });
        expect(await rowsOf(client)).toEqual(['rewritten']);
    });

    it('bounds the deletes per run and finishes the rest on later runs', async () => {
        const { client, store } = newTable();
        for (let i = 0; i < 7; i++) await store.put(stateKey(`kv-${i % 3}`, `old-${i}`), {}, undefined, NOW - 9 * DAY);
        await store.put(stateKey('kv-0', 'live'), {}, undefined, NOW + DAY);
        const runs = [];
        for (let run = 0; run < 3; run++) {
            const { context } = makeContext();
            runs.push(await handleStateMaintenance(undefined, context, deps(store, 3)));
        }
        expect(runs.map((r) => [r.deleted, r.more])).toEqual([
            [3, true],
            [3, true],
            [1, false],
        ]);
        expect(await rowsOf(client)).toEqual(['live']);
    });

    it('pages through the candidates with a small page size', async () => {
        const { client, store } = newTable();
        for (let i = 0; i < 5; i++) await store.put(stateKey('kv', `old-${i}`), {}, undefined, NOW - 2 * DAY);
        const result = await store.sweepExpired(NOW - DAY, { maxDeletes: 100, pageSize: 2 });
        expect(result).toEqual({ scanned: 5, deleted: 5, skipped: 0, more: false });
        expect(await rowsOf(client)).toEqual([]);
    });

    it('treats a table that does not exist yet as empty', async () => {
        const { store } = newTable();
        expect(await store.sweepExpired(NOW, { maxDeletes: 10 })).toEqual({
            scanned: 0,
            deleted: 0,
            skipped: 0,
            more: false,
        });
    });

    it('logs and rethrows when the store fails', async () => {
        const { context, logs } = makeContext();
        const failing = { sweepExpired: () => Promise.reject(new Error('table down')) };
        await expect(
            handleStateMaintenance(undefined, context, { ...deps(newTable().store), store: failing }),
        ).rejects.toThrow('table down');
        expect(logs.map((l) => [l.level, l.entry.msg])).toEqual([['error', 'kvr.state-sweep-failed']]);
    });
});

describe('composeStateMaintenance', () => {
    it('builds a sweeper from the app settings', () => {
        const d = composeStateMaintenance({
            KVR_PUBLIC_URL: 'https://kvr-test.azurewebsites.net',
            KVR_SIGNING_KEY_ID: 'https://kv-test.vault.azure.net/keys/links',
            KVR_STATE: 'UseDevelopmentStorage=true',
            KVR_QUARANTINE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
        });
        expect(d.store).toBeInstanceOf(TableStateStore);
        expect(d.graceMs).toBe(DAY);
        expect(d.maxDeletes).toBeGreaterThan(0);
    });

    it('refuses invalid settings, listing every problem', () => {
        let error: unknown;
        try {
            composeStateMaintenance({});
        } catch (err) {
            error = err;
        }
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems.join('\n')).toMatch(/KVR_QUARANTINE_CONTAINER_URL[^]*KVR_STATE/);
    });
});
