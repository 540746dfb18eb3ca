// The Function app's remediation path: the Event Hubs batch records intent and sends a wake-up to an Azure Storage
// Queue (Azurite), the queue trigger's handler runs the worker (real @azure/arm-keyvault client against the ARM
// simulator, rule state in Table Storage on Azurite), and the outcome lands on the batch's incident.
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import {
    decodeReconcileMessage,
    RECONCILE_QUEUE,
    StorageReconcileQueue,
} from '../../shared/adapters/storageReconcileQueue';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import { LinkTokens } from '../../shared/app/alerting';
import { createResponder, reconcileDepsOf } from '../../shared/app/createPipeline';
import {
    handleDriftSweep,
    handleReconcilePoison,
    handleReconcileVault,
} from '../../shared/app/handlers/handleReconcile';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { ActionDecision, FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import { type ArmKeyVaultFake, startArmKeyVaultFake } from '../../shared/simulation/armSimulator';
import { vaultAdminFor } from '../fakes/armClient';
import { RecordingChannel, TestClock } from '../support/alertingDoubles';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { makeContext } from '../support/context';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, SUB, VAULT } from '../support/paymentsVault';
import { receiveAsQueueTrigger } from '../support/queueTrigger';

let fake: ArmKeyVaultFake;
let table: AzuriteService;
let queues: AzuriteService;
let n = 0;
beforeAll(async () => {
    [fake, table, queues] = await Promise.all([startArmKeyVaultFake(), startAzurite('table'), startAzurite('queue')]);
});
afterAll(async () => {
    await Promise.all([fake.close(), table.stop(), queues.stop()]);
});

const config = parseResponderConfig(
    {
        guardrails: {
            default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
            overrides: [{ match: { vaultName: VAULT }, mode: 'enforce' }],
        },
        remediation: { retryBudgetSeconds: 2 },
        alerting: { rosters: { default: { tiers: [{ name: 'secops', email: [], teams: true }] } } },
    },
    ruleIds,
    'test',
);

function harness() {
    n++;
    fake.setVault(paymentsVault({ networkAcls: { bypass: 'None', defaultAction: 'Allow', ipRules: [] } }));
    fake.clearLog();
    const clock = new TestClock(Date.parse('2026-10-05T09:06:00.000Z'));
    const store = new TableStateStore(
        TableClient.fromConnectionString(table.connectionString, `kvrq${n}`, { allowInsecureConnection: true }),
    );
    const queueClient = new QueueClient(queues.connectionString, `${RECONCILE_QUEUE}-${n}`);
    const decisions = new MemoryDecisionSink();
    const teams = new RecordingChannel('teams');
    const links = new LinkTokens(LocalLinkSigner.generate('k'), 'https://kvr.example.net', 3_600_000, clock);
    const responder = createResponder(
        config,
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin: vaultAdminFor(fake),
            clock,
            store,
            queue: new StorageReconcileQueue(queueClient, true),
            alerting: {
                channels: { teams },
                links,
                log: { info: () => undefined, warn: () => undefined, error: () => undefined },
            },
        },
    );
    const deps = reconcileDepsOf(responder, clock, [
        `/subscriptions/${SUB}/resourceGroups/rg-other/providers/Microsoft.KeyVault/vaults/kv-named`,
    ]);
    const receive = (): Promise<unknown[]> => receiveAsQueueTrigger(queueClient);
    return { responder, deps, receive, decisions, teams, store };
}

function attackBody() {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as { resourceId: string };
    r.resourceId = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
    return body;
}

const writes = () => fake.requests.filter((r) => r.method !== 'GET');

