// Pure planning of the issue 15 actions: which role assignments go, when the RBAC switch and the diagnostic setting
// are restored, and what an undo approves.
import { parseResponderConfig } from '../../shared/config/responderConfig';
import {
    planDiagnosticRestore,
    planRemediation,
    planRoleAssignmentRemoval,
    scopeReaches,
    sendsAuditTo,
} from '../../shared/core/remediation/plan';
import type { RoleAssignmentSnapshot, VaultSnapshot } from '../../shared/core/remediation/types';
import {
    diagnosticSettingDeleteCommand,
    mergeApprovals,
    planRestore,
    roleAssignmentCreateCommand,
    undoRecordOfPart,
    withApprovals,
} from '../../shared/core/remediation/undo';
import { ruleIds } from '../../shared/core/rules';
import { mergeIntent } from '../../shared/app/reconcileIntents';

const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const VAULT_ID = `/subscriptions/${SUB}/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/kv-payments-prod`;
const VAULT = { subscriptionId: SUB, resourceGroup: 'rg-payments', name: 'kv-payments-prod', resourceId: VAULT_ID };
const BOB = 'b0b00000-0000-4000-8000-0000000000b0';
const SECRETS_USER = '4633458b-17de-408a-b874-0445c86b69e6';
const OWNER = '8e3af657-a8ff-443c-a75c-2fe8c4bcb635';
const READER = 'acdd72a7-3385-48ef-bd42-f606fba81ae7';
const RULE = `/subscriptions/${SUB}/resourcegroups/rg-kvr/providers/microsoft.eventhub/namespaces/ns/authorizationrules/send`;

const vault = (p: Partial<VaultSnapshot['properties']> = {}): VaultSnapshot => ({
    id: VAULT_ID,
    name: 'kv-payments-prod',
    properties: { tenantId: 't', ...p },
});
const assignment = (
    role: string,
    scope = `/subscriptions/${SUB}/resourceGroups/rg-payments`,
): RoleAssignmentSnapshot => ({
    id: `${scope}/providers/Microsoft.Authorization/roleAssignments/0b7f1a10-1f7e-4bd8-9a58-1c2a1e9d0c11`,
    scope,
    roleDefinitionId: `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${role}`,
    principalId: BOB,
    principalType: 'User',
});
const settingsOf = (input: unknown) => parseResponderConfig(input, ruleIds, 'test').detection;
const guard = { protectedPrincipals: new Set<string>() };

