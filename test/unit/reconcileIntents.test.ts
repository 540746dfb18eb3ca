import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { type IntentInput, ReconcileIntents } from '../../shared/app/reconcileIntents';
import type { Decision } from '../../shared/core/decisions';
import type { AuditEvent, VaultRef } from '../../shared/core/events/types';
import { intentInputsOf } from '../../shared/app/reconcileTriggers';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import { ruleIds } from '../../shared/core/rules';

const VAULT: VaultRef = {
    subscriptionId: 's',
    resourceGroup: 'rg',
    name: 'kv-one',
    resourceId: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-one',
};
const long = (c: string, n: number) => c.repeat(n);

/** Table Storage holds one value in one string property of at most 32,000 characters. */
const TABLE_PROPERTY_CHARS = 32_000;

describe('reconcile intents', () => {
    it('stay within one table property, whatever a batch throws at them', async () => {
        const intents = new ReconcileIntents(new MemoryStateStore(), systemClock);
        const inputs: IntentInput[] = [];
        for (let i = 0; i < 200; i++)
            inputs.push({
                vault: VAULT,
                reason: i % 2 === 0 ? 'trigger' : 'concurrent-change',
                rules: [`rule-${i}-${long('r', 200)}`],
                incidentKeys: [`firewall-opened|${long('p', 8000)}${i}`],
                correlationIds: [`${long('c', 8000)}${i}`],
                timeMs: 1_000 + i,
                roleAssignmentIds: [`${long('a', 5000)}${i}`, `/subscriptions/s/providers/x/roleAssignments/${i}`],
                concurrent: {
                    at: long('t', 500),
                    by: long('b', 5000),
                    ipRules: Array.from({ length: 500 }, (_, k) => `198.51.100.${k % 256}/${long('3', 300)}`),
                    virtualNetworkRules: Array.from(
                        { length: 500 },
                        (_, k) => `/subscriptions/${long('x', 2000)}/${k}`,
                    ),
                },
            });
        const [message] = await intents.record(inputs);
        expect(message).toEqual({ vaultId: VAULT.resourceId, version: 200 });
        const huge: Decision[] = Array.from({ length: 300 }, (_, i) => ({
            type: 'action',
            action: 'remove-ip-rule',
            vault: VAULT.name,
            rule: 'firewall-ip-rule-added',
            status: 'applied',
            detail: { summary: long('s', 2000), i },
        }));
        await intents.setUnsent(VAULT.name, huge);
        await intents.setError(VAULT.name, long('stage', 100), long('e', 10_000));
        const intent = await intents.read(VAULT.name);
        expect(JSON.stringify(intent).length).toBeLessThan(TABLE_PROPERTY_CHARS);
        expect(intent?.unsent?.length).toBeGreaterThan(0);
        expect(intent?.version).toBe(200);
        expect(intent?.roleAssignmentIds).toHaveLength(5);
    });

    it('keeps the role assignment ids until the version that carried them is processed', async () => {
        const intents = new ReconcileIntents(new MemoryStateStore(), systemClock);
        const ra = '/subscriptions/s/resourcegroups/rg/providers/microsoft.authorization/roleassignments/a';
        await intents.record([
            {
                vault: VAULT,
                reason: 'trigger',
                rules: ['role-assignment-granted'],
                incidentKeys: [],
                correlationIds: [],
                timeMs: 1,
                roleAssignmentIds: [ra],
            },
        ]);
        expect((await intents.read(VAULT.name))?.roleAssignmentIds).toEqual([ra]);
        await intents.complete(VAULT.name, 1);
        expect((await intents.read(VAULT.name))?.roleAssignmentIds).toBeUndefined();
    });

    it('a role assignment above vaults is reconciled on each known vault it covers, never on a stand-in', async () => {
        const settings = parseResponderConfig(
            {
                guardrails: {
                    overrides: [
                        { match: { resourceId: VAULT.resourceId } },
                        {
                            match: {
                                resourceId:
                                    '/subscriptions/s/resourceGroups/rg-other/providers/Microsoft.KeyVault/vaults/kv-two',
                            },
                        },
                    ],
                },
            },
            ruleIds,
            'test',
        ).detection;
        const scope = {
            level: 'resource-group' as const,
            id: '/subscriptions/s/resourcegroups/rg',
            subscriptionId: 's',
            resourceGroup: 'rg',
            managementGroup: undefined,
        };
        const id = `${scope.id}/providers/microsoft.authorization/roleassignments/a`;
        const event = {
            vault: { subscriptionId: 's', resourceGroup: 'rg', name: 'rg:s:rg', resourceId: scope.id },
            timeMs: 5,
            correlationId: 'c',
            activity: { roleAssignment: { id, name: 'a', scope } },
        } as unknown as AuditEvent;
        const inputs = await intentInputsOf(
            [event],
            [{ rule: 'role-assignment-granted', event, principal: 'p' }],
            settings,
            undefined,
        );
        expect(inputs.map((i) => [i.vault.name, i.roleAssignmentIds])).toEqual([['kv-one', [id]]]);
        // Another rule's trigger on the stand-in has no vault to reconcile.
        expect(await intentInputsOf([event], [{ rule: 'firewall-opened', event }], settings, undefined)).toEqual([]);
    });

    it('completing a version keeps what arrived after it, and a processed version is never reopened', async () => {
        const intents = new ReconcileIntents(new MemoryStateStore(), systemClock);
        const input = (rule: string, timeMs: number): IntentInput => ({
            vault: VAULT,
            reason: 'trigger',
            rules: [rule],
            incidentKeys: [],
            correlationIds: [],
            timeMs,
        });
        await intents.record([input('firewall-opened', 1)]);
        await intents.record([input('firewall-ip-rule-added', 2)]);
        await intents.complete(VAULT.name, 1);
        expect(await intents.read(VAULT.name)).toMatchObject({ version: 2, processed: 1 });
        await intents.complete(VAULT.name, 2);
        expect(await intents.read(VAULT.name)).toMatchObject({ version: 2, processed: 2, rules: [] });
        await intents.complete(VAULT.name, 1);
        expect((await intents.read(VAULT.name))?.processed).toBe(2);
    });

    it('records on intents read beforehand without reading them again; a stale one fails its compare-and-set and is read', async () => {
        const store = new MemoryStateStore();
        let reads = 0;
        const counted = new ReconcileIntents(
            {
                getMany: (keys) => {
                    reads++;
                    return store.getMany(keys);
                },
                put: (key, value, etag, exp) => store.put(key, value, etag, exp),
                scan: (p, l) => store.scan(p, l),
            },
            systemClock,
        );
        const other = new ReconcileIntents(store, systemClock);
        const two: VaultRef = { ...VAULT, name: 'kv-two', resourceId: `${VAULT.resourceId.slice(0, -3)}two` };
        const input = (vault: VaultRef, rule: string): IntentInput => ({
            vault,
            reason: 'trigger',
            rules: [rule],
            incidentKeys: [],
            correlationIds: [],
            timeMs: 1,
        });
        await other.record([input(VAULT, 'firewall-opened')]);
        const known = await counted.readKnownMany([VAULT.name, two.name]);
        expect(reads).toBe(1);
        expect(known.get(two.name)).toBeNull();
        // Another writer changes kv-one after the read: that merge fails on the stale ETag, reads, merges again.
        await other.record([input(VAULT, 'firewall-ip-rule-added')]);
        const messages = await counted.record(
            [input(VAULT, 'access-policy-changed'), input(two, 'firewall-opened')],
            known,
        );
        expect(reads).toBe(2); // kv-one read again after its conflict; kv-two inserted on the read that found none
        expect(messages.map((m) => m.version)).toEqual([3, 1]);
        expect((await counted.read(VAULT.name))?.rules).toEqual([
            'firewall-opened',
            'firewall-ip-rule-added',
            'access-policy-changed',
        ]);
        // kv-three did not exist when read; created since by someone else: the insert fails, nothing is lost.
        const stale = await counted.readKnownMany(['kv-three']);
        const three: VaultRef = { ...VAULT, name: 'kv-three', resourceId: `${VAULT.resourceId.slice(0, -3)}three` };
        await other.record([input(three, 'firewall-opened')]);
        await counted.record([input(three, 'access-policy-changed')], stale);
        expect((await counted.read('kv-three'))?.rules).toEqual(['firewall-opened', 'access-policy-changed']);
    });
});
