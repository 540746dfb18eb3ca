// Alerting on Table Storage (Azurite): two responder instances sharing one state table never open an incident twice
// and never send a notice twice, for findings, redeliveries and escalations alike.
import type { Timer } from '@azure/functions';
import type { TableClient } from '@azure/data-tables';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { encodeKeyPart, tableStateStoreAt } from '../../shared/adapters/tableStateStore';
import { LinkTokens } from '../../shared/app/alerting';
import { createResponder, type Responder } from '../../shared/app/createPipeline';
import { handleAlertingTimer } from '../../shared/app/handlers/handleAlertingTimer';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Incident } from '../../shared/core/alerts/incident';
import type { OutgoingNotification } from '../../shared/core/alerts/types';
import type { FindingDecision } from '../../shared/core/decisions';
import type { Logger } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import { useAzuriteTables } from '../support/azurite';
import { makeContext } from '../support/context';
import { fixtureBody } from '../support/fixtures';
import { RecordingChannel, TestClock } from '../support/alertingDoubles';

const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const RESOURCE_ID = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
const EVENT_TIME = '2026-10-05T09:05:00.0000000Z';
const MINUTE_MS = 60_000;
const ESCALATE_AFTER_MINUTES = 15;

const quietLog: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const config = parseResponderConfig(
    {
        guardrails: { default: { networkDefaultAction: 'Deny' } },
        alerting: {
            escalation: { afterMinutes: ESCALATE_AFTER_MINUTES, maxReminders: 0 },
            rosters: {
                default: {
                    tiers: [
                        { name: 'secops', email: ['secops@contoso.example'], teams: true },
                        { name: 'ciso', email: ['ciso@contoso.example'], teams: false },
                    ],
                },
            },
        },
    },
    ruleIds,
    'alerting-table-test',
);

/** Mallory opened the firewall: one high-severity firewall-opened finding. */
function attackBody() {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as { resourceId: string; time: string };
    r.resourceId = RESOURCE_ID;
    r.time = EVENT_TIME;
    return body;
}

const timer: Timer = {
    isPastDue: false,
    schedule: { adjustForDST: false },
    scheduleStatus: { last: '', next: '', lastUpdated: '' },
};

const azurite = useAzuriteTables('kvralerting');

interface Instance {
    readonly responder: Responder;
    readonly alerting: NonNullable<Responder['alerting']>;
    readonly decisions: MemoryDecisionSink;
    readonly teams: RecordingChannel;
    readonly email: RecordingChannel;
}

const signer = LocalLinkSigner.generate('alerting-table-test');

/** Two instances ('a' and 'b'), each with its own store client and channels, on one fresh table. */
function twoInstances(): { a: Instance; b: Instance; clock: TestClock; table: TableClient } {
    const table = azurite.newName();
    const clock = new TestClock(Date.parse(EVENT_TIME) + MINUTE_MS);
    const location = { kind: 'connection-string', connectionString: azurite.connectionString, table } as const;
    const make = (owner: string): Instance => {
        const decisions = new MemoryDecisionSink();
        const teams = new RecordingChannel('teams');
        const email = new RecordingChannel('email');
        const responder = createResponder(
            config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: false,
                store: tableStateStoreAt(location, () => {
                    throw new Error('a connection string needs no credential');
                }),
                clock,
                owner,
                alerting: {
                    channels: { teams, email },
                    mailFrom: 'kv-responder@contoso.example',
                    links: new LinkTokens(signer, 'https://kvr-func.example.net', config.alerting.linkTtlMs, clock),
                    log: quietLog,
                },
            },
        );
        if (responder.alerting === undefined) throw new Error('no alerting');
        return { responder, alerting: responder.alerting, decisions, teams, email };
    };
    return {
        a: make('a'),
        b: make('b'),
        clock,
        table: azurite.client(table),
    };
}

/** The incidents stored in the table (read directly, not through the code under test). */
async function storedIncidents(table: TableClient): Promise<Incident[]> {
    const out: Incident[] = [];
    // RowKey: the state key's row, then `|` and its partition (tableKeysOf); the partition is '~incidents'.
    const suffix = `|${encodeKeyPart('~incidents')}`;
    for await (const e of table.listEntities<{ v: string }>())
        if (e.rowKey?.endsWith(suffix) === true) out.push(JSON.parse(e.v) as Incident);
    return out;
}

const all = (a: Instance, b: Instance) => [...a.teams.sent, ...a.email.sent, ...b.teams.sent, ...b.email.sent];
const summary = (ns: readonly OutgoingNotification[]) =>
    ns.map((n) => `${n.channel}:${n.kind}${n.channel === 'email' ? `:${n.email.to.join(',')}` : ''}`).sort();

