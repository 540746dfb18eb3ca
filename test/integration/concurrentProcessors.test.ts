// Two rows of issue 11's fault table, as deterministic tests (the fault-injection suite covers them at random):
//
// - "two processors get the same batch": the old inline remediation split the batch's triggers between the
//   processors, and the one that found the vault leased skipped its share (`concurrent-remediation`), leaving the
//   vault out of policy without an alert;
// - "one remediation outlives the lease": the second processor acted too (duplicate writes).
//
// Two responders (processors `a` and `b`) share one state table and one reconcile queue on Azurite and talk to the
// ARM simulator through the real @azure/arm-keyvault client. Interleavings are forced at exact points (a hook around
// the ARM calls of one processor, a clock under the test's control), so each test is the same run every time.
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { RECONCILE_QUEUE, StorageReconcileQueue } from '../../shared/adapters/storageReconcileQueue';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import { createResponder, reconcileDepsOf, type Responder } from '../../shared/app/createPipeline';
import { handleReconcileVault, type ReconcileDeps } from '../../shared/app/handlers/handleReconcile';
import type { ReconcileRun } from '../../shared/app/reconciler';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { ActionDecision, Decision } from '../../shared/core/decisions';
import type { VaultRef } from '../../shared/core/events/types';
import type { VaultAdmin } from '../../shared/core/ports';
import type { RemediationPlan, VaultAccessPolicy, VaultSnapshot } from '../../shared/core/remediation/types';
import { ruleIds } from '../../shared/core/rules';
import { type ArmKeyVaultFake, startArmKeyVaultFake } from '../../shared/simulation/armSimulator';
import { vaultAdminFor } from '../fakes/armClient';
import { TestClock } from '../support/alertingDoubles';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { makeContext } from '../support/context';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, RESOURCE_ID, VAULT } from '../support/paymentsVault';
import { receiveAsQueueTrigger } from '../support/queueTrigger';

const LEASE_MS = 120_000;
const ARM_CALL_LIMIT_MS = 30_000;

let arm: ArmKeyVaultFake;
let table: AzuriteService;
let queues: AzuriteService;
let n = 0;

beforeAll(async () => {
    [arm, table, queues] = await Promise.all([startArmKeyVaultFake(), startAzurite('table'), startAzurite('queue')]);
});
afterAll(async () => {
    await Promise.all([arm.close(), table.stop(), queues.stop()]);
});

const config = parseResponderConfig(
    {
        guardrails: {
            default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
            overrides: [{ match: { vaultName: VAULT }, mode: 'enforce', publicNetworkAccess: 'Disabled' }],
        },
        remediation: { retryBudgetSeconds: 1 },
    },
    ruleIds,
    'test',
);

/** The real ARM client with a hook after each read and before each write (where the test interleaves). */
class HookedAdmin implements VaultAdmin {
    afterGet: ((nth: number) => Promise<void>) | undefined;
    beforePatch: (() => Promise<void>) | undefined;
    private gets = 0;

    constructor(private readonly inner: VaultAdmin) {}

    async get(vault: VaultRef): Promise<VaultSnapshot> {
        const v = await this.inner.get(vault);
        const hook = this.afterGet;
        if (hook !== undefined) await hook(++this.gets);
        return v;
    }
    async patch(vault: VaultRef, properties: NonNullable<RemediationPlan['patch']>): Promise<VaultSnapshot> {
        const hook = this.beforePatch;
        this.beforePatch = undefined;
        if (hook !== undefined) await hook();
        return this.inner.patch(vault, properties);
    }
    removeAccessPolicy(vault: VaultRef, entry: VaultAccessPolicy): Promise<void> {
        return this.inner.removeAccessPolicy(vault, entry);
    }
    addAccessPolicy(vault: VaultRef, entry: VaultAccessPolicy): Promise<void> {
        return this.inner.addAccessPolicy(vault, entry);
    }
}

interface Processor {
    readonly name: string;
    readonly responder: Responder;
    readonly admin: HookedAdmin;
    readonly decisions: MemoryDecisionSink;
    readonly deps: ReconcileDeps;
}