describe('remediation through the queue (Azurite) and the queue trigger handler', () => {
    it('the batch only records intent; the worker remediates and its outcome lands on the incident with undo', async () => {
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: attackBody() }]);
        // The batch did not wait for ARM.
        expect(writes()).toEqual([]);
        const messages = await h.receive();
        expect(messages).toHaveLength(1);
        expect(decodeReconcileMessage(messages[0])).toMatchObject({
            vaultId: expect.stringContaining(VAULT) as string,
        });
        const { context } = makeContext({ dequeueCount: 1 });
        const run = await handleReconcileVault(messages[0], context, h.deps);
        expect(run?.kind).toBe('done');
        expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        const applied = h.decisions.decisions.filter(
            (d): d is ActionDecision => d.type === 'action' && d.status === 'applied',
        );
        expect(applied.map((a) => a.action)).toContain('restore-firewall-default');
        // The incident opened by the batch now lists the applied action with its undo id.
        const incidentId = h.teams.sent[0]?.incidentId as string;
        const incident = await h.responder.alerting?.get(incidentId);
        expect(incident?.actions.find((a) => a.status === 'applied')?.undoId).toEqual(applied[0]?.detail.undoId);
        // The same message again (at-least-once delivery) is a no-op: no second write.
        const before = writes().length;
        const again = await handleReconcileVault(messages[0], makeContext().context, h.deps);
        expect(again).toMatchObject({ kind: 'noop' });
        expect(writes()).toHaveLength(before);
    });

    it('a redelivered batch sends another wake-up; the worker acts once', async () => {
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: attackBody() }]);
        await h.responder.pipeline.processBatch([{ body: attackBody() }]);
        const messages = await h.receive();
        expect(messages).toHaveLength(2);
        const runs = [];
        for (const m of messages) runs.push(await handleReconcileVault(m, makeContext().context, h.deps));
        expect(runs.map((r) => r?.kind)).toEqual(['done', 'noop']);
        expect(writes().filter((r) => r.method === 'PATCH')).toHaveLength(1);
    });

    it('a poison message is a critical remediation-failed naming the vault and the last error', async () => {
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: attackBody() }]);
        const [m] = await h.receive();
        const vault = decodeReconcileMessage(m);
        await h.deps.intents.setError(VAULT, 'reconcile', 'HTTP 503 Service Unavailable (table)');
        await handleReconcilePoison(m, makeContext().context, h.deps);
        const critical = h.decisions.decisions.find(
            (d): d is FindingDecision => d.type === 'finding' && d.rule === 'remediation-failed',
        );
        expect(critical).toMatchObject({ severity: 'critical', vault: VAULT, vaultId: vault?.vaultId });
        expect(critical?.summary).toContain('HTTP 503 Service Unavailable (table)');
        // ... and it reached alerting: a critical incident of its own was opened and notified.
        const rules = [];
        for (const sent of h.teams.sent) rules.push((await h.responder.alerting?.get(sent.incidentId))?.rule);
        expect(rules).toContain('remediation-failed');
    });

    it('the drift sweep wakes the worker for every known vault, and the worker fixes drift no event reported', async () => {
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: attackBody() }]);
        for (const m of await h.receive()) await handleReconcileVault(m, makeContext().context, h.deps);
        // Later someone opens the firewall again and the event is lost.
        const v = fake.vault(VAULT);
        fake.setVault({
            ...v,
            properties: { ...v.properties, networkAcls: { defaultAction: 'Allow', bypass: 'None' } },
        });
        const swept = await handleDriftSweep(undefined, makeContext().context, h.deps);
        // The vault seen before, and the one the config names (never seen: the worker finds it gone in ARM).
        expect(swept.vaults).toBe(2);
        // The sweep spreads its messages a second apart (ARM throttling): collect both.
        const messages = await h.receive();
        await new Promise((resolve) => setTimeout(resolve, 1200));
        messages.push(...(await h.receive()));
        expect(messages.map((m) => decodeReconcileMessage(m)?.vaultId.split('/').pop()).sort()).toEqual([
            'kv-named',
            VAULT,
        ]);
        for (const m of messages) await handleReconcileVault(m, makeContext().context, h.deps);
        expect(fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        expect(
            h.decisions.decisions.some(
                (d) => d.type === 'finding' && d.rule === 'firewall-opened' && d.source === 'arm-drift',
            ),
        ).toBe(true);
    });
});
