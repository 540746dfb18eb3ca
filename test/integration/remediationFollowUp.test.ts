// The outcome of a remediation reaches the on-call. In the Function app the Event Hubs batch opens the incident and
// sends its first notice before the reconcile worker has acted; the worker's outcome then goes out as one follow-up
// notice of the same incident (before → after and the undo button when applied, the failure and its fix when failed),
// exactly once under queue redelivery and concurrent processors. In process (replay, serve) the worker runs before the
// first notice, which carries the outcome: no follow-up. Real parts: Azurite (table and queue), the ARM simulator
// behind the real @azure/arm-keyvault client, the Teams Workflows fake behind the real TeamsWebhookChannel.
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { RECONCILE_QUEUE, StorageReconcileQueue } from '../../shared/adapters/storageReconcileQueue';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import { TeamsWebhookChannel } from '../../shared/adapters/teamsWebhookChannel';
import { LinkTokens } from '../../shared/app/alerting';
import { createResponder, reconcileDepsOf, type Responder } from '../../shared/app/createPipeline';
import { handleReconcileVault, type ReconcileDeps } from '../../shared/app/handlers/handleReconcile';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Decision } from '../../shared/core/decisions';
import type { ReconcileMessage } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import { type ArmKeyVaultFake, startArmKeyVaultFake } from '../../shared/simulation/armSimulator';
import { startTeamsWorkflowsFake, type TeamsWorkflowsFake } from '../../shared/simulation/notificationFakes';
import { vaultAdminFor } from '../fakes/armClient';
import { validateAdaptiveCard } from '../support/adaptiveCard';
import { TestClock } from '../support/alertingDoubles';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { makeContext } from '../support/context';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, SUB, VAULT } from '../support/paymentsVault';
import { receiveAsQueueTrigger } from '../support/queueTrigger';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

let arm: ArmKeyVaultFake;
let teamsFake: TeamsWorkflowsFake;
let teams: TeamsWebhookChannel;
let table: AzuriteService;
let queues: AzuriteService;
let n = 0;

beforeAll(async () => {
    [arm, teamsFake, table, queues] = await Promise.all([
        startArmKeyVaultFake(),
        startTeamsWorkflowsFake({ validateCard: validateAdaptiveCard }),
        startAzurite('table'),
        startAzurite('queue'),
    ]);
    teams = new TeamsWebhookChannel({ webhookUrl: teamsFake.webhookUrl, ca: teamsFake.caPem, timeoutMs: 5000 });
});
afterAll(async () => {
    await teams.close();
    await Promise.all([arm.close(), teamsFake.close(), table.stop(), queues.stop()]);
});

const config = parseResponderConfig(
    {
        guardrails: {
            default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
            overrides: [{ match: { vaultName: VAULT }, mode: 'enforce' }],
        },
        remediation: { retryBudgetSeconds: 1 },
        alerting: { rosters: { default: { tiers: [{ name: 'secops', email: [], teams: true }] } } },
    },
    ruleIds,
    'test',
);

interface Processor {
    readonly responder: Responder;
    readonly deps: ReconcileDeps;
    readonly decisions: MemoryDecisionSink;
}

/**
 * One deployment: a state table and a queue on Azurite, shared by `processors` responders (instances of the Function
 * app, each with its own owner id). `queued: false` is the in-process path of replay and serve.
 */
function deployment(processors = 1, queued = true) {
    n++;
    arm.setVault(paymentsVault({ networkAcls: { bypass: 'None', defaultAction: 'Allow', ipRules: [] } }));
    arm.clearLog();
    arm.clearFaults();
    teamsFake.clearLog();
    teamsFake.clearFaults();
    const clock = new TestClock(Date.parse('2026-10-05T09:06:00.000Z'));
    const queueClient = new QueueClient(queues.connectionString, `${RECONCILE_QUEUE}-fu${n}`);
    const links = new LinkTokens(LocalLinkSigner.generate('k'), 'https://kvr.example.net', 3_600_000, clock);
    const list: Processor[] = [];
    for (let i = 0; i < processors; i++) {
        const decisions = new MemoryDecisionSink();
        const responder = createResponder(
            config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: false,
                admin: vaultAdminFor(arm),
                clock,
                owner: `p${i}`,
                store: new TableStateStore(
                    TableClient.fromConnectionString(table.connectionString, `kvrfu${n}`, {
                        allowInsecureConnection: true,
                    }),
                ),
                ...(queued ? { queue: new StorageReconcileQueue(queueClient, true), busyDelayMs: 1000 } : {}),
                alerting: { channels: { teams }, links, log: silent },
            },
        );
        list.push({
            responder,
            decisions,
            deps: reconcileDepsOf(responder, clock),
        });
    }
    const receive = (): Promise<unknown[]> => receiveAsQueueTrigger(queueClient);
    return { processors: list, p: list[0] as Processor, receive, clock, links };
}

