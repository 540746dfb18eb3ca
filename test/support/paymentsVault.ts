// The vault most integration tests reconcile: kv-payments-prod in rg-payments, the vault the bundled audit fixtures
// name (test/fixtures), in the ARM simulator's shape.
import { makeVault, type Vault, type VaultProperties } from '../../shared/simulation/armSimulator';

export const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
export const TENANT = '3f0c2b6e-1d4a-4c8e-9b2f-5a7d1e0c9b11';
export const VAULT = 'kv-payments-prod';

/** kv-payments-prod as ARM returns it, with the given properties over the simulator's defaults. */
export function paymentsVault(properties: Partial<VaultProperties>): Vault {
    return makeVault({ subscriptionId: SUB, resourceGroup: 'rg-payments', name: VAULT, tenantId: TENANT, properties });
}
/** Its resource id as Key Vault audit records carry it (upper case). */
export const RESOURCE_ID = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-PAYMENTS-PROD`;
