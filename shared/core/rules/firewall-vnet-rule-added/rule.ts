import { isResponder, type StatelessRule } from '../../engine/rule';
import { isVaultWrite, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

/** The last segments of a subnet id (`<vnet>/subnets/<subnet>`), for a summary that stays readable. */
function shortSubnet(id: string): string {
    const m = /\/virtualnetworks\/([^/]+)\/subnets\/([^/]+)\/?$/i.exec(id);
    return m === null ? id : `${m[1] as string}/${m[2] as string}`;
}

export const firewallVnetRuleAdded: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'firewall-vnet-rule-added',
        title: 'Unapproved virtual network rule added to a Key Vault firewall',
        severity: 'high',
        mitre: ['T1562.007'],
        description:
            "A virtual network rule for a subnet outside the vault's approved subnets (`approvedVirtualNetworkRules`, subnet resource ids compared case-insensitively) is added. Only judged where a policy sets that list: without it virtual network rules are neither reported nor removed. When the record does not name the added rule, the rules listed in its after-state are checked instead; the reconciler also finds such rules in the vault as ARM returns it (drift) whatever the record said.",
        falsePositives: [
            'A new application subnet (a build agent pool, a new spoke network) that is not yet in approvedVirtualNetworkRules.',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/network-security',
            'https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview',
        ],
        runbook: [
            'Identify the owner of the virtual network and subnet (its subscription and resource group, the resource tags).',
            'If not approved: remove exactly that rule (kv-responder does this in enforce mode; the other rules and IP rules stay). If it is legitimate, add the subnet id to approvedVirtualNetworkRules.',
            'Search the data-plane logs for requests from that subnet (callerIpAddress of private addresses, the caller identities) since the rule was added.',
        ],
    },
    operations: VAULT_WRITES,
    evaluate(event, ctx) {
        const approved = ctx.policy.approvedVirtualNetworkRules;
        if (approved === undefined || !isVaultWrite(event) || isResponder(event, ctx.settings)) return undefined;
        const change = event.vaultChange;
        if (change === undefined) return undefined;
        const candidates =
            change.addedVirtualNetworkRules.length > 0
                ? change.addedVirtualNetworkRules
                : (change.networkAcls?.virtualNetworkRules ?? []);
        const unapproved = [...new Set(candidates.map((r) => r.toLowerCase().replace(/\/+$/, '')))].filter(
            (r) => !approved.has(r),
        );
        if (unapproved.length === 0) return undefined;
        return [
            {
                summary: `virtual network rule ${unapproved.map(shortSubnet).join(', ')} on ${event.vault.name} is not an approved subnet (by ${describeCaller(event)})`,
                details: { virtualNetworkRules: unapproved },
            },
        ];
    },
};
