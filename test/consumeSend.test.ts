import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
    earliestEventPosition,
    type EventData,
    type EventDataBatch,
    EventHubConsumerClient,
    EventHubProducerClient,
    latestEventPosition,
    type PartitionContext,
    type ReceivedEventData,
    type SubscribeOptions,
    type SubscriptionEventHandlers,
} from '@azure/event-hubs';
import { listCaptures, readCapture } from '../shared/adapters/captureReader';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import type { OtelMetrics } from '../shared/adapters/otelMetrics';
import { createPipeline } from '../shared/app/createPipeline';
import type { AuditBatchDeps } from '../shared/app/handlers/handleAuditBatch';
import {
    type ConsumeDeps,
    type ConsumeSettings,
    defaultConsumerFactory,
    describeError,
    type EventHubConsumer,
    loadConsumeSettings,
    runConsume,
    triggerMetadataOf,
} from '../shared/cli/consume';
import { defaultProducerFactory, type EventHubProducer, runSend, type SendDeps } from '../shared/cli/send';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import { ConsumeSettingNames, SettingNames } from '../shared/config/settingNames';
import { ConfigError } from '../shared/core/errors';
import type { DecisionSink, QuarantineItem, QuarantineSink } from '../shared/core/ports';
import { decisionsOf, runKvr } from './support/cli';
import { FIXTURES, fixtureBody, fixtureText } from './support/fixtures';
import { tempDir } from './support/tempDirs';

class Capture extends Writable {
    text = '';
    override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
        this.text += chunk.toString();
        done();
    }
}

/** Valid settings for both commands; nothing here is ever contacted (the Event Hubs clients are fakes). */
const ENV: Record<string, string> = {
    KVR_PUBLIC_URL: 'https://kvr-test.azurewebsites.net',
    KVR_SIGNING_KEY_ID: 'https://kv-test.vault.azure.net/keys/links',
    KVR_STATE: 'UseDevelopmentStorage=true',
    KVR_QUARANTINE_CONNECTION_STRING: 'UseDevelopmentStorage=true',
    KV_LOGS_EVENTHUB__fullyQualifiedNamespace: 'kvr-test.servicebus.windows.net',
    KV_LOGS_HUB: 'insights-logs-auditevent',
    KV_LOGS_CONSUMER_GROUP: 'kv-responder',
    KVR_CHECKPOINT_CONNECTION_STRING: 'UseDevelopmentStorage=true',
};

const EMULATOR =
    'Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;';

// ---- a fake Event Hubs consumer: drives the subscription handlers as EventHubConsumerClient does ----------------

interface Checkpointed {
    readonly partitionId: string;
    readonly sequenceNumber: number;
    readonly offset: string;
    /** How many items the sink under test held when the checkpoint was taken. */
    readonly sinkHeld: number;
}

class FakeConsumer implements EventHubConsumer {
    handlers: SubscriptionEventHandlers | undefined;
    options: SubscribeOptions | undefined;
    readonly checkpoints: Checkpointed[] = [];
    subscriptionClosed = false;
    clientClosed = false;
    private readonly open = new Set<string>();
    private onSubscribe: () => void = () => undefined;
    readonly subscribed = new Promise<void>((resolve) => {
        this.onSubscribe = resolve;
    });

    constructor(private readonly written: () => number = () => 0) {}

    subscribe(handlers: SubscriptionEventHandlers, options: SubscribeOptions) {
        this.handlers = handlers;
        this.options = options;
        this.onSubscribe();
        return {
            close: async () => {
                this.subscriptionClosed = true;
                for (const id of [...this.open]) await this.release(id);
            },
        };
    }

    close(): Promise<void> {
        this.clientClosed = true;
        return Promise.resolve();
    }

    context(partitionId: string): PartitionContext {
        return {
            fullyQualifiedNamespace: 'kvr-test.servicebus.windows.net',
            eventHubName: 'insights-logs-auditevent',
            consumerGroup: 'kv-responder',
            partitionId,
            updateCheckpoint: (e: ReceivedEventData) => {
                this.checkpoints.push({
                    partitionId,
                    sequenceNumber: e.sequenceNumber,
                    offset: e.offset,
                    sinkHeld: this.written(),
                });
                return Promise.resolve();
            },
        };
    }

    async claim(partitionId: string): Promise<void> {
        this.open.add(partitionId);
        await this.handlers?.processInitialize?.(this.context(partitionId));
    }

    async release(partitionId: string): Promise<void> {
        this.open.delete(partitionId);
        await this.handlers?.processClose?.('Shutdown' as never, this.context(partitionId));
    }

    deliver(partitionId: string, events: ReceivedEventData[]): Promise<void> {
        if (this.handlers === undefined) throw new Error('not subscribed');
        return this.handlers.processEvents(events, this.context(partitionId));
    }
}

