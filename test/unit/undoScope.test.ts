// The pure parts of a safe undo: per-rule parts of an undo record, their bounds, expiring and bounded approvals, and
// the sign-in and same-origin checks of link actions.
import { checkSameOrigin, easyAuthActor } from '../../shared/core/alerts/linkGuard';
import {
    activeApprovals,
    addApprovals,
    approvalFits,
    type ApprovalGrant,
    markPartsUndone,
    MAX_APPROVED_ITEMS,
    MAX_STATE_CHARS,
    partsInScope,
    planRestore,
    undoRecordOf,
    withApprovals,
} from '../../shared/core/remediation/undo';
import type { RemediationPlan, VaultSnapshot } from '../../shared/core/remediation/types';
import type { VaultPolicy } from '../../shared/core/rules/settings';

const VAULT_ID = '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv';
const EVE = 'e5e5e5e5-0000-4000-8000-0000000000e5';
const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';
const HOUR = 3_600_000;
const NOW = Date.parse('2026-10-05T09:00:00Z');

const before: VaultSnapshot = {
    id: VAULT_ID,
    name: 'kv',
    properties: {
        tenantId: 't',
        publicNetworkAccess: 'Enabled',
        networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow', ipRules: [{ value: '203.0.113.66/32' }] },
        accessPolicies: [
            { tenantId: 't', objectId: EVE, permissions: { secrets: ['get'] } },
            { tenantId: 't', objectId: MALLORY, permissions: { secrets: ['get', 'list'] } },
        ],
    },
};

const plan: RemediationPlan = {
    patch: {
        networkAcls: { bypass: 'AzureServices', defaultAction: 'Deny', ipRules: [], virtualNetworkRules: [] },
        publicNetworkAccess: 'Disabled',
    },
    accessPolicyRemovals: [
        { tenantId: 't', objectId: EVE, permissions: { secrets: ['get'] } },
        { tenantId: 't', objectId: MALLORY, permissions: { secrets: ['get', 'list'] } },
    ],
    actions: [
        { action: 'restore-firewall-default', rule: 'firewall-opened', summary: '', detail: {} },
        {
            action: 'remove-ip-rule',
            rule: 'firewall-ip-rule-added',
            summary: '',
            detail: { removed: ['203.0.113.66/32'] },
        },
        { action: 'disable-public-network-access', rule: 'public-network-access-enabled', summary: '', detail: {} },
        { action: 'remove-access-policy', rule: 'access-policy-granted', summary: '', detail: { objectId: EVE } },
        { action: 'remove-access-policy', rule: 'access-policy-granted', summary: '', detail: { objectId: MALLORY } },
    ],
    skipped: [],
};

const after: VaultSnapshot = {
    ...before,
    properties: {
        tenantId: 't',
        publicNetworkAccess: 'Disabled',
        networkAcls: { bypass: 'AzureServices', defaultAction: 'Deny', ipRules: [] },
        accessPolicies: [],
    },
};

