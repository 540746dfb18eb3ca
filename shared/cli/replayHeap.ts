import { spawn } from 'node:child_process';
import { getHeapStatistics } from 'node:v8';

/**
 * The old-generation cap `kvr replay` runs under (MB), unless `KVR_REPLAY_HEAP_MB` says otherwise (`0`: no cap).
 *
 * Why a cap at all: a replay's live heap is small and flat (20 to 30 MB: rule state lives outside the heap, in
 * MemoryStateStore), but each 1,000-record batch promotes most of what it allocates, and with the default limit of a
 * machine with gigabytes of memory V8 lets the old generation grow to four times its live size between full
 * collections (its heap-growing factor is at most 4 when the heap may reach 2 GB or more, and about 1.6 under a
 * 1 GB cap). 1 GB is far above what a replay holds (a breach of it would be a leak, and fails loudly as an
 * out-of-memory error), so the cap changes when V8 collects, never what a replay can do. Figures with and without it:
 * docs/benchmark.md, "Figures: replay memory (session 6)".
 */
export const DEFAULT_REPLAY_HEAP_MB = 1024;

/**
 * The young generation's semi-space (MB) a capped replay runs with: a quarter of V8's default of 16 on 64-bit. What a
 * 1,000-record batch keeps alive is a few MB, so a smaller young generation costs few extra promotions, and it is
 * committed twice (two semi-spaces) for the whole run. It changes when V8 collects, never what a replay can do.
 * Measured (docs/benchmark.md, "Figures: replay memory (session 7)"): 1M diverse records peak at 222.6 MB with 4
 * against 229.7 MB with 8 (side by side), for about 8 % more wall time; 2 saves more but costs about 30 %.
 */
export const REPLAY_SEMI_SPACE_MB = 4;

/** The cap to run a replay under, from `KVR_REPLAY_HEAP_MB`; undefined when it is switched off (`0`). */
export function replayHeapMb(env: NodeJS.ProcessEnv = process.env): number | undefined {
    const raw = env.KVR_REPLAY_HEAP_MB;
    if (raw === undefined || raw.trim() === '') return DEFAULT_REPLAY_HEAP_MB;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0)
        throw new Error(`KVR_REPLAY_HEAP_MB must be a whole number of MB (0: no cap), got '${raw}'`);
    return n === 0 ? undefined : n;
}

/**
 * The node options to run `argv` again with, or undefined when this process should run it itself: not a replay, the
 * cap switched off, or this process already under a cap at least as low (`--max-old-space-size` on its command line or
 * in NODE_OPTIONS). Throws on a malformed `KVR_REPLAY_HEAP_MB`.
 * @param heapLimitBytes - This process's heap limit (`v8.getHeapStatistics().heap_size_limit`).
 */
export function replayHeapArgs(
    argv: readonly string[],
    env: NodeJS.ProcessEnv,
    heapLimitBytes: number,
): string[] | undefined {
    if (argv[0] !== 'replay') return undefined;
    const mb = replayHeapMb(env);
    // heap_size_limit is the old generation's cap plus the young generation's room: a little over the cap.
    if (mb === undefined || heapLimitBytes <= (mb + 128) * 1024 * 1024) return undefined;
    return [`--max-old-space-size=${mb}`, `--max-semi-space-size=${REPLAY_SEMI_SPACE_MB}`];
}

/**
 * Runs `kvr replay` again in a child process with `--max-old-space-size`, when the cap is on and this process has a
 * higher one; returns undefined when this process should run the replay itself. The child shares stdin, stdout and
 * stderr; its exit status becomes ours (a signal that ended it ends us the same way).
 */
export function rerunUnderHeapCap(script: string, argv: readonly string[]): Promise<number> | undefined {
    let options: string[] | undefined;
    try {
        options = replayHeapArgs(argv, process.env, getHeapStatistics().heap_size_limit);
    } catch (err) {
        process.stderr.write(`kvr: ${err instanceof Error ? err.message : String(err)}\n`);
        return Promise.resolve(2); // bad configuration (help.ts EXIT_CODES)
    }
    if (options === undefined) return undefined;
    const child = spawn(process.execPath, [...process.execArgv, ...options, script, ...argv], { stdio: 'inherit' });
    // Ctrl-C reaches the child too (same process group): wait for it to finish rather than leave it orphaned.
    const forward = (signal: NodeJS.Signals): void => {
        child.kill(signal);
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    return new Promise((resolve) => {
        child.on('error', (err) => {
            process.stderr.write(`kvr: could not start the replay process: ${err.message}\n`);
            resolve(1);
        });
        child.on('exit', (code, signal) => {
            process.off('SIGINT', forward);
            process.off('SIGTERM', forward);
            if (signal !== null) {
                process.kill(process.pid, signal);
                return;
            }
            resolve(code ?? 1);
        });
    });
}
