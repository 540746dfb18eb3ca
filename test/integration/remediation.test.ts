import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { createPipeline } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { ActionDecision, Decision, FindingDecision } from '../../shared/core/decisions';
import type { VaultAdmin } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import { type StateStore, stateKey } from '../../shared/core/state/store';
import { useArmKeyVaultFake, vaultAdminFor } from '../fakes/armClient';
import { makeVault } from '../../shared/simulation/armSimulator';
import { fixtureBody } from '../support/fixtures';
import { paymentsVault, SUB, TENANT } from '../support/paymentsVault';

const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';
const API = 'c0c0c0c0-0000-4000-8000-0000000000a1';
const BREAK_GLASS = 'b6b6b6b6-0000-4000-8000-0000000000b6';
const RESPONDER = '5e5e5e5e-0000-4000-8000-00000000005e';
const VNET = `/subscriptions/${SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/apps`;

function openVault() {
    return paymentsVault({
        networkAcls: {
            bypass: 'None',
            defaultAction: 'Allow',
            ipRules: [{ value: '198.51.100.7/32' }, { value: '203.0.113.66/32' }],
            virtualNetworkRules: [{ id: VNET, ignoreMissingVnetServiceEndpoint: false }],
        },
        publicNetworkAccess: 'Enabled',
        enableRbacAuthorization: false,
        accessPolicies: [
            { tenantId: TENANT, objectId: API, permissions: { secrets: ['Get', 'List', 'Set'] } },
            { tenantId: TENANT, objectId: MALLORY, permissions: { keys: ['get'], secrets: ['get', 'list'] } },
            { tenantId: TENANT, objectId: BREAK_GLASS, permissions: { secrets: ['all'] } },
        ],
    });
}

function configFor(mode: 'enforce' | 'monitor', extra: Record<string, unknown> = {}) {
    return parseResponderConfig(
        {
            guardrails: {
                default: {
                    networkDefaultAction: 'Deny',
                    approvedIpRanges: ['198.51.100.0/24'],
                    approvedPrincipals: [{ objectId: API, permissions: { secrets: ['get', 'list'] } }],
                },
                overrides: [{ match: { vaultName: 'kv-payments-prod' }, mode, publicNetworkAccess: 'Disabled' }],
            },
            protectedPrincipals: [BREAK_GLASS],
            responderIdentities: [RESPONDER],
            remediation: { retryBudgetSeconds: 3 },
            ...extra,
        },
        ruleIds,
        'test',
    );
}

const arm = useArmKeyVaultFake(() => openVault());
afterEach(() => {
    // The remediation never sent a request the real API would reject.
    expect(arm.fake.invalidRequests).toEqual([]);
});

function processor(
    config = configFor('enforce'),
    options: { store?: StateStore; admin?: VaultAdmin; owner?: string } = {},
) {
    const decisions = new MemoryDecisionSink();
    const admin = options.admin ?? vaultAdminFor(arm.fake);
    const pipeline = createPipeline(
        config,
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin,
            clock: systemClock,
            store: options.store ?? new MemoryStateStore(),
            ...(options.owner === undefined ? {} : { owner: options.owner }),
        },
    );
    return { decisions, pipeline };
}

const actions = (ds: readonly Decision[]) => ds.filter((d): d is ActionDecision => d.type === 'action');
/** The actions that were tried (not skipped by a rail or because there was nothing to do). */
const attempted = (ds: readonly Decision[]) => actions(ds).filter((a) => a.status !== 'skipped');
const criticals = (ds: readonly Decision[]) =>
    ds.filter((d): d is FindingDecision => d.type === 'finding' && d.rule.startsWith('remediation-'));
const writes = () => arm.fake.requests.filter((r) => r.method !== 'GET');

/** A VaultPatch by mallory that opened the firewall and added her IP (the recorded after-state is only the trigger). */
function attackBody() {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = body.records[0] as { properties: Record<string, unknown>; resourceId: string };
    r.resourceId = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
    r.properties.addedIpRule = { Value: '203.0.113.66/32' };
    r.properties.addedAccessPolicy = { TenantId: TENANT, ObjectId: MALLORY, Permissions: { secrets: ['get', 'list'] } };
    (r.properties.properties as Record<string, unknown>).publicNetworkAccess = 'Enabled';
    return body;
}

