import { isCovered, parseRange } from '../net/cidr';
import { excessPermissions, PERMISSION_KINDS } from '../rules/permissions';
import type { VaultPolicy } from '../rules/settings';
import { type AuditDestination } from '../rules/settings';
import { keyVaultRole } from '../rules/roles';
import {
    ACTIONS_BY_RULE,
    type ActionId,
    type DiagnosticSettingProperties,
    type DiagnosticSettingSnapshot,
    type RoleAssignmentSnapshot,
    type PlannedAction,
    type RemediationPlan,
    type SkippedAction,
    type VaultAccessPolicy,
    type VaultNetworkAcls,
    type VaultSnapshot,
} from './types';

export interface Guard {
    /** Object ids (lower-case) never removed: break-glass accounts, pipelines, the responder itself. */
    readonly protectedPrincipals: ReadonlySet<string>;
}

function lower(s: string | undefined): string | undefined {
    return s?.toLowerCase();
}

/** The part of `entry` to remove: the whole entry for an unapproved principal, else its excess permissions. */
function removalOf(entry: VaultAccessPolicy, policy: VaultPolicy): VaultAccessPolicy | undefined {
    if (!policy.approvedPrincipals.has(entry.objectId.toLowerCase())) return entry;
    const excess = excessPermissions(entry.objectId, entry.permissions, policy);
    if (excess === undefined) return undefined;
    return {
        tenantId: entry.tenantId,
        objectId: entry.objectId,
        ...(entry.applicationId === undefined ? {} : { applicationId: entry.applicationId }),
        permissions: excess,
    };
}

/**
 * Computes the smallest change that brings `vault` back to `policy`, for the actions that the triggering rules call
 * for. Pure: the vault state comes from an ARM read, never from the log record.
 */
