// `kvr doctor`: the checks, over injected probes (adapters that talk to ARM, Key Vault, Storage and the channels).
// Every check runs with its own timeout and its own fault handling: a probe that throws or hangs fails that row only,
// and every failure carries the fix. Nothing here writes to a vault: write permissions are read from ARM's
// permissions API, never tried.
import { randomUUID } from 'node:crypto';
import { buildMime } from '../core/alerts/mime';
import { renderSummaryCard, renderSummaryEmail } from '../core/alerts/render';
import type { DeliveryChannel } from '../core/alerts/types';
import {
    actionsNeeded,
    auditRoutingOf,
    type CheckResult,
    type DoctorReport,
    doctorReport,
    enforcedActions,
    excessActions,
    type HubTarget,
    missingActions,
} from '../core/doctor/report';
import type { VaultRef } from '../core/events/types';
import type { DoctorProbes, ProbeError, StorageProbe } from '../core/doctor/ports';
import type { VaultSnapshot } from '../core/remediation/types';
import type { VaultPolicy } from '../core/rules/settings';
import type { LinkSigner } from '../adapters/linkSigner';
import type { HeartbeatValue } from './heartbeat';

export type { DoctorProbes, ProbeError, StorageProbe } from '../core/doctor/ports';

/** The Event Hubs management API version of the hub and consumer-group reads. */
export const EVENTHUB_API_VERSION = '2024-01-01';

export const KEY_VAULT_REFERENCE_FIX =
    "grant Key Vault Secrets User on the secret's vault to the app identity and set keyVaultReferenceIdentity to that identity";
export const FIREWALL_FIX =
    'the app cannot pass the vault firewall (Functions is not a trusted service): VNet integration + VNet rule, or private endpoint';

export interface DoctorVault {
    readonly ref: VaultRef;
    /** Where the doctor learnt of it (config path), for the report. */
    readonly source: string;
}

export interface DoctorChannelSetting {
    /** The app setting that configures the channel. */
    readonly setting: string;
    readonly state: 'unset' | 'unresolved' | 'configured';
    /** The adapter, when configured. */
    readonly channel?: DeliveryChannel;
}

export interface DoctorEventHub {
    readonly target: HubTarget;
    readonly consumerGroup: string | undefined;
}

/** Everything the checks need, composed from the app settings (see composeDoctor). */
export interface DoctorDeps {
    /** Problems in the app settings (loadSettings' list and the doctor's own), one row each. */
    readonly settingsProblems: readonly { readonly setting: string; readonly problem: string; readonly fix: string }[];
    readonly vaults: readonly DoctorVault[];
    /** Why no vault is known, when `vaults` is empty. */
    readonly noVaultsNote: string;
    readonly policyFor:
        ((vault: VaultRef, tags: Readonly<Record<string, string>> | undefined) => VaultPolicy) | undefined;
    readonly ruleEnabled: (rule: string) => boolean;
    /** Undefined when the settings do not say where the hub is (the reason is in `eventHubNote`). */
    readonly eventHub: DoctorEventHub | undefined;
    readonly eventHubNote: string;
    /** The ARM resource id of the Event Hubs namespace, when the setting gives it. */
    readonly eventHubNamespaceId: string | undefined;
    readonly probes: DoctorProbes;
    readonly storage: {
        readonly table: StorageProbe | undefined;
        readonly blob: StorageProbe | undefined;
        /** Undefined: no queue configured (the reason is in `queueNote`). */
        readonly queue: StorageProbe | undefined;
        readonly queueNote: string;
    };
    readonly teams: DoctorChannelSetting;
    readonly mail: DoctorChannelSetting & { readonly from?: string; readonly to: readonly string[] };
    readonly signer: { readonly target: string; readonly signer: LinkSigner } | undefined;
    /** Reads the ingest heartbeat (see heartbeat.ts) from the state table; undefined without valid state settings. */
    readonly heartbeat: (() => Promise<HeartbeatValue | undefined>) | undefined;
    /** Wall clock (default Date.now). */
    readonly now?: () => number;
}

