import { boundedId, MAX_KEY_PART_CHARS } from './limits';

/**
 * Durable rule state behind a port: an in-memory implementation for unit tests and replay, Azure Table Storage in
 * production. Writes are compare-and-set on an ETag so that concurrent processors never lose an update.
 */

/** A state key: `partition` groups the keys that are read together (a vault, or a principal for cross-vault rules). */
export interface StateKey {
    readonly partition: string;
    readonly row: string;
    /** `partition` and `row` joined: the key's identity in maps (see {@link stateKey}). */
    readonly id: string;
}

/**
 * Builds a state key. A part longer than {@link MAX_KEY_PART_CHARS} (a key built from a record's principal or object
 * name) keeps its beginning and a hash of the rest (see {@link boundedId}), so that it stays within the 1 KiB Table
 * Storage allows a key; the store escapes the characters keys may not hold.
 */
export function stateKey(partition: string, row: string): StateKey {
    if (partition.length > MAX_KEY_PART_CHARS) partition = boundedId(partition, MAX_KEY_PART_CHARS);
    if (row.length > MAX_KEY_PART_CHARS) row = boundedId(row, MAX_KEY_PART_CHARS);
    return { partition, row, id: `${partition}\u0000${row}` };
}

export interface StoredState {
    readonly value: unknown;
    readonly etag: string;
}

export type PutResult = { readonly ok: true; readonly etag: string } | { readonly ok: false };

export interface StateStore {
    /** Reads the keys; the result is aligned with `keys`, `undefined` where a key does not exist. */
    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]>;
    /**
     * Writes `value` if the stored ETag still equals `etag` (`undefined`: only if the key does not exist yet).
     * Returns `{ ok: false }` on a conflict; throws on infrastructure failure, and throws a non-retryable
     * `STATE.TOO_LARGE` error when the value is more than the store can hold (see ./limits.ts): the caller decides
     * what that one key's loss means, the batch need not fail.
     * @param expiresMs - Event time after which the entry may be swept.
     */
    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult>;
    /**
     * Drops entries that expired before `eventTimeMs`, where the store does it in process (memory). Table Storage
     * entities carry their expiry in `exp` for a maintenance job instead.
     */
    sweep?(eventTimeMs: number): number;
    /**
     * Every entry whose row starts with `rowPrefix`, in any partition, at most `limit` (reports over a kind of state,
     * such as the key inventory). A full scan: for timers and reports, never per event.
     */
    scan(rowPrefix: string, limit: number): Promise<{ readonly key: StateKey; readonly value: unknown }[]>;
}

/** Every {@link KeyMemo} (module-level singletons of the rules), for {@link resetCachesForBenchmark}. */
const MEMOS = new Set<KeyMemo>();

/**
 * Empties every {@link KeyMemo}, so that a benchmark round starts as cold as a fresh process. Changes no result (a memo
 * only saves building a key again); only the benchmark calls it, between rounds.
 */
export function resetCachesForBenchmark(): void {
    for (const m of MEMOS) m.clear();
}

/**
 * Reuses the key objects of one row prefix, so that hot keys (a principal read every minute) keep one flat, already
 * hashed id instead of a new concatenated string per event. Bounded; deterministic.
 */
export class KeyMemo {
    private readonly keys = new Map<string, Map<string, StateKey>>();
    private size = 0;

    constructor(
        private readonly prefix: string,
        private readonly limit = 50_000,
    ) {
        MEMOS.add(this);
    }

    /** Forgets every key (see {@link resetCachesForBenchmark}). */
    clear(): void {
        this.keys.clear();
        this.size = 0;
    }

    get(partition: string, id: string): StateKey {
        let byId = this.keys.get(partition);
        if (byId === undefined) {
            byId = new Map();
            this.keys.set(partition, byId);
        }
        let key = byId.get(id);
        if (key === undefined) {
            if (this.size >= this.limit) {
                this.keys.clear();
                this.size = 0;
                byId = new Map();
                this.keys.set(partition, byId);
            }
            key = stateKey(partition, `${this.prefix}${id}`);
            byId.set(id, key);
            this.size++;
        }
        return key;
    }
}
