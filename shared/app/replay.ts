import { listCaptures, readCapture } from '../adapters/captureReader';
import type { ResponderConfig } from '../config/responderConfig';
import { parseRecordTime } from '../core/events/time';
import type { Logger } from '../core/ports';
import type { StateStore } from '../core/state/store';
import type { Simulation } from '../simulation/simulation';
import { MemoryReconcileQueue } from '../adapters/memoryReconcileQueue';
import { checkAuditSilence } from './auditSilence';
import { recordSweep, sweepVaults } from './handlers/handleReconcile';
import { createResponder, type PipelineOptions, type PipelineSinks, type Responder } from './createPipeline';
import type { BatchItem, PipelineStats } from './pipeline';

export interface ReplayProgress {
    readonly file: string;
    readonly fileIndex: number;
    readonly fileCount: number;
    readonly bytesDone: number;
    readonly bytesTotal: number;
    readonly stats: PipelineStats;
}

export interface ReplayOptions {
    readonly inputs: readonly string[];
    readonly config: ResponderConfig;
    readonly sinks: PipelineSinks;
    /** Durable rule state (e.g. to seed baselines into Table Storage); in memory when absent. */
    readonly store?: StateStore;
    /** Simulated vaults (`--vaults`): remediations run against them through the real ARM client. */
    readonly simulation?: Simulation;
    /** Called after each batch and its timer checks; the next batch waits for a promise it returns. */
    readonly onProgress?: (progress: ReplayProgress) => void | Promise<void>;
    /** Incidents and notifications (`--outbox`); decisions only reach the sinks without it. */
    readonly alerting?: PipelineOptions['alerting'];
    /** Feeds an existing responder (`kvr serve --replay`) instead of building one. */
    readonly responder?: Responder;
    /**
     * Items per batch: an item is one Event Hubs body, or one bare record in a JSON Lines archive. One body per batch
     * is how the captured bodies arrived; more mimics the trigger's batching (`maxEventBatchSize`). Default: 1 with
     * simulated vaults (remediation, caps and recorded changes keep their real order); otherwise as many items as
     * fit in 1 MiB of text, for speed (detection keeps its state across batches, so batch boundaries do not change
     * what it finds, except that several records in one batch are grouped into one finding at once).
     */
    readonly batchSize?: number;
    /** Where the timer checks log (truncation and the like); silent when absent. */
    readonly log?: Logger;
}

/** How often, in the records' time, a replay runs the checks that a live deployment runs on timers. */
export const REPLAY_TIMER_PERIOD_MS = 15 * 60 * 1000;

/**
 * The drift sweep's cadence in the records' time: the live `driftSweep` timer's default schedule
 * (DEFAULT_DRIFT_SWEEP_SCHEDULE, `0 41 * * * *`: every hour at minute 41). A replay sweeps when the records' clock
 * passes such a minute, with that minute as the sweep's time.
 */
export const REPLAY_SWEEP_PERIOD_MS = 60 * 60 * 1000;
export const REPLAY_SWEEP_OFFSET_MS = 41 * 60 * 1000;

const SILENT: Logger = { info: () => {}, warn: () => {}, error: () => {} };

const TIME_FIELD = /"time"\s*:\s*"([^"]{10,40})"/g;

/** The latest record time in a chunk's raw text, read ahead of processing (undefined when none parses). */
function latestTimeIn(items: readonly BatchItem[]): number | undefined {
    let latest: number | undefined;
    for (const item of items) {
        if (typeof item.body !== 'string') continue;
        for (const m of item.body.matchAll(TIME_FIELD)) {
            const t = parseRecordTime(m[1] ?? '');
            if (!Number.isNaN(t) && (latest === undefined || t > latest)) latest = t;
        }
    }
    return latest;
}

export interface ReplayResult {
    readonly files: number;
    readonly ignoredFiles: readonly string[];
    readonly stats: PipelineStats;
    readonly responder: Responder;
}

/**
 * Pushes captured logs through exactly the pipeline the Function uses. All inputs are resolved (and proven
 * readable) before the first record is processed.
 */
