import type { AccessPolicyEntry, KeyVaultManagementClient, Vault, VaultPatchProperties } from '@azure/arm-keyvault';
import type { VaultRef } from '../core/events/types';
import type { VaultAdmin } from '../core/ports';
import type { RemediationPlan, VaultAccessPolicy, VaultSnapshot } from '../core/remediation/types';

/** Builds (or reuses) the ARM client of a subscription. */
/** The default per-call time limit of ARM calls (a call that takes longer is aborted and retried). */
export const ARM_CALL_LIMIT_MS = 30_000;

export type ArmClientFactory = (subscriptionId: string) => KeyVaultManagementClient;

function snapshotOf(v: Vault): VaultSnapshot {
    return {
        id: v.id ?? '',
        name: v.name ?? '',
        ...(v.location === undefined ? {} : { location: v.location }),
        ...(v.tags === undefined ? {} : { tags: v.tags }),
        properties: v.properties as unknown as VaultSnapshot['properties'],
    };
}

/**
 * `VaultAdmin` over `@azure/arm-keyvault`. The client's own retries should be off (`retryOptions.maxRetries: 0`):
 * the remediator retries 429 and 5xx itself, within a time budget, including a 429 without Retry-After that the SDK
 * would not retry.
 */
export class ArmVaultAdmin implements VaultAdmin {
    private readonly clients = new Map<string, KeyVaultManagementClient>();

    /**
     * @param factory - Builds the client of a subscription.
     * @param timeoutMs - Per-call time limit; a call that takes longer is aborted (and retried by the remediator).
     */
    constructor(
        private readonly factory: ArmClientFactory,
        private readonly timeoutMs = ARM_CALL_LIMIT_MS,
    ) {}

    private options(): { abortSignal: AbortSignal } {
        return { abortSignal: AbortSignal.timeout(this.timeoutMs) };
    }

    private client(vault: VaultRef): KeyVaultManagementClient {
        let c = this.clients.get(vault.subscriptionId);
        if (c === undefined) {
            c = this.factory(vault.subscriptionId);
            this.clients.set(vault.subscriptionId, c);
        }
        return c;
    }

    async get(vault: VaultRef): Promise<VaultSnapshot> {
        return snapshotOf(await this.client(vault).vaults.get(vault.resourceGroup, vault.name, this.options()));
    }

    async patch(vault: VaultRef, properties: NonNullable<RemediationPlan['patch']>): Promise<VaultSnapshot> {
        const updated = await this.client(vault).vaults.update(
            vault.resourceGroup,
            vault.name,
            {
                properties: properties as VaultPatchProperties,
            },
            this.options(),
        );
        return snapshotOf(updated);
    }

    async removeAccessPolicy(vault: VaultRef, entry: VaultAccessPolicy): Promise<void> {
        await this.updateAccessPolicy(vault, 'remove', entry);
    }

    async addAccessPolicy(vault: VaultRef, entry: VaultAccessPolicy): Promise<void> {
        await this.updateAccessPolicy(vault, 'add', entry);
    }

    private async updateAccessPolicy(vault: VaultRef, kind: 'add' | 'remove', entry: VaultAccessPolicy): Promise<void> {
        await this.client(vault).vaults.updateAccessPolicy(
            vault.resourceGroup,
            vault.name,
            kind,
            { properties: { accessPolicies: [entry as AccessPolicyEntry] } },
            this.options(),
        );
    }
}
