import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './support/cli';

interface Run {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

/** Runs the built benchmark (dist/, built by the jest global setup) as `npm run bench` does. */
function bench(...argv: string[]): Promise<Run> {
    return new Promise((resolve) => {
        execFile(
            process.execPath,
            ['--expose-gc', join(REPO, 'dist/bench/bench.js'), ...argv],
            { cwd: REPO, maxBuffer: 16 << 20 },
            (err, stdout, stderr) => {
                const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
                resolve({ code, stdout, stderr });
            },
        );
    });
}

// The fields `npm run bench -- --json` promises (docs/benchmark.md); only the contract is checked here, never a speed.
const NUMBERS = [
    'records',
    'ratio',
    'ratioMin',
    'ratioMax',
    'peakRssMb',
    'diverseRecords',
    'diverseRatio',
    'diverseRatioMin',
    'diverseRatioMax',
    'tableRatio',
    'stateRequestsPerRecord',
    'tableP50Ms',
    'tableP99Ms',
    'tableRecords',
    'tableBatchRecords',
    'sampleTableRatio',
    'sampleStateRequestsPerRecord',
    'sampleTableP99Ms',
    'replay1mPeakRssMb',
    'replayRecords',
    'tableCriticalPath',
    'sampleTableCriticalPath',
    'latencyMs',
    'latencyTableRecordsPerSec',
    'latencyTableP50Ms',
    'latencyTableP99Ms',
    'latencyCriticalPath',
    'latencyCriticalPathMax',
    'sampleLatencyTableRecordsPerSec',
    'sampleLatencyTableP99Ms',
    'sampleLatencyCriticalPath',
] as const;

describe('npm run bench -- --json', () => {
    it('prints one JSON object with the promised fields as its last line (smallest mode)', async () => {
        const run = await bench('--tiny', '--json');
        expect(run.stderr).not.toMatch(/unexpected failure/);
        expect(run.code).toBe(0);
        const lines = run.stdout.trim().split('\n');
        expect(lines).toHaveLength(1);
        const result = JSON.parse(lines[0] as string) as Record<string, unknown>;
        expect(result.mode).toBe('tiny');
        const bad = NUMBERS.filter((k) => typeof result[k] !== 'number' || !Number.isFinite(result[k]));
        expect(bad).toEqual([]);
        const n = (k: (typeof NUMBERS)[number]): number => result[k] as number;
        expect(n('ratioMin')).toBeLessThanOrEqual(n('ratio'));
        expect(n('ratio')).toBeLessThanOrEqual(n('ratioMax'));
        expect(n('diverseRatioMin')).toBeLessThanOrEqual(n('diverseRatioMax'));
        // The sizes asked for were the sizes run; the Table path went over the wire.
        expect(n('records')).toBeGreaterThanOrEqual(1_000);
        expect(n('diverseRecords')).toBe(1_000);
        expect(n('replayRecords')).toBe(1_000);
        expect(n('tableRecords')).toBe(n('tableBatchRecords'));
        expect(n('stateRequestsPerRecord')).toBeGreaterThan(0);
        expect(n('tableP50Ms')).toBeLessThanOrEqual(n('tableP99Ms'));
        // The latency runs added their delay to each request; every Table batch waited for one request at least.
        expect(n('latencyMs')).toBeGreaterThan(0);
        expect(n('latencyCriticalPath')).toBeGreaterThanOrEqual(1);
        expect(n('latencyCriticalPath')).toBeLessThanOrEqual(n('latencyCriticalPathMax'));
        expect(n('tableCriticalPath')).toBeGreaterThanOrEqual(1);
    });

    it('refuses bad arguments, listing every problem, before measuring anything', async () => {
        const run = await bench('--records', 'many', '--rounds', '0', '--json');
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
        expect(run.stderr).toMatch(/--records needs a positive integer, got 'many'.*--rounds needs a positive integer/);
    });
});
