import { MemoryStateStore } from '../adapters/memoryStateStore';
import type { DecisionSink, QuarantineSink } from '../core/ports';
import { rules } from '../core/rules';
import type { StateStore } from '../core/state/store';
import type { ResponderConfig } from '../config/responderConfig';
import { DetectionEngine } from './detectionEngine';
import { AuditPipeline } from './pipeline';

export interface PipelineSinks {
    readonly decisions: DecisionSink;
    readonly quarantine: QuarantineSink;
}

export interface PipelineOptions {
    readonly acceptBareRecords: boolean;
    /** Rule state; in memory unless given (replay, tests, benchmark). */
    readonly store?: StateStore;
}

/** Builds the one pipeline used by the Event Hubs trigger, `kvr replay` and the benchmark. */
export function createPipeline(config: ResponderConfig, sinks: PipelineSinks, options: PipelineOptions): AuditPipeline {
    const engine = new DetectionEngine({
        rules,
        toggles: config.ruleToggles,
        settings: config.detection,
        store: options.store ?? new MemoryStateStore(),
    });
    return new AuditPipeline({
        engine,
        decisions: sinks.decisions,
        quarantine: sinks.quarantine,
        acceptBareRecords: options.acceptBareRecords,
    });
}
