import { MemoryStateStore } from '../shared/adapters/memoryStateStore';
import type { PutResult, StateKey, StateStore, StoredState } from '../shared/core/state/store';
import { freshPipeline, resetCaches } from './inMemory';
import { batchesOf, bodiesOf, type WorkloadName } from './workloads';

class Prof implements StateStore {
    reads = new Map<string, number>();
    puts = new Map<string, number>();
    calls = 0;
    constructor(private readonly inner: StateStore) {}
    private kind(k: StateKey): string {
        const r = k.row.split('|')[0] ?? '';
        return k.partition.startsWith('~') ? `${k.partition.split('/')[0]}:${r}` : r;
    }
    async getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        this.calls++;
        for (const k of keys) this.reads.set(this.kind(k), (this.reads.get(this.kind(k)) ?? 0) + 1);
        return this.inner.getMany(keys);
    }
    put(key: StateKey, value: unknown, etag: string | undefined, exp: number): Promise<PutResult> {
        this.puts.set(this.kind(key), (this.puts.get(this.kind(key)) ?? 0) + 1);
        return this.inner.put(key, value, etag, exp);
    }
    scan(p: string, l: number) {
        return this.inner.scan(p, l);
    }
}

async function main(): Promise<void> {
    const workload = (process.argv[2] ?? 'diverse') as WorkloadName;
    const records = Number(process.argv[3] ?? 10000);
    resetCaches();
    const store = new Prof(new MemoryStateStore());
    const p = freshPipeline(store);
    let i = 0;
    for (const b of batchesOf(bodiesOf(workload, records), 1000)) {
        if (i++ === 1) {
            store.reads.clear();
            store.puts.clear();
            store.calls = 0;
        }
        await p.processBatch(b.bodies.map((body) => ({ body })));
    }
    const n = records - 1000;
    console.log('getMany calls/batch', store.calls / (i - 1));
    console.log('reads/record', [...store.reads].map(([k, v]) => `${k}=${(v / n).toFixed(3)}`).join(' '));
    console.log('puts/record', [...store.puts].map(([k, v]) => `${k}=${(v / n).toFixed(3)}`).join(' '));
}
void main();
