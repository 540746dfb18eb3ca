import { type EventData, type EventDataBatch, EventHubProducerClient } from '@azure/event-hubs';
import { listCaptures, readCapture } from '../adapters/captureReader';
import { SettingNames } from '../config/settingNames';
import { ConfigError, ResponderError } from '../core/errors';
import { generateBodies, SAMPLE_DAY } from '../sample/trafficGenerator';
import {
    CLIENT_RETRY_OPTIONS,
    credentialFor,
    describeError,
    type EventHubTarget,
    readEventHubConnection,
} from './consume';
import { type CliIo, parseCommandArgs, UsageError } from './common';

type Env = Readonly<Record<string, string | undefined>>;

/** The part of `EventHubProducerClient` that `kvr send` uses. */
export interface EventHubProducer {
    createBatch(): Promise<EventDataBatch>;
    sendBatch(batch: EventDataBatch): Promise<void>;
    close(): Promise<void>;
}

export interface ProducerFactory {
    createProducer(target: EventHubTarget): EventHubProducer;
}

/** The real client. Connects on the first batch. */
export const defaultProducerFactory: ProducerFactory = {
    createProducer(target) {
        const c = target.connection;
        const options = { retryOptions: CLIENT_RETRY_OPTIONS };
        return c.kind === 'connection-string'
            ? new EventHubProducerClient(c.connectionString, target.eventHubName, options)
            : new EventHubProducerClient(
                  c.fullyQualifiedNamespace,
                  target.eventHubName,
                  credentialFor(target.managedIdentityClientId),
                  options,
              );
    },
};

export interface SendDeps {
    /** App settings (default `process.env`). */
    readonly env?: Env;
    readonly clients?: ProducerFactory;
    /** Wall clock, epoch ms (synthetic record times end now; `--rate` pacing). */
    readonly now?: () => number;
    readonly sleep?: (ms: number) => Promise<void>;
    /** Progress lines on stderr at most this often (default 2 s). */
    readonly progressIntervalMs?: number;
}

export interface SendSummary {
    readonly sent: number;
    readonly batches: number;
    /** Items larger than an empty batch: reported, not sent. */
    readonly oversized: number;
    /** Items the capture reader could not delimit (unterminated or over 16 MiB): reported, not sent. */
    readonly unreadable: number;
    /** Items sent that are not Event Hubs bodies (`{"records":[...]}`): the trigger and `kvr consume` reject them. */
    readonly notEnvelopes: number;
}

function parseSendArgs(args: readonly string[]) {
    return parseCommandArgs(
        args,
        {
            'hub-name': { type: 'string' },
            rate: { type: 'string' },
            synthetic: { type: 'string' },
            seed: { type: 'string' },
        },
        true,
    );
}

