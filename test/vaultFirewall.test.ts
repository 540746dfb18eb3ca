/**
 * A vault whose firewall denies the app (defaultAction Deny, no VNet rule for it): every data-plane call answers 403
 * ForbiddenByFirewall, because Azure Functions is not a Key Vault trusted service (deployment-contracts.md, "ARM and
 * Key Vault"). Key-state and posture reads must say so, with the fix, through the real KeyClient against the HTTPS
 * fake.
 */
import { KeyClient } from '@azure/keyvault-keys';
import { KeyVaultKeyStateReader } from '../shared/adapters/keyStateReader';
import { isFirewallDenial, readVaultKeys, VaultFirewallError } from '../shared/adapters/keyVaultKeys';
import { CmkEnricher } from '../shared/app/cmk';
import type { Decision, FindingDecision } from '../shared/core/decisions';
import type { Logger } from '../shared/core/ports';
import {
    type KeyVaultKeysFake,
    keysClientOptionsFor,
    startKeyVaultKeysFake,
} from '../shared/simulation/keyVaultKeysFake';
import { StubTokenCredential } from './fakes/armClient';

const V1 = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

class Log implements Logger {
    readonly errors: { message: string; fields: Readonly<Record<string, unknown>> | undefined }[] = [];
    info(): void {}
    warn(): void {}
    error(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.errors.push({ message, fields });
    }
}

const FIX =
    /data plane unreachable, its firewall refused .*403 ForbiddenByFirewall.*VNet integration.*VNet rule.*private endpoint/;

let fake: KeyVaultKeysFake;
let reader: KeyVaultKeyStateReader;
let client: KeyClient;
beforeAll(async () => {
    fake = await startKeyVaultKeysFake({ keys: [{ name: 'cmk-storage', versions: [{ version: V1 }] }] });
    reader = new KeyVaultKeyStateReader(new StubTokenCredential(fake.token), keysClientOptionsFor(fake));
    client = new KeyClient(fake.vaultUrl, new StubTokenCredential(fake.token), keysClientOptionsFor(fake));
});
afterAll(async () => {
    await fake.close();
});
afterEach(() => fake.clearFaults());

describe('a vault firewall that denies the app', () => {
    it('is told apart from an RBAC or access-policy denial', async () => {
        const errorOf = (p: Promise<unknown>): Promise<unknown> =>
            p.then(
                () => undefined,
                (e: unknown) => e,
            );
        fake.inject({ status: 403, reason: 'firewall' });
        expect(isFirewallDenial(await errorOf(client.getKey('cmk-storage')))).toBe(true);
        fake.inject({ status: 403 });
        expect(isFirewallDenial(await errorOf(client.getKey('cmk-storage')))).toBe(false);
        fake.inject({ status: 403, reason: 'accessPolicy' });
        expect(isFirewallDenial(await errorOf(client.getKey('cmk-storage')))).toBe(false);
    });

    it('fails a key-state read with the vault, the cause and the fix', async () => {
        fake.inject({ status: 403, reason: 'firewall' });
        const err = await reader.read(`${fake.vaultUrl}/keys/cmk-storage/${V1}`).then(
            () => undefined,
            (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(VaultFirewallError);
        expect((err as Error).message).toMatch(FIX);
        expect((err as Error).message).toContain(`vault ${new URL(fake.vaultUrl).hostname}:`);
    });

    it('puts the reason on the CMK finding and logs it as an error', async () => {
        fake.inject({ status: 403, reason: 'firewall' });
        const log = new Log();
        const finding: FindingDecision = {
            type: 'finding',
            rule: 'cmk-disabled-in-use',
            severity: 'critical',
            vault: 'kv-payments-prod',
            vaultId:
                '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-payments-prod',
            time: '2026-10-05T09:05:00.000Z',
            operations: ['KeyUpdate'],
            correlationIds: ['c1'],
            count: 1,
            summary: 'the key version in use was disabled',
            keyId: `${fake.vaultUrl}/keys/cmk-storage/${V1}`,
        };
        const [out] = (await new CmkEnricher(reader, log).enrich([finding])) as (Decision & {
            keyState?: { error?: string };
        })[];
        expect(out?.keyState?.error).toMatch(FIX);
        expect(log.errors).toHaveLength(1);
        expect(log.errors[0]?.message).toBe('kvr.key-state-unavailable');
        expect(String(log.errors[0]?.fields?.error)).toMatch(FIX);
    });

    it('fails the posture read of the vault (the key list) with the cause and the fix', async () => {
        fake.inject({ status: 403, reason: 'firewall', match: { method: 'GET' }, times: 10 });
        await expect(readVaultKeys(client, 'kv-payments-prod')).rejects.toThrow(FIX);
    });

    it('does not turn a firewall denial of one key read into an unknown fact', async () => {
        // The list got through (e.g. the rule changed in between): a firewall denial still fails the vault loudly.
        fake.inject({ status: 403, reason: 'firewall', match: { method: 'GET', pathIncludes: '/keys/cmk-storage' } });
        await expect(readVaultKeys(client, 'kv-payments-prod')).rejects.toBeInstanceOf(VaultFirewallError);
        // An RBAC denial of the same read stays an unknown fact, as before.
        fake.inject({ status: 403, match: { method: 'GET', pathIncludes: '/keys/cmk-storage/' } });
        const facts = await readVaultKeys(client, 'kv-payments-prod');
        expect(facts[0]?.unreadable?.key).toMatch(/^403 Forbidden/);
    });
});
