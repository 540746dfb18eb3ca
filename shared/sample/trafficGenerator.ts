/**
 * A pure, deterministic, seeded generator of realistic Key Vault `AuditEvent` traffic, as the Event Hubs bodies an
 * Azure Monitor diagnostic setting streams (`{"records":[...]}`). Used for the bundled sample day, for tests and for
 * the benchmark. No I/O, no clock, no Math.random: the same options always give the same bodies.
 *
 * Record shapes copy the samples in the research notes (keyvault-audit-events.md and its fixtures): URI claim names on
 * control-plane `Vault*` records, short `oid`/`upn`/`appid` claims on data-plane records, `resultType` "Success" even
 * on 4xx, `durationMs` as a string, upper-case `resourceId`, `properties.properties` as the vault's after-state on
 * `VaultGet`/`VaultPatch` (tracked per vault, so every after-state is consistent with the changes made before it).
 *
 * The estate: six vaults in two subscriptions, each with its own background (application service principals and
 * managed identities reading secrets or wrapping keys, Azure Resource Graph and Policy Insights `VaultGet` scans,
 * a few people during office hours, `Authentication` 401 noise, short 429 bursts, a routine deployment pipeline that
 * patches vaults) and about one record in 2,000 that is not a Key Vault audit record (shared hub).
 *
 * Attack episodes, injected every simulated day when `attacks` is true (times are UTC, see {@link ATTACK_EPISODES}):
 *  (e) 02:40 kv-cmk-prod: erin@contoso.example, never seen before, disables the customer-managed key version that
 *      storage account stcustdataprod uses (KeyUpdate, enabled false); the storage account's managed identity then
 *      fails KeyUnwrap/KeyWrap with 403 "Operation unwrapKey is not allowed on a disabled key." until alice re-enables
 *      the key at 03:25.
 *  (d) 05:10 kv-platform-shared: the grafana service principal, from 203.0.113.23 with a scripting client, is denied
 *      (403) on SecretList and on 18 distinct secret names within four minutes (reconnaissance).
 *  (a) 09:05 kv-payments-prod: mallory@contoso.example from 203.0.113.66 sets networkAcls.defaultAction Allow, adds
 *      IP rule 203.0.113.66/32 (addedIpRule), grants herself an access policy (addedAccessPolicy.ObjectId = her oid),
 *      reads 32 distinct secrets in about six minutes, backs one up, deletes and purges another, then removes her
 *      access policy (removedAccessPolicy) nine minutes after granting it. alice closes the firewall at 11:30.
 *  (b) 13:20 kv-hr-prod: an unfamiliar application from 203.0.113.80 sets publicNetworkAccess Enabled, then
 *      enableRbacAuthorization false (the HR apps, authorized by RBAC only, get 403 until alice restores both at
 *      14:05 and 14:06).
 *  (c) 16:40 kv-platform-shared: an application never seen before reads the honeytoken secret
 *      break-glass-admin-password once, from 203.0.113.45.
 * Routine changes (every day, attacks or not), all by the deployment pipeline service principal: 10:15 adds its
 * runner address to kv-payments-prod's IP rules and removes it at 10:22; 11:30 adds an access policy on kv-sandbox-dev
 * for a new dev application (removed at 17:10); 15:45 sets enabledForTemplateDeployment on kv-apps-dev (reset 18:30).
 */

export interface TrafficOptions {
    readonly seed: number;
    /** ISO 8601 start, e.g. '2026-10-05T00:00:00Z'. */
    readonly start: string;
    readonly hours: number;
    /** Average background records per hour (day and night average; the day is busier than the night). */
    readonly recordsPerHour: number;
    readonly attacks: boolean;
    /** Records per Event Hubs body, at most (default 50). A body never spans two minutes. */
    readonly maxRecordsPerBody?: number;
}

/** One generated Event Hubs body and how many records it holds. */
export interface GeneratedBody {
    readonly body: string;
    readonly records: number;
}

/** The bundled sample day (samples/sample-day.jsonl.gz). */
export const SAMPLE_DAY: TrafficOptions = Object.freeze({
    seed: 20261005,
    start: '2026-10-05T00:00:00Z',
    hours: 24,
    recordsPerHour: 600,
    attacks: true,
    maxRecordsPerBody: 50,
});

// ---------------------------------------------------------------------------------------------------------------
// Randomness: mulberry32, plus FNV-1a to derive stable identifiers from names (independent of the seed).

/** A seeded generator (mulberry32): the sample day and the diverse workload (./diverseWorkload.ts) draw from it. */
export class Rng {
    private a: number;

    constructor(seed: number) {
        this.a = seed >>> 0;
    }

    u32(): number {
        this.a = (this.a + 0x6d2b79f5) >>> 0;
        let t = this.a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return (t ^ (t >>> 14)) >>> 0;
    }

    next(): number {
        return this.u32() / 4294967296;
    }

    /** 0 <= n < max. */
    int(max: number): number {
        return Math.floor(this.next() * max);
    }

    /** lo <= n <= hi. */
    range(lo: number, hi: number): number {
        return lo + this.int(hi - lo + 1);
    }

    chance(p: number): boolean {
        return this.next() < p;
    }

    pick<T>(items: readonly T[]): T {
        return items[this.int(items.length)] as T;
    }

    hex32(): string {
        return hex8(this.u32()) + hex8(this.u32()) + hex8(this.u32()) + hex8(this.u32());
    }

    guid(): string {
        return guidOf(this.hex32(), this.u32());
    }
}

const HEX_BYTE: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex8(n: number): string {
    const h = HEX_BYTE;
    return (
        (h[n >>> 24] as string) +
        (h[(n >>> 16) & 255] as string) +
        (h[(n >>> 8) & 255] as string) +
        (h[n & 255] as string)
    );
}

const VARIANT = '89ab';

