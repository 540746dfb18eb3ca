import { type PutResult, type StateKey, type StateStore, type StoredState, stateKey } from '../core/state/store';

interface Entry {
    readonly value: unknown;
    readonly etag: string;
    readonly expiresMs: number;
}

/** In-process state (unit tests, `kvr replay`, the benchmark): same compare-and-set contract as the Table store. */
export class MemoryStateStore implements StateStore {
    private readonly entries = new Map<string, Entry>();
    private version = 0;

    get size(): number {
        return this.entries.size;
    }

    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        return Promise.resolve(keys.map((k) => this.entries.get(k.id)));
    }

    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        const current = this.entries.get(key.id);
        if (etag === undefined ? current !== undefined : current?.etag !== etag) return Promise.resolve({ ok: false });
        const next = { value, etag: `m${++this.version}`, expiresMs };
        this.entries.set(key.id, next);
        return Promise.resolve({ ok: true, etag: next.etag });
    }

    scan(rowPrefix: string, limit: number): Promise<{ key: StateKey; value: unknown }[]> {
        const out: { key: StateKey; value: unknown }[] = [];
        for (const [id, e] of this.entries) {
            if (out.length >= limit) break;
            const [partition = '', row = ''] = id.split('\u0000');
            if (row.startsWith(rowPrefix)) out.push({ key: stateKey(partition, row), value: e.value });
        }
        return Promise.resolve(out);
    }

    /** Drops entries that expired before `eventTimeMs` (event time: replay and live agree). */
    sweep(eventTimeMs: number): number {
        let n = 0;
        for (const [k, e] of this.entries) {
            if (e.expiresMs < eventTimeMs) {
                this.entries.delete(k);
                n++;
            }
        }
        return n;
    }
}
