#!/usr/bin/env node
import { DirectoryQuarantineSink, JsonLinesDecisionSink } from '../adapters/streamSinks';
import { replay } from '../app/replay';
import { startSimulation } from '../simulation/simulation';
import { ConfigError, ResponderError } from '../core/errors';
import type { QuarantineSink } from '../core/ports';
import { formatSummary, ProgressReporter } from './summary';
import {
    type CliIo,
    closeOutput,
    loadConfigFile,
    openOutput,
    parseCommandArgs,
    readJsonFile,
    tableStateOption,
    UsageError,
} from './common';

export type { CliIo } from './common';
import { runCmkReport } from './cmkReport';
import { runConsume } from './consume';
import { runPosture } from './posture';
import { checkedPublicUrl, outboxSummary, runServe } from './serve';
import { DEFAULT_PUBLIC_URL, DEFAULT_SIGNING_KEY, errorsOnly, localAlerting } from './localAlerting';
import { runSend } from './send';
import { runDoctorCommand } from './doctor';

const USAGE = `Usage:
  kvr replay <file-or-dir>... [--config <file>] [--decisions <out.jsonl>] [--quarantine <dir>]
             [--state <table account URL | storage connection string>] [--state-table <name>]
             [--vaults <inventory.json>] [--outbox <dir> [--public-url <url>] [--signing-key <pem>]]
      Replays captured Key Vault audit logs (Event Hubs bodies, JSON arrays, JSON Lines such as PT1H.json,
      directories, .gz files) through the same pipeline as the Azure Function. Writes the decision log as
      JSON Lines to stdout (or --decisions) and a summary to stderr. Rule state (baselines, windows, finding
      groups) is kept in memory, or in Azure Table Storage with --state (seeds the production baselines).
      --vaults simulates the vaults of an inventory (a JSON array of vaults as vaults.get returns them):
      recorded changes are applied to them, remediations run against them through the real ARM client, and
      the log ends with one "vault-state" line per vault. Without --vaults nothing is read or changed.
      --outbox groups findings into incidents and writes each notification (Teams card JSON, Graph sendMail
      request) to <dir>, one file each, with acknowledge/undo links to --public-url (default
      http://localhost:7071, where \`kvr serve\` listens) signed by a development key (--signing-key, default
      .kvr/dev-signing-key.pem, created on first use).
  kvr cmk-report [--config <file>] [--decisions <out.jsonl>] [--json] <capture>...
  kvr cmk-report --state <table> [--state-table <name>] [--json]
      The customer-managed key dependency report: which services (managed identities, trusted services, apps) use
      which key versions, with last success, last failure and counts; failing ones first. After replaying the
      captures (in-use relative to their newest key use), or from a deployed app's Table state.
  kvr posture --vaults <inventory.json> --keys <key-inventory.json> [--config <file>] [--json]
      The daily CMK posture checks (cmk-app-tier-missing, cmk-weak-key, cmk-no-expiry, cmk-no-rotation-policy,
      disk-encryption-vault-shared) against simulated vaults: each vault the key inventory names (a JSON object
      { "<vault name>": [keys] }) is served by a local Key Vault keys fake and read through the real client.
      Findings as JSON Lines on stdout, a summary on stderr (JSON with --json). See docs/cmk-posture.md.
  kvr serve [--port <n>] [--host <addr>] [--public-url <url>] [--outbox <dir>] [--config <file>]
            [--vaults <inventory.json>] [--state <table>] [--state-table <name>] [--signing-key <pem>]
            [--replay <capture>]... [--tick-seconds <n>]
      Runs the app locally until Ctrl-C: the acknowledge/undo pages under /api/incidents/..., and POST
      /local/events, which runs the Event Hubs handler on the posted body. Notifications go to the outbox
      (default .kvr/outbox) unless KVR_TEAMS_WEBHOOK_URL / KVR_MAIL_SENDER are set. --replay feeds captures
      through first and prints each alert with its acknowledge link. Prints the port it listens on.
  kvr consume [--from-start] [--max-batch-size <n>] [--max-wait-seconds <s>]
      Runs the Function's handler outside Azure Functions: reads the event hub of the app settings (KV_LOGS_*),
      balancing partitions across replicas, checkpoints in KVR_CHECKPOINT_CONTAINER_URL; until Ctrl-C.
  kvr send <capture>... | --synthetic <count> [--seed <n>] [--hub-name <name>] [--rate <events per second>]
      Publishes captured (or generated) Event Hubs bodies to the event hub, one event per item, in batches.
  kvr doctor [--json] [--send-test-notice] [--vault <vault resource id>]... [--timeout-seconds <n>]
      Preflight of a deployed installation from the app settings: one table of checks with a fix for each
      failure (exit 1 when any fails). See kvr doctor --help and docs/doctor.md.
  kvr help
Exit status: 0 when the input was processed (even with rejected records), 2 for bad usage, an unreadable
path or an invalid config, 1 for an unexpected failure.`;

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
    });
    if (positionals.length === 0) throw new UsageError('replay needs at least one file or directory');
    const store = tableStateOption(values.state, values['state-table']);
    const inventory = values.vaults === undefined ? undefined : await readJsonFile(values.vaults, 'vault inventory');
    const simulation = inventory === undefined ? undefined : await startSimulation(inventory, values.vaults as string);
    const config = await loadConfigFile(values.config, simulation?.tags).catch(async (err: unknown) => {
        await simulation?.close();
        throw err;
    });
    const out = values.decisions === undefined ? io.stdout : await openOutput(values.decisions);
    // Without --quarantine the rejected items stay where they are, in the input files: each `rejected` line names
    // its file and line. With it, they are also copied whole into <dir>/quarantine.jsonl.
    const quarantine: QuarantineSink =
        values.quarantine === undefined
            ? { put: () => Promise.resolve() }
            : new DirectoryQuarantineSink(values.quarantine);
    if (values.outbox === undefined && (values['public-url'] ?? values['signing-key']) !== undefined)
        throw new UsageError('--public-url and --signing-key need --outbox');
    const alerting =
        values.outbox === undefined
            ? undefined
            : await localAlerting({
                  config,
                  outbox: values.outbox,
                  publicUrl: checkedPublicUrl(values['public-url'] ?? DEFAULT_PUBLIC_URL),
                  signingKeyPath: values['signing-key'] ?? DEFAULT_SIGNING_KEY,
                  // Replay writes files only: the environment's webhook or mailbox is not used.
                  env: {},
                  log: errorsOnly(io.stderr),
              });
    const started = performance.now();
    const progress = new ProgressReporter(io.stderr, started);
    try {
        const result = await replay({
            inputs: positionals,
            config,
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
        if (alerting?.outbox !== undefined) io.stderr.write(outboxSummary(alerting.outbox));
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
            case 'cmk-report':
                return await runCmkReport(rest, io);
            case 'posture':
                return await runPosture(rest, io);
            case 'serve':
                return await runServe(rest, io);
            case 'consume':
                return await runConsume(rest, io);
            case 'send':
                return await runSend(rest, io);
            case 'doctor':
                return await runDoctorCommand(rest, io);
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