/** Two processors on one table and one queue, with one clock. */
function deployment() {
    n++;
    arm.setVault(
        paymentsVault({
            networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow', ipRules: [] },
            publicNetworkAccess: 'Disabled',
        }),
    );
    arm.clearLog();
    arm.clearFaults();
    const clock = new TestClock(Date.parse('2026-10-05T09:06:00.000Z'));
    const queueClient = new QueueClient(queues.connectionString, `${RECONCILE_QUEUE}-cp${n}`);
    const processor = (name: string): Processor => {
        const decisions = new MemoryDecisionSink();
        const admin = new HookedAdmin(vaultAdminFor(arm));
        const responder = createResponder(
            config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: false,
                admin,
                clock,
                owner: name,
                store: new TableStateStore(
                    TableClient.fromConnectionString(table.connectionString, `kvrcp${n}`, {
                        allowInsecureConnection: true,
                    }),
                ),
                queue: new StorageReconcileQueue(queueClient, true),
                leaseMs: LEASE_MS,
                armCallLimitMs: ARM_CALL_LIMIT_MS,
                busyDelayMs: 1000,
            },
        );
        return {
            name,
            responder,
            admin,
            decisions,
            deps: reconcileDepsOf(responder, clock),
        };
    };
    const receive = (): Promise<unknown[]> => receiveAsQueueTrigger(queueClient);
    /** Messages sent back with a visibility delay (a busy vault, a lost lease) once they are visible again. */
    const receiveDelayed = async (): Promise<unknown[]> => {
        await new Promise((resolve) => setTimeout(resolve, 1300));
        return receive();
    };
    return { a: processor('a'), b: processor('b'), clock, receive, receiveDelayed };
}

function body(fixture: string, correlationId: string) {
    const b = fixtureBody(fixture);
    const r = b.records[0] as { resourceId: string; correlationId: string };
    r.resourceId = RESOURCE_ID;
    r.correlationId = correlationId;
    return b;
}
const firewallOpened = () => body('vault-patch-firewall-allow.json', 'c-firewall');
const publicAccessEnabled = () => body('vault-patch-public-network-enabled.json', 'c-public');

function work(p: Processor, message: unknown): Promise<ReconcileRun | undefined> {
    return handleReconcileVault(message, makeContext({ dequeueCount: 1 }).context, p.deps);
}

const patches = () => arm.requests.filter((r) => r.method === 'PATCH');
const compliant = () => {
    const v = arm.vault(VAULT).properties;
    return v.networkAcls?.defaultAction === 'Deny' && v.publicNetworkAccess === 'Disabled';
};
const actions = (ds: readonly Decision[]) => ds.filter((d): d is ActionDecision => d.type === 'action');
const skippedAsConcurrent = (p: Processor) =>
    actions(p.decisions.decisions).filter(
        (a) => a.status === 'skipped' && a.detail.reason === 'concurrent-remediation',
    );

