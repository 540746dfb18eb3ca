import { MemoryStateStore } from '../adapters/memoryStateStore';
import { StreamLogger } from '../adapters/invocationLogger';
import { systemClock } from '../adapters/systemClock';
import type { AuditEvent } from '../core/events/types';
import type { Clock, DecisionSink, KeyStateReader, Logger, QuarantineSink, VaultAdmin } from '../core/ports';
import { cmkInventoryTracker } from '../core/cmk/tracker';
import { rules } from '../core/rules';
import type { StateStore } from '../core/state/store';
import type { ResponderConfig } from '../config/responderConfig';
import { Alerting, type AlertingOptions } from './alerting';
import { CmkEnricher } from './cmk';
import { DetectionEngine } from './detectionEngine';
import { AuditPipeline } from './pipeline';
import { Remediator } from './remediator';
import { Undoer } from './undoer';
import { VaultLeases } from './vaultLease';

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
    /** The Key Vault keys data plane: CMK findings then carry the key's current state. */
    readonly keys?: KeyStateReader;
    /** Logs what enrichment could not do (the alerting log when alerting is on). */
    readonly log?: Logger;
    /** Incidents and notifications; without it decisions only reach `sinks.decisions`. */
    readonly alerting?: Omit<AlertingOptions, 'store' | 'settings' | 'undoer' | 'clock'>;
}

/** The parts of one responder that share state: the pipeline, its remediator and its alerting. */
export interface Responder {
    readonly pipeline: AuditPipeline;
    readonly remediator: Remediator;
    readonly undoer: Undoer;
    readonly store: StateStore;
    readonly alerting: Alerting | undefined;
}

/** Writes to each sink in turn: the decision log first, then alerting. */
class SinkChain implements DecisionSink {
    constructor(private readonly sinks: readonly DecisionSink[]) {}

    async write(decisions: Parameters<DecisionSink['write']>[0]): Promise<void> {
        for (const s of this.sinks) await s.write(decisions);
    }
}

/** Builds the one responder used by the Event Hubs trigger, `kvr replay`, `kvr serve` and the benchmark. */
export function createResponder(config: ResponderConfig, sinks: PipelineSinks, options: PipelineOptions): Responder {
    const store = options.store ?? new MemoryStateStore();
    const clock = options.clock ?? systemClock;
    const engine = new DetectionEngine({
        rules,
        trackers: [cmkInventoryTracker()],
        toggles: config.ruleToggles,
        settings: config.detection,
        store,
    });
    const owner = options.owner ?? `p${process.pid}`;
    const leases = new VaultLeases(store, clock, owner);
    const undoer = new Undoer({
        admin: options.admin,
        store,
        clock,
        leases,
        retryBudgetMs: config.remediation.retryBudgetMs,
        approvalMs: config.remediation.undoApprovalMs,
    });
    const remediator = new Remediator({
        admin: options.admin,
        settings: config.detection,
        remediation: config.remediation,
        guard: {
            protectedPrincipals: new Set([...config.protectedPrincipals, ...config.detection.responderIdentities]),
        },
        store,
        clock,
        owner,
        leases,
    });
    const alerting =
        options.alerting === undefined
            ? undefined
            : new Alerting({
                  decisionLog: sinks.decisions,
                  ...options.alerting,
                  store,
                  settings: config.alerting,
                  undoer,
                  clock,
              });
    const enricher =
        options.keys === undefined
            ? undefined
            : new CmkEnricher(options.keys, options.log ?? options.alerting?.log ?? new StreamLogger(process.stderr));
    const pipeline = new AuditPipeline({
        engine,
        remediator,
        ...(options.beforeDetection === undefined ? {} : { beforeDetection: options.beforeDetection }),
        decisions: alerting === undefined ? sinks.decisions : new SinkChain([sinks.decisions, alerting]),
        ...(enricher === undefined ? {} : { enrich: (d) => enricher.enrich(d) }),
        quarantine: sinks.quarantine,
        acceptBareRecords: options.acceptBareRecords,
    });
    return { pipeline, remediator, undoer, store, alerting };
}

/** The pipeline alone (tests and the benchmark). */
export function createPipeline(config: ResponderConfig, sinks: PipelineSinks, options: PipelineOptions): AuditPipeline {
    return createResponder(config, sinks, options).pipeline;
}
