/**
 * Undo of a remediation: the smallest change that puts back what the remediation took away (relative to the vault
 * as it is now, so later unrelated changes survive), and the approvals that keep the responder from reverting it
 * again.
 */
import type { AccessPolicyPermissions } from '../events/types';
import { type IpRange, parseRange } from '../net/cidr';
import type { VaultPolicy } from '../rules/settings';
import type { RemediationPlan, VaultAccessPolicy, VaultNetworkAcls, VaultSnapshot } from './types';

/** The snapshot the remediator saves before each change (`undo|<id>` in the state store). */
export interface UndoRecord {
    readonly vaultId: string;
    readonly at: string;
    readonly rules: readonly string[];
    readonly before: {
        readonly networkAcls: VaultNetworkAcls | null;
        readonly publicNetworkAccess: string | null;
        readonly accessPolicies: readonly VaultAccessPolicy[];
    };
    readonly plan: {
        readonly patch: RemediationPlan['patch'] | null;
        readonly accessPolicyRemovals: readonly VaultAccessPolicy[];
    };
    /** Set once the undo was carried out. */
    readonly undoneAt?: string;
}

/** Changes people approved through undo, per vault; merged into the configured policy. */
export interface VaultApprovals {
    readonly ipRanges: readonly string[];
    readonly principals: readonly { readonly objectId: string; readonly permissions: AccessPolicyPermissions }[];
    readonly networkDefaultAction?: 'Allow' | 'Deny';
    readonly publicNetworkAccess?: 'Enabled' | 'Disabled';
}

export interface RestorePlan {
    readonly patch?: NonNullable<RemediationPlan['patch']>;
    readonly accessPolicyAdds: readonly VaultAccessPolicy[];
    /** One line per restored item, for people. */
    readonly restored: readonly string[];
    readonly approvals: VaultApprovals;
}

const lower = (l: readonly string[] | undefined): string[] => (l ?? []).map((s) => s.toLowerCase());

function permissionsText(p: VaultAccessPolicy['permissions']): string {
    const parts: string[] = [];
    for (const k of ['keys', 'secrets', 'certificates', 'storage'] as const) {
        const l = p[k];
        if (l !== undefined && l.length > 0) parts.push(`${k}: ${l.join(', ')}`);
    }
    return parts.join('; ') || 'no permissions';
}

/** What to change on `current` to restore what the remediation of `record` removed. */
export function planRestore(record: UndoRecord, current: VaultSnapshot): RestorePlan {
    const restored: string[] = [];
    const before = record.before;
    const patch = record.plan.patch ?? undefined;
    const out: { networkAcls?: VaultNetworkAcls; publicNetworkAccess?: string } = {};
    let ipRanges: string[] = [];
    let networkDefaultAction: VaultApprovals['networkDefaultAction'];
    let publicNetworkAccess: VaultApprovals['publicNetworkAccess'];
    if (patch?.networkAcls !== undefined) {
        const was = before.networkAcls ?? { defaultAction: 'Allow', ipRules: [] };
        const sent = patch.networkAcls;
        const now = current.properties.networkAcls ?? {};
        const kept = new Set((sent.ipRules ?? []).map((r) => r.value));
        const removed = (was.ipRules ?? []).map((r) => r.value).filter((v) => !kept.has(v));
        const present = new Set((now.ipRules ?? []).map((r) => r.value));
        const readd = removed.filter((v) => !present.has(v));
        const acl: { -readonly [K in keyof VaultNetworkAcls]: VaultNetworkAcls[K] } = { ...now };
        let changed = false;
        if (readd.length > 0) {
            acl.ipRules = [...(now.ipRules ?? []), ...readd.map((value) => ({ value }))];
            changed = true;
            for (const v of readd) restored.push(`IP rule ${v} restored`);
        }
        ipRanges = removed;
        if (was.defaultAction !== sent.defaultAction && was.defaultAction !== undefined) {
            networkDefaultAction = was.defaultAction === 'Allow' ? 'Allow' : 'Deny';
            if (now.defaultAction !== was.defaultAction) {
                acl.defaultAction = was.defaultAction;
                changed = true;
                restored.push(`firewall default action back to ${was.defaultAction}`);
            }
        }
        if (changed) {
            out.networkAcls = {
                bypass: acl.bypass ?? 'AzureServices',
                defaultAction: acl.defaultAction ?? 'Allow',
                ipRules: acl.ipRules ?? [],
                virtualNetworkRules: acl.virtualNetworkRules ?? [],
            };
        }
    }
    if (patch?.publicNetworkAccess !== undefined && before.publicNetworkAccess !== null) {
        publicNetworkAccess = before.publicNetworkAccess.toLowerCase() === 'enabled' ? 'Enabled' : 'Disabled';
        if ((current.properties.publicNetworkAccess ?? '').toLowerCase() !== before.publicNetworkAccess.toLowerCase()) {
            out.publicNetworkAccess = before.publicNetworkAccess;
            restored.push(`public network access back to ${before.publicNetworkAccess}`);
        }
    }
    const accessPolicyAdds = record.plan.accessPolicyRemovals;
    for (const e of accessPolicyAdds)
        restored.push(`access policy of ${e.objectId} restored (${permissionsText(e.permissions)})`);
    if (restored.length === 0) restored.push('nothing to restore: the vault already has the saved state');
    return {
        ...(out.networkAcls === undefined && out.publicNetworkAccess === undefined ? {} : { patch: out }),
        accessPolicyAdds,
        restored,
        approvals: {
            ipRanges,
            principals: accessPolicyAdds.map((e) => ({
                objectId: e.objectId.toLowerCase(),
                permissions: {
                    keys: lower(e.permissions.keys),
                    secrets: lower(e.permissions.secrets),
                    certificates: lower(e.permissions.certificates),
                    storage: lower(e.permissions.storage),
                },
            })),
            ...(networkDefaultAction === undefined ? {} : { networkDefaultAction }),
            ...(publicNetworkAccess === undefined ? {} : { publicNetworkAccess }),
        },
    };
}

