import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { main } from '../../shared/cli/kvr';

export const REPO = join(__dirname, '..', '..');

class Capture extends Writable {
    text = '';
    override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
        this.text += chunk.toString();
        done();
    }
}

export interface CliRun {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

/** Runs `kvr` in-process with captured stdout and stderr. */
export async function runKvr(...argv: string[]): Promise<CliRun> {
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await main(argv, { stdout, stderr });
    return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Runs the built `kvr` binary (dist/, built by the jest global setup) as a child process. */
export function runKvrBinary(argv: readonly string[], env?: NodeJS.ProcessEnv): Promise<CliRun> {
    return new Promise((resolve) => {
        execFile(
            process.execPath,
            [join(REPO, 'dist/shared/cli/kvr.js'), ...argv],
            { cwd: REPO, maxBuffer: 64 << 20, ...(env === undefined ? {} : { env }) },
            (err, stdout, stderr) => {
                const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
                resolve({ code, stdout, stderr });
            },
        );
    });
}

/** Parses a decision log; fails the test on a line that is not a JSON object. */
export function decisionsOf(jsonl: string): Record<string, unknown>[] {
    return jsonl
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => {
            const v = JSON.parse(l) as unknown;
            if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`not a JSON object: ${l}`);
            return v as Record<string, unknown>;
        });
}
