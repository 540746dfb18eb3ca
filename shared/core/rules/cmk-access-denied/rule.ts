import type { StatefulRule } from '../../engine/rule';
import type { AuditEvent } from '../../events/types';
import {
    dependentsOf,
    describeDependency,
    inventoryKeyOf,
    KEY_USE_OPERATIONS,
    type KeyInventory,
    keyOf,
} from '../../cmk/inventory';
import { describeCaller, describeTarget } from '../text';

/** A service (managed identity or trusted service) refused a key operation. */
function deniedService(event: AuditEvent): boolean {
    const c = event.caller;
    if (event.outcome !== 'forbidden' && event.outcome !== 'unauthorized') return false;
    return c.kind === 'managed-identity' || c.kind === 'trusted-service' || c.managedIdentityResourceId !== undefined;
}

export const cmkAccessDenied: StatefulRule<KeyInventory> = {
    kind: 'stateful',
    meta: {
        id: 'cmk-access-denied',
        title: 'Customer-managed key access denied to an Azure service',
        severity: 'critical',
        mitre: ['T1485', 'T1486'],
        description:
            'A key operation (wrap, unwrap, encrypt, decrypt, sign, verify, get) by a managed identity or a trusted Azure service fails with 401 or 403. Typically a customer-managed key was disabled, expired or lost its access policy or role: the storage accounts, disks and databases encrypted with it stop working.',
        falsePositives: ['A service probing a key it no longer uses after a planned key rotation.'],
        references: [
            'https://learn.microsoft.com/azure/storage/common/customer-managed-keys-overview',
            'https://learn.microsoft.com/azure/key-vault/general/logging',
        ],
        runbook: [
            'Read resultDescription: disabled key, expired key, or missing permission.',
            'Restore access now (re-enable the key version, restore the role assignment or access policy); the dependent service is down meanwhile.',
            'Find who changed the key or its access (KeyUpdate, VaultPatch records).',
        ],
    },
    operations: KEY_USE_OPERATIONS,
    // Reads the key's inventory (kept by the CMK tracker) to name every service that depends on the key version.
    stateKey(event) {
        const key = deniedService(event) ? keyOf(event) : undefined;
        return key === undefined ? undefined : inventoryKeyOf(event.vault.name, key.name);
    },
    stateTtlMs: (settings) => settings.cmkInUseMs,
    evaluate(event, ctx, state) {
        const c = event.caller;
        const key = keyOf(event);
        const why = event.resultDescription === undefined ? '' : `: ${event.resultDescription.split('\n')[0] ?? ''}`;
        const dependents = dependentsOf(
            state,
            key === undefined || key.version === '' ? undefined : key.version,
            event.timeMs - ctx.settings.cmkInUseMs,
        );
        const services = [...new Set(dependents.map(describeDependency))];
        return {
            findings: [
                {
                    summary: `${event.operation} of ${describeTarget(event)} denied to ${describeCaller(event)} (HTTP ${event.httpStatus ?? '?'})${why}${services.length === 0 ? '' : `; services that used this key version: ${services.join(', ')}`}`,
                    details: {
                        service: c.managedIdentityResourceId ?? c.trustedService,
                        keyId: event.target?.uri,
                        dependents: dependents.map((d) => d.id),
                    },
                },
            ],
        };
    },
};