describe('undo records: one part per change, tagged with its rule', () => {
    const record = undoRecordOf(VAULT_ID, 'at', ['firewall-opened'], before, plan);

    it('keeps what each action changed, and nothing else of the vault', () => {
        expect(record.parts?.map((p) => [p.action, p.rule])).toEqual([
            ['restore-firewall-default', 'firewall-opened'],
            ['remove-ip-rule', 'firewall-ip-rule-added'],
            ['disable-public-network-access', 'public-network-access-enabled'],
            ['remove-access-policy', 'access-policy-granted'],
            ['remove-access-policy', 'access-policy-granted'],
        ]);
        expect(record).not.toHaveProperty('before');
    });

    it('restores only the parts of the incident rule, and of access policies only the named grantees', () => {
        const fw = planRestore(record, after, { rules: ['firewall-opened'] });
        expect(fw.restored).toEqual(['firewall default action back to Allow']);
        expect(fw.patch).toEqual({
            networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow', ipRules: [], virtualNetworkRules: [] },
        });
        expect(fw.accessPolicyAdds).toEqual([]);
        expect(fw.approvals).toEqual({ ipRanges: [], principals: [], networkDefaultAction: 'Allow' });

        const eve = planRestore(record, after, { rules: ['access-policy-granted'], grantees: [EVE.toUpperCase()] });
        expect(eve.accessPolicyAdds.map((e) => e.objectId)).toEqual([EVE]);
        expect(eve.patch).toBeUndefined();
        // Without named grantees, every access-policy part of the rule.
        expect(planRestore(record, after, { rules: ['access-policy-granted'] }).accessPolicyAdds).toHaveLength(2);
    });

    it('marks only the restored parts used; the others stay undoable', () => {
        const fw = planRestore(record, after, { rules: ['firewall-opened'] });
        const marked = markPartsUndone(record, fw.parts, '2026-10-05T09:10:00.000Z');
        expect(partsInScope(marked, { rules: ['firewall-opened'] })[0]?.undoneAt).toBe('2026-10-05T09:10:00.000Z');
        expect(planRestore(marked, after, { rules: ['firewall-opened'] }).parts).toEqual([]);
        expect(planRestore(marked, after, { rules: ['public-network-access-enabled'] }).restored).toEqual([
            'public network access back to Enabled',
        ]);
    });

    it('stays within the Table Storage property limit and says how many removed IP rules it could not keep', () => {
        const ipRules = Array.from({ length: 1000 }, (_, i) => ({
            value: `2001:db8:${i.toString(16)}:ffff:ffff:ffff:ffff:ffff/128`,
        }));
        const big: VaultSnapshot = { ...before, properties: { ...before.properties, networkAcls: { ipRules } } };
        const removeAll: RemediationPlan = {
            patch: { networkAcls: { ipRules: [] } },
            accessPolicyRemovals: [],
            actions: [
                {
                    action: 'remove-ip-rule',
                    rule: 'firewall-ip-rule-added',
                    summary: '',
                    detail: { removed: ipRules.map((r) => r.value) },
                },
            ],
            skipped: [],
        };
        const r = undoRecordOf(VAULT_ID, 'at', ['firewall-ip-rule-added'], big, removeAll);
        expect(JSON.stringify(r).length).toBeLessThanOrEqual(MAX_STATE_CHARS);
        const part = r.parts?.[0];
        if (part?.action !== 'remove-ip-rule') throw new Error('expected an IP rule part');
        expect(part.ipRules.length + (part.omitted ?? 0)).toBe(1000);
        expect(part.omitted).toBeGreaterThan(0);
        const restore = planRestore(r, after, { rules: ['firewall-ip-rule-added'] });
        expect(restore.restored.at(-1)).toBe(`${part.omitted} more removed IP rule(s) were not kept for undo`);
    });
});

