// The short form of the fault-injection suite (`npm run faults` runs the full one): every row, a few rounds of two
// concurrent processors each; all four counts 0 and every injected fault exercised. See harness.ts for how each
// count is computed.
import { formatTable, type Harness, ROWS, type RunResult, startHarness } from './harness';

const ROUNDS = 3;

let harness: Harness;
let run: RunResult;
beforeAll(async () => {
    harness = await startHarness();
    run = await harness.runRows(ROWS, ROUNDS, 12);
    process.stdout.write(`\n${formatTable(run.rows)}\n`);
}, 600_000);
afterAll(async () => {
    await harness.close();
});

describe('fault injection (short form): no silent open vault, no silent loss, no duplicate write, no escape', () => {
    it('every row ran every round, with its fault exercised', () => {
        expect(run.rows.map((r) => [r.row, r.rounds, r.notExercised])).toEqual(ROWS.map((r) => [r.name, ROUNDS, 0]));
    });

    it('no exception reached the process', () => {
        expect(run.processUncaught).toBe(0);
    });

    it.each(ROWS.map((r) => [r.name]))('%s: all four counts are 0', (name) => {
        const r = run.rows.find((x) => x.row === name);
        expect({
            nonCompliantSilent: r?.nonCompliantSilent,
            lostSilent: r?.lostSilent,
            duplicateWrites: r?.duplicateWrites,
            uncaught: r?.uncaught,
            notes: r?.notes,
        }).toEqual({ nonCompliantSilent: 0, lostSilent: 0, duplicateWrites: 0, uncaught: 0, notes: [] });
    });
});
