// The incident page's preview of an undo, computed from the saved undo record alone: every change with its before and
// after, and exactly the parts the incident's own undo restores (its rule, and of access policies its grantees).
import type { Incident } from '../../shared/core/alerts/incident';
import { incidentPageContext, undoPreviewOf } from '../../shared/core/alerts/incidentPage';
import { confirmationPage } from '../../shared/core/alerts/render';
import type { UndoRecord } from '../../shared/core/remediation/undo';

const A = 'aaaaaaaa-0000-0000-0000-000000000001';
const B = 'bbbbbbbb-0000-0000-0000-000000000002';
const VAULT_ID = '/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-payments-prod';

const RECORD: UndoRecord = {
    vaultId: VAULT_ID,
    at: '2026-10-05T09:06:00.000Z',
    rules: ['firewall-opened', 'firewall-ip-rule-added', 'access-policy-granted'],
    parts: [
        { id: 'p0', rule: 'firewall-opened', action: 'restore-firewall-default', defaultAction: 'Allow' },
        {
            id: 'p1',
            rule: 'firewall-ip-rule-added',
            action: 'remove-ip-rule',
            ipRules: ['203.0.113.66/32', '<img src=x onerror=alert(1)>'],
        },
        {
            id: 'p2',
            rule: 'access-policy-granted',
            action: 'remove-access-policy',
            entry: {
                tenantId: 't',
                objectId: A,
                permissions: { keys: [], secrets: ['get', 'list'], certificates: [] },
            },
        },
        {
            id: 'p3',
            rule: 'access-policy-granted',
            action: 'remove-access-policy',
            entry: { tenantId: 't', objectId: B, permissions: { keys: ['get'], secrets: [], certificates: [] } },
        },
    ],
} as unknown as UndoRecord;

function incident(rule: string, over: Partial<Incident> = {}): Incident {
    return {
        id: 'inc1',
        vault: 'kv-payments-prod',
        vaultId: VAULT_ID,
        rule,
        severity: 'high',
        status: 'open',
        openedAt: '2026-10-05T09:05:00.000Z',
        lastSeenAt: '2026-10-05T09:05:00.000Z',
        lastSeenMs: 0,
        findings: 1,
        records: 1,
        summary: 'summary',
        operations: ['VaultPatch'],
        correlationIds: [],
        actor: { upn: 'mallory@contoso.example' },
        roster: 'default',
        tier: 0,
        reminders: 0,
        tierSinceMs: 0,
        actions: [{ action: 'x', status: 'applied', undoId: 'u1' }],
        notifications: [],
        history: [],
        ...over,
    };
}

describe('undoPreviewOf', () => {
    it("lists every change of the remediation and restores only the incident's own rule", () => {
        const p = undoPreviewOf(incident('firewall-opened'), 'u1', RECORD);
        expect(p.changes.map((c) => [c.what, c.before, c.after, c.undo.restores])).toEqual([
            ['Firewall default action', 'Allow', 'Deny', true],
            ['IP rules (2)', 'present: 203.0.113.66/32, <img src=x onerror=alert(1)>', 'removed', false],
            [`Access policy of ${A}`, 'secrets: get, list', 'removed', false],
            [`Access policy of ${B}`, 'keys: get', 'removed', false],
        ]);
        expect(p.restores).toEqual(['firewall default action back to Allow']);
        expect(p.changes[1]?.undo).toEqual({
            restores: false,
            why: 'asked for by firewall-ip-rule-added: undo it from that incident',
        });
    });

    it('restores of access policies only the grantees the incident names', () => {
        const p = undoPreviewOf(incident('access-policy-granted', { grantees: [B] }), 'u1', RECORD);
        expect(p.restores).toEqual([`access policy of ${B} added back (keys: get)`]);
        expect(p.changes.find((c) => c.what.includes(A))?.undo).toEqual({
            restores: false,
            why: 'another principal of this rule: its own incident',
        });
    });

    it('restores nothing that is already restored, and says when', () => {
        const record = {
            ...RECORD,
            parts: (RECORD.parts ?? []).map((p) => (p.id === 'p1' ? { ...p, undoneAt: '2026-10-05T10:00:00Z' } : p)),
        };
        const p = undoPreviewOf(incident('firewall-ip-rule-added'), 'u1', record);
        expect(p.restores).toEqual([]);
        expect(p.changes[1]?.undo).toEqual({ restores: false, why: 'already restored at 2026-10-05T10:00:00Z' });
    });
});

describe('incidentPageContext and the page', () => {
    it("carries the rule's runbook and renders changes and undo scope escaped, without script", () => {
        const inc = incident('firewall-opened');
        const ctx = incidentPageContext(inc, [{ undoId: 'u1', record: RECORD }]);
        expect(ctx.ruleTitle).toBe('Key Vault firewall opened');
        expect(ctx.runbook.length).toBeGreaterThanOrEqual(2);
        expect(ctx.undoable).toBe(true);
        const html = confirmationPage(inc, 'undo', 'a.b.c', undefined, undefined, ctx);
        expect(html).not.toMatch(/<script|<img/i);
        expect(html).toContain('&#60;img src&#61;x onerror&#61;alert(1)&#62;');
        expect(html).toContain('<ul id="undo-restores"><li>firewall default action back to Allow</li></ul>');
        expect(html).toContain(`<a id="portal" href="https://portal.azure.com/#resource${VAULT_ID}/overview"`);
        for (const step of ctx.runbook) expect(html).toContain(step.replace(/'/g, '&#39;').slice(0, 30));
    });

    it('says that nothing would be restored for an incident without an applied remediation', () => {
        const inc = incident('new-user-access', { actions: [] });
        const ctx = incidentPageContext(inc, []);
        expect(ctx.undoable).toBe(false);
        const html = confirmationPage(inc, 'ack', 'a.b.c', undefined, undefined, ctx);
        expect(html).toContain('Nothing: this rule detects and notifies only.');
        expect(html).not.toContain('id="undo-restores"');
    });
});
