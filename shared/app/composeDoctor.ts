import { RECONCILE_QUEUE } from '../adapters/storageReconcileQueue';
// Builds the doctor's checks from the app settings, as the Function app reads them. Unlike composeApp it never throws
// on bad settings: every problem becomes a failed `settings` row, and each check runs with what is valid (an
// unresolved Key Vault reference on a channel turns that channel off, as it must in the app).
import { readFileSync } from 'node:fs';
import { KeyVaultManagementClient, type KeyVaultManagementClientOptionalParams } from '@azure/arm-keyvault';
import type { TokenCredential } from '@azure/identity';
import type { KeyClientOptions } from '@azure/keyvault-keys';
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { ArmVaultAdmin } from '../adapters/armVaultAdmin';
import { credentialFor } from '../adapters/credential';
import {
    ARM_SCOPE,
    ArmRest,
    blobProbe,
    doctorProbes,
    keyClientFactory,
    queueProbe,
    tableProbe,
} from '../adapters/doctorProbes';
import { GraphMailChannel, type GraphMailChannelOptions } from '../adapters/graphMailChannel';
import { KeyVaultLinkSigner } from '../adapters/linkSigner';
import { DEFAULT_STATE_TABLE, tableClientAt, tableLocationOf, TableStateStore } from '../adapters/tableStateStore';
import { TeamsWebhookChannel } from '../adapters/teamsWebhookChannel';
import { loadSettings } from '../config/loadSettings';
import { parseResponderConfigText, type ResponderConfig } from '../config/responderConfig';
import { DoctorSettingNames, SettingNames } from '../config/settingNames';
import { isMailAddress } from '../core/alerts/mime';
import { isUnresolvedKeyVaultReference } from '../core/doctor/report';
import { ConfigError } from '../core/errors';
import { configurableRuleIds } from '../core/rules';
import { vaultRefOf } from './alerting';
import { type DoctorDeps, type DoctorVault, KEY_VAULT_REFERENCE_FIX } from './doctor';
import { type HeartbeatValue, readHeartbeat } from './heartbeat';

type Env = Readonly<Record<string, string | undefined>>;

/** How the doctor's clients reach their services: production defaults; tests point them at the local fakes. */
export interface DoctorTransport {
    readonly credential?: TokenCredential;
    /** ARM endpoint and the CA of a local fake. */
    readonly arm?: { readonly endpoint: string; readonly ca: string };
    /** Options of every Key Vault client (data-plane listing and the signing key). */
    readonly keyClientOptions?: KeyClientOptions;
    /** CA of a local Teams Workflows fake. */
    readonly teamsCa?: string;
    readonly graph?: Pick<GraphMailChannelOptions, 'baseUrl' | 'customHosts' | 'ca'>;
    /** CA of a local HTTPS storage emulator (the queue probe). */
    readonly storageCa?: string;
}

export interface ComposeDoctorOptions {
    /** More vaults to check, by ARM resource id (`--vault`). */
    readonly vaults?: readonly string[];
    readonly transport?: DoctorTransport;
    readonly readFile?: (path: string) => string;
    /** Per-call timeout of notification sends (ms). */
    readonly sendTimeoutMs?: number;
}

export interface ComposedDoctor extends DoctorDeps {
    /** Releases the connection pools of the clients. */
    close(): Promise<void>;
}

function nonEmpty(env: Env, name: string): string | undefined {
    const v = env[name]?.trim();
    return v === undefined || v.length === 0 ? undefined : v;
}

/** The setting a loadSettings problem is about (its message starts with the setting name), for the report. */
function settingOf(problem: string): string {
    const m = /^([A-Z][A-Z0-9_]*[A-Z0-9])\b/.exec(problem);
    return m?.[1] ?? 'app settings';
}

const NAMESPACE_ID =
    /^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/microsoft\.eventhub\/namespaces\/([^/]+)\/?$/i;

