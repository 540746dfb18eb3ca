/**
 * Two builds of the in-memory pipeline against each other and against bare JSON.parse, in one process: on each chunk of
 * 1,000 records, JSON.parse of every body, this build's pipeline and the other build's pipeline run on the same bodies,
 * in an order that rotates from chunk to chunk, each timed in CPU time of the process (`process.cpuUsage`), so that a
 * machine shared with other work (which stretches wall time, not CPU time) and a slow moment hit all three alike.
 * Differences of a few per cent between two commits show here when separate benchmark runs cannot tell them apart.
 *
 *   git stash / checkout the old code; node scripts/build.mjs; cp -r dist /tmp/old/dist; ln -s $PWD/node_modules /tmp/old/
 *   back to the new code; node scripts/build.mjs
 *   node --expose-gc dist/bench/compareBuilds.js /tmp/old [sample|diverse] [records] [rounds]
 *
 * Prints per round the CPU ms of each side and each build's ratio (pipeline throughput / JSON.parse throughput), then
 * the medians and the median of old time / new time (above 1: the new build is faster).
 */
import { join, resolve } from 'node:path';
import { collectGarbage, freshPipeline, resetCaches, spreadOf } from './inMemory';
import { batchesOf, bodiesOf, type WorkloadName } from './workloads';

interface Build {
    freshPipeline: typeof freshPipeline;
    resetCaches: typeof resetCaches;
}

function cpuMs(): number {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
}

async function main(): Promise<void> {
    const otherDir = process.argv[2];
    if (otherDir === undefined)
        throw new Error('usage: compareBuilds.js <dir of the other build> [workload] [records] [rounds]');
    const workload = (process.argv[3] ?? 'sample') as WorkloadName;
    const records = Number(process.argv[4] ?? 100_000);
    const rounds = Number(process.argv[5] ?? 8);
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a build chosen at run time
    const other = require(join(resolve(otherDir), 'dist', 'bench', 'inMemory.js')) as Build;
    const self: Build = { freshPipeline, resetCaches };
    const chunks = [...batchesOf(bodiesOf(workload, records), 1_000)].map((c) => c.bodies);
    const ratios = { old: [] as number[], new: [] as number[], gain: [] as number[] };
    for (let r = 0; r <= rounds; r++) {
        other.resetCaches();
        self.resetCaches();
        collectGarbage();
        const pipelines = [other.freshPipeline(), self.freshPipeline()];
        const ms = [0, 0, 0]; // parse, old, new
        let sink = 0;
        for (let k = 0; k < chunks.length; k++) {
            const bodies = chunks[k] as string[];
            for (let j = 0; j < 3; j++) {
                const side = (j + k) % 3;
                const t0 = cpuMs();
                if (side === 0)
                    for (const b of bodies) sink += (JSON.parse(b) as { records: unknown[] }).records.length;
                else await pipelines[side - 1]?.processBatch(bodies.map((body) => ({ body })));
                ms[side] = (ms[side] as number) + cpuMs() - t0;
            }
        }
        const [parse, oldMs, newMs] = ms as [number, number, number];
        const [po, pn] = pipelines;
        if (po?.stats.findings !== pn?.stats.findings)
            console.log(`round ${r}: findings differ: old ${po?.stats.findings}, new ${pn?.stats.findings}`);
        if (r === 0) continue; // warm-up
        ratios.old.push(parse / oldMs);
        ratios.new.push(parse / newMs);
        ratios.gain.push(oldMs / newMs);
        console.log(
            `${workload} round ${r}: ${sink} records, CPU ms: JSON.parse ${parse.toFixed(0)}, old ${oldMs.toFixed(0)} (ratio ${(parse / oldMs).toFixed(3)}), new ${newMs.toFixed(0)} (ratio ${(parse / newMs).toFixed(3)}), old/new ${(oldMs / newMs).toFixed(3)}`,
        );
    }
    const m = (v: number[]): string => spreadOf(v).median.toFixed(3);
    console.log(`median: ratio old ${m(ratios.old)}, new ${m(ratios.new)}; old time / new time ${m(ratios.gain)}`);
}

void main();
