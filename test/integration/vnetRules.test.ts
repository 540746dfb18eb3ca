// Virtual network rules against a list of approved subnets (`approvedVirtualNetworkRules`): the reconciler finds an
// unapproved rule in the vault as ARM returns it (drift, whatever the record said), removes exactly it in enforce mode
// (one PATCH, networkAcls sent whole, read back), and its undo restores exactly it, flag included. Without a list,
// virtual network rules are not judged (the behaviour before the list existed). Real @azure/arm-keyvault client
// against the ARM simulator.
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { vaultRefOf } from '../../shared/app/alerting';
import { createResponder } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { ActionDecision, Decision, FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import type { StateStore } from '../../shared/core/state/store';
import { useArmKeyVaultFake, vaultAdminFor } from '../fakes/armClient';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, SUB, VAULT } from '../support/paymentsVault';

const VAULT_ID = `/subscriptions/${SUB}/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/${VAULT}`;
const subnet = (vnet: string, name: string) =>
    `/subscriptions/${SUB}/resourceGroups/rg-network/providers/Microsoft.Network/virtualNetworks/${vnet}/subnets/${name}`;
const APPS = subnet('vnet-hub', 'snet-apps');
const JUMP = subnet('vnet-attacker', 'snet-jump');

function configFor(mode: 'enforce' | 'monitor', approved: readonly string[] | undefined) {
    return parseResponderConfig(
        {
            guardrails: {
                default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
                overrides: [
                    {
                        match: { vaultName: VAULT },
                        mode,
                        // The config spells the approved subnet in another case than ARM returns it.
                        ...(approved === undefined
                            ? {}
                            : { approvedVirtualNetworkRules: approved.map((s) => s.toUpperCase()) }),
                    },
                ],
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
            defaultAction: 'Deny',
            ipRules: [{ value: '198.51.100.7/32' }],
            virtualNetworkRules: [
                { id: APPS, ignoreMissingVnetServiceEndpoint: false },
                { id: JUMP, ignoreMissingVnetServiceEndpoint: true },
            ],
        },
    }),
);

function responder(
    mode: 'enforce' | 'monitor',
    approved: readonly string[] | undefined,
    store: StateStore = new MemoryStateStore(),
) {
    const decisions = new MemoryDecisionSink();
    const r = createResponder(
        configFor(mode, approved),
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin: vaultAdminFor(arm.fake),
            clock: systemClock,
            store,
        },
    );
    return { decisions, r };
}

/** A VaultPatch record with no after-state and no added/removed fields: only ARM can tell what the vault holds. */
function bareVaultPatch(correlationId: string, extra: Record<string, unknown> = {}) {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as Record<string, unknown> & { properties: Record<string, unknown> };
    r.resourceId = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
    r.correlationId = correlationId;
    r.time = new Date().toISOString();
    delete r.properties.properties;
    Object.assign(r.properties, extra);
    return body;
}

const findings = (ds: readonly Decision[]) => ds.filter((d): d is FindingDecision => d.type === 'finding');
const actions = (ds: readonly Decision[]) => ds.filter((d): d is ActionDecision => d.type === 'action');
const writes = () => arm.fake.requests.filter((r) => r.method !== 'GET');

