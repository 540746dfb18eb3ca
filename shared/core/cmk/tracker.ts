import type { StatefulRule } from '../engine/rule';
import { inventoryKeyOf, isKeyUse, KEY_USE_OPERATIONS, type KeyInventory, keyOf, recordKeyUse } from './inventory';

const NINETY_DAYS_MS = 90 * 24 * 3_600_000;

/**
 * Keeps the customer-managed key inventory from key operations. Not a detection (it never finds anything): the engine
 * runs it before the rules, always, so that the CMK rules reading the same state see every use up to their event.
 */
export const cmkInventoryTracker: StatefulRule<KeyInventory> = {
    kind: 'stateful',
    meta: {
        id: 'cmk-inventory',
        title: 'Customer-managed key inventory (tracker)',
        severity: 'low',
        mitre: [],
        description: 'Which services use which key versions, kept from the audit stream.',
        falsePositives: [],
        references: [],
        runbook: [],
    },
    operations: KEY_USE_OPERATIONS,
    stateKey(event) {
        const key = isKeyUse(event) ? keyOf(event) : undefined;
        return key === undefined ? undefined : inventoryKeyOf(event.vault.name, key.name);
    },
    stateTtlMs: (settings) => Math.max(settings.cmkInUseMs, NINETY_DAYS_MS),
    evaluate(event, _ctx, state) {
        const next = recordKeyUse(state, event);
        return next === state || next === undefined ? {} : { state: next };
    },
};
