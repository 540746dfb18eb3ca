/**
 * A seeded, deterministic generator of a large, sparse Key Vault estate: by default 10,000 vaults with 50 callers each
 * (500,000 distinct vault-caller pairs), as Event Hubs bodies (`{"records":[...]}`) of exactly `maxRecordsPerBody`
 * records. It exists for the benchmark (bench/bench.ts): the bundled sample day has six vaults and about thirty
 * principals, so it never shows what rule state costs when every record touches a different vault and principal.
 * No I/O, no clock, no Math.random: the same options always give the same bodies.
 *
 * The estate: each vault has 35 callers of its own (application service principals and managed identities), 10 people
 * drawn from an organisation of 2,000 and 5 organisation-wide applications (backup, deployment, monitoring) drawn from
 * a pool of 40. Traffic is skewed the way real estates are: low vault numbers and low caller numbers are busier (the
 * square of a uniform draw picks each), so the hottest tenth of the vaults carries about a third of the records.
 *
 * Records follow the shapes of the sample traffic (shared/sample/trafficGenerator.ts): data-plane `SecretGet`,
 * `SecretList`, `KeyGet`, `KeyUnwrap`/`KeyWrap` (customer-managed key use by managed identities), `Authentication`
 * 401 (a service principal's token-less first try), rare 404/429; control-plane `VaultGet` by people. Rare events that
 * rules act on: a denied burst (12 distinct secrets refused within a minute), a person backing up or deleting a secret,
 * a `VaultPatch` that opens the firewall (defaultAction Allow). Every vault starts inside its learning period (the
 * estate is seen for the first time), so new-principal baselines are written but report nothing.
 */
import { Rng } from './trafficGenerator';

export interface DiverseOptions {
    readonly seed: number;
    /** ISO 8601 time of the first record. */
    readonly start: string;
    /** Records to generate in all. */
    readonly records: number;
    readonly vaults: number;
    readonly callersPerVault: number;
    /** Average records per second of event time (the records are spread evenly with jitter). */
    readonly recordsPerSecond: number;
    /** Records per Event Hubs body (default 50). */
    readonly maxRecordsPerBody?: number;
}

/** The benchmark's diverse workload (records is set per use). */
export const DIVERSE_ESTATE: Omit<DiverseOptions, 'records'> = Object.freeze({
    seed: 20261102,
    start: '2026-11-02T08:00:00Z',
    vaults: 10_000,
    callersPerVault: 50,
    recordsPerSecond: 500,
    maxRecordsPerBody: 50,
});

const TENANT = '3f0c2b6e-1d4a-4c8e-9b2f-5a7d1e0c9b11';
const LOCATION = 'westeurope';
const DATA_API = '7.4';
const ARM_API = '2023-07-01';
const APP_PORTAL = 'c44b4083-3bb0-49c1-b47d-974e53cbdf3c';
const CLAIM_OID = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
const CLAIM_UPN = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn';
const UA_BROWSER =
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36';
const UA_SECRETS = 'azsdk-net-Security.KeyVault.Secrets/4.6.0 (.NET 8.0)';
const UA_KEYS = 'azsdk-net-Security.KeyVault.Keys/4.6.0 (.NET 8.0)';
const NO_PERIMETERS: readonly string[] = Object.freeze([]);
const OWN_CALLERS = 35;
const PEOPLE_PER_VAULT = 10;
const ORG_PEOPLE = 2_000;
const ORG_APPS = 40;
const SECRETS = ['db-password', 'api-key', 'storage-connection', 'redis-connection', 'jwt-signing', 'smtp-password'];
const MISSING = ['db-password-old', 'feature-flags', 'legacy-api-key'];

type Json = Record<string, unknown>;

interface Scheduled {
    readonly ms: number;
    /** Builds the record at its time (or later, never before the record emitted last). */
    readonly build: (ms: number) => Json;
}

/** A 32-bit hash of a few integers (stable identities, independent of the draw order). */
function mix(...parts: number[]): number {
    let h = 0x811c9dc5;
    for (const p of parts) h = step(h, p);
    return h >>> 0;
}

