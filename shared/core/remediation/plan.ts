import { isCovered, parseRange } from '../net/cidr';
import { excessPermissions, PERMISSION_KINDS } from '../rules/permissions';
import type { VaultPolicy } from '../rules/settings';
import {
    ACTIONS_BY_RULE,
    type ActionId,
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

    const patch =
        networkAcls === undefined && publicNetworkAccess === undefined
            ? undefined
            : {
                  ...(networkAcls === undefined ? {} : { networkAcls }),
                  ...(publicNetworkAccess === undefined ? {} : { publicNetworkAccess }),
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
