import { AuthorizationManagementClient } from '@azure/arm-authorization';
import type { TokenCredential } from '@azure/identity';
import { credentialFor } from '../adapters/credential';
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { metrics } from '@opentelemetry/api';
import { OtelMetrics } from '../adapters/otelMetrics';
import { ArmAccessAdmin } from '../adapters/armAccessAdmin';
import { ArmVaultAdmin } from '../adapters/armVaultAdmin';
import { BlobQuarantineSink } from '../adapters/blobQuarantineSink';
import { tableStateStoreAt } from '../adapters/tableStateStore';
import { type AppSettings, type ConfigProblem, loadSettings } from '../config/loadSettings';
import type { Decision } from '../core/decisions';
import type { DecisionSink, QuarantineSink } from '../core/ports';
import { GraphMailChannel } from '../adapters/graphMailChannel';
import { KeyVaultLinkSigner } from '../adapters/linkSigner';
import { systemClock } from '../adapters/systemClock';
import { TeamsWebhookChannel } from '../adapters/teamsWebhookChannel';
import { StreamLogger } from '../adapters/invocationLogger';
import type { Alerting } from './alerting';
import { LinkTokens } from './alerting';
import { createResponder, reconcileDepsOf } from './createPipeline';
import type { AuditBatchDeps } from './handlers/handleAuditBatch';
import type { AuditSilenceTimerDeps } from './handlers/handleAuditSilence';
import type { CmkExpiryDeps } from './handlers/handleCmkExpiry';
import type { CmkReportDeps } from './handlers/handleCmkReport';
import { type CmkPostureDeps, composeCmkPosture } from './handlers/handleCmkPosture';
import type { IncidentLinkDeps } from './handlers/handleIncidentLink';
import { KeyVaultKeyStateReader } from '../adapters/keyStateReader';
import { startTelemetry } from './telemetry';
// -- reconcile queue (h-reconcile) --
import { storageReconcileQueueAt } from '../adapters/storageReconcileQueue';
import type { ReconcileDeps } from './handlers/handleReconcile';
import { queueLocationOf } from './reconcileSettings';
// -- end reconcile queue --
import { IngestHeartbeat } from './heartbeat';

/** The Function app's dependencies, built once per worker. */
export interface AppDeps {
    readonly settings: AppSettings;
    /**
     * Settings the app ignored and runs without (an optional channel whose Key Vault reference did not resolve ...),
     * each logged as `kvr.config-problem` at start. For reports such as `kvr doctor`.
     */
    readonly configProblems: readonly ConfigProblem[];
    readonly auditBatch: AuditBatchDeps;
    readonly incidentLink: IncidentLinkDeps;
    readonly alerting: Alerting;
    readonly cmkExpiry: CmkExpiryDeps;
    readonly auditSilence: AuditSilenceTimerDeps;
    readonly cmkReport: CmkReportDeps;
    readonly cmkPosture: CmkPostureDeps;
    /** The reconcile queue trigger, its poison queue and the drift sweep. */
    readonly reconcile: ReconcileDeps;
}

function quarantineOf(settings: AppSettings): QuarantineSink {
    const q = settings.quarantine;
    if (q.kind === 'connection-string') {
        return new BlobQuarantineSink(
            BlobServiceClient.fromConnectionString(q.connectionString).getContainerClient(q.container),
        );
    }
    return new BlobQuarantineSink(new ContainerClient(q.url, credentialOf(settings)));
}

function credentialOf(settings: AppSettings): TokenCredential {
    return credentialFor(settings.managedIdentityClientId);
}

/**
 * Decisions reach the invocation's structured logs (`kvr.finding` ...) through the handler, and people through
 * alerting (chained after this sink).
 */
const logOnlyDecisions: DecisionSink = { write: (_d: readonly Decision[]) => Promise.resolve() };

/** Alerting logs outside an invocation (a timer or HTTP call passes its own context to the handler's logger). */
const processLogger = new StreamLogger(process.stderr);

/**
 * The only place adapters are constructed. Synchronous and free of I/O: it validates every setting, so that a
 * misconfigured app fails while loading (the host then runs no trigger and no event is checkpointed) instead of
 * failing each batch.
 */
