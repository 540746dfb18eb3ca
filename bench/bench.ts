/**
 * Throughput benchmark (docs/benchmark.md):
 *
 *   npm run bench [-- --quick | --tiny] [-- --json] [-- --records N] [-- --rounds N] [-- --replay-records N]
 *                 [-- --replay-5m]
 *
 * 1. In memory, paired rounds: JSON.parse and the full pipeline (all rules on, in-memory state) alternate on the same
 *    bodies, 1,000 records at a time; every round starts cold (fresh pipeline, module memos emptied). The ratio of each
 *    round is pipeline throughput / JSON.parse throughput; min, median and max over the rounds are reported. Two
 *    workloads: the sample traffic and the diverse estate (10,000 vaults x 50 callers).
 * 2. The production state path: the same workloads, in batches of 1,000 and of 100 records, through the pipeline with
 *    its state in Table Storage (an Azurite the benchmark starts: in memory, telemetry off, a free port), against the
 *    same batches with in-memory state: records/s, Table requests per record, p50/p99 batch latency.
 * 3. Peak RSS of a replay of 1M diverse records with in-memory state, in a child process (5M with --replay-5m), run
 *    with the node options `kvr replay` runs with (its heap cap, KVR_REPLAY_HEAP_MB: shared/cli/replayHeap.ts).
 *
 * Targets (issue 13) are printed, never enforced through the exit status. With --json the last stdout line is one JSON
 * object (fields in docs/benchmark.md).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { replayHeapArgs, replayHeapMb } from '../shared/cli/replayHeap';
import { startAzurite } from '../test/support/azurite';
import { type InMemoryResult, measureInMemory } from './inMemory';
import { measureTable, type TablePlan, type TableResult } from './tablePath';

const TARGETS = {
    ratio: 0.5,
    tableRatio: 0.5,
    stateRequestsPerRecord: 0.05,
    replay1mPeakRssMb: 256,
    replay5mPeakRssMb: 512,
} as const;

type Mode = 'default' | 'quick' | 'tiny';

/** Seconds of measured batches per Table-state run, at most (one batch at least): bounds a run on a slow machine. */
const BUDGET = 40;

/**
 * The delay added to each Table request in the latency runs, ms: a stand-in for a same-region round trip to Table
 * Storage (an assumption; Azurite on loopback answers in well under a millisecond).
 */
const LATENCY_MS = 5;

interface Sizes {
    readonly sampleRecords: number;
    readonly diverseRecords: number;
    readonly rounds: number;
    readonly sampleWarmup: number;
    readonly diverseWarmup: number;
    /**
     * Table-state runs. The first diverse plan is the headline (`tableRatio`, `stateRequestsPerRecord`, `tableP99Ms`),
     * the first sample plan gives the `sample*` fields (plans with `latencyMs` excepted: they give the `latency*` and
     * `sampleLatency*` fields).
     */
    readonly table: readonly TablePlan[];
    readonly replayRecords: number;
}

