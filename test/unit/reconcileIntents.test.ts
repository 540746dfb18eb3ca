import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { type IntentInput, ReconcileIntents } from '../../shared/app/reconcileIntents';
import type { Decision } from '../../shared/core/decisions';
import type { VaultRef } from '../../shared/core/events/types';

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
});
