/**
 * CPU profile of the in-memory pipeline alone: generates the bodies first, then runs `rounds` fresh pipelines over
 * them with bare JSON.parse alternating, as the benchmark's paired rounds do, and prints the ratio of each round.
 * Run under `node --cpu-prof` to see where the pipeline's time goes without the generator's.
 *
 *   node --expose-gc [--cpu-prof] dist/bench/profilePipeline.js [diverse|sample] [records] [rounds]
 */
import { collectGarbage, freshPipeline, resetCaches } from './inMemory';
import { batchesOf, bodiesOf, type WorkloadName } from './workloads';

async function main(): Promise<void> {
    const workload = (process.argv[2] ?? 'diverse') as WorkloadName;
    const records = Number(process.argv[3] ?? 30_000);
    const rounds = Number(process.argv[4] ?? 3);
    const chunks = [...batchesOf(bodiesOf(workload, records), 1_000)].map((c) => c.bodies);
    for (let r = 0; r < rounds; r++) {
        resetCaches();
        collectGarbage();
        const pipeline = freshPipeline();
        let parseMs = 0;
        let pipelineMs = 0;
        let sink = 0;
        for (let k = 0; k < chunks.length; k++) {
            const bodies = chunks[k] as string[];
            const parse = (): void => {
                const t0 = performance.now();
                for (const body of bodies) sink += (JSON.parse(body) as { records: unknown[] }).records.length;
                parseMs += performance.now() - t0;
            };
            if (k % 2 === 0) parse();
            const t0 = performance.now();
            await pipeline.processBatch(bodies.map((body) => ({ body })));
            pipelineMs += performance.now() - t0;
            if (k % 2 === 1) parse();
        }
        console.log(
            `${workload} round ${r + 1}: ${sink} records, parse ${parseMs.toFixed(0)} ms, pipeline ${pipelineMs.toFixed(0)} ms, ratio ${(parseMs / pipelineMs).toFixed(3)}, findings ${pipeline.stats.findings}`,
        );
    }
}
void main();
