import type { StatefulRule } from '../../engine/rule';
import { getCI, isObject, maybeJson } from '../../events/fields';
import type { AuditEvent } from '../../events/types';
import { dependentsOf, describeDependency, inventoryKeyOf, type KeyInventory, keyOf } from '../../cmk/inventory';
import { describeCaller } from '../text';

/** Whether a KeyUpdate record's after-state says the key version is disabled (`keyProperties.attributes.enabled`). */
export function disablesKey(e: AuditEvent): boolean {
    const kp = maybeJson(e.objectProperties === undefined ? undefined : getCI(e.objectProperties, 'keyProperties'));
    const attributes = isObject(kp) ? maybeJson(getCI(kp, 'attributes')) : undefined;
    const enabled = isObject(attributes) ? getCI(attributes, 'enabled') : undefined;
    return enabled === false || (typeof enabled === 'string' && enabled.toLowerCase() === 'false');
}

export const cmkDisabledInUse: StatefulRule<KeyInventory> = {
    kind: 'stateful',
    meta: {
        id: 'cmk-disabled-in-use',
        title: 'Customer-managed key in use disabled or deleted',
        severity: 'critical',
        mitre: ['T1485', 'T1486', 'T1531'],
        description:
            'A KeyUpdate disables (keyProperties.attributes.enabled false), or a KeyDelete deletes, a key version that the live inventory shows in use by a service (a storage account, disk encryption set, database ...) within the last days (cmk.inUseDays, default 30). Every service encrypted with it stops at its next key operation: this fires before the first cmk-access-denied, with the list of services that will go down.',
        falsePositives: [
            'A planned rotation that disables the old version after every service moved to the new one: the inventory then shows the old version unused, and the rule stays quiet; it fires when a service still used it recently.',
        ],
        references: [
            'https://learn.microsoft.com/azure/storage/common/customer-managed-keys-overview',
            'https://learn.microsoft.com/azure/virtual-machines/disk-encryption#customer-managed-keys',
            'https://learn.microsoft.com/azure/key-vault/keys/about-keys-details',
        ],
        runbook: [
            'Re-enable the key version now (or recover the deleted key: soft delete keeps it) unless the change is a deliberate crypto-shred; the listed services fail from their next key operation.',
            'Confirm with the owner of each listed service; check who made the change and from where.',
            'For a planned rotation, move every listed service to the new version first, then disable the old one.',
        ],
    },
    operations: ['KeyUpdate', 'KeyDelete'],
    stateKey(event) {
        if (event.outcome !== 'success') return undefined;
        const key = keyOf(event);
        if (key === undefined) return undefined;
        if (event.operation !== 'KeyDelete' && !disablesKey(event)) return undefined;
        return inventoryKeyOf(event.vault.name, key.name);
    },
    stateTtlMs: (settings) => settings.cmkInUseMs,
    evaluate(event, ctx, state) {
        const key = keyOf(event);
        if (key === undefined) return {};
        const deleted = event.operation === 'KeyDelete';
        const version = deleted || key.version === '' ? undefined : key.version;
        const dependents = dependentsOf(state, version, event.timeMs - ctx.settings.cmkInUseMs);
        if (dependents.length === 0) return {};
        const services = [...new Set(dependents.map(describeDependency))];
        const what = deleted
            ? `deleted key ${key.name}`
            : `disabled key ${key.name}${version === undefined ? '' : ` version ${version}`}`;
        return {
            findings: [
                {
                    summary: `${describeCaller(event)} ${what} in ${event.vault.name}, in use by ${services.join(', ')}: they fail from their next key operation`,
                    details: {
                        keyId: event.target?.uri,
                        dependents: dependents.map((d) => ({
                            service: d.id,
                            kind: d.kind,
                            version: d.version,
                            lastSuccess:
                                d.lastSuccessMs === undefined ? undefined : new Date(d.lastSuccessMs).toISOString(),
                        })),
                    },
                },
            ],
        };
    },
};