function received(body: unknown, sequenceNumber: number, enqueued = '2026-10-05T09:50:02.000Z'): ReceivedEventData {
    return {
        body,
        sequenceNumber,
        offset: String(sequenceNumber * 1000),
        enqueuedTimeUtc: new Date(enqueued),
        partitionKey: null,
        properties: {},
        getRawAmqpMessage: () => {
            throw new Error('not used');
        },
    };
}

function realPipeline(decisions: DecisionSink = new MemoryDecisionSink()) {
    const quarantine = new MemoryQuarantineSink();
    const pipeline = createPipeline(DEFAULT_CONFIG, { decisions, quarantine }, { acceptBareRecords: false });
    return { pipeline, quarantine };
}

/**
 * A quarantine that is down for the first `failures` writes. (A quarantined item is written again on every attempt,
 * whereas a finding, once its group is in the rule state, is not produced again by a retry.)
 */
class FlakyQuarantine implements QuarantineSink {
    readonly items: QuarantineItem[] = [];
    writes = 0;
    constructor(private failures: number) {}
    put(items: readonly QuarantineItem[]): Promise<void> {
        this.writes++;
        if (this.failures > 0) {
            this.failures--;
            return Promise.reject(new Error('quarantine unavailable'));
        }
        this.items.push(...items);
        return Promise.resolve();
    }
}

function pipelineWith(quarantine: QuarantineSink): AuditBatchDeps {
    return {
        pipeline: createPipeline(
            DEFAULT_CONFIG,
            { decisions: new MemoryDecisionSink(), quarantine },
            { acceptBareRecords: false },
        ),
    };
}

/** One good body and one that is quarantined. */
function mixedBatch(firstSequence: number): ReceivedEventData[] {
    return [
        received(fixtureBody('secret-get-success.json'), firstSequence),
        received(fixtureText('malformed/records-not-array.json'), firstSequence + 1),
    ];
}

interface Running {
    readonly consumer: FakeConsumer;
    readonly stdout: Capture;
    readonly stderr: Capture;
    readonly settings: ConsumeSettings[];
    readonly sleeps: number[];
    stop(): Promise<number>;
}

async function startConsume(
    auditBatch: AuditBatchDeps,
    options: {
        args?: string[];
        written?: () => number;
        deps?: Partial<ConsumeDeps>;
        sleep?: ConsumeDeps['sleep'];
    } = {},
): Promise<Running> {
    const consumer = new FakeConsumer(options.written);
    const controller = new AbortController();
    const stdout = new Capture();
    const stderr = new Capture();
    const settings: ConsumeSettings[] = [];
    const sleeps: number[] = [];
    const done = runConsume(
        options.args ?? [],
        { stdout, stderr },
        {
            env: ENV,
            compose: () => auditBatch,
            clients: {
                createConsumer: (s) => {
                    settings.push(s);
                    return consumer;
                },
            },
            stop: controller.signal,
            retry: { maxAttempts: 4, minDelayMs: 100, maxDelayMs: 250 },
            sleep:
                options.sleep ??
                ((ms) => {
                    sleeps.push(ms);
                    return Promise.resolve();
                }),
            progressIntervalMs: 3_600_000,
            ...options.deps,
        },
    );
    await Promise.race([
        consumer.subscribed,
        done.then(() => {
            throw new Error(`consume ended before subscribing: ${stderr.text}`);
        }),
    ]);
    return {
        consumer,
        stdout,
        stderr,
        settings,
        sleeps,
        stop: () => {
            controller.abort();
            return done;
        },
    };
}

function logLines(stdout: string): Record<string, unknown>[] {
    return decisionsOf(stdout);
}

// ---- kvr consume -------------------------------------------------------------------------------------------------

