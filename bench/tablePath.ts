/**
 * The production state path: the pipeline with its rule state in Azure Table Storage (TableStateStore), on an Azurite
 * the benchmark starts itself, against the same pipeline with in-memory state on the same batches. Each run starts
 * cold (a new table, a fresh pipeline, module memos emptied), runs a few warm-up batches, then measures.
 */
import { readFileSync } from 'node:fs';
import { TableClient } from '@azure/data-tables';
import { MemoryStateStore } from '../shared/adapters/memoryStateStore';
import { TableStateStore } from '../shared/adapters/tableStateStore';
import type { StateStore } from '../shared/core/state/store';
import { type AzuriteService } from '../test/support/azurite';
import { CountingStateStore, type StateCounts } from './countingStateStore';
import { collectGarbage, freshPipeline, percentile, resetCaches, spreadOf } from './inMemory';
import { batchesOf, bodiesOf, type WorkloadName } from './workloads';

export interface TablePlan {
    readonly workload: WorkloadName;
    readonly batchRecords: number;
    readonly warmupBatches: number;
    /** Measured batches, at most: the Table pass stops earlier once `budgetSeconds` have passed (one batch at least). */
    readonly batches: number;
    readonly budgetSeconds: number;
    /**
     * A fixed delay added to every Table request, ms (undefined: none). It stands for the round trip of a same-region
     * Table Storage request, which Azurite on loopback does not have: with it, what bounds a batch is the number of
     * requests that wait for one another (the critical path), not CPU. An assumption, not a measurement of the service.
     */
    readonly latencyMs?: number;
}

export interface PassResult {
    readonly records: number;
    readonly seconds: number;
    readonly recordsPerSec: number;
    readonly batchMs: readonly number[];
    readonly counts: StateCounts;
    /** HTTP requests sent to Table Storage (retries included); undefined for in-memory state. */
    readonly wireRequests: number | undefined;
    /** CPU time of this process (all its threads: GC helpers too) during the measured batches, ms. */
    readonly cpuMs: number;
    /** CPU time of the Azurite process during the measured batches, ms (undefined: in-memory state, or not on Linux). */
    readonly azuriteCpuMs: number | undefined;
    /** Per measured batch, its critical-path depth: the longest chain of Table requests each sent after the previous one
     * of the chain had its answer (empty for in-memory state). */
    readonly depths: readonly number[];
}

export interface TableResult {
    readonly plan: TablePlan;
    readonly records: number;
    readonly memory: PassResult;
    readonly table: PassResult;
    /** Table-state throughput / in-memory throughput on the same batches. */
    readonly tableRatio: number;
    readonly stateRequestsPerRecord: number;
    readonly portCallsPerRecord: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    /** CPU per measured batch: this process with Table state, with in-memory state, and Azurite (undefined: unknown). */
    readonly cpuMsPerBatch: number;
    readonly memoryCpuMsPerBatch: number;
    readonly azuriteCpuMsPerBatch: number | undefined;
    /** Critical-path depth per measured batch (sequential request rounds): median and largest. */
    readonly depthP50: number;
    readonly depthMax: number;
    /** Table requests per measured batch. */
    readonly requestsPerBatch: number;
}

let tables = 0;

/** CPU time (user + system) of a process so far, ms, from /proc (clock ticks of 10 ms); undefined where unreadable. */
function processCpuMs(pid: number | undefined): number | undefined {
    if (pid === undefined) return undefined;
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        // Fields after the command name (which is in parentheses and may hold spaces): utime and stime are 14 and 15.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
        return undefined;
    }
}

function ownCpuMs(): number {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
}

/**
 * Tracks the requests in flight to measure a batch's critical path: a request's depth is one more than the deepest
 * request that had its answer before this one was sent, so the deepest request of a batch ends the longest chain of
 * requests that waited for one another (a batch sending everything at once has depth 1, a read then a write 2).
 */
export class DepthTracker {
    private ended = 0;
    private deepest = 0;

    /** A request is sent: its depth. */
    start(): number {
        const depth = this.ended + 1;
        if (depth > this.deepest) this.deepest = depth;
        return depth;
    }

    /** The request of that depth has its answer (or failed). */
    end(depth: number): void {
        if (depth > this.ended) this.ended = depth;
    }

    /** The depth since the previous call, starting again from zero. */
    take(): number {
        const d = this.deepest;
        this.ended = 0;
        this.deepest = 0;
        return d;
    }
}

