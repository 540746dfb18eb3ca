import { parseResponderConfig } from '../../shared/config/responderConfig';
import { planRemediation, verifyRemediation } from '../../shared/core/remediation/plan';
import type { VaultSnapshot } from '../../shared/core/remediation/types';
import { ruleIds } from '../../shared/core/rules';

const VAULT_REF = {
    subscriptionId: 's',
    resourceGroup: 'rg',
    name: 'kv-payments-prod',
    resourceId: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-payments-prod',
};
const API = 'c0c0c0c0-0000-4000-8000-0000000000a1';
const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';
const BREAK_GLASS = 'b6b6b6b6-0000-4000-8000-0000000000b6';
const config = parseResponderConfig(
    {
        guardrails: {
            default: {
                networkDefaultAction: 'Deny',
                publicNetworkAccess: 'Disabled',
                approvedIpRanges: ['198.51.100.0/24'],
                approvedPrincipals: [{ objectId: API, permissions: { secrets: ['get', 'list'] } }],
            },
        },
        protectedPrincipals: [BREAK_GLASS],
    },
    ruleIds,
    'test',
);
const policy = config.detection.policyFor(VAULT_REF);
const guard = { protectedPrincipals: config.protectedPrincipals };

function vault(properties: Partial<VaultSnapshot['properties']>): VaultSnapshot {
    return { id: VAULT_REF.resourceId, name: 'kv-payments-prod', properties: { tenantId: 't', ...properties } };
}

const openVault = vault({
    networkAcls: {
        bypass: 'None',
        defaultAction: 'Allow',
        ipRules: [{ value: '198.51.100.7/32' }, { value: '203.0.113.66/32' }],
        virtualNetworkRules: [
            { id: '/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/a' },
        ],
    },
    publicNetworkAccess: 'Enabled',
    enableRbacAuthorization: false,
    accessPolicies: [
        { tenantId: 't', objectId: API, permissions: { secrets: ['Get', 'List', 'Set'], keys: ['get'] } },
        { tenantId: 't', objectId: MALLORY, permissions: { secrets: ['get', 'list'] } },
        { tenantId: 't', objectId: BREAK_GLASS, permissions: { secrets: ['all'] } },
    ],
});

describe('planRemediation', () => {
    it('restores the default action with networkAcls complete (bypass, rules and virtual networks kept)', () => {
        const plan = planRemediation(openVault, ['firewall-opened'], policy, guard);
        expect(plan.patch).toEqual({
            networkAcls: {
                bypass: 'None',
                defaultAction: 'Deny',
                ipRules: [{ value: '198.51.100.7/32' }, { value: '203.0.113.66/32' }],
                virtualNetworkRules: openVault.properties.networkAcls?.virtualNetworkRules,
            },
        });
        expect(plan.actions.map((a) => a.action)).toEqual(['restore-firewall-default']);
    });

    it('removes exactly the unapproved IP rules, in the same single PATCH as the default action', () => {
        const plan = planRemediation(openVault, ['firewall-opened', 'firewall-ip-rule-added'], policy, guard);
        expect(plan.patch?.networkAcls).toMatchObject({
            defaultAction: 'Deny',
            bypass: 'None',
            ipRules: [{ value: '198.51.100.7/32' }],
        });
        expect(plan.actions.map((a) => a.detail)).toContainEqual({
            removed: ['203.0.113.66/32'],
            kept: ['198.51.100.7/32'],
        });
    });

    it('disables public network access only where the policy says so', () => {
        expect(planRemediation(openVault, ['public-network-access-enabled'], policy, guard).patch).toEqual({
            publicNetworkAccess: 'Disabled',
        });
        const lenient = parseResponderConfig({}, ruleIds, 'x').detection.policyFor(VAULT_REF);
        const plan = planRemediation(openVault, ['public-network-access-enabled'], lenient, guard);
        expect(plan.patch).toBeUndefined();
        expect(plan.skipped).toEqual([expect.objectContaining({ reason: 'policy-allows' })]);
    });

    it('removes the unapproved entry whole and only the excess of an approved one, never a protected principal', () => {
        const plan = planRemediation(openVault, ['access-policy-granted'], policy, guard);
        expect(plan.accessPolicyRemovals).toEqual([
            { tenantId: 't', objectId: API, permissions: { secrets: ['Set'], keys: ['get'] } },
            { tenantId: 't', objectId: MALLORY, permissions: { secrets: ['get', 'list'] } },
        ]);
        expect(plan.skipped).toEqual([
            expect.objectContaining({ reason: 'protected-principal', detail: { objectId: BREAK_GLASS } }),
        ]);
    });

    it('reports, but does not remediate, access policies on a vault with RBAC authorization', () => {
        const plan = planRemediation(
            vault({ ...openVault.properties, enableRbacAuthorization: true }),
            ['self-granted-access'],
            policy,
            guard,
        );
        expect(plan.accessPolicyRemovals).toEqual([]);
        expect(plan.skipped).toEqual([
            expect.objectContaining({ action: 'remove-access-policy', reason: 'rbac-authorization-enabled' }),
        ]);
    });

    it('plans nothing for a compliant vault', () => {
        const ok = vault({
            networkAcls: { defaultAction: 'Deny', ipRules: [{ value: '198.51.100.7/32' }] },
            publicNetworkAccess: 'Disabled',
            accessPolicies: [],
        });
        const plan = planRemediation(
            ok,
            ['firewall-opened', 'firewall-ip-rule-added', 'public-network-access-enabled', 'access-policy-granted'],
            policy,
            guard,
        );
        expect(plan.patch).toBeUndefined();
        expect(plan.actions).toEqual([]);
        expect(plan.skipped.map((s) => s.reason)).toEqual([
            'already-compliant',
            'already-compliant',
            'already-compliant',
            'already-compliant',
        ]);
    });
});

