import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { TableClient } from '@azure/data-tables';

export interface AzuriteService {
    readonly endpoint: string;
    readonly connectionString: string;
    /** The emulator's process (the benchmark reads its CPU time from /proc). */
    readonly pid: number | undefined;
    stop(): Promise<void>;
}

const ACCOUNT = 'devstoreaccount1';
// Azurite's published well-known development key (not a secret).
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const BIN = join(__dirname, '..', '..', 'node_modules', '.bin');

/** A TCP port that was free a moment ago (azurite-table does not report the port it picks for `--tablePort 0`). */
function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            const port = typeof address === 'object' && address !== null ? address.port : 0;
            server.close(() => resolve(port));
        });
    });
}

/**
 * Starts one Azurite service from the npm devDependency: in memory, telemetry off, on a free loopback port. Resolves
 * once Azurite says it is up; tries another port if the first one was taken meanwhile.
 */
export async function startAzurite(service: 'blob' | 'table' | 'queue'): Promise<AzuriteService> {
    for (let attempt = 1; ; attempt++) {
        try {
            return await launch(service, await freePort());
        } catch (err) {
            if (attempt >= 3) throw err;
        }
    }
}

function launch(service: 'blob' | 'table' | 'queue', port: number): Promise<AzuriteService> {
    const args = ['--inMemoryPersistence', '--disableTelemetry', '--skipApiVersionCheck'];
    args.push(`--${service}Host`, '127.0.0.1', `--${service}Port`, String(port));
    if (service === 'blob') args.push('--extentMemoryLimit', '256');
    const child: ChildProcess = spawn(join(BIN, `azurite-${service}`), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    return new Promise((resolve, reject) => {
        let output = '';
        const fail = (err: Error): void => {
            clearTimeout(timer);
            child.kill();
            reject(err);
        };
        const timer = setTimeout(
            () => fail(new Error(`azurite-${service} did not start within 30 s: ${output}`)),
            30_000,
        );
        const onData = (chunk: Buffer): void => {
            output += chunk.toString();
            if (!/successfully (?:listens|started)/.test(output)) return;
            clearTimeout(timer);
            child.stdout?.off('data', onData);
            child.removeAllListeners('exit');
            const endpoint = `http://127.0.0.1:${port}/${ACCOUNT}`;
            const key = service === 'blob' ? 'BlobEndpoint' : service === 'queue' ? 'QueueEndpoint' : 'TableEndpoint';
            resolve({
                endpoint,
                connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};${key}=${endpoint};`,
                pid: child.pid,
                stop: () =>
                    new Promise<void>((done) => {
                        if (child.exitCode !== null || child.signalCode !== null) return done();
                        child.once('exit', () => done());
                        child.kill();
                    }),
            });
        };
        child.stdout?.on('data', onData);
        child.stderr?.on('data', (c: Buffer) => {
            output += c.toString();
        });
        child.once('error', (err) => fail(err));
        child.once('exit', (code) => fail(new Error(`azurite-${service} exited with ${String(code)}: ${output}`)));
    });
}

/**
 * Azurite (3.35 to 3.37 at least) joins the chunks of a request body as strings (`segments.join("")` in
 * `readRequestIntoText`, dist/src/table/generated/utils/serializer.js), so a multi-byte UTF-8 character that falls
 * between two chunks of the socket is stored as two U+FFFD: the emulator corrupts non-ASCII text at random (seen in
 * test/integration/boundedState.test.ts). Table Storage itself reads the body whole. Test clients therefore send JSON
 * bodies with every non-ASCII character escaped (`\u00e9`): the same JSON to any parser, in ASCII. Non-ASCII can only
 * stand inside JSON strings, so the escape is valid wherever it applies, transaction (multipart) bodies included.
 */
export const asciiJsonBodies: PipelinePolicy = {
    name: 'asciiJsonBodies',
    sendRequest(request, next) {
        if (typeof request.body === 'string')
            request.body = request.body.replace(
                /[\u0080-\uffff]/g,
                (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
            );
        return next(request);
    },
};

/** An Azurite Table service for the calling test file (see {@link useAzuriteTables}). */
export interface AzuriteTables {
    readonly connectionString: string;
    /** A client of the named table. */
    client(name: string): TableClient;
    /** A table name no other test of the file used: the prefix and a counter. */
    newName(): string;
}

/**
 * Starts an Azurite Table service in the calling file's `beforeAll` and stops it in its `afterAll`; what it returns is
 * usable from the tests and hooks that run in between.
 */
export function useAzuriteTables(prefix: string): AzuriteTables {
    let azurite: AzuriteService | undefined;
    let tables = 0;
    beforeAll(async () => {
        azurite = await startAzurite('table');
    });
    afterAll(async () => {
        await azurite?.stop();
    });
    const started = (): AzuriteService => {
        if (azurite === undefined) throw new Error('Azurite is not started yet (call from a test or hook)');
        return azurite;
    };
    return {
        get connectionString() {
            return started().connectionString;
        },
        client: (name) =>
            TableClient.fromConnectionString(started().connectionString, name, {
                allowInsecureConnection: true,
                additionalPolicies: [{ policy: asciiJsonBodies, position: 'perCall' }],
            }),
        newName: () => `${prefix}${++tables}`,
    };
}
