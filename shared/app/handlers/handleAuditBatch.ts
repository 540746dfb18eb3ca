import type { InvocationContext } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import type { OtelMetrics } from '../../adapters/otelMetrics';
import { ensureError } from '../../core/errors';
import type { AuditPipeline, BatchItem, BatchReport } from '../pipeline';

export interface AuditBatchDeps {
    readonly pipeline: AuditPipeline;
    /** Pipeline metrics (OpenTelemetry; a no-op unless telemetry is configured). */
    readonly metrics?: OtelMetrics;
    /** Wall clock for latency metrics. */
    readonly now?: () => number;
    /** Records that a batch was handled (throttled, in the background): `kvr doctor`'s evidence of receiving. */
    readonly heartbeat?: { beat(nowMs: number, bodies: number): void };
}

/** Counts for one invocation, also logged as `kvr.batch`. */
export interface AuditBatchSummary {
    readonly bodies: number;
    readonly records: number;
    readonly events: number;
    readonly skipped: number;
    readonly rejected: number;
    readonly findings: number;
    readonly ruleErrors: number;
}

export interface AuditBatchResult {
    readonly summary: AuditBatchSummary;
    /** The normalized events of the batch (the host ignores the return value; tests read it). */
    readonly events: BatchReport['events'];
}

interface PartitionMetadata {
    readonly partitionContext?: { readonly partitionId?: string | number };
    readonly sequenceNumberArray?: readonly (string | number)[];
    readonly enqueuedTimeUtcArray?: readonly (string | number | Date)[];
}

function enqueuedTimesOf(context: InvocationContext): (number | undefined)[] {
    const raw = ((context.triggerMetadata ?? {}) as PartitionMetadata).enqueuedTimeUtcArray ?? [];
    return raw.map((v) => {
        const ms = v instanceof Date ? v.getTime() : typeof v === 'number' ? v : Date.parse(v);
        return Number.isNaN(ms) ? undefined : ms;
    });
}

function sourcesOf(context: InvocationContext, count: number): (string | undefined)[] {
    const meta = (context.triggerMetadata ?? {}) as PartitionMetadata;
    const partition = meta.partitionContext?.partitionId;
    const seqs = meta.sequenceNumberArray;
    const out: (string | undefined)[] = [];
    for (let i = 0; i < count; i++) {
        const seq = seqs?.[i];
        const parts: string[] = [];
        if (partition !== undefined) parts.push(`partition ${String(partition)}`);
        if (seq !== undefined) parts.push(`sequence ${String(seq)}`);
        else parts.push(`message ${i + 1} of ${count}`);
        out.push(parts.join(' '));
    }
    return out;
}

export function summarize(bodies: number, report: BatchReport): AuditBatchSummary {
    let findings = 0;
    let ruleErrors = 0;
    for (const d of report.decisions) {
        if (d.type === 'finding') findings++;
        else if (d.type === 'error') ruleErrors++;
    }
    return {
        bodies,
        records: report.records,
        events: report.events.length,
        skipped: report.skipped,
        rejected: report.quarantined.length,
        findings,
        ruleErrors,
    };
}

/**
 * The Event Hubs trigger (cardinality `many`): each message is one diagnostic-settings body, as an object, a JSON
 * string or a Buffer. Bad items are quarantined and counted, never a failed batch. It throws only when the batch as a
 * whole cannot be handled (a sink is down), so that the trigger's bounded retry policy re-runs it.
 */
export async function handleAuditBatch(
    messages: unknown,
    context: InvocationContext,
    deps: AuditBatchDeps,
): Promise<AuditBatchResult> {
    const log = new InvocationLogger(context);
    const list: readonly unknown[] = Array.isArray(messages) ? messages : [messages];
    const sources = sourcesOf(context, list.length);
    const enqueued = enqueuedTimesOf(context);
    const items: BatchItem[] = list.map((body, i) => {
        const source = sources[i];
        const enqueuedTimeMs = enqueued[i];
        return {
            body,
            ...(source === undefined ? {} : { source }),
            ...(enqueuedTimeMs === undefined ? {} : { enqueuedTimeMs }),
        };
    });
    let report: BatchReport;
    try {
        report = await deps.pipeline.processBatch(items);
    } catch (err) {
        const e = ensureError(err);
        log.error('kvr.batch-failed', {
            error: e.message,
            bodies: list.length,
            retry: context.retryContext?.retryCount ?? 0,
        });
        throw e;
    }
    for (const q of report.quarantined)
        log.warn('kvr.rejected', { reason: q.reason, source: q.source, excerpt: q.excerpt });
    for (const d of report.decisions) {
        if (d.type === 'finding') {
            log.warn('kvr.finding', {
                rule: d.rule,
                severity: d.severity,
                vault: d.vault,
                principal: d.principal,
                summary: d.summary,
            });
        } else if (d.type === 'error') log.error('kvr.rule-error', { ...d });
        else if (d.type === 'action') {
            const fields = { action: d.action, status: d.status, vault: d.vault, rule: d.rule, detail: d.detail };
            if (d.status === 'failed') log.error('kvr.action', fields);
            else log.info('kvr.action', fields);
        }
    }
    const summary = summarize(list.length, report);
    deps.metrics?.recordBatch({
        records: report.records,
        events: report.events,
        skipped: report.skipped,
        rejected: report.quarantined.length,
        decisions: report.decisions,
        enqueueLagMs: report.enqueueLagMs,
        decidedAtMs: (deps.now ?? Date.now)(),
    });
    log.info('kvr.batch', { ...summary });
    deps.heartbeat?.beat((deps.now ?? Date.now)(), list.length);
    return { summary, events: report.events };
}