/** A heartbeat older than this fails `event-hub-receiving`. */
export const HEARTBEAT_STALE_MS = 24 * 3_600_000;

export interface DoctorOptions {
    /** Send a test notice through each configured channel (default false: those rows are skipped). */
    readonly sendTestNotice?: boolean;
    /** Time limit of each check (default 20 s). */
    readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 20_000;

class CheckTimeout extends Error {
    constructor(ms: number) {
        super(`no answer within ${ms} ms`);
        this.name = 'CheckTimeout';
    }
}

/** Runs `work` with a deadline; the signal aborts the probe's own calls when the deadline passes. */
async function withDeadline<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
            controller.abort(new CheckTimeout(ms));
            reject(new CheckTimeout(ms));
        }, ms);
    });
    try {
        return await Promise.race([work(controller.signal), deadline]);
    } finally {
        clearTimeout(timer);
    }
}

function errorText(err: unknown): string {
    const e = err as ProbeError & { name?: string };
    const status = typeof e?.statusCode === 'number' ? `${e.statusCode} ` : '';
    const code = typeof e?.code === 'string' && e.code !== '' ? `${e.code}: ` : '';
    const message = typeof e?.message === 'string' ? e.message : String(err);
    return `${status}${code}${message}`.replace(/\s+/g, ' ').trim().slice(0, 300);
}

function statusOf(err: unknown): number | undefined {
    const s = (err as ProbeError | undefined)?.statusCode;
    return typeof s === 'number' ? s : undefined;
}

/** A Key Vault 403 from the firewall (inner code ForbiddenByFirewall; "Client address is not authorized ..."). */
export function isFirewallDenial(err: unknown): boolean {
    if (statusOf(err) !== 403) return false;
    const details = JSON.stringify((err as { details?: unknown }).details ?? {});
    return /ForbiddenByFirewall|not a trusted service|Client address is not authorized/i.test(
        `${errorText(err)} ${details}`,
    );
}

type Check = () => Promise<CheckResult | readonly CheckResult[]>;

function pass(check: string, target: string, detail: string): CheckResult {
    return { check, target, status: 'pass', detail };
}
function fail(check: string, target: string, detail: string, fix: string): CheckResult {
    return { check, target, status: 'fail', detail, fix };
}
function skip(check: string, target: string, detail: string): CheckResult {
    return { check, target, status: 'skip', detail };
}
function warn(check: string, target: string, detail: string, fix: string): CheckResult {
    return { check, target, status: 'warn', detail, fix };
}

