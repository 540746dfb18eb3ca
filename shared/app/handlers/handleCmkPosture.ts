import type { InvocationContext, Timer } from '@azure/functions';
import { KeyVaultManagementClient } from '@azure/arm-keyvault';
import { KeyClient, type KeyClientOptions } from '@azure/keyvault-keys';
import { ArmVaultAdmin } from '../../adapters/armVaultAdmin';
import { credentialFor } from '../../adapters/credential';
import { InvocationLogger } from '../../adapters/invocationLogger';
import { readVaultKeys } from '../../adapters/keyVaultKeys';
import type { AppSettings } from '../../config/loadSettings';
import { checkVaultPosture, type KeyFacts, type PostureDecision, type PosturePolicy } from '../../core/cmk/posture';
import type { RuleToggle } from '../../core/engine/rule';
import { ConfigError, ensureError } from '../../core/errors';
import type { VaultRef } from '../../core/events/types';
import type { DecisionSink, VaultAdmin } from '../../core/ports';
import { vaultRefOf } from '../alerting';
import { vaultUrlOf } from '../cmk';

/** One entry of `cmk.posture.vaults`: a vault URL, or an ARM resource id (then the vault is read from ARM too). */
export interface PostureTarget {
    /** https://<name>.vault.azure.net, no trailing slash. */
    readonly vaultUrl: string;
    readonly vaultName: string;
    /** Present for resource-id entries: findings carry the id (alert routing needs it). */
    readonly ref?: VaultRef;
}

/**
 * Parses a `cmk.posture.vaults` entry. A resource id gives the vault name, and the URL in the public cloud until ARM
 * says otherwise (`properties.vaultUri`); a URL must be https with no path.
 */
