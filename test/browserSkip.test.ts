// Where Chromium cannot be had, the browser tests are skipped loudly: titles that name Chromium, counted as skipped,
// and one warning with the reason at the end of the run. Never a silent pass. Runs jest on the browser smoke test with
// the setup's outcome forced to "no Chromium".
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHROMIUM_STATUS_ENV, skippedTitle } from './support/browser';
import { REPO } from './support/cli';
import { tempDir } from './support/tempDirs';

function jest(env: Record<string, string>): Promise<{ code: number; output: string; json: string }> {
    const results = join(tempDir('kvr-browser-skip-'), 'results.json');
    return new Promise((done) => {
        execFile(
            process.execPath,
            [
                join(REPO, 'node_modules/jest/bin/jest.js'),
                '--ci',
                '--colors=false',
                '--json',
                `--outputFile=${results}`,
                'test/browserSupport.test.ts',
            ],
            { cwd: REPO, env: { ...process.env, ...env }, maxBuffer: 16 << 20 },
            (err, stdout, stderr) =>
                done({
                    code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1,
                    output: stdout + stderr,
                    json: readOr(results, `no ${results}; jest said:\n${stdout}${stderr}`),
                }),
        );
    });
}

function readOr(path: string, instead: string): string {
    try {
        return readFileSync(path, 'utf8');
    } catch {
        return instead;
    }
}

describe('browser tests without Chromium', () => {
    it('are reported as skipped, name Chromium, and the run ends with one warning saying why', async () => {
        const reason = '/usr/bin/chromium is missing (forced by test/browserSkip.test.ts)';
        const run = await jest({ [CHROMIUM_STATUS_ENV]: JSON.stringify({ ok: false, reason }) });
        expect(run.code).toBe(0);
        expect(run.output).toContain('test setup: no Chromium: the browser tests will be SKIPPED');
        // Each test is reported as skipped under a title that names Chromium.
        const results = JSON.parse(run.json) as {
            testResults: { assertionResults: { status: string; ancestorTitles: string[] }[] }[];
        };
        const tests = results.testResults.flatMap((r) => r.assertionResults);
        expect(tests.map((t) => [t.status, t.ancestorTitles[0]])).toEqual([
            ['pending', skippedTitle('browser support (headless Chromium via playwright-core)')],
        ]);
        expect(run.output).toMatch(/Tests: +1 skipped, 1 total/);
        expect(run.output).not.toMatch(/[1-9]\d* passed/);
        expect(run.output.split('WARNING: the browser tests were SKIPPED').length - 1).toBe(1);
        expect(run.output).toContain(reason);
        expect(run.output).toMatch(/tests: 0 passed, 0 failed, 1 skipped\n?$/);
    }, 180_000);
});