function attackBody() {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as { resourceId: string };
    r.resourceId = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
    return body;
}

/** Every text of a card, in order (TextRuns and TextBlocks), as one string. */
function cardText(card: Record<string, unknown>): string {
    const out: string[] = [];
    const walk = (v: unknown): void => {
        if (Array.isArray(v)) for (const x of v) walk(x);
        else if (typeof v === 'object' && v !== null) {
            const o = v as Record<string, unknown>;
            if ((o.type === 'TextRun' || o.type === 'TextBlock') && typeof o.text === 'string') out.push(o.text);
            for (const [k, x] of Object.entries(o)) if (k !== 'actions') walk(x);
        }
    };
    walk(card.body);
    return out.join('\n').replace(/\u200b/g, '');
}

function buttons(card: Record<string, unknown>): { title: string; url: string }[] {
    return (card.actions as { title: string; url: string }[]).map(({ title, url }) => ({ title, url }));
}

/** The incident a card is about (its "Incident: <id>" line). */
function incidentOf(card: Record<string, unknown>): string | undefined {
    return /Incident: \n?([0-9a-z-]+)/.exec(cardText(card))?.[1];
}

const headlineOf = (card: Record<string, unknown>): string => cardText(card).split('\n')[0] ?? '';
const patches = () => arm.requests.filter((r) => r.method === 'PATCH');

async function work(p: Processor, message: unknown) {
    return handleReconcileVault(message, makeContext({ dequeueCount: 1 }).context, p.deps);
}

