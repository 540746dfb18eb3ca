// Customer-managed key assurance through the CLI: the live inventory, cmk-disabled-in-use before any
// cmk-access-denied, and `kvr cmk-report`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { HttpRequest, type Timer } from '@azure/functions';
import { LocalLinkSigner } from '../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { LinkTokens } from '../shared/app/alerting';
import { createResponder } from '../shared/app/createPipeline';
import { handleCmkReport, handleCmkWeekly } from '../shared/app/handlers/handleCmkReport';
import { parseResponderConfig } from '../shared/config/responderConfig';
import { ruleIds } from '../shared/core/rules';
import { validateTeamsWebhookMessage } from './support/adaptiveCard';
import { RecordingChannel, TestClock } from './support/alertingDoubles';
import { makeContext } from './support/context';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStateStore } from '../shared/adapters/memoryStateStore';
import { dependentsOf, inventoryKeyOf, type KeyInventory, recordKeyUse } from '../shared/core/cmk/inventory';
import { reportRows } from '../shared/core/cmk/report';
import { RecordNormalizer } from '../shared/core/events/normalize';
import type { AuditEvent } from '../shared/core/events/types';
import { decisionsOf, runKvr } from './support/cli';

const FIXTURE = join(__dirname, 'fixtures', 'rules', 'cmk-disabled-in-use', 'fires.disable-version-in-use.json');
const STORAGE =
    '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourcegroups/rg-payments/providers/microsoft.storage/storageaccounts/stpaymentsprod';
const DES =
    '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourcegroups/rg-payments/providers/microsoft.compute/diskencryptionsets/des-payments';

describe('kvr replay: a key in use is disabled', () => {
    it('reports cmk-disabled-in-use naming the storage account and the disk encryption set, before any cmk-access-denied', async () => {
        const r = await runKvr('replay', FIXTURE);
        expect(r.code).toBe(0);
        const findings = decisionsOf(r.stdout).filter((d) => d.type === 'finding');
        expect(findings.map((f) => f.rule)).toEqual(['cmk-disabled-in-use', 'cmk-access-denied', 'cmk-access-denied']);
        const [disabled] = findings;
        expect(disabled?.severity).toBe('critical');
        expect(String(disabled?.summary)).toMatch(/disabled key cmk-storage version 0f1e2d3c/);
        expect(String(disabled?.summary)).toContain('stpaymentsprod');
        expect(String(disabled?.summary)).toContain('des-payments');
        expect((disabled?.dependents as { service: string }[]).map((d) => d.service).sort()).toEqual([DES, STORAGE]);
        expect(Date.parse(String(disabled?.time))).toBeLessThan(Date.parse(String(findings[1]?.time)));
    });
});

describe('kvr cmk-report', () => {
    let work: string;
    beforeEach(() => {
        work = mkdtempSync(join(tmpdir(), 'kvr-cmk-'));
    });
    afterEach(() => rmSync(work, { recursive: true, force: true }));

    it('lists which services depend on which key versions, failing ones first (table and JSON)', async () => {
        const table = await runKvr('cmk-report', FIXTURE);
        expect(table.code).toBe(0);
        const lines = table.stdout.trim().split('\n');
        expect(lines[0]).toMatch(/^STATUS\s+VAULT\s+KEY\s+VERSION\s+SERVICE/);
        expect(lines.slice(1)).toHaveLength(2);
        expect(lines.slice(1).every((l) => l.startsWith('failing  kv-payments-prod  cmk-storage'))).toBe(true);
        expect(table.stdout).toContain('stpaymentsprod (microsoft.storage/storageaccounts)');
        expect(table.stdout).toContain('Operation unwrapKey is not allowed on a disabled key.');

        const decisions = join(work, 'decisions.jsonl');
        const json = await runKvr('cmk-report', '--json', '--decisions', decisions, FIXTURE);
        expect(json.code).toBe(0);
        const report = JSON.parse(json.stdout) as { asOf: string; rows: Record<string, unknown>[] };
        expect(report.asOf).toBe('2026-10-05T09:13:00.000Z');
        expect(
            report.rows.map((r) => [r.serviceId, r.status, r.successMinutes, r.failureMinutes, r.lastFailureStatus]),
        ).toEqual([
            [DES, 'failing', 1, 1, 403],
            [STORAGE, 'failing', 1, 1, 403],
        ]);
    });

    it('needs captures or --state', async () => {
        const r = await runKvr('cmk-report');
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('cmk-report needs captures to replay, or --state');
    });
});

