import { isResponder, type StatelessRule } from '../../engine/rule';
import { describePermissions, isVaultWrite, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

export const selfGrantedAccess: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'self-granted-access',
        title: 'Caller granted Key Vault access to itself',
        severity: 'critical',
        mitre: ['T1098', 'T1078.004'],
        description:
            'An access policy is added whose object id (or application id) is the caller itself: someone with management rights on the vault gave themselves data-plane access, the classic path from Contributor to secrets.',
        falsePositives: ['An owner bootstrapping a vault they just created (usually in a sandbox subscription).'],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/security-features',
            'https://attack.mitre.org/techniques/T1098/',
        ],
        runbook: [
            'Contact the caller; a self-grant on a production vault is rarely planned.',
            'Remove the entry, and review everything the caller read since.',
            'Review who holds Microsoft.KeyVault/vaults/write on the vault: that right can grant data access.',
        ],
    },
    operations: VAULT_WRITES,
    evaluate(event, ctx) {
        const change = event.vaultChange;
        if (!isVaultWrite(event) || change === undefined || isResponder(event, ctx.settings)) return undefined;
        const { objectId, appId } = event.caller;
        const self = change.addedAccessPolicies.filter(
            (p) =>
                (objectId !== undefined && p.objectId === objectId) ||
                (appId !== undefined && p.applicationId === appId),
        );
        return self.map((p) => ({
            summary: `${describeCaller(event)} granted itself ${describePermissions(p.permissions)} on ${event.vault.name}`,
            details: { grantee: p.objectId, permissions: p.permissions },
        }));
    },
};
