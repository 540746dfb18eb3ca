import { eachBounded } from '../../shared/core/bounded';

describe('eachBounded', () => {
    it('returns the results in the order of the items, with at most `limit` calls at once', async () => {
        let running = 0;
        let most = 0;
        const out = await eachBounded([5, 1, 4, 2, 3], 2, async (n) => {
            running++;
            most = Math.max(most, running);
            await new Promise((r) => setTimeout(r, n));
            running--;
            return n * 10;
        });
        expect(out).toEqual([50, 10, 40, 20, 30]);
        expect(most).toBe(2);
    });

    it('after a failure starts nothing more, waits for the calls in flight, then throws the first failure', async () => {
        const started: number[] = [];
        let slowEnded = false;
        const run = eachBounded([0, 1, 2, 3, 4], 2, async (i) => {
            started.push(i);
            if (i === 0) {
                await new Promise((r) => setTimeout(r, 20));
                slowEnded = true;
                return i;
            }
            throw new Error(`item ${i}`);
        });
        await expect(run).rejects.toThrow('item 1');
        expect(slowEnded).toBe(true);
        expect(started).toEqual([0, 1]);
    });

    it('runs nothing for no items', async () => {
        await expect(eachBounded([], 4, () => Promise.reject(new Error('never')))).resolves.toEqual([]);
    });
});