/** Runs every check and returns the report; never throws. */
export async function runDoctor(deps: DoctorDeps, options: DoctorOptions = {}): Promise<DoctorReport> {
    const ms = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const p = deps.probes;

    // Each check is isolated: an exception or a timeout becomes a failed row with the generic fix.
    const guarded =
        (
            check: string,
            target: string,
            fix: (err: unknown) => string,
            body: (signal: AbortSignal) => Promise<CheckResult>,
        ) =>
        async (): Promise<CheckResult> => {
            try {
                return await withDeadline(ms, body);
            } catch (err) {
                return fail(check, target, `failed: ${errorText(err)}`, fix(err));
            }
        };

    const checks: Check[] = [];

    // -- settings --------------------------------------------------------------------------------------------------
    checks.push(() =>
        Promise.resolve(
            deps.settingsProblems.length === 0
                ? [pass('settings', 'app settings', 'every setting the app reads is valid')]
                : deps.settingsProblems.map((s) => fail('settings', s.setting, s.problem, s.fix)),
        ),
    );

    // -- vaults: ARM read, write permissions in enforce scope, data plane, diagnostic setting -----------------------
    if (deps.vaults.length === 0)
        checks.push(() => Promise.resolve(skip('vault-read', '(no vaults)', deps.noVaultsNote)));
    for (const v of deps.vaults) {
        const name = v.ref.name;
        checks.push(async () => {
            const rows: CheckResult[] = [];
            let snapshot: VaultSnapshot | undefined;
            rows.push(
                await guarded(
                    'vault-read',
                    name,
                    (err) => armReadFix(err, v),
                    async (signal) => {
                        snapshot = await p.readVault(v.ref, signal);
                        const acl = snapshot.properties.networkAcls?.defaultAction ?? 'Allow';
                        return pass(
                            'vault-read',
                            name,
                            `read through ARM (${snapshot.properties.enableRbacAuthorization === true ? 'Azure RBAC' : 'access policies'}, firewall ${acl})`,
                        );
                    },
                )(),
            );
            rows.push(await permissionsCheck(v, snapshot));
            rows.push(await dataPlaneCheck(v, snapshot));
            rows.push(await diagnosticsCheck(v));
            return rows;
        });
    }

    async function permissionsCheck(v: DoctorVault, snapshot: VaultSnapshot | undefined): Promise<CheckResult> {
        const name = v.ref.name;
        if (deps.policyFor === undefined)
            return skip('vault-permissions', name, 'the responder config is invalid (see settings)');
        const policy = deps.policyFor(v.ref, snapshot?.tags);
        const rbac = snapshot?.properties.enableRbacAuthorization === true;
        const actions = enforcedActions(policy, deps.ruleEnabled, rbac);
        if (actions.length === 0)
            return skip('vault-permissions', name, 'monitor scope: remediation writes nothing to this vault');
        const needed = actionsNeeded(actions);
        return guarded(
            'vault-permissions',
            name,
            (err) =>
                statusOf(err) === 403
                    ? "ARM refused to list the app identity's own permissions at the vault: grant it Reader there (or run kvr doctor as an identity that may read them)"
                    : 'check that ARM is reachable from the app and retry',
            async (signal) => {
                const perms = await p.permissionsAt(v.ref.resourceId, signal);
                const missing = missingActions(perms, needed);
                // Least privilege: rights the responder never uses and must not hold (undo of those is manual).
                const excess = excessActions(perms);
                if (missing.length === 0 && excess.length > 0)
                    return warn(
                        'vault-permissions',
                        name,
                        `enforce scope (${actions.join(', ')}): holds ${needed.join(', ')}, and also ${excess.join(', ')}, which kv-responder never uses (least privilege)`,
                        `remove ${excess.join(' and ')} from the app identity at or above the vault: the kv-responder remediation role holds neither (a broader role such as Owner, Contributor or User Access Administrator assigned to the identity grants them); if you run kvr doctor as yourself, these are your own rights`,
                    );
                if (missing.length === 0)
                    return pass(
                        'vault-permissions',
                        name,
                        `enforce scope (${actions.join(', ')}): holds ${needed.join(', ')}`,
                    );
                return fail(
                    'vault-permissions',
                    name,
                    `enforce scope (${actions.join(', ')}) but the app identity lacks ${missing.join(', ')}`,
                    `assign the kv-responder remediation role (infra/modules/remediationRole.bicep: ${needed.join(', ')}) to the app identity at the vault, its resource group or subscription; or put the vault in monitor mode`,
                );
            },
        )();
    }

    async function dataPlaneCheck(v: DoctorVault, snapshot: VaultSnapshot | undefined): Promise<CheckResult> {
        const name = v.ref.name;
        const uri = snapshot?.properties.vaultUri;
        const vaultUrl = (typeof uri === 'string' ? uri : `https://${name}.vault.azure.net`).replace(/\/+$/, '');
        return guarded(
            'vault-data-plane',
            name,
            (err) =>
                isFirewallDenial(err)
                    ? FIREWALL_FIX
                    : statusOf(err) === 403 || statusOf(err) === 401
                      ? 'grant the app identity Key Vault Reader (RBAC vault) or the keys list permission (access-policy vault)'
                      : `check that ${vaultUrl} resolves and is reachable from the app (DNS, private endpoint)`,
            async (signal) => {
                const n = await p.listKeys(vaultUrl, signal);
                return pass('vault-data-plane', name, `listed key properties at ${vaultUrl} (${n} on the first page)`);
            },
        )();
    }

    async function diagnosticsCheck(v: DoctorVault): Promise<CheckResult> {
        const name = v.ref.name;
        const hub = deps.eventHub;
        if (hub === undefined) return skip('diagnostic-setting', name, deps.eventHubNote);
        return guarded(
            'diagnostic-setting',
            name,
            (err) =>
                statusOf(err) === 403
                    ? 'grant the app identity Microsoft.Insights/diagnosticSettings/read on the vault (Reader or Monitoring Reader)'
                    : 'check that ARM is reachable from the app and retry',
            async (signal) => {
                const settings = await p.diagnosticSettings(v.ref.resourceId, signal);
                const r = auditRoutingOf(settings, hub.target);
                return r.ok
                    ? pass(
                          'diagnostic-setting',
                          name,
                          `'${r.setting}' sends AuditEvent to ${hub.target.namespaceName}/${hub.target.hubName}`,
                      )
                    : fail('diagnostic-setting', name, r.detail, r.fix);
            },
        )();
    }

    // -- storage ---------------------------------------------------------------------------------------------------
    const storageRow = (check: string, probe: StorageProbe | undefined, missing: string, fix: string): Check =>
        probe === undefined
            ? () => Promise.resolve(skip(check, '-', missing))
            : guarded(
                  check,
                  probe.target,
                  (err) => storageFix(err, fix),
                  async (signal) => pass(check, probe.target, await probe.roundTrip(signal)),
              );
    checks.push(
        storageRow(
            'state-table',
            deps.storage.table,
            'no valid state setting (see settings)',
            'Storage Table Data Contributor on the account for the app identity, and the table must exist (infra/modules/storage.bicep)',
        ),
        storageRow(
            'quarantine-blob',
            deps.storage.blob,
            'no valid quarantine setting (see settings)',
            'Storage Blob Data Contributor on the container for the app identity, and the container must exist (infra/modules/storage.bicep)',
        ),
        storageRow(
            'reconcile-queue',
            deps.storage.queue,
            deps.storage.queueNote,
            'Storage Queue Data Contributor on the queue for the app identity, and the queue must exist',
        ),
    );

    // -- Event Hubs ------------------------------------------------------------------------------------------------
    const hub = deps.eventHub;
    const nsId = deps.eventHubNamespaceId;
    if (hub === undefined || nsId === undefined) {
        const why = hub === undefined ? deps.eventHubNote : deps.eventHubNote;
        checks.push(() =>
            Promise.resolve([
                skip('event-hub', hub?.target.hubName ?? '-', why),
                skip('consumer-group', hub?.consumerGroup ?? '-', why),
            ]),
        );
    } else {
        const hubId = `${nsId.replace(/\/+$/, '')}/eventhubs/${hub.target.hubName}`;
        const armFix = (what: string, create: string) => (err: unknown) =>
            statusOf(err) === 404
                ? create
                : statusOf(err) === 403
                  ? `grant the app identity Reader on the Event Hubs namespace (the doctor reads the ${what} through ARM)`
                  : 'check that ARM is reachable from the app and retry';
        checks.push(
            guarded(
                'event-hub',
                hub.target.hubName,
                armFix(
                    'hub',
                    `create event hub '${hub.target.hubName}' in the namespace (infra/modules/eventHubs.bicep), or set KV_LOGS_HUB to the hub the diagnostic settings write to`,
                ),
                async (signal) => {
                    const r = await p.armGet(hubId, EVENTHUB_API_VERSION, signal);
                    const props = (r.properties ?? {}) as { status?: string; partitionCount?: number };
                    if (props.status !== undefined && props.status !== 'Active')
                        return fail(
                            'event-hub',
                            hub.target.hubName,
                            `the hub exists but its status is ${props.status}`,
                            'set the event hub status back to Active',
                        );
                    return pass(
                        'event-hub',
                        hub.target.hubName,
                        `exists in ${hub.target.namespaceName} (${props.partitionCount ?? '?'} partitions, ${props.status ?? 'status unknown'})`,
                    );
                },
            ),
        );
        const cg = hub.consumerGroup;
        checks.push(
            cg === undefined
                ? () => Promise.resolve(skip('consumer-group', '-', 'KV_LOGS_CONSUMER_GROUP is not set'))
                : guarded(
                      'consumer-group',
                      cg,
                      armFix(
                          'consumer group',
                          `create consumer group '${cg}' on event hub '${hub.target.hubName}' (infra/modules/eventHubs.bicep), or fix KV_LOGS_CONSUMER_GROUP`,
                      ),
                      async (signal) => {
                          await p.armGet(`${hubId}/consumergroups/${cg}`, EVENTHUB_API_VERSION, signal);
                          return pass('consumer-group', cg, `exists on ${hub.target.hubName}`);
                      },
                  ),
        );
    }
    const readBeat = deps.heartbeat;
    const receivingTarget = hub?.target.hubName ?? '-';
    checks.push(async () => {
        const check = 'event-hub-receiving';
        if (readBeat === undefined) return skip(check, receivingTarget, 'no valid state setting (see settings)');
        let beat: HeartbeatValue | undefined;
        try {
            beat = await withDeadline(ms, () => readBeat());
        } catch (err) {
            // The state-table row reports (and fixes) an unreadable table; this one only cannot tell.
            return skip(check, receivingTarget, `cannot read the heartbeat from the state table: ${errorText(err)}`);
        }
        if (beat === undefined)
            return skip(
                check,
                receivingTarget,
                'no batch recorded yet: the app records the time of its last handled batch (at most once a minute) once it receives',
            );
        const ageMs = (deps.now ?? Date.now)() - Date.parse(beat.at);
        const ago = `${Math.max(0, Math.round(ageMs / 60_000))} min ago`;
        if (ageMs <= HEARTBEAT_STALE_MS)
            return pass(check, receivingTarget, `last batch handled at ${beat.at} (${ago})`);
        return fail(
            check,
            receivingTarget,
            `no batch handled since ${beat.at} (${ago})`,
            "check the Event Hubs trigger: the host logs (kvr.batch-failed), the KV_LOGS_* settings, Azure Event Hubs Data Receiver for the app identity on the hub, and that the vaults' diagnostic settings still send to this hub",
        );
    });

    // -- notifications ---------------------------------------------------------------------------------------------
    const stamp = randomUUID().slice(0, 8);
    const title = `kv-responder doctor: test notice ${stamp}`;
    const text = 'This is a test notice sent by kvr doctor --send-test-notice. No action is needed.';
    checks.push(async () => {
        const t = deps.teams;
        return [
            settingRow('teams-setting', t),
            await deliveryRow('teams-delivery', t, 'Teams', (ch) =>
                ch.send({
                    id: `doctor-${stamp}-teams`,
                    incidentId: `doctor-${stamp}`,
                    kind: 'opened',
                    channel: 'teams',
                    teams: renderSummaryCard(title, text),
                }),
            ),
        ];
    });
    checks.push(async () => {
        const m = deps.mail;
        const rows = [settingRow('mail-setting', m)];
        if (m.state === 'configured' && m.from !== undefined) {
            const from = m.from;
            const to = m.to.length > 0 ? m.to : [from];
            const rendered = renderSummaryEmail(title, text);
            rows.push(
                await deliveryRow('mail-delivery', m, `mail to ${to.join(', ')}`, (ch) =>
                    ch.send({
                        id: `doctor-${stamp}-email`,
                        incidentId: `doctor-${stamp}`,
                        kind: 'opened',
                        channel: 'email',
                        email: {
                            from,
                            to,
                            ...rendered,
                            mimeBase64: buildMime({
                                from,
                                to,
                                ...rendered,
                                messageId: `<doctor-${stamp}@kv-responder.invalid>`,
                            }),
                        },
                    }),
                ),
            );
        } else rows.push(await deliveryRow('mail-delivery', m, 'mail', () => Promise.resolve()));
        return rows;
    });

    function settingRow(check: string, s: DoctorChannelSetting): CheckResult {
        switch (s.state) {
            case 'unset':
                return skip(check, s.setting, `${s.setting} is not set: this channel is off`);
            case 'unresolved':
                return fail(
                    check,
                    s.setting,
                    `${s.setting} is an unresolved Key Vault reference (the app sees the literal @Microsoft.KeyVault(...))`,
                    KEY_VAULT_REFERENCE_FIX,
                );
            case 'configured':
                return pass(check, s.setting, `${s.setting} is set and resolved`);
        }
    }

    async function deliveryRow(
        check: string,
        s: DoctorChannelSetting,
        target: string,
        send: (channel: DeliveryChannel) => Promise<void>,
    ): Promise<CheckResult> {
        if (s.state !== 'configured' || s.channel === undefined)
            return skip(check, s.setting, 'channel not configured');
        if (options.sendTestNotice !== true)
            return skip(
                check,
                s.setting,
                'no test notice sent (opt in with --send-test-notice or ?sendTestNotice=true)',
            );
        const channel = s.channel;
        return guarded(
            check,
            s.setting,
            (err) => deliveryFix(err, s.setting),
            async () => {
                await send(channel);
                return pass(check, s.setting, `test notice accepted (${target})`);
            },
        )();
    }

    // -- signing key -----------------------------------------------------------------------------------------------
    const signer = deps.signer;
    checks.push(
        signer === undefined
            ? () => Promise.resolve(skip('signing-key', '-', 'KVR_SIGNING_KEY_ID is not valid (see settings)'))
            : guarded(
                  'signing-key',
                  signer.target,
                  (err) =>
                      statusOf(err) === 404
                          ? 'create an RSA key with that name in the vault (or fix KVR_SIGNING_KEY_ID) and grant the app identity Key Vault Crypto User on it'
                          : statusOf(err) === 403
                            ? isFirewallDenial(err)
                                ? FIREWALL_FIX
                                : 'grant the app identity Key Vault Crypto User on the key'
                            : 'check KVR_SIGNING_KEY_ID and that the key is an enabled RSA key',
                  async () => {
                      const input = Buffer.from(`kvr-doctor-probe.${randomUUID()}`, 'utf8');
                      const kid = await signer.signer.currentKid();
                      const sig = await signer.signer.sign(input);
                      const ok = await signer.signer.verify(input, sig, kid);
                      return ok
                          ? pass('signing-key', signer.target, `signed and verified a probe token with ${kid}`)
                          : fail(
                                'signing-key',
                                signer.target,
                                `the signature by ${kid} did not verify`,
                                'use an RSA key (RS256) and check that its current version is enabled',
                            );
                  },
              ),
    );

    const settled = await Promise.all(
        checks.map((c) =>
            c().catch((err: unknown) =>
                fail('doctor', '-', `internal error: ${errorText(err)}`, 'report this as a bug'),
            ),
        ),
    );
    return doctorReport(settled.flat());
}

