import { PERMISSION_KINDS } from './permissions';
import { boundedId, MAX_ID_CHARS } from '../state/limits';
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
export function describePermissions(p: Partial<Record<(typeof PERMISSION_KINDS)[number], readonly string[]>>): string {
    const parts: string[] = [];
    for (const kind of PERMISSION_KINDS) {
        const list = p[kind] ?? [];
        if (list.length > 0) parts.push(`${kind}: ${list.join(', ')}`);
    }
    return parts.length === 0 ? 'no permissions' : parts.join('; ');
}

/** Highest count threshold of a windowed rule (the config refuses more). */
export const MAX_WINDOW_THRESHOLD = 1000;

/** What one event does to a windowed set of distinct items. */
export interface WindowStep {
    /** The new list, or undefined when the event changed nothing worth writing (a repeat or a redelivered record). */
    readonly next: [string, number][] | undefined;
    /** Distinct items seen in the window that ends at this event. */
    readonly inWindow: number;
}

/**
 * Adds `item` seen at `now` to a list of `[item, lastSeenMs]` pairs: entries older than the window are dropped, entries
 * after `now` (from records delivered out of order, or a capture replayed again) are kept but not counted for this
 * event, and the list is bounded to the newest entries. A repeat of an item seen within the last twentieth of the
 * window changes nothing, which spares a state write per repeated read. With items of at most {@link MAX_ID_CHARS}
 * characters and thresholds of at most {@link MAX_WINDOW_THRESHOLD}, the list stays below 300,000 characters of JSON.
 */
export function windowStep(
    entries: readonly (readonly [string, number])[] | undefined,
    name: string,
    now: number,
    windowMs: number,
    threshold: number,
): WindowStep {
    // Items are only compared: a long one is kept as its beginning and a hash (distinct items stay distinct).
    const item = name.length > MAX_ID_CHARS ? boundedId(name) : name;
    const from = now - windowMs;
    let expired = false;
    let index = -1;
    let inWindow = 0;
    const list = entries ?? [];
    for (let i = 0; i < list.length; i++) {
        const [x, t] = list[i] as readonly [string, number];
        if (t <= from) {
            expired = true;
            continue;
        }
        if (t <= now) inWindow++;
        if (x === item) index = i;
    }
    const seenAt = index >= 0 ? (list[index] as readonly [string, number])[1] : undefined;
    if (seenAt === undefined) inWindow++;
    else if (seenAt > now) inWindow++; // only seen later so far: it counts now too
    if (!expired && seenAt !== undefined && seenAt >= now - windowMs / 20) return { next: undefined, inWindow };
    const next: [string, number][] = [];
    for (const [x, t] of list) if (t > from && x !== item) next.push([x, t]);
    next.push([item, seenAt !== undefined && seenAt > now ? seenAt : now]);
    const max = 2 * (Math.min(threshold, MAX_WINDOW_THRESHOLD) + 1) + 16;
    if (next.length > max) {
        next.sort((a, b) => a[1] - b[1]);
        next.splice(0, next.length - max);
    }
    return { next, inWindow };
}