function unionPermissions(a: AccessPolicyPermissions | undefined, b: AccessPolicyPermissions): AccessPolicyPermissions {
    if (a === undefined) return b;
    const u = (x: readonly string[], y: readonly string[]): string[] => [...new Set([...x, ...y])];
    return {
        keys: u(a.keys, b.keys),
        secrets: u(a.secrets, b.secrets),
        certificates: u(a.certificates, b.certificates),
        storage: u(a.storage, b.storage),
    };
}

/** Accumulates approvals (a vault may be undone several times). */
export function mergeApprovals(a: VaultApprovals | undefined, b: VaultApprovals): VaultApprovals {
    if (a === undefined) return b;
    const principals = new Map(a.principals.map((p) => [p.objectId, p.permissions]));
    for (const p of b.principals)
        principals.set(p.objectId, unionPermissions(principals.get(p.objectId), p.permissions));
    const networkDefaultAction = b.networkDefaultAction ?? a.networkDefaultAction;
    const publicNetworkAccess = b.publicNetworkAccess ?? a.publicNetworkAccess;
    return {
        ipRanges: [...new Set([...a.ipRanges, ...b.ipRanges])],
        principals: [...principals].map(([objectId, permissions]) => ({ objectId, permissions })),
        ...(networkDefaultAction === undefined ? {} : { networkDefaultAction }),
        ...(publicNetworkAccess === undefined ? {} : { publicNetworkAccess }),
    };
}

/** The configured policy with what people approved through undo. */
export function withApprovals(policy: VaultPolicy, a: VaultApprovals | undefined): VaultPolicy {
    if (a === undefined) return policy;
    const approvedPrincipals = new Map(policy.approvedPrincipals);
    for (const p of a.principals) {
        if (approvedPrincipals.has(p.objectId) && approvedPrincipals.get(p.objectId) === undefined) continue; // any
        approvedPrincipals.set(p.objectId, unionPermissions(approvedPrincipals.get(p.objectId), p.permissions));
    }
    const ranges = a.ipRanges.map((r) => parseRange(r)).filter((r): r is IpRange => r !== undefined);
    return {
        ...policy,
        networkDefaultAction:
            a.networkDefaultAction !== undefined && a.networkDefaultAction !== policy.networkDefaultAction
                ? undefined
                : policy.networkDefaultAction,
        publicNetworkAccess:
            a.publicNetworkAccess !== undefined && a.publicNetworkAccess !== policy.publicNetworkAccess
                ? undefined
                : policy.publicNetworkAccess,
        approvedIpRanges: [...policy.approvedIpRanges, ...ranges],
        approvedPrincipals,
    };
}