describe('the remediation outcome reaches the on-call (queue, ARM simulator, Teams fake)', () => {
    it('in Azure the first card has no undo; the worker sends one follow-up with before/after and Undo', async () => {
        const d = deployment();
        await d.p.responder.pipeline.processBatch([{ body: attackBody() }]);
        expect(teamsFake.cards).toHaveLength(1);
        const first = teamsFake.cards[0] as Record<string, unknown>;
        const incident = incidentOf(first);
        expect(incident).toBeDefined();
        expect(buttons(first).map((b) => b.title)).not.toContain('Undo remediation');
        expect(cardText(first)).toContain('Remediation pending: the reconcile worker checks the vault');

        const [message] = await d.receive();
        const run = await work(d.p, message);
        expect(run?.kind).toBe('done');
        expect(arm.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');

        expect(teamsFake.cards).toHaveLength(2);
        const follow = teamsFake.cards[1] as Record<string, unknown>;
        expect(headlineOf(follow)).toBe(`Remediation applied · HIGH · firewall-opened · ${VAULT}`);
        expect(incidentOf(follow)).toBe(incident);
        expect(cardText(follow)).toContain('Changed: Firewall default action: Allow → Deny.');
        const undo = buttons(follow).find((b) => b.title === 'Undo remediation');
        expect(undo?.url).toContain(`/api/incidents/${incident as string}/undo?t=`);
        // The link is good: it verifies for this incident and the page would offer the undo.
        const token = new URL(undo?.url as string).searchParams.get('t') as string;
        const view = await d.p.responder.alerting?.view(incident as string, 'undo', token);
        expect(view?.kind).toBe('done');

        // Redelivery of the wake-up: a no-op, no third card.
        expect(await work(d.p, message)).toMatchObject({ kind: 'noop' });
        // The same outcome handed over again (a hand-over that failed after alerting had it): no third card.
        await d.p.responder.decisions.write(d.p.decisions.decisions.filter((x) => x.type === 'action'));
        expect(teamsFake.cards).toHaveLength(2);
        expect(patches()).toHaveLength(1);
    });

    it('two processors get the same batch and run the wake-ups concurrently: one write, one follow-up', async () => {
        const d = deployment(2);
        const [a, b] = d.processors as [Processor, Processor];
        await Promise.all([
            a.responder.pipeline.processBatch([{ body: attackBody() }]),
            b.responder.pipeline.processBatch([{ body: attackBody() }]),
        ]);
        expect(teamsFake.cards).toHaveLength(1);
        const messages = await d.receive();
        expect(messages).toHaveLength(2);
        const runs = await Promise.all([work(a, messages[0]), work(b, messages[1])]);
        // One acted; the other found it done or the vault leased (its message comes back a second later).
        expect(runs.filter((r) => r?.kind === 'done')).toHaveLength(1);
        if (runs.some((r) => r?.kind === 'busy')) {
            await new Promise((resolve) => setTimeout(resolve, 1300));
            for (const m of await d.receive()) expect(await work(b, m)).toMatchObject({ kind: 'noop' });
        }
        expect(patches()).toHaveLength(1);
        expect(teamsFake.cards.map(headlineOf)).toEqual([
            `HIGH · firewall-opened · ${VAULT}`,
            `Remediation applied · HIGH · firewall-opened · ${VAULT}`,
        ]);
    });

    it('the same outcome handed to alerting by two processors at once is sent once (per-incident marker)', async () => {
        const d = deployment(2);
        const [a, b] = d.processors as [Processor, Processor];
        await a.responder.pipeline.processBatch([{ body: attackBody() }]);
        const [message] = await d.receive();
        // The worker without its hand-over: the outcome as it would be handed to the sinks.
        const run = await a.responder.reconciler.run(message as ReconcileMessage);
        expect(run.kind).toBe('done');
        const outcome = (run as { decisions: readonly Decision[] }).decisions;
        await Promise.all([a.responder.decisions.write(outcome), b.responder.decisions.write(outcome)]);
        await a.responder.decisions.write(outcome);
        expect(teamsFake.cards.map(headlineOf)).toEqual([
            `HIGH · firewall-opened · ${VAULT}`,
            `Remediation applied · HIGH · firewall-opened · ${VAULT}`,
        ]);
    });

    it('a failed remediation: the follow-up names the failure and its fix, and offers no undo', async () => {
        const d = deployment();
        await d.p.responder.pipeline.processBatch([{ body: attackBody() }]);
        arm.inject({ status: 403, match: { method: 'PATCH' } });
        const [message] = await d.receive();
        const run = await work(d.p, message);
        expect(run?.kind).toBe('done');
        expect(arm.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
        const headlines = teamsFake.cards.map(headlineOf);
        // The critical remediation-failed incident is notified on its own, and the firewall incident is followed up.
        expect(headlines).toContain(`CRITICAL · remediation-failed · ${VAULT}`);
        const follow = teamsFake.cards.find((c) => headlineOf(c).startsWith('Remediation failed'));
        expect(headlineOf(follow as Record<string, unknown>)).toBe(
            `Remediation failed · HIGH · firewall-opened · ${VAULT}`,
        );
        expect(incidentOf(follow as Record<string, unknown>)).toBe(
            incidentOf(teamsFake.cards[0] as Record<string, unknown>),
        );
        const text = cardText(follow as Record<string, unknown>);
        expect(text).toMatch(/Failed: .*apply: .*403/);
        expect(text).toContain("Fix: Give the responder's identity the remediation role");
        expect(buttons(follow as Record<string, unknown>).map((b) => b.title)).not.toContain('Undo remediation');
        expect(headlines.filter((h) => h.startsWith('Remediation '))).toHaveLength(1);
    });

    it('Teams failing for the follow-up: the worker does not throw, the notice waits and the timer sends it once', async () => {
        const d = deployment();
        await d.p.responder.pipeline.processBatch([{ body: attackBody() }]);
        const [message] = await d.receive();
        teamsFake.inject({ status: 503 });
        const run = await work(d.p, message);
        expect(run?.kind).toBe('done');
        expect(teamsFake.cards).toHaveLength(1);
        expect(teamsFake.requests.map((r) => r.status)).toEqual([202, 503]);
        // Retried with backoff by the alerting timer.
        d.clock.advance(60_000);
        await d.p.responder.alerting?.tick();
        d.clock.advance(60_000);
        await d.p.responder.alerting?.tick();
        expect(teamsFake.cards.map(headlineOf)).toEqual([
            `HIGH · firewall-opened · ${VAULT}`,
            `Remediation applied · HIGH · firewall-opened · ${VAULT}`,
        ]);
    });

    it('in process (replay, serve) the first card already carries the outcome and undo: no follow-up', async () => {
        const d = deployment(1, false);
        await d.p.responder.pipeline.processBatch([{ body: attackBody() }]);
        expect(arm.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        await d.p.responder.pipeline.processBatch([{ body: attackBody() }]);
        d.clock.advance(10 * 60_000);
        await d.p.responder.alerting?.tick();
        expect(teamsFake.cards).toHaveLength(1);
        const card = teamsFake.cards[0] as Record<string, unknown>;
        expect(headlineOf(card)).toBe(`HIGH · firewall-opened · ${VAULT}`);
        expect(cardText(card)).toContain('applied: set network ACL default action');
        expect(buttons(card).map((b) => b.title)).toContain('Undo remediation');
    });
});