describe('kvr consume', () => {
    it('runs the Function handler on each batch with the trigger metadata, then checkpoints the last event', async () => {
        const decisions = new MemoryDecisionSink();
        const { pipeline, quarantine } = realPipeline(decisions);
        const lags: number[] = [];
        const metrics = { recordBatch: (t: { enqueueLagMs: readonly number[] }) => lags.push(...t.enqueueLagMs) };
        const run = await startConsume(
            { pipeline, metrics: metrics as unknown as OtelMetrics },
            { written: () => decisions.decisions.length },
        );
        await run.consumer.claim('3');
        await run.consumer.deliver('3', [
            received(fixtureBody('secret-purge-success.json'), 41),
            received(fixtureText('malformed/not-json.json'), 42),
            received(Buffer.from(fixtureText('key-backup-success.json')), 43),
        ]);

        // The real pipeline ran: a finding per sensitive operation, the bad body quarantined under its partition and
        // sequence number (from partitionContext and sequenceNumberArray).
        const findings = decisions.decisions.filter((d) => d.type === 'finding');
        expect(findings.map((f) => f.operations)).toEqual([['SecretPurge'], ['KeyBackup']]);
        expect(quarantine.items.map((q) => q.source)).toEqual(['partition 3 sequence 42']);
        // enqueuedTimeUtcArray reached the handler: the enqueue lag is enqueue time minus record time.
        expect(lags[0]).toBe(Date.parse('2026-10-05T09:50:02.000Z') - Date.parse('2026-10-05T09:50:00.000Z'));
        // Checkpointed once, at the last event, after the decisions were written.
        expect(run.consumer.checkpoints).toEqual([
            { partitionId: '3', sequenceNumber: 43, offset: '43000', sinkHeld: 3 },
        ]);

        const logs = logLines(run.stdout.text);
        expect(logs.filter((l) => l.msg === 'kvr.finding').map((l) => [l.level, l.rule])).toEqual([
            ['warning', 'sensitive-operation'],
            ['warning', 'sensitive-operation'],
        ]);
        expect(logs.find((l) => l.msg === 'kvr.batch')).toMatchObject({ level: 'information', bodies: 3, rejected: 1 });

        expect(await run.stop()).toBe(0);
        expect(run.consumer.subscriptionClosed).toBe(true);
        expect(run.consumer.clientClosed).toBe(true);
        expect(run.stderr.text).toMatch(
            /stopped: 0 partitions, 1 batches, 3 events, 2 records, 2 findings, 1 rejected/,
        );
    });

    it('builds the trigger metadata the Functions host gives a cardinality-many trigger', () => {
        const meta = triggerMetadataOf([received({}, 7, '2026-10-05T10:00:00.000Z'), received({}, 8)], {
            fullyQualifiedNamespace: 'ns',
            eventHubName: 'hub',
            consumerGroup: 'cg',
            partitionId: '1',
        });
        expect(meta).toEqual({
            partitionContext: {
                fullyQualifiedNamespace: 'ns',
                eventHubName: 'hub',
                consumerGroup: 'cg',
                partitionId: '1',
            },
            sequenceNumberArray: [7, 8],
            offsetArray: ['7000', '8000'],
            enqueuedTimeUtcArray: ['2026-10-05T10:00:00.000Z', '2026-10-05T09:50:02.000Z'],
            partitionKeyArray: [null, null],
            propertiesArray: [{}, {}],
        });
    });

    it('retries a batch whose sink is down with exponential backoff, and checkpoints only once it succeeds', async () => {
        const sink = new FlakyQuarantine(2);
        const run = await startConsume(pipelineWith(sink), { written: () => sink.items.length });
        await run.consumer.claim('0');
        await run.consumer.deliver('0', mixedBatch(5));

        expect(sink.writes).toBe(3);
        expect(run.sleeps).toEqual([100, 200]);
        expect(run.consumer.checkpoints).toEqual([
            { partitionId: '0', sequenceNumber: 6, offset: '6000', sinkHeld: 1 },
        ]);
        // Each attempt ran with its retry count, as the host's retry policy would set it.
        const failed = logLines(run.stdout.text).filter((l) => l.msg === 'kvr.batch-failed');
        expect(failed.map((l) => l.retry)).toEqual([0, 1]);
        expect(run.stderr.text).toMatch(
            /partition 0: batch of 2 \(sequence 5-6\) failed \(attempt 1 of 4\): quarantine unavailable; retrying in 0\.1 s/,
        );
        await run.stop();
        expect(run.stderr.text).toMatch(/stopped: .*1 batches.*2 retries/);
    });

    it('after the last attempt releases the partition unprocessed (no checkpoint) with a non-retryable error', async () => {
        const sink = new FlakyQuarantine(100);
        const run = await startConsume(pipelineWith(sink));
        await run.consumer.claim('2');
        const delivery = run.consumer.deliver('2', mixedBatch(9));
        const error = (await delivery.then(
            () => undefined,
            (e: unknown) => e,
        )) as Error & { retryable?: boolean };
        expect(error.message).toMatch(
            /failed 4 times, not checkpointed; the partition restarts from its last checkpoint/,
        );
        // The SDK continues past a batch when processEvents throws a retryable error; this one must not be.
        expect(error.retryable).toBeUndefined();
        expect(sink.writes).toBe(4);
        expect(run.sleeps).toEqual([100, 200, 250]);
        expect(run.consumer.checkpoints).toEqual([]);
        await run.stop();
        expect(run.stderr.text).toMatch(/1 batch released unprocessed/);
    });

    it('on stop, abandons a batch waiting to retry without checkpointing it, and closes the subscription', async () => {
        const sink = new FlakyQuarantine(100);
        let waiting: () => void = () => undefined;
        const backingOff = new Promise<void>((resolve) => {
            waiting = resolve;
        });
        const run = await startConsume(pipelineWith(sink), {
            // The backoff lasts until the stop signal.
            sleep: (_ms, signal) => {
                waiting();
                return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
            },
        });
        await run.consumer.claim('1');
        const delivery = run.consumer.deliver('1', mixedBatch(3));
        await backingOff;
        const code = await run.stop();
        await delivery; // returns without handling
        expect(code).toBe(0);
        expect(sink.writes).toBe(1);
        expect(run.consumer.checkpoints).toEqual([]);
        expect(run.consumer.subscriptionClosed).toBe(true);
        expect(run.stderr.text).toMatch(/stopping: finishing 1 batch\(es\) in flight/);
    });

    it('ignores the empty batches a max wait time produces', async () => {
        const decisions = new MemoryDecisionSink();
        const run = await startConsume(realPipeline(decisions));
        await run.consumer.claim('0');
        await run.consumer.deliver('0', []);
        expect(run.consumer.checkpoints).toEqual([]);
        expect(run.stdout.text).toBe('');
        await run.stop();
    });

    it('subscribes with the batch options and start position, and hands the settings to the client factory', async () => {
        const first = await startConsume(realPipeline());
        expect(first.consumer.options).toEqual({
            maxBatchSize: 256,
            maxWaitTimeInSeconds: 5,
            startPosition: latestEventPosition,
        });
        expect(first.settings).toEqual([
            {
                connection: { kind: 'namespace', fullyQualifiedNamespace: 'kvr-test.servicebus.windows.net' },
                eventHubName: 'insights-logs-auditevent',
                consumerGroup: 'kv-responder',
                checkpoints: {
                    kind: 'connection-string',
                    connectionString: 'UseDevelopmentStorage=true',
                    container: 'kvr-checkpoints',
                },
                managedIdentityClientId: undefined,
            },
        ]);
        await first.stop();
        const second = await startConsume(realPipeline(), {
            args: ['--from-start', '--max-batch-size', '10', '--max-wait-seconds', '0.5'],
        });
        expect(second.consumer.options).toEqual({
            maxBatchSize: 10,
            maxWaitTimeInSeconds: 0.5,
            startPosition: earliestEventPosition,
        });
        await second.stop();
    });

    it('prints progress lines on stderr: partitions, batches, records, findings', async () => {
        const run = await startConsume(realPipeline(), { deps: { progressIntervalMs: 20 } });
        await run.consumer.claim('0');
        await run.consumer.claim('1');
        await run.consumer.deliver('1', [received(fixtureBody('secret-purge-success.json'), 1)]);
        for (let i = 0; i < 200 && !/kvr consume: 2 partitions/.test(run.stderr.text); i++)
            await new Promise((r) => setTimeout(r, 10));
        expect(run.stderr.text).toMatch(
            /kvr consume: 2 partitions \(0, 1\), 1 batches, 1 events, 1 records, 1 findings, 0 rejected\n/,
        );
        await run.stop();
    });

    it('describes errors without a message by their name, code or inner errors', () => {
        const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5671'), { code: 'ECONNREFUSED' });
        expect(describeError(new AggregateError([refused, refused], ''))).toBe('connect ECONNREFUSED 10.0.0.1:5671');
        expect(describeError(Object.assign(new Error(''), { code: 'ETIMEDOUT' }))).toBe('Error (ETIMEDOUT)');
        expect(describeError('plain')).toBe('plain');
    });

    it('reports processing errors once per interval', async () => {
        const run = await startConsume(realPipeline());
        const err = new Error('Unauthorized: no role assignment');
        for (let i = 0; i < 3; i++) await run.consumer.handlers?.processError(err, run.consumer.context(''));
        await run.stop();
        expect(run.stderr.text.match(/Unauthorized: no role assignment/g)).toHaveLength(1);
    });

    it('creates the real EventHubConsumerClient for the settings (without connecting)', async () => {
        const settings = loadConsumeSettings(ENV);
        const client = defaultConsumerFactory.createConsumer(settings);
        expect(client).toBeInstanceOf(EventHubConsumerClient);
        const c = client as EventHubConsumerClient;
        expect([c.fullyQualifiedNamespace, c.eventHubName]).toEqual([
            'kvr-test.servicebus.windows.net',
            'insights-logs-auditevent',
        ]);
        await client.close();
        const local = defaultConsumerFactory.createConsumer(
            loadConsumeSettings({ ...ENV, KV_LOGS_EVENTHUB__fullyQualifiedNamespace: '', KV_LOGS_EVENTHUB: EMULATOR }),
        ) as EventHubConsumerClient;
        expect(local.fullyQualifiedNamespace).toBe('localhost');
        await local.close();
    });
});

