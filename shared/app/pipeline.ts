import type { Decision, RejectedDecision } from '../core/decisions';
import { unwrapBody } from '../core/events/envelope';
import { excerptOf } from '../core/events/excerpt';
import { RecordNormalizer, type SkipReason } from '../core/events/normalize';
import type { AuditEvent } from '../core/events/types';
import type { VaultRef } from '../core/events/types';
import type { DecisionSink, QuarantineItem, QuarantineSink, ReconcileMessage, ReconcileQueue } from '../core/ports';
import type { DetectionSettings } from '../core/rules/settings';
import type { DetectionEngine, Trigger } from './detectionEngine';
import type { KnownIntent, ReconcileIntents } from './reconcileIntents';
import { intentInputsOf } from './reconcileTriggers';
import type { WriteWindow } from './remediator';

/** One input item: an Event Hubs body (object, JSON string or Buffer) and where it came from. */
export interface BatchItem {
    readonly body: unknown;
    readonly source?: string;
    /** Set when the reader already knows the item is unusable (unterminated or oversized text). */
    readonly problem?: string;
    /** When Event Hubs enqueued the body (epoch ms), for the enqueue-lag metric. */
    readonly enqueuedTimeMs?: number;
}

/** Running totals over every batch a pipeline has processed. */
export class PipelineStats {
    bodies = 0;
    records = 0;
    events = 0;
    skipped = 0;
    readonly skippedByReason = new Map<SkipReason, number>();
    rejectedBodies = 0;
    rejectedRecords = 0;
    findings = 0;
    readonly findingsByRule = new Map<string, number>();
    ruleErrors = 0;
    readonly actionsByStatus = new Map<string, number>();

    get rejected(): number {
        return this.rejectedBodies + this.rejectedRecords;
    }

    toJSON(): Record<string, unknown> {
        return {
            bodies: this.bodies,
            records: this.records,
            events: this.events,
            skipped: this.skipped,
            skippedByReason: Object.fromEntries(this.skippedByReason),
            rejectedBodies: this.rejectedBodies,
            rejectedRecords: this.rejectedRecords,
            findings: this.findings,
            findingsByRule: Object.fromEntries(this.findingsByRule),
            ruleErrors: this.ruleErrors,
            actionsByStatus: Object.fromEntries(this.actionsByStatus),
        };
    }
}

/** What one batch produced. */
export interface BatchReport {
    readonly events: readonly AuditEvent[];
    readonly decisions: readonly Decision[];
    readonly quarantined: readonly QuarantineItem[];
    readonly records: number;
    readonly skipped: number;
    /** Per event: enqueue time minus record time (ms), where the enqueue time is known. */
    readonly enqueueLagMs: readonly number[];
    /** One wake-up per vault whose reconcile intent the batch recorded (sent once the findings are written). */
    readonly reconcile: readonly ReconcileMessage[];
}

/** Where the batch hands remediation: durable intents and a wake-up queue; the worker runs elsewhere. */
export interface ReconcileHandoff {
    readonly intents: ReconcileIntents;
    readonly queue: ReconcileQueue;
    readonly settings: DetectionSettings;
    /** Our recorded write windows of the vaults, by vault name (lost-update detection); one read for all of them. */
    readonly windowsOf?: (vaults: readonly VaultRef[]) => Promise<ReadonlyMap<string, readonly WriteWindow[]>>;
    /**
     * Without ARM access nothing is reconciled, only planned: a redelivered record then plans nothing again (with ARM,
     * it must trigger again, so that a batch that failed after detection still remediates).
     */
    readonly skipRepeats?: boolean;
    /**
     * In process (replay, serve, consume): runs the worker on what the batch queued, before the batch's sinks, so
     * that its outcome reaches the same incidents; `commit` marks the intents processed once the sinks have it.
     */
    readonly drain?: () => Promise<{ decisions: Decision[]; commit: () => Promise<void> }>;
}

export interface PipelineOptions {
    readonly engine: DetectionEngine;
    /** Records reconcile intents for the vaults a batch implicates (the worker reconciles them against ARM). */
    readonly reconcile?: ReconcileHandoff;
    /** Sees each batch's events before the rules do (`kvr replay --vaults` applies recorded changes to its simulation). */
    readonly beforeDetection?: (events: readonly AuditEvent[]) => void;
    readonly decisions: DecisionSink;
    readonly quarantine: QuarantineSink;
    /** Replay accepts bare records (JSON Lines archives); the Event Hubs trigger requires the envelope. */
    readonly acceptBareRecords: boolean;
    /** Adds facts read elsewhere (the state of a customer-managed key) to the batch's findings. */
    readonly enrich?: (decisions: readonly Decision[]) => Promise<Decision[]>;
}

function increment<K>(map: Map<K, number>, key: K): void {
    map.set(key, (map.get(key) ?? 0) + 1);
}

/**
 * The one processing path shared by the Event Hubs trigger, `kvr replay` and the benchmark: unwrap bodies,
 * normalize records, run the rules, then hand decisions and quarantined items to their sinks.
 */
export class AuditPipeline {
    readonly stats = new PipelineStats();
    private readonly normalizer = new RecordNormalizer();

    constructor(private readonly options: PipelineOptions) {}

