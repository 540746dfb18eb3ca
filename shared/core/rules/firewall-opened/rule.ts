import { isResponder, type StatelessRule } from '../../engine/rule';
import { isVaultWrite, sameText, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

export const firewallOpened: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'firewall-opened',
        title: 'Key Vault firewall opened',
        severity: 'high',
        mitre: ['T1562.007'],
        description:
            "After a VaultPatch or VaultPut the vault's network ACL default action is Allow (or the vault has no network ACL at all) while its guardrail policy wants Deny: the data plane is reachable from any network that has credentials.",
        falsePositives: [
            'A vault whose policy was never set to Deny (set networkDefaultAction in its guardrail override).',
            'A short, approved troubleshooting window.',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/network-security',
            'https://attack.mitre.org/techniques/T1562/007/',
        ],
        runbook: [
            'Check who changed the firewall and whether a change request covers it.',
            'If not approved: set the default action back to Deny (kv-responder does this in enforce mode) and keep bypass and rules as they were.',
            'Review data-plane access from new IP addresses since the change.',
        ],
    },
    operations: VAULT_WRITES,
    evaluate(event, ctx) {
        if (!isVaultWrite(event) || ctx.policy.networkDefaultAction !== 'Deny' || isResponder(event, ctx.settings))
            return undefined;
        const acls = event.vaultChange?.networkAcls;
        if (acls === undefined) return undefined;
        const open = acls === null || sameText(acls.defaultAction, 'Allow');
        if (!open) return undefined;
        const what = acls === null ? 'has no network ACL' : 'network ACL default action is Allow';
        return [
            {
                summary: `${event.vault.name} ${what} after ${event.operation} by ${describeCaller(event)}`,
                details: { defaultAction: acls?.defaultAction ?? null },
            },
        ];
    },
};
