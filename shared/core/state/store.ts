import { ResponderError } from '../errors';
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

/** One compare-and-set write of {@link StateStore.putMany}: the arguments of {@link StateStore.put}. */
export interface StateWrite {
    readonly key: StateKey;
    readonly value: unknown;
    readonly etag: string | undefined;
    readonly expiresMs: number;
}

/** How a read may be served. */
export interface ReadOptions {
    /**
     * The caller accepts a copy the store keeps in this instance, at most the store's cache validity old (see
     * TableStateStore): only for state whose every change is a compare-and-set write, so that a stale copy ends in a
     * conflict, a fresh read and a re-evaluation, never in a lost update. Default false: read the store itself.
     */
    readonly cached?: boolean;
}

/**
 * The outcome of one write of {@link StateStore.putMany}: a {@link PutResult}, or the non-retryable `STATE.TOO_LARGE`
 * error that {@link StateStore.put} would have thrown for that key alone.
 */
export type WriteResult = PutResult | ResponderError;

/** Writes in flight at once when a store has no {@link StateStore.putMany} of its own (see {@link putAll}). */
export const DEFAULT_WRITE_CONCURRENCY = 16;

export interface StateStore {
    /** Reads the keys; the result is aligned with `keys`, `undefined` where a key does not exist. */
    getMany(keys: readonly StateKey[], options?: ReadOptions): Promise<readonly (StoredState | undefined)[]>;
    /**
     * Writes `value` if the stored ETag still equals `etag` (`undefined`: only if the key does not exist yet).
     * Returns `{ ok: false }` on a conflict; throws on infrastructure failure, and throws a non-retryable
     * `STATE.TOO_LARGE` error when the value is more than the store can hold (see ./limits.ts): the caller decides
     * what that one key's loss means, the batch need not fail.
     * @param expiresMs - Event time after which the entry may be swept.
     */
    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult>;
    /**
     * Many {@link put}s at once, each its own compare-and-set (a store may group them into fewer requests, as Table
     * Storage does with entity-group transactions, but one write's conflict never fails another). The result is
     * aligned with `writes`; a write refused as too large is its `STATE.TOO_LARGE` error, the others still happen;
     * an infrastructure failure throws (some writes may then have happened: each is a compare-and-set, so the caller
     * simply reads and tries again). Optional: {@link putAll} falls back to bounded parallel `put`s.
     */
    putMany?(writes: readonly StateWrite[]): Promise<readonly WriteResult[]>;
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

/**
 * Writes through {@link StateStore.putMany} where the store has it, else with at most `concurrency` {@link
 * StateStore.put}s in flight, turning a `STATE.TOO_LARGE` refusal into that write's result.
 */
export async function putAll(
    store: StateStore,
    writes: readonly StateWrite[],
    concurrency: number = DEFAULT_WRITE_CONCURRENCY,
): Promise<readonly WriteResult[]> {
    if (writes.length === 0) return [];
    if (store.putMany !== undefined) return store.putMany(writes);
    const out = new Array<WriteResult>(writes.length);
    let next = 0;
    const worker = async (): Promise<void> => {
        while (next < writes.length) {
            const i = next++;
            const w = writes[i] as StateWrite;
            try {
                out[i] = await store.put(w.key, w.value, w.etag, w.expiresMs);
            } catch (err) {
                if (err instanceof ResponderError && err.code === 'STATE.TOO_LARGE') out[i] = err;
                else throw err;
            }
        }
    };
    await Promise.all(Array.from({ length: Math.min(Math.max(1, concurrency), writes.length) }, worker));
    return out;
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

/** Partitions one {@link KeyMemo} id keeps keys for (a principal seen on more vaults rebuilds the oldest). */
const MEMO_PARTITIONS_PER_ID = 8;

/**
 * Reuses the key objects of one row prefix, so that hot keys (a principal read every minute) keep one flat, already
 * hashed id instead of a new concatenated string per event. One map per memo, by id (a principal), holding that id's
 * key for up to {@link MEMO_PARTITIONS_PER_ID} partitions (vaults): a map per partition cost a hash table per vault,
 * most of the heap of a 10,000-vault replay. Bounded; deterministic.
 */
export class KeyMemo {
    private readonly keys = new Map<string, StateKey | StateKey[]>();

    /**
     * @param rowOf - Turns an id into the rest of its row (after `prefix`), once per key built: for rules that escape
     *   characters of the id, so that a hot key costs no string work per event.
     */
    constructor(
        private readonly prefix: string,
        private readonly limit = 1_024,
        private readonly rowOf?: (id: string) => string,
    ) {
        MEMOS.add(this);
    }

    /** Forgets every key (see {@link resetCachesForBenchmark}). */
    clear(): void {
        this.keys.clear();
    }

    get(partition: string, id: string): StateKey {
        const held = this.keys.get(id);
        if (held !== undefined) {
            if (!Array.isArray(held)) {
                if (held.partition === partition) return held;
            } else {
                for (let i = 0; i < held.length; i++) {
                    const k = held[i] as StateKey;
                    if (k.partition === partition) return k;
                }
            }
        }
        const key = stateKey(partition, `${this.prefix}${this.rowOf === undefined ? id : this.rowOf(id)}`);
        if (held === undefined) {
            if (this.keys.size >= this.limit) this.keys.clear();
            this.keys.set(id, key);
        } else if (!Array.isArray(held)) this.keys.set(id, [held, key]);
        else {
            if (held.length >= MEMO_PARTITIONS_PER_ID) held.shift();
            held.push(key);
        }
        return key;
    }
}
