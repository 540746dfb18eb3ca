import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { ArmVaultAdmin } from '../adapters/armVaultAdmin';
import type { VaultTags } from '../config/responderConfig';
import type { VaultStateDecision } from '../core/decisions';
import { ResponderError } from '../core/errors';
import type { AuditEvent } from '../core/events/types';
import type { VaultAdmin } from '../core/ports';
import { applyRecordedChange } from './applyRecordedChange';
import { type ArmKeyVaultFake, startArmKeyVaultFake, type Vault } from './armSimulator';

/** The simulation's token: the simulator checks that one is sent, not what it says. */
const simulationCredential: TokenCredential = {
    getToken: (): Promise<AccessToken> =>
        Promise.resolve({ token: 'kvr-simulation', expiresOnTimestamp: Date.now() + 3_600_000 }),
};

/** Simulated vaults for `kvr replay --vaults`: a local ARM endpoint, the real client, and the recorded changes. */
export interface Simulation {
    readonly admin: VaultAdmin;
    /** Vault tags by lower-case resource id, for tag-matched guardrail overrides. */
    readonly tags: VaultTags;
    /** Applies the recorded changes of successful vault writes to the simulated vaults. */
    applyRecorded(events: readonly AuditEvent[]): void;
    /** One `vault-state` decision per simulated vault. */
    states(): VaultStateDecision[];
    close(): Promise<void>;
}

/**
 * Starts the simulation from an inventory: a JSON array of vaults exactly as `vaults.get` returns them. Every vault is
 * checked against the ARM OpenAPI definition; problems are reported together.
 */
export async function startSimulation(inventory: unknown, source: string): Promise<Simulation> {
    if (!Array.isArray(inventory))
        throw new ResponderError('INPUT.UNREADABLE', `${source}: expected a JSON array of vaults`);
    const vaults = inventory as Vault[];
    let sim: ArmKeyVaultFake;
    try {
        sim = await startArmKeyVaultFake({ vaults });
    } catch (err) {
        throw new ResponderError('INPUT.UNREADABLE', `${source}: ${(err as Error).message.replace(/\s*\n\s*/g, ' ')}`);
    }
    const names = vaults.map((v) => v.name);
    const ids = new Set(vaults.map((v) => v.id.toLowerCase()));
    const tags = new Map(vaults.map((v) => [v.id.toLowerCase(), v.tags ?? {}]));
    const admin = new ArmVaultAdmin(
        (subscriptionId) =>
            new KeyVaultManagementClient(simulationCredential, subscriptionId, {
                endpoint: sim.url,
                credentials: { scopes: ['https://management.azure.com/.default'] },
                tlsOptions: { ca: sim.caPem },
                retryOptions: { maxRetries: 0 },
            }),
    );
    return {
        admin,
        tags,
        applyRecorded(events) {
            for (const e of events) {
                if (e.outcome !== 'success' || e.vaultChange === undefined) continue;
                if (e.operation !== 'VaultPatch' && e.operation !== 'VaultPut') continue;
                if (!ids.has(e.vault.resourceId)) continue;
                sim.setVault(applyRecordedChange(sim.vault(e.vault.name), e.vaultChange));
            }
        },
        states() {
            return names.map((name) => {
                const v = sim.vault(name);
                return {
                    type: 'vault-state',
                    vault: v.name.toLowerCase(),
                    vaultId: v.id.toLowerCase(),
                    properties: v.properties,
                };
            });
        },
        close: () => sim.close(),
    };
}
