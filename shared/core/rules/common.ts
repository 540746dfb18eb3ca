import type { AuditEvent } from '../events/types';

/** Control-plane operations that write a vault's configuration. */
export const VAULT_WRITES: readonly string[] = ['VaultPatch', 'VaultPut'];

/** A successful vault write that carries change details (the record's after-state or added/removed entries). */
export function isVaultWrite(e: AuditEvent): boolean {
    return (
        e.outcome === 'success' &&
        e.vaultChange !== undefined &&
        (e.operation === 'VaultPatch' || e.operation === 'VaultPut')
    );
}

export function sameText(a: string | undefined, b: string): boolean {
    return a !== undefined && a.toLowerCase() === b.toLowerCase();
}

/** "keys: get; secrets: get, list", or "no permissions". */
export function describePermissions(p: {
    readonly keys: readonly string[];
    readonly secrets: readonly string[];
    readonly certificates: readonly string[];
    readonly storage: readonly string[];
}): string {
    const parts: string[] = [];
    for (const kind of ['keys', 'secrets', 'certificates', 'storage'] as const) {
        if (p[kind].length > 0) parts.push(`${kind}: ${p[kind].join(', ')}`);
    }
    return parts.length === 0 ? 'no permissions' : parts.join('; ');
}

/** What one event does to a windowed set of distinct items. */
export interface WindowStep {
    /** The new list, or undefined when the event changed nothing (a redelivered record). */
    readonly next: [string, number][] | undefined;
    /** Distinct items seen in the window that ends at this event. */
    readonly inWindow: number;
}

/**
 * Adds `item` seen at `now` to a list of `[item, lastSeenMs]` pairs: entries older than the window are dropped, entries
 * after `now` (from records delivered out of order, or a capture replayed again) are kept but not counted for this
 * event, and the list is bounded to the newest entries.
 */
export function windowStep(
    entries: readonly (readonly [string, number])[] | undefined,
    item: string,
    now: number,
    windowMs: number,
    threshold: number,
): WindowStep {
    const from = now - windowMs;
    const kept: [string, number][] = [];
    let index = -1;
    if (entries !== undefined) {
        for (const [x, t] of entries) {
            if (t <= from) continue;
            if (x === item) index = kept.length;
            kept.push([x, t]);
        }
    }
    let next: [string, number][] | undefined;
    if (index < 0) next = [...kept, [item, now]];
    else if ((kept[index] as [string, number])[1] < now) {
        next = kept.slice();
        next[index] = [item, now];
    }
    const list = next ?? kept;
    let inWindow = 0;
    for (const [, t] of list) if (t <= now) inWindow++;
    const max = 2 * (threshold + 1) + 16;
    if (next !== undefined && next.length > max) next = next.sort((a, b) => a[1] - b[1]).slice(next.length - max);
    return { next, inWindow };
}
