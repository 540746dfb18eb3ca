// Drift from ARM truth: a vault write whose record carries no change fields still has the vault reconciled against
// ARM, every drift rule is checked, and the last snapshot keeps monitor-mode drift from being reported on every pass.
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { createResponder } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Decision, FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import type { StateStore } from '../../shared/core/state/store';
import { useArmKeyVaultFake, vaultAdminFor } from '../fakes/armClient';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, SUB, TENANT, VAULT } from '../support/paymentsVault';

const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';

function configFor(mode: 'enforce' | 'monitor') {
    return parseResponderConfig(
        {
            guardrails: {
                default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
                overrides: [{ match: { vaultName: VAULT }, mode, publicNetworkAccess: 'Disabled' }],
            },
            remediation: { retryBudgetSeconds: 2 },
        },
        ruleIds,
        'test',
    );
}

const arm = useArmKeyVaultFake(() =>
    paymentsVault({
        networkAcls: {
            bypass: 'AzureServices',
            defaultAction: 'Allow',
            ipRules: [{ value: '203.0.113.66/32' }],
        },
        publicNetworkAccess: 'Enabled',
        enableRbacAuthorization: false,
        accessPolicies: [{ tenantId: TENANT, objectId: MALLORY, permissions: { secrets: ['get'] } }],
    }),
);

function responder(mode: 'enforce' | 'monitor', store: StateStore = new MemoryStateStore()) {
    const decisions = new MemoryDecisionSink();
    const r = createResponder(
        configFor(mode),
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin: vaultAdminFor(arm.fake),
            clock: systemClock,
            store,
        },
    );
    return { decisions, pipeline: r.pipeline };
}

/** A VaultPatch record with no after-state and no added/removed fields: no rule can tell what changed. */
function bareVaultPatch(correlationId: string) {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as Record<string, unknown> & { properties: Record<string, unknown> };
    r.resourceId = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
    r.correlationId = correlationId;
    r.time = new Date().toISOString();
    delete r.properties.properties;
    return body;
}

const drift = (ds: readonly Decision[]) =>
    ds.filter((d): d is FindingDecision => d.type === 'finding' && d.source === 'arm-drift').map((d) => d.rule);

describe('drift from ARM truth', () => {
    it('enforce: a vault write with no change fields still brings every drift rule back to policy', async () => {
        const { decisions, pipeline } = responder('enforce');
        await pipeline.processBatch([{ body: bareVaultPatch('c-1') }]);
        const v = arm.fake.vault(VAULT).properties;
        expect(v.networkAcls?.defaultAction).toBe('Deny');
        expect(v.networkAcls?.ipRules ?? []).toEqual([]);
        expect(v.publicNetworkAccess).toBe('Disabled');
        expect(v.accessPolicies ?? []).toEqual([]);
        expect(drift(decisions.decisions).sort()).toEqual([
            'access-policy-granted',
            'firewall-ip-rule-added',
            'firewall-opened',
            'public-network-access-enabled',
        ]);
    });

    it('monitor: drift is planned and reported once, not again on the next pass', async () => {
        const store = new MemoryStateStore();
        const first = responder('monitor', store);
        await first.pipeline.processBatch([{ body: bareVaultPatch('c-1') }]);
        expect(drift(first.decisions.decisions)).toHaveLength(4);
        const again = responder('monitor', store);
        await again.pipeline.processBatch([{ body: bareVaultPatch('c-2') }]);
        expect(drift(again.decisions.decisions)).toEqual([]);
        expect(arm.fake.requests.filter((r) => r.method !== 'GET')).toEqual([]);
    });

    it('the RBAC switch turned off since the last reconcile is reported from ARM', async () => {
        const v = arm.fake.vault(VAULT);
        arm.fake.setVault({ ...v, properties: { ...v.properties, enableRbacAuthorization: true } });
        const store = new MemoryStateStore();
        await responder('monitor', store).pipeline.processBatch([{ body: bareVaultPatch('c-1') }]);
        arm.fake.setVault({ ...v, properties: { ...v.properties, enableRbacAuthorization: false } });
        const later = responder('monitor', store);
        await later.pipeline.processBatch([{ body: bareVaultPatch('c-2') }]);
        expect(drift(later.decisions.decisions)).toContain('rbac-authorization-disabled');
    });
});
