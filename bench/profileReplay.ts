/**
 * Where the replay's memory goes: replays `N` records of a workload through the in-memory responder (as
 * bench/replayChild.ts does), then reports the state entries by kind, the heap retained after a full collection with
 * and without the store, and the peak RSS. Needs `--expose-gc`.
 *
 *   node --expose-gc dist/bench/profileReplay.js [diverse|sample] [records]
 */
import { readFileSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { CountingDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { MemoryStateStore } from '../shared/adapters/memoryStateStore';
import { createResponder } from '../shared/app/createPipeline';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import { resetCaches } from './inMemory';
import { batchesOf, bodiesOf, type WorkloadName } from './workloads';

const gc = (globalThis as { gc?: () => void }).gc;
const mb = (n: number): number => Math.round(n / 1024 / 102.4) / 10;

function peakRssMb(): number {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
}

function heapAfterGc(): number {
    gc?.();
    gc?.();
    return process.memoryUsage().heapUsed;
}

async function kindsOf(store: MemoryStateStore): Promise<Map<string, number>> {
    const kinds = new Map<string, number>();
    const bytes = new Map<string, number>();
    for (const { key, value } of await store.scan('', Number.MAX_SAFE_INTEGER)) {
        const k = key.row.split('|')[0] ?? '';
        kinds.set(k, (kinds.get(k) ?? 0) + 1);
        bytes.set(k, (bytes.get(k) ?? 0) + key.row.length + (JSON.stringify(value)?.length ?? 0));
    }
    if (process.env.KVR_PROFILE_BYTES !== undefined)
        for (const [k, n] of kinds)
            console.error(`${k}: ${n} entries, ${Math.round((bytes.get(k) ?? 0) / n)} chars of row and JSON each`);
    return kinds;
}

async function main(): Promise<void> {
    const workload = (process.argv[2] ?? 'diverse') as WorkloadName;
    const records = Number(process.argv[3] ?? 200_000);
    const h0 = heapAfterGc();
    let store: MemoryStateStore | undefined = new MemoryStateStore();
    let { pipeline } = createResponder(
        DEFAULT_CONFIG,
        { decisions: new CountingDecisionSink(), quarantine: new MemoryQuarantineSink() },
        { acceptBareRecords: true, store },
    );
    const t0 = performance.now();
    for (const batch of batchesOf(bodiesOf(workload, records), 1_000))
        await pipeline.processBatch(batch.bodies.map((body) => ({ body })));
    const seconds = (performance.now() - t0) / 1000;
    const peak = peakRssMb();
    const kinds = await kindsOf(store);
    const entries = store.size;
    const hAll = heapAfterGc();
    if (process.env.KVR_HEAP_SNAPSHOT !== undefined) writeHeapSnapshot(process.env.KVR_HEAP_SNAPSHOT);
    const stats = pipeline.stats;
    const footprint = store.footprintBytes;
    const hNoEntries = heapAfterGc();
    store = undefined;
    pipeline = undefined as unknown as typeof pipeline;
    const hNoStore = heapAfterGc();
    resetCaches();
    const hNoMemo = heapAfterGc();
    console.log(
        JSON.stringify({
            workload,
            records,
            seconds: Math.round(seconds * 10) / 10,
            entries,
            kinds: Object.fromEntries([...kinds].sort((a, b) => b[1] - a[1])),
            heapBaseMb: mb(h0),
            heapRetainedMb: mb(hAll),
            storeOffHeapMb: mb(footprint),
            storeAndPipelineHeapMb: mb(hNoEntries - hNoStore),
            memosMb: mb(hNoStore - hNoMemo),
            heapLeftMb: mb(hNoMemo),
            offHeapBytesPerEntry: Math.round(footprint / entries),
            peakRssMb: Math.round(peak),
            findings: stats.findings,
        }),
    );
}
void main();
