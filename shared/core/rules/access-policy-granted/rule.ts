import { isResponder, type StatelessRule } from '../../engine/rule';
import type { AccessPolicyEntry } from '../../events/types';
import { excessPermissions } from '../permissions';
import { describePermissions, isVaultWrite, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

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
            const excess = excessPermissions(entry.objectId, entry.permissions, ctx.policy);
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
