import type { Counter, Histogram, Meter } from '@opentelemetry/api';
import type { Decision } from '../core/decisions';
import type { AuditEvent } from '../core/events/types';

/** What one batch reports to telemetry. */
export interface BatchTelemetry {
    readonly records: number;
    readonly events: readonly AuditEvent[];
    readonly skipped: number;
    readonly rejected: number;
    readonly decisions: readonly Decision[];
    readonly enqueueLagMs: readonly number[];
    /** Wall-clock time (epoch ms) when the decisions were made. */
    readonly decidedAtMs: number;
}

/**
 * Pipeline metrics through the OpenTelemetry API: counters of records (processed, skipped, quarantined), findings by
 * rule and severity, actions by outcome; histograms of latency from record time to decision and to action, and of
 * Event Hubs enqueue lag, so the on-call sees how near real time the pipeline is. With no meter provider registered
 * (telemetry not configured), the API's no-op meter makes every call free.
 */
export class OtelMetrics {
    private readonly records: Counter;
    private readonly findings: Counter;
    private readonly actions: Counter;
    private readonly decisionLatency: Histogram;
    private readonly actionLatency: Histogram;
    private readonly enqueueLag: Histogram;
    private readonly deliveries: Counter;

    constructor(meter: Meter) {
        this.records = meter.createCounter('kvr.records', {
            description: 'Records read, by outcome (processed, skipped, quarantined)',
        });
        this.findings = meter.createCounter('kvr.findings', { description: 'Findings, by rule and severity' });
        this.actions = meter.createCounter('kvr.actions', { description: 'Remediation actions, by action and status' });
        this.decisionLatency = meter.createHistogram('kvr.latency.decision', {
            description: 'Time from the audit record to the decision',
            unit: 'ms',
        });
        this.actionLatency = meter.createHistogram('kvr.latency.action', {
            description: 'Time from the audit record to a remediation action',
            unit: 'ms',
        });
        this.enqueueLag = meter.createHistogram('kvr.eventhubs.enqueue_lag', {
            description: 'Time from the audit record to its enqueueing in Event Hubs',
            unit: 'ms',
        });
        this.deliveries = meter.createCounter('kvr.notifications', {
            description: 'Notification delivery attempts, by channel and outcome (sent, retry, failed)',
        });
    }

    /** One notification delivery attempt (Teams or email). */
    recordDelivery(channel: string, outcome: 'sent' | 'retry' | 'failed'): void {
        this.deliveries.add(1, { channel, outcome });
    }

    recordBatch(t: BatchTelemetry): void {
        if (t.events.length > 0) this.records.add(t.events.length, { outcome: 'processed' });
        if (t.skipped > 0) this.records.add(t.skipped, { outcome: 'skipped' });
        if (t.rejected > 0) this.records.add(t.rejected, { outcome: 'quarantined' });
        for (const e of t.events) this.decisionLatency.record(Math.max(0, t.decidedAtMs - e.timeMs));
        for (const lag of t.enqueueLagMs) this.enqueueLag.record(Math.max(0, lag));
        for (const d of t.decisions) {
            if (d.type === 'finding')
                this.findings.add(d.count, { rule: d.rule, severity: d.severity, vault: d.vault });
            else if (d.type === 'action') {
                this.actions.add(1, { action: d.action, status: d.status });
                const time = typeof d.time === 'string' ? Date.parse(d.time) : Number.NaN;
                if (d.status === 'applied' && !Number.isNaN(time))
                    this.actionLatency.record(Math.max(0, t.decidedAtMs - time));
            }
        }
    }
}
