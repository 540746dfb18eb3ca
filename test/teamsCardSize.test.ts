/**
 * Teams cards stay under the size the Workflows flow can post: above about 28 KB the webhook still answers 202 and
 * the card is then dropped inside the flow run, silently (deployment-contracts.md, "Graph and Teams").
 */
import { TeamsWebhookChannel } from '../shared/adapters/teamsWebhookChannel';
import { parseResponderConfig } from '../shared/config/responderConfig';
import { applyFinding, type Incident } from '../shared/core/alerts/incident';
import {
    type NoticeView,
    renderSummaryCard,
    renderTeamsCard,
    TEAMS_MESSAGE_MAX_BYTES,
    teamsMessageBytes,
} from '../shared/core/alerts/render';
import { DeliveryError, type TeamsWebhookMessage } from '../shared/core/alerts/types';
import type { FindingDecision } from '../shared/core/decisions';
import { ruleIds } from '../shared/core/rules';
import { startTeamsWorkflowsFake, type TeamsWorkflowsFake } from '../shared/simulation/notificationFakes';
import { validateAdaptiveCard, validateTeamsWebhookMessage } from './support/adaptiveCard';

const VAULT_ID =
    '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/kv-payments-prod';
const NOW = Date.parse('2026-10-05T09:06:00.000Z');
const settings = parseResponderConfig(
    { alerting: { rosters: { default: { tiers: [{ name: 'primary', email: ['oncall@contoso.example'] }] } } } },
    ruleIds,
    'test',
).alerting;

function incident(over: Partial<FindingDecision>, actions: Incident['actions']): Incident {
    const f: FindingDecision = {
        type: 'finding',
        rule: 'access-policy-granted',
        severity: 'high',
        vault: 'kv-payments-prod',
        vaultId: VAULT_ID,
        time: '2026-10-05T09:05:00.000Z',
        principal: 'bad0bad0-0000-4000-8000-00000000000d',
        operations: ['VaultPatch'],
        correlationIds: ['0a1a7c86-0066-40a1-8a7c-0a1a7c860a1a'],
        count: 1,
        summary: 'kv-payments-prod access policy granted to an unapproved principal',
        actor: { upn: 'mallory@contoso.example', ip: '203.0.113.66', userAgent: 'Mozilla/5.0' },
        ...over,
    };
    const inc = applyFinding(undefined, f, [], {
        nowMs: NOW,
        settings,
        rosterName: 'default',
        tiers: 1,
        teamsTiers: [true],
        emailTiers: [true],
    });
    return { ...inc, actions };
}

/** A finding as large as attacker-controlled input and a busy remediation can make it. */
function hugeIncident(): Incident {
    const long = (what: string, n: number): string => `${what} ${'x*_[y](z) '.repeat(n)}`;
    const actions: Incident['actions'] = Array.from({ length: 250 }, (_, i) => ({
        action: 'remove-access-policy',
        status: 'applied' as const,
        summary: long(`removed access policy ${i} of principal`, 40),
        undoId: `undo-${i}`,
    }));
    return incident(
        {
            summary: long('summary', 200),
            operations: Array.from({ length: 300 }, (_, i) => `VaultPatch${i}`),
            actor: { upn: long('upn', 50), ip: '203.0.113.66', userAgent: long('agent', 100) },
        },
        actions,
    );
}

const LINKS = {
    ack: 'https://kvr.example.net/api/incidents/abc/ack?t=aaa.bbb.ccc',
    undo: 'https://kvr.example.net/api/incidents/abc/undo?t=ddd.eee.fff',
    portal: `https://portal.azure.com/#resource${VAULT_ID}/overview`,
};

function view(inc: Incident): NoticeView {
    return { incident: inc, kind: 'opened', tier: 0, tierName: 'primary', links: LINKS };
}

interface Card {
    body: Record<string, unknown>[];
    actions: { title: string; url: string }[];
}
const cardOf = (m: TeamsWebhookMessage): Card => m.attachments[0]?.content as unknown as Card;
const texts = (node: unknown, out: string[] = []): string[] => {
    if (Array.isArray(node)) for (const n of node) texts(n, out);
    else if (typeof node === 'object' && node !== null) {
        const o = node as Record<string, unknown>;
        if (typeof o.text === 'string') out.push(o.text);
        if (typeof o.title === 'string') out.push(o.title);
        for (const v of Object.values(o)) texts(v, out);
    }
    return out;
};

