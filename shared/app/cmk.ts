import { expiringFinding, versionsInUse } from '../core/cmk/expiry';
import type { KeyInventory } from '../core/cmk/inventory';
import type { Decision, FindingDecision } from '../core/decisions';
import type { KeyStateReader, Logger } from '../core/ports';
import type { StateStore } from '../core/state/store';
import type { CmkSettings } from '../config/responderConfig';

/** Findings whose key state is worth reading from Key Vault. */
const ENRICHED_RULES = new Set(['cmk-access-denied', 'cmk-disabled-in-use']);
const MAX_KEYS = 10_000;

/** The vault URL of a vault name (public cloud; the key id of a record carries the real one when present). */
export function vaultUrlOf(vault: string): string {
    return `https://${vault}.vault.azure.net`;
}

function errorText(err: unknown): string {
    return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}

/**
 * Adds the key's current state (enabled, expiry, last update), read through `@azure/keyvault-keys`, to CMK findings.
 * A read that fails is noted in the finding (`keyState.error`) and logged; it never fails the batch.
 */
export class CmkEnricher {
    constructor(
        private readonly keys: KeyStateReader,
        private readonly log: Logger,
    ) {}

    async enrich(decisions: readonly Decision[]): Promise<Decision[]> {
        const cache = new Map<string, Promise<Record<string, unknown>>>();
        const out: Decision[] = [];
        for (const d of decisions) {
            const keyId = d.type === 'finding' && ENRICHED_RULES.has(d.rule) ? d.keyId : undefined;
            if (d.type !== 'finding' || typeof keyId !== 'string') {
                out.push(d);
                continue;
            }
            let pending = cache.get(keyId);
            if (pending === undefined) {
                pending = this.keys.read(keyId).then(
                    (s) => (s === undefined ? { missing: true } : { ...s }),
                    (err: unknown) => {
                        this.log.error('kvr.key-state-unavailable', { keyId, error: errorText(err) });
                        return { error: errorText(err) };
                    },
                );
                cache.set(keyId, pending);
            }
            out.push({ ...d, keyState: await pending });
        }
        return out;
    }
}

/**
 * cmk-expiring-in-use: reads every key version the inventory shows in use and reports those expiring within the
 * window. A version that cannot be read is logged as an error and reported in `unreadable`.
 */
export async function checkExpiringKeys(o: {
    readonly store: StateStore;
    readonly keys: KeyStateReader;
    readonly settings: CmkSettings;
    readonly nowMs: number;
    readonly log: Logger;
}): Promise<{ findings: FindingDecision[]; checked: number; unreadable: number }> {
    const findings: FindingDecision[] = [];
    let checked = 0;
    let unreadable = 0;
    for (const { value } of await o.store.scan('cmk|', MAX_KEYS)) {
        const s = value as KeyInventory;
        for (const { version, dependents } of versionsInUse(s, o.nowMs, o.settings.inUseMs)) {
            const keyId = `${vaultUrlOf(s.vault)}/keys/${s.key}${version === '' ? '' : `/${version}`}`;
            checked++;
            try {
                const state = await o.keys.read(keyId);
                if (state === undefined) continue;
                const f = expiringFinding(s, version, dependents, state, o.nowMs, o.settings.expiringWithinMs);
                if (f !== undefined) findings.push(f);
            } catch (err) {
                unreadable++;
                o.log.error('kvr.key-state-unavailable', { keyId, error: errorText(err) });
            }
        }
    }
    return { findings, checked, unreadable };
}
