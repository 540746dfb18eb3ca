import { isResponder, type StatelessRule } from '../../engine/rule';
import { isVaultWrite, sameText, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

export const publicNetworkAccessEnabled: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'public-network-access-enabled',
        title: 'Public network access enabled on a Key Vault',
        severity: 'high',
        mitre: ['T1562.007'],
        description:
            'After a VaultPatch or VaultPut publicNetworkAccess is Enabled on a vault whose guardrail policy wants it Disabled (private endpoints only).',
        falsePositives: ['A migration that temporarily needs public access; record it as an approved change.'],
        references: ['https://learn.microsoft.com/azure/key-vault/general/private-link-service'],
        runbook: [
            'Confirm whether the change was approved.',
            'If not: set publicNetworkAccess back to Disabled (kv-responder does this in enforce mode).',
            'Review data-plane requests that did not come through a private endpoint since the change.',
        ],
    },
    operations: VAULT_WRITES,
    evaluate(event, ctx) {
        if (!isVaultWrite(event) || ctx.policy.publicNetworkAccess !== 'Disabled' || isResponder(event, ctx.settings))
            return undefined;
        if (!sameText(event.vaultChange?.publicNetworkAccess, 'Enabled')) return undefined;
        return [{ summary: `public network access enabled on ${event.vault.name} by ${describeCaller(event)}` }];
    },
};
