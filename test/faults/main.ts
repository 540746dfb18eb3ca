// `npm run faults -- --rounds 200 [--concurrency 16] [--row <substring>]`: the full fault-injection run (see
// harness.ts for what each count means). Progress goes to stderr, the results table to stdout; exits 1 if any count is
// not 0 or a fault was not exercised.
import { formatTable, ROWS, type RunResult, startHarness } from './harness';

function arg(name: string, fallback: string): string {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : fallback;
}

async function main(): Promise<void> {
    const rounds = Number(arg('rounds', '200'));
    const concurrency = Number(arg('concurrency', '16'));
    const only = arg('row', '');
    const rows = ROWS.filter((r) => only === '' || r.name.includes(only));
    if (
        !Number.isInteger(rounds) ||
        rounds < 1 ||
        !Number.isInteger(concurrency) ||
        concurrency < 1 ||
        rows.length === 0
    ) {
        process.stderr.write(
            'usage: npm run faults -- [--rounds N>=1] [--concurrency N>=1] [--row <part of a row name>]\n',
        );
        process.exitCode = 2;
        return;
    }
    const harness = await startHarness();
    const started = Date.now();
    let run: RunResult;
    try {
        run = await harness.runRows(rows, rounds, concurrency, (done, total) => {
            if (done % 20 === 0 || done === total)
                process.stderr.write(`${done}/${total} rounds, ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
        });
    } finally {
        await harness.close();
    }
    for (const r of run.rows) for (const note of r.notes.slice(0, 5)) process.stderr.write(`${r.row}: ${note}\n`);
    process.stdout.write(`\n${formatTable(run.rows)}\n\n`);
    const total = (f: (r: (typeof run.rows)[number]) => number) => run.rows.reduce((s, r) => s + f(r), 0);
    const counts = [
        total((r) => r.nonCompliantSilent),
        total((r) => r.lostSilent),
        total((r) => r.duplicateWrites),
        total((r) => r.uncaught) + run.processUncaught,
    ];
    process.stdout.write(
        `${total((r) => r.rounds)} rounds (two processors each) over ${run.rows.length} rows in ` +
            `${((Date.now() - started) / 1000).toFixed(0)} s; counts: (a) ${counts[0]} (b) ${counts[1]} (c) ${counts[2]} ` +
            `(d) ${counts[3]} (of which process-level ${run.processUncaught}); rounds whose fault was not exercised: ` +
            `${total((r) => r.notExercised)}\n`,
    );
    if (counts.some((c) => c !== 0) || total((r) => r.notExercised) !== 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
});
