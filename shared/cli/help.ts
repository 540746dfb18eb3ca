// The help texts of `kvr`: one entry per command. Adding a command is one entry in COMMAND_HELP (and its case in
// kvr.ts); `kvr help`, `kvr <command> --help`, `kvr help <command>` and docs/cli.md are built from or checked
// against these entries.

export interface CommandHelp {
    /** One line for the command list of `kvr help`. */
    readonly summary: string;
    /** Usage lines, each starting with `kvr <command>`. */
    readonly usage: readonly string[];
    /** What the command does, a few sentences. */
    readonly description: string;
    /** `[spelling, explanation]` per option. */
    readonly options: readonly (readonly [string, string])[];
    /** Command lines that work from a clone (after `npm ci`), each starting with `kvr `. */
    readonly examples: readonly string[];
}

/** How the docs and the help spell a kvr command line from a clone of the repository (`npm ci` builds dist/). */
export const INVOCATION = 'npx kvr';

/** The exit statuses of every command (docs/cli.md has the same table, checked by a test). */
export const EXIT_CODES: readonly (readonly [number, string])[] = [
    [0, 'success: every input was processed'],
    [1, 'runtime failure: a service or endpoint could not be reached, or an unexpected error'],
    [2, 'bad usage or config, found before any output: unknown option, malformed value, missing or invalid file'],
    [3, 'processed with problems: the run completed but some inputs were rejected (damaged file, malformed record)'],
];

export const EXIT = { ok: 0, failure: 1, usage: 2, problems: 3 } as const;

const STATE_OPTIONS: readonly (readonly [string, string])[] = [
    [
        '--state <url | connection string>',
        'keep rule state in Azure Table Storage: an https:// table account URL (signed in with DefaultAzureCredential) ' +
            'or a storage connection string (e.g. UseDevelopmentStorage=true for Azurite)',
    ],
    ['--state-table <name>', 'the table of --state (default kvrstate)'],
];