function delay(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A Table client on Azurite whose every HTTP request (each retry too) is counted and its critical path tracked; with
 * `latencyMs`, each request waits that long before it is sent (a stand-in for the network round trip).
 */
function countedTableClient(
    azurite: AzuriteService,
    latencyMs: number | undefined,
): { client: TableClient; requests: () => number; depth: DepthTracker } {
    const client = TableClient.fromConnectionString(azurite.connectionString, `kvrbench${++tables}`, {
        allowInsecureConnection: true,
    });
    let n = 0;
    const depth = new DepthTracker();
    client.pipeline.addPolicy(
        {
            name: 'benchRequestCounter',
            sendRequest: async (request, next) => {
                n++;
                const d = depth.start();
                try {
                    if (latencyMs !== undefined && latencyMs > 0) await delay(latencyMs);
                    return await next(request);
                } finally {
                    depth.end(d);
                }
            },
        },
        // After the retry policy: every attempt that goes over the wire counts (and waits).
        { afterPhase: 'Retry' },
    );
    return { client, requests: () => n, depth };
}

async function pass(
    batches: readonly { readonly bodies: string[]; readonly records: number }[],
    warmup: number,
    inner: StateStore,
    wire: (() => number) | undefined,
    budgetSeconds = Number.POSITIVE_INFINITY,
    azuritePid?: number,
    depth?: DepthTracker,
): Promise<PassResult> {
    let deadline = Number.POSITIVE_INFINITY;
    resetCaches();
    collectGarbage();
    const store = new CountingStateStore(inner);
    const pipeline = freshPipeline(store);
    let wireBefore = 0;
    let cpuBefore = ownCpuMs();
    let azuriteBefore = processCpuMs(azuritePid);
    const batchMs: number[] = [];
    const depths: number[] = [];
    let records = 0;
    for (const [i, batch] of batches.entries()) {
        if (i === warmup) {
            // The budget counts measured batches only: a slow warm-up does not eat it.
            deadline = performance.now() + budgetSeconds * 1000;
            store.take();
            wireBefore = wire?.() ?? 0;
            cpuBefore = ownCpuMs();
            azuriteBefore = processCpuMs(azuritePid);
        }
        const items = batch.bodies.map((body) => ({ body }));
        depth?.take();
        const t0 = performance.now();
        await pipeline.processBatch(items);
        const ms = performance.now() - t0;
        const d = depth?.take();
        if (i >= warmup) {
            batchMs.push(ms);
            if (d !== undefined) depths.push(d);
            records += batch.records;
            if (performance.now() > deadline) break;
        }
    }
    const cpuMs = ownCpuMs() - cpuBefore;
    const azuriteAfter = processCpuMs(azuritePid);
    if (pipeline.stats.rejected > 0) throw new Error(`${pipeline.stats.rejected} records rejected`);
    const seconds = batchMs.reduce((a, b) => a + b, 0) / 1000;
    return {
        records,
        seconds,
        recordsPerSec: seconds > 0 ? records / seconds : 0,
        batchMs,
        counts: store.take(),
        wireRequests: wire === undefined ? undefined : wire() - wireBefore,
        cpuMs,
        azuriteCpuMs:
            azuriteBefore === undefined || azuriteAfter === undefined ? undefined : azuriteAfter - azuriteBefore,
        depths,
    };
}

/** Runs one plan: three in-memory passes (the median counts) and one Table-state pass on the same batches. */
export async function measureTable(
    plan: TablePlan,
    azurite: AzuriteService,
    progress: (line: string) => void,
): Promise<TableResult> {
    const total = (plan.warmupBatches + plan.batches) * plan.batchRecords;
    const batches = [...batchesOf(bodiesOf(plan.workload, total), plan.batchRecords)].slice(
        0,
        plan.warmupBatches + plan.batches,
    );
    const label = `${plan.workload}, ${plan.batchRecords.toLocaleString('en-US')}-record batches${plan.latencyMs === undefined ? '' : `, ${plan.latencyMs} ms added to each Table request`}`;
    // The Table pass first: on a slow machine it may stop at its time budget, and the in-memory passes then run
    // exactly the batches it ran.
    const { client, requests, depth } = countedTableClient(azurite, plan.latencyMs);
    const table = await pass(
        batches,
        plan.warmupBatches,
        new TableStateStore(client),
        requests,
        plan.budgetSeconds,
        azurite.pid,
        depth,
    );
    const ran = batches.slice(0, plan.warmupBatches + table.batchMs.length);
    const memoryPasses: PassResult[] = [];
    for (let i = 0; i < 3; i++)
        memoryPasses.push(await pass(ran, plan.warmupBatches, new MemoryStateStore(), undefined));
    const memoryRate = spreadOf(memoryPasses.map((p) => p.recordsPerSec)).median;
    const memory = memoryPasses.find((p) => p.recordsPerSec === memoryRate);
    if (memory === undefined) throw new Error('no in-memory pass');
    const wire = table.wireRequests ?? 0;
    const c = table.counts;
    const result: TableResult = {
        plan,
        records: table.records,
        memory,
        table,
        tableRatio: memoryRate > 0 ? table.recordsPerSec / memoryRate : 0,
        stateRequestsPerRecord: table.records > 0 ? wire / table.records : Number.NaN,
        portCallsPerRecord: table.records > 0 ? (c.getManyCalls + c.puts + c.scans) / table.records : Number.NaN,
        p50Ms: percentile(table.batchMs, 50),
        p99Ms: percentile(table.batchMs, 99),
        cpuMsPerBatch: table.cpuMs / Math.max(1, table.batchMs.length),
        memoryCpuMsPerBatch: memory.cpuMs / Math.max(1, memory.batchMs.length),
        azuriteCpuMsPerBatch:
            table.azuriteCpuMs === undefined ? undefined : table.azuriteCpuMs / Math.max(1, table.batchMs.length),
        depthP50: percentile(table.depths, 50),
        depthMax: table.depths.reduce((a, b) => Math.max(a, b), 0),
        requestsPerBatch: wire / Math.max(1, table.batchMs.length),
    };
    progress(
        `${label}: ${table.batchMs.length} batches, in-memory state ${Math.round(memoryRate).toLocaleString('en-US')} records/s, Table state ${Math.round(table.recordsPerSec).toLocaleString('en-US')} records/s (ratio ${result.tableRatio.toFixed(3)}), ${result.stateRequestsPerRecord.toFixed(3)} requests/record, p50 ${result.p50Ms.toFixed(0)} ms, p99 ${result.p99Ms.toFixed(0)} ms; CPU per batch: this process ${result.cpuMsPerBatch.toFixed(0)} ms (in-memory state ${result.memoryCpuMsPerBatch.toFixed(0)} ms), Azurite ${result.azuriteCpuMsPerBatch?.toFixed(0) ?? '?'} ms; ${result.requestsPerBatch.toFixed(1)} requests a batch, critical path ${result.depthP50} (max ${result.depthMax}) sequential requests`,
    );
    return result;
}