describe('verifyRemediation', () => {
    const plan = planRemediation(
        openVault,
        ['firewall-opened', 'firewall-ip-rule-added', 'access-policy-granted'],
        policy,
        guard,
    );

    it('accepts a vault that matches the plan', () => {
        const after = vault({
            networkAcls: { ...plan.patch?.networkAcls },
            accessPolicies: [{ tenantId: 't', objectId: API, permissions: { secrets: ['Get', 'List'] } }],
        });
        expect(verifyRemediation(after, plan)).toEqual([]);
    });

    it('names every difference', () => {
        const after = vault({
            networkAcls: { defaultAction: 'Allow', ipRules: [{ value: '203.0.113.66/32' }] },
            accessPolicies: [{ tenantId: 't', objectId: MALLORY, permissions: { secrets: ['get'] } }],
        });
        expect(verifyRemediation(after, plan)).toEqual([
            'networkAcls.defaultAction is Allow, expected Deny',
            'IP rule 198.51.100.7/32 is missing',
            'IP rule 203.0.113.66/32 is still there',
            'virtual network rule /subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/a is missing',
            `${MALLORY} still has secrets: get`,
        ]);
    });
});

describe('planRemediation: virtual network rules', () => {
    const A = '/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/a';
    const B = '/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/b';
    const subnetA = '/subscriptions/s/resourceGroups/N/providers/Microsoft.Network/virtualNetworks/V/subnets/A';
    const withList = parseResponderConfig(
        { guardrails: { default: { networkDefaultAction: 'Deny', approvedVirtualNetworkRules: [subnetA] } } },
        ruleIds,
        'test',
    ).detection.policyFor(VAULT_REF);
    const twoSubnets = vault({
        networkAcls: {
            bypass: 'None',
            defaultAction: 'Allow',
            ipRules: [{ value: '203.0.113.66/32' }],
            virtualNetworkRules: [{ id: A }, { id: B, ignoreMissingVnetServiceEndpoint: true }],
        },
    });

    it('without a list: not judged (skipped as policy-allows), nothing removed', () => {
        const plan = planRemediation(twoSubnets, ['firewall-vnet-rule-added'], policy, guard);
        expect(plan.patch).toBeUndefined();
        expect(plan.skipped).toEqual([
            { action: 'remove-vnet-rule', rule: 'firewall-vnet-rule-added', reason: 'policy-allows', detail: {} },
        ]);
    });

    it('with a list: removes exactly the unapproved subnet (ids compared case-insensitively), in one networkAcls with the firewall fix', () => {
        const plan = planRemediation(twoSubnets, ['firewall-opened', 'firewall-vnet-rule-added'], withList, guard);
        expect(plan.patch).toEqual({
            networkAcls: {
                bypass: 'None',
                defaultAction: 'Deny',
                ipRules: [{ value: '203.0.113.66/32' }],
                virtualNetworkRules: [{ id: A }],
            },
        });
        expect(plan.actions.map((a) => [a.action, a.detail.removed])).toEqual([
            ['restore-firewall-default', undefined],
            ['remove-vnet-rule', [B]],
        ]);
        // Read back with the rule still there: not verified.
        expect(verifyRemediation(twoSubnets, plan)).toContain(`virtual network rule ${B} is still there`);
    });

    it('with a list and only approved subnets: already compliant', () => {
        const plan = planRemediation(
            vault({ networkAcls: { defaultAction: 'Deny', virtualNetworkRules: [{ id: A }] } }),
            ['firewall-vnet-rule-added'],
            withList,
            guard,
        );
        expect(plan.patch).toBeUndefined();
        expect(plan.skipped.map((s) => s.reason)).toEqual(['already-compliant']);
    });
});