describe('virtual network rules and approvedVirtualNetworkRules', () => {
    it('without a list they are not judged: no finding, no action, every rule kept', async () => {
        const { decisions, r } = responder('enforce', undefined);
        await r.pipeline.processBatch([{ body: bareVaultPatch('c-1', { addedVirtualNetworkRule: { Id: JUMP } }) }]);
        expect(findings(decisions.decisions).map((f) => f.rule)).not.toContain('firewall-vnet-rule-added');
        expect(actions(decisions.decisions).map((a) => a.action)).not.toContain('remove-vnet-rule');
        expect(writes()).toEqual([]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.virtualNetworkRules?.map((v) => v.id)).toEqual([
            APPS,
            JUMP,
        ]);
    });

    it('enforce: drift from ARM, the smallest PATCH with networkAcls whole, read back; undo restores exactly it', async () => {
        const store = new MemoryStateStore();
        const { decisions, r } = responder('enforce', [APPS], store);
        // The record names no change: the unapproved rule is found in ARM.
        await r.pipeline.processBatch([{ body: bareVaultPatch('c-1') }]);
        const drift = findings(decisions.decisions).filter((f) => f.rule === 'firewall-vnet-rule-added');
        expect(drift).toHaveLength(1);
        expect(drift[0]).toMatchObject({ source: 'arm-drift', severity: 'high' });
        const applied = actions(decisions.decisions).filter((a) => a.action === 'remove-vnet-rule');
        expect(applied).toHaveLength(1);
        expect(applied[0]).toMatchObject({ status: 'applied', detail: { verified: true, removed: [JUMP] } });

        const patches = writes();
        expect(patches).toHaveLength(1);
        expect(patches[0]?.method).toBe('PATCH');
        expect(patches[0]?.body).toEqual({
            properties: {
                networkAcls: {
                    bypass: 'AzureServices',
                    defaultAction: 'Deny',
                    ipRules: [{ value: '198.51.100.7/32' }],
                    virtualNetworkRules: [{ id: APPS, ignoreMissingVnetServiceEndpoint: false }],
                },
            },
        });
        expect(arm.fake.invalidRequests).toEqual([]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.virtualNetworkRules?.map((v) => v.id)).toEqual([APPS]);

        // Undo restores exactly the removed rule, its flag as it was, and approves it for a while.
        arm.fake.clearLog();
        const undoId = applied[0]?.detail.undoId as string;
        const undone = await r.undoer.undo(vaultRefOf(VAULT_ID), undoId, { rules: ['firewall-vnet-rule-added'] });
        expect(undone.restored).toEqual([`virtual network rule ${JUMP} restored`]);
        expect(undone.approved).toEqual([`virtual network rule ${JUMP.toLowerCase()}`]);
        const acls = arm.fake.vault(VAULT).properties.networkAcls;
        expect(acls?.virtualNetworkRules).toEqual([
            { id: APPS, ignoreMissingVnetServiceEndpoint: false },
            { id: JUMP, ignoreMissingVnetServiceEndpoint: true },
        ]);
        expect(acls?.ipRules).toEqual([{ value: '198.51.100.7/32' }]);

        // The approval holds: the next reconcile leaves it alone.
        arm.fake.clearLog();
        const again = responder('enforce', [APPS], store);
        await again.r.pipeline.processBatch([{ body: bareVaultPatch('c-2') }]);
        expect(writes()).toEqual([]);
        expect(findings(again.decisions.decisions).map((f) => f.rule)).not.toContain('firewall-vnet-rule-added');
    });

    it('a record naming the added rule fires the rule itself; monitor mode plans without writing', async () => {
        const { decisions, r } = responder('monitor', [APPS]);
        await r.pipeline.processBatch([{ body: bareVaultPatch('c-1', { addedVirtualNetworkRule: { Id: JUMP } }) }]);
        const fired = findings(decisions.decisions).filter((f) => f.rule === 'firewall-vnet-rule-added');
        expect(fired).toHaveLength(1);
        expect(fired[0]?.source).toBeUndefined();
        expect(fired[0]?.summary).toContain('vnet-attacker/snet-jump');
        expect(actions(decisions.decisions).filter((a) => a.action === 'remove-vnet-rule')).toMatchObject([
            { status: 'planned', detail: { mode: 'monitor', removed: [JUMP] } },
        ]);
        expect(writes()).toEqual([]);
    });

    it('a bad subnet id in the config is a clear error', () => {
        expect(() =>
            parseResponderConfig(
                { guardrails: { default: { approvedVirtualNetworkRules: ['snet-apps', APPS] } } },
                ruleIds,
                'test',
            ),
        ).toThrow(/approvedVirtualNetworkRules.*expected a subnet resource id/s);
    });
});
