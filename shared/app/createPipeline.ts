import { MemoryStateStore } from '../adapters/memoryStateStore';
import { StreamLogger } from '../adapters/invocationLogger';
import { systemClock } from '../adapters/systemClock';
import type { AuditEvent } from '../core/events/types';
import type {
    Clock,
    DecisionSink,
    KeyStateReader,
    Logger,
    QuarantineSink,
    ReconcileQueue,
    AccessAdmin,
    VaultAdmin,
} from '../core/ports';
import { MemoryReconcileQueue } from '../adapters/memoryReconcileQueue';
import { cmkInventoryTracker } from '../core/cmk/tracker';
import { rules } from '../core/rules';
import type { StateStore } from '../core/state/store';
import type { ResponderConfig } from '../config/responderConfig';
import { Alerting, type AlertingOptions } from './alerting';
import { CmkEnricher } from './cmk';
import { DetectionEngine } from './detectionEngine';
import { AuditPipeline } from './pipeline';
import { ReconcileIntents } from './reconcileIntents';
import { Reconciler } from './reconciler';
import { Remediator } from './remediator';
import { Undoer } from './undoer';
import type { ReconcileDeps } from './handlers/handleReconcile';
import { LEASE_MS, VaultLeases } from './vaultLease';
import { ARM_CALL_LIMIT_MS } from '../adapters/armVaultAdmin';

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
    /** Role assignments and diagnostic settings in ARM (remove-role-assignment, restore-diagnostic-setting). */
    readonly access?: AccessAdmin;
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
    /**
     * The reconcile queue (Azure Storage Queues in the Function app, whose queue trigger runs the worker). Without
     * it, an in-memory queue that the pipeline drains after each batch (replay, serve, consume, tests).
     */
    readonly queue?: ReconcileQueue;
    /** Vault lease duration (renewed every third of it while work runs). */
    readonly leaseMs?: number;
    /**
     * The per-call time limit of the ARM client (ArmVaultAdmin's, 30 s by default): an unreleased lease that lapsed is
     * taken over only that much later, so a write of the previous holder still in flight cannot race the new one.
     */
    readonly armCallLimitMs?: number;
    /** How long a message for a busy vault waits before it is tried again (default 30 s; 250 ms in process). */
    readonly busyDelayMs?: number;
}

/** The parts of one responder that share state: the pipeline, its reconcile worker and its alerting. */
export interface Responder {
    readonly pipeline: AuditPipeline;
    readonly remediator: Remediator;
    readonly reconciler: Reconciler;
    readonly intents: ReconcileIntents;
    readonly reconcileQueue: ReconcileQueue;
    /** Where the worker's decisions go: the decision sink, then alerting (as the batch's). */
    readonly decisions: DecisionSink;
    readonly undoer: Undoer;
    readonly store: StateStore;
    readonly alerting: Alerting | undefined;
}

/**
 * What the reconcile worker's queue handlers need from a responder: its reconciler, intents, queue, store and
 * decision chain, on the given clock.
 */
export function reconcileDepsOf(
    responder: Responder,
    clock: Clock,
    configuredVaultIds?: readonly string[],
): ReconcileDeps {
    return {
        reconciler: responder.reconciler,
        intents: responder.intents,
        queue: responder.reconcileQueue,
        store: responder.store,
        clock,
        sink: responder.decisions,
        ...(configuredVaultIds === undefined ? {} : { configuredVaultIds }),
    };
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
    const leases = new VaultLeases(
        store,
        clock,
        owner,
        options.leaseMs ?? LEASE_MS,
        options.armCallLimitMs ?? ARM_CALL_LIMIT_MS,
    );
    const undoer = new Undoer({
        admin: options.admin,
        ...(options.access === undefined ? {} : { access: options.access }),
        store,
        clock,
        leases,
        retryBudgetMs: config.remediation.retryBudgetMs,
        approvalMs: config.remediation.undoApprovalMs,
    });
    const remediator = new Remediator({
        admin: options.admin,
        ...(options.access === undefined ? {} : { access: options.access }),
        settings: config.detection,
        remediation: config.remediation,
        guard: {
            protectedPrincipals: new Set([...config.protectedPrincipals, ...config.detection.responderIdentities]),
        },
        store,
        clock,
        owner,
        severityOf: (rule) => engine.severities.get(rule),
    });
    const intents = new ReconcileIntents(store, clock);
    const memoryQueue = options.queue === undefined ? new MemoryReconcileQueue(clock) : undefined;
    const queue: ReconcileQueue = options.queue ?? memoryQueue ?? new MemoryReconcileQueue(clock);
    const reconciler = new Reconciler({
        remediator,
        intents,
        leases,
        queue,
        clock,
        ...(options.log === undefined ? {} : { log: options.log }),
        busyDelayMs: options.busyDelayMs ?? (memoryQueue === undefined ? 30_000 : 250),
        maxPerInvocation: config.remediation.maxPerInvocation,
        // Without ARM access runs only plan (nothing is applied, no budget to share): vaults side by side.
        drainConcurrency: options.admin === undefined ? 8 : 1,
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
    const decisions = alerting === undefined ? sinks.decisions : new SinkChain([sinks.decisions, alerting]);
    const pipeline = new AuditPipeline({
        engine,
        reconcile: {
            intents,
            queue,
            settings: config.detection,
            windowsOf: (vaults) => remediator.windowsOf(vaults),
            skipRepeats: options.admin === undefined,
            ...(memoryQueue === undefined ? {} : { drain: () => reconciler.drain(memoryQueue) }),
        },
        ...(options.beforeDetection === undefined ? {} : { beforeDetection: options.beforeDetection }),
        decisions,
        ...(enricher === undefined ? {} : { enrich: (d) => enricher.enrich(d) }),
        quarantine: sinks.quarantine,
        acceptBareRecords: options.acceptBareRecords,
    });
    return { pipeline, remediator, reconciler, intents, reconcileQueue: queue, decisions, undoer, store, alerting };
}

/** The pipeline alone (tests and the benchmark). */
export function createPipeline(config: ResponderConfig, sinks: PipelineSinks, options: PipelineOptions): AuditPipeline {
    return createResponder(config, sinks, options).pipeline;
}
