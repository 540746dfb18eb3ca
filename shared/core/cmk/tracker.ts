import type { RuleStep, StatefulRule } from '../engine/rule';
import {
    inventoryKeyOf,
    isKeyUse,
    KEY_USE_OPERATIONS,
    type KeyInventory,
    type KeyRef,
    keyOf,
    recordKeyUse,
    serviceOf,
} from './inventory';

const NINETY_DAYS_MS = 90 * 24 * 3_600_000;
const MINUTE_MS = 60_000;
/** Most key uses change nothing (same minute): one shared answer, no allocation. */
const UNCHANGED: RuleStep<KeyInventory> = Object.freeze({});

/**
 * Keeps the customer-managed key inventory from key operations. Not a detection (it never finds anything): the engine
 * runs it before the rules, always, so that the CMK rules reading the same state see every use up to their event.
 * One per engine (it remembers what it sent to that engine's state store).
 */
export function cmkInventoryTracker(): StatefulRule<KeyInventory> {
    // The minute of the last use sent to the state, per key version and service, for successes and for failures:
    // a service uses its key many times a minute and the inventory counts minutes, so after the first use of a
    // minute the others would change nothing; they are skipped before they cost a state read. Keyed by the memoized
    // key and service objects (no string building per event); weak, so entries go with those memos. When the batch
    // then fails and is retried, that minute's use is left to the service's next use: last success lags by a minute.
    const recordedOk = new WeakMap<KeyRef, Map<object, number>>();
    const recordedFailed = new WeakMap<KeyRef, Map<object, number>>();
    return {
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
            const service = key === undefined ? undefined : serviceOf(event);
            if (key === undefined || service === undefined) return undefined;
            const recorded = event.outcome === 'success' ? recordedOk : recordedFailed;
            const minutes = recorded.get(key);
            const minute = Math.floor(event.timeMs / MINUTE_MS);
            if (minutes?.get(service) === minute) return undefined;
            if (minutes === undefined) recorded.set(key, new Map([[service, minute]]));
            else minutes.set(service, minute);
            return inventoryKeyOf(event.vault.name, key.name);
        },
        stateTtlMs: (settings) => Math.max(settings.cmkInUseMs, NINETY_DAYS_MS),
        evaluate(event, _ctx, state) {
            const next = recordKeyUse(state, event);
            return next === state || next === undefined ? UNCHANGED : { state: next };
        },
    };
}