/** Vault resource ids named in a raw config: `guardrails.overrides[].match.resourceId` and `cmk.posture.vaults`. */
function vaultIdsInConfig(text: string | undefined): { id: string; source: string }[] {
    if (text === undefined) return [];
    let raw: unknown;
    try {
        raw = JSON.parse(text);
    } catch {
        return [];
    }
    const out: { id: string; source: string }[] = [];
    const r = raw as {
        guardrails?: { overrides?: { match?: { resourceId?: unknown } }[] };
        cmk?: { posture?: { vaults?: unknown[] } };
    };
    (Array.isArray(r?.guardrails?.overrides) ? r.guardrails.overrides : []).forEach((o, i) => {
        const id = o?.match?.resourceId;
        if (typeof id === 'string') out.push({ id, source: `guardrails.overrides.${i}.match.resourceId` });
    });
    (Array.isArray(r?.cmk?.posture?.vaults) ? r.cmk.posture.vaults : []).forEach((v, i) => {
        if (typeof v === 'string' && v.startsWith('/')) out.push({ id: v, source: `cmk.posture.vaults.${i}` });
    });
    return out;
}

/** Composes the doctor from app settings; never throws for bad settings (they are rows of the report). */
export function composeDoctor(env: Env, options: ComposeDoctorOptions = {}): ComposedDoctor {
    const readFile = options.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
    const t = options.transport ?? {};
    const problems: { setting: string; problem: string; fix: string }[] = [];
    const problem = (setting: string, text: string, fix?: string) =>
        problems.push({ setting, problem: text, fix: fix ?? `set ${setting} as infra/README.md describes` });

    // Unresolved Key Vault references: the channels turn off (their rows say why); any other setting is a problem.
    const effective: Record<string, string | undefined> = { ...env };
    const unresolved = new Set<string>();
    for (const [name, value] of Object.entries(env)) {
        if (!isUnresolvedKeyVaultReference(value)) continue;
        unresolved.add(name);
        delete effective[name];
        if (name !== SettingNames.teamsWebhookUrl && name !== SettingNames.mailSender)
            problem(name, `${name} is an unresolved Key Vault reference`, KEY_VAULT_REFERENCE_FIX);
    }
    try {
        loadSettings(effective, readFile);
    } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        for (const p of err.problems) {
            const setting = settingOf(p);
            if (!unresolved.has(setting)) problem(setting, p);
        }
    }

    // The responder config (policies and the vault list), read leniently: its problems are already listed above.
    const inline = nonEmpty(effective, SettingNames.config);
    const path = nonEmpty(effective, SettingNames.configPath);
    let configText: string | undefined = inline;
    if (configText === undefined && path !== undefined) {
        try {
            configText = readFile(path);
        } catch {
            configText = undefined;
        }
    }
    let config: ResponderConfig | undefined;
    try {
        config =
            configText === undefined
                ? parseResponderConfigText('{}', configurableRuleIds, 'default')
                : parseResponderConfigText(
                      configText,
                      configurableRuleIds,
                      inline !== undefined ? SettingNames.config : (path ?? ''),
                  );
    } catch {
        config = undefined;
    }

    const vaults: DoctorVault[] = [];
    const seen = new Set<string>();
    for (const { id, source } of [
        ...vaultIdsInConfig(configText),
        ...(options.vaults ?? []).map((id) => ({ id, source: '--vault' })),
    ]) {
        let ref;
        try {
            ref = vaultRefOf(id.replace(/\/+$/, ''));
        } catch {
            problem(
                source === '--vault' ? 'vault' : SettingNames.config,
                `${source}: '${id}' is not a vault resource id`,
            );
            continue;
        }
        if (seen.has(ref.resourceId)) continue;
        seen.add(ref.resourceId);
        vaults.push({ ref, source });
    }

    // Event Hubs: the namespace from the trigger connection, the hub and consumer group, the namespace's ARM id.
    const fqns =
        nonEmpty(effective, `${SettingNames.eventHubConnection}__fullyQualifiedNamespace`) ??
        /Endpoint=sb:\/\/([^/;]+)/i.exec(nonEmpty(effective, SettingNames.eventHubConnection) ?? '')?.[1];
    const nsId = nonEmpty(effective, SettingNames.eventHubNamespaceId);
    const nsIdMatch = nsId === undefined ? null : NAMESPACE_ID.exec(nsId);
    if (nsId !== undefined && nsIdMatch === null)
        problem(
            SettingNames.eventHubNamespaceId,
            `${SettingNames.eventHubNamespaceId}: expected /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.EventHub/namespaces/<name>`,
        );
    const nsFromFqns = fqns?.split('.')[0]?.toLowerCase();
    const nsFromId = nsIdMatch?.[1]?.toLowerCase();
    if (nsFromFqns !== undefined && nsFromId !== undefined && nsFromFqns !== nsFromId)
        problem(
            SettingNames.eventHubNamespaceId,
            `${SettingNames.eventHubNamespaceId} names namespace '${nsFromId}' but ${SettingNames.eventHubConnection}__fullyQualifiedNamespace is '${fqns}'`,
            'point both settings at the namespace the diagnostic settings write to',
        );
    if (fqns === undefined)
        problem(
            `${SettingNames.eventHubConnection}__fullyQualifiedNamespace`,
            `${SettingNames.eventHubConnection}__fullyQualifiedNamespace is not set (the Event Hubs trigger connection)`,
        );
    const hubName = nonEmpty(effective, SettingNames.eventHubName);
    if (hubName === undefined)
        problem(SettingNames.eventHubName, `${SettingNames.eventHubName} is not set (the log hub)`);
    const consumerGroup = nonEmpty(effective, SettingNames.eventHubConsumerGroup);
    if (consumerGroup === undefined)
        problem(
            SettingNames.eventHubConsumerGroup,
            `${SettingNames.eventHubConsumerGroup} is not set (the responder's consumer group)`,
        );
    const namespaceName = nsFromId ?? nsFromFqns;
    const eventHub =
        namespaceName === undefined || hubName === undefined
            ? undefined
            : {
                  target: {
                      namespaceName,
                      hubName,
                      ...(nsIdMatch === null || nsId === undefined ? {} : { namespaceId: nsId }),
                  },
                  consumerGroup,
              };
    const eventHubNote =
        eventHub === undefined
            ? 'the Event Hubs settings are incomplete (see settings)'
            : `set ${SettingNames.eventHubNamespaceId} (the namespace's ARM resource id) to check the hub and consumer group`;

    // Clients.
    const credential = t.credential ?? credentialFor(nonEmpty(effective, SettingNames.managedIdentityClientId));
    const armOptions: KeyVaultManagementClientOptionalParams = {
        retryOptions: { maxRetries: 0 },
        ...(t.arm === undefined
            ? {}
            : { endpoint: t.arm.endpoint, credentials: { scopes: [ARM_SCOPE] }, tlsOptions: { ca: t.arm.ca } }),
    };
    const admin = new ArmVaultAdmin((sub) => new KeyVaultManagementClient(credential, sub, armOptions), 20_000);
    const arm = new ArmRest(credential, t.arm === undefined ? {} : { endpoint: t.arm.endpoint, ca: t.arm.ca });
    const keyOptions = t.keyClientOptions ?? {};
    const closers: (() => Promise<void>)[] = [() => arm.close()];

    // Storage.
    const stateValue = nonEmpty(effective, SettingNames.state);
    const tableName = nonEmpty(effective, SettingNames.stateTable) ?? DEFAULT_STATE_TABLE;
    let table;
    let heartbeat: (() => Promise<HeartbeatValue | undefined>) | undefined;
    if (stateValue !== undefined && !/^http:\/\//i.test(stateValue)) {
        try {
            const loc = tableLocationOf(stateValue, tableName);
            // The state store's own client builder: the same retry policy as the app's (TABLE_RETRY_OPTIONS).
            const client = tableClientAt(loc, () => credential);
            table = tableProbe(client, `${loc.kind === 'url' ? loc.url : 'connection string'} / ${loc.table}`);
            const store = new TableStateStore(client);
            heartbeat = () => readHeartbeat(store);
        } catch (err) {
            problem(SettingNames.state, `${SettingNames.state}: ${(err as Error).message}`);
        }
    }
    const qUrl = nonEmpty(effective, SettingNames.quarantineContainerUrl);
    const qCs = nonEmpty(effective, SettingNames.quarantineConnectionString);
    let blob;
    try {
        if (qUrl !== undefined && qUrl.startsWith('https://'))
            blob = blobProbe(new ContainerClient(qUrl, credential), qUrl);
        else if (qCs !== undefined) {
            const container = nonEmpty(effective, SettingNames.quarantineContainer) ?? 'kvr-quarantine';
            blob = blobProbe(
                BlobServiceClient.fromConnectionString(qCs).getContainerClient(container),
                `connection string / ${container}`,
            );
        }
    } catch (err) {
        problem(SettingNames.quarantineContainerUrl, `quarantine: ${(err as Error).message}`);
    }
    // The app's own identity-based queue connection names the queue service; the queue is fixed (kvr-reconcile).
    const queueService = nonEmpty(effective, `${SettingNames.reconcileQueue}__queueServiceUri`);
    const queueUrl =
        nonEmpty(effective, DoctorSettingNames.reconcileQueueUrl) ??
        (queueService === undefined ? undefined : `${queueService.replace(/\/+$/, '')}/${RECONCILE_QUEUE}`);
    let queue;
    if (queueUrl !== undefined) {
        let u: URL | undefined;
        try {
            u = new URL(queueUrl);
        } catch {
            u = undefined;
        }
        if (u === undefined || u.protocol !== 'https:' || u.pathname.split('/').filter((x) => x !== '').length < 1)
            problem(
                DoctorSettingNames.reconcileQueueUrl,
                `${DoctorSettingNames.reconcileQueueUrl}: expected https://<account>.queue.core.windows.net/<queue>`,
            );
        else {
            const q = queueProbe(queueUrl, credential, t.storageCa === undefined ? {} : { ca: t.storageCa });
            queue = q;
            if (q.close !== undefined) closers.push(() => q.close?.() ?? Promise.resolve());
        }
    }
    const queueNote =
        queueUrl === undefined
            ? `no reconcile queue configured (${DoctorSettingNames.reconcileQueueUrl} is not set)`
            : `${DoctorSettingNames.reconcileQueueUrl} is not valid (see settings)`;

    // Channels.
    const teamsUrl = nonEmpty(effective, SettingNames.teamsWebhookUrl);
    let teamsChannel: TeamsWebhookChannel | undefined;
    if (teamsUrl !== undefined && teamsUrl.startsWith('https://')) {
        try {
            teamsChannel = new TeamsWebhookChannel({
                webhookUrl: teamsUrl,
                timeoutMs: options.sendTimeoutMs ?? 15_000,
                ...(t.teamsCa === undefined ? {} : { ca: t.teamsCa }),
            });
            const c = teamsChannel;
            closers.push(() => c.close());
        } catch {
            teamsChannel = undefined;
        }
    }
    const sender = nonEmpty(effective, SettingNames.mailSender);
    let mailChannel: GraphMailChannel | undefined;
    if (sender !== undefined && isMailAddress(sender)) {
        mailChannel = new GraphMailChannel({
            credential,
            timeoutMs: options.sendTimeoutMs ?? 30_000,
            maxRetries: 0,
            ...(t.graph ?? {}),
        });
        const c = mailChannel;
        closers.push(() => c.close());
    }
    const channelState = (name: string, ok: boolean) =>
        unresolved.has(name) ? ('unresolved' as const) : ok ? ('configured' as const) : ('unset' as const);

    // Signing key.
    const keyId = nonEmpty(effective, SettingNames.signingKeyId);
    const keyMatch = keyId === undefined ? null : /^(https:\/\/[^/]+)\/keys\/([A-Za-z0-9-]{1,127})\/?$/.exec(keyId);
    const signer =
        keyMatch === null
            ? undefined
            : {
                  target: keyId as string,
                  signer: new KeyVaultLinkSigner(keyMatch[1] as string, keyMatch[2] as string, credential, keyOptions),
              };

    return {
        settingsProblems: problems,
        vaults,
        noVaultsNote:
            'no vault resource ids in the config (guardrails.overrides[].match.resourceId, cmk.posture.vaults): name them there, or pass --vault',
        policyFor: config === undefined ? undefined : (vault, tags) => config.detection.policyFor(vault, tags),
        ruleEnabled: (rule) => config?.ruleToggles.get(rule)?.enabled !== false,
        eventHub,
        eventHubNote,
        eventHubNamespaceId: nsIdMatch === null ? undefined : nsId,
        probes: doctorProbes({ admin, arm, keyClient: keyClientFactory(credential, keyOptions) }),
        storage: { table, blob, queue, queueNote },
        teams: {
            setting: SettingNames.teamsWebhookUrl,
            state: channelState(SettingNames.teamsWebhookUrl, teamsChannel !== undefined),
            ...(teamsChannel === undefined ? {} : { channel: teamsChannel }),
        },
        mail: {
            setting: SettingNames.mailSender,
            state: channelState(SettingNames.mailSender, mailChannel !== undefined),
            ...(mailChannel === undefined || sender === undefined ? {} : { channel: mailChannel, from: sender }),
            to: config?.alerting.rosterNamed('default')?.tiers[0]?.email ?? [],
        },
        signer,
        heartbeat,
        async close() {
            await Promise.allSettled(closers.map((c) => c()));
        },
    };
}