describe('Teams card size', () => {
    it('trims a huge finding to fit, keeping the headline, the essential facts and every button, and says so', () => {
        const message = renderTeamsCard(view(hugeIncident()));
        expect(teamsMessageBytes(message)).toBeLessThanOrEqual(TEAMS_MESSAGE_MAX_BYTES);
        expect(validateTeamsWebhookMessage(message)).toEqual([]);
        const card = cardOf(message);
        expect(card.actions.map((a) => a.title)).toEqual([
            'Acknowledge',
            'Undo remediation',
            'Open vault in the Azure portal',
        ]);
        expect(card.actions.map((a) => a.url)).toEqual([LINKS.ack, LINKS.undo, LINKS.portal]);
        const all = texts(card.body).join('\n');
        expect(all).toContain('HIGH · access-policy-granted · kv-payments-prod');
        expect(all).toMatch(/trimmed to fit the Teams size limit/);
        for (const fact of ['Vault', 'Rule', 'Severity', 'Who', 'Incident'])
            expect(texts(card.body)).toContain(`${fact}: `);
        expect(all).toMatch(/more action\(s\), not shown here|action\(s\): not shown here/);
    });

    it('leaves an ordinary card whole', () => {
        const inc = incident({}, [{ action: 'remove-access-policy', status: 'applied', summary: 'removed it' }]);
        const message = renderTeamsCard(view(inc));
        const all = texts(cardOf(message).body).join('\n');
        expect(all).not.toMatch(/trimmed/);
        expect(all).toContain('applied: removed it');
        expect(texts(cardOf(message).body)).toContain('Client: ');
    });

    it('keeps a summary card with a wide, long table under the limit', () => {
        const table = Array.from(
            { length: 60 },
            (_, i) => `${String(i).padStart(3)} ${'kv-vault-name | '.repeat(25)}`,
        ).join('\n');
        const message = renderSummaryCard('CMK dependency report', table);
        expect(teamsMessageBytes(message)).toBeLessThanOrEqual(TEAMS_MESSAGE_MAX_BYTES);
        expect(texts(cardOf(message).body).join('\n')).toMatch(/more line\(s\) in the full report/);
    });

    describe('through the real channel and the Teams Workflows fake', () => {
        let fake: TeamsWorkflowsFake;
        let channel: TeamsWebhookChannel;
        beforeAll(async () => {
            fake = await startTeamsWorkflowsFake({ validateCard: validateAdaptiveCard });
            channel = new TeamsWebhookChannel({ webhookUrl: fake.webhookUrl, ca: fake.caPem, timeoutMs: 5000 });
        });
        afterAll(async () => {
            await channel.close();
            await fake.close();
        });

        it('delivers the trimmed card of a huge finding', async () => {
            const teams = renderTeamsCard(view(hugeIncident()));
            await channel.send({ id: 'n-1', incidentId: 'inc-1', kind: 'opened', channel: 'teams', teams });
            expect(fake.requests.map((r) => r.status)).toEqual([202]);
            expect(fake.messages).toEqual([teams]);
            // The fake accepts any size, as the real webhook does (202); what Teams would drop is above the limit.
            expect(teamsMessageBytes(fake.messages[0] as unknown as TeamsWebhookMessage)).toBeLessThanOrEqual(
                TEAMS_MESSAGE_MAX_BYTES,
            );
        });

        it('refuses, for good and without posting, a body above the limit that Teams would drop after a 202', async () => {
            fake.clearLog();
            const huge = renderTeamsCard(view(incident({}, [])));
            const content = huge.attachments[0]?.content as unknown as { body: unknown[] };
            content.body.push({ type: 'TextBlock', text: 'y'.repeat(TEAMS_MESSAGE_MAX_BYTES), wrap: true });
            const err = await channel
                .send({ id: 'n-2', incidentId: 'inc-1', kind: 'opened', channel: 'teams', teams: huge })
                .then(
                    () => undefined,
                    (e: unknown) => e,
                );
            expect(err).toBeInstanceOf(DeliveryError);
            expect((err as DeliveryError).transient).toBe(false);
            expect((err as Error).message).toMatch(/not sent: above the 27000-byte limit/);
            expect(fake.requests).toEqual([]);
        });
    });
});