describe('alerting with two instances on one Table Storage state table (Azurite)', () => {
    it('the same body processed by both at once: one incident, one Teams card, one email; redelivery sends nothing', async () => {
        const { a, b, table } = twoInstances();
        await Promise.all([
            a.responder.pipeline.processBatch([{ body: attackBody() }]),
            b.responder.pipeline.processBatch([{ body: attackBody() }]),
        ]);
        const findings = [...a.decisions.decisions, ...b.decisions.decisions].filter(
            (d): d is FindingDecision => d.type === 'finding',
        );
        expect(findings.length).toBeGreaterThanOrEqual(1);
        expect(new Set(findings.map((f) => f.rule))).toEqual(new Set(['firewall-opened']));

        const incidents = await storedIncidents(table);
        expect(incidents).toHaveLength(1);
        const inc = incidents[0] as Incident;
        expect(inc).toMatchObject({ rule: 'firewall-opened', severity: 'high', vault: 'kv-payments-prod', tier: 0 });
        expect(inc.notifications.map((n) => [n.id, n.status, n.attempts])).toEqual([
            ['opened-0-0-teams', 'sent', 1],
            ['opened-0-0-email', 'sent', 1],
        ]);
        const sent = all(a, b);
        expect(summary(sent)).toEqual(['email:opened:secops@contoso.example', 'teams:opened']);
        expect(new Set(sent.map((n) => n.incidentId))).toEqual(new Set([inc.id]));

        // Redelivered to both (and once more to one): nothing new is opened or sent.
        await Promise.all([
            a.responder.pipeline.processBatch([{ body: attackBody() }]),
            b.responder.pipeline.processBatch([{ body: attackBody() }]),
        ]);
        await b.responder.pipeline.processBatch([{ body: attackBody() }]);
        expect(all(a, b)).toHaveLength(2);
        expect((await storedIncidents(table)).map((i) => i.id)).toEqual([inc.id]);
    });

    it('the same finding written by both at once (no detection dedupe in between) still notifies once', async () => {
        const { a, table } = twoInstances();
        await a.responder.pipeline.processBatch([{ body: attackBody() }]);
        const finding = a.decisions.decisions.find((d): d is FindingDecision => d.type === 'finding');
        if (finding === undefined) throw new Error('no finding');
        // A fresh table: both instances see the finding for the first time.
        const fresh = twoInstances();
        await Promise.all([fresh.a.alerting.write([finding]), fresh.b.alerting.write([finding])]);
        expect(await storedIncidents(fresh.table)).toHaveLength(1);
        expect(summary(all(fresh.a, fresh.b))).toEqual(['email:opened:secops@contoso.example', 'teams:opened']);
        expect(await storedIncidents(table)).toHaveLength(1);
    });

    it('the timer escalates an unacknowledged incident once the delay passed, once across both instances', async () => {
        const { a, b, clock, table } = twoInstances();
        await Promise.all([
            a.responder.pipeline.processBatch([{ body: attackBody() }]),
            b.responder.pipeline.processBatch([{ body: attackBody() }]),
        ]);
        expect(all(a, b)).toHaveLength(2);
        const ctxA = makeContext();
        const ctxB = makeContext();

        // Not yet due: both timers run and nothing happens.
        clock.advance(ESCALATE_AFTER_MINUTES * MINUTE_MS - 2 * MINUTE_MS);
        await Promise.all([
            handleAlertingTimer(timer, ctxA.context, { alerting: a.alerting }),
            handleAlertingTimer(timer, ctxB.context, { alerting: b.alerting }),
        ]);
        expect(all(a, b)).toHaveLength(2);
        expect((await storedIncidents(table))[0]?.tier).toBe(0);

        // Past the delay: both timers fire at the same moment; the next tier is notified once.
        clock.advance(2 * MINUTE_MS);
        await Promise.all([
            handleAlertingTimer(timer, ctxA.context, { alerting: a.alerting }),
            handleAlertingTimer(timer, ctxB.context, { alerting: b.alerting }),
        ]);
        const escalations = all(a, b).filter((n) => n.kind === 'escalated');
        expect(summary(escalations)).toEqual(['email:escalated:ciso@contoso.example']);
        const inc = (await storedIncidents(table))[0] as Incident;
        expect(inc.tier).toBe(1);
        expect(inc.tierSinceMs).toBe(clock.now());
        expect(inc.notifications.filter((n) => n.kind === 'escalated').map((n) => [n.id, n.status])).toEqual([
            ['escalated-1-0-email', 'sent'],
        ]);
        expect(inc.history.map((h) => h.what)).toContain('escalated to tier 2 (unacknowledged)');
        const ticks = [...ctxA.logs, ...ctxB.logs].filter((l) => JSON.stringify(l.entry).includes('kvr.alerting-tick'));
        expect(ticks.length).toBeGreaterThanOrEqual(1);

        // Later ticks: the last tier was notified and no reminders are configured, so nothing more is sent.
        clock.advance(60 * MINUTE_MS);
        await Promise.all([
            handleAlertingTimer(timer, ctxA.context, { alerting: a.alerting }),
            handleAlertingTimer(timer, ctxB.context, { alerting: b.alerting }),
        ]);
        expect(all(a, b).filter((n) => n.kind === 'escalated')).toHaveLength(1);
    });

    it('an acknowledged incident is not escalated', async () => {
        const { a, b, clock, table } = twoInstances();
        await a.responder.pipeline.processBatch([{ body: attackBody() }]);
        const card = a.teams.sent[0];
        if (card === undefined || card.channel !== 'teams') throw new Error('no Teams card');
        const ack = (card.teams.attachments[0]?.content as { actions: { title: string; url: string }[] }).actions.find(
            (x) => x.title === 'Acknowledge',
        );
        const token = new URL(ack?.url ?? 'http://invalid').searchParams.get('t') ?? '';
        // Acknowledged through the other instance.
        expect(await b.alerting.act(card.incidentId, 'ack', token, { from: '198.51.100.7' })).toMatchObject({
            kind: 'done',
        });
        clock.advance((ESCALATE_AFTER_MINUTES + 1) * MINUTE_MS);
        await Promise.all([
            handleAlertingTimer(timer, makeContext().context, { alerting: a.alerting }),
            handleAlertingTimer(timer, makeContext().context, { alerting: b.alerting }),
        ]);
        expect(all(a, b).filter((n) => n.kind === 'escalated')).toEqual([]);
        expect((await storedIncidents(table))[0]).toMatchObject({ status: 'acknowledged', tier: 0 });
    });
});