export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
    replay: {
        summary: 'replay captured Key Vault audit logs through the responder pipeline',
        usage: [
            'kvr replay <file-or-dir>... [--config <file>] [--decisions <out.jsonl>] [--quarantine <dir>]',
            '           [--state <url | connection string>] [--state-table <name>] [--vaults <inventory.json>]',
            '           [--outbox <dir> [--public-url <url>] [--signing-key <pem>]] [--batch-size <n>]',
        ],
        description:
            'Replays captured Key Vault audit logs (Event Hubs bodies, JSON arrays, JSON Lines such as PT1H.json, ' +
            'directories, .gz files) through the same pipeline as the Azure Function. Writes the decision log as ' +
            'JSON Lines to stdout (or --decisions) and a summary to stderr. A malformed record, a damaged file ' +
            '(e.g. a truncated .gz) or an unreadable file inside a directory is reported as a "rejected" line ' +
            'naming its file and position; the other inputs are still processed and the exit status is 3. ' +
            'Without --vaults nothing is read or changed in Azure.',
        options: [
            ['--config <file>', 'responder config (JSON); default: built-in defaults'],
            ['--decisions <out.jsonl>', 'write the decision log to this file instead of stdout'],
            ['--quarantine <dir>', 'also copy each rejected item whole into <dir>/quarantine.jsonl'],
            ...STATE_OPTIONS,
            [
                '--vaults <inventory.json>',
                'simulate the vaults of an inventory (a JSON array of vaults as vaults.get returns them); ' +
                    'remediations run against them through the real ARM client, and the log ends with one ' +
                    '"vault-state" line per vault',
            ],
            ['--outbox <dir>', 'group findings into incidents and write each notification (Teams card, mail) to <dir>'],
            ['--public-url <url>', 'base URL of the acknowledge/undo links (default http://localhost:7071)'],
            [
                '--signing-key <pem>',
                'key that signs the links (default .kvr/dev-signing-key.pem, created on first use)',
            ],
            ['--batch-size <n>', 'bodies (or bare records) per batch, 1-10000, e.g. to mimic the trigger batching'],
        ],
        examples: [
            'kvr replay samples/sample-day.jsonl.gz',
            'kvr replay samples/sample-day.jsonl.gz --config samples/demo-config.json --decisions out.jsonl',
            'kvr replay samples/sample-day.jsonl.gz --vaults samples/vaults.json --config samples/enforce-config.json',
        ],
    },
    'cmk-report': {
        summary: 'report which services depend on which customer-managed key versions',
        usage: [
            'kvr cmk-report [--config <file>] [--decisions <out.jsonl>] [--json] <capture>...',
            'kvr cmk-report --state <url | connection string> [--state-table <name>] [--json]',
        ],
        description:
            'The customer-managed key dependency report: which services (managed identities, trusted services, ' +
            'apps) use which key versions, with last success, last failure and counts; failing ones first. Built ' +
            "after replaying the captures, or read from a deployed app's Table state.",
        options: [
            ['--config <file>', 'responder config (JSON)'],
            ['--decisions <out.jsonl>', 'also write the decision log of the replay to this file'],
            ['--json', 'print the report as JSON'],
            ...STATE_OPTIONS,
        ],
        examples: ['kvr cmk-report samples/sample-day.jsonl.gz', 'kvr cmk-report --json samples/sample-day.jsonl.gz'],
    },
    posture: {
        summary: 'run the daily customer-managed key posture checks against simulated vaults',
        usage: ['kvr posture --vaults <inventory.json> --keys <key-inventory.json> [--config <file>] [--json]'],
        description:
            'The daily CMK posture checks (cmk-app-tier-missing, cmk-weak-key, cmk-no-expiry, ' +
            'cmk-no-rotation-policy, disk-encryption-vault-shared). Each vault the key inventory names is served by ' +
            'a local Key Vault keys fake and read through the real client. Findings as JSON Lines on stdout, a ' +
            'summary on stderr. See docs/cmk-posture.md.',
        options: [
            ['--vaults <inventory.json>', 'the vaults (a JSON array of vaults as vaults.get returns them); required'],
            ['--keys <key-inventory.json>', 'the keys per vault, a JSON object { "<vault name>": [keys] }; required'],
            ['--config <file>', 'responder config (JSON)'],
            ['--json', 'print the summary as one JSON object'],
        ],
        examples: [
            'kvr posture --vaults samples/vaults.json --keys samples/keys.json --config samples/posture-config.json',
        ],
    },
    serve: {
        summary: 'run the app locally: acknowledge/undo pages and a local event endpoint',
        usage: [
            'kvr serve [--port <n>] [--host <addr>] [--public-url <url>] [--outbox <dir>] [--config <file>]',
            '          [--vaults <inventory.json>] [--state <url | connection string>] [--state-table <name>]',
            '          [--signing-key <pem>] [--replay <capture>]... [--tick-seconds <n>] [--possession-only-links]',
        ],
        description:
            'Runs the app locally until Ctrl-C: the acknowledge/undo pages under /api/incidents/..., the CMK ' +
            'dependency report at GET /api/cmk/report (local clients only), and POST /local/events, which runs ' +
            'the Event Hubs handler on the posted body. Notifications go to the outbox ' +
            'unless KVR_TEAMS_WEBHOOK_URL / KVR_MAIL_SENDER are set. Prints the port it listens on. `npm start` ' +
            'runs it on the sample day.',
        options: [
            ['--port <n>', 'port to listen on, 0-65535 (default 7071; 0 picks a free one)'],
            ['--host <addr>', 'address to listen on (default 127.0.0.1)'],
            ['--public-url <url>', 'base URL of the links in notifications (default http://<host>:<port>)'],
            ['--outbox <dir>', 'where notifications are written (default .kvr/outbox)'],
            ['--config <file>', 'responder config (JSON)'],
            ['--vaults <inventory.json>', 'simulate the vaults of an inventory (see kvr replay --help)'],
            ...STATE_OPTIONS,
            ['--signing-key <pem>', 'key that signs the links (default .kvr/dev-signing-key.pem)'],
            ['--replay <capture>', 'feed a capture through first and print each alert (repeatable)'],
            ['--tick-seconds <n>', 'period of the timer work (escalation, expiry), 1-3600 (default 30)'],
            ['--possession-only-links', 'links act on their token alone, without sign-in (local only, docs/undo.md)'],
        ],
        examples: [
            'kvr serve --replay samples/sample-day.jsonl.gz --config samples/demo-config.json --possession-only-links',
            'kvr serve --port 0',
        ],
    },
    consume: {
        summary: "run the Function's handler on an event hub outside Azure Functions",
        usage: ['kvr consume [--from-start] [--max-batch-size <n>] [--max-wait-seconds <s>]'],
        description:
            "Runs the Function's handler outside Azure Functions, until Ctrl-C: reads the event hub of the app " +
            'settings (KV_LOGS_*), balancing partitions across replicas, with checkpoints in ' +
            'KVR_CHECKPOINT_CONTAINER_URL and rule state in KVR_STATE / KVR_STATE_TABLE. See docs/beyond-functions.md.',
        options: [
            ['--from-start', 'without a checkpoint, start at the oldest retained event (default: the newest)'],
            ['--max-batch-size <n>', 'events per batch, 1-10000 (default 256)'],
            ['--max-wait-seconds <s>', 'how long to wait to fill a batch, 0.1-600 (default 5)'],
        ],
        examples: ['kvr consume', 'kvr consume --from-start --max-batch-size 100'],
    },
    doctor: {
        summary: 'preflight of a deployed installation: one table of checks, with a fix for each failure',
        usage: ['kvr doctor [--json] [--send-test-notice] [--vault <vault resource id>]... [--timeout-seconds <n>]'],
        description:
            'Checks a deployed installation with the app settings in the environment (as the Function app reads ' +
            'them) and the identity of DefaultAzureCredential: ARM read and, in enforce scope, write permissions on ' +
            'each protected vault, its data plane, its diagnostic setting to our event hub, the state table, ' +
            'quarantine container and reconcile queue, the event hub and consumer group, the Teams and mail ' +
            'settings, and the link-signing key. Exit 1 when any check fails. See docs/doctor.md.',
        options: [
            ['--json', 'print the report as JSON'],
            ['--send-test-notice', 'send one test notice through each configured channel (default: skipped)'],
            ['--vault <id>', 'also check this vault (repeatable); default: the vaults the config names by id'],
            ['--timeout-seconds <n>', 'time limit of each check (default 20)'],
        ],
        examples: ['kvr doctor', 'kvr doctor --json --send-test-notice'],
    },
    send: {
        summary: 'publish captured (or generated) Event Hubs bodies to the event hub',
        usage: [
            'kvr send <capture>... [--hub-name <name>] [--rate <events per second>]',
            'kvr send --synthetic <count> [--seed <n>] [--hub-name <name>] [--rate <events per second>]',
        ],
        description:
            'Publishes captured (or generated) Event Hubs bodies to the event hub of the app settings (KV_LOGS_*), ' +
            'one event per item, in batches. See docs/beyond-functions.md.',
        options: [
            ['--hub-name <name>', 'the event hub (default: the app setting)'],
            ['--rate <n>', 'at most this many events per second'],
            ['--synthetic <count>', 'send <count> generated bodies instead of captures'],
            ['--seed <n>', 'seed of the generated bodies'],
        ],
        examples: ['kvr send samples/sample-day.jsonl.gz', 'kvr send --synthetic 1000 --rate 200'],
    },
};

