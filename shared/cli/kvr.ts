#!/usr/bin/env node
import { DirectoryQuarantineSink, JsonLinesDecisionSink } from '../adapters/streamSinks';
import { replay } from '../app/replay';
import { DAMAGED_INPUT, isDamagedInput } from '../adapters/captureReader';
import type { QuarantineSink } from '../core/ports';
import { formatSummary, ProgressReporter } from './summary';
import {
    type CliIo,
    closeOutput,
    loadConfigFile,
    openOutput,
    parseCommandArgs,
    readJsonFile,
    exitStatusOf,
    formatError,
    packageVersion,
    tableStateOption,
    UsageError,
    wantsHelp,
} from './common';

export type { CliIo } from './common';
import { commandHelp, EXIT, globalHelp } from './help';

/** `--batch-size`: bodies (or bare records) per replayed batch; undefined leaves the default to replay. */
function batchSizeOption(value: string | undefined): number | undefined {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < 1 || n > 10_000)
        throw new UsageError(`--batch-size must be a whole number from 1 to 10000, not '${value}'`);
    return n;
}
import { rerunUnderHeapCap } from './replayHeap';

async function runReplay(args: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs(args, {
        config: { type: 'string' },
        decisions: { type: 'string' },
        quarantine: { type: 'string' },
        state: { type: 'string' },
        vaults: { type: 'string' },
        'state-table': { type: 'string' },
        outbox: { type: 'string' },
        'public-url': { type: 'string' },
        'signing-key': { type: 'string' },
        'batch-size': { type: 'string' },
    });
    if (positionals.length === 0) throw new UsageError('replay needs at least one file or directory');
    const batchSize = batchSizeOption(values['batch-size']);
    const store = await tableStateOption(values.state, values['state-table']);
    const inventory = values.vaults === undefined ? undefined : await readJsonFile(values.vaults, 'vault inventory');
    const simulation =
        inventory === undefined
            ? undefined
            : await (await import('../simulation/simulation.js')).startSimulation(inventory, values.vaults as string);
    const config = await loadConfigFile(values.config, simulation?.tags).catch(async (err: unknown) => {
        await simulation?.close();
        throw err;
    });
    const out = values.decisions === undefined ? io.stdout : await openOutput(values.decisions);
    // Without --quarantine the rejected items stay where they are, in the input files: each `rejected` line names
    // its file and line. With it, they are also copied whole into <dir>/quarantine.jsonl.
    const keep: QuarantineSink =
        values.quarantine === undefined
            ? { put: () => Promise.resolve() }
            : new DirectoryQuarantineSink(values.quarantine);
    // Damaged or unreadable files are rejected items too; they are also named at the end of the summary.
    const damaged: string[] = [];
    const quarantine: QuarantineSink = {
        put: (items) => {
            for (const it of items)
                if (isDamagedInput(it.reason))
                    damaged.push(`${it.source ?? '?'}: ${it.reason.slice(DAMAGED_INPUT.length)}`);
            return keep.put(items);
        },
    };
    if (values.outbox === undefined && (values['public-url'] ?? values['signing-key']) !== undefined)
        throw new UsageError('--public-url and --signing-key need --outbox');
    // The alerting, link-signing and mail modules load only with --outbox (so does the SDK behind them).
    const outbox =
        values.outbox === undefined
            ? undefined
            : { dir: values.outbox, local: await import('./localAlerting.js'), serve: await import('./serve.js') };
    const alerting =
        outbox === undefined
            ? undefined
            : await outbox.local.localAlerting({
                  config,
                  outbox: outbox.dir,
                  publicUrl: outbox.serve.checkedPublicUrl(values['public-url'] ?? outbox.local.DEFAULT_PUBLIC_URL),
                  signingKeyPath: values['signing-key'] ?? outbox.local.DEFAULT_SIGNING_KEY,
                  // Replay writes files only: the environment's webhook or mailbox is not used.
                  env: {},
                  log: outbox.local.errorsOnly(io.stderr),
              });
    const started = performance.now();
    const progress = new ProgressReporter(io.stderr, started);
    try {
        const result = await replay({
            inputs: positionals,
            config,
            ...(batchSize === undefined ? {} : { batchSize }),
            ...(alerting === undefined ? {} : { alerting: alerting.options }),
            ...(store === undefined ? {} : { store }),
            ...(simulation === undefined ? {} : { simulation }),
            sinks: {
                decisions: new JsonLinesDecisionSink(out),
                quarantine,
            },
            onProgress: (p) => progress.update(p),
        });
        progress.clear();
        io.stderr.write(
            formatSummary(result, (performance.now() - started) / 1000, {
                decisions: values.decisions ?? 'stdout',
                quarantine: values.quarantine,
            }),
        );
        if (alerting?.outbox !== undefined && outbox !== undefined)
            io.stderr.write(outbox.serve.outboxSummary(alerting.outbox));
        return withProblems(result.stats.rejected, damaged, io);
    } finally {
        await simulation?.close();
        if (out !== io.stdout) await closeOutput(out);
    }
}

