import type { TableClient } from '@azure/data-tables';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { TableStateStore, tableKeysOf } from '../../shared/adapters/tableStateStore';
import { createPipeline } from '../../shared/app/createPipeline';
import { DetectionEngine } from '../../shared/app/detectionEngine';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Decision, FindingDecision } from '../../shared/core/decisions';
import type { StatefulRule } from '../../shared/core/engine/rule';
import { MAX_FIELD_CHARS, RecordNormalizer } from '../../shared/core/events/normalize';
import type { AuditEvent } from '../../shared/core/events/types';
import { ruleIds } from '../../shared/core/rules';
import { honeytokenAccessed } from '../../shared/core/rules/honeytoken-accessed/rule';
import { type StateKey, type StateStore, stateKey } from '../../shared/core/state/store';
import { useAzuriteTables } from '../support/azurite';
import { fixtureRecord } from '../support/fixtures';

const azurite = useAzuriteTables('kvrbounded');

function tableClient(): TableClient {
    return azurite.client(azurite.newName());
}

/** Records every write, to check what reached the table. */
class WatchedStore implements StateStore {
    readonly written = new Map<string, number>();
    constructor(private readonly inner: StateStore) {}
    getMany(keys: readonly StateKey[]) {
        return this.inner.getMany(keys);
    }
    scan(rowPrefix: string, limit: number) {
        return this.inner.scan(rowPrefix, limit);
    }
    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number) {
        const r = await this.inner.put(key, value, etag, expiresMs);
        this.written.set(`${key.partition}/${key.row}`, JSON.stringify(value).length);
        return r;
    }
}

const DECOY = 'honey-db-password';
/** Characters a Table Storage string property holds (64 KiB of UTF-16), less a margin. */
const PROPERTY_CHARS = 32_000;
const config = parseResponderConfig({ decoys: [{ name: DECOY, kind: 'secret' }] }, ruleIds, 'bounded');

/** Five secret purges by one user with 8,000-character correlation ids, and a read of a decoy, in one body. */
function batch(): unknown {
    const purges = [0, 1, 2, 3, 4].map((i) => {
        const r = fixtureRecord('secret-purge-success.json');
        r.time = `2026-10-05T09:5${i}:00.0000000Z`;
        r.correlationId = `${i}${'c'.repeat(7_999)}`;
        (r.properties as { id: string }).id = `https://kv-sandbox-dev.vault.azure.net/deletedsecrets/old-${i}`;
        return r;
    });
    const decoy = fixtureRecord('secret-get-success.json');
    decoy.time = '2026-10-05T09:56:00.0000000Z';
    (decoy.properties as { id: string }).id = `https://kv-payments-prod.vault.azure.net/secrets/${DECOY}`;
    return { records: [...purges, decoy] };
}

