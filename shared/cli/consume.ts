import { randomUUID } from 'node:crypto';
import {
    earliestEventPosition,
    EventHubConsumerClient,
    latestEventPosition,
    type PartitionContext,
    RetryMode,
    type ReceivedEventData,
    type SubscribeOptions,
    type SubscriptionEventHandlers,
} from '@azure/event-hubs';
import { InvocationContext, type LogLevel } from '@azure/functions';
import { credentialFor } from '../adapters/credential';
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { BlobCheckpointStore } from '../adapters/blobCheckpointStore';
import type { AuditBatchDeps } from '../app/handlers/handleAuditBatch';
import { handleAuditBatch } from '../app/handlers/handleAuditBatch';
import { loadSettings } from '../config/loadSettings';
import { ConsumeSettingNames, SettingNames } from '../config/settingNames';
import { ConfigError, ensureError } from '../core/errors';
import { type CliIo, parseCommandArgs, UsageError } from './common';

type Env = Readonly<Record<string, string | undefined>>;

// ---- settings --------------------------------------------------------------------------------------------------

/** How to reach the Event Hubs namespace: identity-based (production) or a namespace connection string (local). */
export type EventHubConnection =
    | { readonly kind: 'namespace'; readonly fullyQualifiedNamespace: string }
    | { readonly kind: 'connection-string'; readonly connectionString: string };

export interface EventHubTarget {
    readonly connection: EventHubConnection;
    readonly eventHubName: string;
    /** Client id of the user-assigned managed identity (`AZURE_CLIENT_ID`); undefined: `DefaultAzureCredential`. */
    readonly managedIdentityClientId: string | undefined;
}

export type CheckpointLocation =
    | { readonly kind: 'container-url'; readonly url: string }
    | { readonly kind: 'connection-string'; readonly connectionString: string; readonly container: string };

export interface ConsumeSettings extends EventHubTarget {
    readonly consumerGroup: string;
    readonly checkpoints: CheckpointLocation;
}

export const DEFAULT_CHECKPOINT_CONTAINER = 'kvr-checkpoints';

function nonEmpty(env: Env, name: string): string | undefined {
    const v = env[name]?.trim();
    return v === undefined || v.length === 0 ? undefined : v;
}

/**
 * Reads the Event Hubs connection the way the Functions host reads the trigger's `connection`: the setting
 * `KV_LOGS_EVENTHUB__fullyQualifiedNamespace` (identity-based), or `KV_LOGS_EVENTHUB` holding a namespace connection
 * string. Problems are appended to `problems`; a connection string is never echoed.
 */
export function readEventHubConnection(env: Env, problems: string[]): EventHubConnection | undefined {
    const name = SettingNames.eventHubConnection;
    const nsName = `${name}__fullyQualifiedNamespace`;
    const cs = nonEmpty(env, name);
    const ns = nonEmpty(env, nsName);
    if (cs !== undefined && ns !== undefined) {
        problems.push(`set only one of ${nsName} and ${name}`);
        return undefined;
    }
    if (ns !== undefined) {
        const host = ns.replace(/^(sb|amqps|https):\/\//i, '').replace(/\/+$/, '');
        if (!/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d+)?$/.test(host)) {
            problems.push(`${nsName}: '${ns}' is not a namespace host name (<namespace>.servicebus.windows.net)`);
            return undefined;
        }
        return { kind: 'namespace', fullyQualifiedNamespace: host };
    }
    if (cs !== undefined) {
        if (!/(^|;)\s*Endpoint\s*=\s*sb:\/\//i.test(cs)) {
            problems.push(`${name}: not an Event Hubs connection string (Endpoint=sb://...;SharedAccessKeyName=...)`);
            return undefined;
        }
        return { kind: 'connection-string', connectionString: cs };
    }
    problems.push(
        `${nsName} is required (the Event Hubs namespace, <namespace>.servicebus.windows.net; or ${name} with a namespace connection string)`,
    );
    return undefined;
}