export async function replay(options: ReplayOptions): Promise<ReplayResult> {
    const listing = await listCaptures(options.inputs);
    const responder =
        options.responder ??
        createResponder(options.config, options.sinks, {
            acceptBareRecords: true,
            ...(options.alerting === undefined ? {} : { alerting: options.alerting }),
            ...(options.store === undefined ? {} : { store: options.store }),
            ...(options.simulation === undefined
                ? {}
                : {
                      admin: options.simulation.admin,
                      access: options.simulation.access,
                      beforeDetection: (events) => options.simulation?.applyRecorded(events),
                  }),
        });
    const pipeline = responder.pipeline;
    const bytesTotal = listing.files.reduce((n, f) => n + f.size, 0);
    let bytesBefore = 0;
    // Batches as they arrived: with simulated vaults, recorded changes, remediations, caps and undo windows then
    // happen in their real order (a batch applies all its recorded changes before detection sees any of them).
    const batchSize = options.batchSize ?? (options.simulation === undefined ? undefined : 1);
    if (batchSize !== undefined && (!Number.isInteger(batchSize) || batchSize < 1))
        throw new RangeError('batchSize must be a whole number from 1');
    // Timer checks on the records' clock: the live `auditSilence` timer runs every 15 minutes of wall time; a replay
    // runs it whenever a batch's newest record enters another 15-minute slot, at that record's time, so a backtest
    // over archives reports the silences a live deployment would have reported while they lasted. The clock is the
    // batch's own, not the newest time seen so far: archives are stored per vault, and a replay that reads one
    // vault's month and then another's must not call the second vault silent against the first one's clock (a
    // heartbeat later than the clock is never silent).
    const silence = {
        store: responder.store,
        settings: options.config.detection,
        sink: responder.decisions,
        log: options.log ?? SILENT,
    };
    let lastSlot: number | undefined;
    // The drift sweep on the records' clock, with simulated vaults only (without them there is no ARM to read): every
    // vault the config names or that had an intent is reconciled against the simulated ARM, as the hourly timer does,
    // so a change that reached ARM without a record that triggers (lost, or never logged) shows up at its sweep.
    const queue = responder.reconcileQueue;
    const sweeps = options.simulation !== undefined && queue instanceof MemoryReconcileQueue ? queue : undefined;
    let lastSweep: number | undefined;
    const sweep = async (at: number, q: MemoryReconcileQueue): Promise<void> => {
        const { vaults } = await sweepVaults(responder.store, options.config.remediation.vaultIds, (id) =>
            silence.log.warn('kvr.drift-sweep-bad-vault-id', { vaultId: id }),
        );
        for (const m of await recordSweep(responder.intents, vaults, at)) await q.send(m);
        const worked = await responder.reconciler.drain(q);
        pipeline.countDecisions(worked.decisions);
        if (worked.decisions.length > 0) await responder.decisions.write(worked.decisions);
        await worked.commit();
    };
    // Sweeps when the records' clock passes minute 41, at that minute; before the batch that moves the clock past it
    // when its record times can be read ahead (the live sweep runs before the records that come later), else after it.
    const sweepCheck = async (now: number): Promise<void> => {
        if (sweeps === undefined) return;
        const slot = Math.floor((now - REPLAY_SWEEP_OFFSET_MS) / REPLAY_SWEEP_PERIOD_MS);
        if (lastSweep !== undefined && slot > lastSweep)
            await sweep(slot * REPLAY_SWEEP_PERIOD_MS + REPLAY_SWEEP_OFFSET_MS, sweeps);
        if (lastSweep === undefined || slot > lastSweep) lastSweep = slot;
    };
    const runTimers = async (events: readonly { readonly timeMs: number }[]): Promise<void> => {
        let now: number | undefined;
        for (const e of events) if (now === undefined || e.timeMs > now) now = e.timeMs;
        if (now === undefined) return;
        await sweepCheck(now);
        const slot = Math.floor(now / REPLAY_TIMER_PERIOD_MS);
        if (lastSlot === undefined) lastSlot = slot;
        if (slot === lastSlot) return;
        lastSlot = slot;
        await checkAuditSilence(silence, now);
    };
    for (const [index, file] of listing.files.entries()) {
        for await (const chunk of readCapture(file, batchSize === undefined ? {} : { maxItems: batchSize })) {
            if (sweeps !== undefined) {
                const ahead = latestTimeIn(chunk.items);
                if (ahead !== undefined) await sweepCheck(ahead);
            }
            const report = await pipeline.processBatch(chunk.items);
            await runTimers(report.events);
            await options.onProgress?.({
                file: file.path,
                fileIndex: index,
                fileCount: listing.files.length,
                bytesDone: bytesBefore + chunk.bytesRead,
                bytesTotal,
                stats: pipeline.stats,
            });
        }
        bytesBefore += file.size;
    }
    if (options.simulation !== undefined) await options.sinks.decisions.write(options.simulation.states());
    return { files: listing.files.length, ignoredFiles: listing.ignored, stats: pipeline.stats, responder };
}
