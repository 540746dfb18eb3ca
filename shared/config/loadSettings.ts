import { readFileSync } from 'node:fs';
import { DEFAULT_STATE_TABLE, type TableLocation, tableLocationOf } from '../adapters/tableStateStore';
import { isMailAddress } from '../core/alerts/mime';
import { ConfigError } from '../core/errors';
import { configurableRuleIds } from '../core/rules';
import { DEFAULT_CONFIG, parseResponderConfigText, type ResponderConfig } from './responderConfig';
import { SettingNames } from './settingNames';

export type QuarantineSettings =
    | { readonly kind: 'container-url'; readonly url: string }
    | { readonly kind: 'connection-string'; readonly connectionString: string; readonly container: string };

/**
 * A setting that could not be used but does not stop the app: the feature it enables is off. Logged at start and
 * listed for `kvr doctor` (AppDeps.configProblems).
 */
export interface ConfigProblem {
    readonly setting: string;
    readonly problem: string;
    /** What is off because of it. */
    readonly effect: string;
}

/** Everything the Function app needs from its environment, validated. */
export interface AppSettings {
    /** Settings that were ignored (an optional channel whose Key Vault reference did not resolve ...). */
    readonly configProblems: readonly ConfigProblem[];
    readonly config: ResponderConfig;
    readonly state: TableLocation;
    readonly quarantine: QuarantineSettings;
    readonly managedIdentityClientId: string | undefined;
    /** Application Insights connection string (no secret: Entra auth); undefined turns telemetry off. */
    readonly appInsightsConnectionString: string | undefined;
    readonly alerting: AlertingSettings;
}

export interface AlertingSettings {
    readonly publicUrl: string;
    readonly signingKey: { readonly vaultUrl: string; readonly name: string };
    readonly teamsWebhookUrl: string | undefined;
    readonly mailSender: string | undefined;
    readonly trustEasyAuth: boolean;
    /** Links act on their token alone (explicit opt-in, local use). */
    readonly possessionOnlyLinks: boolean;
}

function httpsUrl(env: Env, name: string, problems: string[], required: boolean, what: string): URL | undefined {
    const v = nonEmpty(env, name);
    if (v === undefined) {
        if (required) problems.push(`${name} is required (${what})`);
        return undefined;
    }
    let u: URL;
    try {
        u = new URL(v);
    } catch {
        problems.push(`${name}: not a URL`);
        return undefined;
    }
    if (u.protocol !== 'https:') {
        problems.push(`${name}: must be https`);
        return undefined;
    }
    return u;
}

