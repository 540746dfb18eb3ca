import { MemoryStateStore } from '../adapters/memoryStateStore';
import { systemClock } from '../adapters/systemClock';
import type { AuditEvent } from '../core/events/types';
import type { Clock, DecisionSink, QuarantineSink, VaultAdmin } from '../core/ports';
import { rules } from '../core/rules';
import type { StateStore } from '../core/state/store';
import type { ResponderConfig } from '../config/responderConfig';
import { DetectionEngine } from './detectionEngine';
import { AuditPipeline } from './pipeline';
import { Remediator } from './remediator';

export interface PipelineSinks {
    readonly decisions: DecisionSink;
    readonly quarantine: QuarantineSink;
}

export interface PipelineOptions {
    readonly acceptBareRecords: boolean;
    /** Rule state; in memory unless given (replay, tests, benchmark). */
    readonly store?: StateStore;
    /** ARM access for remediation; without it remediations are only planned. */
    readonly admin?: VaultAdmin;
    readonly clock?: Clock;
    /** Identifies this processor in remediation leases. */
    readonly owner?: string;
    readonly beforeDetection?: (events: readonly AuditEvent[]) => void;
}

/** Builds the one pipeline used by the Event Hubs trigger, `kvr replay` and the benchmark. */
export function createPipeline(config: ResponderConfig, sinks: PipelineSinks, options: PipelineOptions): AuditPipeline {
    const store = options.store ?? new MemoryStateStore();
    const engine = new DetectionEngine({ rules, toggles: config.ruleToggles, settings: config.detection, store });
    const remediator = new Remediator({
        admin: options.admin,
        settings: config.detection,
        remediation: config.remediation,
        guard: {
            protectedPrincipals: new Set([...config.protectedPrincipals, ...config.detection.responderIdentities]),
        },
        store,
        clock: options.clock ?? systemClock,
        owner: options.owner ?? `p${process.pid}`,
    });
    return new AuditPipeline({
        engine,
        remediator,
        ...(options.beforeDetection === undefined ? {} : { beforeDetection: options.beforeDetection }),
        decisions: sinks.decisions,
        quarantine: sinks.quarantine,
        acceptBareRecords: options.acceptBareRecords,
    });
}
