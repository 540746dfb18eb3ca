// `kvr doctor` end to end against the local fakes: the ARM simulator over HTTPS with the test CA (vaults through the
// real @azure/arm-keyvault client; permissions, diagnostic settings and Event Hubs through armMonitorRoutes), Azurite
// for Table and Blob, the Key Vault keys fake for each vault's data plane and the signing key, and the Teams and Graph
// fakes. Everything passes first; then each check is broken in turn and exactly that check fails, with its fix.
import { ACTION_PERMISSIONS } from '../../shared/core/remediation/types';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { HttpRequest } from '@azure/functions';
import { Agent, fetch } from 'undici';
import { BlobServiceClient } from '@azure/storage-blob';
import { type ComposedDoctor, composeDoctor, type DoctorTransport } from '../../shared/app/composeDoctor';
import { FIREWALL_FIX, KEY_VAULT_REFERENCE_FIX } from '../../shared/app/doctor';
import { handleDoctor } from '../../shared/app/handlers/handleDoctor';
import { HEARTBEAT_KEY, IngestHeartbeat } from '../../shared/app/heartbeat';
import { TableStateStore, tableKeysOf } from '../../shared/adapters/tableStateStore';
import { runDoctorCommand } from '../../shared/cli/doctor';
import type { CheckResult, DoctorReport } from '../../shared/core/doctor/report';
import { type ArmMonitorRoutes, armMonitorRoutes } from '../../shared/simulation/armMonitorRoutes';
import { type ArmKeyVaultFake, makeVault, startArmKeyVaultFake } from '../../shared/simulation/armSimulator';
import {
    type KeyVaultKeysFake,
    keysClientOptionsFor,
    startKeyVaultKeysFake,
} from '../../shared/simulation/keyVaultKeysFake';
import {
    type GraphFake,
    type TeamsWorkflowsFake,
    startGraphFake,
    startTeamsWorkflowsFake,
} from '../../shared/simulation/notificationFakes';
import { getTestCa } from '../../shared/simulation/selfSignedCa';
import { StubTokenCredential } from '../fakes/armClient';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { runKvr } from '../support/cli';
import { makeContext } from '../support/context';
import { tempDir } from '../support/tempDirs';

jest.setTimeout(60_000);

// One bearer token for every fake. A JWT, because Azurite's OAuth mode ("basic") checks the claims of Storage tokens
// (audience, issuer, lifetime), though not the signature.
const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const NOW_S = Math.floor(Date.now() / 1000);
const TOKEN = `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url({
    aud: 'https://storage.azure.com',
    iss: 'https://sts.windows.net/00000000-0000-0000-0000-0000000000aa/',
    iat: NOW_S - 60,
    nbf: NOW_S - 60,
    exp: NOW_S + 3 * 3600,
    oid: '00000000-0000-0000-0000-0000000000c1',
})}.c2lnbmF0dXJl`;
const SUB = '00000000-0000-0000-0000-000000000001';
const NS_ID = `/subscriptions/${SUB}/resourceGroups/rg-kvr/providers/Microsoft.EventHub/namespaces/kvr-ns`;
const HUB = 'insights-logs-auditevent';
const HUB_ID = `${NS_ID}/eventhubs/${HUB}`;
const CG_ID = `${HUB_ID}/consumergroups/kv-responder`;
const RULE_ID = `${NS_ID}/authorizationrules/kvr-diagnostics-send`;
/** What the templates' custom remediation role grants: exactly the actions remediation uses (test/infra.test.ts). */
const REMEDIATION_ROLE = [...new Set(Object.values(ACTION_PERMISSIONS).flat())];
const AUDIT_TO_OUR_HUB = {
    name: 'kv-responder',
    eventHubAuthorizationRuleId: RULE_ID,
    eventHubName: HUB,
    logs: [{ categoryGroup: 'audit', enabled: true }],
};

class Capture extends Writable {
    text = '';
    override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
        this.text += chunk.toString();
        done();
    }
}