function alertingSettingsOf(env: Env, problems: string[]): AlertingSettings | undefined {
    const before = problems.length;
    const publicUrl = httpsUrl(
        env,
        SettingNames.publicUrl,
        problems,
        true,
        'the base URL of acknowledge and undo links',
    );
    const key = httpsUrl(
        env,
        SettingNames.signingKeyId,
        problems,
        true,
        'the Key Vault key that signs links, https://<vault>.vault.azure.net/keys/<name>',
    );
    const m = key === undefined ? null : /^\/keys\/([A-Za-z0-9-]{1,127})\/?$/.exec(key.pathname);
    if (key !== undefined && m === null)
        problems.push(
            `${SettingNames.signingKeyId}: expected https://<vault>.vault.azure.net/keys/<name> (no version)`,
        );
    const webhook = httpsUrl(env, SettingNames.teamsWebhookUrl, problems, false, '');
    const mailSender = nonEmpty(env, SettingNames.mailSender);
    if (mailSender !== undefined && !isMailAddress(mailSender))
        problems.push(`${SettingNames.mailSender}: expected the sending mailbox's address`);
    const trust = nonEmpty(env, SettingNames.trustEasyAuth)?.toLowerCase();
    if (trust !== undefined && trust !== 'true' && trust !== 'false')
        problems.push(`${SettingNames.trustEasyAuth}: expected true or false`);
    const possession = nonEmpty(env, SettingNames.possessionOnlyLinks)?.toLowerCase();
    if (possession !== undefined && possession !== 'true' && possession !== 'false')
        problems.push(`${SettingNames.possessionOnlyLinks}: expected true or false`);
    if (trust === 'true' && possession === 'true')
        problems.push(
            `${SettingNames.possessionOnlyLinks}: must not be true when ${SettingNames.trustEasyAuth} is (links then require sign-in)`,
        );
    if (problems.length > before || publicUrl === undefined || key === undefined || m === null) return undefined;
    return {
        publicUrl: publicUrl.toString().replace(/\/+$/, ''),
        signingKey: { vaultUrl: key.origin, name: m[1] as string },
        teamsWebhookUrl: webhook?.toString(),
        mailSender,
        trustEasyAuth: trust === 'true',
        possessionOnlyLinks: possession === 'true',
    };
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * An app setting whose Key Vault reference the platform could not resolve reaches the app as the literal reference,
 * `@Microsoft.KeyVault(SecretUri=...)` or `@Microsoft.KeyVault(VaultName=...;SecretName=...)` (App Service docs, "Use
 * Key Vault references"; deployment-contracts.md, "Azure Functions").
 */
export function isUnresolvedKeyVaultReference(value: string | undefined): boolean {
    return value !== undefined && /^\s*@Microsoft\.KeyVault\(/i.test(value);
}

/** Optional channels: an unresolved reference turns the channel off instead of stopping the app. */
const OPTIONAL_CHANNELS: Readonly<Record<string, string>> = {
    [SettingNames.teamsWebhookUrl]: 'Teams notices are off',
    [SettingNames.mailSender]: 'email notices are off',
};

function unresolvedReferenceText(name: string): string {
    return (
        `${name}: the Key Vault reference did not resolve (the app received the literal @Microsoft.KeyVault(...)); ` +
        "grant the app's identity Key Vault Secrets User on the secret (or the vault), check the secret URI, and " +
        'restart the app'
    );
}

/**
 * Takes out every setting that holds an unresolved Key Vault reference: optional channels become "not configured"
 * (a {@link ConfigProblem}), any other setting is a start-up problem that names the reference.
 */
function withoutUnresolvedReferences(
    env: Env,
    problems: string[],
    configProblems: ConfigProblem[],
): { env: Env; unresolved: ReadonlySet<string> } {
    const out: Record<string, string | undefined> = { ...env };
    const unresolved = new Set<string>();
    for (const name of Object.values(SettingNames)) {
        if (!isUnresolvedKeyVaultReference(env[name])) continue;
        unresolved.add(name);
        out[name] = undefined;
        const effect = OPTIONAL_CHANNELS[name];
        if (effect === undefined) problems.push(unresolvedReferenceText(name));
        else configProblems.push({ setting: name, problem: unresolvedReferenceText(name), effect });
    }
    return { env: out, unresolved };
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The app's own identity, from the settings the templates set, added to `responderIdentities` (its reads raise no
 * `new-app-access`, its changes are excluded by the loop guard) and so to the protected principals: the object id
 * (`KVR_RESPONDER_PRINCIPAL_ID`, matched against the `oid` claim) and the client id (`AZURE_CLIENT_ID`, the
 * identity's app id, matched against `appid`).
 */
function withOwnIdentity(config: ResponderConfig, ids: readonly string[]): ResponderConfig {
    const own = ids.map((id) => id.toLowerCase()).filter((id) => !config.detection.responderIdentities.has(id));
    if (own.length === 0) return config;
    return Object.freeze({
        ...config,
        detection: Object.freeze({
            ...config.detection,
            responderIdentities: new Set([...config.detection.responderIdentities, ...own]),
        }),
    });
}

function nonEmpty(env: Env, name: string): string | undefined {
    const v = env[name]?.trim();
    return v === undefined || v.length === 0 ? undefined : v;
}

/**
 * Reads and validates the app settings (the only place that reads the environment). Throws one {@link ConfigError}
 * listing every problem, so that a misconfigured app fails at start and never half-works.
 */
export function loadSettings(
    rawEnv: Env,
    readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): AppSettings {
    const problems: string[] = [];
    const configProblems: ConfigProblem[] = [];
    const { env, unresolved } = withoutUnresolvedReferences(rawEnv, problems, configProblems);

    let config: ResponderConfig = DEFAULT_CONFIG;
    const inline = nonEmpty(env, SettingNames.config);
    const path = nonEmpty(env, SettingNames.configPath);
    try {
        if (inline !== undefined) config = parseResponderConfigText(inline, configurableRuleIds, SettingNames.config);
        else if (path !== undefined) {
            let text: string | undefined;
            try {
                text = readFile(path);
            } catch (err) {
                problems.push(`${SettingNames.configPath}: cannot read '${path}': ${(err as Error).message}`);
            }
            if (text !== undefined) config = parseResponderConfigText(text, configurableRuleIds, path);
        }
    } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(...err.problems.map((p) => `${err.source}: ${p}`));
    }

    let quarantine: QuarantineSettings | undefined;
    const url = nonEmpty(env, SettingNames.quarantineContainerUrl);
    const cs = nonEmpty(env, SettingNames.quarantineConnectionString);
    if (url !== undefined && cs !== undefined) {
        problems.push(
            `set only one of ${SettingNames.quarantineContainerUrl} and ${SettingNames.quarantineConnectionString}`,
        );
    } else if (url !== undefined) {
        let parsed: URL | undefined;
        try {
            parsed = new URL(url);
        } catch {
            problems.push(`${SettingNames.quarantineContainerUrl}: not a URL`);
        }
        if (parsed !== undefined) {
            if (parsed.protocol !== 'https:') problems.push(`${SettingNames.quarantineContainerUrl}: must be https`);
            else if (parsed.pathname.split('/').filter((s) => s.length > 0).length !== 1) {
                problems.push(
                    `${SettingNames.quarantineContainerUrl}: must name exactly one container (https://<account>.blob.core.windows.net/<container>)`,
                );
            } else quarantine = { kind: 'container-url', url };
        }
    } else if (cs !== undefined) {
        quarantine = {
            kind: 'connection-string',
            connectionString: cs,
            container: nonEmpty(env, SettingNames.quarantineContainer) ?? 'kvr-quarantine',
        };
    } else {
        problems.push(
            `${SettingNames.quarantineContainerUrl} is required (where rejected input is kept; ${SettingNames.quarantineConnectionString} for Azurite)`,
        );
    }

    const stateValue = nonEmpty(env, SettingNames.state);
    let state: TableLocation | undefined;
    if (stateValue === undefined) {
        problems.push(
            `${SettingNames.state} is required (rule state: https://<account>.table.core.windows.net, or a connection string for Azurite)`,
        );
    } else if (/^http:\/\//i.test(stateValue)) {
        problems.push(`${SettingNames.state}: a table endpoint must be https`);
    } else {
        const table = nonEmpty(env, SettingNames.stateTable) ?? DEFAULT_STATE_TABLE;
        if (/^[A-Za-z][A-Za-z0-9]{2,62}$/.test(table)) state = tableLocationOf(stateValue, table);
        else
            problems.push(
                `${SettingNames.stateTable}: '${table}' is not a table name (3-63 letters and digits, first a letter)`,
            );
    }

    const alerting = alertingSettingsOf(env, problems);

    const principalId = nonEmpty(env, SettingNames.responderPrincipalId);
    if (principalId !== undefined && !GUID.test(principalId))
        problems.push(`${SettingNames.responderPrincipalId}: expected the object id (a GUID) of the app's identity`);
    const clientId = nonEmpty(env, SettingNames.managedIdentityClientId);
    const ownIds = [principalId, clientId].filter((id): id is string => id !== undefined && GUID.test(id));

    // A setting whose reference did not resolve is reported once, as such, not also as missing.
    const reported = problems.filter((p) => ![...unresolved].some((name) => p.startsWith(`${name} is required`)));
    if (reported.length > 0 || quarantine === undefined || state === undefined || alerting === undefined) {
        throw new ConfigError('app settings', reported);
    }
    return Object.freeze({
        configProblems: Object.freeze(configProblems),
        config: withOwnIdentity(config, ownIds),
        state,
        quarantine,
        managedIdentityClientId: clientId,
        appInsightsConnectionString: nonEmpty(env, SettingNames.appInsightsConnectionString),
        alerting,
    });
}
