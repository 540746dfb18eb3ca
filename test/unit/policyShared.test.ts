import { parseResponderConfig } from '../../shared/config/responderConfig';
import { ruleIds } from '../../shared/core/rules';

function vaultRef(name: string, subscriptionId = 's') {
    return {
        subscriptionId,
        resourceGroup: 'rg',
        name,
        resourceId: `/subscriptions/${subscriptionId}/resourcegroups/rg/providers/microsoft.keyvault/vaults/${name}`,
    };
}

const config = parseResponderConfig(
    {
        guardrails: {
            default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
            overrides: [{ match: { vaultName: 'kv-open' }, networkDefaultAction: 'Allow', mode: 'enforce' }],
        },
    },
    ruleIds,
    'test',
);

describe('policyFor: one shared policy for the vaults no override matches', () => {
    it('returns the same frozen object for every such vault (an estate of 10,000 vaults holds one, not 10,000)', () => {
        const a = config.detection.policyFor(vaultRef('kv-a'));
        const b = config.detection.policyFor(vaultRef('kv-b', 't'));
        expect(b).toBe(a);
        expect(Object.isFrozen(a)).toBe(true);
        expect(a.networkDefaultAction).toBe('Deny');
        expect(a.mode).toBe('monitor');
        expect(a.approvedIpRanges).toHaveLength(1);
    });

    it('gives a vault an override matches a policy of its own, the defaults with the override applied', () => {
        const shared = config.detection.policyFor(vaultRef('kv-a'));
        const open = config.detection.policyFor(vaultRef('kv-open'));
        expect(open).not.toBe(shared);
        expect(open.networkDefaultAction).toBe('Allow');
        expect(open.mode).toBe('enforce');
        expect(open.approvedIpRanges).toHaveLength(1);
        // The shared one is untouched by the override.
        expect(shared.networkDefaultAction).toBe('Deny');
        expect(shared.mode).toBe('monitor');
    });
});