const SIZES: Readonly<Record<Mode, Sizes>> = {
    default: {
        sampleRecords: 200_000,
        diverseRecords: 30_000,
        rounds: 5,
        sampleWarmup: 20_000,
        diverseWarmup: 10_000,
        table: [
            { workload: 'diverse', batchRecords: 1000, warmupBatches: 1, batches: 5, budgetSeconds: BUDGET },
            { workload: 'diverse', batchRecords: 100, warmupBatches: 2, batches: 20, budgetSeconds: BUDGET },
            { workload: 'sample', batchRecords: 1000, warmupBatches: 1, batches: 10, budgetSeconds: BUDGET },
            { workload: 'sample', batchRecords: 100, warmupBatches: 2, batches: 30, budgetSeconds: BUDGET },
            {
                workload: 'diverse',
                batchRecords: 1000,
                warmupBatches: 1,
                batches: 5,
                budgetSeconds: 8,
                latencyMs: LATENCY_MS,
            },
            {
                workload: 'sample',
                batchRecords: 1000,
                warmupBatches: 1,
                batches: 10,
                budgetSeconds: 5,
                latencyMs: LATENCY_MS,
            },
        ],
        replayRecords: 1_000_000,
    },
    quick: {
        sampleRecords: 50_000,
        diverseRecords: 10_000,
        rounds: 3,
        sampleWarmup: 5_000,
        diverseWarmup: 5_000,
        table: [
            { workload: 'diverse', batchRecords: 1000, warmupBatches: 1, batches: 2, budgetSeconds: BUDGET },
            { workload: 'diverse', batchRecords: 100, warmupBatches: 1, batches: 5, budgetSeconds: BUDGET },
            { workload: 'sample', batchRecords: 1000, warmupBatches: 1, batches: 3, budgetSeconds: BUDGET },
            { workload: 'sample', batchRecords: 100, warmupBatches: 1, batches: 5, budgetSeconds: BUDGET },
            {
                workload: 'diverse',
                batchRecords: 1000,
                warmupBatches: 1,
                batches: 2,
                budgetSeconds: 8,
                latencyMs: LATENCY_MS,
            },
            {
                workload: 'sample',
                batchRecords: 1000,
                warmupBatches: 1,
                batches: 3,
                budgetSeconds: 5,
                latencyMs: LATENCY_MS,
            },
        ],
        replayRecords: 200_000,
    },
    tiny: {
        sampleRecords: 1_000,
        diverseRecords: 1_000,
        rounds: 2,
        sampleWarmup: 200,
        diverseWarmup: 200,
        // A plumbing check, not a measurement: small batches, so that it runs in seconds.
        table: [
            { workload: 'diverse', batchRecords: 100, warmupBatches: 0, batches: 1, budgetSeconds: BUDGET },
            { workload: 'sample', batchRecords: 100, warmupBatches: 0, batches: 1, budgetSeconds: BUDGET },
            {
                workload: 'diverse',
                batchRecords: 100,
                warmupBatches: 0,
                batches: 1,
                budgetSeconds: BUDGET,
                latencyMs: 1,
            },
            {
                workload: 'sample',
                batchRecords: 100,
                warmupBatches: 0,
                batches: 1,
                budgetSeconds: BUDGET,
                latencyMs: 1,
            },
        ],
        replayRecords: 1_000,
    },
};

interface Args {
    readonly json: boolean;
    readonly mode: Mode;
    readonly sizes: Sizes;
    readonly replay5m: boolean;
}

function positiveInt(name: string, value: string | undefined, fallback: number, problems: string[]): number {
    if (value === undefined) return fallback;
    const text = value.replace(/_/g, '');
    if (!/^\d+$/.test(text) || Number(text) < 1) {
        problems.push(`--${name} needs a positive integer, got '${value}'`);
        return fallback;
    }
    return Number(text);
}

function parseCommandLine(argv: readonly string[]): Args {
    const { values } = parseArgs({
        args: [...argv],
        strict: true,
        allowPositionals: false,
        options: {
            json: { type: 'boolean' },
            quick: { type: 'boolean' },
            tiny: { type: 'boolean' },
            records: { type: 'string' },
            rounds: { type: 'string' },
            'replay-records': { type: 'string' },
            'replay-5m': { type: 'boolean' },
        },
    });
    const problems: string[] = [];
    if (values.quick === true && values.tiny === true) problems.push('--quick and --tiny exclude each other');
    const mode: Mode = values.tiny === true ? 'tiny' : values.quick === true ? 'quick' : 'default';
    const base = SIZES[mode];
    const sizes: Sizes = {
        ...base,
        sampleRecords: positiveInt('records', values.records, base.sampleRecords, problems),
        rounds: positiveInt('rounds', values.rounds, base.rounds, problems),
        replayRecords: positiveInt('replay-records', values['replay-records'], base.replayRecords, problems),
    };
    if (problems.length > 0) throw new Error(problems.join('; '));
    return { json: values.json === true, mode, sizes, replay5m: values['replay-5m'] === true };
}

