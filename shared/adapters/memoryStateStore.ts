import {
    type PutResult,
    type StateKey,
    type StateStore,
    type StateWrite,
    type StoredState,
    stateKey,
    type WriteResult,
} from '../core/state/store';

/** How an {@link Entry} holds its value. */
const RAW = 0; // as given
const LAST_SEEN = 1; // `{ last: n }` kept as the number n

/**
 * One entry. A last-seen baseline (`{ last: <ms> }`, the most common state: one per vault and principal) is kept as
 * the number alone and rebuilt when read; other values as given (rules never mutate the state they are handed). Keeping
 * objects as their JSON text would save about a fifth of the retained heap but costs a stringify per write and a parse
 * per read, which the in-memory pipeline measurably paid for.
 */
class Entry {
    constructor(
        readonly stored: unknown,
        readonly how: number,
        readonly version: number,
        readonly expiresMs: number,
    ) {}

    get value(): unknown {
        if (this.how === LAST_SEEN) return { last: this.stored as number };
        return this.stored;
    }
}

/** `{ last: n }` and nothing else. */
function lastSeenOf(value: unknown): number | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const last = (value as { last?: unknown }).last;
    if (typeof last !== 'number') return undefined;
    for (const k in value) if (k !== 'last') return undefined;
    return last;
}

function entryOf(value: unknown, version: number, expiresMs: number): Entry {
    const last = lastSeenOf(value);
    if (last !== undefined) return new Entry(last, LAST_SEEN, version, expiresMs);
    return new Entry(value, RAW, version, expiresMs);
}

/**
 * In-process state (unit tests, `kvr replay`, the benchmark): same compare-and-set contract as the Table store. Kept
 * compact, since a replay of a large estate holds an entry per vault, principal and rule: entries live in one map per
 * partition (the partition string is stored once, not in every key), the ETag is a version number (the string is made
 * when read), and last-seen baselines the bare number (see {@link Entry}).
 */
export class MemoryStateStore implements StateStore {
    private readonly partitions = new Map<string, Map<string, Entry>>();
    private count = 0;
    private version = 0;

    get size(): number {
        return this.count;
    }

    private entry(key: StateKey): Entry | undefined {
        return this.partitions.get(key.partition)?.get(key.row);
    }

    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        return Promise.resolve(
            keys.map((k) => {
                const e = this.entry(k);
                if (e === undefined) return undefined;
                return { value: e.value, etag: `m${e.version}` };
            }),
        );
    }

    /** The synchronous write behind {@link put} and {@link putMany}. */
    private write(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): PutResult {
        let rows = this.partitions.get(key.partition);
        const current = rows?.get(key.row);
        if (etag === undefined ? current !== undefined : current === undefined || `m${current.version}` !== etag)
            return { ok: false };
        if (rows === undefined) {
            rows = new Map();
            this.partitions.set(key.partition, rows);
        }
        const next = entryOf(value, ++this.version, expiresMs);
        if (current === undefined) this.count++;
        rows.set(key.row, next);
        return { ok: true, etag: `m${next.version}` };
    }

    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        return Promise.resolve(this.write(key, value, etag, expiresMs));
    }

    putMany(writes: readonly StateWrite[]): Promise<readonly WriteResult[]> {
        return Promise.resolve(writes.map((w) => this.write(w.key, w.value, w.etag, w.expiresMs)));
    }

    scan(rowPrefix: string, limit: number): Promise<{ key: StateKey; value: unknown }[]> {
        const out: { key: StateKey; value: unknown }[] = [];
        for (const [partition, rows] of this.partitions) {
            for (const [row, e] of rows) {
                if (out.length >= limit) return Promise.resolve(out);
                if (row.startsWith(rowPrefix))
                    out.push({
                        key: stateKey(partition, row),
                        value: e.value,
                    });
            }
        }
        return Promise.resolve(out);
    }

    /** Drops entries that expired before `eventTimeMs` (event time: replay and live agree). */
    sweep(eventTimeMs: number): number {
        let n = 0;
        for (const [partition, rows] of this.partitions) {
            for (const [row, e] of rows) {
                if (e.expiresMs < eventTimeMs) {
                    rows.delete(row);
                    n++;
                }
            }
            if (rows.size === 0) this.partitions.delete(partition);
        }
        this.count -= n;
        return n;
    }
}
