import {
    putAll,
    type PutResult,
    type ReadOptions,
    type StateKey,
    type StateStore,
    type StateWrite,
    type StoredState,
    type WriteResult,
} from '../shared/core/state/store';

/** What a {@link CountingStateStore} saw go through the state port. */
export interface StateCounts {
    /** `getMany` calls. */
    getManyCalls: number;
    /** Keys asked for, over all `getMany` calls. */
    keysRead: number;
    /** Keys that existed. */
    keysFound: number;
    /** `put` calls, and those that lost a compare-and-set. */
    puts: number;
    conflicts: number;
    scans: number;
}

export function zeroCounts(): StateCounts {
    return { getManyCalls: 0, keysRead: 0, keysFound: 0, puts: 0, conflicts: 0, scans: 0 };
}

/**
 * Counts the calls that reach a state store (the benchmark's view of state cost), passing everything through
 * unchanged. The store's own wire requests are counted separately, where the store exposes its HTTP pipeline.
 */
export class CountingStateStore implements StateStore {
    counts: StateCounts = zeroCounts();
    readonly sweep?: (eventTimeMs: number) => number;

    constructor(private readonly inner: StateStore) {
        if (inner.sweep !== undefined) this.sweep = (t) => (inner.sweep as (t: number) => number).call(inner, t);
    }

    /** Returns the counts so far and starts again from zero. */
    take(): StateCounts {
        const c = this.counts;
        this.counts = zeroCounts();
        return c;
    }

    async getMany(keys: readonly StateKey[], options?: ReadOptions): Promise<readonly (StoredState | undefined)[]> {
        this.counts.getManyCalls++;
        this.counts.keysRead += keys.length;
        const out = await this.inner.getMany(keys, options);
        for (const s of out) if (s !== undefined) this.counts.keysFound++;
        return out;
    }

    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        this.counts.puts++;
        const r = await this.inner.put(key, value, etag, expiresMs);
        if (!r.ok) this.counts.conflicts++;
        return r;
    }

    /** Each write counts as a put (the store may send many in one request: its wire requests tell). */
    async putMany(writes: readonly StateWrite[]): Promise<readonly WriteResult[]> {
        this.counts.puts += writes.length;
        const out = await putAll(this.inner, writes);
        for (const r of out) if (!(r instanceof Error) && !r.ok) this.counts.conflicts++;
        return out;
    }

    scan(rowPrefix: string, limit: number): Promise<{ readonly key: StateKey; readonly value: unknown }[]> {
        this.counts.scans++;
        return this.inner.scan(rowPrefix, limit);
    }
}