export function planRemediation(
    vault: VaultSnapshot,
    triggeringRules: Iterable<string>,
    policy: VaultPolicy,
    guard: Guard,
): RemediationPlan {
    const wanted = new Map<ActionId, string>();
    for (const rule of triggeringRules) {
        const action = ACTIONS_BY_RULE[rule];
        if (action !== undefined && !wanted.has(action)) wanted.set(action, rule);
    }
    const p = vault.properties;
    const actions: PlannedAction[] = [];
    const skipped: SkippedAction[] = [];
    const acls: VaultNetworkAcls | undefined = p.networkAcls;
    let networkAcls: VaultNetworkAcls | undefined;
    let publicNetworkAccess: string | undefined;

    const firewallRule = wanted.get('restore-firewall-default');
    if (firewallRule !== undefined) {
        if (policy.networkDefaultAction !== 'Deny') {
            skipped.push({
                action: 'restore-firewall-default',
                rule: firewallRule,
                reason: 'policy-allows',
                detail: {},
            });
        } else if (lower(acls?.defaultAction) === 'deny') {
            skipped.push({
                action: 'restore-firewall-default',
                rule: firewallRule,
                reason: 'already-compliant',
                detail: {},
            });
        } else {
            // A PATCH replaces networkAcls whole: send it complete, or the fix itself drops rules and breaks access.
            networkAcls = {
                bypass: acls?.bypass ?? 'AzureServices',
                defaultAction: 'Deny',
                ipRules: acls?.ipRules ?? [],
                virtualNetworkRules: acls?.virtualNetworkRules ?? [],
            };
            actions.push({
                action: 'restore-firewall-default',
                rule: firewallRule,
                summary: `set network ACL default action of ${vault.name} back to Deny`,
                detail: { before: acls?.defaultAction ?? null, after: 'Deny' },
            });
        }
    }

    const ipRule = wanted.get('remove-ip-rule');
    if (ipRule !== undefined) {
        const rules = (networkAcls ?? acls)?.ipRules ?? [];
        const unapproved = rules.filter((r) => !isCovered(r.value, policy.approvedIpRanges));
        if (unapproved.length === 0)
            skipped.push({ action: 'remove-ip-rule', rule: ipRule, reason: 'already-compliant', detail: {} });
        else {
            const base = networkAcls ?? acls ?? {};
            networkAcls = {
                bypass: base.bypass ?? 'AzureServices',
                defaultAction: base.defaultAction ?? 'Deny',
                ipRules: rules.filter((r) => isCovered(r.value, policy.approvedIpRanges)),
                virtualNetworkRules: base.virtualNetworkRules ?? [],
            };
            actions.push({
                action: 'remove-ip-rule',
                rule: ipRule,
                summary: `remove IP rule(s) ${unapproved.map((r) => r.value).join(', ')} from ${vault.name}`,
                detail: {
                    removed: unapproved.map((r) => r.value),
                    kept: networkAcls.ipRules?.map((r) => r.value) ?? [],
                },
            });
        }
    }

    const vnetRule = wanted.get('remove-vnet-rule');
    if (vnetRule !== undefined) {
        const approved = policy.approvedVirtualNetworkRules;
        const current = (networkAcls ?? acls)?.virtualNetworkRules ?? [];
        const isApproved = (r: { readonly id: string }): boolean =>
            approved?.has(r.id.toLowerCase().replace(/\/+$/, '')) === true;
        if (approved === undefined) {
            // No approved list anywhere in the vault's policy: virtual network rules are not judged.
            skipped.push({ action: 'remove-vnet-rule', rule: vnetRule, reason: 'policy-allows', detail: {} });
        } else if (current.every(isApproved)) {
            skipped.push({ action: 'remove-vnet-rule', rule: vnetRule, reason: 'already-compliant', detail: {} });
        } else {
            const base = networkAcls ?? acls ?? {};
            const removed = current.filter((r) => !isApproved(r));
            // Complete networkAcls again: everything else (IP rules, the approved subnets, flags) is sent as read.
            networkAcls = {
                bypass: base.bypass ?? 'AzureServices',
                defaultAction: base.defaultAction ?? 'Deny',
                ipRules: base.ipRules ?? [],
                virtualNetworkRules: current.filter(isApproved),
            };
            actions.push({
                action: 'remove-vnet-rule',
                rule: vnetRule,
                summary: `remove virtual network rule(s) ${removed.map((r) => r.id).join(', ')} from ${vault.name}`,
                detail: {
                    removed: removed.map((r) => r.id),
                    // Exactly as read, for undo: the flag decides whether ARM checks the subnet's service endpoint.
                    removedRules: removed.map((r) => ({
                        id: r.id,
                        ignoreMissingVnetServiceEndpoint: r.ignoreMissingVnetServiceEndpoint ?? false,
                    })),
                    kept: networkAcls.virtualNetworkRules?.map((r) => r.id) ?? [],
                },
            });
        }
    }

    const pnaRule = wanted.get('disable-public-network-access');
    if (pnaRule !== undefined) {
        if (policy.publicNetworkAccess !== 'Disabled') {
            skipped.push({
                action: 'disable-public-network-access',
                rule: pnaRule,
                reason: 'policy-allows',
                detail: {},
            });
        } else if (lower(p.publicNetworkAccess) === 'disabled') {
            skipped.push({
                action: 'disable-public-network-access',
                rule: pnaRule,
                reason: 'already-compliant',
                detail: {},
            });
        } else {
            publicNetworkAccess = 'Disabled';
            actions.push({
                action: 'disable-public-network-access',
                rule: pnaRule,
                summary: `disable public network access of ${vault.name}`,
                detail: { before: p.publicNetworkAccess ?? null, after: 'Disabled' },
            });
        }
    }

    const accessPolicyRemovals: VaultAccessPolicy[] = [];
    const apRule = wanted.get('remove-access-policy');
    if (apRule !== undefined) {
        if (p.enableRbacAuthorization === true) {
            // Access policies have no effect while Azure RBAC authorization is on: report, do not "remediate".
            skipped.push({
                action: 'remove-access-policy',
                rule: apRule,
                reason: 'rbac-authorization-enabled',
                detail: {},
            });
        } else {
            for (const entry of p.accessPolicies ?? []) {
                const excess = removalOf(entry, policy);
                if (excess === undefined) continue;
                if (guard.protectedPrincipals.has(entry.objectId.toLowerCase())) {
                    skipped.push({
                        action: 'remove-access-policy',
                        rule: apRule,
                        reason: 'protected-principal',
                        detail: { objectId: entry.objectId },
                    });
                    continue;
                }
                accessPolicyRemovals.push(excess);
                const whole = excess === entry;
                actions.push({
                    action: 'remove-access-policy',
                    rule: apRule,
                    summary: `${whole ? 'remove the access policy of' : 'remove permissions beyond the approved set from'} ${entry.objectId} on ${vault.name}`,
                    detail: { objectId: entry.objectId, permissions: excess.permissions, wholeEntry: whole },
                });
            }
            if (accessPolicyRemovals.length === 0 && !skipped.some((s) => s.action === 'remove-access-policy')) {
                skipped.push({ action: 'remove-access-policy', rule: apRule, reason: 'already-compliant', detail: {} });
            }
        }
    }

    const enableRbacAuthorization = planRbac(vault, wanted.get('restore-rbac-authorization'), policy, actions, skipped);

    const patch =
        networkAcls === undefined && publicNetworkAccess === undefined && enableRbacAuthorization === undefined
            ? undefined
            : {
                  ...(networkAcls === undefined ? {} : { networkAcls }),
                  ...(publicNetworkAccess === undefined ? {} : { publicNetworkAccess }),
                  ...(enableRbacAuthorization === undefined ? {} : { enableRbacAuthorization }),
              };
    return { patch, accessPolicyRemovals, actions, skipped };
}