describe('remediation against the ARM fake, through the real @azure/arm-keyvault client', () => {
    it('enforce: reverts the vault with the smallest change, verifies it, and keeps what was approved', async () => {
        const { decisions, pipeline } = processor();
        await pipeline.processBatch([{ body: attackBody() }]);
        const applied = actions(decisions.decisions);
        expect(applied.map((a) => [a.action, a.status, a.detail.reason])).toEqual([
            ['remove-access-policy', 'skipped', 'protected-principal'],
            ['restore-firewall-default', 'applied', undefined],
            ['remove-ip-rule', 'applied', undefined],
            ['disable-public-network-access', 'applied', undefined],
            ['remove-access-policy', 'applied', undefined],
            ['remove-access-policy', 'applied', undefined],
        ]);
        const v = arm.fake.vault('kv-payments-prod').properties;
        expect(v.networkAcls).toEqual({
            bypass: 'None',
            defaultAction: 'Deny',
            ipRules: [{ value: '198.51.100.7/32' }],
            virtualNetworkRules: [{ id: VNET, ignoreMissingVnetServiceEndpoint: false }],
        });
        expect(v.publicNetworkAccess).toBe('Disabled');
        expect(v.accessPolicies).toEqual([
            { tenantId: TENANT, objectId: API, permissions: { secrets: ['Get', 'List'] } },
            { tenantId: TENANT, objectId: BREAK_GLASS, permissions: { secrets: ['all'] } },
        ]);
        // One PATCH for the network changes, one access-policy removal per principal, never a whole-list rewrite.
        expect(writes().map((r) => `${r.method} ${r.path.replace(/^.*\/vaults\/[^/]+/, '')}`)).toEqual([
            'PATCH ',
            'PUT /accessPolicies/remove',
            'PUT /accessPolicies/remove',
        ]);
        const done = applied.filter((a) => a.status === 'applied');
        expect(done.every((a) => a.detail.verified === true && typeof a.detail.undoId === 'string')).toBe(true);
        expect(criticals(decisions.decisions)).toEqual([]);
    });

    it('is idempotent: the redelivered event finds the vault compliant and changes nothing', async () => {
        const store = new MemoryStateStore();
        await processor(configFor('enforce'), { store }).pipeline.processBatch([{ body: attackBody() }]);
        arm.fake.clearLog();
        const again = processor(configFor('enforce'), { store });
        await again.pipeline.processBatch([{ body: attackBody() }]);
        expect(writes()).toEqual([]);
        // A fresh processor (no dedupe state) reads ARM and finds nothing to do.
        const fresh = processor();
        await fresh.pipeline.processBatch([{ body: attackBody() }]);
        expect(writes()).toEqual([]);
        expect(
            actions(fresh.decisions.decisions)
                .map((a) => a.detail.reason)
                .sort(),
        ).toEqual(['already-compliant', 'already-compliant', 'already-compliant', 'protected-principal']);
    });

    it('monitor: plans and changes nothing', async () => {
        const { decisions, pipeline } = processor(configFor('monitor'));
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(writes()).toEqual([]);
        expect(actions(decisions.decisions).map((a) => a.status)).toEqual([
            'planned',
            'planned',
            'planned',
            'planned',
            'planned',
            'skipped',
        ]);
        expect(arm.fake.vault('kv-payments-prod').properties.networkAcls?.defaultAction).toBe('Allow');
    });

    it('per-rule monitor mode plans that rule only', async () => {
        const config = parseResponderConfig(
            {
                guardrails: {
                    default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] },
                    overrides: [
                        {
                            match: { vaultName: 'kv-payments-prod' },
                            mode: 'enforce',
                            ruleModes: { 'firewall-ip-rule-added': 'monitor' },
                        },
                    ],
                },
            },
            ruleIds,
            'test',
        );
        const { decisions, pipeline } = processor(config);
        await pipeline.processBatch([{ body: attackBody() }]);
        const byAction = new Map(actions(decisions.decisions).map((a) => [a.action, a.status]));
        expect(byAction.get('restore-firewall-default')).toBe('applied');
        expect(byAction.get('remove-ip-rule')).toBe('planned');
        expect(arm.fake.vault('kv-payments-prod').properties.networkAcls?.ipRules).toHaveLength(2);
    });

    it('puts vaults in enforce scope by their ARM tags', async () => {
        const byTag = (value: string) =>
            parseResponderConfig(
                {
                    guardrails: {
                        default: { networkDefaultAction: 'Deny' },
                        overrides: [{ match: { tag: { name: 'env', value } }, mode: 'enforce' }],
                    },
                },
                ruleIds,
                'tags',
            );
        const v = openVault();
        arm.fake.setVault({ ...v, tags: { Env: 'prod' } });
        const dev = processor(byTag('dev'));
        await dev.pipeline.processBatch([{ body: attackBody() }]);
        expect(writes()).toEqual([]);
        const prod = processor(byTag('prod'));
        await prod.pipeline.processBatch([{ body: attackBody() }]);
        expect(actions(prod.decisions.decisions).find((a) => a.action === 'restore-firewall-default')?.status).toBe(
            'applied',
        );
    });

    it("never acts on the responder's own changes (loop prevention)", async () => {
        const body = attackBody();
        const claim = (body.records[0] as { identity: { claim: Record<string, string> } }).identity.claim;
        claim['http://schemas.microsoft.com/identity/claims/objectidentifier'] = RESPONDER;
        const { decisions, pipeline } = processor();
        await pipeline.processBatch([{ body }]);
        expect(arm.fake.requests).toEqual([]);
        expect(decisions.decisions).toEqual([]);
    });

    it('reports, without remediating, access policies on a vault with RBAC authorization', async () => {
        const v = openVault();
        arm.fake.setVault({ ...v, properties: { ...v.properties, enableRbacAuthorization: true } });
        const { decisions, pipeline } = processor();
        await pipeline.processBatch([{ body: attackBody() }]);
        const ap = actions(decisions.decisions).filter((a) => a.action === 'remove-access-policy');
        expect(ap.map((a) => [a.status, a.detail.reason])).toEqual([['skipped', 'rbac-authorization-enabled']]);
        expect(arm.fake.vault('kv-payments-prod').properties.accessPolicies).toHaveLength(3);
    });

    it('suspends a vault beyond the hourly cap and raises remediation-suspended', async () => {
        const store = new MemoryStateStore();
        const config = configFor('enforce', { remediation: { maxPerVaultPerHour: 1, retryBudgetSeconds: 3 } });
        await processor(config, { store }).pipeline.processBatch([{ body: attackBody() }]);
        arm.fake.setVault(openVault()); // a pipeline or a policy opens it again: a tug of war
        arm.fake.clearLog();
        const second = processor(config, { store });
        const body = attackBody();
        (body.records[0] as { time: string }).time = '2026-10-05T09:40:00.0000000Z';
        (body.records[0] as { correlationId: string }).correlationId = 'second-attempt';
        await second.pipeline.processBatch([{ body }]);
        expect(writes()).toEqual([]);
        expect(
            actions(second.decisions.decisions)
                .filter((a) => a.detail.reason !== 'protected-principal')
                .every((a) => a.status === 'skipped' && a.detail.reason === 'blast-radius'),
        ).toBe(true);
        expect(criticals(second.decisions.decisions).map((f) => [f.rule, f.severity])).toEqual([
            ['remediation-suspended', 'critical'],
        ]);
    });

    it.each([
        ['429 without Retry-After', { status: 429 as const }],
        ['429 with Retry-After', { status: 429 as const, retryAfterSeconds: 1 }],
        ['500 once', { status: 500 as const }],
    ])('retries %s and still applies', async (_name, fault) => {
        arm.fake.inject({ ...fault, match: { method: 'PATCH' } });
        const { decisions, pipeline } = processor();
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(attempted(decisions.decisions).every((a) => a.status === 'applied')).toBe(true);
        expect(arm.fake.requests.filter((r) => r.method === 'PATCH')).toHaveLength(2);
    });

    it('aborts a call that hangs and retries it', async () => {
        arm.fake.inject({ delayMs: 1500, match: { method: 'PATCH' } });
        const admin = vaultAdminFor(arm.fake, 300);
        const { decisions, pipeline } = processor(configFor('enforce'), { admin });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(attempted(decisions.decisions).every((a) => a.status === 'applied')).toBe(true);
        expect(arm.fake.requests.filter((r) => r.method === 'PATCH').length).toBeGreaterThanOrEqual(2);
        expect(arm.fake.vault('kv-payments-prod').properties.networkAcls?.defaultAction).toBe('Deny');
        // The fake still holds the aborted PATCH and applies it after its delay: let it land within this test, not
        // on the vault of the next one.
        await new Promise((resolve) => setTimeout(resolve, 1500));
    });

    it('saves the prior state before changing anything, for undo', async () => {
        const store = new MemoryStateStore();
        const { decisions, pipeline } = processor(configFor('enforce'), { store });
        await pipeline.processBatch([{ body: attackBody() }]);
        const undoId = actions(decisions.decisions).find((a) => a.status === 'applied')?.detail.undoId as string;
        const [undo] = await store.getMany([stateKey('kv-payments-prod', `undo|${undoId}`)]);
        const before = openVault().properties;
        // One part per change, tagged with the rule that asked for it (an incident's undo restores only its own).
        expect(undo?.value).toMatchObject({
            vaultId: `/subscriptions/${SUB}/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/kv-payments-prod`,
            parts: expect.arrayContaining([
                expect.objectContaining({
                    action: 'restore-firewall-default',
                    rule: 'firewall-opened',
                    defaultAction: before.networkAcls?.defaultAction,
                }),
                expect.objectContaining({
                    action: 'disable-public-network-access',
                    rule: 'public-network-access-enabled',
                    publicNetworkAccess: 'Enabled',
                }),
                expect.objectContaining({
                    action: 'remove-access-policy',
                    entry: expect.objectContaining({ objectId: MALLORY }),
                }),
            ]),
        });
        expect(undo?.value).not.toHaveProperty('before');
        expect((undo?.value as { rules: string[] }).rules.sort()).toEqual([
            'access-policy-granted',
            'firewall-ip-rule-added',
            'firewall-opened',
            'public-network-access-enabled',
            'self-granted-access',
        ]);
    });

    it('stops at the per-invocation cap and suspends the rest', async () => {
        const other = makeVault({
            subscriptionId: SUB,
            resourceGroup: 'rg-payments',
            name: 'kv-payments-dr',
            tenantId: TENANT,
            properties: { networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' } },
        });
        arm.fake.setVault(other);
        const body = attackBody();
        const second = structuredClone(body.records[0]) as { resourceId: string; correlationId: string };
        second.resourceId = second.resourceId.replace('KV-PAYMENTS-PROD', 'KV-PAYMENTS-DR');
        second.correlationId = 'second-vault';
        body.records.push(second);
        const config = configFor('enforce', {
            guardrails: { default: { networkDefaultAction: 'Deny', mode: 'enforce' } },
            remediation: { maxPerInvocation: 1, retryBudgetSeconds: 3 },
        });
        const { decisions, pipeline } = processor(config);
        await pipeline.processBatch([{ body }]);
        expect(arm.fake.vault('kv-payments-prod').properties.networkAcls?.defaultAction).toBe('Deny');
        expect(arm.fake.vault('kv-payments-dr').properties.networkAcls?.defaultAction).toBe('Allow');
        expect(criticals(decisions.decisions).map((f) => [f.rule, f.vault, f.cap])).toEqual([
            ['remediation-suspended', 'kv-payments-dr', 'invocation'],
        ]);
    });

    it('fails loud on 403 (missing permission): failed actions and a critical finding', async () => {
        arm.fake.inject({ status: 403, match: { method: 'PATCH' } });
        const { decisions, pipeline } = processor();
        await pipeline.processBatch([{ body: attackBody() }]);
        const failed = actions(decisions.decisions).filter((a) => a.status === 'failed');
        expect(failed.length).toBeGreaterThan(0);
        expect(failed[0]?.detail).toMatchObject({ stage: 'apply', missingPermission: true });
        expect(criticals(decisions.decisions).map((f) => f.rule)).toEqual(['remediation-failed']);
    });

    it('fails loud when 5xx persists beyond the retry budget', async () => {
        arm.fake.inject({ status: 503, times: 100, match: { method: 'PATCH' } });
        const { decisions, pipeline } = processor(configFor('enforce', { remediation: { retryBudgetSeconds: 1 } }));
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(criticals(decisions.decisions).map((f) => f.rule)).toEqual(['remediation-failed']);
        expect(String(criticals(decisions.decisions)[0]?.summary)).toMatch(/gave up retrying/);
    });

    it('fails loud when the read-back does not match', async () => {
        const real = vaultAdminFor(arm.fake);
        const ignoring: VaultAdmin = {
            get: (v) => real.get(v),
            patch: (v) => real.get(v),
            removeAccessPolicy: () => Promise.resolve(),
            addAccessPolicy: () => Promise.resolve(),
        };
        const { decisions, pipeline } = processor(configFor('enforce'), { admin: ignoring });
        await pipeline.processBatch([{ body: attackBody() }]);
        expect(
            attempted(decisions.decisions).every((a) => a.status === 'failed' && a.detail.reason === 'not-verified'),
        ).toBe(true);
        expect(criticals(decisions.decisions).map((f) => f.rule)).toEqual(['remediation-failed']);
    });

    it('two processors racing on one vault: one effective change, a compliant vault', async () => {
        const store = new MemoryStateStore();
        const a = processor(configFor('enforce'), { store, owner: 'a' });
        const b = processor(configFor('enforce'), { store, owner: 'b' });
        const bodyB = attackBody();
        (bodyB.records[0] as { correlationId: string }).correlationId = 'from-partition-2';
        await Promise.all([
            a.pipeline.processBatch([{ body: attackBody() }]),
            b.pipeline.processBatch([{ body: bodyB }]),
        ]);
        expect(arm.fake.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
        expect(arm.fake.requests.filter((r) => r.path.endsWith('/accessPolicies/remove'))).toHaveLength(2);
        const v = arm.fake.vault('kv-payments-prod').properties;
        expect(v.networkAcls?.defaultAction).toBe('Deny');
        expect(v.accessPolicies?.map((p) => p.objectId)).toEqual([API, BREAK_GLASS]);
        const all = [...actions(a.decisions.decisions), ...actions(b.decisions.decisions)];
        expect(all.filter((x) => x.status === 'applied')).toHaveLength(5);
        expect(all.filter((x) => x.status === 'failed')).toEqual([]);
    });
});
