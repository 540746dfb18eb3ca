// `kvr serve` runs the app's HTTP functions locally: the CMK dependency report (`GET /api/cmk/report`) included.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runServe } from '../shared/cli/serve';

const FIXTURE = join(__dirname, 'fixtures', 'rules', 'cmk-disabled-in-use', 'fires.disable-version-in-use.json');

let outbox: string;
let stop: AbortController;
let served: Promise<number>;
let base: string;

beforeAll(async () => {
    outbox = mkdtempSync(join(tmpdir(), 'kvr-serve-cmk-'));
    stop = new AbortController();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let text = '';
    const ready = new Promise<string>((resolve) => {
        stdout.on('data', (c: Buffer) => {
            text += c.toString();
            const m = /listening on (http:\/\/\S+)/.exec(text);
            if (m !== null && text.includes('serving until interrupted')) resolve(m[1] as string);
        });
    });
    stderr.resume();
    served = runServe(
        ['--port', '0', '--outbox', outbox, '--replay', FIXTURE],
        { stdout, stderr },
        { signal: stop.signal, env: {} },
    );
    base = await ready;
}, 60_000);

afterAll(async () => {
    stop.abort();
    await served;
    rmSync(outbox, { recursive: true, force: true });
});

describe('kvr serve: GET /api/cmk/report', () => {
    it('answers the live report as JSON, from the inventory the replay built', async () => {
        const r = await fetch(`${base}/api/cmk/report`);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toContain('application/json');
        const report = (await r.json()) as { keys: number; rows: { vault: string; key: string; status: string }[] };
        expect(report.keys).toBe(1);
        expect(report.rows.length).toBeGreaterThan(0);
        expect(report.rows.every((row) => row.vault === 'kv-payments-prod' && row.key === 'cmk-storage')).toBe(true);
        expect(report.rows.map((row) => row.status)).toContain('failing');
    });

    it('answers the table with ?format=table, and only GET', async () => {
        const r = await fetch(`${base}/api/cmk/report?format=table`);
        expect(r.status).toBe(200);
        expect(r.headers.get('content-type')).toContain('text/plain');
        expect(await r.text()).toMatch(/^failing {2}kv-payments-prod {2}cmk-storage/m);
        expect((await fetch(`${base}/api/cmk/report`, { method: 'POST' })).status).toBe(405);
    });
});