describe('two processors get the same batch', () => {
    it('while the vault is leased neither skips its share: the vault ends compliant, each change written once', async () => {
        const d = deployment();
        // The firewall was opened; processor a remediates it.
        await d.a.responder.pipeline.processBatch([{ body: firewallOpened() }]);
        const [first] = await d.receive();
        let interleaved = false;
        d.a.admin.afterGet = async (nth) => {
            if (nth !== 2) return; // after a's read-back, before it hands its outcome over and commits
            d.a.admin.afterGet = undefined;
            // Now public network access is enabled, and the batch with that record reaches both processors.
            const v = arm.vault(VAULT);
            arm.setVault({ ...v, properties: { ...v.properties, publicNetworkAccess: 'Enabled' } });
            await Promise.all([
                d.a.responder.pipeline.processBatch([{ body: publicAccessEnabled() }]),
                d.b.responder.pipeline.processBatch([{ body: publicAccessEnabled() }]),
            ]);
            // Each processor's wake-up finds the vault leased (by a's first invocation): sent back, not dropped.
            const wakeUps = await d.receive();
            expect(wakeUps).toHaveLength(2);
            const runs = await Promise.all([work(d.b, wakeUps[0]), work(d.a, wakeUps[1])]);
            expect(runs.map((r) => r?.kind)).toEqual(['busy', 'busy']);
            interleaved = true;
        };
        expect((await work(d.a, first))?.kind).toBe('done');
        expect(interleaved).toBe(true);
        expect(patches()).toHaveLength(1);
        expect(compliant()).toBe(false); // public network access is still enabled: the share of the batch is pending

        // The messages come back and the worker reconciles what a's run did not cover.
        const again = await d.receiveDelayed();
        expect(again).toHaveLength(2);
        const runs = [await work(d.b, again[0]), await work(d.a, again[1])];
        expect(runs.map((r) => r?.kind)).toEqual(['done', 'noop']);
        expect(compliant()).toBe(true);
        expect(patches().map((r) => Object.keys((r.body as { properties: object }).properties))).toEqual([
            ['networkAcls'],
            ['publicNetworkAccess'],
        ]);
        expect([...skippedAsConcurrent(d.a), ...skippedAsConcurrent(d.b)]).toEqual([]);
        const intent = await d.a.responder.intents.read(VAULT);
        expect(intent?.processed).toBe(intent?.version);
    });

    it('two invocations of one processor on the same vault exclude each other too (one process, several messages)', async () => {
        const d = deployment();
        await d.a.responder.pipeline.processBatch([{ body: firewallOpened() }]);
        await d.a.responder.pipeline.processBatch([{ body: firewallOpened() }]); // the batch delivered again
        const messages = await d.receive();
        expect(messages).toHaveLength(2);
        let second: ReconcileRun | undefined;
        d.a.admin.afterGet = async () => {
            d.a.admin.afterGet = undefined;
            // The host runs the second message of the same vault in the same process meanwhile.
            second = await work(d.a, messages[1]);
        };
        expect((await work(d.a, messages[0]))?.kind).toBe('done');
        expect(second?.kind).toBe('busy');
        expect(patches()).toHaveLength(1);
        for (const m of await d.receiveDelayed()) expect((await work(d.a, m))?.kind).toBe('noop');
        expect(patches()).toHaveLength(1);
        expect(arm.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
    });
});

describe('one remediation outlives the lease', () => {
    it('its write is still in flight when the lease lapses: the other processor waits out the ARM call limit', async () => {
        const d = deployment();
        await d.a.responder.pipeline.processBatch([{ body: firewallOpened() }]);
        const [message] = await d.receive();
        let other: ReconcileRun | undefined;
        d.a.admin.beforePatch = async () => {
            // a sent its PATCH just before its lease ran out; the message becomes visible to b again meanwhile.
            d.clock.advance(LEASE_MS + 10_000);
            other = await work(d.b, message);
        };
        // a's write goes through; a then finds its lease lapsed and does not commit (the queue redelivers).
        await expect(work(d.a, message)).rejects.toThrow(/lost the lease/);
        expect(other?.kind).toBe('busy');
        expect(patches()).toHaveLength(1);
        // b, later, finds the vault compliant, writes nothing, and hands a's outcome over (applied, with its undo id).
        d.clock.advance(ARM_CALL_LIMIT_MS);
        for (const m of await d.receiveDelayed()) await work(d.b, m);
        expect(patches()).toHaveLength(1);
        expect(compliant()).toBe(true);
        const applied = actions(d.b.decisions.decisions).filter((a) => a.status === 'applied');
        expect(applied.map((a) => a.action)).toEqual(['restore-firewall-default']);
        expect(typeof applied[0]?.detail.undoId).toBe('string');
        const intent = await d.b.responder.intents.read(VAULT);
        expect(intent?.processed).toBe(intent?.version);
    });

    it('it stalls past its lease before writing: it stops, the other processor takes over, one write', async () => {
        const d = deployment();
        await d.a.responder.pipeline.processBatch([{ body: firewallOpened() }]);
        const [message] = await d.receive();
        let other: ReconcileRun | undefined;
        d.a.admin.afterGet = async () => {
            d.a.admin.afterGet = undefined;
            // a read the vault and then stalled (a starved process: its renewal never ran) past lease and call limit.
            d.clock.advance(LEASE_MS + ARM_CALL_LIMIT_MS + 1000);
            other = await work(d.b, message);
        };
        const run = await work(d.a, message);
        expect(other?.kind).toBe('done');
        expect(run?.kind).toBe('retry');
        expect(patches()).toHaveLength(1);
        for (const m of await d.receiveDelayed()) expect((await work(d.a, m))?.kind).toBe('noop');
        expect(patches()).toHaveLength(1);
        expect(compliant()).toBe(true);
    });
});
