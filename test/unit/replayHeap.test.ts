import { DEFAULT_REPLAY_HEAP_MB, replayHeapArgs, replayHeapMb } from '../../shared/cli/replayHeap';
import { runKvr, runKvrBinary } from '../support/cli';

const GB4 = 4 * 1024 ** 3;

describe('kvr replay heap cap (KVR_REPLAY_HEAP_MB)', () => {
    it('reads the cap: 1024 MB by default, 0 switches it off, anything but a whole number is refused', () => {
        expect(replayHeapMb({})).toBe(DEFAULT_REPLAY_HEAP_MB);
        expect(DEFAULT_REPLAY_HEAP_MB).toBe(1024);
        expect(replayHeapMb({ KVR_REPLAY_HEAP_MB: ' ' })).toBe(1024);
        expect(replayHeapMb({ KVR_REPLAY_HEAP_MB: '512' })).toBe(512);
        expect(replayHeapMb({ KVR_REPLAY_HEAP_MB: '0' })).toBeUndefined();
        for (const bad of ['x', '-1', '1.5', '1e400'])
            expect(() => replayHeapMb({ KVR_REPLAY_HEAP_MB: bad })).toThrow(
                /KVR_REPLAY_HEAP_MB must be a whole number/,
            );
    });

    it('runs only a replay again, and only when this process has a higher heap limit than the cap', () => {
        expect(replayHeapArgs(['replay', 'x.json'], {}, GB4)).toEqual([
            '--max-old-space-size=1024',
            '--max-semi-space-size=4',
        ]);
        expect(replayHeapArgs(['replay'], { KVR_REPLAY_HEAP_MB: '300' }, GB4)).toEqual([
            '--max-old-space-size=300',
            '--max-semi-space-size=4',
        ]);
        expect(replayHeapArgs(['serve'], {}, GB4)).toBeUndefined();
        expect(replayHeapArgs([], {}, GB4)).toBeUndefined();
        expect(replayHeapArgs(['replay'], { KVR_REPLAY_HEAP_MB: '0' }, GB4)).toBeUndefined();
        // Already capped at least as low (node --max-old-space-size=1024: a limit of about 1,070 MB).
        expect(replayHeapArgs(['replay'], {}, 1070 * 1024 * 1024)).toBeUndefined();
        expect(replayHeapArgs(['replay'], {}, 512 * 1024 * 1024)).toBeUndefined();
    });

    it('the built binary replays in a capped child with the same output and exit status as in process', async () => {
        const inProcess = await runKvr('replay', 'test/fixtures/keyvault-audit');
        const binary = await runKvrBinary(['replay', 'test/fixtures/keyvault-audit']);
        expect(inProcess.code).toBe(3); // some fixtures are malformed on purpose
        expect(binary.code).toBe(3);
        expect(binary.stdout).toBe(inProcess.stdout);
        expect(binary.stderr).toMatch(/exit status 3/);
    }, 60_000);

    it('the built binary refuses a malformed KVR_REPLAY_HEAP_MB with exit status 2', async () => {
        const run = await runKvrBinary(['replay', 'test/fixtures/keyvault-audit'], {
            ...process.env,
            KVR_REPLAY_HEAP_MB: 'lots',
        });
        expect(run.code).toBe(2);
        expect(run.stderr).toMatch(/KVR_REPLAY_HEAP_MB must be a whole number of MB \(0: no cap\), got 'lots'/);
        expect(run.stdout).toBe('');
    }, 60_000);
});