describe('the inventory', () => {
    const normalizer = new RecordNormalizer();
    const event = (over: Record<string, unknown>): AuditEvent => {
        const base = {
            time: '2026-10-05T09:00:00.0000000Z',
            category: 'AuditEvent',
            operationName: 'KeyUnwrap',
            correlationId: 'c-1',
            callerIpAddress: '20.60.12.5',
            identity: {
                claim: {
                    oid: 'e5e5e5e5-0000-4000-8000-0000000000e1',
                    appid: 'e6e6e6e6-0000-4000-8000-0000000000e2',
                    xms_mirid: STORAGE,
                },
            },
            properties: { id: 'https://kv-payments-prod.vault.azure.net/keys/cmk-storage/v1', httpStatusCode: 200 },
            resourceId:
                '/SUBSCRIPTIONS/6C1F4E2A-8B3D-4F5E-A1C2-9D8E7F6A5B40/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD',
            resultSignature: 'OK',
            ...over,
        };
        const r = normalizer.normalize(base);
        if (r.kind !== 'event') throw new Error(`not an event: ${JSON.stringify(r)}`);
        return r.event;
    };

    it('counts minutes of use once (a redelivered record changes nothing), keeps last success and last failure', () => {
        let s: KeyInventory | undefined;
        const first = event({});
        s = recordKeyUse(s, first);
        expect(recordKeyUse(s, first)).toBe(s); // redelivered
        s = recordKeyUse(
            s,
            event({
                correlationId: 'c-2',
                time: '2026-10-05T10:00:00.0000000Z',
                properties: { id: 'https://kv-payments-prod.vault.azure.net/keys/cmk-storage/v1', httpStatusCode: 403 },
                resultSignature: 'Forbidden',
                resultDescription: 'Operation unwrapKey is not allowed on a disabled key.',
            }),
        );
        const use = s?.versions.find((v) => v.version === 'v1')?.services.find((u) => u.id === STORAGE);
        expect(use).toMatchObject({
            successMinutes: 1,
            failureMinutes: 1,
            lastSuccessMs: Date.parse('2026-10-05T09:00:00Z'),
        });
        expect(use?.lastFailure).toEqual({
            timeMs: Date.parse('2026-10-05T10:00:00Z'),
            status: 403,
            description: 'Operation unwrapKey is not allowed on a disabled key.',
        });
        const since = (days: number) => Date.parse('2026-10-05T09:00:00Z') - days * 86_400_000;
        expect(dependentsOf(s, 'v1', since(0)).map((d) => d.name)).toEqual(['stpaymentsprod']);
        expect(dependentsOf(s, 'v2', since(0))).toEqual([]);
        expect(dependentsOf(s, 'v1', since(-1))).toEqual([]);
        expect(reportRows(s === undefined ? [] : [s], Date.parse('2026-10-05T10:00:00Z'), 86_400_000)[0]?.status).toBe(
            'failing',
        );
    });

    it('does not count people or anonymous callers as dependencies', () => {
        const person = event({
            identity: {
                claim: {
                    oid: 'b0b00000-0000-4000-8000-0000000000b0',
                    upn: 'bob@contoso.example',
                    appid: 'c44b4083-3bb0-49c1-b47d-974e53cbdf3c',
                },
            },
        });
        expect(recordKeyUse(undefined, person)).toBeUndefined();
    });

    it('lives in the state store under the vault and key (what the report scans)', async () => {
        const store = new MemoryStateStore();
        const s = recordKeyUse(undefined, event({}));
        await store.put(inventoryKeyOf('kv-payments-prod', 'CMK-Storage'), s, undefined, Number.MAX_SAFE_INTEGER);
        expect((await store.scan('cmk|', 10)).map((e) => e.key.row)).toEqual(['cmk|cmk-storage']);
    });
});

describe('the report in the running app', () => {
    async function deployed() {
        const store = new MemoryStateStore();
        const clock = new TestClock(Date.parse('2026-10-05T10:00:00Z'));
        const teams = new RecordingChannel('teams');
        const email = new RecordingChannel('email');
        const config = parseResponderConfig(
            {
                alerting: {
                    rosters: { default: { tiers: [{ name: 'platform', email: ['platform@contoso.example'] }] } },
                },
            },
            ruleIds,
            'cmk-report-test',
        );
        const { pipeline, alerting } = createResponder(
            config,
            { decisions: new MemoryDecisionSink(), quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: true,
                store,
                clock,
                alerting: {
                    channels: { teams, email },
                    mailFrom: 'kvr@contoso.example',
                    links: new LinkTokens(LocalLinkSigner.generate(), 'https://kvr.example.net', 3_600_000, clock),
                    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
                },
            },
        );
        await pipeline.processBatch([{ body: JSON.parse(readFileSync(FIXTURE, 'utf8')) }]);
        if (alerting === undefined) throw new Error('no alerting');
        teams.sent.length = 0;
        email.sent.length = 0;
        const deps = { store, settings: config.cmk, alerting, now: () => Date.parse('2026-10-05T10:00:00Z') };
        return { deps, teams, email };
    }

    it('serves the report as JSON and as a table (GET /api/cmk/report)', async () => {
        const { deps } = await deployed();
        const { context } = makeContext();
        const json = await handleCmkReport(
            new HttpRequest({ method: 'GET', url: 'https://x/api/cmk/report' }),
            context,
            deps,
        );
        expect(json.status).toBe(200);
        const body = json.jsonBody as { keys: number; rows: { serviceId: string; status: string }[] };
        expect(body.keys).toBe(1);
        expect(body.rows.map((r) => [r.serviceId, r.status])).toEqual([
            [DES, 'failing'],
            [STORAGE, 'failing'],
        ]);
        const table = await handleCmkReport(
            new HttpRequest({
                method: 'GET',
                url: 'https://x/api/cmk/report?format=table',
                query: { format: 'table' },
            }),
            context,
            deps,
        );
        expect(table.body as string).toMatch(/^STATUS\s+VAULT/);
    });

    it('sends the weekly summary to Teams and the first tier of the default roster', async () => {
        const { deps, teams, email } = await deployed();
        await handleCmkWeekly({} as Timer, makeContext().context, deps);
        const card = teams.sent[0];
        if (card?.channel !== 'teams') throw new Error('no card');
        expect(validateTeamsWebhookMessage(card.teams)).toEqual([]);
        expect(JSON.stringify(card.teams)).toContain('0 dependency(ies) in use, 2 failing');
        const mail = email.sent[0];
        if (mail?.channel !== 'email') throw new Error('no email');
        expect(mail.email.to).toEqual(['platform@contoso.example']);
        expect(mail.email.text).toContain('stpaymentsprod');
    });
});