/**
 * The exit status of a run that processed its inputs: 0, or 3 ("processed with problems") when some were rejected,
 * with a closing line that says so.
 */
function withProblems(rejected: number, damaged: readonly string[], io: CliIo): number {
    if (rejected === 0) return EXIT.ok;
    const lines = [
        `kvr replay: processed with problems: ${rejected} input(s) rejected (the "rejected" lines of the decision log name each one); exit status ${EXIT.problems}`,
        ...damaged.map((d) => `  damaged file ${d}`),
    ];
    io.stderr.write(`${lines.join('\n')}\n`);
    return EXIT.problems;
}

/** Runs the CLI; returns the exit status (help.ts EXIT_CODES). Never calls process.exit, so tests can run it in-process. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
    const [command, ...rest] = argv;
    if (command !== undefined && wantsHelp(rest)) {
        const help = commandHelp(command);
        if (help !== undefined) {
            io.stdout.write(`${help}\n`);
            return EXIT.ok;
        }
    }
    try {
        switch (command) {
            case 'replay':
                return await runReplay(rest, io);
            // Each command's module (and the Azure SDKs behind it) loads when that command runs: `kvr` starts
            // without them (about 50 MB of RSS and a second less; docs/benchmark.md).
            case 'cmk-report':
                return await (await import('./cmkReport.js')).runCmkReport(rest, io);
            case 'posture':
                return await (await import('./posture.js')).runPosture(rest, io);
            case 'serve':
                return await (await import('./serve.js')).runServe(rest, io);
            case 'consume':
                return await (await import('./consume.js')).runConsume(rest, io);
            case 'send':
                return await (await import('./send.js')).runSend(rest, io);
            case 'doctor':
                return await (await import('./doctor.js')).runDoctorCommand(rest, io);
            case 'help':
            case '--help':
            case '-h': {
                const topic = rest[0];
                if (topic === undefined) {
                    io.stdout.write(`${globalHelp()}\n`);
                    return EXIT.ok;
                }
                const help = commandHelp(topic);
                if (help === undefined) throw new UsageError(`no command '${topic}': 'kvr help' lists the commands`);
                io.stdout.write(`${help}\n`);
                return EXIT.ok;
            }
            case '--version':
                io.stdout.write(`${packageVersion()}\n`);
                return EXIT.ok;
            case undefined:
                io.stderr.write(`${globalHelp()}\n`);
                return EXIT.usage;
            default:
                throw new UsageError(
                    command.startsWith('-')
                        ? `unknown option '${command}' before the command: 'kvr help' lists the commands`
                        : `unknown command '${command}': 'kvr help' lists the commands`,
                );
        }
    } catch (err) {
        const code = exitStatusOf(err);
        io.stderr.write(
            formatError(
                err,
                code === EXIT.usage && command !== undefined && commandHelp(command) !== undefined
                    ? command
                    : undefined,
                process.env.KVR_DEBUG === '1',
            ),
        );
        return code;
    }
}

if (require.main === module) {
    // `kvr replay` runs under a heap cap (KVR_REPLAY_HEAP_MB, see ./replayHeap.ts): in a child process if this one has none.
    const argv = process.argv.slice(2);
    (rerunUnderHeapCap(__filename, argv) ?? main(argv, { stdout: process.stdout, stderr: process.stderr })).then(
        (code) => {
            process.exitCode = code;
        },
        (err: unknown) => {
            process.stderr.write(`kvr: ${String(err)}\n`);
            process.exitCode = 1;
        },
    );
}