describe('kvr consume settings', () => {
    it('lists every problem at once: app settings, Event Hubs and checkpoints', () => {
        let error: unknown;
        try {
            loadConsumeSettings({
                KVR_STATE: 'UseDevelopmentStorage=true',
                KVR_CHECKPOINT_CONTAINER_URL: 'http://x/y',
            });
        } catch (err) {
            error = err;
        }
        expect(error).toBeInstanceOf(ConfigError);
        // The Function's own problems (from loadSettings) first, then those of consume.
        const problems = (error as ConfigError).problems;
        expect(problems).toContainEqual(expect.stringMatching(/^KVR_QUARANTINE_CONTAINER_URL is required/));
        expect(problems.slice(-4)).toEqual([
            expect.stringMatching(/^KV_LOGS_EVENTHUB__fullyQualifiedNamespace is required/),
            expect.stringMatching(/^KV_LOGS_HUB is required/),
            expect.stringMatching(/^KV_LOGS_CONSUMER_GROUP is required/),
            'KVR_CHECKPOINT_CONTAINER_URL: must be https',
        ]);
    });

    it('accepts a container URL with managed identity and rejects ambiguous or malformed values', () => {
        const ok = loadConsumeSettings({
            ...ENV,
            KVR_CHECKPOINT_CONNECTION_STRING: '',
            KVR_CHECKPOINT_CONTAINER_URL: 'https://acct.blob.core.windows.net/kvr-checkpoints',
            KV_LOGS_EVENTHUB__fullyQualifiedNamespace: 'sb://kvr-test.servicebus.windows.net/',
            AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000001',
        });
        expect(ok.checkpoints).toEqual({
            kind: 'container-url',
            url: 'https://acct.blob.core.windows.net/kvr-checkpoints',
        });
        expect(ok.connection).toEqual({
            kind: 'namespace',
            fullyQualifiedNamespace: 'kvr-test.servicebus.windows.net',
        });
        expect(ok.managedIdentityClientId).toBe('00000000-0000-0000-0000-000000000001');
        const problems = (env: Record<string, string>): readonly string[] => {
            try {
                loadConsumeSettings({ ...ENV, ...env });
                return [];
            } catch (err) {
                return (err as ConfigError).problems;
            }
        };
        expect(problems({ KV_LOGS_EVENTHUB: EMULATOR })).toEqual([
            'set only one of KV_LOGS_EVENTHUB__fullyQualifiedNamespace and KV_LOGS_EVENTHUB',
        ]);
        expect(
            problems({ KV_LOGS_EVENTHUB__fullyQualifiedNamespace: '', KV_LOGS_EVENTHUB: 'SharedAccessKey=secret' }),
        ).toEqual([expect.stringMatching(/^KV_LOGS_EVENTHUB: not an Event Hubs connection string/)]);
        expect(problems({ KVR_CHECKPOINT_CONTAINER_URL: 'https://acct.blob.core.windows.net/c' })).toEqual([
            'set only one of KVR_CHECKPOINT_CONTAINER_URL and KVR_CHECKPOINT_CONNECTION_STRING',
        ]);
        expect(
            problems({
                KVR_CHECKPOINT_CONNECTION_STRING: '',
                KVR_CHECKPOINT_CONTAINER_URL: 'https://acct.blob.core.windows.net/a/b',
            }),
        ).toEqual([expect.stringMatching(/must name exactly one container/)]);
        // A connection string is never echoed.
        expect(
            problems({
                KV_LOGS_EVENTHUB__fullyQualifiedNamespace: '',
                KV_LOGS_EVENTHUB: 'SharedAccessKey=secret',
            }).join(),
        ).not.toContain('secret');
    });
});