/** azurite-queue over HTTPS (the test CA's certificate) with OAuth: the queue probe sends Entra ID bearer tokens. */
async function startQueueEmulator(): Promise<{ url: string; stop(): Promise<void> }> {
    const { certPem, keyPem } = await getTestCa();
    const dir = tempDir('kvr-doctor-queue-');
    writeFileSync(join(dir, 'cert.pem'), certPem);
    writeFileSync(join(dir, 'key.pem'), keyPem);
    const port = await new Promise<number>((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const a = server.address();
            server.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
        });
    });
    const child: ChildProcess = spawn(
        join(__dirname, '..', '..', 'node_modules', '.bin', 'azurite-queue'),
        [
            ...['--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck', '--oauth', 'basic'],
            ...['--cert', join(dir, 'cert.pem'), '--key', join(dir, 'key.pem')],
            ...['--queueHost', '127.0.0.1', '--queuePort', String(port)],
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await new Promise<void>((resolve, reject) => {
        let output = '';
        const timer = setTimeout(() => reject(new Error(`azurite-queue did not start: ${output}`)), 30_000);
        const onData = (c: Buffer) => {
            output += c.toString();
            if (!/successfully (?:listens|started)/.test(output)) return;
            clearTimeout(timer);
            resolve();
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onData);
        child.once('exit', (code) => reject(new Error(`azurite-queue exited with ${String(code)}: ${output}`)));
    }).catch((err: unknown) => {
        child.kill('SIGKILL');
        throw err;
    });
    child.removeAllListeners('exit');
    return {
        url: `https://127.0.0.1:${port}/devstoreaccount1`,
        // Azurite waits for open connections on SIGTERM: SIGKILL it if it has not gone after two seconds.
        stop: () =>
            new Promise<void>((done) => {
                if (child.exitCode !== null || child.signalCode !== null) return done();
                const force = setTimeout(() => child.kill('SIGKILL'), 2_000);
                child.once('exit', () => {
                    clearTimeout(force);
                    done();
                });
                child.kill();
            }),
    };
}

let queues: { url: string; stop(): Promise<void> };
let queueAgent: Agent;
let arm: ArmKeyVaultFake;
let monitor: ArmMonitorRoutes;
let kvEnforced: KeyVaultKeysFake;
let kvMonitored: KeyVaultKeysFake;
let kvSigning: KeyVaultKeysFake;
let teams: TeamsWorkflowsFake;
let graph: GraphFake;
let blobs: AzuriteService;
let tables: AzuriteService;
let transport: DoctorTransport;
let env: Record<string, string>;
let enforcedId: string;
let monitoredId: string;

beforeAll(async () => {
    [kvEnforced, kvMonitored, kvSigning, teams, graph, blobs, tables] = await Promise.all([
        startKeyVaultKeysFake({ token: TOKEN, keys: [{ name: 'cmk-app' }] }),
        startKeyVaultKeysFake({ token: TOKEN }),
        startKeyVaultKeysFake({ token: TOKEN, keys: [{ name: 'ack-signing' }] }),
        startTeamsWorkflowsFake(),
        startGraphFake({ token: TOKEN }),
        startAzurite('blob'),
        startAzurite('table'),
    ]);
    queues = await startQueueEmulator();
    queueAgent = new Agent({ connect: { ca: (await getTestCa()).caPem } });
    const created = await fetch(`${queues.url}/kvr-reconcile`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TOKEN}`, 'x-ms-version': '2023-11-03' },
        dispatcher: queueAgent,
    });
    expect([created.status, await created.text()]).toEqual([201, '']);
    const enforced = makeVault({
        name: 'kv-payments',
        properties: { vaultUri: `${kvEnforced.vaultUrl}/`, networkAcls: { defaultAction: 'Deny', bypass: 'None' } },
    });
    const monitored = makeVault({
        name: 'kv-sandbox',
        properties: { vaultUri: `${kvMonitored.vaultUrl}/`, enableRbacAuthorization: true },
    });
    enforcedId = enforced.id;
    monitoredId = monitored.id;
    monitor = armMonitorRoutes();
    arm = await startArmKeyVaultFake({ vaults: [enforced, monitored], extraRoutes: [monitor.route] });
    await TableServiceClient.fromConnectionString(tables.connectionString, {
        allowInsecureConnection: true,
    }).createTable('kvrstate');
    await BlobServiceClient.fromConnectionString(blobs.connectionString).getContainerClient('kvr-quarantine').create();
    transport = {
        credential: new StubTokenCredential(TOKEN),
        arm: { endpoint: arm.url, ca: arm.caPem },
        keyClientOptions: keysClientOptionsFor(kvEnforced),
        teamsCa: teams.caPem,
        graph: { baseUrl: graph.url, customHosts: [graph.host], ca: graph.caPem },
        storageCa: (await getTestCa()).caPem,
    };
    env = {
        KV_LOGS_EVENTHUB__fullyQualifiedNamespace: 'kvr-ns.servicebus.windows.net',
        KV_LOGS_HUB: HUB,
        KV_LOGS_CONSUMER_GROUP: 'kv-responder',
        KVR_EVENTHUB_NAMESPACE_ID: NS_ID,
        KVR_CONFIG: JSON.stringify({
            guardrails: {
                overrides: [
                    { match: { resourceId: enforced.id }, mode: 'enforce' },
                    { match: { resourceId: monitored.id }, mode: 'monitor' },
                ],
            },
            alerting: { rosters: { default: { tiers: [{ name: 'secops', email: ['secops@contoso.example'] }] } } },
        }),
        KVR_STATE: tables.connectionString,
        KVR_QUARANTINE_CONNECTION_STRING: blobs.connectionString,
        KVR_PUBLIC_URL: 'https://kvr.example.net',
        KVR_SIGNING_KEY_ID: `${kvSigning.vaultUrl}/keys/ack-signing`,
        KVR_TEAMS_WEBHOOK_URL: teams.webhookUrl,
        KVR_MAIL_SENDER: 'kvr-alerts@contoso.example',
        KVR_RECONCILE_QUEUE_URL: `${queues.url}/kvr-reconcile`,
    };
});

afterAll(async () => {
    await queueAgent?.close();
    await Promise.all(
        [arm, kvEnforced, kvMonitored, kvSigning, teams, graph]
            .map((f) => f?.close())
            .concat([blobs?.stop(), tables?.stop(), queues?.stop()]),
    );
});

/** The app's heartbeat, written as the batch handler writes it (into the Azurite state table). */
async function beat(atMs: number): Promise<void> {
    const client = TableClient.fromConnectionString(tables.connectionString, 'kvrstate', {
        allowInsecureConnection: true,
    });
    await client.deleteEntity(HEARTBEAT_KEY.partition, HEARTBEAT_KEY.row).catch(() => undefined);
    const hb = new IngestHeartbeat(new TableStateStore(client), { info: () => {}, warn: () => {}, error: () => {} });
    hb.beat(atMs, 1);
    await hb.flush();
}

/** The healthy installation: every resource in place, every grant given, a batch handled a minute ago. */
async function healthy(): Promise<void> {
    await beat(Date.now() - 60_000);
    monitor.revokeAll(`/subscriptions/${SUB}`);
    monitor.revokeAll(enforcedId);
    // Reader at the subscription, the remediation role on the enforced vault.
    monitor.grant(`/subscriptions/${SUB}`, { actions: ['*/read'] });
    monitor.grant(enforcedId, { actions: REMEDIATION_ROLE });
    monitor.setDiagnosticSettings(enforcedId, [AUDIT_TO_OUR_HUB]);
    monitor.setDiagnosticSettings(monitoredId, [
        // The policy's shape: no hub name (Azure Monitor picks insights-logs-auditevent), allLogs.
        {
            name: 'setByPolicy',
            eventHubAuthorizationRuleId: RULE_ID,
            logs: [{ categoryGroup: 'allLogs', enabled: true }],
        },
    ]);
    monitor.putResource(NS_ID, { status: 'Active' });
    monitor.putResource(HUB_ID, { partitionCount: 4, status: 'Active' });
    monitor.putResource(CG_ID, {});
    for (const f of [arm, kvEnforced, kvMonitored, kvSigning, teams, graph]) f.clearFaults();
    teams.clearLog();
    graph.clearLog();
}

beforeEach(() => healthy());

async function doctor(
    args: string[] = [],
    envOverrides: Record<string, string> = {},
    now?: () => number,
): Promise<{ code: number; out: string; report: DoctorReport }> {
    const compose = (e: Readonly<Record<string, string | undefined>>, o: { vaults?: readonly string[] }) => {
        const c: ComposedDoctor = composeDoctor(e, { ...o, transport, sendTimeoutMs: 5_000 });
        return now === undefined ? c : { ...c, now };
    };
    const fullEnv = { ...env, ...envOverrides };
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await runDoctorCommand(args, { stdout, stderr }, { env: fullEnv, compose });
    // The same run as JSON, to assert on rows.
    const json = new Capture();
    await runDoctorCommand([...args, '--json'], { stdout: json, stderr }, { env: fullEnv, compose });
    return { code, out: stdout.text, report: JSON.parse(json.text) as DoctorReport };
}

const rowsOf = (r: DoctorReport, status: CheckResult['status']) =>
    r.checks.filter((c) => c.status === status).map((c) => `${c.check} ${c.target}`);

const EXPECTED_SKIPS = ['vault-permissions kv-sandbox'];

describe('kvr doctor against the local fakes', () => {
    it('passes every check of a healthy installation and delivers the opt-in test notices', async () => {
        const { code, out, report } = await doctor(['--send-test-notice']);
        expect(rowsOf(report, 'fail')).toEqual([]);
        expect(code).toBe(0);
        expect(rowsOf(report, 'skip').sort()).toEqual([...EXPECTED_SKIPS].sort());
        expect(rowsOf(report, 'pass')).toEqual(
            expect.arrayContaining([
                'settings app settings',
                'vault-read kv-payments',
                'vault-permissions kv-payments',
                'vault-data-plane kv-payments',
                'diagnostic-setting kv-payments',
                'vault-read kv-sandbox',
                'vault-data-plane kv-sandbox',
                'diagnostic-setting kv-sandbox',
                'state-table connection string / kvrstate',
                'quarantine-blob connection string / kvr-quarantine',
                `reconcile-queue ${queues.url}/kvr-reconcile`,
                'event-hub insights-logs-auditevent',
                'consumer-group kv-responder',
                'event-hub-receiving insights-logs-auditevent',
                'teams-setting KVR_TEAMS_WEBHOOK_URL',
                'teams-delivery KVR_TEAMS_WEBHOOK_URL',
                'mail-setting KVR_MAIL_SENDER',
                'mail-delivery KVR_MAIL_SENDER',
                `signing-key ${env.KVR_SIGNING_KEY_ID}`,
            ]),
        );
        expect(out).toMatch(/^CHECK\s+TARGET\s+STATUS\s+DETAIL\s+FIX$/m);
        expect(out).toContain('passed, 0 failed');
        // Two runs (table and JSON), one notice per channel each; the mail went to the default roster's first tier.
        expect(teams.messages).toHaveLength(2);
        expect(graph.sent).toHaveLength(2);
        expect(graph.sent[0]).toMatchObject({ mailbox: 'kvr-alerts@contoso.example', to: ['secops@contoso.example'] });
        // Write permissions were read from the permissions API, never tried: no write reached the vaults.
        expect(arm.requests.filter((r) => r.method !== 'GET')).toEqual([]);
        expect(arm.requests.some((r) => r.path.endsWith('/providers/Microsoft.Authorization/permissions'))).toBe(true);
        // The probe message, entity and blob were deleted again (the count includes hidden messages).
        const meta = await fetch(`${queues.url}/kvr-reconcile?comp=metadata`, {
            headers: { authorization: `Bearer ${TOKEN}`, 'x-ms-version': '2023-11-03' },
            dispatcher: queueAgent,
        });
        expect(meta.headers.get('x-ms-approximate-messages-count')).toBe('0');
        const left = BlobServiceClient.fromConnectionString(blobs.connectionString)
            .getContainerClient('kvr-quarantine')
            .listBlobsFlat();
        expect((await left.next()).done).toBe(true);
    });

    it('skips the test notices unless asked, saying how to opt in', async () => {
        const { code, report } = await doctor();
        expect(code).toBe(0);
        const delivery = report.checks.filter((c) => c.check.endsWith('-delivery'));
        expect(delivery.map((c) => c.status)).toEqual(['skip', 'skip']);
        expect(delivery[0]?.detail).toContain('--send-test-notice');
        expect(teams.requests).toHaveLength(0);
        expect(graph.requests).toHaveLength(0);
    });

    /** Asserts that exactly one row failed, and that the printed table carries its fix. */
    async function expectOnlyFailure(
        run: Promise<{ code: number; out: string; report: DoctorReport }>,
        row: string,
        fix: string | RegExp,
    ): Promise<CheckResult> {
        const { code, out, report } = await run;
        expect(rowsOf(report, 'fail')).toEqual([row]);
        expect(code).toBe(1);
        const failed = report.checks.find((c) => c.status === 'fail') as CheckResult;
        if (typeof fix === 'string') expect(failed.fix).toContain(fix);
        else expect(failed.fix).toMatch(fix);
        const line = out.split('\n').find((l) => l.startsWith(failed.check) && l.includes(' FAIL '));
        expect(line).toBeDefined();
        // The two runs (table, JSON) may see a different error detail (a refused connection, or the timeout first on
        // a loaded machine): compare the fix up to its detail in parentheses.
        expect(line).toContain((failed.fix ?? '').split('(')[0]?.slice(0, 60));
        expect(out).toContain('1 failed');
        return failed;
    }

    it('a missing write permission on a vault in enforce scope', async () => {
        monitor.revokeAll(enforcedId);
        monitor.grant(enforcedId, {
            actions: [
                'Microsoft.KeyVault/vaults/*',
                'Microsoft.Authorization/roleAssignments/*',
                'Microsoft.Insights/diagnosticSettings/*',
            ],
            notActions: ['Microsoft.KeyVault/vaults/write'],
        });
        const failed = await expectOnlyFailure(
            doctor(),
            'vault-permissions kv-payments',
            'assign the kv-responder remediation role',
        );
        expect(failed.detail).toContain('lacks Microsoft.KeyVault/vaults/write');
        expect(failed.detail).not.toContain('accessPolicies/write');
    });

    it('a missing role-assignment delete or diagnostic-setting write on a vault in enforce scope (issue 15 actions)', async () => {
        monitor.revokeAll(enforcedId);
        monitor.grant(enforcedId, {
            actions: [...REMEDIATION_ROLE],
            notActions: [
                'Microsoft.Authorization/roleAssignments/delete',
                'Microsoft.Insights/diagnosticSettings/write',
            ],
        });
        const failed = await expectOnlyFailure(
            doctor(),
            'vault-permissions kv-payments',
            'assign the kv-responder remediation role',
        );
        expect(failed.detail).toContain(
            'lacks Microsoft.Authorization/roleAssignments/delete, Microsoft.Insights/diagnosticSettings/write',
        );
    });

    it('least privilege: an identity that can also grant roles or delete diagnostic settings gets a warning, not a failure', async () => {
        // The remediation role alone: no warning (the healthy run above has none).
        expect(rowsOf((await doctor()).report, 'warn')).toEqual([]);
        // A broader role next to it (Contributor-like on settings, User Access Administrator-like on assignments).
        monitor.grant(enforcedId, {
            actions: ['Microsoft.Authorization/roleAssignments/*', 'Microsoft.Insights/diagnosticSettings/*'],
        });
        const { code, out, report } = await doctor();
        expect(code).toBe(0);
        expect(rowsOf(report, 'fail')).toEqual([]);
        expect(rowsOf(report, 'warn')).toEqual(['vault-permissions kv-payments']);
        const row = report.checks.find((c) => c.status === 'warn') as CheckResult;
        expect(row.detail).toContain(
            'also Microsoft.Authorization/roleAssignments/write, Microsoft.Insights/diagnosticSettings/delete',
        );
        expect(row.fix).toContain('remove Microsoft.Authorization/roleAssignments/write and');
        expect(out).toMatch(/^vault-permissions\s+kv-payments\s+WARN\s/m);
        expect(out).toContain(', 1 warned: OK');
        // A notAction of that same role takes it back out: no warning.
        monitor.revokeAll(enforcedId);
        monitor.grant(enforcedId, { actions: REMEDIATION_ROLE });
        monitor.grant(enforcedId, {
            actions: ['Microsoft.Authorization/roleAssignments/*'],
            notActions: ['Microsoft.Authorization/*/write'],
        });
        expect(rowsOf((await doctor()).report, 'warn')).toEqual([]);
    });

    it('a vault firewall that keeps the app off the data plane', async () => {
        kvEnforced.inject({ status: 403, reason: 'firewall', times: 2 });
        const failed = await expectOnlyFailure(doctor(), 'vault-data-plane kv-payments', FIREWALL_FIX);
        expect(failed.fix).toContain('VNet integration + VNet rule, or private endpoint');
    });

    it('a vault with no diagnostic setting', async () => {
        monitor.setDiagnosticSettings(monitoredId, []);
        const failed = await expectOnlyFailure(
            doctor(),
            'diagnostic-setting kv-sandbox',
            "create a diagnostic setting on the vault with the 'audit' category group enabled",
        );
        expect(failed.detail).toBe('the vault has no diagnostic setting');
    });

    it('a diagnostic setting that sends to another hub', async () => {
        monitor.setDiagnosticSettings(enforcedId, [{ ...AUDIT_TO_OUR_HUB, eventHubName: 'insights-logs-other' }]);
        const failed = await expectOnlyFailure(
            doctor(),
            'diagnostic-setting kv-payments',
            `to event hub '${HUB}' of namespace 'kvr-ns'`,
        );
        expect(failed.detail).toContain("sends to hub 'insights-logs-other'");
    });

    it('a diagnostic setting that sends to another namespace', async () => {
        monitor.setDiagnosticSettings(enforcedId, [
            { ...AUDIT_TO_OUR_HUB, eventHubAuthorizationRuleId: RULE_ID.replace('kvr-ns', 'someone-elses-ns') },
        ]);
        const failed = await expectOnlyFailure(
            doctor(),
            'diagnostic-setting kv-payments',
            'create a diagnostic setting',
        );
        expect(failed.detail).toContain("sends to namespace 'someone-elses-ns'");
    });

    it('a diagnostic setting to our hub with AuditEvent disabled', async () => {
        monitor.setDiagnosticSettings(enforcedId, [
            { ...AUDIT_TO_OUR_HUB, logs: [{ category: 'AuditEvent', enabled: false }] },
        ]);
        await expectOnlyFailure(doctor(), 'diagnostic-setting kv-payments', "enable the 'audit' category group");
    });

    it('a missing consumer group', async () => {
        monitor.deleteResource(CG_ID);
        await expectOnlyFailure(doctor(), 'consumer-group kv-responder', "create consumer group 'kv-responder'");
    });

    it('an unreachable state table', async () => {
        // Azurite's table endpoint, one port off: nothing listens there.
        const port = Number(new URL(tables.endpoint).port);
        const gone = tables.connectionString.replace(`:${port}/`, `:${port === 65535 ? port - 1 : port + 1}/`);
        const failed = await expectOnlyFailure(
            doctor(['--timeout-seconds', '4'], { KVR_STATE: gone }),
            'state-table connection string / kvrstate',
            'Storage Table Data Contributor',
        );
        expect(failed.fix).toContain('check the setting, DNS and network rules');
    });

    it('a reconcile queue that does not exist', async () => {
        const failed = await expectOnlyFailure(
            doctor([], { KVR_RECONCILE_QUEUE_URL: `${queues.url}/kvr-missing` }),
            `reconcile-queue ${queues.url}/kvr-missing`,
            'the resource does not exist: create it',
        );
        expect(failed.detail).toContain('404');
    });

    it('skips the queue when no queue is configured, naming the setting', async () => {
        const { code, report } = await doctor([], { KVR_RECONCILE_QUEUE_URL: '' });
        expect(code).toBe(0);
        expect(report.checks.find((c) => c.check === 'reconcile-queue')).toMatchObject({
            status: 'skip',
            detail: 'no reconcile queue configured (KVR_RECONCILE_QUEUE_URL is not set)',
        });
    });

    it('an unresolved Key Vault reference for the Teams webhook', async () => {
        const failed = await expectOnlyFailure(
            doctor(['--send-test-notice'], {
                KVR_TEAMS_WEBHOOK_URL:
                    '@Microsoft.KeyVault(SecretUri=https://kv-kvr.vault.azure.net/secrets/teams-webhook/)',
            }),
            'teams-setting KVR_TEAMS_WEBHOOK_URL',
            KEY_VAULT_REFERENCE_FIX,
        );
        expect(failed.fix).toContain('keyVaultReferenceIdentity');
        expect(teams.requests).toHaveLength(0);
    });

    it('a Teams webhook that answers 4xx', async () => {
        const wrongSig = teams.webhookUrl.replace(/sig=[^&]+/, 'sig=revoked0signature');
        const failed = await expectOnlyFailure(
            doctor(['--send-test-notice'], { KVR_TEAMS_WEBHOOK_URL: wrongSig }),
            'teams-delivery KVR_TEAMS_WEBHOOK_URL',
            'copy the current URL from the Teams workflow',
        );
        expect(failed.detail).toContain('401');
        // The signature never reaches the report.
        expect(JSON.stringify(failed)).not.toContain('revoked0signature');
    });

    it('a missing signing key', async () => {
        kvSigning.removeKey('ack-signing');
        try {
            await expectOnlyFailure(
                doctor(),
                `signing-key ${env.KVR_SIGNING_KEY_ID}`,
                'create an RSA key with that name',
            );
        } finally {
            await kvSigning.setKey({ name: 'ack-signing' });
        }
    });

    it('an app that stopped receiving (its last batch is more than a day old)', async () => {
        const failed = await expectOnlyFailure(
            doctor([], {}, () => Date.now() + 2 * 86_400_000),
            'event-hub-receiving insights-logs-auditevent',
            'check the Event Hubs trigger',
        );
        expect(failed.detail).toMatch(/^no batch handled since \d{4}-/);
    });

    it('an app that never handled a batch yet is skipped, saying so', async () => {
        await TableClient.fromConnectionString(tables.connectionString, 'kvrstate', {
            allowInsecureConnection: true,
        }).deleteEntity(tableKeysOf(HEARTBEAT_KEY).partitionKey, tableKeysOf(HEARTBEAT_KEY).rowKey);
        const { code, report } = await doctor();
        expect(code).toBe(0);
        expect(report.checks.find((c) => c.check === 'event-hub-receiving')).toMatchObject({
            status: 'skip',
            detail: expect.stringContaining('no batch recorded yet') as unknown,
        });
    });

    it('a check that hangs fails on its own timeout while the others finish', async () => {
        kvMonitored.inject({ delayMs: 3_000, times: 2 });
        const failed = await expectOnlyFailure(
            doctor(['--timeout-seconds', '1']),
            'vault-data-plane kv-sandbox',
            'reachable from the app',
        );
        expect(failed.detail).toContain('no answer within 1000 ms');
    });
});

describe('kvr doctor usage', () => {
    it('prints its usage with --help and exits 0', async () => {
        const r = await runKvr('doctor', '--help');
        expect(r.code).toBe(0);
        expect(r.stdout).toContain('kvr doctor [--json] [--send-test-notice]');
        expect(r.stdout).toContain('Exit 1 when any check fails');
    });

    it('exits 2 for an unknown option or a bad timeout', async () => {
        expect((await runKvr('doctor', '--bogus')).code).toBe(2);
        const r = await runKvr('doctor', '--timeout-seconds', 'soon');
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('--timeout-seconds');
    });

    it('is listed in kvr help', async () => {
        expect((await runKvr('help')).stdout).toMatch(/^\s+doctor\s/m);
    });
});

describe('GET /api/doctor', () => {
    const deps = () => ({ compose: () => composeDoctor(env, { transport }) });
    const request = (query: Record<string, string>) =>
        new HttpRequest({ method: 'GET', url: 'https://kvr.example.net/api/doctor', query });

    it('answers JSON by default', async () => {
        const { context, logs } = makeContext();
        const res = await handleDoctor(request({}), context, deps());
        expect(res.status).toBe(200);
        const body = res.jsonBody as DoctorReport;
        expect(body.ok).toBe(true);
        expect(body.checks.find((c) => c.check === 'teams-delivery')?.status).toBe('skip');
        expect(logs.some((l) => l.entry.msg === 'kvr.doctor')).toBe(true);
    });

    it('answers the table with format=table and sends the test notice when asked', async () => {
        monitor.setDiagnosticSettings(monitoredId, []);
        const { context, logs } = makeContext();
        const res = await handleDoctor(request({ format: 'table', sendTestNotice: 'true' }), context, deps());
        expect(res.status).toBe(200);
        expect(typeof res.body).toBe('string');
        const table = res.body as string;
        expect(table).toMatch(/^diagnostic-setting\s+kv-sandbox\s+FAIL\s/m);
        expect(table).toContain('1 failed');
        expect(teams.messages).toHaveLength(1);
        expect(logs.find((l) => l.entry.msg === 'kvr.doctor')?.entry.failed).toEqual(['diagnostic-setting:kv-sandbox']);
    });

    it('rejects a bad format or sendTestNotice value with 400', async () => {
        const { context } = makeContext();
        expect((await handleDoctor(request({ format: 'xml' }), context, deps())).status).toBe(400);
        expect((await handleDoctor(request({ sendTestNotice: 'yes' }), context, deps())).status).toBe(400);
    });
});