/** One integer into {@link mix}'s hash. */
function step(h: number, p: number): number {
    h = Math.imul(h ^ (p >>> 0), 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    return h ^ (h >>> 12);
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

/** A GUID derived from a few integers. */
function guidOf(...parts: number[]): string {
    // mix(...parts, k) for k = 1..4, hashing the common parts once.
    let h = 0x811c9dc5;
    for (const p of parts) h = step(h, p);
    return guid(step(h, 1) >>> 0, step(h, 2) >>> 0, step(h, 3) >>> 0, step(h, 4) >>> 0);
}

function guid(a: number, b: number, c: number, d: number): string {
    const h = hex8(a) + hex8(b) + hex8(c) + hex8(d);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[d & 3] as string}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The current version (32 hex) of object `o` of vault `vi`. */
function versionOf(vi: number, o: number): string {
    const h = step(step(0x811c9dc5, vi), o);
    return hex8(step(h, 1) >>> 0) + hex8(step(h, 2) >>> 0) + hex8(step(h, 3) >>> 0) + hex8(step(h, 4) >>> 0);
}

interface Caller {
    readonly kind: 'sp' | 'mi' | 'user';
    readonly oid: string;
    readonly appid: string;
    readonly ip: string;
    readonly upn?: string;
    readonly mirid?: string;
}

interface VaultInfo {
    readonly name: string;
    readonly resourceId: string;
    readonly uri: string;
    readonly armUri: string;
}

/** Deterministic identities of the estate (they depend on the seed, never on what was drawn before). */
class Estate {
    private readonly vaultCache = new Map<number, VaultInfo>();
    private readonly callerCache = new Map<number, Caller>();

    constructor(
        private readonly seed: number,
        private readonly callersPerVault: number,
    ) {}

    vault(i: number): VaultInfo {
        let v = this.vaultCache.get(i);
        if (v === undefined) {
            const sub = guidOf(this.seed, 7, i % 100);
            const rg = `rg-app-${i % 500}`;
            const name = `kv-est-${String(i).padStart(5, '0')}`;
            v = {
                name,
                resourceId:
                    `/SUBSCRIPTIONS/${sub}/RESOURCEGROUPS/${rg}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/${name}`.toUpperCase(),
                uri: `https://${name}.vault.azure.net`,
                armUri: `https://management.azure.com/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.KeyVault/vaults/${name}?api-version=${ARM_API}`,
            };
            if (this.vaultCache.size >= 2_048) this.vaultCache.clear();
            this.vaultCache.set(i, v);
        }
        return v;
    }

    /** Caller `j` of vault `i`: its own applications, then people, then organisation-wide applications. */
    caller(i: number, j: number): Caller {
        const id = i * this.callersPerVault + j;
        let c = this.callerCache.get(id);
        if (c === undefined) {
            c = this.build(i, j);
            if (this.callerCache.size >= 8_192) this.callerCache.clear();
            this.callerCache.set(id, c);
        }
        return c;
    }

    private build(i: number, j: number): Caller {
        const s = this.seed;
        const own = Math.min(OWN_CALLERS, this.callersPerVault);
        if (j < own) {
            const ip = `10.${(i >> 8) & 255}.${i & 255}.${4 + j}`;
            if (j % 3 === 0) {
                const mirid = `/subscriptions/${guidOf(s, 7, i % 100)}/resourcegroups/rg-app-${i % 500}/providers/microsoft.managedidentity/userassignedidentities/id-${i}-${j}`;
                return { kind: 'mi', oid: guidOf(s, 1, i, j), appid: guidOf(s, 2, i, j), ip, mirid };
            }
            return { kind: 'sp', oid: guidOf(s, 1, i, j), appid: guidOf(s, 2, i, j), ip };
        }
        if (j < own + PEOPLE_PER_VAULT) {
            const p = mix(s, 3, i, j) % ORG_PEOPLE;
            return {
                kind: 'user',
                oid: guidOf(s, 4, p),
                appid: APP_PORTAL,
                ip: `198.51.100.${p % 250}`,
                upn: `user${p}@contoso.example`,
            };
        }
        const a = mix(s, 5, i, j) % ORG_APPS;
        return { kind: 'sp', oid: guidOf(s, 6, a), appid: guidOf(s, 8, a), ip: `10.250.0.${a}` };
    }
}

class Writer {
    private lastSecond = Number.NaN;
    private secondText = '';

    constructor(private readonly rng: Rng) {}

    time(ms: number): string {
        const second = Math.floor(ms / 1000);
        if (second !== this.lastSecond) {
            this.lastSecond = second;
            this.secondText = new Date(second * 1000).toISOString().slice(0, 20);
        }
        const frac = String(ms - second * 1000).padStart(3, '0') + String(this.rng.int(10_000)).padStart(4, '0');
        return `${this.secondText}${frac}Z`;
    }

    data(t: number, v: VaultInfo, op: string, c: Caller, status: number, id: string, uri: string, desc?: string): Json {
        const r = this.rng;
        const claim: Json =
            op === 'Authentication'
                ? { appid: c.appid, appidacr: '2', xms_az_nwperimid: NO_PERIMETERS }
                : c.kind === 'user'
                  ? {
                        oid: c.oid,
                        appid: c.appid,
                        appidacr: '0',
                        xms_az_nwperimid: NO_PERIMETERS,
                        scp: 'user_impersonation',
                        upn: c.upn,
                        unique_name: c.upn,
                        ipaddr: c.ip,
                    }
                  : {
                        oid: c.oid,
                        appid: c.appid,
                        appidacr: '2',
                        xms_az_nwperimid: NO_PERIMETERS,
                        ...(c.mirid === undefined ? {} : { xms_mirid: c.mirid }),
                    };
        const record: Json = {
            time: this.time(t),
            category: 'AuditEvent',
            operationName: op,
            resultType: 'Success',
            correlationId: guid(r.u32(), r.u32(), r.u32(), r.u32()),
            callerIpAddress: c.ip,
            identity: { claim },
            properties: {
                id,
                clientInfo: c.kind === 'user' ? UA_BROWSER : op.startsWith('Key') ? UA_KEYS : UA_SECRETS,
                httpStatusCode: status,
                requestUri: uri,
                isRbacAuthorized: status < 300 || status === 404,
                tlsVersion: 'TLS1_2',
            },
            resourceId: v.resourceId,
            operationVersion: DATA_API,
            resultSignature: SIGNATURES[status] ?? String(status),
            durationMs: String(3 + r.int(40)),
        };
        if (desc !== undefined) record.resultDescription = desc;
        return record;
    }

    control(t: number, v: VaultInfo, op: string, c: Caller, open: boolean): Json {
        const r = this.rng;
        const properties: Json = {
            id: `${v.uri}/`,
            clientInfo: c.kind === 'user' ? UA_BROWSER : UA_SECRETS,
            requestUri: v.armUri,
            httpStatusCode: 200,
            properties: {
                sku: { Family: 'A', Name: 'Standard', Capacity: null },
                tenantId: TENANT,
                networkAcls: { bypass: 'AzureServices', defaultAction: open ? 'Allow' : 'Deny' },
                enabledForDeployment: false,
                enabledForDiskEncryption: false,
                enabledForTemplateDeployment: false,
                enableSoftDelete: true,
                softDeleteRetentionInDays: 90,
                enableRbacAuthorization: true,
                enablePurgeProtection: true,
                publicNetworkAccess: 'Enabled',
            },
        };
        const claim: Json =
            c.kind === 'user'
                ? { [CLAIM_OID]: c.oid, appid: c.appid, [CLAIM_UPN]: c.upn }
                : { [CLAIM_OID]: c.oid, appid: c.appid };
        return {
            time: this.time(t),
            category: 'AuditEvent',
            operationName: op,
            resultType: 'Success',
            correlationId: guid(r.u32(), r.u32(), r.u32(), r.u32()),
            callerIpAddress: c.ip,
            identity: { claim },
            properties,
            resourceId: v.resourceId,
            operationVersion: ARM_API,
            resultSignature: 'OK',
            durationMs: String(14 + r.int(100)),
        };
    }
}

const SIGNATURES: Readonly<Record<number, string>> = {
    200: 'OK',
    204: 'NoContent',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'NotFound',
    429: 'TooManyRequests',
};

function denial(v: VaultInfo, c: Caller, secret: string): string {
    return (
        'Caller is not authorized to perform action on resource.\n' +
        `Caller: appid=${c.appid};oid=${c.oid};iss=https://sts.windows.net/${TENANT}/\n` +
        "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\n" +
        `Resource: '${v.resourceId.toLowerCase()}/secrets/${secret}'\n` +
        'Assignment: (not found)\nDenyAssignmentId: null\nDecisionReason: null \n' +
        `Vault: ${v.name};location=${LOCATION}`
    );
}

function validate(o: DiverseOptions): void {
    const problems: string[] = [];
    const positiveInt = (name: string, n: number): void => {
        if (!Number.isInteger(n) || n < 1) problems.push(`${name} must be a positive integer, got ${n}`);
    };
    positiveInt('vaults', o.vaults);
    positiveInt('callersPerVault', o.callersPerVault);
    positiveInt('maxRecordsPerBody', o.maxRecordsPerBody ?? 50);
    if (!Number.isInteger(o.records) || o.records < 0)
        problems.push(`records must be an integer >= 0, got ${o.records}`);
    if (!(o.recordsPerSecond > 0) || !Number.isFinite(o.recordsPerSecond))
        problems.push(`recordsPerSecond must be a positive number, got ${o.recordsPerSecond}`);
    if (Number.isNaN(Date.parse(o.start))) problems.push(`start is not an ISO 8601 time: ${o.start}`);
    if (problems.length > 0) throw new RangeError(problems.join('; '));
}

/**
 * The bodies of the diverse workload with their record counts, in time order: exactly `records` records, every body
 * but the last holding `maxRecordsPerBody`.
 */
export function* generateDiverseBatches(options: DiverseOptions): Generator<{ body: string; records: number }> {
    validate(options);
    const perBody = options.maxRecordsPerBody ?? 50;
    const rng = new Rng(options.seed);
    const estate = new Estate(options.seed, options.callersPerVault);
    const w = new Writer(rng);
    const stepMs = 1000 / options.recordsPerSecond;
    const start = Date.parse(options.start);
    const { vaults, callersPerVault } = options;
    /** Records that an episode scheduled ahead (denied bursts), by time: emitted once the clock reaches them. */
    const queue: Scheduled[] = [];
    let n = 0;
    let t = start;
    let body: Json[] = [];
    while (n < options.records) {
        let record: Json;
        const due = queue[0];
        if (due !== undefined && due.ms <= t) {
            queue.shift();
            record = due.build(Math.max(due.ms, Math.floor(t)));
        } else {
            t += stepMs * (0.5 + rng.next());
            const ms = Math.floor(t);
            const u = rng.next();
            const vi = Math.floor(vaults * u * u);
            const x = rng.next();
            const j = Math.floor(callersPerVault * x * x);
            record = next(w, rng, ms, vi, estate.vault(vi), estate.caller(vi, j), queue);
        }
        body.push(record);
        n++;
        if (body.length === perBody) {
            yield { body: JSON.stringify({ records: body }), records: body.length };
            body = [];
        }
    }
    if (body.length > 0) yield { body: JSON.stringify({ records: body }), records: body.length };
}

/** The bodies only (see {@link generateDiverseBatches}). */
export function* generateDiverseBodies(options: DiverseOptions): Generator<string> {
    for (const b of generateDiverseBatches(options)) yield b.body;
}

/** One record of background traffic for caller `c` on vault `v` at `ms` (may queue follow-ups). */
function next(w: Writer, r: Rng, ms: number, vi: number, v: VaultInfo, c: Caller, queue: Scheduled[]): Json {
    const si = r.int(SECRETS.length);
    const secret = SECRETS[si] as string;
    const secretUri = `${v.uri}/secrets/${secret}`;
    const x = r.next();
    if (c.kind === 'user') {
        if (x < 0.25) return w.control(ms, v, 'VaultGet', c, false);
        if (x < 0.251) {
            // A person opens the firewall (firewall-opened; the remediator plans the way back).
            return w.control(ms, v, 'VaultPatch', c, true);
        }
        if (x < 0.256) {
            const op = r.chance(0.5) ? 'SecretBackup' : 'SecretDelete';
            const uri = op === 'SecretBackup' ? `${secretUri}/backup` : secretUri;
            return w.data(ms, v, op, c, 200, secretUri, `${uri}?api-version=${DATA_API}`);
        }
        if (x < 0.45) {
            const id = `${v.uri}/secrets`;
            return w.data(ms, v, 'SecretList', c, 200, id, `${id}?api-version=${DATA_API}`);
        }
        return w.data(
            ms,
            v,
            'SecretGet',
            c,
            200,
            `${secretUri}/${versionOf(vi, si)}`,
            `${secretUri}?api-version=${DATA_API}`,
        );
    }
    if (c.kind === 'sp' && x < 0.03) {
        return w.data(
            ms,
            v,
            'Authentication',
            c,
            401,
            `${v.uri}/`,
            `${v.uri}/?api-version=${DATA_API}`,
            'Unauthorized',
        );
    }
    if (c.kind === 'mi' && x < 0.35) {
        const key = `cmk-${v.name.slice(-3)}`;
        const kid = `${v.uri}/keys/${key}/${versionOf(vi, 100)}`;
        const op = r.chance(0.2) ? 'KeyWrap' : 'KeyUnwrap';
        return w.data(
            ms,
            v,
            op,
            c,
            200,
            kid,
            `${kid}/${op === 'KeyWrap' ? 'wrapkey' : 'unwrapkey'}?api-version=${DATA_API}`,
        );
    }
    const y = r.next();
    if (y < 0.05) {
        const keyUri = `${v.uri}/keys/signing`;
        return w.data(ms, v, 'KeyGet', c, 200, `${keyUri}/${versionOf(vi, 101)}`, `${keyUri}/?api-version=${DATA_API}`);
    }
    if (y < 0.08) {
        const id = `${v.uri}/secrets`;
        return w.data(ms, v, 'SecretList', c, 200, id, `${id}?api-version=${DATA_API}`);
    }
    if (y < 0.1) {
        const missing = MISSING[r.int(MISSING.length)] as string;
        const uri = `${v.uri}/secrets/${missing}`;
        return w.data(
            ms,
            v,
            'SecretGet',
            c,
            404,
            uri,
            `${uri}?api-version=${DATA_API}`,
            `A secret with (name/id) ${missing} was not found in this key vault.`,
        );
    }
    if (y < 0.1002) {
        // A denied burst: twelve distinct secrets refused within a minute (denied-access-burst).
        for (let k = 1; k < 12; k++) {
            const name = `probe-${k}`;
            const uri = `${v.uri}/secrets/${name}`;
            queue.push({
                ms: ms + k * 1500,
                build: (at) =>
                    w.data(at, v, 'SecretGet', c, 403, uri, `${uri}?api-version=${DATA_API}`, denial(v, c, name)),
            });
        }
        queue.sort((a, b) => a.ms - b.ms);
        return w.data(
            ms,
            v,
            'SecretGet',
            c,
            403,
            secretUri,
            `${secretUri}?api-version=${DATA_API}`,
            denial(v, c, secret),
        );
    }
    if (y < 0.101) return w.data(ms, v, 'SecretGet', c, 429, secretUri, `${secretUri}?api-version=${DATA_API}`);
    return w.data(
        ms,
        v,
        'SecretGet',
        c,
        200,
        `${secretUri}/${versionOf(vi, si)}`,
        `${secretUri}?api-version=${DATA_API}`,
    );
}
