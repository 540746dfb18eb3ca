import {
    AggregationTemporality,
    DataPointType,
    InMemoryMetricExporter,
    MeterProvider,
    PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { OtelMetrics } from '../shared/adapters/otelMetrics';
import { LocalLinkSigner } from '../shared/adapters/linkSigner';
import { LinkTokens } from '../shared/app/alerting';
import { createPipeline, createResponder } from '../shared/app/createPipeline';
import { DeliveryError, type DeliveryChannel } from '../shared/core/alerts/types';
import { handleAuditBatch } from '../shared/app/handlers/handleAuditBatch';
import { DEFAULT_CONFIG } from '../shared/config/responderConfig';
import { makeContext } from './support/context';
import { fixtureBody, fixtureText } from './support/fixtures';

describe('telemetry (OpenTelemetry metrics, in-memory exporter)', () => {
    it('counts records, findings and quarantined items and records latency and enqueue lag', async () => {
        const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
        const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
        const provider = new MeterProvider({ readers: [reader] });
        const metrics = new OtelMetrics(provider.getMeter('kv-responder-test'));
        const pipeline = createPipeline(
            DEFAULT_CONFIG,
            { decisions: new MemoryDecisionSink(), quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: false },
        );
        // The purge record is from 2026-10-05T09:50:00Z; it was enqueued 90 s later and decided 5 minutes later.
        const { context } = makeContext({
            enqueuedTimeUtcArray: ['2026-10-05T09:51:30Z', '2026-10-05T09:51:30Z', '2026-10-05T09:51:30Z'],
        });
        await handleAuditBatch(
            [
                fixtureBody('secret-purge-success.json'),
                fixtureText('malformed/not-json.json'),
                fixtureText('multi-record-mixed.json'),
            ],
            context,
            { pipeline, metrics, now: () => Date.parse('2026-10-05T09:55:00Z') },
        );
        await reader.forceFlush();
        const all = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
        const byName = new Map(all.map((m) => [m.descriptor.name, m]));

        const records = byName.get('kvr.records');
        expect(records?.dataPointType).toBe(DataPointType.SUM);
        const counts = Object.fromEntries(
            (records?.dataPoints ?? []).map((p) => [String(p.attributes.outcome), p.value]),
        );
        expect(counts).toEqual({ processed: 4, skipped: 1, quarantined: 1 });

        const findings = byName.get('kvr.findings')?.dataPoints ?? [];
        expect(findings.map((p) => [p.attributes.rule, p.attributes.severity, p.value])).toEqual([
            ['sensitive-operation', 'high', 1],
        ]);

        const decision = byName.get('kvr.latency.decision');
        expect(decision?.dataPointType).toBe(DataPointType.HISTOGRAM);
        const hist = decision?.dataPoints[0]?.value as { count: number; min?: number; max?: number };
        expect(hist.count).toBe(4);
        expect(hist.max).toBe(5 * 60_000);

        const lag = byName.get('kvr.eventhubs.enqueue_lag')?.dataPoints[0]?.value as { count: number; min?: number };
        expect(lag.count).toBe(4);
        expect(lag.min).toBeGreaterThanOrEqual(0);
        await provider.shutdown();
    });

    it('counts notification deliveries by channel and outcome, through the alerting hook', async () => {
        const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
        const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
        const provider = new MeterProvider({ readers: [reader] });
        const metrics = new OtelMetrics(provider.getMeter('kv-responder-test'));
        let fail = true;
        const teams: DeliveryChannel = {
            name: 'teams',
            send: () => (fail ? Promise.reject(new DeliveryError('HTTP 503', true, 503)) : Promise.resolve()),
        };
        const clock = { now: () => Date.parse('2026-10-05T10:00:00Z'), sleep: () => Promise.resolve() };
        const { pipeline, alerting } = createResponder(
            DEFAULT_CONFIG,
            { decisions: new MemoryDecisionSink(), quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: false,
                clock,
                alerting: {
                    channels: { teams },
                    links: new LinkTokens(LocalLinkSigner.generate(), 'https://kvr.example.net', 3_600_000, clock),
                    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
                    onDelivery: (channel, outcome) => metrics.recordDelivery(channel, outcome),
                },
            },
        );
        await pipeline.processBatch([{ body: fixtureBody('secret-purge-success.json') }]);
        fail = false;
        clock.now = () => Date.parse('2026-10-05T10:05:00Z');
        await alerting?.tick();
        await reader.forceFlush();
        const points = exporter
            .getMetrics()
            .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
            .find((m) => m.descriptor.name === 'kvr.notifications')?.dataPoints;
        expect(
            Object.fromEntries(
                (points ?? []).map((p) => [`${String(p.attributes.channel)}:${String(p.attributes.outcome)}`, p.value]),
            ),
        ).toEqual({ 'teams:retry': 1, 'teams:sent': 1 });
        await provider.shutdown();
    });
});