describe('remove-role-assignment planning', () => {
    const policy = settingsOf({}).policyFor(VAULT);

    it('removes a Key Vault role of an unapproved principal at the vault or any scope above it', () => {
        for (const scope of [
            VAULT_ID,
            `/subscriptions/${SUB}/resourceGroups/rg-payments`,
            `/subscriptions/${SUB}`,
            '/providers/Microsoft.Management/managementGroups/corp',
        ])
            expect(planRoleAssignmentRemoval(assignment(SECRETS_USER, scope), vault(), policy, guard)).toMatchObject({
                remove: true,
                role: 'Key Vault Secrets User',
            });
    });

    it('leaves other scopes, other roles, protected and approved principals alone, saying why', () => {
        const other = `/subscriptions/${SUB}/resourceGroups/rg-other`;
        expect(scopeReaches(other, VAULT_ID)).toBe(false);
        expect(planRoleAssignmentRemoval(assignment(SECRETS_USER, other), vault(), policy, guard)).toMatchObject({
            remove: false,
            reason: 'outside-vault-scope',
        });
        expect(planRoleAssignmentRemoval(assignment(READER), vault(), policy, guard)).toMatchObject({
            remove: false,
            reason: 'not-a-key-vault-role',
        });
        expect(
            planRoleAssignmentRemoval(assignment(SECRETS_USER), vault(), policy, {
                protectedPrincipals: new Set([BOB]),
            }),
        ).toMatchObject({ remove: false, reason: 'protected-principal' });
        const approved = settingsOf({
            guardrails: { default: { approvedPrincipals: [{ objectId: BOB, roles: ['Key Vault Secrets User'] }] } },
        }).policyFor(VAULT);
        expect(planRoleAssignmentRemoval(assignment(SECRETS_USER), vault(), approved, guard)).toMatchObject({
            remove: false,
            reason: 'approved-principal',
        });
        // Approved for Secrets User, not for Owner.
        expect(planRoleAssignmentRemoval(assignment(OWNER), vault(), approved, guard)).toMatchObject({ remove: true });
    });

    it('an undo approval lets exactly that principal hold exactly that role', () => {
        const record = undoRecordOfPart(VAULT_ID, '2026-10-05T09:05:00Z', ['role-assignment-granted'], {
            rule: 'role-assignment-granted',
            action: 'remove-role-assignment',
            assignment: assignment(SECRETS_USER),
        });
        const restore = planRestore(record, vault());
        // Nothing for the responder to create (its role holds no roleAssignments/write): a command for the person.
        expect(restore.restored).toEqual([]);
        expect(restore.manual).toEqual([
            {
                what: expect.stringContaining(BOB),
                command: `az role assignment create --assignee-object-id ${BOB} --assignee-principal-type User --role ${assignment(SECRETS_USER).roleDefinitionId} --scope ${assignment(SECRETS_USER).scope}`,
            },
        ]);
        const rg = `/subscriptions/${SUB}/resourcegroups/rg-payments`;
        expect(restore.approvals.roles).toEqual([{ objectId: BOB, roleDefinitionId: SECRETS_USER, scope: rg }]);
        const approved = withApprovals(policy, restore.approvals);
        expect(planRoleAssignmentRemoval(assignment(SECRETS_USER), vault(), approved, guard)).toMatchObject({
            remove: false,
            reason: 'approved-principal',
        });
        expect(planRoleAssignmentRemoval(assignment(OWNER), vault(), approved, guard)).toMatchObject({ remove: true });
        // That scope only: the same role at the subscription is not approved.
        expect(
            planRoleAssignmentRemoval(assignment(SECRETS_USER, `/subscriptions/${SUB}`), vault(), approved, guard),
        ).toMatchObject({ remove: true });
        // The approval grants no access-policy permission, and approves the principal nowhere else.
        expect(approved.approvedPrincipals.has(BOB)).toBe(false);
        // A grant written before approvals named the scope keeps meaning that role at any scope.
        const legacy = withApprovals(policy, {
            ...restore.approvals,
            roles: [{ objectId: BOB, roleDefinitionId: SECRETS_USER }],
        });
        expect(
            planRoleAssignmentRemoval(assignment(SECRETS_USER, `/subscriptions/${SUB}`), vault(), legacy, guard),
        ).toMatchObject({ remove: false, reason: 'approved-principal' });
        expect(legacy.approvedPrincipals.get(BOB)).toEqual({ keys: [], secrets: [], certificates: [], storage: [] });
        // Merging keeps one entry per principal and role.
        expect(mergeApprovals(restore.approvals, restore.approvals).roles).toHaveLength(1);
        // A scoped undo of another principal's incident does not restore it.
        expect(planRestore(record, vault(), { rules: ['role-assignment-granted'], grantees: ['x'] }).parts).toEqual([]);
    });
});

describe('manual undo commands', () => {
    it('name exactly the deleted assignment, with every value quoted for a POSIX shell where it needs it', () => {
        const a: RoleAssignmentSnapshot = {
            ...assignment(SECRETS_USER),
            description: "bob's break-fix access; rm -rf /",
            condition: "@Resource[Microsoft.KeyVault/vaults/secrets:name] StringEquals 'db-password'",
            conditionVersion: '2.0',
        };
        expect(roleAssignmentCreateCommand(a)).toBe(
            `az role assignment create --assignee-object-id ${BOB} --assignee-principal-type User` +
                ` --role ${a.roleDefinitionId} --scope ${a.scope}` +
                ` --description 'bob'\\''s break-fix access; rm -rf /'` +
                ` --condition '@Resource[Microsoft.KeyVault/vaults/secrets:name] StringEquals '\\''db-password'\\'''` +
                ` --condition-version 2.0`,
        );
        // Without a principal type the flag is left out (az then looks the principal up in Microsoft Graph).
        const { principalType: _t, ...untyped } = assignment(SECRETS_USER);
        expect(roleAssignmentCreateCommand(untyped)).not.toContain('--assignee-principal-type');
        expect(diagnosticSettingDeleteCommand(VAULT_ID, 'kv-responder')).toBe(
            `az monitor diagnostic-settings delete --name kv-responder --resource ${VAULT_ID}`,
        );
        expect(diagnosticSettingDeleteCommand(VAULT_ID, 'my setting')).toContain("--name 'my setting'");
    });
});