export function composeApp(env: Readonly<Record<string, string | undefined>>): AppDeps {
    const settings = loadSettings(env);
    // Loud, but not fatal: ingestion, timers and links keep running without the channel.
    for (const p of settings.configProblems)
        processLogger.error('kvr.config-problem', { setting: p.setting, problem: p.problem, effect: p.effect });
    // Normally started already by the bundle's first module (telemetryFirst.ts), before the SDKs loaded; idempotent.
    startTelemetry(env);
    // After startTelemetry: the metrics API hands out no-op meters until a provider is registered.
    const telemetry = new OtelMetrics(metrics.getMeter('kv-responder'));
    const credential = credentialOf(settings);
    // Our own retries (remediator): the SDK does not retry a 429 without Retry-After.
    const admin = new ArmVaultAdmin(
        (subscriptionId) =>
            new KeyVaultManagementClient(credential, subscriptionId, { retryOptions: { maxRetries: 0 } }),
    );
    // Role assignments (by id: the client's subscription is never used) and diagnostic settings, own retries too.
    const access = new ArmAccessAdmin(
        new AuthorizationManagementClient(credential, '00000000-0000-0000-0000-000000000000', {
            retryOptions: { maxRetries: 0 },
        }),
        credential,
    );
    const a = settings.alerting;
    const keys = new KeyVaultKeyStateReader(credential);
    // -- reconcile queue (h-reconcile): without KVR_RECONCILE_QUEUE the app remediates in process after each batch.
    const queueLocation = queueLocationOf(env);
    const queue = queueLocation === undefined ? undefined : storageReconcileQueueAt(queueLocation, () => credential);
    if (queue === undefined)
        processLogger.warn('kvr.reconcile-in-process', {
            reason: 'no reconcile queue configured: remediation runs inside the Event Hubs batch',
        });
    // -- end reconcile queue --
    const responder = createResponder(
        settings.config,
        { decisions: logOnlyDecisions, quarantine: quarantineOf(settings) },
        {
            acceptBareRecords: false,
            store: tableStateStoreAt(settings.state, () => credentialOf(settings)),
            admin,
            access,
            keys,
            ...(queue === undefined ? {} : { queue }),
            log: processLogger,
            alerting: {
                channels: {
                    ...(a.teamsWebhookUrl === undefined
                        ? {}
                        : { teams: new TeamsWebhookChannel({ webhookUrl: a.teamsWebhookUrl }) }),
                    ...(a.mailSender === undefined ? {} : { email: new GraphMailChannel({ credential }) }),
                },
                ...(a.mailSender === undefined ? {} : { mailFrom: a.mailSender }),
                links: new LinkTokens(
                    new KeyVaultLinkSigner(a.signingKey.vaultUrl, a.signingKey.name, credential),
                    a.publicUrl,
                    settings.config.alerting.linkTtlMs,
                    systemClock,
                ),
                log: processLogger,
                keys,
                allowReenable: settings.config.cmk.allowReenable,
                // Tag-matched routes: the vault's tags as ARM has them, read when an incident opens.
                tagsOf: (vault) =>
                    admin.get(vault).then(
                        (v) => v.tags,
                        (err: unknown) => {
                            processLogger.error('kvr.routing-tags-unavailable', {
                                vault: vault.name,
                                error: err instanceof Error ? err.message : String(err),
                            });
                            return undefined;
                        },
                    ),
                onDelivery: (channel, outcome) => telemetry.recordDelivery(channel, outcome),
            },
        },
    );
    const alerting = responder.alerting as Alerting;
    return {
        settings,
        configProblems: settings.configProblems,
        auditBatch: {
            pipeline: responder.pipeline,
            metrics: telemetry,
            // kvr doctor: evidence of receiving (one background state write per minute per worker at most).
            heartbeat: new IngestHeartbeat(responder.store, processLogger),
        },
        incidentLink: {
            alerting,
            trustEasyAuth: a.trustEasyAuth,
            possessionOnlyLinks: a.possessionOnlyLinks,
            publicUrl: a.publicUrl,
        },
        alerting,
        cmkExpiry: { store: responder.store, keys, settings: settings.config.cmk, sink: alerting },
        auditSilence: {
            store: responder.store,
            settings: settings.config.detection,
            sink: responder.decisions,
            now: () => systemClock.now(),
        },
        cmkReport: { store: responder.store, settings: settings.config.cmk, alerting },
        cmkPosture: composeCmkPosture(settings, { sink: alerting, admin }),
        reconcile: reconcileDepsOf(responder, systemClock, settings.config.remediation.vaultIds),
    };
}

let built: AppDeps | undefined;

/** The app's dependencies, composed once per worker from `process.env` (every function registration shares them). */
export function appDeps(): AppDeps {
    built ??= composeApp(process.env);
    return built;
}