function readCheckpoints(env: Env, problems: string[]): CheckpointLocation | undefined {
    const n = ConsumeSettingNames;
    const url = nonEmpty(env, n.checkpointContainerUrl);
    const cs = nonEmpty(env, n.checkpointConnectionString);
    if (url !== undefined && cs !== undefined) {
        problems.push(`set only one of ${n.checkpointContainerUrl} and ${n.checkpointConnectionString}`);
        return undefined;
    }
    if (url !== undefined) {
        let parsed: URL;
        try {
            parsed = new URL(url);
        } catch {
            problems.push(`${n.checkpointContainerUrl}: not a URL`);
            return undefined;
        }
        if (parsed.protocol !== 'https:') {
            problems.push(`${n.checkpointContainerUrl}: must be https`);
            return undefined;
        }
        if (parsed.pathname.split('/').filter((s) => s.length > 0).length !== 1 || parsed.search.length > 0) {
            problems.push(
                `${n.checkpointContainerUrl}: must name exactly one container (https://<account>.blob.core.windows.net/<container>)`,
            );
            return undefined;
        }
        return { kind: 'container-url', url };
    }
    if (cs !== undefined) {
        return {
            kind: 'connection-string',
            connectionString: cs,
            container: nonEmpty(env, n.checkpointContainer) ?? DEFAULT_CHECKPOINT_CONTAINER,
        };
    }
    problems.push(
        `${n.checkpointContainerUrl} is required (blob container for checkpoints and partition ownership; ${n.checkpointConnectionString} for Azurite)`,
    );
    return undefined;
}

/**
 * Reads everything `kvr consume` needs: the Function app's settings (validated by `loadSettings`, exactly as the
 * Function validates them), the trigger's Event Hubs settings and the checkpoint container. Throws one
 * {@link ConfigError} listing every problem.
 */
export function loadConsumeSettings(env: Env): ConsumeSettings {
    const problems: string[] = [];
    try {
        loadSettings(env);
    } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(...err.problems);
    }
    const connection = readEventHubConnection(env, problems);
    const eventHubName = nonEmpty(env, SettingNames.eventHubName);
    if (eventHubName === undefined) problems.push(`${SettingNames.eventHubName} is required (the event hub name)`);
    const consumerGroup = nonEmpty(env, SettingNames.eventHubConsumerGroup);
    if (consumerGroup === undefined)
        problems.push(`${SettingNames.eventHubConsumerGroup} is required (the responder's consumer group)`);
    const checkpoints = readCheckpoints(env, problems);
    if (
        problems.length > 0 ||
        connection === undefined ||
        eventHubName === undefined ||
        consumerGroup === undefined ||
        checkpoints === undefined
    ) {
        throw new ConfigError('app settings', problems);
    }
    return {
        connection,
        eventHubName,
        consumerGroup,
        checkpoints,
        managedIdentityClientId: nonEmpty(env, SettingNames.managedIdentityClientId),
    };
}

export { credentialFor } from '../adapters/credential';

// ---- the Event Hubs client, behind a factory -------------------------------------------------------------------

export interface ConsumerSubscription {
    close(): Promise<void>;
}

/** The part of `EventHubConsumerClient` that `kvr consume` uses. */
export interface EventHubConsumer {
    subscribe(handlers: SubscriptionEventHandlers, options: SubscribeOptions): ConsumerSubscription;
    close(): Promise<void>;
}

export interface ConsumerFactory {
    createConsumer(settings: ConsumeSettings): EventHubConsumer;
}

function checkpointContainerOf(settings: ConsumeSettings): ContainerClient {
    const c = settings.checkpoints;
    if (c.kind === 'connection-string')
        return BlobServiceClient.fromConnectionString(c.connectionString).getContainerClient(c.container);
    return new ContainerClient(c.url, credentialFor(settings.managedIdentityClientId));
}

/**
 * The SDK's own retries of an AMQP operation: exponential from 1 s rather than its default of a fixed 30 s, so that an
 * unreachable namespace or a missing role shows up on stderr within seconds instead of minutes.
 */
export const CLIENT_RETRY_OPTIONS = {
    mode: RetryMode.Exponential,
    maxRetries: 3,
    retryDelayInMs: 1_000,
    maxRetryDelayInMs: 30_000,
} as const;

/** The real client: load-balanced across replicas through the blob checkpoint store. Connects on subscribe. */
export const defaultConsumerFactory: ConsumerFactory = {
    createConsumer(settings) {
        const store = new BlobCheckpointStore(checkpointContainerOf(settings));
        const c = settings.connection;
        const options = { retryOptions: CLIENT_RETRY_OPTIONS };
        return c.kind === 'connection-string'
            ? new EventHubConsumerClient(
                  settings.consumerGroup,
                  c.connectionString,
                  settings.eventHubName,
                  store,
                  options,
              )
            : new EventHubConsumerClient(
                  settings.consumerGroup,
                  c.fullyQualifiedNamespace,
                  settings.eventHubName,
                  credentialFor(settings.managedIdentityClientId),
                  store,
                  options,
              );
    },
};

// ---- the consumer -------------------------------------------------------------------------------------------------

