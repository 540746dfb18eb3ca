import { AuthorizationManagementClient } from '@azure/arm-authorization';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { ArmAccessAdmin } from '../adapters/armAccessAdmin';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { ArmVaultAdmin } from '../adapters/armVaultAdmin';
import type { VaultTags } from '../config/responderConfig';
import type { VaultStateDecision } from '../core/decisions';
import { ResponderError } from '../core/errors';
import type { AuditEvent } from '../core/events/types';
import { ACTIVITY_OPERATIONS } from '../core/events/activity';
import type { AccessAdmin, VaultAdmin } from '../core/ports';
import { armAccessRoutes } from './armAccessRoutes';
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
    /** Role assignments and diagnostic settings of the simulated ARM (they start empty). */
    readonly access: AccessAdmin;
    /** Vault tags by lower-case resource id, for tag-matched guardrail overrides. */
    readonly tags: VaultTags;
    /**
     * Applies the recorded changes of successful vault writes to the simulated vaults, and of successful Activity Log
     * role-assignment and diagnostic-setting writes and deletes (a write's body is on its Start record, its outcome on
     * the Success record: joined by correlation id, in either order).
     */
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
    const accessRoutes = armAccessRoutes();
    let sim: ArmKeyVaultFake;
    try {
        sim = await startArmKeyVaultFake({ vaults, providerRoutes: [accessRoutes.route] });
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
    const access = new ArmAccessAdmin(
        new AuthorizationManagementClient(simulationCredential, '00000000-0000-0000-0000-000000000000', {
            endpoint: sim.url,
            credentialScopes: ['https://management.azure.com/.default'],
            tlsOptions: { ca: sim.caPem },
            retryOptions: { maxRetries: 0 },
        }),
        simulationCredential,
        { endpoint: sim.url, ca: sim.caPem },
    );
    /** Activity Log writes by correlation id: the body (Start) and whether the outcome (Success) was seen. */
    const pending = new Map<string, { body?: AuditEvent; succeeded?: boolean }>();
    const applyActivity = (e: AuditEvent): void => {
        const a = e.activity;
        if (a === undefined) return;
        const ra = a.roleAssignment;
        const ds = a.diagnosticSetting;
        if (ra === undefined && ds === undefined) return;
        const isDelete =
            e.operation === ACTIVITY_OPERATIONS.roleAssignmentDelete ||
            e.operation === ACTIVITY_OPERATIONS.diagnosticSettingDelete;
        if (isDelete) {
            if (e.outcome !== 'success') return;
            if (ra !== undefined) accessRoutes.deleteRoleAssignment(ra.id);
            if (ds !== undefined) {
                const owner = a.resourceId.slice(0, a.resourceId.lastIndexOf('/providers/microsoft.insights/'));
                accessRoutes.setDiagnosticSettings(
                    owner,
                    accessRoutes.diagnosticSettings(owner).filter((x) => x.name.toLowerCase() !== ds.name),
                );
            }
            return;
        }
        const key = e.correlationId ?? a.resourceId;
        const p = pending.get(key) ?? {};
        const hasBody = (ra !== undefined && ra.principalId !== undefined) || ds?.body !== undefined;
        if (hasBody) p.body = e;
        if (e.outcome === 'success') p.succeeded = true;
        pending.set(key, p);
        if (p.body === undefined || p.succeeded !== true) return;
        pending.delete(key);
        const b = p.body.activity;
        const bra = b?.roleAssignment;
        if (bra?.principalId !== undefined && bra.roleDefinitionId !== undefined)
            accessRoutes.putRoleAssignment({
                scope: bra.scope.id,
                roleDefinitionGuid: bra.roleDefinitionId,
                principalId: bra.principalId,
                ...(bra.principalType === undefined ? {} : { principalType: bra.principalType }),
                name: bra.name,
            });
        const bds = b?.diagnosticSetting;
        if (bds?.body !== undefined && b !== undefined) {
            const owner = b.resourceId.slice(0, b.resourceId.lastIndexOf('/providers/microsoft.insights/'));
            accessRoutes.setDiagnosticSettings(owner, [
                ...accessRoutes.diagnosticSettings(owner).filter((x) => x.name.toLowerCase() !== bds.name),
                {
                    name: bds.name,
                    ...(bds.body.eventHubAuthorizationRuleId === undefined
                        ? {}
                        : { eventHubAuthorizationRuleId: bds.body.eventHubAuthorizationRuleId }),
                    ...(bds.body.eventHubName === undefined ? {} : { eventHubName: bds.body.eventHubName }),
                    logs: bds.body.enabledLogs.map((category) => ({ category, enabled: true })),
                },
            ]);
        }
    };
    return {
        admin,
        access,
        tags,
        applyRecorded(events) {
            for (const e of events) {
                applyActivity(e);
                if (e.outcome !== 'success' || e.vaultChange === undefined) continue;
                if (e.operation !== 'VaultPatch' && e.operation !== 'VaultPut') continue;
                if (!ids.has(e.vault.resourceId)) continue;
                sim.setVault(applyRecordedChange(sim.vault(e.vault.name), e.vaultChange));
            }
        },
        states() {
            return names.map((name) => {
                const v = sim.vault(name);
                const id = v.id.toLowerCase();
                const reaches = (scope: string) => {
                    const s = scope.toLowerCase().replace(/\/+$/, '');
                    return s === '' || s === '/' || id === s || id.startsWith(`${s}/`) || s.startsWith('/providers/');
                };
                return {
                    type: 'vault-state',
                    vault: v.name.toLowerCase(),
                    vaultId: id,
                    properties: v.properties,
                    roleAssignments: accessRoutes
                        .roleAssignments()
                        .filter((a) => reaches(a.properties.scope))
                        .map((a) => ({
                            id: a.id,
                            scope: a.properties.scope,
                            roleDefinitionId: a.properties.roleDefinitionId,
                            principalId: a.properties.principalId,
                        })),
                    diagnosticSettings: accessRoutes.diagnosticSettings(v.id).map((d) => ({ ...d })),
                };
            });
        },
        close: async () => {
            await access.close();
            await sim.close();
        },
    };
}
