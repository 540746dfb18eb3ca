import { parseResponderConfig } from '../../shared/config/responderConfig';
import {
    actionGranted,
    actionMatches,
    actionsNeeded,
    auditRoutingOf,
    doctorExitCode,
    doctorReport,
    enforcedActions,
    excessActions,
    formatDoctorTable,
    type HubTarget,
    isUnresolvedKeyVaultReference,
    missingActions,
} from '../../shared/core/doctor/report';
import { ruleIds } from '../../shared/core/rules';

const VAULT = {
    subscriptionId: 's',
    resourceGroup: 'rg',
    name: 'kv-a',
    resourceId: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-a',
};

describe('RBAC action matching', () => {
    it('matches wildcards anywhere, case-insensitively, and nothing else', () => {
        expect(actionMatches('*', 'Microsoft.KeyVault/vaults/write')).toBe(true);
        expect(actionMatches('*/read', 'Microsoft.KeyVault/vaults/read')).toBe(true);
        expect(actionMatches('*/read', 'Microsoft.KeyVault/vaults/write')).toBe(false);
        expect(actionMatches('microsoft.keyvault/VAULTS/*', 'Microsoft.KeyVault/vaults/accessPolicies/write')).toBe(
            true,
        );
        expect(actionMatches('Microsoft.KeyVault/vaults/write', 'Microsoft.KeyVault/vaults/writeX')).toBe(false);
        // A dot in a pattern is a dot, not "any character".
        expect(actionMatches('Microsoft.KeyVault/vaults/read', 'MicrosoftXKeyVault/vaults/read')).toBe(false);
    });

    it('subtracts notActions within the same role only', () => {
        const contributorMinusWrite = {
            actions: ['Microsoft.KeyVault/*'],
            notActions: ['Microsoft.KeyVault/vaults/write'],
        };
        expect(actionGranted([contributorMinusWrite], 'Microsoft.KeyVault/vaults/write')).toBe(false);
        expect(actionGranted([contributorMinusWrite], 'Microsoft.KeyVault/vaults/read')).toBe(true);
        // Another role grants it back: NotActions are not a deny.
        expect(
            actionGranted(
                [contributorMinusWrite, { actions: ['Microsoft.KeyVault/vaults/write'] }],
                'Microsoft.KeyVault/vaults/write',
            ),
        ).toBe(true);
        // Data actions never grant control-plane actions.
        expect(actionGranted([{ dataActions: ['*'] }], 'Microsoft.KeyVault/vaults/read')).toBe(false);
        expect(
            missingActions(
                [{ actions: ['*/read'] }],
                ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write'],
            ),
        ).toEqual(['Microsoft.KeyVault/vaults/write']);
    });
});

describe('the actions remediation needs on a vault', () => {
    const policyOf = (input: unknown) => parseResponderConfig(input, ruleIds, 'test').detection.policyFor(VAULT);
    const on = () => true;

    it('none in monitor mode (the default)', () => {
        expect(enforcedActions(policyOf({}), on, false)).toEqual([]);
    });

    it('every action in enforce mode; no access-policy removal on an RBAC vault', () => {
        const p = policyOf({ guardrails: { default: { mode: 'enforce' } } });
        expect(enforcedActions(p, on, false)).toEqual([
            'disable-public-network-access',
            'remove-access-policy',
            'remove-ip-rule',
            'remove-role-assignment',
            'restore-diagnostic-setting',
            'restore-firewall-default',
        ]);
        expect(enforcedActions(p, on, true)).not.toContain('remove-access-policy');
        expect(actionsNeeded(enforcedActions(p, on, true))).toEqual([
            // remove-role-assignment: read and delete; no write (its undo is manual, issue 15)
            'Microsoft.Authorization/roleAssignments/delete',
            'Microsoft.Authorization/roleAssignments/read',
            // restore-diagnostic-setting: list and write; no delete
            'Microsoft.Insights/diagnosticSettings/read',
            'Microsoft.Insights/diagnosticSettings/write',
            'Microsoft.KeyVault/vaults/read',
            'Microsoft.KeyVault/vaults/write',
            // the firewall PATCH re-sends the vault's virtual network rules (ACTION_PERMISSIONS)
            'Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action',
        ]);
    });

    it('removing virtual network rules counts only where a policy lists the approved subnets', () => {
        const subnet =
            '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-hub/subnets/snet-apps';
        const p = policyOf({ guardrails: { default: { mode: 'enforce', approvedVirtualNetworkRules: [subnet] } } });
        expect(enforcedActions(p, on, false)).toContain('remove-vnet-rule');
        expect(actionsNeeded(['remove-vnet-rule'])).toContain(
            'Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action',
        );
    });

    it('the RBAC switch only where the policy wants Azure RBAC', () => {
        const p = policyOf({ guardrails: { default: { mode: 'enforce', authorization: 'rbac' } } });
        expect(enforcedActions(p, on, true)).toContain('restore-rbac-authorization');
        expect(actionsNeeded(['restore-rbac-authorization'])).toEqual([
            'Microsoft.KeyVault/vaults/read',
            'Microsoft.KeyVault/vaults/write',
        ]);
    });

    it('per-rule modes and disabled rules count', () => {
        const p = policyOf({
            guardrails: { default: { mode: 'monitor', ruleModes: { 'access-policy-granted': 'enforce' } } },
        });
        expect(enforcedActions(p, on, false)).toEqual(['remove-access-policy']);
        expect(actionsNeeded(['remove-access-policy'])).toEqual([
            'Microsoft.KeyVault/vaults/accessPolicies/write',
            'Microsoft.KeyVault/vaults/read',
        ]);
        expect(enforcedActions(p, (rule) => rule !== 'access-policy-granted', false)).toEqual([]);
    });
});