export interface RetryPolicy {
    /** Attempts per delivery of a batch before the partition is released (and restarts from its checkpoint). */
    readonly maxAttempts: number;
    readonly minDelayMs: number;
    readonly maxDelayMs: number;
}

/** The Function's retry policy (functions/kvAuditIngest.ts), with a shorter ceiling for an interactive command. */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 8, minDelayMs: 5_000, maxDelayMs: 60_000 };

export interface ConsumeDeps {
    /** App settings (default `process.env`). */
    readonly env?: Env;
    /** Builds the handler's dependencies (default: `composeApp`, the Function's composition root). */
    readonly compose?: (env: Env) => AuditBatchDeps | Promise<AuditBatchDeps>;
    readonly clients?: ConsumerFactory;
    /** Aborted to stop (default: the first SIGINT or SIGTERM). */
    readonly stop?: AbortSignal;
    readonly retry?: Partial<RetryPolicy>;
    /** Waits `ms`, or less when `signal` aborts. */
    readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
    /** Progress lines on stderr at most this often (default 5 s). */
    readonly progressIntervalMs?: number;
    /** How long a stop waits for the batches in flight (default 60 s). */
    readonly drainTimeoutMs?: number;
}

function parseConsumeArgs(args: readonly string[]) {
    return parseCommandArgs(
        args,
        {
            'max-batch-size': { type: 'string' },
            'max-wait-seconds': { type: 'string' },
            'from-start': { type: 'boolean' },
        },
        true,
    );
}

function numberOption(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max || value.trim().length === 0)
        throw new UsageError(`--${name} must be a number from ${min} to ${max}, not '${value}'`);
    return n;
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
        if (signal.aborted) return resolve();
        const done = (): void => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener('abort', done, { once: true });
    });
}

async function defaultCompose(env: Env): Promise<AuditBatchDeps> {
    // Loaded on demand: the composition root pulls in the telemetry SDK, which `kvr replay` does not need.
    const { composeApp } = await import('../app/compositionRoot.js');
    return composeApp(env).auditBatch;
}

function processSignals(): { signal: AbortSignal; dispose: () => void } {
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    // `once`: a second Ctrl-C finds no handler and ends the process the default way.
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return {
        signal: controller.signal,
        dispose: () => {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
        },
    };
}

/** One line for an error, even one without a message (an AggregateError of connection attempts, say). */
export function describeError(err: unknown): string {
    const e = ensureError(err);
    let text = e.message.trim();
    if (e instanceof AggregateError && e.errors.length > 0) {
        const inner = [...new Set(e.errors.map(describeError))].join('; ');
        text = text.length === 0 ? inner : `${text}: ${inner}`;
    }
    if (text.length === 0) text = e.name;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && !text.includes(code)) text += ` (${code})`;
    return text.replace(/\s*\n\s*/g, ' ');
}

function whenAborted(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
    });
}

/**
 * The trigger metadata the Functions host gives an Event Hubs trigger with `cardinality: 'many'` (keys as the
 * Node.js worker exposes them), so that the handler names sources and measures enqueue lag the same way.
 */
export function triggerMetadataOf(
    events: readonly ReceivedEventData[],
    partition: Omit<PartitionContext, 'updateCheckpoint' | 'lastEnqueuedEventProperties'>,
): Record<string, unknown> {
    return {
        partitionContext: {
            fullyQualifiedNamespace: partition.fullyQualifiedNamespace,
            eventHubName: partition.eventHubName,
            consumerGroup: partition.consumerGroup,
            partitionId: partition.partitionId,
        },
        sequenceNumberArray: events.map((e) => e.sequenceNumber),
        offsetArray: events.map((e) => e.offset),
        enqueuedTimeUtcArray: events.map((e) => e.enqueuedTimeUtc.toISOString()),
        partitionKeyArray: events.map((e) => e.partitionKey),
        propertiesArray: events.map((e) => e.properties ?? {}),
    };
}

