// Helpers shared by the kvr commands.
import { createWriteStream } from 'node:fs';
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
import { ResponderError } from '../core/errors';
import { DefaultAzureCredential } from '@azure/identity';
import { DEFAULT_STATE_TABLE, tableLocationOf, tableStateStoreAt } from '../adapters/tableStateStore';
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
        throw new UsageError((err as Error).message);
    }
}

/**
 * The Table state store of `--state <table endpoint | connection string>` and `--state-table`, or undefined without
 * `--state`. `--state-table` alone is a usage error.
 */
export function tableStateOption(state: string | undefined, table: string | undefined): StateStore | undefined {
    if (table !== undefined && state === undefined) throw new UsageError('--state-table needs --state');
    if (state === undefined) return undefined;
    return tableStateStoreAt(tableLocationOf(state, table ?? DEFAULT_STATE_TABLE), () => new DefaultAzureCredential());
}