describe('restore-rbac-authorization planning', () => {
    it('patches the switch on where the policy wants RBAC, listing the live access policies; else reports why not', () => {
        const off = vault({
            enableRbacAuthorization: false,
            accessPolicies: [{ tenantId: 't', objectId: BOB, permissions: { secrets: ['get'] } }],
        });
        const wants = settingsOf({ guardrails: { default: { authorization: 'rbac' } } }).policyFor(VAULT);
        const plan = planRemediation(off, ['rbac-authorization-disabled'], wants, guard);
        expect(plan.patch).toEqual({ enableRbacAuthorization: true });
        expect(plan.actions[0]?.detail).toMatchObject({
            liveAccessPolicies: [{ objectId: BOB, permissions: { secrets: ['get'] } }],
        });
        expect(
            planRemediation(vault({ enableRbacAuthorization: true }), ['rbac-authorization-disabled'], wants, guard)
                .skipped,
        ).toMatchObject([{ reason: 'already-compliant' }]);
        const none = settingsOf({}).policyFor(VAULT);
        expect(planRemediation(off, ['rbac-authorization-disabled'], none, guard)).toMatchObject({
            patch: undefined,
            skipped: [{ reason: 'policy-allows' }],
        });
        // `any` in an override switches an inherited wish off.
        const anyOverride = settingsOf({
            guardrails: {
                default: { authorization: 'rbac' },
                overrides: [{ match: { vaultName: 'kv-payments-prod' }, authorization: 'any' }],
            },
        }).policyFor(VAULT);
        expect(anyOverride.authorization).toBeUndefined();
    });
});

describe('restore-diagnostic-setting planning', () => {
    const want = { eventHubAuthorizationRuleId: RULE, eventHubName: 'kv-audit' };
    const policy = settingsOf({}).policyFor(VAULT);

    it('knows a setting that sends AuditEvent to the hub (category or group, enabled, same rule and hub)', () => {
        expect(
            sendsAuditTo(
                {
                    eventHubAuthorizationRuleId: RULE.toUpperCase(),
                    eventHubName: 'kv-audit',
                    logs: [{ categoryGroup: 'allLogs', enabled: true }],
                },
                want,
            ),
        ).toBe(true);
        expect(
            sendsAuditTo(
                {
                    eventHubAuthorizationRuleId: RULE,
                    eventHubName: 'kv-audit',
                    logs: [{ category: 'AuditEvent', enabled: false }],
                },
                want,
            ),
        ).toBe(false);
        expect(
            sendsAuditTo(
                { eventHubAuthorizationRuleId: RULE, logs: [{ category: 'AuditEvent', enabled: true }] },
                want,
            ),
        ).toBe(false);
        expect(sendsAuditTo({ workspaceId: '/x', logs: [{ category: 'AuditEvent', enabled: true }] }, undefined)).toBe(
            false,
        );
    });

    it('restores the templates’ setting, remembering a same-named one it replaces; skips with a reason otherwise', () => {
        const changed = {
            name: 'kv-responder',
            properties: { eventHubAuthorizationRuleId: RULE, logs: [{ category: 'AuditEvent', enabled: false }] },
        };
        expect(planDiagnosticRestore([changed], want, policy)).toEqual({
            restore: true,
            name: 'kv-responder',
            properties: {
                eventHubAuthorizationRuleId: RULE,
                eventHubName: 'kv-audit',
                logs: [{ category: 'AuditEvent', enabled: true }],
                metrics: [{ category: 'AllMetrics', enabled: false }],
            },
            previous: changed.properties,
        });
        expect(planDiagnosticRestore([], { ...want, settingName: 'custom' }, policy)).toMatchObject({
            restore: true,
            name: 'custom',
            previous: undefined,
        });
        expect(planDiagnosticRestore([], undefined, policy)).toMatchObject({
            restore: false,
            reason: 'no-audit-destination',
        });
        expect(planDiagnosticRestore([], want, { ...policy, auditSettingExempt: true })).toMatchObject({
            restore: false,
            reason: 'undo-approved',
        });
    });
});

describe('reconcile intents keep the role assignment ids, bounded', () => {
    it('merges ids without duplicates, keeping the latest five', () => {
        let intent = undefined as ReturnType<typeof mergeIntent> | undefined;
        for (let i = 0; i < 8; i++)
            intent = mergeIntent(intent, {
                vault: VAULT,
                reason: 'trigger',
                rules: ['role-assignment-granted'],
                incidentKeys: [],
                correlationIds: [],
                timeMs: i,
                roleAssignmentIds: [
                    `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleAssignments/${i}`,
                    `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleAssignments/${i}`,
                ],
            });
        expect(intent?.roleAssignmentIds).toHaveLength(5);
        expect(intent?.roleAssignmentIds?.at(-1)).toMatch(/\/7$/);
    });
});