function positiveNumber(value: string | undefined, name: string, integer: boolean): number | undefined {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (value.trim().length === 0 || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
        throw new UsageError(`--${name} must be a positive ${integer ? 'whole ' : ''}number, not '${value}'`);
    return n;
}

interface OutgoingItem {
    readonly source: string;
    readonly body?: unknown;
    readonly problem?: string;
}

function isEnvelope(body: unknown): boolean {
    return (
        typeof body === 'object' &&
        body !== null &&
        !Buffer.isBuffer(body) &&
        Array.isArray((body as { records?: unknown }).records)
    );
}

/** A captured item as an event body: the parsed JSON value, or the raw bytes when the text is not JSON. */
function bodyOf(text: string): unknown {
    try {
        return JSON.parse(text) as unknown;
    } catch {
        return Buffer.from(text, 'utf8');
    }
}

function sizeOf(body: unknown): number {
    return Buffer.isBuffer(body) ? body.length : Buffer.byteLength(JSON.stringify(body) ?? '', 'utf8');
}

async function* capturedItems(paths: readonly string[]): AsyncGenerator<OutgoingItem> {
    if (paths.length === 0) return;
    const listing = await listCaptures(paths);
    for (const file of listing.files) {
        for await (const chunk of readCapture(file)) {
            for (const item of chunk.items) {
                const source = item.source ?? file.path;
                if (item.problem !== undefined) yield { source, problem: item.problem };
                else yield { source, body: bodyOf(String(item.body)) };
            }
        }
    }
}

function* syntheticItems(count: number, seed: number, nowMs: number): Generator<OutgoingItem> {
    // Enough simulated time for `count` bodies (about one a minute, more by day), ending at the current minute.
    const hours = Math.ceil(count / 30) + 1;
    const start = Math.floor((nowMs - hours * 3_600_000) / 60_000) * 60_000;
    let i = 0;
    for (const body of generateBodies({
        seed,
        start: new Date(start).toISOString(),
        hours,
        recordsPerHour: SAMPLE_DAY.recordsPerHour,
        attacks: true,
    })) {
        if (i >= count) return;
        yield { source: `synthetic body ${++i}`, body: JSON.parse(body) as unknown };
    }
}

/**
 * `kvr send`: publishes captured bodies (every input `kvr replay` accepts) or synthetic ones to the event hub, each
 * item as one event, packed into as few batches as `createBatch`/`tryAdd` allow. An item too large for an empty batch
 * is reported and counted, never dropped silently. `--rate` paces the events per second.
 */
export async function runSend(args: readonly string[], io: CliIo, deps: SendDeps = {}): Promise<number> {
    const { values, positionals } = parseSendArgs(args);
    const rate = positiveNumber(values.rate, 'rate', false);
    const synthetic = positiveNumber(values.synthetic, 'synthetic', true);
    const seed = values.seed === undefined ? SAMPLE_DAY.seed : Number(values.seed);
    if (!Number.isSafeInteger(seed)) throw new UsageError(`--seed must be a whole number, not '${values.seed}'`);
    if (values.seed !== undefined && synthetic === undefined) throw new UsageError('--seed needs --synthetic');
    if (positionals.length === 0 && synthetic === undefined)
        throw new UsageError('send needs at least one capture file or directory, or --synthetic <count>');

    const env = deps.env ?? process.env;
    const problems: string[] = [];
    const connection = readEventHubConnection(env, problems);
    const hubName = values['hub-name']?.trim() || env[SettingNames.eventHubName]?.trim() || undefined;
    if (hubName === undefined) problems.push(`--hub-name or ${SettingNames.eventHubName} is required (the event hub)`);
    if (problems.length > 0 || connection === undefined || hubName === undefined)
        throw new ConfigError('app settings', problems);
    const clientId = env[SettingNames.managedIdentityClientId]?.trim();
    const target: EventHubTarget = {
        connection,
        eventHubName: hubName,
        managedIdentityClientId: clientId === undefined || clientId.length === 0 ? undefined : clientId,
    };
    // Every path is checked (and proven readable) before anything is sent.
    if (positionals.length > 0) await listCaptures(positionals);

    const now = deps.now ?? Date.now;
    const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const intervalMs = deps.progressIntervalMs ?? 2_000;
    const producer = (deps.clients ?? defaultProducerFactory).createProducer(target);
    const started = now();
    let lastProgress = started;
    let sent = 0;
    let batches = 0;
    let oversized = 0;
    let unreadable = 0;
    let notEnvelopes = 0;
    let accepted = 0;

    const say = (line: string): void => {
        io.stderr.write(`kvr send: ${line}\n`);
    };
    let batch: EventDataBatch | undefined;
    const flush = async (): Promise<void> => {
        if (batch === undefined || batch.count === 0) return;
        const full = batch;
        batch = undefined;
        await producer.sendBatch(full);
        sent += full.count;
        batches++;
        if (now() - lastProgress >= intervalMs) {
            lastProgress = now();
            say(`${sent} events sent in ${batches} batches`);
        }
    };
    let failure: string | undefined;
    try {
        const sources: (AsyncIterable<OutgoingItem> | Iterable<OutgoingItem>)[] = [
            capturedItems(positionals),
            synthetic === undefined ? [] : syntheticItems(synthetic, seed, started),
        ];
        for (const items of sources) {
            for await (const item of items) {
                if (item.problem !== undefined) {
                    unreadable++;
                    say(`not sent, unreadable: ${item.source}: ${item.problem}`);
                    continue;
                }
                if (rate !== undefined) {
                    // Pacing: the n-th event goes out no earlier than n / rate seconds after the start.
                    const due = started + (accepted * 1000) / rate;
                    if (now() < due) {
                        await flush();
                        const wait = due - now();
                        if (wait > 0) await sleep(wait);
                    }
                }
                const event: EventData = { body: item.body };
                batch ??= await producer.createBatch();
                if (!batch.tryAdd(event)) {
                    if (batch.count > 0) {
                        await flush();
                        batch = await producer.createBatch();
                    }
                    if (!batch.tryAdd(event)) {
                        oversized++;
                        say(
                            `not sent, larger than a batch (${batch.maxSizeInBytes} bytes): ${item.source} (${sizeOf(item.body)} bytes)`,
                        );
                        continue;
                    }
                }
                accepted++;
                if (!isEnvelope(item.body)) notEnvelopes++;
            }
        }
        await flush();
    } catch (err) {
        // An unreadable input was ruled out up front: what fails here is the event hub (unreachable, no role, no
        // such hub). One line, and exit status 1; what was sent before stays sent.
        if (err instanceof ResponderError) throw err;
        failure = describeError(err);
    } finally {
        await producer.close().catch(() => undefined);
    }
    const summary: SendSummary = { sent, batches, oversized, unreadable, notEnvelopes };
    if (failure !== undefined) say(`sending failed: ${failure}`);
    io.stderr.write(formatSendSummary(summary, hubName, (now() - started) / 1000));
    return failure === undefined ? 0 : 1;
}

export function formatSendSummary(s: SendSummary, hub: string, seconds: number): string {
    const lines = [`kvr send: sent ${s.sent} events in ${s.batches} batches to ${hub} in ${seconds.toFixed(2)} s`];
    if (s.oversized > 0) lines.push(`  oversized ${s.oversized} (larger than a batch, not sent; listed above)`);
    if (s.unreadable > 0) lines.push(`  unreadable ${s.unreadable} (not sent; listed above)`);
    if (s.notEnvelopes > 0)
        lines.push(
            `  ${s.notEnvelopes} sent event(s) are not Event Hubs bodies ({"records":[...]}): the Function and kvr consume reject them`,
        );
    return `${lines.join('\n')}\n`;
}