describe('bounded state on Azurite', () => {
    it('five records with 8,000-character correlation ids and a honeytoken read in one batch: the batch succeeds, the honeytoken alert goes out', async () => {
        const store = new WatchedStore(new TableStateStore(tableClient()));
        const decisions = new MemoryDecisionSink();
        const pipeline = createPipeline(
            config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: false, store },
        );
        await pipeline.processBatch([{ body: batch() }]);
        const findings = decisions.decisions.filter((d): d is FindingDecision => d.type === 'finding');
        const honey = findings.find((f) => f.rule === 'honeytoken-accessed');
        expect(honey?.severity).toBe('critical');
        const purge = findings.filter((f) => f.rule === 'sensitive-operation');
        expect(purge).toHaveLength(1);
        expect(purge[0]?.count).toBe(5);
        // Five distinct correlation ids, each kept as its beginning and a hash.
        expect(new Set(purge[0]?.correlationIds).size).toBe(5);
        for (const c of purge[0]?.correlationIds ?? []) expect(c.length).toBeLessThanOrEqual(128);
        expect(decisions.decisions.filter((d) => d.type === 'error')).toEqual([]);
        for (const [key, chars] of store.written)
            expect({ key, fits: chars <= PROPERTY_CHARS }).toEqual({ key, fits: true });

        // A redelivery of the batch is recognised (the bounded ids are stable): nothing pages again.
        const again = new MemoryDecisionSink();
        const second = createPipeline(
            config,
            { decisions: again, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: false, store },
        );
        await second.processBatch([{ body: batch() }]);
        expect(again.decisions.filter((d) => d.type === 'finding')).toEqual([]);
    });

    it('splits state over 32,000 characters across properties, reads it back whole, and drops the extra properties when it shrinks', async () => {
        const client = tableClient();
        const store = new TableStateStore(client);
        const key = stateKey('kv-payments-prod', 'big');
        // Non-ASCII and a surrogate pair right at a property boundary.
        const text = `${'é'.repeat(PROPERTY_CHARS - 3)}😀${'x'.repeat(150_000)}`;
        const created = await store.put(key, { text }, undefined, 1);
        expect(created.ok).toBe(true);
        const [read] = await store.getMany([key]);
        expect(read?.value).toEqual({ text });
        const at = tableKeysOf(key);
        const entity = await client.getEntity<Record<string, unknown>>(at.partitionKey, at.rowKey);
        expect(Object.keys(entity).filter((k) => /^v\d*$/.test(k))).toEqual(['v', 'v1', 'v2', 'v3', 'v4', 'v5']);

        const updated = await store.put(key, { text: 'small' }, read?.etag, 1);
        expect(updated.ok).toBe(true);
        const [small] = await store.getMany([key]);
        expect(small?.value).toEqual({ text: 'small' });
        const after = await client.getEntity<Record<string, unknown>>(at.partitionKey, at.rowKey);
        expect(Object.keys(after).filter((k) => /^v\d*$/.test(k))).toEqual(['v']);
        const [scanned] = await store.scan('big', 10);
        expect(scanned?.value).toEqual({ text: 'small' });
    });

    it('refuses state over one entity with STATE.TOO_LARGE (not retryable), and keeps long keys within the key limit', async () => {
        const store = new TableStateStore(tableClient());
        await expect(
            store.put(stateKey('kv-payments-prod', 'huge'), { text: 'x'.repeat(600_000) }, undefined, 1),
        ).rejects.toMatchObject({ code: 'STATE.TOO_LARGE', retryable: false });
        const longKey = stateKey(`principal~${'p/'.repeat(4000)}`, `group|rule|${'#?'.repeat(4000)}`);
        const r = await store.put(longKey, { n: 1 }, undefined, 1);
        expect(r.ok).toBe(true);
        const [back] = await store.getMany([longKey]);
        expect(back?.value).toEqual({ n: 1 });
    });

    it('a rule whose state the store refuses yields an error decision; the other rules of the batch still report', async () => {
        const hoarder: StatefulRule<{ blob: string }> = {
            kind: 'stateful',
            meta: { ...honeytokenAccessed.meta, id: 'hoarder', severity: 'low' },
            operations: undefined,
            stateKey: (e) => stateKey(e.vault.name, 'hoarder'),
            stateTtlMs: () => 60_000,
            evaluate: (e, _ctx, state) => ({
                findings: [{ summary: `hoarded ${e.operation}` }],
                state: { blob: `${state?.blob ?? ''}${'z'.repeat(700_000)}` },
            }),
        };
        const engine = new DetectionEngine({
            rules: [hoarder, honeytokenAccessed],
            settings: config.detection,
            store: new TableStateStore(tableClient()),
        });
        const normalizer = new RecordNormalizer();
        const events = (batch() as { records: unknown[] }).records.slice(4).map((r): AuditEvent => {
            const n = normalizer.normalize(r);
            if (n.kind !== 'event') throw new Error(`fixture not an event: ${JSON.stringify(n)}`);
            return n.event;
        });
        const out: Decision[] = await engine.evaluate(events);
        const honey = out.find((d) => d.type === 'finding' && d.rule === 'honeytoken-accessed');
        expect(honey).toBeDefined();
        const errors = out.filter((d) => d.type === 'error');
        expect(errors.map((e) => e.rule)).toEqual(['hoarder', 'hoarder']);
        expect(errors[0]).toMatchObject({
            message: expect.stringMatching(
                /^rule hoarder: state not saved, state kv-[a-z-]+\/hoarder is \d+ characters of JSON/,
            ),
        });
    });
});

