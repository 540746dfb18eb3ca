// Helpers shared by the kvr commands.
import { createWriteStream, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
    DEFAULT_CONFIG,
    parseResponderConfig,
    parseResponderConfigText,
    type ResponderConfig,
    type VaultTags,
} from '../config/responderConfig';
import { ConfigError, ResponderError } from '../core/errors';
import { configurableRuleIds } from '../core/rules';
import type { StateStore } from '../core/state/store';

export interface CliIo {
    readonly stdout: Writable;
    readonly stderr: Writable & { isTTY?: boolean };
}

export class UsageError extends ResponderError {
    constructor(message: string) {
        super('USAGE.INVALID', message);
    }
}

/** Reads a text file named on the command line; a failure is one clear line. */
export async function readTextFile(path: string, what: string): Promise<string> {
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

export async function readJsonFile(path: string, what: string): Promise<unknown> {
    const text = await readTextFile(path, what);
    try {
        return JSON.parse(text) as unknown;
    } catch (err) {
        throw new ResponderError('INPUT.UNREADABLE', `${what} '${path}' is not valid JSON: ${(err as Error).message}`);
    }
}

export async function loadConfigFile(path: string | undefined, tags?: VaultTags): Promise<ResponderConfig> {
    if (path === undefined)
        return tags === undefined ? DEFAULT_CONFIG : parseResponderConfig({}, configurableRuleIds, 'default', tags);
    const text = await readTextFile(path, 'config');
    return parseResponderConfigText(text, configurableRuleIds, path, tags);
}

export async function openOutput(path: string): Promise<Writable> {
    const out = createWriteStream(path, { flags: 'w' });
    await new Promise<void>((resolve, reject) => {
        out.once('open', () => resolve());
        out.once('error', (err) =>
            reject(new ResponderError('INPUT.UNREADABLE', `cannot write '${path}': ${err.message}`)),
        );
    });
    return out;
}

export async function closeOutput(out: Writable): Promise<void> {
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** Parses a command's options strictly; a bad option is a usage error (exit 2) naming it. */
export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(
    args: readonly string[],
    options: O,
    allowPositionals = true,
) {
    try {
        return parseArgs({ args: [...args], allowPositionals, strict: true, options });
    } catch (err) {
        throw new UsageError(parseErrorMessage(err as NodeJS.ErrnoException));
    }
}

/** Node's parseArgs messages, reworded to name the option and the fix. */
function parseErrorMessage(err: NodeJS.ErrnoException): string {
    const quoted = /'([^']*)'/.exec(err.message)?.[1];
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option '${quoted ?? '?'}'`;
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && quoted !== undefined)
        return /does not take/.test(err.message)
            ? `option '${quoted.split(' ')[0] ?? quoted}' takes no value`
            : `option '${quoted.split(' ')[0] ?? quoted}' needs a value`;
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
        return `unexpected argument '${quoted ?? '?'}': this command takes options only`;
    return err.message;
}

/** True when the arguments of a command ask for its help (`--help` or `-h` before any `--`). */
export function wantsHelp(args: readonly string[]): boolean {
    for (const a of args) {
        if (a === '--') return false;
        if (a === '--help' || a === '-h') return true;
    }
    return false;
}

/** The version of the kv-responder package this CLI belongs to (its package.json, found upwards from here). */
export function packageVersion(): string {
    for (let dir = __dirname, i = 0; i < 6; i++, dir = dirname(dir)) {
        try {
            const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
                name?: unknown;
                version?: unknown;
            };
            if (pkg.name === 'kv-responder' && typeof pkg.version === 'string') return pkg.version;
        } catch {
            // not here: look one folder up
        }
    }
    return 'unknown';
}

/** Errors about the command line, the config or the named files: found before any output, exit status 2. */
const USAGE_CODES: ReadonlySet<string> = new Set(['USAGE.INVALID', 'CONFIG.INVALID', 'INPUT.UNREADABLE']);

/** The exit status of a failed command (help.ts EXIT_CODES): 2 for bad usage or config, 1 otherwise. */
export function exitStatusOf(err: unknown): number {
    return err instanceof ResponderError && USAGE_CODES.has(err.code) ? 2 : 1;
}

/**
 * The message of a failed command, for stderr: one line per problem (a config lists every problem, one per line),
 * a pointer to the command's help after a usage error, and no stack trace unless `debug` (KVR_DEBUG=1) asks for it.
 */
export function formatError(err: unknown, command: string | undefined, debug: boolean): string {
    // `command`: a command that has help, named after a usage error.
    if (err instanceof ConfigError) {
        if (err.problems.length === 1) return `kvr: invalid config ${err.source}: ${oneLine(err.problems[0] ?? '')}\n`;
        const lines = err.problems.map((p) => `  - ${oneLine(p)}`);
        return `kvr: invalid config ${err.source}: ${err.problems.length} problems:\n${lines.join('\n')}\n`;
    }
    if (err instanceof UsageError) {
        const hint = command === undefined ? '' : `; see 'kvr ${command} --help'`;
        return `kvr: ${oneLine(err.message)}${hint}\n`;
    }
    if (err instanceof ResponderError) return `kvr: ${oneLine(err.message)}\n`;
    const message = err instanceof Error ? err.message : String(err);
    const detail =
        debug && err instanceof Error && err.stack !== undefined
            ? `\n${err.stack}`
            : ' (KVR_DEBUG=1 prints the stack trace)';
    return `kvr: unexpected failure: ${oneLine(message)}${detail}\n`;
}

function oneLine(text: string): string {
    return text.replace(/\s*\n\s*/g, ' ');
}

const STATE_FIX =
    'give an https:// table account URL (https://<account>.table.core.windows.net, signed in with ' +
    "DefaultAzureCredential) or a storage connection string (e.g. 'UseDevelopmentStorage=true' for Azurite, or " +
    "'DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net')";

/** Azure table names: 3-63 letters and digits, starting with a letter. */
const TABLE_NAME = /^[A-Za-z][A-Za-z0-9]{2,62}$/;

/**
 * The Table state store of `--state <table endpoint | connection string>` and `--state-table`, or undefined without
 * `--state`. A malformed value is a usage error naming the option (nothing is contacted yet); an unreachable endpoint
 * shows later, as a runtime failure of the first state read or write. A connection string is never echoed (it holds
 * the account key). The Table and identity SDKs are loaded only here, when `--state` is given: every `kvr` command
 * starts without them (docs/benchmark.md, "What the replay figure left out, and the fix").
 */
export async function tableStateOption(
    state: string | undefined,
    table: string | undefined,
): Promise<StateStore | undefined> {
    if (table !== undefined && state === undefined) throw new UsageError('--state-table needs --state');
    if (table !== undefined && !TABLE_NAME.test(table))
        throw new UsageError(
            `--state-table: '${table}' is not a table name (3-63 letters and digits, starting with a letter)`,
        );
    if (state === undefined) return undefined;
    const value = state.trim();
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
        let url: URL | undefined;
        try {
            url = new URL(value);
        } catch {
            url = undefined;
        }
        if (url === undefined || url.protocol !== 'https:' || url.hostname === '')
            throw new UsageError(
                `--state: '${value}' is not an https:// table account URL (an http:// endpoint such as Azurite needs ` +
                    `a connection string with DefaultEndpointsProtocol=http and TableEndpoint=<url>); ${STATE_FIX}`,
            );
    } else if (!/^\s*[A-Za-z]+=/.test(value) || !value.includes('=')) {
        throw new UsageError(`--state: the value is neither an https:// URL nor a connection string; ${STATE_FIX}`);
    }
    const [{ DEFAULT_STATE_TABLE, tableLocationOf, tableStateStoreAt }, { DefaultAzureCredential }] = await Promise.all(
        [import('../adapters/tableStateStore.js'), import('@azure/identity')],
    );
    try {
        return tableStateStoreAt(
            tableLocationOf(value.replace(/^https:/i, 'https:'), table ?? DEFAULT_STATE_TABLE),
            () => new DefaultAzureCredential(),
        );
    } catch (err) {
        // The SDK's own connection string parser rejects it (e.g. no AccountName or TableEndpoint).
        const why = err instanceof TypeError ? 'missing parts' : (err as Error).message;
        throw new UsageError(`--state: the connection string is not usable (${oneLine(why)}); ${STATE_FIX}`);
    }
}