// ---- kvr send ----------------------------------------------------------------------------------------------------

/** A batch that accepts events up to `maxSizeInBytes`, counting each event's JSON (or raw) size plus 40 bytes. */
class FakeBatch implements EventDataBatch {
    readonly events: EventData[] = [];
    sizeInBytes = 0;
    constructor(readonly maxSizeInBytes: number) {}
    get count(): number {
        return this.events.length;
    }
    tryAdd(event: EventData): boolean {
        const body: unknown = event.body;
        const size = 40 + (Buffer.isBuffer(body) ? body.length : Buffer.byteLength(JSON.stringify(body)));
        if (this.sizeInBytes + size > this.maxSizeInBytes) return false;
        this.events.push(event);
        this.sizeInBytes += size;
        return true;
    }
}

class FakeProducer implements EventHubProducer {
    readonly sent: FakeBatch[] = [];
    readonly sentAt: number[] = [];
    closed = false;
    constructor(
        private readonly maxSizeInBytes: number,
        private readonly clock: () => number = () => 0,
    ) {}
    createBatch(): Promise<EventDataBatch> {
        return Promise.resolve(new FakeBatch(this.maxSizeInBytes));
    }
    sendBatch(batch: EventDataBatch): Promise<void> {
        if (!(batch instanceof FakeBatch) || batch.count === 0) throw new Error('unexpected batch');
        this.sent.push(batch);
        this.sentAt.push(this.clock());
        return Promise.resolve();
    }
    close(): Promise<void> {
        this.closed = true;
        return Promise.resolve();
    }
    bodies(): unknown[] {
        return this.sent.flatMap((b) => b.events.map((e) => e.body as unknown));
    }
}

