import { TableClient } from '@azure/data-tables';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { encodeKeyPart, TableStateStore } from '../../shared/adapters/tableStateStore';
import { createPipeline } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import { type StateKey, type StateStore, stateKey } from '../../shared/core/state/store';
import { useAzuriteTables } from '../support/azurite';
import { fixtureRecord } from '../support/fixtures';

const azurite = useAzuriteTables('kvrstate');

function newTable(): TableStateStore {
    return new TableStateStore(azurite.client(azurite.newName()));
}

const stores: [string, () => StateStore][] = [
    ['MemoryStateStore', () => new MemoryStateStore()],
    ['TableStateStore on Azurite', newTable],
];

describe.each(stores)('%s honours the compare-and-set contract', (_name, make) => {
    const key = stateKey('kv-payments-prod', 'mass|/subscriptions/x/resourcegroups/y#z?');

    it('reads missing keys as undefined, aligned with the request', async () => {
        const store = make();
        await store.put(stateKey('v', 'a'), { n: 1 }, undefined, 0);
        const got = await store.getMany([stateKey('v', 'missing'), stateKey('v', 'a')]);
        expect(got.map((g) => g?.value)).toEqual([undefined, { n: 1 }]);
    });

    it('creates only when absent, updates only with the current ETag', async () => {
        const store = make();
        const created = await store.put(key, { n: 1 }, undefined, 10);
        expect(created.ok).toBe(true);
        expect(await store.put(key, { n: 99 }, undefined, 10)).toEqual({ ok: false });
        const etag = created.ok ? created.etag : '';
        const updated = await store.put(key, { n: 2 }, etag, 10);
        expect(updated.ok).toBe(true);
        expect(await store.put(key, { n: 3 }, etag, 10)).toEqual({ ok: false }); // stale ETag
        const [current] = await store.getMany([key]);
        expect(current?.value).toEqual({ n: 2 });
        expect(current?.etag).toBe(updated.ok ? updated.etag : '');
    });

    it('scans rows by prefix across partitions, with their keys, up to a limit', async () => {
        const store = make();
        await store.put(stateKey('kv-a', 'cmk|key-1'), { k: 1 }, undefined, 10);
        await store.put(stateKey('kv-b/odd#name', 'cmk|key-2'), { k: 2 }, undefined, 10);
        await store.put(stateKey('kv-a', 'cmk}after'), { k: 3 }, undefined, 10);
        await store.put(stateKey('kv-a', 'cmj|before'), { k: 4 }, undefined, 10);
        await store.put(stateKey('kv-a', 'group|x'), { k: 5 }, undefined, 10);
        const found = await store.scan('cmk|', 10);
        expect(found.map((f) => [f.key.partition, f.key.row, f.value]).sort()).toEqual([
            ['kv-a', 'cmk|key-1', { k: 1 }],
            ['kv-b/odd#name', 'cmk|key-2', { k: 2 }],
        ]);
        expect(found.every((f) => f.key.id === stateKey(f.key.partition, f.key.row).id)).toBe(true);
        expect(await store.scan('cmk|', 1)).toHaveLength(1);
    });
});

describe('TableStateStore', () => {
    it('escapes the characters Table Storage forbids in keys', () => {
        expect(encodeKeyPart('mass|/subscriptions/a#b?c\\d%e')).toBe('mass|%2Fsubscriptions%2Fa%23b%3Fc%5Cd%25e');
        expect(encodeKeyPart('user|c0c0c0c0-0000-4000-8000-0000000000a1')).toBe(
            'user|c0c0c0c0-0000-4000-8000-0000000000a1',
        );
    });

    it('fails loud (retryable) when storage is unreachable', async () => {
        const store = new TableStateStore(
            TableClient.fromConnectionString(
                azurite.connectionString.replace(
                    /TableEndpoint=http:\/\/[\d.]+:\d+/,
                    'TableEndpoint=http://127.0.0.1:9',
                ),
                'kvrstate',
                {
                    allowInsecureConnection: true,
                    retryOptions: { maxRetries: 0 },
                },
            ),
        );
        await expect(store.getMany([stateKey('v', 'a')])).rejects.toMatchObject({
            code: 'STATE.UNAVAILABLE',
            retryable: true,
        });
    });
});

/** Holds the reads of a watched key until every processor has read it: their writes then collide. */
class BarrierStore implements StateStore {
    private waiting: (() => void)[] = [];
    private released = false;
    writes = 0;
    conflicts = 0;

    constructor(
        private readonly inner: StateStore,
        private readonly parties: number,
        private readonly watched: (key: StateKey) => boolean,
    ) {}

    scan(rowPrefix: string, limit: number) {
        return this.inner.scan(rowPrefix, limit);
    }
    async getMany(keys: readonly StateKey[]) {
        const result = await this.inner.getMany(keys);
        if (!this.released && keys.some(this.watched)) {
            await new Promise<void>((resolve) => {
                this.waiting.push(resolve);
                if (this.waiting.length >= this.parties) {
                    this.released = true;
                    for (const w of this.waiting) w();
                }
            });
        }
        return result;
    }

    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number) {
        const r = await this.inner.put(key, value, etag, expiresMs);
        if (this.watched(key)) {
            this.writes++;
            if (!r.ok) this.conflicts++;
        }
        return r;
    }
}

describe('two processors racing on one key (Azurite)', () => {
    const config = parseResponderConfig({ baseline: { learningDays: 1 } }, ruleIds, 'race');
    const reads = (names: string[]) => ({
        records: names.map((name, i) => {
            const r = fixtureRecord('secret-get-success.json');
            r.time = `2026-10-05T09:0${i}:00.0000000Z`;
            r.correlationId = `race-${name}`;
            (r.properties as { id: string }).id = `https://kv-payments-prod.vault.azure.net/secrets/${name}`;
            return r;
        }),
    });

    it('loses no update: the conflicting write re-reads, re-evaluates and lands', async () => {
        const table = newTable();
        const store = new BarrierStore(table, 2, (k) => k.row.startsWith('mass|'));
        const processors = [0, 1].map(() => {
            const decisions = new MemoryDecisionSink();
            return {
                decisions,
                pipeline: createPipeline(
                    config,
                    { decisions, quarantine: new MemoryQuarantineSink() },
                    { acceptBareRecords: false, store },
                ),
            };
        });
        const a = ['s01', 's02', 's03', 's04', 's05', 's06'];
        const b = ['s07', 's08', 's09', 's10', 's11', 's12'];
        await Promise.all([
            processors[0]?.pipeline.processBatch([{ body: reads(a) }]),
            processors[1]?.pipeline.processBatch([{ body: reads(b) }]),
        ]);

        const principal = 'c0c0c0c0-0000-4000-8000-0000000000a1';
        const [state] = await table.getMany([stateKey('kv-payments-prod', `mass|${principal}`)]);
        const names = (state?.value as { items: [string, number][] }).items.map(([n]) => n).sort();
        expect(names).toEqual([...a, ...b].sort());
        // Both read before either wrote, so one write met a changed ETag and was redone.
        expect(store.conflicts).toBeGreaterThanOrEqual(1);
        expect(store.writes).toBe(store.conflicts + 2);

        // Twelve distinct secrets in one hour is above the threshold of ten: exactly one processor reports it.
        const findings = processors
            .flatMap((p) => p.decisions.decisions)
            .filter((d): d is FindingDecision => d.type === 'finding');
        expect(findings.map((f) => f.rule)).toEqual(['mass-secret-retrieval']);
    });
});