/** Every fixture record, with the strings a caller controls at the longest length the normalizer accepts. */
describe('no record within the input limits takes a stored entity past Table Storage limits (Azurite)', () => {
    const FIXTURES = [
        'key-backup-success.json',
        'key-unwrap-forbidden-storage-cmk.json',
        'secret-get-forbidden.json',
        'secret-get-success.json',
        'secret-purge-success.json',
        'vault-get-resource-graph.json',
        'vault-patch-access-policy-added.json',
        'vault-patch-access-policy-removed.json',
        'vault-patch-firewall-allow.json',
        'vault-patch-ip-rule-added.json',
        'vault-patch-public-network-enabled.json',
        'vault-patch-rbac-disabled.json',
        'vault-throttled.json',
    ];
    /** A string of exactly MAX_FIELD_CHARS characters starting with `tag`. */
    const long = (tag: string, max = MAX_FIELD_CHARS): string => `${tag}-`.padEnd(max, 'x');

    /** Variant `i` of a record: ids that vary per variant (so state accumulates), the caller fixed or varying. */
    function inflate(r: Record<string, unknown>, i: number, callerVaries: boolean): Record<string, unknown> {
        const who = callerVaries ? `caller${i}` : 'caller';
        r.time = new Date(Date.UTC(2026, 9, 5, 10, 0, 0) + i * 2_000).toISOString();
        const claims = (r.identity as { claim?: Record<string, unknown> } | undefined)?.claim ?? {};
        for (const k of Object.keys(claims))
            if (typeof claims[k] === 'string' && /oid|objectidentifier|upn|appid|mirid|unique_name/.test(k))
                claims[k] = long(`${who}-${k}`).toLowerCase();
        // A varying caller fills the per-key lists of services (the CMK inventory): only the caller needs to be long.
        if (callerVaries) return r;
        r.correlationId = long(`corr${i}`);
        r.resultDescription = long(`desc${i}`);
        const p = r.properties as Record<string, unknown>;
        p.clientInfo = long(`agent${i}`);
        const id = String(p.id);
        const m = /^(https:\/\/[^/]+\/(?:secrets|keys|certificates|deletedsecrets)\/)([^/]+)(\/[^/]+)?$/.exec(id);
        if (m !== null) {
            const version = m[3] === undefined ? '' : `/${long(`v${i % 30}`, 200)}`;
            p.id = `${m[1]}${long(`name${i}`, MAX_FIELD_CHARS - (m[1]?.length ?? 0) - version.length)}${version}`;
        }
        for (const change of ['addedAccessPolicy', 'removedAccessPolicy']) {
            const entry = p[change] as { ObjectId?: string } | undefined;
            if (entry !== undefined) entry.ObjectId = long(`grantee${i}`).toLowerCase();
        }
        return r;
    }

    it('every rule, 200+ variants of every fixture: every state fits, no batch fails, no rule errors', async () => {
        const client = tableClient();
        const store = new TableStateStore(client);
        const decoyConfig = parseResponderConfig(
            {
                decoys: [{ name: 'name0-'.padEnd(40, 'x') }],
                baseline: { learningDays: 0 },
            },
            ruleIds,
            'bounded-all',
        );
        const decisions = new MemoryDecisionSink();
        const quarantine = new MemoryQuarantineSink();
        const pipeline = createPipeline(decoyConfig, { decisions, quarantine }, { acceptBareRecords: false, store });
        let batch: unknown[] = [];
        // Enough variants to fill every cap: 200 grants of a vault, 200 services of a CMK key (a varying caller),
        // 20 correlation ids of a finding, the window lists of the default thresholds.
        const plan: [string, number, boolean][] = [
            ...FIXTURES.map((f): [string, number, boolean] => [
                f,
                f === 'vault-patch-access-policy-added.json' ? 205 : 24,
                false,
            ]),
            ['key-unwrap-forbidden-storage-cmk.json', 205, true],
        ];
        for (const [fixture, variants, callerVaries] of plan)
            for (let i = 0; i < variants; i++) {
                batch.push(inflate(fixtureRecord(fixture), i, callerVaries));
                if (batch.length === 40) {
                    await pipeline.processBatch([{ body: { records: batch } }]);
                    batch = [];
                }
            }
        if (batch.length > 0) await pipeline.processBatch([{ body: { records: batch } }]);

        // Every variant is a valid record: none was rejected.
        expect(pipeline.stats.events).toBe(698);
        expect(decisions.decisions.filter((d) => d.type === 'error')).toEqual([]);
        expect(decisions.decisions.filter((d) => d.type === 'finding').length).toBeGreaterThan(50);
        let entities = 0;
        let split = 0;
        for await (const e of client.listEntities<Record<string, unknown>>()) {
            entities++;
            expect(String(e.partitionKey).length + String(e.rowKey).length).toBeLessThanOrEqual(1024);
            let chars = 0;
            for (const [k, v] of Object.entries(e))
                if (/^v\d*$/.test(k) && typeof v === 'string') {
                    expect(v.length).toBeLessThanOrEqual(PROPERTY_CHARS);
                    chars += v.length;
                    if (k !== 'v') split++;
                }
            expect(2 * chars).toBeLessThan(1024 * 1024);
        }
        expect(entities).toBeGreaterThan(100);
        // Some state (the grants of one vault, the CMK inventory) needed more than one property.
        expect(split).toBeGreaterThan(0);
    }, 300_000);
});