function rangeId(value: string): string {
    const r = parseRange(value);
    return r === undefined ? value.toLowerCase() : `${r.family}:${r.first.toString(16)}-${r.last.toString(16)}`;
}

/** What still differs from the plan after it was applied (empty: verified). */
export function verifyRemediation(after: VaultSnapshot, plan: RemediationPlan): string[] {
    const problems: string[] = [];
    const p = after.properties;
    const want = plan.patch;
    if (want?.networkAcls !== undefined) {
        const got = p.networkAcls;
        if (lower(got?.defaultAction) !== lower(want.networkAcls.defaultAction)) {
            problems.push(
                `networkAcls.defaultAction is ${got?.defaultAction ?? 'unset'}, expected ${want.networkAcls.defaultAction ?? 'unset'}`,
            );
        }
        // ARM stores a single address as /32: compare ranges, not spellings.
        const gotRules = new Map((got?.ipRules ?? []).map((r) => [rangeId(r.value), r.value]));
        const wantRules = new Map((want.networkAcls.ipRules ?? []).map((r) => [rangeId(r.value), r.value]));
        for (const [id, r] of wantRules) if (!gotRules.has(id)) problems.push(`IP rule ${r} is missing`);
        for (const [id, r] of gotRules) if (!wantRules.has(id)) problems.push(`IP rule ${r} is still there`);
        const gotVnets = new Set((got?.virtualNetworkRules ?? []).map((r) => r.id.toLowerCase()));
        for (const r of want.networkAcls.virtualNetworkRules ?? [])
            if (!gotVnets.has(r.id.toLowerCase())) problems.push(`virtual network rule ${r.id} is missing`);
        // Only for a plan that removes some: otherwise extra rules are another writer's (see changesByOthers).
        const removedVnets = new Set(
            plan.actions
                .filter((a) => a.action === 'remove-vnet-rule')
                .flatMap((a) => (Array.isArray(a.detail.removed) ? (a.detail.removed as string[]) : []))
                .map((id) => id.toLowerCase()),
        );
        for (const r of got?.virtualNetworkRules ?? [])
            if (removedVnets.has(r.id.toLowerCase())) problems.push(`virtual network rule ${r.id} is still there`);
    }
    if (want?.enableRbacAuthorization !== undefined && p.enableRbacAuthorization !== want.enableRbacAuthorization)
        problems.push(
            `enableRbacAuthorization is ${String(p.enableRbacAuthorization ?? false)}, expected ${String(want.enableRbacAuthorization)}`,
        );
    if (want?.publicNetworkAccess !== undefined && lower(p.publicNetworkAccess) !== lower(want.publicNetworkAccess)) {
        problems.push(
            `publicNetworkAccess is ${p.publicNetworkAccess ?? 'unset'}, expected ${want.publicNetworkAccess}`,
        );
    }
    for (const removed of plan.accessPolicyRemovals) {
        const entry = (p.accessPolicies ?? []).find((e) => e.objectId.toLowerCase() === removed.objectId.toLowerCase());
        if (entry === undefined) continue;
        for (const kind of PERMISSION_KINDS) {
            const still = (removed.permissions[kind] ?? []).filter((x) =>
                (entry.permissions[kind] ?? []).some((y) => y.toLowerCase() === x.toLowerCase()),
            );
            if (still.length > 0) problems.push(`${removed.objectId} still has ${kind}: ${still.join(', ')}`);
        }
    }
    return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// Issue 15: the RBAC switch, role assignments and the audit trail's diagnostic setting.

/** Most access policies listed by name in a restore-rbac-authorization detail. */
const MAX_LISTED_POLICIES = 20;

/**
 * restore-rbac-authorization: a vault whose policy wants Azure RBAC and whose `enableRbacAuthorization` is off is
 * switched back with one PATCH (`VaultPatchProperties.enableRbacAuthorization`). The access policies that are live
 * while it is off are listed in the detail. Returns the value to PATCH, if any.
 */
function planRbac(
    vault: VaultSnapshot,
    rule: string | undefined,
    policy: VaultPolicy,
    actions: PlannedAction[],
    skipped: SkippedAction[],
): boolean | undefined {
    if (rule === undefined) return undefined;
    const action = 'restore-rbac-authorization';
    if (policy.authorization !== 'rbac') {
        skipped.push({ action, rule, reason: 'policy-allows', detail: {} });
        return undefined;
    }
    if (vault.properties.enableRbacAuthorization === true) {
        skipped.push({ action, rule, reason: 'already-compliant', detail: {} });
        return undefined;
    }
    const live = vault.properties.accessPolicies ?? [];
    actions.push({
        action,
        rule,
        summary: `turn Azure RBAC authorization of ${vault.name} back on (${live.length} access polic${live.length === 1 ? 'y was' : 'ies were'} in force)`,
        detail: {
            before: vault.properties.enableRbacAuthorization ?? null,
            after: true,
            liveAccessPolicies: live.slice(0, MAX_LISTED_POLICIES).map((e) => ({
                objectId: e.objectId,
                permissions: e.permissions,
            })),
            ...(live.length > MAX_LISTED_POLICIES ? { moreAccessPolicies: live.length - MAX_LISTED_POLICIES } : {}),
        },
    });
    return true;
}

/** The role definition GUID at the end of a role definition id (lower-case). */
export function roleGuidOf(roleDefinitionId: string): string {
    return roleDefinitionId.toLowerCase().replace(/\/+$/, '').split('/').pop() ?? '';
}

/** The scope of a role assignment id (`{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`), lower-case. */
export function assignmentScopeOf(roleAssignmentId: string): string {
    const id = roleAssignmentId.toLowerCase();
    const at = id.lastIndexOf('/providers/microsoft.authorization/roleassignments/');
    return at < 0 ? id : id.slice(0, at);
}

/** True when `scope` is the vault (or an object in it) or a scope above it (resource group, subscription, group). */
export function scopeReaches(scope: string, vaultId: string): boolean {
    const s = scope.toLowerCase().replace(/\/+$/, '');
    const v = vaultId.toLowerCase();
    if (s === '' || s === '/' || s.startsWith('/providers/microsoft.management/managementgroups/')) return true;
    return v === s || v.startsWith(`${s}/`) || s.startsWith(`${v}/`);
}

/** A scope as approvals compare it: lower-case, without a trailing slash. */
export function scopeKey(scope: string): string {
    return scope.toLowerCase().replace(/\/+$/, '');
}

/** Whether `policy` lets `principal` hold the role `roleGuid` (approvedPrincipals with their optional roles). */
export function roleApproved(policy: VaultPolicy, principal: string, roleGuid: string): boolean {
    const p = principal.toLowerCase();
    if (!policy.approvedPrincipals.has(p)) return false;
    const roles = policy.approvedRoles?.get(p);
    return roles === undefined || roles.has(roleGuid.toLowerCase());
}

export type RoleAssignmentVerdict =
    | { readonly remove: true; readonly role: string; readonly summary: string }
    | { readonly remove: false; readonly reason: string; readonly detail: Readonly<Record<string, unknown>> };

/**
 * remove-role-assignment, decided from the assignment as ARM shows it now (never from the log record): it is removed
 * when it gives a role that reaches Key Vault data, at the vault's scope or above it, to a principal that the vault's
 * policy does not approve for that role and that is not protected (break-glass accounts, the responder itself).
 */
export function planRoleAssignmentRemoval(
    assignment: RoleAssignmentSnapshot,
    vault: VaultSnapshot | { readonly id: string; readonly name: string },
    policy: VaultPolicy,
    guard: Guard,
): RoleAssignmentVerdict {
    const guid = roleGuidOf(assignment.roleDefinitionId);
    const role = keyVaultRole(guid);
    const principal = assignment.principalId.toLowerCase();
    if (role === undefined)
        return { remove: false, reason: 'not-a-key-vault-role', detail: { roleDefinitionId: guid } };
    if (!scopeReaches(assignment.scope, vault.id))
        return { remove: false, reason: 'outside-vault-scope', detail: { scope: assignment.scope } };
    if (guard.protectedPrincipals.has(principal))
        return { remove: false, reason: 'protected-principal', detail: { principalId: principal } };
    if (
        roleApproved(policy, principal, guid) ||
        policy.approvedRoleScopes?.get(`${principal}|${guid.toLowerCase()}`)?.has(scopeKey(assignment.scope)) === true
    )
        return { remove: false, reason: 'approved-principal', detail: { principalId: principal, role: role.name } };
    return {
        remove: true,
        role: role.name,
        summary: `delete the ${role.name} assignment of ${assignment.principalType ?? 'principal'} ${principal} at ${assignment.scope} (reaches ${vault.name})`,
    };
}

/** Log categories and category groups that carry a vault's AuditEvent records. */
const AUDIT_LOGS: ReadonlySet<string> = new Set(['auditevent', 'audit', 'alllogs']);

/** The hub Azure Monitor writes AuditEvent to when a setting names none. */
export const DEFAULT_AUDIT_HUB = 'insights-logs-auditevent';
/** The name the templates give the vault's diagnostic setting (vaultDiagnostics.bicep, the policy's profileName). */
export const DEFAULT_AUDIT_SETTING_NAME = 'kv-responder';

/** True when the setting sends AuditEvent to the destination (any event hub when the destination is unknown). */
export function sendsAuditTo(p: DiagnosticSettingProperties, want: AuditDestination | undefined): boolean {
    if (!(p.logs ?? []).some((l) => l.enabled && AUDIT_LOGS.has((l.category ?? l.categoryGroup ?? '').toLowerCase())))
        return false;
    const rule = p.eventHubAuthorizationRuleId?.toLowerCase().replace(/\/+$/, '');
    if (rule === undefined || rule === '') return false;
    if (want?.eventHubAuthorizationRuleId !== undefined && want.eventHubAuthorizationRuleId !== rule) return false;
    const hub = (p.eventHubName ?? DEFAULT_AUDIT_HUB).toLowerCase();
    return want?.eventHubName === undefined || want.eventHubName === hub;
}

/**
 * The setting restore-diagnostic-setting writes: the shape of infra/modules/vaultDiagnostics.bicep and of the built-in
 * deployIfNotExists policy (AuditEvent enabled, AllMetrics present and disabled), so the policy finds it compliant.
 */
export function auditSettingOf(want: AuditDestination & { readonly eventHubAuthorizationRuleId: string }): {
    readonly name: string;
    readonly properties: DiagnosticSettingProperties;
} {
    return {
        name: want.settingName ?? DEFAULT_AUDIT_SETTING_NAME,
        properties: {
            eventHubAuthorizationRuleId: want.eventHubAuthorizationRuleId,
            ...(want.eventHubName === undefined ? {} : { eventHubName: want.eventHubName }),
            logs: [{ category: 'AuditEvent', enabled: true }],
            metrics: [{ category: 'AllMetrics', enabled: false }],
        },
    };
}

export type DiagnosticVerdict =
    | {
          readonly restore: true;
          readonly name: string;
          readonly properties: DiagnosticSettingProperties;
          /** The setting of that name before (undefined: there was none). */
          readonly previous: DiagnosticSettingProperties | undefined;
      }
    | { readonly restore: false; readonly reason: string; readonly detail: Readonly<Record<string, unknown>> };

/** restore-diagnostic-setting, decided from the vault's settings as ARM lists them now. */
export function planDiagnosticRestore(
    settings: readonly DiagnosticSettingSnapshot[],
    want: AuditDestination | undefined,
    policy: VaultPolicy,
): DiagnosticVerdict {
    const sending = settings.find((s) => sendsAuditTo(s.properties, want));
    if (sending !== undefined)
        return { restore: false, reason: 'already-compliant', detail: { diagnosticSetting: sending.name } };
    if (policy.auditSettingExempt === true) return { restore: false, reason: 'undo-approved', detail: {} };
    const rule = want?.eventHubAuthorizationRuleId;
    if (want === undefined || rule === undefined) return { restore: false, reason: 'no-audit-destination', detail: {} };
    const setting = auditSettingOf({ ...want, eventHubAuthorizationRuleId: rule });
    const previous = settings.find((s) => s.name.toLowerCase() === setting.name.toLowerCase())?.properties;
    return { restore: true, ...setting, previous };
}