function guidOf(h: string, r: number): string {
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${VARIANT[r & 3]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function fnv1a(text: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
        h ^= text.charCodeAt(i);
        h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
}

/** A GUID that depends only on the name: the same actor keeps its ids whatever the seed. */
function stableGuid(name: string): string {
    const r = new Rng(fnv1a(name));
    return r.guid();
}

/** A 32-hex object version that depends only on the name. */
function stableVersion(name: string): string {
    return new Rng(fnv1a(`version:${name}`)).hex32();
}

// ---------------------------------------------------------------------------------------------------------------
// Constants of the simulated tenant.

type Json = Record<string, unknown>;

const TENANT = '3f0c2b6e-1d4a-4c8e-9b2f-5a7d1e0c9b11';
const LOCATION = 'westeurope';
const SUB_PROD = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const SUB_DEV = '9b2d7c41-5e6f-4a3b-8c1d-2e4f6a8b0c13';
const APP_PORTAL = 'c44b4083-3bb0-49c1-b47d-974e53cbdf3c';
const APP_CLI = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';
const APP_RESOURCE_GRAPH = '509e4652-da8d-478d-a730-e9d4a1996ca4';
const APP_POLICY_INSIGHTS = '8cae6e77-e04e-42ce-b5cb-50d82bce26b1';
const CLAIM_OID = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
const CLAIM_UPN = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn';
const CLAIM_NAME = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name';
const DATA_API = '7.4';
const ARM_API = '2023-07-01';
const NO_PERIMETERS: readonly string[] = Object.freeze([]);

const UA_BROWSER =
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0';
const UA_CLI =
    'AZURECLI/2.64.0 (DEB) azsdk-python-core/1.30.2 Python/3.11.8 (Linux-6.5.0-1025-azure-x86_64-with-glibc2.35)';
const UA_NET_SECRETS = 'azsdk-net-Security.KeyVault.Secrets/4.6.0 (.NET 8.0)';
const UA_NET_KEYS = 'azsdk-net-Security.KeyVault.Keys/4.6.0 (.NET 8.0)';

const SIGNATURES: Readonly<Record<number, string>> = {
    200: 'OK',
    204: 'No Content',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    429: 'TooManyRequests',
};

const DIGITS3: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
const DIGITS4: readonly string[] = Array.from({ length: 10000 }, (_, i) => String(i).padStart(4, '0'));

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------------------------------------------
// Actors.

interface Actor {
    readonly oid: string;
    readonly appid: string;
    readonly ip: string;
    readonly clientInfo: string;
    readonly tls: string;
    /** Data-plane claims (short names). */
    readonly dataClaim: Json;
    /** Control-plane claims (URI names). */
    readonly ctrlClaim: Json;
    /** Claims of the `Authentication` 401 that precedes a token-less first call. */
    readonly authClaim: Json;
    readonly managed: boolean;
    /** A person (user claims), not an application. */
    readonly human: boolean;
}

function servicePrincipal(
    name: string,
    ip: string,
    clientInfo: string,
    options: { appid?: string; appidacr?: string; tls?: string } = {},
): Actor {
    const oid = stableGuid(`sp-oid:${name}`);
    const appid = options.appid ?? stableGuid(`sp-app:${name}`);
    const appidacr = options.appidacr ?? '2';
    return {
        oid,
        appid,
        ip,
        clientInfo,
        tls: options.tls ?? 'TLS1_2',
        dataClaim: { oid, appid, appidacr, xms_az_nwperimid: NO_PERIMETERS },
        ctrlClaim: { [CLAIM_OID]: oid, appid },
        authClaim: { appid, appidacr, xms_az_nwperimid: NO_PERIMETERS },
        managed: false,
        human: false,
    };
}

function managedIdentity(name: string, mirid: string, ip: string, clientInfo: string): Actor {
    const oid = stableGuid(`mi-oid:${name}`);
    const appid = stableGuid(`mi-app:${name}`);
    return {
        oid,
        appid,
        ip,
        clientInfo,
        tls: 'TLS1_2',
        dataClaim: { oid, appid, appidacr: '2', xms_az_nwperimid: NO_PERIMETERS, xms_mirid: mirid },
        ctrlClaim: { [CLAIM_OID]: oid, appid },
        authClaim: { appid, appidacr: '2', xms_az_nwperimid: NO_PERIMETERS },
        managed: true,
        human: false,
    };
}

function person(upn: string, ip: string, tool: 'portal' | 'cli'): Actor {
    const oid = stableGuid(`user:${upn}`);
    const appid = tool === 'portal' ? APP_PORTAL : APP_CLI;
    return {
        oid,
        appid,
        ip,
        clientInfo: tool === 'portal' ? UA_BROWSER : UA_CLI,
        tls: tool === 'portal' ? 'TLS1_3' : 'TLS1_2',
        dataClaim: {
            oid,
            appid,
            appidacr: '0',
            xms_az_nwperimid: NO_PERIMETERS,
            scp: 'user_impersonation',
            upn,
            unique_name: upn,
            ipaddr: ip,
            amr: 'pwd',
        },
        ctrlClaim: { [CLAIM_OID]: oid, appid, [CLAIM_UPN]: upn, [CLAIM_NAME]: upn },
        authClaim: { appid, appidacr: '0', xms_az_nwperimid: NO_PERIMETERS },
        managed: false,
        human: true,
    };
}

function mirid(sub: string, rg: string, provider: string, name: string): string {
    return `/subscriptions/${sub}/resourcegroups/${rg}/providers/${provider}/${name}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Vaults and their running state.

interface IpRule {
    readonly value: string;
}

interface NetworkAcls {
    readonly bypass: string;
    readonly defaultAction: 'Allow' | 'Deny';
    readonly ipRules?: readonly IpRule[];
}

interface VaultState {
    readonly networkAcls: NetworkAcls | null;
    readonly enabledForDeployment: boolean;
    readonly enabledForDiskEncryption: boolean;
    readonly enabledForTemplateDeployment: boolean;
    readonly enableRbacAuthorization: boolean;
    readonly enablePurgeProtection: boolean | null;
    readonly publicNetworkAccess: 'Enabled' | 'Disabled';
}

interface VaultSpec {
    readonly name: string;
    readonly sub: string;
    readonly rg: string;
    readonly state: VaultState;
    readonly secrets: readonly string[];
    readonly keys: readonly string[];
    /** Its applications are authorized by RBAC only: with RBAC off they get 403. */
    readonly appsNeedRbac: boolean;
}

class Vault {
    readonly name: string;
    readonly resourceId: string;
    /** `https://<name>.vault.azure.net` (no trailing slash). */
    readonly uri: string;
    readonly armUri: string;
    /** Lower-case ARM path, as RBAC denial descriptions print it. */
    readonly rbacScope: string;
    readonly secrets: readonly string[];
    readonly appsNeedRbac: boolean;
    state: VaultState;
    private after: Json | undefined;
    private readonly versions = new Map<string, string>();
    private readonly disabledKeys = new Set<string>();

    constructor(spec: VaultSpec) {
        this.name = spec.name;
        this.resourceId =
            `/SUBSCRIPTIONS/${spec.sub}/RESOURCEGROUPS/${spec.rg}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/${spec.name}`.toUpperCase();
        this.uri = `https://${spec.name}.vault.azure.net`;
        this.armUri = `https://management.azure.com/subscriptions/${spec.sub}/resourceGroups/${spec.rg}/providers/Microsoft.KeyVault/vaults/${spec.name}?api-version=${ARM_API}`;
        this.rbacScope = `/subscriptions/${spec.sub.toUpperCase()}/resourcegroups/${spec.rg}/providers/microsoft.keyvault/vaults/${spec.name}`;
        this.secrets = spec.secrets;
        this.appsNeedRbac = spec.appsNeedRbac;
        this.state = spec.state;
    }

    update(change: Partial<VaultState>): void {
        this.state = { ...this.state, ...change };
        this.after = undefined;
    }

    addIpRule(value: string): void {
        const acls = this.state.networkAcls ?? { bypass: 'AzureServices', defaultAction: 'Deny' as const };
        const rules = (acls.ipRules ?? []).filter((r) => r.value !== value);
        this.update({ networkAcls: { ...acls, ipRules: [...rules, { value }] } });
    }

    removeIpRule(value: string): void {
        const acls = this.state.networkAcls;
        if (acls?.ipRules === undefined) return;
        const rules = acls.ipRules.filter((r) => r.value !== value);
        const { ipRules: _dropped, ...rest } = acls;
        this.update({ networkAcls: rules.length > 0 ? { ...rest, ipRules: rules } : rest });
    }

    setDefaultAction(defaultAction: 'Allow' | 'Deny'): void {
        const acls = this.state.networkAcls ?? { bypass: 'AzureServices', defaultAction };
        this.update({ networkAcls: { ...acls, defaultAction } });
    }

    /** The vault's properties as ARM returns them (`properties.properties` of VaultGet/VaultPatch). */
    afterState(): Json {
        if (this.after === undefined) {
            const s = this.state;
            this.after = {
                sku: { Family: 'A', Name: 'Standard', Capacity: null },
                tenantId: TENANT,
                networkAcls: s.networkAcls,
                enabledForDeployment: s.enabledForDeployment,
                enabledForDiskEncryption: s.enabledForDiskEncryption,
                enabledForTemplateDeployment: s.enabledForTemplateDeployment,
                enableSoftDelete: true,
                softDeleteRetentionInDays: 90,
                enableRbacAuthorization: s.enableRbacAuthorization,
                enablePurgeProtection: s.enablePurgeProtection,
                publicNetworkAccess: s.publicNetworkAccess,
            };
        }
        return this.after;
    }

    /** Current version of a secret or key (stable until the object is rotated). */
    version(kind: 'secrets' | 'keys', name: string): string {
        const k = `${kind}/${name}`;
        let v = this.versions.get(k);
        if (v === undefined) {
            v = stableVersion(`${this.name}/${k}`);
            this.versions.set(k, v);
        }
        return v;
    }

    rotate(kind: 'secrets' | 'keys', name: string, version: string): void {
        this.versions.set(`${kind}/${name}`, version);
    }

    keyEnabled(name: string): boolean {
        return !this.disabledKeys.has(name);
    }

    setKeyEnabled(name: string, enabled: boolean): void {
        if (enabled) this.disabledKeys.delete(name);
        else this.disabledKeys.add(name);
    }
}

const PAYMENTS_SECRETS = [
    'db-password',
    'stripe-api-key',
    'redis-connection',
    'jwt-signing-secret',
    'sftp-password',
    'bank-api-client-secret',
    'settlement-pgp-passphrase',
    'adyen-api-key',
    'paypal-client-secret',
    'fraud-api-token',
    'ledger-db-password',
    'reporting-db-password',
    'swift-gateway-cert-password',
    'hsm-partition-pin',
    'webhook-signing-secret',
    'sendgrid-api-key',
    'twilio-auth-token',
    'datadog-api-key',
    'pagerduty-routing-key',
    'sentry-dsn',
    'kafka-sasl-password',
    'rabbitmq-password',
    'mongodb-connection',
    'cosmos-primary-key',
    'servicebus-connection',
    'eventhub-connection',
    'storage-account-key',
    'acr-pull-password',
    'github-deploy-key',
    'terraform-state-sas',
    'vpn-psk',
    'ldap-bind-password',
    'smtp-relay-password',
    'backup-encryption-key',
    'card-vault-tokenization-key',
];

const HONEYTOKEN = 'break-glass-admin-password';

function vaultSpecs(): VaultSpec[] {
    const base = {
        enabledForDeployment: false,
        enabledForDiskEncryption: false,
        enabledForTemplateDeployment: false,
        enableRbacAuthorization: false,
        enablePurgeProtection: true,
        publicNetworkAccess: 'Enabled' as const,
    };
    return [
        {
            name: 'kv-payments-prod',
            sub: SUB_PROD,
            rg: 'rg-payments',
            state: {
                ...base,
                networkAcls: { bypass: 'AzureServices', defaultAction: 'Deny', ipRules: [{ value: '20.50.1.10/32' }] },
                enablePurgeProtection: null,
            },
            secrets: PAYMENTS_SECRETS,
            keys: ['payments-signing-key', 'cmk-storage'],
            appsNeedRbac: false,
        },
        {
            name: 'kv-hr-prod',
            sub: SUB_PROD,
            rg: 'rg-hr',
            state: {
                ...base,
                networkAcls: { bypass: 'AzureServices', defaultAction: 'Deny' },
                enableRbacAuthorization: true,
                publicNetworkAccess: 'Disabled',
            },
            secrets: [
                'workday-api-key',
                'sql-hr-password',
                'smtp-password',
                'docusign-client-secret',
                'graph-client-secret',
                'payroll-sftp-key',
                'adp-api-token',
            ],
            keys: [],
            appsNeedRbac: true,
        },
        {
            name: 'kv-platform-shared',
            sub: SUB_PROD,
            rg: 'rg-platform',
            state: {
                ...base,
                networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow' },
                enableRbacAuthorization: true,
                enabledForTemplateDeployment: true,
            },
            secrets: [
                'tls-wildcard-contoso',
                'tls-api-contoso',
                'grafana-oauth-client-secret',
                'grafana-db-password',
                'acr-admin-password',
                'terraform-sp-secret',
                'github-app-private-key',
                HONEYTOKEN,
                'argocd-admin-password',
                'slack-webhook-url',
            ],
            keys: [],
            appsNeedRbac: false,
        },
        {
            name: 'kv-cmk-prod',
            sub: SUB_PROD,
            rg: 'rg-storage',
            state: {
                ...base,
                networkAcls: {
                    bypass: 'AzureServices',
                    defaultAction: 'Deny',
                    ipRules: [{ value: '198.51.100.0/27' }],
                },
                enabledForDiskEncryption: true,
            },
            secrets: [],
            keys: ['cmk-stcustdata', 'cmk-disks'],
            appsNeedRbac: false,
        },
        {
            name: 'kv-sandbox-dev',
            sub: SUB_DEV,
            rg: 'rg-sandbox',
            state: { ...base, networkAcls: null, enablePurgeProtection: null },
            secrets: ['api-token', 'test-db-password', 'demo-storage-key', 'dev-jwt-secret', 'feature-flags-key'],
            keys: [],
            appsNeedRbac: false,
        },
        {
            name: 'kv-apps-dev',
            sub: SUB_DEV,
            rg: 'rg-dev-apps',
            state: {
                ...base,
                networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow' },
                enableRbacAuthorization: true,
            },
            secrets: ['orders-db-password', 'orders-servicebus-connection', 'orders-api-key'],
            keys: [],
            appsNeedRbac: false,
        },
    ];
}

// ---------------------------------------------------------------------------------------------------------------
// The simulated world: vaults, actors, and record builders.

/** One record to emit at time `t` (ms); built in time order, so state changes apply to the records after them. */
interface Item {
    readonly t: number;
    /** Builds the record for time t (the scheduled time, possibly moved into its minute). */
    readonly build: (t: number) => Json;
}

interface Actors {
    readonly paymentsApi: Actor;
    readonly paymentsBatch: Actor;
    readonly paymentsStorage: Actor;
    readonly hrPortal: Actor;
    readonly hrSync: Actor;
    readonly aksSecrets: Actor;
    readonly grafana: Actor;
    readonly grafanaStolen: Actor;
    readonly pipeline: Actor;
    readonly pipelineCli: Actor;
    readonly custDataStorage: Actor;
    readonly diskEncryptionSet: Actor;
    readonly sandboxApi: Actor;
    readonly newDevApp: Actor;
    readonly ordersApp: Actor;
    readonly resourceGraph: readonly Actor[];
    readonly policyInsights: Actor;
    readonly alice: Actor;
    readonly bob: Actor;
    readonly carol: Actor;
    readonly dave: Actor;
    readonly erin: Actor;
    readonly mallory: Actor;
    readonly rogueApp: Actor;
    readonly honeyReader: Actor;
}

function createActors(): Actors {
    const pipelineIp = '20.86.120.33';
    const grafana = servicePrincipal('grafana', '20.86.14.21', 'azsdk-go-azsecrets/v1.1.0 (go1.22.5; linux)', {
        appidacr: '1',
    });
    return {
        paymentsApi: servicePrincipal('payments-api', '20.50.1.10', UA_NET_SECRETS),
        paymentsBatch: servicePrincipal(
            'payments-batch',
            '20.50.1.10',
            'azsdk-python-keyvault-secrets/4.8.0 Python/3.11.9 (Linux-5.15.0-1064-azure-x86_64-with-glibc2.35)',
            { appidacr: '1' },
        ),
        paymentsStorage: managedIdentity(
            'stpaymentsprod',
            mirid(SUB_PROD, 'rg-payments', 'Microsoft.Storage/storageAccounts', 'stpaymentsprod'),
            '20.60.12.5',
            'Microsoft.Storage',
        ),
        hrPortal: servicePrincipal(
            'hr-portal',
            '10.40.2.4',
            'azsdk-java-azure-security-keyvault-secrets/4.8.2 (17.0.10; Linux; 5.15.0-1064-azure)',
        ),
        hrSync: managedIdentity(
            'func-hr-sync',
            mirid(SUB_PROD, 'rg-hr', 'Microsoft.Web/sites', 'func-hr-sync'),
            '10.40.3.12',
            'azsdk-js-keyvault-secrets/4.9.0 core-rest-pipeline/1.18.0 Node/20.18.0 OS/(x64-Linux-5.15.0-1064-azure)',
        ),
        aksSecrets: managedIdentity(
            'id-aks-secrets-provider',
            mirid(
                SUB_PROD,
                'rg-platform',
                'Microsoft.ManagedIdentity/userAssignedIdentities',
                'id-aks-secrets-provider',
            ),
            '10.30.4.17',
            'csi-secrets-store/v1.4.5 azsdk-go-azsecrets/v1.1.0 (go1.22.5; linux)',
        ),
        grafana,
        grafanaStolen: {
            ...grafana,
            ip: '203.0.113.23',
            clientInfo: 'python-requests/2.31.0',
        },
        pipeline: servicePrincipal(
            'ado-deploy-pipeline',
            pipelineIp,
            'azsdk-js-keyvault-secrets/4.8.0 core-rest-pipeline/1.16.0 Node/20.15.1 OS/(x64-Linux-6.5.0-1025-azure)',
            { appidacr: '1' },
        ),
        pipelineCli: servicePrincipal('ado-deploy-pipeline', pipelineIp, UA_CLI, { appidacr: '1' }),
        custDataStorage: managedIdentity(
            'stcustdataprod',
            mirid(SUB_PROD, 'rg-storage', 'Microsoft.Storage/storageAccounts', 'stcustdataprod'),
            '20.60.40.8',
            'Microsoft.Storage',
        ),
        diskEncryptionSet: managedIdentity(
            'des-prod-disks',
            mirid(SUB_PROD, 'rg-storage', 'Microsoft.Compute/diskEncryptionSets', 'des-prod-disks'),
            '20.61.3.17',
            'Microsoft.Compute',
        ),
        sandboxApi: servicePrincipal(
            'sandbox-api',
            '20.71.5.9',
            'azsdk-python-keyvault-secrets/4.8.0 Python/3.12.3 (Linux-6.5.0-1025-azure-x86_64-with-glibc2.35)',
            { appidacr: '1' },
        ),
        newDevApp: servicePrincipal(
            'sandbox-worker',
            '20.71.5.14',
            'azsdk-js-keyvault-secrets/4.9.0 core-rest-pipeline/1.18.0 Node/20.18.0 OS/(x64-Linux-6.5.0-1025-azure)',
            { appidacr: '1' },
        ),
        ordersApp: managedIdentity(
            'app-orders-dev',
            mirid(SUB_DEV, 'rg-dev-apps', 'Microsoft.Web/sites', 'app-orders-dev'),
            '20.71.9.30',
            UA_NET_SECRETS,
        ),
        resourceGraph: ['4.210.0.1', '4.210.0.7', '20.38.155.4'].map((ip) =>
            servicePrincipal(
                'azure-resource-graph',
                ip,
                'AzureResourceGraph.IngestionWorkerService.global/1.23.1.528',
                {
                    appid: APP_RESOURCE_GRAPH,
                },
            ),
        ),
        policyInsights: servicePrincipal('policy-insights', '20.40.201.12', 'PolicyScan-GF', {
            appid: APP_POLICY_INSIGHTS,
        }),
        alice: person('alice@contoso.example', '198.51.100.12', 'portal'),
        bob: person('bob@contoso.example', '198.51.100.14', 'cli'),
        carol: person('carol@contoso.example', '198.51.100.17', 'portal'),
        dave: person('dave@contoso.example', '198.51.100.21', 'cli'),
        erin: person('erin@contoso.example', '198.51.100.29', 'portal'),
        mallory: person('mallory@contoso.example', '203.0.113.66', 'cli'),
        rogueApp: servicePrincipal(
            'kv-config-sync',
            '203.0.113.80',
            'azsdk-python-mgmt-keyvault/10.3.0 Python/3.12.1 (Linux-6.8.0-45-generic-x86_64-with-glibc2.39)',
            { appidacr: '1' },
        ),
        honeyReader: servicePrincipal(
            'legacy-report-exporter',
            '203.0.113.45',
            'azsdk-python-keyvault-secrets/4.7.0 Python/3.10.12 (Linux-5.15.0-119-generic-x86_64-with-glibc2.35)',
            { appidacr: '1' },
        ),
    };
}

interface Vaults {
    readonly payments: Vault;
    readonly hr: Vault;
    readonly platform: Vault;
    readonly cmk: Vault;
    readonly sandbox: Vault;
    readonly appsDev: Vault;
    readonly all: readonly Vault[];
}

function createVaults(): Vaults {
    const all = vaultSpecs().map((s) => new Vault(s));
    const [payments, hr, platform, cmk, sandbox, appsDev] = all as [Vault, Vault, Vault, Vault, Vault, Vault];
    return { payments, hr, platform, cmk, sandbox, appsDev, all };
}

/** Operation → [access-policy permission, RBAC data action], for 403 descriptions. */
const PERMISSIONS: Readonly<Record<string, readonly [string, string]>> = {
    SecretGet: ['secrets get', 'secrets/getSecret/action'],
    SecretList: ['secrets list', 'secrets/readMetadata/action'],
    SecretSet: ['secrets set', 'secrets/setSecret/action'],
    KeyGet: ['keys get', 'keys/read'],
    KeyUnwrap: ['keys unwrapKey', 'keys/unwrap/action'],
    KeyWrap: ['keys wrapKey', 'keys/wrap/action'],
};

class World {
    readonly rng: Rng;
    readonly vaults = createVaults();
    readonly actors = createActors();
    /** The dev application that the pipeline grants access to kv-sandbox-dev at 11:30 (until 17:10). */
    newDevAppGranted = false;

    constructor(seed: number) {
        this.rng = new Rng(seed);
    }

    private lastMs = Number.NaN;
    private lastFraction = 0;
    private second = Number.NaN;
    private secondText = '';

    /** `2026-10-05T10:20:00.1234567Z`: 100 ns precision; never earlier than the previous record built. */
    time(ms: number): string {
        let fraction = this.rng.int(10000);
        if (ms === this.lastMs && fraction < this.lastFraction) fraction = this.lastFraction;
        this.lastMs = ms;
        this.lastFraction = fraction;
        const second = Math.floor(ms / 1000);
        if (second !== this.second) {
            this.second = second;
            this.secondText = new Date(second * 1000).toISOString().slice(0, 20);
        }
        return `${this.secondText}${DIGITS3[ms - second * 1000]}${DIGITS4[fraction]}Z`;
    }

    private dataDuration(status: number): string {
        const r = this.rng;
        if (status === 401) return String(r.range(20, 70));
        return String(r.chance(0.08) ? r.range(40, 260) : r.range(3, 38));
    }

    /** A data-plane record (Secret*, Key*, Authentication): short claim names, operationVersion 7.4. */
    data(
        t: number,
        v: Vault,
        op: string,
        a: Actor,
        status: number,
        id: string,
        requestUri: string,
        extra?: { description?: string; keyProperties?: Json },
    ): Json {
        const properties: Json = { id, clientInfo: a.clientInfo, httpStatusCode: status, requestUri };
        const authorized = status < 300 || status === 404;
        if (v.state.enableRbacAuthorization) properties.isRbacAuthorized = authorized;
        else properties.isAccessPolicyMatch = authorized;
        if (extra?.keyProperties !== undefined) properties.keyProperties = extra.keyProperties;
        properties.tlsVersion = a.tls;
        const record: Json = {
            time: this.time(t),
            category: 'AuditEvent',
            operationName: op,
            resultType: 'Success',
            correlationId: this.rng.guid(),
            callerIpAddress: a.ip,
            identity: { claim: op === 'Authentication' ? a.authClaim : a.dataClaim },
            properties,
            resourceId: v.resourceId,
            operationVersion: DATA_API,
            resultSignature: SIGNATURES[status] ?? String(status),
            durationMs: this.dataDuration(status),
        };
        if (extra?.description !== undefined) record.resultDescription = extra.description;
        return record;
    }

    /** A control-plane record (Vault*): URI claim names, ARM request URI, the vault's after-state. */
    control(t: number, v: Vault, op: string, a: Actor, change?: Json): Json {
        const properties: Json = {
            id: `${v.uri}/`,
            clientInfo: a.clientInfo,
            requestUri: v.armUri,
            httpStatusCode: 200,
            properties: v.afterState(),
        };
        if (change !== undefined) Object.assign(properties, change);
        return {
            time: this.time(t),
            category: 'AuditEvent',
            operationName: op,
            resultType: 'Success',
            correlationId: this.rng.guid(),
            callerIpAddress: a.ip,
            identity: { claim: a.ctrlClaim },
            properties,
            resourceId: v.resourceId,
            operationVersion: ARM_API,
            resultSignature: 'OK',
            durationMs: String(this.rng.chance(0.1) ? this.rng.range(150, 420) : this.rng.range(14, 120)),
        };
    }

    denial(v: Vault, op: string, a: Actor, objectPath: string): string {
        const [permission, action] = PERMISSIONS[op] ?? ['secrets get', 'secrets/getSecret/action'];
        const caller = `appid=${a.appid};oid=${a.oid};iss=https://sts.windows.net/${TENANT}/`;
        if (!v.state.enableRbacAuthorization) {
            return `The user, group or application '${caller}' does not have ${permission} permission on key vault '${v.name};location=${LOCATION}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287`;
        }
        return (
            'Caller is not authorized to perform action on resource.\n' +
            'If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\n' +
            `Caller: ${caller}\n` +
            `Action: 'Microsoft.KeyVault/vaults/${action}'\n` +
            `Resource: '${v.rbacScope}${objectPath}'\n` +
            'Assignment: (not found)\nDenyAssignmentId: null\nDecisionReason: null \n' +
            `Vault: ${v.name};location=${LOCATION}`
        );
    }

    /** Whether RBAC-only applications are locked out of the vault right now (RBAC switched off). */
    private lockedOut(v: Vault, a: Actor): boolean {
        return v.appsNeedRbac && !v.state.enableRbacAuthorization && !a.human;
    }

    // --- data-plane records -----------------------------------------------------------------------------------

    secretGet(t: number, v: Vault, a: Actor, name: string, wanted: 200 | 403 | 404, pinned = false): Json {
        const base = `${v.uri}/secrets/${name}`;
        const status = wanted === 200 && this.lockedOut(v, a) ? 403 : wanted;
        if (status === 200) {
            const id = `${base}/${v.version('secrets', name)}`;
            return this.data(t, v, 'SecretGet', a, 200, id, `${pinned ? id : base}?api-version=${DATA_API}`);
        }
        const description =
            status === 404
                ? `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`
                : this.denial(v, 'SecretGet', a, `/secrets/${name}`);
        return this.data(t, v, 'SecretGet', a, status, base, `${base}?api-version=${DATA_API}`, { description });
    }

    secretList(t: number, v: Vault, a: Actor, wanted: 200 | 403 = 200): Json {
        const id = `${v.uri}/secrets`;
        const status = wanted === 200 && this.lockedOut(v, a) ? 403 : wanted;
        const description = status === 403 ? this.denial(v, 'SecretList', a, '') : undefined;
        return this.data(
            t,
            v,
            'SecretList',
            a,
            status,
            id,
            `${id}?api-version=${DATA_API}`,
            description === undefined ? undefined : { description },
        );
    }

    secretOp(t: number, v: Vault, a: Actor, op: 'SecretSet' | 'SecretBackup' | 'SecretDelete', name: string): Json {
        const base = `${v.uri}/secrets/${name}`;
        if (op === 'SecretSet') {
            const version = this.rng.hex32();
            v.rotate('secrets', name, version);
            return this.data(t, v, op, a, 200, `${base}/${version}`, `${base}?api-version=${DATA_API}`);
        }
        const uri = op === 'SecretBackup' ? `${base}/backup` : base;
        return this.data(t, v, op, a, 200, base, `${uri}?api-version=${DATA_API}`);
    }

    secretPurge(t: number, v: Vault, a: Actor, name: string): Json {
        const id = `${v.uri}/deletedsecrets/${name}`;
        return this.data(t, v, 'SecretPurge', a, 204, id, `${id}?api-version=${DATA_API}`);
    }

    throttled(t: number, v: Vault, a: Actor, name: string): Json {
        const id = `${v.uri}/secrets/${name}`;
        return this.data(t, v, 'SecretGet', a, 429, id, `${id}?api-version=${DATA_API}`);
    }

    authentication(t: number, v: Vault, a: Actor): Json {
        const id = `${v.uri}/`;
        return this.data(t, v, 'Authentication', a, 401, id, `${id}?api-version=${DATA_API}`, {
            description: 'Unauthorized',
        });
    }

    /** KeyWrap/KeyUnwrap by a customer-managed-key client; 403 while the key is disabled. */
    keyCrypto(t: number, v: Vault, a: Actor, op: 'KeyWrap' | 'KeyUnwrap', name: string): Json {
        const id = `${v.uri}/keys/${name}/${v.version('keys', name)}`;
        const uri = `${id}/${op === 'KeyWrap' ? 'wrapkey' : 'unwrapkey'}?api-version=${DATA_API}`;
        if (v.keyEnabled(name)) return this.data(t, v, op, a, 200, id, uri);
        const verb = op === 'KeyWrap' ? 'wrapKey' : 'unwrapKey';
        return this.data(t, v, op, a, 403, id, uri, {
            description: `Operation ${verb} is not allowed on a disabled key.`,
        });
    }

    keyGet(t: number, v: Vault, a: Actor, name: string): Json {
        const base = `${v.uri}/keys/${name}`;
        return this.data(
            t,
            v,
            'KeyGet',
            a,
            200,
            `${base}/${v.version('keys', name)}`,
            `${base}/?api-version=${DATA_API}`,
        );
    }

    keySign(t: number, v: Vault, a: Actor, name: string): Json {
        const id = `${v.uri}/keys/${name}/${v.version('keys', name)}`;
        return this.data(t, v, 'KeySign', a, 200, id, `${id}/sign?api-version=${DATA_API}`);
    }

    keyUpdate(t: number, v: Vault, a: Actor, name: string, enabled: boolean): Json {
        v.setKeyEnabled(name, enabled);
        const id = `${v.uri}/keys/${name}/${v.version('keys', name)}`;
        return this.data(t, v, 'KeyUpdate', a, 200, id, `${id}?api-version=${DATA_API}`, {
            keyProperties: {
                type: 'RSA-HSM',
                operations: ['wrapKey', 'unwrapKey'],
                attributes: { enabled, exp: 1822521600, hsmPlatform: '2' },
            },
        });
    }

    /** A record from another resource or category that shares the hub (to be skipped, not rejected). */
    foreign(t: number): Json {
        const r = this.rng;
        if (r.chance(0.5)) {
            return {
                time: this.time(t),
                resourceId:
                    `/SUBSCRIPTIONS/${SUB_PROD}/RESOURCEGROUPS/RG-STORAGE/PROVIDERS/MICROSOFT.STORAGE/STORAGEACCOUNTS/STCUSTDATAPROD/BLOBSERVICES/DEFAULT`.toUpperCase(),
                category: 'StorageRead',
                operationName: 'GetBlob',
                statusCode: 200,
                callerIpAddress: `10.0.0.${r.range(4, 40)}:${r.range(49152, 65535)}`,
                properties: { accountName: 'stcustdataprod' },
            };
        }
        const v = r.pick(this.vaults.all);
        return {
            time: this.time(t),
            resourceId: v.resourceId,
            operationName: 'Microsoft.KeyVault/vaults/write',
            category: 'AzurePolicyEvaluationDetails',
            resultType: 'Success',
            properties: {
                policyAssignmentId: `/subscriptions/${SUB_PROD}/providers/Microsoft.Authorization/policyAssignments/kv-baseline`,
                complianceState: 'Compliant',
            },
        };
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Background activities. Each schedules one or more records around time t and returns how many.

type Activity = (w: World, t: number, out: Item[]) => number;

interface ActivitySpec {
    readonly weight: number;
    /** Only during office hours (weekdays 07:00-18:00 UTC). */
    readonly office?: boolean;
    readonly run: Activity;
}

const MISSING_SECRETS = ['db-password-old', 'feature-flags', 'legacy-api-key', 'smtp-password-v1', 'test-secret'];

/** An application reading one of its secrets, with its usual noise: 401 first, rare 404/403, rare 429 bursts. */
function appRead(
    a: (w: World) => Actor,
    v: (w: World) => Vault,
    names: readonly string[],
    options: { p404?: number; p403?: number; pinned?: boolean } = {},
): Activity {
    const p404 = options.p404 ?? 0.02;
    const p403 = options.p403 ?? 0.003;
    const pinned = options.pinned ?? false;
    return (w, t, out) => {
        const r = w.rng;
        const actor = a(w);
        const vault = v(w);
        let n = 0;
        if (!actor.managed && r.chance(0.06)) {
            out.push({ t: t - r.range(20, 400), build: (at) => w.authentication(at, vault, actor) });
            n++;
        }
        const name = r.pick(names);
        if (r.chance(0.0006)) {
            const burst = r.range(4, 8);
            for (let i = 0; i < burst; i++) {
                const ti = t + i * 1000 + r.int(200);
                out.push({ t: ti, build: (at) => w.throttled(at, vault, actor, name) });
            }
            const tr = t + burst * 1000 + r.range(2000, 9000);
            out.push({ t: tr, build: (at) => w.secretGet(at, vault, actor, name, 200, pinned) });
            return n + burst + 1;
        }
        const x = r.next();
        // A denied read of another secret of the vault (never the honeytoken: only episode (c) touches it).
        const other = x >= p404 && x < p404 + p403 ? r.pick(vault.secrets.length > 0 ? vault.secrets : names) : '';
        if (x < p404) {
            const missing = r.pick(MISSING_SECRETS);
            out.push({ t, build: (at) => w.secretGet(at, vault, actor, missing, 404) });
        } else if (other !== '' && other !== HONEYTOKEN) {
            out.push({ t, build: (at) => w.secretGet(at, vault, actor, other, 403) });
        } else out.push({ t, build: (at) => w.secretGet(at, vault, actor, name, 200, pinned) });
        return n + 1;
    };
}

function cmkUse(a: (w: World) => Actor, v: (w: World) => Vault, key: string, pWrap: number): Activity {
    return (w, t, out) => {
        const actor = a(w);
        const vault = v(w);
        const op = w.rng.chance(pWrap) ? 'KeyWrap' : 'KeyUnwrap';
        out.push({ t, build: (at) => w.keyCrypto(at, vault, actor, op, key) });
        return 1;
    };
}

function vaultScan(a: (w: World) => Actor): Activity {
    return (w, t, out) => {
        const actor = a(w);
        const vault = w.rng.pick(w.vaults.all);
        out.push({ t, build: (at) => w.control(at, vault, 'VaultGet', actor) });
        return 1;
    };
}

const BACKGROUND: readonly ActivitySpec[] = [
    {
        weight: 20,
        run: appRead(
            (w) => w.actors.paymentsApi,
            (w) => w.vaults.payments,
            ['db-password', 'stripe-api-key', 'redis-connection', 'jwt-signing-secret'],
            { pinned: true },
        ),
    },
    {
        weight: 0.5,
        run: (w, t, out) => {
            out.push({ t, build: (at) => w.secretList(at, w.vaults.payments, w.actors.paymentsApi) });
            return 1;
        },
    },
    {
        weight: 4,
        run: (w, t, out) => {
            const a: Actor = { ...w.actors.paymentsApi, clientInfo: UA_NET_KEYS };
            const v = w.vaults.payments;
            const sign = w.rng.chance(0.8);
            out.push({
                t,
                build: (at) =>
                    sign ? w.keySign(at, v, a, 'payments-signing-key') : w.keyGet(at, v, a, 'payments-signing-key'),
            });
            return 1;
        },
    },
    {
        weight: 4,
        run: appRead(
            (w) => w.actors.paymentsBatch,
            (w) => w.vaults.payments,
            ['sftp-password', 'bank-api-client-secret', 'settlement-pgp-passphrase'],
        ),
    },
    {
        weight: 4,
        run: cmkUse(
            (w) => w.actors.paymentsStorage,
            (w) => w.vaults.payments,
            'cmk-storage',
            0.15,
        ),
    },
    {
        weight: 8,
        run: appRead(
            (w) => w.actors.hrPortal,
            (w) => w.vaults.hr,
            ['workday-api-key', 'sql-hr-password', 'smtp-password', 'docusign-client-secret'],
        ),
    },
    {
        weight: 4,
        run: appRead(
            (w) => w.actors.hrSync,
            (w) => w.vaults.hr,
            ['workday-api-key', 'graph-client-secret'],
        ),
    },
    {
        weight: 5,
        run: appRead(
            (w) => w.actors.aksSecrets,
            (w) => w.vaults.platform,
            ['tls-wildcard-contoso', 'tls-api-contoso', 'acr-admin-password'],
            { p404: 0.002, p403: 0 },
        ),
    },
    {
        weight: 3,
        run: appRead(
            (w) => w.actors.grafana,
            (w) => w.vaults.platform,
            ['grafana-oauth-client-secret', 'grafana-db-password'],
            { p404: 0.005 },
        ),
    },
    {
        weight: 2,
        office: true,
        run: (w, t, out) => {
            const a = w.actors.pipeline;
            const v = w.vaults.platform;
            if (w.rng.chance(0.15)) out.push({ t, build: (at) => w.secretList(at, v, a) });
            else {
                const name = w.rng.pick(['terraform-sp-secret', 'github-app-private-key', 'acr-admin-password']);
                out.push({ t, build: (at) => w.secretGet(at, v, a, name, 200) });
            }
            return 1;
        },
    },
    {
        weight: 9,
        run: cmkUse(
            (w) => w.actors.custDataStorage,
            (w) => w.vaults.cmk,
            'cmk-stcustdata',
            0.2,
        ),
    },
    {
        weight: 5,
        run: cmkUse(
            (w) => w.actors.diskEncryptionSet,
            (w) => w.vaults.cmk,
            'cmk-disks',
            0.3,
        ),
    },
    {
        weight: 4,
        run: appRead(
            (w) => w.actors.sandboxApi,
            (w) => w.vaults.sandbox,
            ['api-token', 'test-db-password', 'demo-storage-key'],
            { p404: 0.06, p403: 0.01 },
        ),
    },
    {
        weight: 2,
        run: (w, t, out) => {
            if (!w.newDevAppGranted) return 0;
            const name = w.rng.pick(['dev-jwt-secret', 'feature-flags-key']);
            out.push({ t, build: (at) => w.secretGet(at, w.vaults.sandbox, w.actors.newDevApp, name, 200) });
            return 1;
        },
    },
    {
        weight: 4,
        run: appRead(
            (w) => w.actors.ordersApp,
            (w) => w.vaults.appsDev,
            ['orders-db-password', 'orders-servicebus-connection', 'orders-api-key'],
            { p404: 0.01 },
        ),
    },
    { weight: 2, run: vaultScan((w) => w.rng.pick(w.actors.resourceGraph)) },
    { weight: 1, run: vaultScan((w) => w.actors.policyInsights) },
    {
        weight: 1.5,
        office: true,
        run: (w, t, out) => {
            const a = w.actors.alice;
            const x = w.rng.next();
            if (x < 0.4) {
                const v = w.rng.pick(w.vaults.all);
                out.push({ t, build: (at) => w.control(at, v, 'VaultGet', a) });
                return 1;
            }
            const v = w.vaults.platform;
            out.push({ t, build: (at) => w.secretList(at, v, a) });
            const t2 = t + w.rng.range(3000, 20000);
            const name = w.rng.pick(v.secrets.filter((s) => s !== HONEYTOKEN));
            out.push({ t: t2, build: (at) => w.secretGet(at, v, a, name, 200) });
            return 2;
        },
    },
    {
        weight: 1,
        office: true,
        run: (w, t, out) => {
            const a = w.actors.bob;
            if (w.rng.chance(0.3)) {
                out.push({ t, build: (at) => w.control(at, w.vaults.payments, 'VaultGet', a) });
                return 1;
            }
            return appRead(
                () => a,
                (x) => x.vaults.appsDev,
                ['orders-db-password', 'orders-api-key'],
                { p404: 0.05 },
            )(w, t, out);
        },
    },
    {
        weight: 0.7,
        office: true,
        run: (w, t, out) => {
            out.push({ t, build: (at) => w.control(at, w.vaults.hr, 'VaultGet', w.actors.carol) });
            return 1;
        },
    },
    {
        weight: 1.2,
        office: true,
        run: (w, t, out) => {
            const a = w.actors.dave;
            const v = w.vaults.sandbox;
            const x = w.rng.next();
            if (x < 0.15) {
                const name = w.rng.pick(v.secrets);
                out.push({ t, build: (at) => w.secretOp(at, v, a, 'SecretSet', name) });
                return 1;
            }
            if (x < 0.3) {
                out.push({ t, build: (at) => w.secretList(at, v, a) });
                return 1;
            }
            return appRead(
                () => a,
                () => v,
                v.secrets,
                { p404: 0.08, p403: 0 },
            )(w, t, out);
        },
    },
];

interface WeightTable {
    readonly cumulative: readonly number[];
    readonly total: number;
}

function weightTable(office: boolean): WeightTable {
    const cumulative: number[] = [];
    let total = 0;
    for (const a of BACKGROUND) {
        if (a.office !== true || office) total += a.weight;
        cumulative.push(total);
    }
    return { cumulative, total };
}

const OFF_HOURS = weightTable(false);
const OFFICE_HOURS = weightTable(true);

function pickActivity(r: Rng, table: WeightTable): Activity {
    const x = r.next() * table.total;
    const c = table.cumulative;
    for (let i = 0; i < c.length; i++) if (x < (c[i] as number)) return (BACKGROUND[i] as ActivitySpec).run;
    return (BACKGROUND[BACKGROUND.length - 1] as ActivitySpec).run;
}

function isOfficeHours(ms: number): boolean {
    const d = new Date(ms);
    const day = d.getUTCDay();
    const h = d.getUTCHours();
    return day >= 1 && day <= 5 && h >= 7 && h < 18;
}

/** Busier in the day than at night; averages 1 over 24 hours. */
function diurnal(ms: number): number {
    const h = (((ms % DAY) + DAY) % DAY) / HOUR;
    return 1 + 0.45 * Math.cos((2 * Math.PI * (h - 13)) / 24);
}

// ---------------------------------------------------------------------------------------------------------------
// Scheduled changes: routine pipeline patches and attack episodes, at fixed times of each UTC day.

interface Episode {
    /** Time of day, `HH:MM` UTC. */
    readonly at: string;
    readonly description: string;
    readonly schedule: (w: World, t0: number) => Item[];
}

function offsetOf(at: string): number {
    const [h, m] = at.split(':').map(Number) as [number, number];
    return h * HOUR + m * MINUTE;
}

/** A deploy-pipeline VaultPatch, preceded by the VaultGet the CLI issues first. */
function pipelinePatch(w: World, t: number, v: Vault, apply: () => Json | undefined): Item[] {
    const a = w.actors.pipelineCli;
    return [
        { t, build: (at) => w.control(at, v, 'VaultGet', a) },
        {
            t: t + 2400,
            build: (at) => {
                const change = apply();
                return w.control(at, v, 'VaultPatch', a, change);
            },
        },
    ];
}

const ROUTINE: readonly Episode[] = [
    {
        at: '10:15',
        description:
            'kv-payments-prod: the deployment pipeline adds its runner address to the IP rules, sets two secrets',
        schedule: (w, t0) => {
            const v = w.vaults.payments;
            const ip = `${w.actors.pipeline.ip}/32`;
            const a = w.actors.pipeline;
            const items = pipelinePatch(w, t0 + 4000, v, () => {
                v.addIpRule(ip);
                return { addedIpRule: { Value: ip } };
            });
            const t1 = t0 + 2 * MINUTE + 11_000;
            const t2 = t0 + 2 * MINUTE + 14_500;
            items.push(
                { t: t1, build: (at) => w.authentication(at, v, a) },
                { t: t1 + 300, build: (at) => w.secretOp(at, v, a, 'SecretSet', 'webhook-signing-secret') },
                { t: t2, build: (at) => w.secretOp(at, v, a, 'SecretSet', 'sendgrid-api-key') },
            );
            return items;
        },
    },
    {
        at: '10:22',
        description: 'kv-payments-prod: the deployment pipeline removes its runner address from the IP rules',
        schedule: (w, t0) => {
            const v = w.vaults.payments;
            return pipelinePatch(w, t0 + 7000, v, () => {
                v.removeIpRule(`${w.actors.pipeline.ip}/32`);
                return undefined;
            });
        },
    },
    {
        at: '11:30',
        description: 'kv-sandbox-dev: the deployment pipeline grants the new sandbox-worker app an access policy',
        schedule: (w, t0) => {
            const v = w.vaults.sandbox;
            return pipelinePatch(w, t0 + 9000, v, () => {
                w.newDevAppGranted = true;
                return { addedAccessPolicy: accessPolicy(w.actors.newDevApp.oid, [], ['get', 'list']) };
            });
        },
    },
    {
        at: '15:45',
        description: 'kv-apps-dev: the deployment pipeline enables template deployment',
        schedule: (w, t0) => {
            const v = w.vaults.appsDev;
            return pipelinePatch(w, t0 + 21_000, v, () => {
                v.update({ enabledForTemplateDeployment: true });
                return undefined;
            });
        },
    },
    {
        at: '17:10',
        description: 'kv-sandbox-dev: the deployment pipeline removes the sandbox-worker access policy',
        schedule: (w, t0) => {
            const v = w.vaults.sandbox;
            return pipelinePatch(w, t0 + 13_000, v, () => {
                w.newDevAppGranted = false;
                return { removedAccessPolicy: accessPolicy(w.actors.newDevApp.oid, [], ['get', 'list']) };
            });
        },
    },
    {
        at: '18:30',
        description: 'kv-apps-dev: the deployment pipeline disables template deployment again',
        schedule: (w, t0) => {
            const v = w.vaults.appsDev;
            return pipelinePatch(w, t0 + 5000, v, () => {
                v.update({ enabledForTemplateDeployment: false });
                return undefined;
            });
        },
    },
];

function accessPolicy(objectId: string, keys: readonly string[], secrets: readonly string[]): Json {
    return { TenantId: TENANT, ObjectId: objectId, Permissions: { keys, secrets, certificates: [] } };
}

const RECON_NAMES = [
    'admin-password',
    'sql-sa-password',
    'storage-account-key',
    'aks-admin-kubeconfig',
    'github-pat',
    'terraform-sp-secret',
    'acr-admin-password',
    'argocd-admin-password',
    'vpn-shared-key',
    'domain-admin-password',
    'backup-sas-token',
    'cosmos-master-key',
    'sp-client-secret',
    'ssh-private-key',
    'jenkins-api-token',
    'prod-db-connection',
    'api-gateway-key',
    'root-ca-key',
];

/** The attack episodes (see the file comment). Each starts at `at` with its first record. */
const ATTACK_EPISODES: readonly Episode[] = [
    {
        at: '02:40',
        description:
            'kv-cmk-prod: erin@contoso.example (never seen before, 198.51.100.29) disables the customer-managed key cmk-stcustdata (KeyUpdate enabled=false); storage account stcustdataprod then fails KeyUnwrap/KeyWrap with 403 "Operation unwrapKey is not allowed on a disabled key." until alice re-enables the key at 03:25',
        schedule: (w, t0) => {
            const v = w.vaults.cmk;
            const a = w.actors.erin;
            const mi = w.actors.custDataStorage;
            const key = 'cmk-stcustdata';
            const items: Item[] = [
                { t: t0, build: (at) => w.control(at, v, 'VaultGet', a) },
                { t: t0 + 21_000, build: (at) => w.keyGet(at, v, a, key) },
                { t: t0 + 48_000, build: (at) => w.keyUpdate(at, v, a, key, false) },
            ];
            // Storage retries unwrapKey with back-off: the failures are certain whatever the background volume.
            for (const s of [75, 95, 135, 215, 375, 695, 1335, 1900, 2400]) {
                const t = t0 + s * 1000;
                items.push({ t, build: (at) => w.keyCrypto(at, v, mi, 'KeyUnwrap', key) });
            }
            const fix = t0 + 45 * MINUTE;
            const alice = w.actors.alice;
            items.push(
                { t: fix, build: (at) => w.keyGet(at, v, alice, key) },
                { t: fix + 30_000, build: (at) => w.keyUpdate(at, v, alice, key, true) },
                { t: fix + 62_000, build: (at) => w.keyCrypto(at, v, mi, 'KeyUnwrap', key) },
            );
            return items;
        },
    },
    {
        at: '05:10',
        description:
            'kv-platform-shared: the grafana service principal, from 203.0.113.23 (python-requests), is denied SecretList and SecretGet on 18 distinct secrets within four minutes (reconnaissance)',
        schedule: (w, t0) => {
            const v = w.vaults.platform;
            const a = w.actors.grafanaStolen;
            const items: Item[] = [
                { t: t0, build: (at) => w.authentication(at, v, a) },
                { t: t0 + 600, build: (at) => w.secretList(at, v, a, 403) },
            ];
            let t = t0 + 5000;
            for (const name of RECON_NAMES) {
                const ti = t;
                items.push({ t: ti, build: (at) => w.secretGet(at, v, a, name, 403) });
                t += 9000 + w.rng.int(6000);
            }
            return items;
        },
    },
    {
        at: '09:05',
        description:
            'kv-payments-prod: mallory@contoso.example from 203.0.113.66 opens the firewall (defaultAction Allow), adds IP rule 203.0.113.66/32, grants herself an access policy, reads 32 distinct secrets, backs up card-vault-tokenization-key, deletes and purges backup-encryption-key, and removes her access policy 9 minutes after granting it; alice closes the firewall at 11:30',
        schedule: (w, t0) => {
            const v = w.vaults.payments;
            const m = w.actors.mallory;
            const ip = '203.0.113.66/32';
            const policy = accessPolicy(
                m.oid,
                ['get', 'list'],
                ['get', 'list', 'set', 'delete', 'backup', 'restore', 'recover', 'purge'],
            );
            const items: Item[] = [
                { t: t0, build: (at) => w.control(at, v, 'VaultGet', m) },
                {
                    t: t0 + 9000,
                    build: (at) => {
                        v.setDefaultAction('Allow');
                        return w.control(at, v, 'VaultPatch', m);
                    },
                },
                {
                    t: t0 + MINUTE + 4000,
                    build: (at) => {
                        v.addIpRule(ip);
                        return w.control(at, v, 'VaultPatch', m, { addedIpRule: { Value: ip } });
                    },
                },
                {
                    t: t0 + 2 * MINUTE,
                    build: (at) => w.control(at, v, 'VaultPatch', m, { addedAccessPolicy: policy }),
                },
            ];
            const t1 = t0 + 3 * MINUTE;
            items.push(
                { t: t1, build: (at) => w.authentication(at, v, m) },
                { t: t1 + 500, build: (at) => w.secretList(at, v, m) },
            );
            let t = t1 + 4000;
            for (const name of PAYMENTS_SECRETS.slice(0, 32)) {
                const ti = t;
                items.push({ t: ti, build: (at) => w.secretGet(at, v, m, name, 200) });
                t += 7000 + w.rng.int(5000);
            }
            const tb = t0 + 10 * MINUTE;
            items.push(
                { t: tb, build: (at) => w.secretOp(at, v, m, 'SecretBackup', 'card-vault-tokenization-key') },
                { t: tb + 20_000, build: (at) => w.secretOp(at, v, m, 'SecretDelete', 'backup-encryption-key') },
                { t: tb + 50_000, build: (at) => w.secretPurge(at, v, m, 'backup-encryption-key') },
            );
            const tr = t0 + 11 * MINUTE;
            items.push({
                t: tr,
                build: (at) => w.control(at, v, 'VaultPatch', m, { removedAccessPolicy: policy }),
            });
            const fix = t0 + 145 * MINUTE;
            const alice = w.actors.alice;
            items.push(
                { t: fix, build: (at) => w.control(at, v, 'VaultGet', alice) },
                {
                    t: fix + 40_000,
                    build: (at) => {
                        v.removeIpRule(ip);
                        v.setDefaultAction('Deny');
                        return w.control(at, v, 'VaultPatch', alice);
                    },
                },
            );
            return items;
        },
    },
    {
        at: '13:20',
        description:
            'kv-hr-prod: unfamiliar application kv-config-sync from 203.0.113.80 sets publicNetworkAccess Enabled, then enableRbacAuthorization false; the HR applications get 403 until alice restores RBAC at 14:05 and disables public access at 14:06',
        schedule: (w, t0) => {
            const v = w.vaults.hr;
            const a = w.actors.rogueApp;
            const alice = w.actors.alice;
            const fix = t0 + 45 * MINUTE;
            return [
                { t: t0, build: (at) => w.control(at, v, 'VaultGet', a) },
                {
                    t: t0 + 25_000,
                    build: (at) => {
                        v.update({ publicNetworkAccess: 'Enabled' });
                        return w.control(at, v, 'VaultPatch', a);
                    },
                },
                {
                    t: t0 + 90_000,
                    build: (at) => {
                        v.update({ enableRbacAuthorization: false });
                        return w.control(at, v, 'VaultPatch', a);
                    },
                },
                { t: fix, build: (at) => w.control(at, v, 'VaultGet', alice) },
                {
                    t: fix + 20_000,
                    build: (at) => {
                        v.update({ enableRbacAuthorization: true });
                        return w.control(at, v, 'VaultPatch', alice);
                    },
                },
                {
                    t: fix + 75_000,
                    build: (at) => {
                        v.update({ publicNetworkAccess: 'Disabled' });
                        return w.control(at, v, 'VaultPatch', alice);
                    },
                },
            ];
        },
    },
    {
        at: '16:40',
        description: `kv-platform-shared: application legacy-report-exporter, never seen before, reads the honeytoken ${HONEYTOKEN} once from 203.0.113.45`,
        schedule: (w, t0) => {
            const v = w.vaults.platform;
            const a = w.actors.honeyReader;
            return [
                { t: t0, build: (at) => w.authentication(at, v, a) },
                { t: t0 + 700, build: (at) => w.secretGet(at, v, a, HONEYTOKEN, 200) },
            ];
        },
    },
];

function windowOf(options: TrafficOptions): { start: number; end: number } {
    const start = Date.parse(options.start);
    if (Number.isNaN(start)) throw new RangeError(`start is not an ISO 8601 time: ${options.start}`);
    if (!(options.hours >= 0) || !Number.isFinite(options.hours)) throw new RangeError('hours must be >= 0');
    return { start, end: start + options.hours * HOUR };
}

function* occurrences(episodes: readonly Episode[], start: number, end: number): Generator<[Episode, number]> {
    for (let day = Math.floor(start / DAY) * DAY; day < end; day += DAY) {
        for (const e of episodes) {
            const t0 = day + offsetOf(e.at);
            if (t0 >= start && t0 < end) yield [e, t0];
        }
    }
}

/** The attack episodes that fall inside the generated window, with the time of their first record. */
export function attackEpisodes(options: TrafficOptions): { time: string; description: string }[] {
    if (!options.attacks) return [];
    const { start, end } = windowOf(options);
    const out: { time: string; description: string }[] = [];
    for (const [e, t0] of occurrences(ATTACK_EPISODES, start, end)) {
        out.push({ time: new Date(t0).toISOString().replace('.000Z', 'Z'), description: e.description });
    }
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
}

/** The attack episodes of {@link SAMPLE_DAY}. */
export const SAMPLE_ATTACKS: readonly { time: string; description: string }[] = Object.freeze(
    attackEpisodes(SAMPLE_DAY),
);

// ---------------------------------------------------------------------------------------------------------------
// The generator.

/** Generates the bodies with their record counts (see {@link generateBodies}). */
export function* generateBatches(options: TrafficOptions): Generator<GeneratedBody> {
    const { start, end } = windowOf(options);
    const maxPerBody = options.maxRecordsPerBody ?? 50;
    if (!Number.isInteger(maxPerBody) || maxPerBody < 1) throw new RangeError('maxRecordsPerBody must be >= 1');
    if (!(options.recordsPerHour >= 0)) throw new RangeError('recordsPerHour must be >= 0');
    const w = new World(options.seed);
    const r = w.rng;

    const scheduled: Item[] = [];
    const episodes = options.attacks ? [...ROUTINE, ...ATTACK_EPISODES] : ROUTINE;
    for (const [e, t0] of occurrences(episodes, start, end)) {
        for (const item of e.schedule(w, t0)) {
            // Sub-second jitter (episode steps are at least 300 ms apart, so their order holds).
            const t = item.t + r.int(250);
            if (t >= start && t < end) scheduled.push({ t, build: item.build });
        }
    }
    scheduled.sort((a, b) => a.t - b.t);
    let next = 0;

    const perMinute = options.recordsPerHour / 60;
    // Records an activity scheduled past its minute (retries after a 429 burst) wait for the next minute.
    let carried: Item[] = [];
    for (let m = start; m < end; m += MINUTE) {
        const stop = Math.min(m + MINUTE, end);
        const span = stop - m;
        const items: Item[] = carried;
        carried = [];
        const target = Math.floor(perMinute * (span / MINUTE) * diurnal(m) * (0.85 + 0.3 * r.next()) + r.next());
        const table = isOfficeHours(m) ? OFFICE_HOURS : OFF_HOURS;
        let produced = 0;
        while (produced < target) {
            const t = m + r.int(span);
            produced += pickActivity(r, table)(w, t, items);
            if (r.chance(1 / 2000)) {
                items.push({ t, build: (at) => w.foreign(at) });
                produced++;
            }
        }
        while (next < scheduled.length && (scheduled[next] as Item).t < stop) items.push(scheduled[next++] as Item);
        let kept = 0;
        for (const it of items) {
            if (it.t >= stop && stop < end) carried.push(it);
            else items[kept++] = it.t < m || it.t >= stop ? { t: it.t < m ? m : stop - 1, build: it.build } : it;
        }
        items.length = kept;
        if (kept === 0) continue;
        items.sort((a, b) => a.t - b.t);
        const records = new Array<Json>(kept);
        for (let i = 0; i < kept; i++) {
            const it = items[i] as Item;
            records[i] = it.build(it.t);
        }
        for (let i = 0; i < kept; i += maxPerBody) {
            const chunk = records.slice(i, i + maxPerBody);
            yield { body: JSON.stringify({ records: chunk }), records: chunk.length };
        }
    }
}

/** Event Hubs bodies (`{"records":[...]}`, compact JSON) of the simulated traffic, in time order. */
export function* generateBodies(options: TrafficOptions): Generator<string> {
    for (const b of generateBatches(options)) yield b.body;
}

/**
 * The sample's vaults at the start of the day, exactly as `vaults.get` returns them (the `kvr replay --vaults`
 * inventory, `samples/vaults.json`). Production vaults are tagged `env=prod`, the others `env=dev`.
 */
export function sampleInventory(): Json[] {
    return vaultSpecs().map((spec) => {
        const s = spec.state;
        const id = `/subscriptions/${spec.sub}/resourceGroups/${spec.rg}/providers/Microsoft.KeyVault/vaults/${spec.name}`;
        const properties: Record<string, unknown> = {
            tenantId: TENANT,
            sku: { family: 'A', name: 'standard' },
            accessPolicies: [],
            vaultUri: `https://${spec.name}.vault.azure.net/`,
            enabledForDeployment: s.enabledForDeployment,
            enabledForDiskEncryption: s.enabledForDiskEncryption,
            enabledForTemplateDeployment: s.enabledForTemplateDeployment,
            enableSoftDelete: true,
            softDeleteRetentionInDays: 90,
            enableRbacAuthorization: s.enableRbacAuthorization,
            publicNetworkAccess: s.publicNetworkAccess,
            provisioningState: 'Succeeded',
        };
        if (s.enablePurgeProtection === true) properties.enablePurgeProtection = true;
        if (s.networkAcls !== null) {
            properties.networkAcls = {
                bypass: s.networkAcls.bypass,
                defaultAction: s.networkAcls.defaultAction,
                ipRules: (s.networkAcls.ipRules ?? []).map((r) => ({ value: r.value })),
                virtualNetworkRules: [],
            };
        }
        return {
            id,
            name: spec.name,
            type: 'Microsoft.KeyVault/vaults',
            location: 'westeurope',
            tags: { env: spec.name.endsWith('-prod') || spec.name.endsWith('-shared') ? 'prod' : 'dev' },
            properties,
        };
    });
}