function armReadFix(err: unknown, v: DoctorVault): string {
    const s = statusOf(err);
    if (s === 403)
        return 'grant the app identity Microsoft.KeyVault/vaults/read on the vault (the remediation role, or Reader)';
    if (s === 404) return `no such vault: fix its resource id in the config (${v.source})`;
    return 'check that ARM is reachable from the app and retry';
}

function storageFix(err: unknown, fix: string): string {
    const s = statusOf(err);
    if (s === 404) return `the resource does not exist: create it. ${fix}`;
    if (s === 401 || s === 403) return fix;
    return `the storage endpoint did not answer (${errorText(err).slice(0, 80)}): check the setting, DNS and network rules. ${fix}`;
}

function deliveryFix(err: unknown, setting: string): string {
    const s = statusOf(err) ?? (err as { status?: number }).status;
    if (s === 401 || s === 403 || s === 404)
        return setting.includes('TEAMS')
            ? 'the webhook URL is wrong, expired or its workflow is off: copy the current URL from the Teams workflow into the secret behind KVR_TEAMS_WEBHOOK_URL'
            : 'grant the app identity Mail.Send for this mailbox (Exchange RBAC for Applications) and check KVR_MAIL_SENDER';
    return 'the service did not accept the notice: retry later, and check outbound network access from the app';
}
