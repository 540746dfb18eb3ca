#!/usr/bin/env node
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { DirectoryQuarantineSink, JsonLinesDecisionSink } from '../adapters/streamSinks';
import { DEFAULT_STATE_TABLE, tableLocationOf, tableStateStoreAt } from '../adapters/tableStateStore';
import { DefaultAzureCredential } from '@azure/identity';
import { replay } from '../app/replay';
import {
    DEFAULT_CONFIG,
    parseResponderConfig,
    parseResponderConfigText,
    type ResponderConfig,
    type VaultTags,
} from '../config/responderConfig';
import { startSimulation } from '../simulation/simulation';
import { ConfigError, ResponderError } from '../core/errors';
import type { QuarantineSink } from '../core/ports';
import { ruleIds } from '../core/rules';
import { formatSummary, ProgressReporter } from './summary';

export interface CliIo {
    readonly stdout: Writable;
    readonly stderr: Writable & { isTTY?: boolean };
}

const USAGE = `Usage:
  kvr replay <file-or-dir>... [--config <file>] [--decisions <out.jsonl>] [--quarantine <dir>]
             [--state <table account URL | storage connection string>] [--state-table <name>]
             [--vaults <inventory.json>]
      Replays captured Key Vault audit logs (Event Hubs bodies, JSON arrays, JSON Lines such as PT1H.json,
      directories, .gz files) through the same pipeline as the Azure Function. Writes the decision log as
      JSON Lines to stdout (or --decisions) and a summary to stderr. Rule state (baselines, windows, finding
      groups) is kept in memory, or in Azure Table Storage with --state (seeds the production baselines).
      --vaults simulates the vaults of an inventory (a JSON array of vaults as vaults.get returns them):
      recorded changes are applied to them, remediations run against them through the real ARM client, and
      the log ends with one "vault-state" line per vault. Without --vaults nothing is read or changed.
  kvr help
Exit status: 0 when the input was processed (even with rejected records), 2 for bad usage, an unreadable
path or an invalid config, 1 for an unexpected failure.`;

class UsageError extends ResponderError {
    constructor(message: string) {
        super('USAGE.INVALID', message);
    }
}

/** Reads a text file named on the command line; a failure is one clear line. */
async function readTextFile(path: string, what: string): Promise<string> {
    try {
        return await readFile(path, 'utf8');
    } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new ResponderError(
            'INPUT.UNREADABLE',
            `cannot read ${what} '${path}': ${e.code === 'ENOENT' ? 'no such file' : e.message}`,
        );
    }
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
    const text = await readTextFile(path, what);
    try {
        return JSON.parse(text) as unknown;
    } catch (err) {
        throw new ResponderError('INPUT.UNREADABLE', `${what} '${path}' is not valid JSON: ${(err as Error).message}`);
    }
}

async function loadConfigFile(path: string | undefined, tags?: VaultTags): Promise<ResponderConfig> {
    if (path === undefined)
        return tags === undefined ? DEFAULT_CONFIG : parseResponderConfig({}, ruleIds, 'default', tags);
    const text = await readTextFile(path, 'config');
    return parseResponderConfigText(text, ruleIds, path, tags);
}

async function openOutput(path: string): Promise<Writable> {
    const out = createWriteStream(path, { flags: 'w' });
    await new Promise<void>((resolve, reject) => {
        out.once('open', () => resolve());
        out.once('error', (err) =>
            reject(new ResponderError('INPUT.UNREADABLE', `cannot write '${path}': ${err.message}`)),
        );
    });
    return out;
}

async function closeOutput(out: Writable): Promise<void> {
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

function parseReplayArgs(args: readonly string[]) {
    return parseArgs({
        args: [...args],
        allowPositionals: true,
        strict: true,
        options: {
            config: { type: 'string' },
            decisions: { type: 'string' },
            quarantine: { type: 'string' },
            state: { type: 'string' },
            vaults: { type: 'string' },
            'state-table': { type: 'string' },
        },
    });
}

async function runReplay(args: readonly string[], io: CliIo): Promise<number> {
    let parsed: ReturnType<typeof parseReplayArgs>;
    try {
        parsed = parseReplayArgs(args);
    } catch (err) {
        throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (positionals.length === 0) throw new UsageError('replay needs at least one file or directory');
    const inventory = values.vaults === undefined ? undefined : await readJsonFile(values.vaults, 'vault inventory');
    const simulation = inventory === undefined ? undefined : await startSimulation(inventory, values.vaults as string);
    const config = await loadConfigFile(values.config, simulation?.tags).catch(async (err: unknown) => {
        await simulation?.close();
        throw err;
    });
    if (values['state-table'] !== undefined && values.state === undefined)
        throw new UsageError('--state-table needs --state');
    const store =
        values.state === undefined
            ? undefined
            : tableStateStoreAt(
                  tableLocationOf(values.state, values['state-table'] ?? DEFAULT_STATE_TABLE),
                  () => new DefaultAzureCredential(),
              );
    const out = values.decisions === undefined ? io.stdout : await openOutput(values.decisions);
    // Without --quarantine the rejected items stay where they are, in the input files: each `rejected` line names
    // its file and line. With it, they are also copied whole into <dir>/quarantine.jsonl.
    const quarantine: QuarantineSink =
        values.quarantine === undefined
            ? { put: () => Promise.resolve() }
            : new DirectoryQuarantineSink(values.quarantine);
    const started = performance.now();
    const progress = new ProgressReporter(io.stderr, started);
    try {
        const result = await replay({
            inputs: positionals,
            config,
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
    } finally {
        await simulation?.close();
        if (out !== io.stdout) await closeOutput(out);
    }
    return 0;
}

/** Runs the CLI; returns the exit status. Never calls process.exit, so tests can run it in-process. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
    const [command, ...rest] = argv;
    try {
        switch (command) {
            case 'replay':
                return await runReplay(rest, io);
            case 'help':
            case '--help':
            case '-h':
                io.stdout.write(`${USAGE}\n`);
                return 0;
            case undefined:
                io.stderr.write(`${USAGE}\n`);
                return 2;
            default:
                throw new UsageError(`unknown command '${command}' (try 'kvr help')`);
        }
    } catch (err) {
        if (err instanceof ConfigError || err instanceof ResponderError) {
            io.stderr.write(`kvr: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
            return 2;
        }
        io.stderr.write(
            `kvr: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
        );
        return 1;
    }
}

if (require.main === module) {
    main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }).then(
        (code) => {
            process.exitCode = code;
        },
        (err: unknown) => {
            process.stderr.write(`kvr: ${String(err)}\n`);
            process.exitCode = 1;
        },
    );
}