interface ReplayResult {
    readonly records: number;
    readonly seconds: number;
    readonly findings: number;
    readonly stateEntries: number;
    readonly startRssMb: number;
    readonly peakRssMb: number;
}

/** Runs the replay child process (with the node options of `kvr replay`) and returns what it printed. */
function replayInChild(records: number): Promise<ReplayResult> {
    const options = replayHeapArgs(['replay'], process.env, Number.POSITIVE_INFINITY) ?? [];
    return new Promise((resolve, reject) => {
        execFile(
            process.execPath,
            [...options, join(__dirname, 'replayChild.js'), '--records', String(records), '--workload', 'diverse'],
            { maxBuffer: 1 << 20 },
            (err, stdout, stderr) => {
                if (err !== null) return reject(new Error(`replay child failed: ${err.message} ${stderr}`));
                const last = stdout.trim().split('\n').pop() ?? '';
                try {
                    resolve(JSON.parse(last) as ReplayResult);
                } catch {
                    reject(new Error(`replay child printed no JSON: ${stdout} ${stderr}`));
                }
            },
        );
    });
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
const round1 = (n: number): number => Math.round(n * 10) / 10;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function run(args: Args, progress: (line: string) => void): Promise<Record<string, unknown>> {
    const s = args.sizes;
    const sample = await measureInMemory('sample', s.sampleRecords, s.rounds, s.sampleWarmup, progress);
    const diverse = await measureInMemory('diverse', s.diverseRecords, s.rounds, s.diverseWarmup, progress);
    const peakRssMb = process.resourceUsage().maxRSS / 1024;

    progress('starting Azurite (Table service, in memory)');
    const azurite = await startAzurite('table');
    const table: TableResult[] = [];
    try {
        for (const plan of s.table) table.push(await measureTable(plan, azurite, progress));
    } finally {
        await azurite.stop();
    }

    progress(`replaying ${fmt(s.replayRecords)} diverse records in a child process`);
    const replay = await replayInChild(s.replayRecords);
    progress(`replay: peak RSS ${replay.peakRssMb} MB, ${fmt(replay.records / replay.seconds)} records/s`);
    let replay5m: ReplayResult | undefined;
    if (args.replay5m) {
        progress('replaying 5,000,000 diverse records in a child process');
        replay5m = await replayInChild(5_000_000);
        progress(`replay 5M: peak RSS ${replay5m.peakRssMb} MB`);
    }

    const find = (w: string, latency = false): TableResult => {
        const r = table.find((t) => t.plan.workload === w && (t.plan.latencyMs !== undefined) === latency);
        if (r === undefined) throw new Error(`no Table result for ${w}${latency ? ' with latency' : ''}`);
        return r;
    };
    const d1000 = find('diverse');
    const s1000 = find('sample');
    const dLatency = find('diverse', true);
    const sLatency = find('sample', true);
    return {
        mode: args.mode,
        records: sample.records,
        rounds: sample.rounds.length,
        jsonParseRecordsPerSec: Math.round(sample.jsonParseRecordsPerSec),
        pipelineRecordsPerSec: Math.round(sample.pipelineRecordsPerSec),
        ratio: round3(sample.ratio.median),
        ratioMin: round3(sample.ratio.min),
        ratioMax: round3(sample.ratio.max),
        peakRssMb: round1(peakRssMb),
        diverseRecords: diverse.records,
        diverseJsonParseRecordsPerSec: Math.round(diverse.jsonParseRecordsPerSec),
        diversePipelineRecordsPerSec: Math.round(diverse.pipelineRecordsPerSec),
        diverseRatio: round3(diverse.ratio.median),
        diverseRatioMin: round3(diverse.ratio.min),
        diverseRatioMax: round3(diverse.ratio.max),
        tableBatchRecords: d1000.plan.batchRecords,
        tableRatio: round3(d1000.tableRatio),
        stateRequestsPerRecord: round3(d1000.stateRequestsPerRecord),
        tableRecordsPerSec: Math.round(d1000.table.recordsPerSec),
        tableMemoryRecordsPerSec: Math.round(d1000.memory.recordsPerSec),
        tableP50Ms: round1(d1000.p50Ms),
        tableP99Ms: round1(d1000.p99Ms),
        tableRecords: d1000.records,
        sampleTableRatio: round3(s1000.tableRatio),
        sampleStateRequestsPerRecord: round3(s1000.stateRequestsPerRecord),
        sampleTableP99Ms: round1(s1000.p99Ms),
        tableCriticalPath: d1000.depthP50,
        sampleTableCriticalPath: s1000.depthP50,
        latencyMs: dLatency.plan.latencyMs ?? 0,
        latencyBatchRecords: dLatency.plan.batchRecords,
        latencyTableRecordsPerSec: Math.round(dLatency.table.recordsPerSec),
        latencyTableRatio: round3(dLatency.tableRatio),
        latencyTableP50Ms: round1(dLatency.p50Ms),
        latencyTableP99Ms: round1(dLatency.p99Ms),
        latencyCriticalPath: dLatency.depthP50,
        latencyCriticalPathMax: dLatency.depthMax,
        sampleLatencyTableRecordsPerSec: Math.round(sLatency.table.recordsPerSec),
        sampleLatencyTableRatio: round3(sLatency.tableRatio),
        sampleLatencyTableP50Ms: round1(sLatency.p50Ms),
        sampleLatencyTableP99Ms: round1(sLatency.p99Ms),
        sampleLatencyCriticalPath: sLatency.depthP50,
        sampleLatencyCriticalPathMax: sLatency.depthMax,
        replay1mPeakRssMb: replay.peakRssMb,
        replayRecords: replay.records,
        replayHeapMb: replayHeapMb() ?? null,
        ...(replay5m === undefined ? {} : { replay5mPeakRssMb: replay5m.peakRssMb }),
        table: table.map((t) => ({
            workload: t.plan.workload,
            batchRecords: t.plan.batchRecords,
            batches: t.table.batchMs.length,
            records: t.records,
            memoryRecordsPerSec: Math.round(t.memory.recordsPerSec),
            tableRecordsPerSec: Math.round(t.table.recordsPerSec),
            tableRatio: round3(t.tableRatio),
            stateRequestsPerRecord: round3(t.stateRequestsPerRecord),
            portCallsPerRecord: round3(t.portCallsPerRecord),
            keysReadPerRecord: round3(t.table.counts.keysRead / t.records),
            putsPerRecord: round3(t.table.counts.puts / t.records),
            conflicts: t.table.counts.conflicts,
            p50Ms: round1(t.p50Ms),
            p99Ms: round1(t.p99Ms),
            cpuMsPerBatch: round1(t.cpuMsPerBatch),
            memoryCpuMsPerBatch: round1(t.memoryCpuMsPerBatch),
            ...(t.azuriteCpuMsPerBatch === undefined ? {} : { azuriteCpuMsPerBatch: round1(t.azuriteCpuMsPerBatch) }),
            latencyMs: t.plan.latencyMs ?? 0,
            requestsPerBatch: round1(t.requestsPerBatch),
            criticalPathP50: t.depthP50,
            criticalPathMax: t.depthMax,
        })),
        inMemory: [sample, diverse].map((m: InMemoryResult) => ({
            workload: m.workload,
            records: m.records,
            ratios: m.rounds.map((r) => round3(r.ratio)),
            findings: m.rounds[0]?.findings ?? 0,
        })),
        replay,
        ...(replay5m === undefined ? {} : { replay5m }),
    };
}

function report(r: Record<string, unknown>): string {
    const n = (k: string): number => r[k] as number;
    const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
    const lines = [
        `kv-responder benchmark (${String(r.mode)} run)`,
        '',
        `In memory, paired rounds (${n('rounds')} rounds, median [min-max] of per-round ratios pipeline / JSON.parse):`,
        `  sample traffic  ${fmt(n('records'))} records/round  JSON.parse ${fmt(n('jsonParseRecordsPerSec'))}/s  pipeline ${fmt(n('pipelineRecordsPerSec'))}/s  ratio ${n('ratio').toFixed(3)} [${n('ratioMin').toFixed(3)}-${n('ratioMax').toFixed(3)}]  target >= ${TARGETS.ratio}: ${met(n('ratio') >= TARGETS.ratio)}`,
        `  diverse estate  ${fmt(n('diverseRecords'))} records/round  JSON.parse ${fmt(n('diverseJsonParseRecordsPerSec'))}/s  pipeline ${fmt(n('diversePipelineRecordsPerSec'))}/s  ratio ${n('diverseRatio').toFixed(3)} [${n('diverseRatioMin').toFixed(3)}-${n('diverseRatioMax').toFixed(3)}]`,
        `  peak RSS of the benchmark process after these rounds: ${n('peakRssMb').toFixed(1)} MB`,
        '',
        'Table Storage state (Azurite) against in-memory state, same batches:',
        '  workload  batch  records  in-memory/s  Table/s  Table ratio  requests/record  p50 ms  p99 ms  critical path  added latency',
    ];
    for (const t of r.table as Record<string, number | string>[]) {
        lines.push(
            `  ${String(t.workload).padEnd(8)} ${String(t.batchRecords).padStart(6)} ${fmt(t.records as number).padStart(8)} ${fmt(t.memoryRecordsPerSec as number).padStart(12)} ${fmt(t.tableRecordsPerSec as number).padStart(8)} ${(t.tableRatio as number).toFixed(3).padStart(12)} ${(t.stateRequestsPerRecord as number).toFixed(3).padStart(16)} ${(t.p50Ms as number).toFixed(0).padStart(7)} ${(t.p99Ms as number).toFixed(0).padStart(7)} ${String(t.criticalPathP50).padStart(14)} ${`${t.latencyMs as number} ms`.padStart(14)}`,
        );
    }
    lines.push(
        `  diverse, ${fmt(n('tableBatchRecords'))}-record batches: Table ratio target >= ${TARGETS.tableRatio}: ${met(n('tableRatio') >= TARGETS.tableRatio)}; requests/record target <= ${TARGETS.stateRequestsPerRecord}: ${met(n('stateRequestsPerRecord') <= TARGETS.stateRequestsPerRecord)}`,
        '',
        `Replay of ${fmt(n('replayRecords'))} diverse records, in-memory state, own process: peak RSS ${n('replay1mPeakRssMb').toFixed(1)} MB  target < ${TARGETS.replay1mPeakRssMb} MB (1M): ${n('replayRecords') === 1_000_000 ? met(n('replay1mPeakRssMb') < TARGETS.replay1mPeakRssMb) : 'not a 1M replay'}`,
    );
    if (r.replay5mPeakRssMb !== undefined) {
        lines.push(
            `Replay of 5,000,000 diverse records: peak RSS ${n('replay5mPeakRssMb').toFixed(1)} MB  target < ${TARGETS.replay5mPeakRssMb} MB: ${met(n('replay5mPeakRssMb') < TARGETS.replay5mPeakRssMb)}`,
        );
    }
    return lines.join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
    let args: Args;
    try {
        args = parseCommandLine(argv);
    } catch (err) {
        process.stderr.write(
            `bench: ${(err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ')}\n`,
        );
        return 2;
    }
    const progress = (line: string): void => {
        process.stderr.write(`bench: ${line}\n`);
    };
    const result = await run(args, progress);
    if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stdout.write(`${report(result)}\n`);
    return 0;
}

main(process.argv.slice(2)).then(
    (code) => {
        process.exitCode = code;
    },
    (err: unknown) => {
        process.stderr.write(
            `bench: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
        );
        process.exitCode = 1;
    },
);