function wrap(text: string, indent: string, width = 100): string {
    const lines: string[] = [];
    let line = '';
    for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
        if (line.length > 0 && indent.length + line.length + 1 + word.length > width) {
            lines.push(indent + line);
            line = word;
        } else line = line.length === 0 ? word : `${line} ${word}`;
    }
    if (line.length > 0) lines.push(indent + line);
    return lines.join('\n');
}

function exitCodeLines(): string {
    return EXIT_CODES.map(([code, meaning]) => `  ${code}  ${meaning}`).join('\n');
}

/** `kvr help <command>` and `kvr <command> --help`. */
export function commandHelp(command: string): string | undefined {
    const h = Object.hasOwn(COMMAND_HELP, command) ? COMMAND_HELP[command] : undefined;
    if (h === undefined) return undefined;
    const width = Math.max(...h.options.map(([o]) => o.length));
    const options = h.options
        .map(([o, text]) => {
            const wrapped = wrap(text, ' '.repeat(width + 4));
            return `  ${o.padEnd(width)}  ${wrapped.trimStart()}`;
        })
        .join('\n');
    return [
        `Usage:\n${h.usage.map((u) => `  ${u}`).join('\n')}`,
        wrap(h.description, ''),
        `Options:\n${options}\n  ${'-h, --help'.padEnd(width)}  show this help`,
        `Examples (from a clone, after npm ci):\n${h.examples.map((e) => `  ${e.replace(/^kvr /, `${INVOCATION} `)}`).join('\n')}`,
        `Exit status:\n${exitCodeLines()}`,
    ].join('\n\n');
}

/** `kvr help`, `kvr --help`. */
export function globalHelp(): string {
    const names = Object.keys(COMMAND_HELP);
    const width = Math.max(...names.map((n) => n.length));
    return [
        'Usage: kvr <command> [options]\n       kvr help <command> | kvr <command> --help\n       kvr --version',
        'kv-responder: detects and answers risky changes to Azure Key Vault from its audit logs.',
        `Commands:\n${names.map((n) => `  ${n.padEnd(width)}  ${COMMAND_HELP[n]?.summary ?? ''}`).join('\n')}`,
        `From a clone, after npm ci: ${INVOCATION} <command> ... (e.g. ${INVOCATION} replay samples/sample-day.jsonl.gz).`,
        `Exit status:\n${exitCodeLines()}`,
    ].join('\n\n');
}