describe('diagnostic settings to our hub', () => {
    const target: HubTarget = {
        namespaceName: 'kvr-ns',
        namespaceId: '/subscriptions/s/resourceGroups/rg-kvr/providers/Microsoft.EventHub/namespaces/kvr-ns',
        hubName: 'insights-logs-auditevent',
    };
    const rule = `${target.namespaceId}/authorizationRules/send`;
    const setting = (properties: Record<string, unknown>) => ({ name: 'd', properties });

    it('accepts the AuditEvent category or the audit / allLogs group, enabled, to our namespace and hub', () => {
        for (const log of [{ category: 'AuditEvent' }, { categoryGroup: 'audit' }, { categoryGroup: 'allLogs' }])
            expect(
                auditRoutingOf(
                    [
                        setting({
                            eventHubAuthorizationRuleId: rule,
                            eventHubName: target.hubName,
                            logs: [{ ...log, enabled: true }],
                        }),
                    ],
                    target,
                ).ok,
            ).toBe(true);
    });

    it('takes a missing hub name as insights-logs-auditevent (what Azure Monitor picks)', () => {
        const s = setting({ eventHubAuthorizationRuleId: rule, logs: [{ categoryGroup: 'audit', enabled: true }] });
        expect(auditRoutingOf([s], target).ok).toBe(true);
        expect(auditRoutingOf([s], { ...target, hubName: 'kv-logs' }).ok).toBe(false);
    });

    it('matches the namespace by resource id when known, else by name', () => {
        const elsewhere = rule.replace('rg-kvr', 'rg-other');
        const s = setting({
            eventHubAuthorizationRuleId: elsewhere,
            logs: [{ category: 'AuditEvent', enabled: true }],
        });
        expect(auditRoutingOf([s], target)).toMatchObject({ ok: false });
        expect(auditRoutingOf([s], { namespaceName: 'KVR-NS', hubName: target.hubName }).ok).toBe(true);
    });

    it('says what is wrong with each setting when none fits', () => {
        const r = auditRoutingOf(
            [
                setting({
                    workspaceId:
                        '/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w',
                }),
                setting({ eventHubAuthorizationRuleId: rule, logs: [{ categoryGroup: 'audit', enabled: false }] }),
            ],
            target,
        );
        expect(r).toMatchObject({ ok: false });
        if (r.ok) return;
        expect(r.detail).toContain('sends to no event hub');
        expect(r.detail).toContain('does not have AuditEvent');
        expect(r.fix).toContain("enable the 'audit' category group");
    });
});

describe('report', () => {
    it('exits 1 on any failure, 0 with skips, and prints the fix on the row', () => {
        const ok = doctorReport([
            { check: 'a', target: 't', status: 'pass', detail: 'fine' },
            { check: 'b', target: 't', status: 'skip', detail: 'not configured' },
        ]);
        expect(doctorExitCode(ok)).toBe(0);
        const bad = doctorReport([
            ...ok.checks,
            { check: 'c', target: 'x', status: 'fail', detail: 'no', fix: 'do this' },
        ]);
        expect(doctorExitCode(bad)).toBe(1);
        expect(bad.counts).toEqual({ pass: 1, fail: 1, skip: 1, warn: 0 });
        const table = formatDoctorTable(bad);
        expect(table).toMatch(/^c\s+x\s+FAIL\s+no\s+do this$/m);
        expect(table).toContain('1 passed, 1 failed, 1 skipped: FAILED');
        // A warning does not fail the run; the summary counts it.
        const warned = doctorReport([
            ...ok.checks,
            { check: 'd', target: 'x', status: 'warn', detail: 'too much', fix: 'drop it' },
        ]);
        expect(doctorExitCode(warned)).toBe(0);
        expect(formatDoctorTable(warned)).toMatch(/^d\s+x\s+WARN\s+too much\s+drop it$/m);
        expect(formatDoctorTable(warned)).toContain('1 passed, 0 failed, 1 skipped, 1 warned: OK');
    });

    it('least privilege: the rights the responder does without, granted by any role, are named', () => {
        expect(
            excessActions([{ actions: [...actionsNeeded(['remove-role-assignment', 'restore-diagnostic-setting'])] }]),
        ).toEqual([]);
        expect(excessActions([{ actions: ['*'] }])).toEqual([
            'Microsoft.Authorization/roleAssignments/write',
            'Microsoft.Insights/diagnosticSettings/delete',
        ]);
        // Contributor: everything but Microsoft.Authorization/*/Write (and a few others).
        expect(excessActions([{ actions: ['*'], notActions: ['Microsoft.Authorization/*/Write'] }])).toEqual([
            'Microsoft.Insights/diagnosticSettings/delete',
        ]);
    });

    it('recognises an unresolved Key Vault reference', () => {
        expect(
            isUnresolvedKeyVaultReference('@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/x/)'),
        ).toBe(true);
        expect(isUnresolvedKeyVaultReference(' @microsoft.keyvault(VaultName=kv;SecretName=x)')).toBe(true);
        expect(isUnresolvedKeyVaultReference('https://prod.westeurope.logic.azure.com/workflows/x')).toBe(false);
        expect(isUnresolvedKeyVaultReference(undefined)).toBe(false);
    });
});