/** Writes the handler's structured log lines (one JSON object each) to stdout, with their level. */
function logLineWriter(io: CliIo): (level: LogLevel, ...args: unknown[]) => void {
    return (level, ...args) => {
        const text = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
        let entry: Record<string, unknown> = { message: text };
        try {
            const v = JSON.parse(text) as unknown;
            if (typeof v === 'object' && v !== null && !Array.isArray(v)) entry = v as Record<string, unknown>;
        } catch {
            // not JSON: kept as a message
        }
        io.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), level, ...entry })}\n`);
    };
}

interface Totals {
    batches: number;
    events: number;
    records: number;
    findings: number;
    rejected: number;
    retries: number;
    released: number;
    checkpointErrors: number;
}

function totalsLine(partitions: ReadonlySet<string>, t: Totals, retrying: number): string {
    const ids = [...partitions].sort((a, b) => Number(a) - Number(b) || (a < b ? -1 : a > b ? 1 : 0));
    const parts = [
        `${ids.length} partition${ids.length === 1 ? '' : 's'}${ids.length > 0 ? ` (${ids.join(', ')})` : ''}`,
        `${t.batches} batches`,
        `${t.events} events`,
        `${t.records} records`,
        `${t.findings} findings`,
        `${t.rejected} rejected`,
    ];
    if (t.retries > 0) parts.push(`${t.retries} retries`);
    if (retrying > 0) parts.push(`${retrying} batch${retrying === 1 ? '' : 'es'} waiting to retry`);
    if (t.released > 0) parts.push(`${t.released} batch${t.released === 1 ? '' : 'es'} released unprocessed`);
    if (t.checkpointErrors > 0) parts.push(`${t.checkpointErrors} checkpoint failures`);
    return parts.join(', ');
}

/**
 * `kvr consume`: reads the event hub with `EventHubConsumerClient`, partitions balanced across every running replica
 * through a blob checkpoint store, and hands each batch to the Function's own handler (`handleAuditBatch`) with the
 * trigger metadata the Functions host would give. A batch is checkpointed only after the handler succeeds; a batch
 * whose handler throws (a sink down) is retried with exponential backoff, and after the last attempt the partition is
 * released unprocessed, so that it restarts from its last checkpoint. Runs until SIGINT or SIGTERM.
 */
export async function runConsume(args: readonly string[], io: CliIo, deps: ConsumeDeps = {}): Promise<number> {
    const { values, positionals } = parseConsumeArgs(args);
    if (positionals.length > 0) throw new UsageError(`consume takes no file arguments (got '${positionals[0]}')`);
    const maxBatchSize = numberOption(values['max-batch-size'], 'max-batch-size', 256, 1, 10_000);
    if (!Number.isInteger(maxBatchSize)) throw new UsageError('--max-batch-size must be a whole number');
    const maxWaitTimeInSeconds = numberOption(values['max-wait-seconds'], 'max-wait-seconds', 5, 0.1, 600);
    const env = deps.env ?? process.env;
    const settings = loadConsumeSettings(env);
    const auditBatch = await (deps.compose ?? defaultCompose)(env);
    const retry: RetryPolicy = { ...DEFAULT_RETRY, ...deps.retry };
    const sleep = deps.sleep ?? defaultSleep;
    const intervalMs = deps.progressIntervalMs ?? 5_000;
    const signals = deps.stop === undefined ? processSignals() : { signal: deps.stop, dispose: () => undefined };
    const stopping = new AbortController();
    const logHandler = logLineWriter(io);

    const partitions = new Set<string>();
    const totals: Totals = {
        batches: 0,
        events: 0,
        records: 0,
        findings: 0,
        rejected: 0,
        retries: 0,
        released: 0,
        checkpointErrors: 0,
    };
    let retrying = 0;
    let dirty = false;
    const inFlight = new Set<Promise<void>>();
    const lastError = new Map<string, number>();

    const say = (line: string): void => {
        io.stderr.write(`kvr consume: ${line}\n`);
    };
    const sayError = (line: string): void => {
        // The same error repeats every load-balancing cycle while a namespace is unreachable: once a minute is enough.
        const now = Date.now();
        const last = lastError.get(line);
        if (last !== undefined && now - last < Math.max(intervalMs, 60_000)) return;
        lastError.set(line, now);
        say(line);
    };

    const handleBatch = async (events: ReceivedEventData[], partition: PartitionContext): Promise<void> => {
        const bodies = events.map((e) => e.body as unknown);
        const triggerMetadata = triggerMetadataOf(events, partition);
        const first = events[0]?.sequenceNumber;
        const last = events[events.length - 1];
        const what = `partition ${partition.partitionId}: batch of ${events.length} (sequence ${first}-${last?.sequenceNumber})`;
        for (let attempt = 0; ; attempt++) {
            if (stopping.signal.aborted) return; // not handled: not checkpointed
            const context = new InvocationContext({
                invocationId: randomUUID(),
                functionName: 'kvrConsume',
                triggerMetadata,
                retryContext: { retryCount: attempt, maxRetryCount: retry.maxAttempts - 1 },
                logHandler,
            });
            try {
                const { summary } = await handleAuditBatch(bodies, context, auditBatch);
                totals.batches++;
                totals.events += events.length;
                totals.records += summary.records;
                totals.findings += summary.findings;
                totals.rejected += summary.rejected;
                dirty = true;
                break;
            } catch (err) {
                const message = describeError(err);
                if (attempt + 1 >= retry.maxAttempts) {
                    totals.released++;
                    dirty = true;
                    // A plain Error (not `retryable`): the SDK stops this partition's pump and the load balancer
                    // restarts it from the last checkpoint, so the batch is delivered again.
                    throw new Error(
                        `${what} failed ${retry.maxAttempts} times, not checkpointed; the partition restarts from its last checkpoint: ${message}`,
                        { cause: err },
                    );
                }
                const delay = Math.min(retry.maxDelayMs, retry.minDelayMs * 2 ** attempt);
                totals.retries++;
                say(
                    `${what} failed (attempt ${attempt + 1} of ${retry.maxAttempts}): ${message}; retrying in ${(delay / 1000).toFixed(1)} s`,
                );
                retrying++;
                try {
                    await sleep(delay, stopping.signal);
                } finally {
                    retrying--;
                }
            }
        }
        if (last === undefined) return;
        try {
            await partition.updateCheckpoint(last);
        } catch (err) {
            // The next checkpoint of this partition covers this batch too; until then a restart redelivers it.
            totals.checkpointErrors++;
            sayError(`partition ${partition.partitionId}: checkpoint failed: ${describeError(err)}`);
        }
    };

    const handlers: SubscriptionEventHandlers = {
        processInitialize: (partition) => {
            partitions.add(partition.partitionId);
            dirty = true;
            return Promise.resolve();
        },
        processClose: (_reason, partition) => {
            partitions.delete(partition.partitionId);
            dirty = true;
            return Promise.resolve();
        },
        processError: (err, partition) => {
            const where = partition.partitionId === '' ? '' : `partition ${partition.partitionId}: `;
            sayError(`${where}${describeError(err)}`);
            return Promise.resolve();
        },
        processEvents: async (events, partition) => {
            if (events.length === 0 || stopping.signal.aborted) return;
            const run = handleBatch(events, partition);
            inFlight.add(run);
            try {
                await run;
            } finally {
                inFlight.delete(run);
            }
        },
    };

    const where =
        settings.connection.kind === 'namespace'
            ? settings.connection.fullyQualifiedNamespace
            : 'the namespace of the connection string';
    const checkpointsAt =
        settings.checkpoints.kind === 'container-url'
            ? settings.checkpoints.url
            : `container ${settings.checkpoints.container}`;
    const consumer = (deps.clients ?? defaultConsumerFactory).createConsumer(settings);
    let subscription: ConsumerSubscription | undefined;
    const ticker = setInterval(() => {
        if (!dirty) return;
        dirty = false;
        say(totalsLine(partitions, totals, retrying));
    }, intervalMs);
    ticker.unref();
    try {
        say(
            `reading event hub ${settings.eventHubName} on ${where} as consumer group ${settings.consumerGroup}, ` +
                `checkpoints in ${checkpointsAt}; stop with Ctrl-C`,
        );
        subscription = consumer.subscribe(handlers, {
            maxBatchSize,
            maxWaitTimeInSeconds,
            // Where a partition without a checkpoint starts: the end, as host.json's initialOffsetOptions says.
            startPosition: values['from-start'] === true ? earliestEventPosition : latestEventPosition,
        });
        await whenAborted(signals.signal);
        stopping.abort();
        say(`stopping: finishing ${inFlight.size} batch(es) in flight, then releasing the partitions`);
        const drained = await Promise.race([
            Promise.allSettled([...inFlight]).then(() => true),
            new Promise<boolean>((resolve) => setTimeout(() => resolve(false), deps.drainTimeoutMs ?? 60_000).unref()),
        ]);
        if (!drained) say('some batches were still running; they are not checkpointed and will be delivered again');
    } finally {
        clearInterval(ticker);
        signals.dispose();
        // Closing releases the partitions (an empty owner in the checkpoint store). If that fails, their ownership
        // simply expires and another replica takes them over: worth a line, not a failure.
        for (const [what, close] of [
            ['closing the subscription', () => subscription?.close()],
            ['closing the client', () => consumer.close()],
        ] as const) {
            try {
                await close();
            } catch (err) {
                say(`${what} failed (the partitions are released when their ownership expires): ${describeError(err)}`);
            }
        }
    }
    say(`stopped: ${totalsLine(partitions, totals, 0)}`);
    return 0;
}
