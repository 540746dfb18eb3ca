/**
 * The benchmark's two inputs, as Event Hubs bodies: the sample traffic (the generator of the bundled sample day: six
 * vaults, about thirty principals) and the diverse estate (10,000 vaults x 50 callers, shared/sample/diverseWorkload.ts).
 * Both are seeded and deterministic, so every pass over a workload sees the same bodies.
 */
import { DIVERSE_ESTATE, generateDiverseBatches } from '../shared/sample/diverseWorkload';
import {
    type GeneratedBody,
    generateBatches,
    SAMPLE_DAY,
    type TrafficOptions,
} from '../shared/sample/trafficGenerator';

export type WorkloadName = 'sample' | 'diverse';
export const WORKLOADS: readonly WorkloadName[] = ['sample', 'diverse'];

function sampleOptions(records: number): TrafficOptions {
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

/** The first bodies of a workload that hold at least `records` records (the diverse one: exactly `records`). */
export function* bodiesOf(workload: WorkloadName, records: number): Generator<GeneratedBody> {
    if (workload === 'diverse') {
        yield* generateDiverseBatches({ ...DIVERSE_ESTATE, records });
        return;
    }
    let n = 0;
    for (const b of generateBatches(sampleOptions(records))) {
        yield b;
        n += b.records;
        if (n >= records) return;
    }
}

/** Bodies grouped into batches of about `batchRecords` records (never more, unless one body alone is larger). */
export function* batchesOf(
    bodies: Iterable<GeneratedBody>,
    batchRecords: number,
): Generator<{ readonly bodies: string[]; readonly records: number }> {
    let batch: string[] = [];
    let n = 0;
    for (const b of bodies) {
        if (n > 0 && n + b.records > batchRecords) {
            yield { bodies: batch, records: n };
            batch = [];
            n = 0;
        }
        batch.push(b.body);
        n += b.records;
    }
    if (n > 0) yield { bodies: batch, records: n };
}
