// The short form of the fault-injection suite (`npm run faults` runs the full one): every row a few rounds, two
// processors each, and all four counts 0. See harness.ts for how each count is computed.
import { formatTable, type Harness, ROWS, type RowResult, startHarness } from './harness';

const ROUNDS = 3;

let harness: Harness;
const results: RowResult[] = [];
beforeAll(async () => {
    harness = await startHarness();
});
afterAll(async () => {
    await harness.close();
    process.stdout.write(`\n${formatTable(results)}\n`);
});

describe('fault injection (short form): no silent open vault, no silent loss, no duplicate write, no escape', () => {
    it.each(ROWS.map((r) => [r.name, r] as const))(
        '%s',
        async (_name, row) => {
            const r = await harness.runRow(row, ROUNDS, ROUNDS);
            results.push(r);
            expect(r.rounds).toBe(ROUNDS);
            expect({
                nonCompliantSilent: r.nonCompliantSilent,
                lostSilent: r.lostSilent,
                duplicateWrites: r.duplicateWrites,
                uncaught: r.uncaught,
                notes: r.notes,
            }).toEqual({ nonCompliantSilent: 0, lostSilent: 0, duplicateWrites: 0, uncaught: 0, notes: [] });
        },
        180_000,
    );
});
