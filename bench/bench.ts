/**
 * Throughput benchmark: the full pipeline against bare JSON.parse, on the same generated Event Hubs bodies.
 *
 *   npm run bench [-- --records N] [-- --json]
 *
 * Input: at least N records (default 200,000) of generated Key Vault traffic with attack episodes, packed in bodies
 * of up to 50 records. Bodies are regenerated on the fly for every pass, so memory holds one body at a time.
 * (a) JSON.parse: only the JSON.parse calls are timed. (b) pipeline: only `evaluateBatch` (parse, normalize, every
 * rule) is timed, with a fresh pipeline per run. Both are warmed up on 20,000 records, then run 7 times, alternating;
 * the best rate of each counts. Targets (reported, never enforced through the exit status): ratio >= 0.5, peak RSS < 256 MB.
 * With --json the last stdout line is {"records","jsonParseRecordsPerSec","pipelineRecordsPerSec","ratio","peakRssMb"}.
 */
import { parseArgs } from 'node:util';
import { CountingDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { createPipeline } from '../shared/app/createPipeline';
import type { PipelineStats } from '../shared/app/pipeline';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import {
    type GeneratedBody,
    generateBatches,
    SAMPLE_DAY,
    type TrafficOptions,
} from '../shared/sample/trafficGenerator';

const DEFAULT_RECORDS = 200_000;
const WARMUP_RECORDS = 20_000;
const RUNS = 7;
const TARGET_RATIO = 0.5;
const TARGET_RSS_MB = 256;

interface Measurement {
    readonly records: number;
    readonly bodies: number;
    readonly seconds: number;
}

function inputOptions(records: number): TrafficOptions {
    // A week at the rate that fills the first day with the requested records: the input stops at `records` (during
    // the first day, with its attack episodes) and never runs short.
    return {
        seed: SAMPLE_DAY.seed,
        start: SAMPLE_DAY.start,
        hours: 24 * 7,
        recordsPerHour: Math.ceil((records / 24) * 1.05),
        attacks: true,
        maxRecordsPerBody: 50,
    };
}

/** The first bodies of the generated traffic that hold at least `records` records. */
function* bodies(options: TrafficOptions, records: number): Generator<GeneratedBody> {
    let n = 0;
    for (const b of generateBatches(options)) {
        yield b;
        n += b.records;
        if (n >= records) return;
    }
}

function collectGarbage(): void {
    (globalThis as { gc?: () => void }).gc?.();
}

function measureParse(options: TrafficOptions, records: number): Measurement & { readonly parsed: number } {
    let ms = 0;
    let n = 0;
    let count = 0;
    let parsed = 0;
    for (const b of bodies(options, records)) {
        const t0 = performance.now();
        const value = JSON.parse(b.body) as { records: unknown[] };
        ms += performance.now() - t0;
        parsed += value.records.length;
        n += b.records;
        count++;
    }
    return { records: n, bodies: count, seconds: ms / 1000, parsed };
}

async function measurePipeline(
    options: TrafficOptions,
    records: number,
): Promise<Measurement & { readonly stats: PipelineStats }> {
    const pipeline = createPipeline(
        DEFAULT_CONFIG,
        { decisions: new CountingDecisionSink(), quarantine: new MemoryQuarantineSink() },
        { acceptBareRecords: false },
    );
    let ms = 0;
    let n = 0;
    let count = 0;
    for (const b of bodies(options, records)) {
        const items = [{ body: b.body }];
        const t0 = performance.now();
        const report: unknown = pipeline.evaluateBatch(items);
        if (report instanceof Promise) await report;
        ms += performance.now() - t0;
        n += b.records;
        count++;
    }
    return { records: n, bodies: count, seconds: ms / 1000, stats: pipeline.stats };
}

function rate(m: Measurement): number {
    return m.seconds > 0 ? m.records / m.seconds : 0;
}

function fmt(n: number): string {
    return Math.round(n).toLocaleString('en-US');
}

function parseCommandLine(argv: readonly string[]): { json: boolean; records: number } {
    const { values } = parseArgs({
        args: [...argv],
        strict: true,
        allowPositionals: false,
        options: { json: { type: 'boolean' }, records: { type: 'string' } },
    });
    let records = DEFAULT_RECORDS;
    if (values.records !== undefined) {
        const text = values.records.replace(/_/g, '');
        if (!/^\d+$/.test(text) || Number(text) < 1) {
            throw new Error(`--records needs a positive integer, got '${values.records}'`);
        }
        records = Number(text);
    }
    return { json: values.json === true, records };
}

async function main(argv: readonly string[]): Promise<number> {
    let args: { json: boolean; records: number };
    try {
        args = parseCommandLine(argv);
    } catch (err) {
        process.stderr.write(
            `bench: ${(err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ')}\n`,
        );
        return 2;
    }
    const options = inputOptions(args.records);
    const progress = (line: string): void => {
        process.stderr.write(`bench: ${line}\n`);
    };

    const warmup = Math.min(WARMUP_RECORDS, args.records);
    progress(`warming up (${fmt(warmup)} records)`);
    measureParse(options, warmup);
    await measurePipeline(options, warmup);
    // Runs alternate, so that a slow moment of the machine hits both measurements alike; the best run of each counts.
    let parse: (Measurement & { readonly parsed: number }) | undefined;
    let pipeline: (Measurement & { readonly stats: PipelineStats }) | undefined;
    for (let i = 0; i < RUNS; i++) {
        collectGarbage();
        const p = measureParse(options, args.records);
        if (parse === undefined || rate(p) > rate(parse)) parse = p;
        collectGarbage();
        const m = await measurePipeline(options, args.records);
        if (pipeline === undefined || rate(m) > rate(pipeline)) pipeline = m;
        progress(`run ${i + 1}/${RUNS}: JSON.parse ${fmt(rate(p))} records/s, pipeline ${fmt(rate(m))} records/s`);
    }
    if (parse === undefined || pipeline === undefined) return 1;

    const parseRate = rate(parse);
    const pipelineRate = rate(pipeline);
    const ratio = parseRate > 0 ? pipelineRate / parseRate : 0;
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    const result = {
        records: parse.records,
        jsonParseRecordsPerSec: Math.round(parseRate),
        pipelineRecordsPerSec: Math.round(pipelineRate),
        ratio: Math.round(ratio * 1000) / 1000,
        peakRssMb: Math.round(peakRssMb * 10) / 10,
    };

    if (args.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
        return 0;
    }
    const s = pipeline.stats;
    const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
    const lines = [
        `kv-responder benchmark: ${fmt(parse.records)} records in ${fmt(parse.bodies)} Event Hubs bodies (best of ${RUNS})`,
        `  JSON.parse only  ${fmt(parseRate).padStart(12)} records/s`,
        `  full pipeline    ${fmt(pipelineRate).padStart(12)} records/s   (${fmt(s.events)} events, ${fmt(s.skipped)} skipped, ${fmt(s.rejected)} rejected, ${fmt(s.findings)} findings)`,
        `  ratio            ${result.ratio.toFixed(3).padStart(12)}   target >= ${TARGET_RATIO}: ${met(ratio >= TARGET_RATIO)}`,
        `  peak RSS         ${`${result.peakRssMb.toFixed(1)} MB`.padStart(12)}   target < ${TARGET_RSS_MB} MB: ${met(peakRssMb < TARGET_RSS_MB)}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
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
