/**
 * Issue 13: the state layer changed (Table state in hashed PartitionKeys written as transactions, an instance-local
 * cache for detection reads, daily baseline refresh, a compact in-memory store) and detection must not. The rule corpus
 * and the bundled sample day go through the pipeline with in-memory state and with Table state on Azurite: the
 * decisions are the same, and the same as those of the code before the change (test/fixtures/state/
 * decisions-before.json, made with test/support/decisionRun.ts at commit 68881b5: main with the rule changes merged
 * beside it (firewall-opened on the transition, the issue 15 actions) and the state layer before the change; the first
 * digests, from 3522ccd, predate those rule changes). And two instances updating the
 * same baselines from different partitions at once lose no principal.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TableClient } from '@azure/data-tables';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import {
    MAX_PACK_KEYS,
    packRowKeyOf,
    TableStateStore,
    type TableStateStoreOptions,
} from '../../shared/adapters/tableStateStore';
import { createPipeline } from '../../shared/app/createPipeline';
import { parseResponderConfig, parseResponderConfigText } from '../../shared/config/responderConfig';
import type { FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import { stateKey } from '../../shared/core/state/store';
import { CountingStateStore } from '../../bench/countingStateStore';
import { useAzuriteTables } from '../support/azurite';
import { decisionsOf, demoConfig, digestOf, sampleDayBatches } from '../support/decisionRun';
import { fixtureRecord } from '../support/fixtures';

const azurite = useAzuriteTables('kvreq');

const client = (name: string): TableClient => azurite.client(name);

function newTable(options: TableStateStoreOptions = {}): TableStateStore {
    return new TableStateStore(client(azurite.newName()), options);
}

const before = JSON.parse(
    readFileSync(join(__dirname, '..', 'fixtures', 'state', 'decisions-before.json'), 'utf8'),
) as { sampleDay: ReturnType<typeof digestOf>; corpus: Record<string, string> };

describe('detection results are the same before and after the state layer change', () => {
    it('the sample day: in-memory state as before, Table state (Azurite) the same decisions', async () => {
        const batches = sampleDayBatches(20);
        const memory = await decisionsOf(demoConfig(), new MemoryStateStore(), batches);
        expect(digestOf(memory)).toEqual(before.sampleDay);
        const table = await decisionsOf(demoConfig(), newTable(), batches);
        expect(table).toEqual(memory);
    }, 300_000);

    it('the rule corpus, each fixture delivered twice: in-memory state as before, Table state the same', async () => {
        const DIR = join(__dirname, '..', 'fixtures', 'rules');
        const config = parseResponderConfigText(
            readFileSync(join(DIR, 'corpus-config.json'), 'utf8'),
            ruleIds,
            'corpus-config.json',
        );
        const names = Object.keys(before.corpus);
        expect(names.length).toBeGreaterThan(90);
        const found = readdirSync(DIR, { withFileTypes: true })
            .filter((d) => d.isDirectory())
            .flatMap((d) =>
                readdirSync(join(DIR, d.name))
                    .filter((f) => f.endsWith('.json'))
                    .map((f) => `${d.name}/${f}`),
            );
        expect(found.sort()).toEqual([...names].sort());
        for (const name of names) {
            const text = readFileSync(join(DIR, name), 'utf8');
            const memory = await decisionsOf(config, new MemoryStateStore(), [[text], [text]]);
            expect({ name, sha256: digestOf(memory).sha256 }).toEqual({ name, sha256: before.corpus[name] });
            const table = await decisionsOf(config, newTable(), [[text], [text]]);
            expect({ name, table }).toEqual({ name, table: memory });
        }
    }, 300_000);
});

describe('two instances on one table (Azurite), updating the same baselines from different partitions', () => {
    const VAULTS = ['kv-alpha', 'kv-bravo', 'kv-charlie'];
    const appId = (who: string, n: number) => `a9a9a9a9-0000-4000-8000-${who}${String(n).padStart(11, '0')}`;

    /** A successful SecretGet by an application on a vault (the new-app-access baseline and the vault's meta). */
    function read(vault: string, app: string, minute: number, secret: string): Record<string, unknown> {
        const r = fixtureRecord('secret-get-success.json');
        r.time = new Date(Date.parse('2026-10-05T09:00:00Z') + minute * 60_000).toISOString();
        r.correlationId = `${vault}-${app}-${minute}-${secret}`;
        r.resourceId = (r.resourceId as string).replace('KV-PAYMENTS-PROD', vault.toUpperCase());
        (r.identity as { claim: Record<string, unknown> }).claim.appid = app;
        (r.identity as { claim: Record<string, unknown> }).claim.oid = app;
        const props = r.properties as Record<string, unknown>;
        props.id = `https://${vault}.vault.azure.net/secrets/${secret}`;
        props.requestUri = `https://${vault}.vault.azure.net/secrets/${secret}?api-version=7.4`;
        return r;
    }

    it('every principal either instance saw is in the baseline, and the vault first-seen is the earliest of both', async () => {
        const config = parseResponderConfig({ baseline: { learningDays: 1 } }, ruleIds, 'two-instances');
        const table = azurite.newName();
        // Each instance its own client and cache; the caches never refresh within the test, so each works on a stale
        // copy of what the other wrote: only the compare-and-set writes can keep both instances' principals.
        const instances = ['1', '2'].map((who) => {
            const store = new CountingStateStore(new TableStateStore(client(table), { cacheValidityMs: 3_600_000 }));
            const decisions = new MemoryDecisionSink();
            const pipeline = createPipeline(
                config,
                { decisions, quarantine: new MemoryQuarantineSink() },
                { acceptBareRecords: false, store },
            );
            return { who, store, decisions, pipeline };
        });
        // Ten rounds; in each, both instances process a batch at once: 3 vaults x 8 new apps of their own, and 4 apps
        // both see (the same keys written from both sides).
        const seen = new Map<string, Set<string>>(VAULTS.map((v) => [v, new Set<string>()]));
        for (let round = 0; round < 10; round++) {
            await Promise.all(
                instances.map((inst, k) => {
                    const records: Record<string, unknown>[] = [];
                    for (const vault of VAULTS) {
                        for (let i = 0; i < 8; i++) {
                            const app = appId(inst.who, round * 8 + i);
                            records.push(read(vault, app, round * 2 + k, `s${i}`));
                            seen.get(vault)?.add(app);
                        }
                        for (let i = 0; i < 4; i++) {
                            const app = appId('0', round * 4 + i);
                            records.push(read(vault, app, round * 2 + (1 - k), `s${i}`));
                            seen.get(vault)?.add(app);
                        }
                    }
                    return inst.pipeline.processBatch([{ body: JSON.stringify({ records }) }]);
                }),
            );
        }
        for (const inst of instances) expect(inst.pipeline.stats.rejected).toBe(0);
        const counts = instances.map((i) => i.store.take());
        // The stale caches did collide: some writes lost their compare-and-set and were redone.
        expect(counts.reduce((n, c) => n + c.conflicts, 0)).toBeGreaterThan(0);

        const fresh = new TableStateStore(client(table));
        for (const vault of VAULTS) {
            const apps = [...(seen.get(vault) ?? [])];
            expect(apps).toHaveLength(10 * (2 * 8 + 4));
            const stored = await fresh.getMany(apps.map((a) => stateKey(vault, `app|${a}`)));
            const missing = apps.filter((_, i) => stored[i] === undefined);
            expect({ vault, missing }).toEqual({ vault, missing: [] });
            const [meta] = await fresh.getMany([stateKey(vault, 'meta')]);
            expect(meta?.value).toEqual({ first: Date.parse('2026-10-05T09:00:00Z') });
        }
        // The baselines, windows and first-seen times of each vault are packed into one entity per vault (each key a
        // property with its own version): both instances wrote the same three packs at once, so the packs' own
        // compare-and-set (412, read again, re-apply the keys that did not change) is what kept every principal.
        const raw = client(table);
        const packs: Record<string, unknown>[] = [];
        for await (const e of raw.listEntities<Record<string, unknown>>())
            if (VAULTS.includes(String(e.pp))) packs.push(e);
        expect(packs.map((e) => e.rowKey).sort()).toEqual(VAULTS.map((v) => packRowKeyOf(v)).sort());
        for (const e of packs) {
            const keys = Object.keys(e).filter((p) => /^k[0-9a-f]{16}$/.test(p));
            // 200 apps and the vault's own keys, 200 at most in a pack: the rest overflowed into entities of their own.
            expect(keys.length).toBe(MAX_PACK_KEYS);
            expect(e.full).toBe(true);
        }
        // Still learning (one day): nobody reported a new application.
        const findings = instances
            .flatMap((i) => i.decisions.decisions)
            .filter((d): d is FindingDecision => d.type === 'finding' && d.rule === 'new-app-access');
        expect(findings).toEqual([]);
    }, 120_000);
});
