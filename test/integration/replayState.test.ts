import { join } from 'node:path';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { decisionsOf, REPO, runKvr } from '../support/cli';

const SAMPLE = join(REPO, 'samples/sample-day.jsonl.gz');
const CONFIG = join(REPO, 'samples/demo-config.json');

const findingsOf = (stdout: string) => decisionsOf(stdout).filter((d) => d.type === 'finding');

describe('replaying a capture twice', () => {
    it('in one run: the second pass adds no finding', async () => {
        const once = await runKvr('replay', SAMPLE, '--config', CONFIG);
        const twice = await runKvr('replay', SAMPLE, SAMPLE, '--config', CONFIG);
        expect(once.code).toBe(0);
        expect(findingsOf(once.stdout).length).toBeGreaterThan(0);
        expect(twice.stdout).toBe(once.stdout);
    });

    describe('against durable state in Table Storage (Azurite)', () => {
        let azurite: AzuriteService;
        beforeAll(async () => {
            azurite = await startAzurite('table');
        });
        afterAll(async () => {
            await azurite.stop();
        });

        it('reports the same findings as in memory, then none on the second run', async () => {
            const inMemory = await runKvr('replay', SAMPLE, '--config', CONFIG);
            const durableRun = () =>
                runKvr(
                    'replay',
                    SAMPLE,
                    '--config',
                    CONFIG,
                    '--state',
                    azurite.connectionString,
                    '--state-table',
                    'seed1',
                );
            const first = await durableRun();
            expect(first.code).toBe(0);
            expect(first.stdout).toBe(inMemory.stdout);
            const second = await durableRun();
            expect(second.code).toBe(0);
            expect(findingsOf(second.stdout)).toEqual([]);
        });

        it('rejects --state-table without --state', async () => {
            const run = await runKvr('replay', SAMPLE, '--state-table', 'x');
            expect(run.code).toBe(2);
            expect(run.stderr).toBe("kvr: --state-table needs --state; see 'kvr replay --help'\n");
        });
    });
});