describe('approvals expire and stay bounded', () => {
    const policy: VaultPolicy = {
        networkDefaultAction: 'Deny',
        publicNetworkAccess: 'Disabled',
        approvedIpRanges: [],
        approvedPrincipals: new Map(),
        mode: 'enforce',
        ruleModes: new Map(),
    };
    const grant = (undoId: string, until: number, n = 1): ApprovalGrant => ({
        undoId,
        until,
        ipRanges: Array.from({ length: n }, (_, i) => `198.51.${i >> 8}.${i & 255}/32`),
        principals: [],
        networkDefaultAction: 'Allow',
    });

    it('drops a grant once it expired: the policy is enforced again', () => {
        const { value } = addApprovals(undefined, grant('u1', NOW + 24 * HOUR), NOW);
        expect(activeApprovals(value, NOW + 23 * HOUR)).toMatchObject({ networkDefaultAction: 'Allow' });
        expect(withApprovals(policy, value, NOW + 23 * HOUR).networkDefaultAction).toBeUndefined();
        expect(activeApprovals(value, NOW + 36 * HOUR)).toBeUndefined();
        expect(withApprovals(policy, value, NOW + 36 * HOUR)).toBe(policy);
        // Adding later drops the expired grant from storage too.
        const later = addApprovals(value, grant('u2', NOW + 60 * HOUR), NOW + 36 * HOUR).value;
        expect(later.grants.map((g) => g.undoId)).toEqual(['u2']);
    });

    it('does not honour approvals stored without an expiry (before approvals expired)', () => {
        expect(
            activeApprovals({ ipRanges: ['203.0.113.66/32'], principals: [], networkDefaultAction: 'Allow' }, NOW),
        ).toBeUndefined();
    });

    it('keeps at most MAX_APPROVED_ITEMS items and MAX_STATE_CHARS characters, dropping what expires first', () => {
        let stored: unknown;
        const dropped: string[] = [];
        for (let i = 0; i < 30; i++) {
            const r = addApprovals(stored, grant(`u${i}`, NOW + (48 - i) * HOUR, 60), NOW);
            stored = r.value;
            dropped.push(...r.dropped.map((g) => g.undoId));
        }
        const grants = (stored as { grants: ApprovalGrant[] }).grants;
        const items = grants.reduce((n, g) => n + g.ipRanges.length + 1, 0);
        expect(items).toBeLessThanOrEqual(MAX_APPROVED_ITEMS);
        expect(JSON.stringify(stored).length).toBeLessThanOrEqual(MAX_STATE_CHARS);
        expect(grants.at(-1)?.undoId).toBe('u29'); // the newest is always kept
        // The ones that expire first went first: u0 expires last of all, so it is still there.
        expect(grants.map((g) => g.undoId)).toContain('u0');
        expect(dropped.length).toBeGreaterThan(0);
        expect(dropped).not.toContain('u0');
    });

    it('refuses (before any change) an approval that cannot be stored on its own', () => {
        expect(approvalFits(grant('u', NOW, 10))).toBe(true);
        expect(approvalFits(grant('u', NOW, MAX_APPROVED_ITEMS + 1))).toBe(false);
    });
});

describe('who may act through a link', () => {
    const headers =
        (h: Record<string, string>) =>
        (name: string): string | undefined =>
            h[name.toLowerCase()];
    const principal = (p: unknown): string => Buffer.from(JSON.stringify(p)).toString('base64');

    it('reads the signed-in Entra ID user from the App Service Authentication headers', () => {
        const p = principal({
            auth_typ: 'aad',
            name_typ: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
            claims: [
                { typ: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn', val: 'alice@contoso.example' },
                { typ: 'http://schemas.microsoft.com/identity/claims/objectidentifier', val: EVE },
            ],
        });
        expect(easyAuthActor(headers({ 'x-ms-client-principal': p }))).toEqual({
            actor: { name: 'alice@contoso.example', id: EVE, idp: 'aad' },
        });
        expect(
            easyAuthActor(
                headers({ 'x-ms-client-principal-name': 'bob@contoso.example', 'x-ms-client-principal-id': MALLORY }),
            ),
        ).toEqual({ actor: { name: 'bob@contoso.example', id: MALLORY } });
        expect(easyAuthActor(headers({}))).toHaveProperty('error');
        expect(easyAuthActor(headers({ 'x-ms-client-principal': 'not base64 json' }))).toHaveProperty('error');
        expect(
            easyAuthActor(headers({ 'x-ms-client-principal-name': 'x', 'x-ms-client-principal-idp': 'github' })),
        ).toEqual({ error: "signed in with 'github': sign in with a Microsoft Entra ID account" });
    });

    it('accepts a confirming POST only from the public origin', () => {
        const o = 'https://kvr.example.net';
        expect(checkSameOrigin(headers({ origin: o }), o)).toBeUndefined();
        expect(checkSameOrigin(headers({ origin: 'https://kvr.example.net:443' }), o)).toBeUndefined();
        expect(checkSameOrigin(headers({ origin: 'null', 'sec-fetch-site': 'same-origin' }), o)).toBeUndefined();
        expect(checkSameOrigin(headers({ referer: `${o}/api/incidents/x/undo?t=y` }), o)).toBeUndefined();
        for (const bad of [
            { origin: 'https://evil.example' },
            { origin: 'https://kvr.example.net.evil.example' },
            { origin: o, 'sec-fetch-site': 'cross-site' },
            { origin: 'null' },
            { referer: 'https://evil.example/' },
            {},
        ])
            expect(checkSameOrigin(headers(bad), o)).toEqual(expect.any(String));
    });
});