async function send(args: string[], producer: FakeProducer, deps: Partial<SendDeps> = {}) {
    const stdout = new Capture();
    const stderr = new Capture();
    const targets: unknown[] = [];
    const code = await runSend(
        args,
        { stdout, stderr },
        {
            env: ENV,
            clients: {
                createProducer: (t) => {
                    targets.push(t);
                    return producer;
                },
            },
            ...deps,
        },
    );
    return { code, stdout: stdout.text, stderr: stderr.text, targets };
}

async function itemsIn(paths: string[]): Promise<{ source: string; text: string; problem?: string }[]> {
    const out: { source: string; text: string; problem?: string }[] = [];
    for (const file of (await listCaptures(paths)).files)
        for await (const chunk of readCapture(file))
            for (const it of chunk.items)
                out.push({
                    source: it.source ?? '',
                    text: String(it.body),
                    ...(it.problem === undefined ? {} : { problem: it.problem }),
                });
    return out;
}

describe('kvr send', () => {
    it('publishes every captured item as one event, over several batches, and reports the oversized one', async () => {
        // The fixtures, plus a file whose second item is not JSON.
        const extra = join(tempDir('kvr-send-'), 'mixed.jsonl');
        writeFileSync(extra, `${fixtureText('secret-get-success.json').trim()}\nnot-json\n`);
        const producer = new FakeProducer(8_000);
        const r = await send([FIXTURES, extra], producer);
        expect(r.code).toBe(0);
        expect(producer.closed).toBe(true);
        expect(r.targets).toEqual([
            {
                connection: { kind: 'namespace', fullyQualifiedNamespace: 'kvr-test.servicebus.windows.net' },
                eventHubName: 'insights-logs-auditevent',
                managedIdentityClientId: undefined,
            },
        ]);

        const items = await itemsIn([FIXTURES, extra]);
        const huge = items.filter((i) => i.source.includes('huge-string-field.json'));
        const unreadable = items.filter((i) => i.problem !== undefined);
        expect(huge).toHaveLength(1);
        expect(unreadable.map((i) => i.source)).toEqual([join(FIXTURES, 'malformed/not-json.json:1')]);
        // In reading order, every item but the oversized and the unreadable one: the parsed JSON, or the raw bytes
        // when the text is not JSON.
        const expected = items
            .filter((i) => !huge.includes(i) && !unreadable.includes(i))
            .map((i) => {
                try {
                    return JSON.parse(i.text) as unknown;
                } catch {
                    return Buffer.from(i.text);
                }
            });
        expect(producer.bodies()).toEqual(expected);
        expect(producer.bodies()).toContainEqual(fixtureBody('secret-purge-success.json'));
        expect(producer.bodies().at(-1)).toEqual(Buffer.from('not-json'));
        expect(producer.sent.length).toBeGreaterThanOrEqual(3);
        for (const b of producer.sent) expect(b.sizeInBytes).toBeLessThanOrEqual(8_000);

        expect(r.stderr).toContain(`not sent, larger than a batch (8000 bytes): ${huge[0]?.source}`);
        expect(r.stderr).toMatch(
            new RegExp(`sent ${expected.length} events in ${producer.sent.length} batches to insights-logs-auditevent`),
        );
        expect(r.stderr).toMatch(/oversized 1 \(larger than a batch, not sent/);
        expect(r.stderr).toContain(
            `not sent, unreadable: ${unreadable[0]?.source}: unexpected end of input inside a JSON value`,
        );
        expect(r.stderr).toMatch(/unreadable 1 \(not sent/);
        // PT1H.json holds bare records, and records-not-array.json has no records array: sent, and flagged.
        expect(r.stderr).toMatch(/5 sent event\(s\) are not Event Hubs bodies/);
    });

    it('fills batches in order and starts a new one when the next item does not fit', async () => {
        const files = ['secret-get-success.json', 'secret-purge-success.json', 'key-backup-success.json'].map((f) =>
            join(FIXTURES, f),
        );
        // Room for two of these bodies per batch.
        const producer = new FakeProducer(2_100);
        const r = await send(files, producer);
        expect(r.code).toBe(0);
        expect(producer.sent.map((b) => b.count)).toEqual([2, 1]);
        expect(producer.bodies()).toEqual(files.map((f) => JSON.parse(fixtureText(f.replace(`${FIXTURES}/`, '')))));
    });

    it('--synthetic N sends N generated Event Hubs bodies ending at the current time', async () => {
        const now = Date.parse('2026-10-05T12:00:00Z');
        const producer = new FakeProducer(1_000_000);
        const r = await send(['--synthetic', '25', '--hub-name', 'other-hub'], producer, { now: () => now });
        expect(r.code).toBe(0);
        const bodies = producer.bodies() as { records: { time: string; category: string }[] }[];
        expect(bodies).toHaveLength(25);
        for (const b of bodies) {
            expect(b.records.length).toBeGreaterThan(0);
            for (const rec of b.records) expect(Date.parse(rec.time)).toBeLessThanOrEqual(now);
        }
        expect(bodies.flatMap((b) => b.records.map((x) => x.category))).toContain('AuditEvent');
        expect((r.targets[0] as { eventHubName: string }).eventHubName).toBe('other-hub');
        expect(r.stderr).toMatch(/sent 25 events in 1 batches to other-hub/);
        // Deterministic for a seed and a time; another seed gives other traffic.
        const again = new FakeProducer(1_000_000);
        await send(['--synthetic', '25'], again, { now: () => now });
        expect(again.bodies()).toEqual(bodies);
        const other = new FakeProducer(1_000_000);
        await send(['--synthetic', '25', '--seed', '7'], other, { now: () => now });
        expect(other.bodies()).not.toEqual(bodies);
    });

    it('stops at the first failed send: one line, exit status 1, what was sent counted', async () => {
        const producer = new FakeProducer(2_100);
        const real = producer.sendBatch.bind(producer);
        let calls = 0;
        producer.sendBatch = (batch) => (++calls === 2 ? Promise.reject(new AggregateError([], '')) : real(batch));
        const files = ['secret-get-success.json', 'secret-purge-success.json', 'key-backup-success.json'];
        const r = await send(
            files.map((f) => join(FIXTURES, f)),
            producer,
        );
        expect(r.code).toBe(1);
        expect(producer.closed).toBe(true);
        expect(r.stderr).toMatch(/kvr send: sending failed: AggregateError\n/);
        expect(r.stderr).toMatch(/sent 2 events in 1 batches/);
    });

    it('--rate paces the events per second', async () => {
        let clock = 1_000_000;
        const producer = new FakeProducer(1_000_000, () => clock);
        const sleeps: number[] = [];
        const r = await send(['--synthetic', '5', '--rate', '2'], producer, {
            now: () => clock,
            sleep: (ms) => {
                sleeps.push(ms);
                clock += ms;
                return Promise.resolve();
            },
        });
        expect(r.code).toBe(0);
        expect(producer.bodies()).toHaveLength(5);
        expect(sleeps).toEqual([500, 500, 500, 500]);
        // The n-th event leaves n / rate seconds after the start.
        expect(producer.sentAt.map((t) => t - 1_000_000)).toEqual([0, 500, 1000, 1500, 2000]);
    });
});

// ---- usage errors, through the CLI entry point -------------------------------------------------------------------

describe('kvr consume and send usage errors (exit 2, one line)', () => {
    const names = [
        ...Object.values(SettingNames),
        ...Object.values(ConsumeSettingNames),
        `${SettingNames.eventHubConnection}__fullyQualifiedNamespace`,
    ];
    let saved: Record<string, string | undefined>;
    beforeEach(() => {
        saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
        for (const n of names) delete process.env[n];
    });
    afterEach(() => {
        for (const [n, v] of Object.entries(saved)) {
            if (v === undefined) delete process.env[n];
            else process.env[n] = v;
        }
    });

    it('consume without settings lists every missing one', async () => {
        const r = await runKvr('consume');
        expect(r.code).toBe(2);
        // One line per missing setting, after a heading that counts them.
        const [head, ...lines] = r.stderr.trimEnd().split('\n');
        expect(head).toBe(`kvr: invalid config app settings: ${lines.length} problems:`);
        for (const l of lines) expect(l).toMatch(/^ {2}- \S+ is required/);
        for (const name of [
            'KVR_QUARANTINE_CONTAINER_URL',
            'KVR_STATE',
            'KV_LOGS_EVENTHUB__fullyQualifiedNamespace',
            'KV_LOGS_HUB',
            'KV_LOGS_CONSUMER_GROUP',
            'KVR_CHECKPOINT_CONTAINER_URL',
        ])
            expect(r.stderr).toContain(`${name} is required`);
    });

    it('send without settings lists every missing one', async () => {
        const r = await runKvr('send', '--synthetic', '1');
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(
            /\n {2}- KV_LOGS_EVENTHUB__fullyQualifiedNamespace is required.*\n {2}- --hub-name or KV_LOGS_HUB/,
        );
    });

    it.each([
        [['consume', 'capture.json'], /consume takes no file arguments/],
        [['consume', '--bogus'], /unknown option '--bogus'; see 'kvr consume --help'/],
        [['consume', '--max-batch-size', '0'], /--max-batch-size must be a number from 1 to 10000/],
        [['consume', '--max-batch-size', '2.5'], /--max-batch-size must be a whole number/],
        [['send'], /send needs at least one capture file or directory, or --synthetic <count>/],
        [['send', '--rate', 'fast', 'x.json'], /--rate must be a positive number, not 'fast'/],
        [['send', '--synthetic', '0'], /--synthetic must be a positive whole number/],
        [['send', '--seed', '3', 'x.json'], /--seed needs --synthetic/],
        [['send', '--bogus', 'x.json'], /unknown option '--bogus'; see 'kvr send --help'/],
    ])('%j', async (argv, message) => {
        const r = await runKvr(...argv);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(message);
        expect(r.stdout).toBe('');
    });

    it('send names a missing capture before sending anything', async () => {
        Object.assign(process.env, {
            KV_LOGS_EVENTHUB__fullyQualifiedNamespace: 'kvr-test.servicebus.windows.net',
            KV_LOGS_HUB: 'hub',
        });
        const r = await runKvr('send', join(FIXTURES, 'secret-get-success.json'), '/no/such/capture.json');
        expect(r.code).toBe(2);
        expect(r.stderr).toBe("kvr: cannot read '/no/such/capture.json': no such file or directory\n");
    });

    it('lists consume and send in the help', async () => {
        const r = await runKvr('help');
        expect(r.stdout).toMatch(/^ {2}consume {2}/m);
        expect(r.stdout).toMatch(/^ {2}send {2}/m);
        expect((await runKvr('consume', '--help')).stdout).toMatch(/^Usage:\n {2}kvr consume /);
        expect((await runKvr('send', '--help')).stdout).toMatch(/^Usage:\n {2}kvr send /);
    });
});

// ---- send into consume -------------------------------------------------------------------------------------------

describe('kvr send into kvr consume', () => {
    it('gives the findings kvr replay gives for the same bodies', async () => {
        const files = [
            'secret-purge-success.json',
            'key-backup-success.json',
            'vault-patch-firewall-allow.json',
            'vault-patch-public-network-enabled.json',
            'vault-patch-rbac-disabled.json',
        ].map((f) => join(FIXTURES, f));
        const producer = new FakeProducer(4_000);
        await send(files, producer);
        expect(producer.sent.length).toBeGreaterThan(1);

        const run = await startConsume(realPipeline());
        await run.consumer.claim('0');
        let seq = 0;
        for (const batch of producer.sent)
            await run.consumer.deliver(
                '0',
                batch.events.map((e) => received(e.body, seq++)),
            );
        await run.stop();
        const consumed = logLines(run.stdout.text)
            .filter((l) => l.msg === 'kvr.finding')
            .map((l) => `${String(l.rule)} ${String(l.vault)}`);

        const replayed = decisionsOf((await runKvr('replay', ...files)).stdout)
            .filter((d) => d.type === 'finding')
            .map((d) => `${String(d.rule)} ${String(d.vault)}`);
        expect([...consumed].sort()).toEqual([
            'firewall-opened kv-payments-prod',
            'firewall-opened kv-sandbox-dev',
            'sensitive-operation kv-payments-prod',
            'sensitive-operation kv-sandbox-dev',
        ]);
        expect(consumed).toEqual(replayed);
        expect(run.consumer.checkpoints.map((c) => c.sequenceNumber)).toEqual(
            producer.sent.map((_b, i) => producer.sent.slice(0, i + 1).reduce((n, b) => n + b.count, 0) - 1),
        );
    });
});

describe('the real producer client', () => {
    it('is created for the target without connecting', async () => {
        const p = defaultProducerFactory.createProducer({
            connection: { kind: 'namespace', fullyQualifiedNamespace: 'kvr-test.servicebus.windows.net' },
            eventHubName: 'insights-logs-auditevent',
            managedIdentityClientId: undefined,
        });
        expect(p).toBeInstanceOf(EventHubProducerClient);
        expect((p as EventHubProducerClient).eventHubName).toBe('insights-logs-auditevent');
        await p.close();
    });
});
