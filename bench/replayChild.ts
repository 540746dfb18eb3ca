/**
 * Child process of the benchmark: replays `--records N` records of a workload through the in-memory pipeline (what
 * `kvr replay` runs: createResponder with in-memory state, batches of about 1,000 records) and prints, as its only
 * stdout line, a JSON object with its peak RSS. A process of its own, so that the peak belongs to this replay alone.
 *
 *   node dist/bench/replayChild.js --records 1000000 [--workload diverse|sample]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CountingDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { MemoryStateStore } from '../shared/adapters/memoryStateStore';
import { createResponder } from '../shared/app/createPipeline';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import { batchesOf, bodiesOf, WORKLOADS, type WorkloadName } from './workloads';

/** Peak resident set (MB): the kernel's high-water mark where /proc has it, else what Node reports. */
function peakRssMb(): number {
    try {
        const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
        if (m) return Number(m[1]) / 1024;
    } catch {
        // not Linux: fall through
    }
    return process.resourceUsage().maxRSS / 1024;
}

async function main(): Promise<void> {
    const { values } = parseArgs({
        args: process.argv.slice(2),
        strict: true,
        options: { records: { type: 'string' }, workload: { type: 'string' } },
    });
    const records = Number(values.records ?? '1000000');
    const workload = (values.workload ?? 'diverse') as WorkloadName;
    if (!Number.isInteger(records) || records < 1) throw new Error(`--records needs a positive integer`);
    if (!WORKLOADS.includes(workload)) throw new Error(`--workload must be one of ${WORKLOADS.join(', ')}`);
    const startRssMb = process.memoryUsage.rss() / (1024 * 1024);
    const store = new MemoryStateStore();
    const decisions = new CountingDecisionSink();
    const { pipeline } = createResponder(
        DEFAULT_CONFIG,
        { decisions, quarantine: new MemoryQuarantineSink() },
        { acceptBareRecords: true, store },
    );
    const t0 = performance.now();
    for (const batch of batchesOf(bodiesOf(workload, records), 1_000)) {
        await pipeline.processBatch(batch.bodies.map((body) => ({ body })));
    }
    const seconds = (performance.now() - t0) / 1000;
    const s = pipeline.stats;
    process.stdout.write(
        `${JSON.stringify({
            workload,
            records: s.records,
            seconds: Math.round(seconds * 10) / 10,
            findings: s.findings,
            rejected: s.rejected,
            stateEntries: store.size,
            startRssMb: Math.round(startRssMb * 10) / 10,
            endRssMb: Math.round((process.memoryUsage.rss() / (1024 * 1024)) * 10) / 10,
            peakRssMb: Math.round(peakRssMb() * 10) / 10,
        })}\n`,
    );
}

main().catch((err: unknown) => {
    process.stderr.write(`replay child: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
});
