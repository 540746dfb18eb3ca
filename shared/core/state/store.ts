/**
 * Durable rule state behind a port: an in-memory implementation for unit tests and replay, Azure Table Storage in
 * production. Writes are compare-and-set on an ETag so that concurrent processors never lose an update.
 */

/** A state key: `partition` groups the keys that are read together (a vault, or a principal for cross-vault rules). */
export interface StateKey {
    readonly partition: string;
    readonly row: string;
}

export interface StoredState {
    readonly value: unknown;
    readonly etag: string;
}

export type PutResult = { readonly ok: true; readonly etag: string } | { readonly ok: false };

export interface StateStore {
    /** Reads the keys that exist; missing keys are absent from the result (keyed by {@link keyString}). */
    getMany(keys: readonly StateKey[]): Promise<Map<string, StoredState>>;
    /**
     * Writes `value` if the stored ETag still equals `etag` (`undefined`: only if the key does not exist yet).
     * Returns `{ ok: false }` on a conflict; throws on infrastructure failure.
     * @param expiresMs - Event time after which the entry may be swept.
     */
    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult>;
}

export function keyString(key: StateKey): string {
    return `${key.partition}\u0000${key.row}`;
}
