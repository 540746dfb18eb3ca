import { isResponder, type StatelessRule } from '../../engine/rule';
import type { AccessPolicyEntry, AccessPolicyPermissions } from '../../events/types';
import { describePermissions, isVaultWrite, VAULT_WRITES } from '../common';
import type { VaultPolicy } from '../settings';
import { describeCaller } from '../text';

const KINDS = ['keys', 'secrets', 'certificates', 'storage'] as const;

/** Permissions of `entry` beyond what the policy approves for its principal; undefined when all are approved. */
export function excessPermissions(entry: AccessPolicyEntry, policy: VaultPolicy): AccessPolicyPermissions | undefined {
    if (entry.objectId === undefined) return entry.permissions;
    if (!policy.approvedPrincipals.has(entry.objectId)) return entry.permissions;
    const allowed = policy.approvedPrincipals.get(entry.objectId);
    if (allowed === undefined) return undefined;
    const excess = {
        keys: [] as string[],
        secrets: [] as string[],
        certificates: [] as string[],
        storage: [] as string[],
    };
    let any = false;
    for (const kind of KINDS) {
        const ok = allowed[kind];
        if (ok.includes('all')) continue;
        for (const perm of entry.permissions[kind]) {
            if (!ok.includes(perm)) {
                excess[kind].push(perm);
                any = true;
            }
        }
    }
    return any ? excess : undefined;
}

/** The access-policy entries a write added (or, when the record does not say, the entries of its after-state). */
export function grantedEntries(change: {
    readonly addedAccessPolicies: readonly AccessPolicyEntry[];
    readonly accessPolicies: readonly AccessPolicyEntry[] | undefined;
}): readonly AccessPolicyEntry[] {
    return change.addedAccessPolicies.length > 0 ? change.addedAccessPolicies : (change.accessPolicies ?? []);
}

export const accessPolicyGranted: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'access-policy-granted',
        title: 'Unapproved Key Vault access policy granted',
        severity: 'high',
        mitre: ['T1098'],
        description:
            'An access policy is added or widened for a principal that is not approved on the vault, or with permissions beyond its approved set. On a vault with Azure RBAC authorization enabled, access policies have no effect; the grant is still reported because switching RBAC off would activate it.',
        falsePositives: ['A new application onboarded without updating approvedPrincipals.'],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/assign-access-policy',
            'https://attack.mitre.org/techniques/T1098/',
        ],
        runbook: [
            'Identify the principal and who granted it.',
            'If not approved: remove exactly that entry or the excess permissions (kv-responder does this in enforce mode).',
            'Check what the principal read since the grant (SecretGet, KeyGet, ... by its object id).',
        ],
    },
    operations: VAULT_WRITES,
    evaluate(event, ctx) {
        const change = event.vaultChange;
        if (!isVaultWrite(event) || change === undefined || isResponder(event, ctx.settings)) return undefined;
        const out = [];
        for (const entry of grantedEntries(change)) {
            const excess = excessPermissions(entry, ctx.policy);
            if (excess === undefined) continue;
            const who = entry.objectId ?? 'an unnamed principal';
            const approved = entry.objectId !== undefined && ctx.policy.approvedPrincipals.has(entry.objectId);
            out.push({
                summary: `${describePermissions(excess)} granted on ${event.vault.name} to ${approved ? 'approved' : 'unapproved'} principal ${who}${approved ? ' beyond its approved set' : ''} by ${describeCaller(event)}`,
                details: { grantee: entry.objectId, permissions: excess },
            });
        }
        return out;
    },
};
