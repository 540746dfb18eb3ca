import { isResponder, type StatelessRule } from '../../engine/rule';
import { isCovered } from '../../net/cidr';
import { isVaultWrite, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

export const firewallIpRuleAdded: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'firewall-ip-rule-added',
        title: 'Unapproved IP rule added to a Key Vault firewall',
        severity: 'high',
        mitre: ['T1562.007'],
        description:
            "An IP rule outside the vault's approved ranges is added (IPv4 and IPv6, CIDR-aware: a rule is approved only when it lies entirely inside an approved range). When the record does not name the added rule, the rules listed in its after-state are checked instead.",
        falsePositives: ['A new office or build-agent egress range that is not yet in approvedIpRanges.'],
        references: ['https://learn.microsoft.com/azure/key-vault/general/network-security'],
        runbook: [
            'Identify the owner of the address range (whois, your IPAM).',
            'If not approved: remove exactly that rule (kv-responder does this in enforce mode); approved ones stay.',
            'Search the data-plane logs for requests from that range.',
        ],
    },
    operations: VAULT_WRITES,
    evaluate(event, ctx) {
        if (!isVaultWrite(event) || isResponder(event, ctx.settings)) return undefined;
        const change = event.vaultChange;
        if (change === undefined) return undefined;
        const candidates = change.addedIpRules.length > 0 ? change.addedIpRules : (change.networkAcls?.ipRules ?? []);
        const unapproved = candidates.filter((r) => !isCovered(r, ctx.policy.approvedIpRanges));
        if (unapproved.length === 0) return undefined;
        return [
            {
                summary: `IP rule ${unapproved.join(', ')} on ${event.vault.name} is outside the approved ranges (by ${describeCaller(event)})`,
                details: { ipRules: unapproved },
            },
        ];
    },
};
