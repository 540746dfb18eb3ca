// Lost updates: a legitimate change lands between the responder's read and its PATCH (the simulator's read→write
// window hook). Vault resources carry no ETag, so the PATCH wipes it; the audit record of that change, arriving later,
// falls inside the recorded write window, and the worker restores what policy approves.
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { createResponder } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { ActionDecision, Decision, FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import { useArmKeyVaultFake, vaultAdminFor } from '../fakes/armClient';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, RESOURCE_ID, SUB, VAULT } from '../support/paymentsVault';

const ALICE = 'a1a1a1a1-0000-4000-8000-0000000000a1';
const VNET = `/subscriptions/${SUB}/resourcegroups/rg-net/providers/microsoft.network/virtualnetworks/vnet/subnets/apps`;

const config = parseResponderConfig(
    {
        guardrails: {
            default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
            overrides: [{ match: { vaultName: VAULT }, mode: 'enforce' }],
        },
        remediation: { retryBudgetSeconds: 2 },
    },
    ruleIds,
    'test',
);

const arm = useArmKeyVaultFake(() =>
    paymentsVault({
        networkAcls: {
            bypass: 'AzureServices',
            defaultAction: 'Allow',
            ipRules: [{ value: '198.51.100.7/32' }],
        },
    }),
);
afterEach(() => {
    expect(arm.fake.invalidRequests).toEqual([]);
});

function responder() {
    const decisions = new MemoryDecisionSink();
    const r = createResponder(
        config,
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin: vaultAdminFor(arm.fake),
            clock: systemClock,
            store: new MemoryStateStore(),
        },
    );
    return { decisions, pipeline: r.pipeline };
}

/** mallory's VaultPatch that opened the firewall (the trigger). */
function attackBody() {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as { resourceId: string; time: string };
    r.resourceId = RESOURCE_ID;
    r.time = new Date().toISOString();
    return body;
}

/** The audit record of alice's write: a VaultPatch whose properties carry the after-state ARM answered her with. */
function aliceRecord(at: string, ipRules: string[], vnets: string[]) {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as Record<string, unknown> & { properties: { properties: Record<string, unknown> } };
    r.resourceId = RESOURCE_ID;
    r.time = at;
    r.correlationId = 'a11ce000-0000-4000-8000-00000000a11c';
    r.callerIpAddress = '198.51.100.20';
    r.identity = {
        claim: {
            'http://schemas.microsoft.com/identity/claims/objectidentifier': ALICE,
            'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn': 'alice@contoso.example',
        },
    };
    r.properties.properties.networkAcls = {
        bypass: 'AzureServices',
        defaultAction: 'Allow',
        ipRules: ipRules.map((value) => ({ value })),
        virtualNetworkRules: vnets.map((id) => ({ id })),
    };
    return body;
}

const actions = (ds: readonly Decision[]) => ds.filter((d): d is ActionDecision => d.type === 'action');

/** alice adds `ip` (and the subnet) while the responder is between its read and its PATCH; returns her write's time. */
function aliceWritesInTheWindow(ip: string): { at: () => string } {
    let at = '';
    arm.fake.onReadWriteWindow((id) => {
        const v = arm.fake.vault(id);
        const acls = v.properties.networkAcls ?? {};
        arm.fake.setVault({
            ...v,
            properties: {
                ...v.properties,
                networkAcls: {
                    ...acls,
                    ipRules: [...(acls.ipRules ?? []), { value: ip }],
                    virtualNetworkRules: [{ id: VNET, ignoreMissingVnetServiceEndpoint: false }],
                },
            },
        });
        at = new Date().toISOString();
        arm.fake.onReadWriteWindow(undefined);
    });
    return { at: () => at };
}

describe('a legitimate change in the read→write window', () => {
    it('is wiped by the PATCH (no ETag), then restored from its audit record and reported', async () => {
        const { decisions, pipeline } = responder();
        const alice = aliceWritesInTheWindow('198.51.100.99');
        await pipeline.processBatch([{ body: attackBody() }]);
        // What ARM cannot prevent: the PATCH built from the earlier read removed alice's rules.
        const wiped = arm.fake.vault(VAULT).properties.networkAcls;
        expect(wiped?.defaultAction).toBe('Deny');
        expect(wiped?.ipRules?.map((r) => r.value)).not.toContain('198.51.100.99/32');
        expect(wiped?.virtualNetworkRules ?? []).toEqual([]);

        // Her audit record arrives: its time falls inside the responder's write window.
        await pipeline.processBatch([{ body: aliceRecord(alice.at(), ['198.51.100.7/32', '198.51.100.99'], [VNET]) }]);
        const v = arm.fake.vault(VAULT).properties.networkAcls;
        expect(v?.defaultAction).toBe('Deny');
        expect(v?.ipRules?.map((r) => r.value).sort()).toEqual(['198.51.100.7/32', '198.51.100.99/32']);
        expect(v?.virtualNetworkRules?.map((r) => r.id.toLowerCase())).toEqual([VNET]);
        const restored = actions(decisions.decisions).filter((a) => a.action === 'concurrent-change-restored');
        expect(restored.map((a) => a.status)).toEqual(['applied']);
        expect(
            decisions.decisions.some(
                (d): d is FindingDecision => d.type === 'finding' && d.rule === 'concurrent-change-restored',
            ),
        ).toBe(true);
    });

    it('an addition policy does not approve is not restored, and the refusal is reported', async () => {
        const { decisions, pipeline } = responder();
        const alice = aliceWritesInTheWindow('203.0.113.9');
        await pipeline.processBatch([{ body: attackBody() }]);
        await pipeline.processBatch([{ body: aliceRecord(alice.at(), ['198.51.100.7/32', '203.0.113.9'], []) }]);
        const v = arm.fake.vault(VAULT).properties.networkAcls;
        expect(v?.ipRules?.map((r) => r.value)).toEqual(['198.51.100.7/32']);
        expect(v?.defaultAction).toBe('Deny');
        expect(
            actions(decisions.decisions)
                .filter((a) => a.action === 'concurrent-change-restored')
                .map((a) => [a.status, a.detail.reason]),
        ).toContainEqual(['skipped', 'policy-refuses']);
    });

    it('a write outside any window restores nothing (it was seen by the read)', async () => {
        const { decisions, pipeline } = responder();
        await pipeline.processBatch([{ body: attackBody() }]);
        const long_ago = new Date(Date.now() - 3_600_000).toISOString();
        await pipeline.processBatch([{ body: aliceRecord(long_ago, ['198.51.100.7/32', '198.51.100.99'], []) }]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.ipRules?.map((r) => r.value)).toEqual(['198.51.100.7/32']);
        expect(actions(decisions.decisions).filter((a) => a.action === 'concurrent-change-restored')).toEqual([]);
    });
});
