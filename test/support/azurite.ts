import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

export interface AzuriteService {
    readonly endpoint: string;
    readonly connectionString: string;
    stop(): Promise<void>;
}

const ACCOUNT = 'devstoreaccount1';
// Azurite's published well-known development key (not a secret).
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/**
 * Starts one Azurite service from the npm devDependency: in memory, telemetry off, on a port the OS picks. Resolves
 * once Azurite says where it listens.
 */
export function startAzurite(service: 'blob' | 'table'): Promise<AzuriteService> {
    const bin = join(__dirname, '..', '..', 'node_modules', '.bin', `azurite-${service}`);
    const args = [
        '--inMemoryPersistence',
        '--disableTelemetry',
        '--skipApiVersionCheck',
        `--${service}Host`,
        '127.0.0.1',
        `--${service}Port`,
        '0',
    ];
    if (service === 'blob') args.push('--extentMemoryLimit', '256');
    const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    return new Promise((resolve, reject) => {
        let output = '';
        const timer = setTimeout(() => {
            child.kill();
            reject(new Error(`azurite-${service} did not start within 30 s: ${output}`));
        }, 30_000);
        const onData = (chunk: Buffer): void => {
            output += chunk.toString();
            const m = /listen(?:s|ing) (?:on|at) (http:\/\/[\d.]+:(\d+))/.exec(output);
            if (m === null) return;
            clearTimeout(timer);
            child.stdout?.off('data', onData);
            const endpoint = `${m[1] as string}/${ACCOUNT}`;
            const key = service === 'blob' ? 'BlobEndpoint' : 'TableEndpoint';
            resolve({
                endpoint,
                connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};${key}=${endpoint};`,
                stop: () =>
                    new Promise<void>((done) => {
                        if (child.exitCode !== null) return done();
                        child.once('exit', () => done());
                        child.kill();
                    }),
            });
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', (c: Buffer) => {
            output += c.toString();
        });
        child.once('error', (err) => {
            clearTimeout(timer);
            reject(err);
        });
        child.once('exit', (code) => {
            clearTimeout(timer);
            reject(new Error(`azurite-${service} exited with ${String(code)}: ${output}`));
        });
    });
}