    /** Everything but the sinks: unwrap, normalize, detect (reading and writing rule state). */
    async evaluateBatch(items: readonly BatchItem[]): Promise<BatchReport> {
        const { engine, acceptBareRecords } = this.options;
        const stats = this.stats;
        const events: AuditEvent[] = [];
        const decisions: Decision[] = [];
        const quarantined: QuarantineItem[] = [];
        let records = 0;
        let skipped = 0;
        const enqueueLagMs: number[] = [];
        const reject = (reason: string, raw: unknown, source: string | undefined): void => {
            const excerpt = excerptOf(raw);
            const d: RejectedDecision = {
                type: 'rejected',
                reason,
                excerpt,
                ...(source === undefined ? {} : { source }),
            };
            decisions.push(d);
            quarantined.push({ reason, source, excerpt, raw });
        };
        for (const item of items) {
            stats.bodies++;
            if (item.problem !== undefined) {
                stats.rejectedBodies++;
                reject(item.problem, item.body, item.source);
                continue;
            }
            const body = unwrapBody(item.body, { acceptBareRecords });
            if (body.kind === 'rejected') {
                stats.rejectedBodies++;
                reject(body.reason, body.text ?? item.body, item.source);
                continue;
            }
            const list = body.records;
            for (let i = 0; i < list.length; i++) {
                const raw = list[i];
                records++;
                const result = this.normalizer.normalize(raw);
                if (result.kind === 'event') {
                    events.push(result.event);
                    if (item.enqueuedTimeMs !== undefined) enqueueLagMs.push(item.enqueuedTimeMs - result.event.timeMs);
                } else if (result.kind === 'skipped') {
                    skipped++;
                    increment(stats.skippedByReason, result.reason);
                } else {
                    stats.rejectedRecords++;
                    const where = list.length > 1 ? `record ${i + 1} of ${list.length}` : undefined;
                    const source =
                        item.source === undefined
                            ? where
                            : where === undefined
                              ? item.source
                              : `${item.source} ${where}`;
                    reject(`invalid record: ${result.reason}`, raw, source);
                }
            }
        }
        this.options.beforeDetection?.(events);
        const triggers: Trigger[] = [];
        const found = await engine.evaluate(events, triggers);
        // Intent before anything is confirmed: a batch that fails from here on is redelivered and records it again.
        const handoff = this.options.reconcile;
        let reconcile: ReconcileMessage[] = [];
        if (handoff !== undefined) {
            // The intents are read side by side with the write windows (one round trip, not two in a row).
            let known: ReadonlyMap<string, KnownIntent | null> | undefined;
            const inputs = await intentInputsOf(
                events,
                triggers,
                handoff.settings,
                handoff.windowsOf,
                handoff.skipRepeats,
                async (vaults) => {
                    known = await handoff.intents.readKnownMany(vaults);
                },
            );
            if (inputs.length > 0) reconcile = await handoff.intents.record(inputs, known);
        }
        const enriched =
            this.options.enrich === undefined || found.length === 0 ? found : await this.options.enrich(found);
        for (const d of enriched) {
            decisions.push(d);
            this.count(d);
        }
        stats.records += records;
        stats.events += events.length;
        stats.skipped += skipped;
        return { events, decisions, quarantined, records, skipped, enqueueLagMs, reconcile };
    }

    /** Counts decisions made outside a batch (the drift sweep of a replay) in {@link stats}. */
    countDecisions(decisions: readonly Decision[]): void {
        for (const d of decisions) this.count(d);
    }

    private count(d: Decision): void {
        const stats = this.stats;
        if (d.type === 'finding') {
            stats.findings++;
            increment(stats.findingsByRule, d.rule);
        } else if (d.type === 'error') stats.ruleErrors++;
        else if (d.type === 'action') increment(stats.actionsByStatus, d.status);
    }

    /**
     * Processes one batch and waits until its decisions and quarantined items are written. A sink failure throws:
     * that is a whole-batch infrastructure failure, for the trigger's retry policy.
     */
    async processBatch(items: readonly BatchItem[]): Promise<BatchReport> {
        let report = await this.evaluateBatch(items);
        if (report.quarantined.length > 0) await this.options.quarantine.put(report.quarantined);
        const handoff = this.options.reconcile;
        let commit: (() => Promise<void>) | undefined;
        if (handoff?.drain !== undefined) {
            // In process: the worker runs now, and its outcome goes out with the batch's findings.
            for (const m of report.reconcile) await handoff.queue.send(m);
            const worked = await handoff.drain();
            for (const d of worked.decisions) this.count(d);
            report = { ...report, decisions: [...report.decisions, ...worked.decisions] };
            commit = worked.commit;
        }
        if (report.decisions.length > 0) await this.options.decisions.write(report.decisions);
        if (handoff !== undefined && handoff.drain === undefined) {
            // After the findings are written, so the worker finds their incidents; before they are confirmed, so a
            // failure here redelivers the batch, which records the intent and sends the wake-up again.
            for (const m of report.reconcile) await handoff.queue.send(m);
        }
        // Only now are the findings delivered; a batch that failed before this point emits them again on retry. The
        // intents' commit and the findings' confirmation both only record that the sinks have what they cover: neither
        // waits for the other (one round trip, not two in a row); a failure of either fails the batch once both ended.
        const settled = await Promise.allSettled([
            commit?.(),
            report.decisions.length > 0 ? this.options.engine.confirm(report.decisions) : undefined,
        ]);
        for (const r of settled) if (r.status === 'rejected') throw r.reason;
        return report;
    }
}