export function postureTargetOf(entry: string): PostureTarget {
    if (entry.startsWith('/')) {
        const ref = vaultRefOf(entry);
        return { vaultUrl: vaultUrlOf(ref.name), vaultName: ref.name, ref };
    }
    let u: URL;
    try {
        u = new URL(entry);
    } catch {
        throw new Error(`'${entry}' is neither a vault URL nor a vault resource id`);
    }
    if (u.protocol !== 'https:' || (u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '')
        throw new Error(`'${entry}': expected https://<vault>.vault.azure.net with no path`);
    return { vaultUrl: u.origin, vaultName: u.hostname.split('.')[0] ?? u.hostname };
}

export interface CmkPostureDeps {
    readonly targets: readonly PostureTarget[];
    readonly policy: PosturePolicy;
    /** `rules.<id>` switches of the config. */
    readonly toggles: ReadonlyMap<string, RuleToggle>;
    /** A KeyClient for a vault URL (the app's managed identity in Azure). */
    readonly keyClientFor: (vaultUrl: string) => KeyClient;
    /**
     * Reads resource-id entries from ARM: their `vaultUri` and `enabledForDiskEncryption`. Without it (or when the
     * read fails) the URL is the public-cloud one and disk-encryption-vault-shared is skipped for the vault.
     */
    readonly admin?: Pick<VaultAdmin, 'get'>;
    /** Where the decisions go: the alerting sink in the Function app. */
    readonly sink: DecisionSink;
    /** Wall clock (epoch ms): the time of the check. */
    readonly now: () => number;
}

export interface CmkPostureResult {
    readonly vaults: number;
    /** Vaults whose keys could not be read, or whose decisions the sink refused. */
    readonly failed: number;
    readonly keys: number;
    readonly findings: number;
    /** Facts that could not be read (`error` decisions). */
    readonly unknown: number;
}

async function vaultFacts(
    t: PostureTarget,
    deps: CmkPostureDeps,
    log: InvocationLogger,
): Promise<{ url: string; enabledForDiskEncryption?: boolean }> {
    if (t.ref === undefined || deps.admin === undefined) return { url: t.vaultUrl };
    try {
        const v = await deps.admin.get(t.ref);
        const uri = v.properties.vaultUri;
        const disk = v.properties.enabledForDiskEncryption;
        return {
            url: typeof uri === 'string' && uri.length > 0 ? uri.replace(/\/+$/, '') : t.vaultUrl,
            // ARM leaves the property out when it was never set: the default is false.
            enabledForDiskEncryption: disk === true,
        };
    } catch (err) {
        log.warn('kvr.cmk-posture-arm-unavailable', { vault: t.vaultName, error: ensureError(err).message });
        return { url: t.vaultUrl };
    }
}

/**
 * The daily CMK posture check: for each configured vault, reads its keys (list, getKey, rotation policy) and writes
 * the posture findings, and `error` decisions for facts that could not be read, to the sink. A vault that fails does
 * not stop the others; it is logged (`kvr.cmk-posture-vault-failed`) and counted, and the next run starts over.
 */
export async function handleCmkPosture(
    timer: Pick<Timer, 'isPastDue'> | undefined,
    context: InvocationContext,
    deps: CmkPostureDeps,
): Promise<CmkPostureResult> {
    const log = new InvocationLogger(context);
    const nowMs = deps.now();
    let failed = 0;
    let keys = 0;
    let findings = 0;
    let unknown = 0;
    for (const t of deps.targets) {
        const { url, enabledForDiskEncryption } = await vaultFacts(t, deps, log);
        let facts: KeyFacts[];
        try {
            facts = await readVaultKeys(deps.keyClientFor(url), t.vaultName);
        } catch (err) {
            failed++;
            const message = ensureError(err).message;
            log.error('kvr.cmk-posture-vault-failed', { vault: t.vaultName, error: message });
            continue;
        }
        keys += facts.length;
        const decisions: PostureDecision[] = checkVaultPosture(
            {
                vaultUrl: url,
                vaultName: t.vaultName,
                ...(t.ref === undefined ? {} : { vaultId: t.ref.resourceId }),
                ...(enabledForDiskEncryption === undefined ? {} : { enabledForDiskEncryption }),
                keys: facts,
            },
            deps.policy,
            nowMs,
            deps.toggles,
        );
        for (const d of decisions) {
            if (d.type === 'finding') {
                findings++;
                log.warn('kvr.finding', { rule: d.rule, severity: d.severity, vault: d.vault, summary: d.summary });
            } else {
                unknown++;
                log.warn('kvr.cmk-posture-unknown', { rule: d.rule, vault: d.vault, message: d.message });
            }
        }
        try {
            await deps.sink.write(decisions);
        } catch (err) {
            failed++;
            log.error('kvr.cmk-posture-vault-failed', {
                vault: t.vaultName,
                error: ensureError(err).message,
                // Alerting routes incidents by vault resource id, which a URL entry does not give.
                ...(t.ref === undefined ? { hint: 'list the vault by its resource id in cmk.posture.vaults' } : {}),
            });
        }
    }
    const result = { vaults: deps.targets.length, failed, keys, findings, unknown };
    log.info('kvr.cmk-posture', { ...result, pastDue: timer?.isPastDue ?? false, ms: deps.now() - nowMs });
    return result;
}

export interface CmkPostureWiring {
    /** Where findings go: the composition root passes its alerting (`appDeps().alerting`). */
    readonly sink: DecisionSink;
    /** KeyClient options (tests: the fake's CA); production uses the SDK defaults. */
    readonly keyClientOptions?: KeyClientOptions;
    /** Overrides the ARM reader (tests); by default one is built with the app's identity. */
    readonly admin?: Pick<VaultAdmin, 'get'>;
}

/**
 * Builds the posture job's dependencies from the app settings (`KVR_CONFIG` / `KVR_CONFIG_PATH`, `AZURE_CLIENT_ID`).
 * Like `composeApp`, it validates everything and does no I/O: an entry of `cmk.posture.vaults` that is neither a
 * vault URL nor a vault resource id fails here, at load.
 */
export function composeCmkPosture(settings: AppSettings, wiring: CmkPostureWiring): CmkPostureDeps {
    const posture = settings.config.cmk.posture;
    const problems: string[] = [];
    const targets: PostureTarget[] = [];
    posture.vaults.forEach((entry, i) => {
        try {
            targets.push(postureTargetOf(entry));
        } catch (err) {
            problems.push(`cmk.posture.vaults.${i}: ${ensureError(err).message}`);
        }
    });
    if (problems.length > 0) throw new ConfigError('cmk.posture', problems);
    const credential = credentialFor(settings.managedIdentityClientId);
    const clients = new Map<string, KeyClient>();
    const admin =
        wiring.admin ??
        new ArmVaultAdmin(
            (subscriptionId) =>
                new KeyVaultManagementClient(credential, subscriptionId, { retryOptions: { maxRetries: 2 } }),
        );
    return {
        targets,
        policy: posture,
        toggles: settings.config.ruleToggles,
        keyClientFor: (url) => {
            let c = clients.get(url);
            if (c === undefined) {
                c = new KeyClient(url, credential, wiring.keyClientOptions);
                clients.set(url, c);
            }
            return c;
        },
        admin,
        sink: wiring.sink,
        now: Date.now,
    };
}
