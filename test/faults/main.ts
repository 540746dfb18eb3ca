// `npm run faults -- --rounds 200 [--concurrency 4] [--row <substring>]`: the full fault-injection run (see harness.ts
// for what each count means). Prints progress to stderr and the results table to stdout; exits 1 if any count is
// not 0.
import { formatTable, ROWS, type RowResult, startHarness } from './harness';

function arg(name: string, fallback: string): string {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

async function main(): Promise<void> {
    const rounds = Number(arg('rounds', '200'));
    const concurrency = Number(arg('concurrency', '4'));
    const only = arg('row', '');
    if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
        process.stderr.write('usage: npm run faults -- [--rounds N>=1] [--concurrency N>=1] [--row substring]\n');
        process.exitCode = 2;
        return;
    }
    const rows = ROWS.filter((r) => only === '' || r.name.includes(only));
    const harness = await startHarness();
    const results: RowResult[] = [];
    const started = Date.now();
    try {
        for (const [i, row] of rows.entries()) {
            const t = Date.now();
            const r = await harness.runRow(row, rounds, concurrency, (done) => {
                if (done % 10 === 0 || done === rounds)
                    process.stderr.write(`\r[${i + 1}/${rows.length}] ${row.name}: ${done}/${rounds}   `);
            });
            process.stderr.write(
                `\r[${i + 1}/${rows.length}] ${row.name}: ${r.rounds} rounds in ${((Date.now() - t) / 1000).toFixed(1)} s\n`,
            );
            for (const note of r.notes.slice(0, 5)) process.stderr.write(`    ${note}\n`);
            results.push(r);
        }
    } finally {
        await harness.close();
    }
    process.stdout.write(`\n${formatTable(results)}\n\n`);
    const total = (f: (r: RowResult) => number) => results.reduce((s, r) => s + f(r), 0);
    const counts = [
        total((r) => r.nonCompliantSilent),
        total((r) => r.lostSilent),
        total((r) => r.duplicateWrites),
        total((r) => r.uncaught),
    ];
    process.stdout.write(
        `${total((r) => r.rounds)} rounds over ${results.length} rows in ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
            `counts (a) ${counts[0]} (b) ${counts[1]} (c) ${counts[2]} (d) ${counts[3]}\n`,
    );
    if (counts.some((c) => c !== 0)) process.exitCode = 1;
}

main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
});
