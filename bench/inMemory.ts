/**
 * The in-memory pipeline against bare JSON.parse, in paired rounds: in each round both sides see exactly the same
 * bodies, 1,000 records at a time (JSON.parse of every body, and the pipeline on the same bodies as one batch, the
 * order alternating from chunk to chunk), so that a slow moment of the machine hits both alike. Each round starts cold:
 * a fresh pipeline and state, and the module-level memos emptied.
 */
import { CountingDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { MemoryStateStore } from '../shared/adapters/memoryStateStore';
import { createPipeline } from '../shared/app/createPipeline';
import type { AuditPipeline } from '../shared/app/pipeline';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import { resetCachesForBenchmark as resetInventoryCaches } from '../shared/core/cmk/inventory';
import type { StateStore } from '../shared/core/state/store';
import { resetCachesForBenchmark as resetKeyMemos } from '../shared/core/state/store';
import { batchesOf, bodiesOf, type WorkloadName } from './workloads';

/** Records per chunk: parse and pipeline alternate on each chunk; the pipeline gets it as one batch. */
export const CHUNK_RECORDS = 1_000;

/** Empties every module-level cache of the pipeline (per-pipeline caches go with a fresh pipeline). */
export function resetCaches(): void {
    resetKeyMemos();
    resetInventoryCaches();
}

export function collectGarbage(): void {
    (globalThis as { gc?: () => void }).gc?.();
}

/** A fresh pipeline with all rules on (the default configuration), decisions counted and dropped. */
export function freshPipeline(store: StateStore = new MemoryStateStore()): AuditPipeline {
    return createPipeline(
        DEFAULT_CONFIG,
        { decisions: new CountingDecisionSink(), quarantine: new MemoryQuarantineSink() },
        { acceptBareRecords: false, store },
    );
}

export interface PairedRound {
    readonly records: number;
    readonly parseMs: number;
    readonly pipelineMs: number;
    /** Pipeline throughput / JSON.parse throughput (= parseMs / pipelineMs). */
    readonly ratio: number;
    readonly findings: number;
    readonly rejected: number;
}

/** One paired round over the first `records` records of a workload. */
export async function pairedRound(workload: WorkloadName, records: number): Promise<PairedRound> {
    resetCaches();
    collectGarbage();
    const pipeline = freshPipeline();
    let parseMs = 0;
    let pipelineMs = 0;
    let n = 0;
    let sink = 0;
    let k = 0;
    for (const chunk of batchesOf(bodiesOf(workload, records), CHUNK_RECORDS)) {
        const parse = (): void => {
            const t0 = performance.now();
            for (const body of chunk.bodies) sink += (JSON.parse(body) as { records: unknown[] }).records.length;
            parseMs += performance.now() - t0;
        };
        const items = chunk.bodies.map((body) => ({ body }));
        if (k++ % 2 === 0) parse();
        const t0 = performance.now();
        await pipeline.processBatch(items);
        pipelineMs += performance.now() - t0;
        if (k % 2 === 0) parse();
        n += chunk.records;
    }
    if (sink !== n) throw new Error(`JSON.parse saw ${sink} records, the generator said ${n}`);
    const s = pipeline.stats;
    if (s.records !== n) throw new Error(`the pipeline saw ${s.records} records of ${n}`);
    return {
        records: n,
        parseMs,
        pipelineMs,
        ratio: pipelineMs > 0 ? parseMs / pipelineMs : 0,
        findings: s.findings,
        rejected: s.rejected,
    };
}

export interface Spread {
    readonly min: number;
    readonly median: number;
    readonly max: number;
}

export function spreadOf(values: readonly number[]): Spread {
    const v = [...values].sort((a, b) => a - b);
    if (v.length === 0) return { min: Number.NaN, median: Number.NaN, max: Number.NaN };
    const mid = v.length >> 1;
    const median = v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
    return { min: v[0] as number, median, max: v[v.length - 1] as number };
}

/** A nearest-rank percentile (p in 0..100) of the values. */
export function percentile(values: readonly number[], p: number): number {
    const v = [...values].sort((a, b) => a - b);
    if (v.length === 0) return Number.NaN;
    const rank = Math.min(v.length, Math.max(1, Math.ceil((p / 100) * v.length)));
    return v[rank - 1] as number;
}

export interface InMemoryResult {
    readonly workload: WorkloadName;
    readonly records: number;
    readonly rounds: readonly PairedRound[];
    readonly ratio: Spread;
    readonly jsonParseRecordsPerSec: number;
    readonly pipelineRecordsPerSec: number;
}

/** A warm-up round (not counted), then `rounds` paired rounds. */
export async function measureInMemory(
    workload: WorkloadName,
    records: number,
    rounds: number,
    warmupRecords: number,
    progress: (line: string) => void,
): Promise<InMemoryResult> {
    progress(`${workload}: in-memory warm-up (${warmupRecords.toLocaleString('en-US')} records)`);
    await pairedRound(workload, warmupRecords);
    const done: PairedRound[] = [];
    for (let i = 0; i < rounds; i++) {
        const r = await pairedRound(workload, records);
        done.push(r);
        progress(
            `${workload}: round ${i + 1}/${rounds}: JSON.parse ${rate(r.records, r.parseMs)} records/s, pipeline ${rate(r.records, r.pipelineMs)} records/s, ratio ${r.ratio.toFixed(3)}`,
        );
    }
    const parse = spreadOf(done.map((r) => r.records / (r.parseMs / 1000)));
    const pipe = spreadOf(done.map((r) => r.records / (r.pipelineMs / 1000)));
    return {
        workload,
        records: done[0]?.records ?? 0,
        rounds: done,
        ratio: spreadOf(done.map((r) => r.ratio)),
        jsonParseRecordsPerSec: parse.median,
        pipelineRecordsPerSec: pipe.median,
    };
}

function rate(records: number, ms: number): string {
    return Math.round(records / (ms / 1000)).toLocaleString('en-US');
}
