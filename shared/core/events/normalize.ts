import { normalizeActivity, isActivityCategory } from './activity';
import { CLAIM_APPID, CLAIM_OID, CLAIM_UPN, callerOf, LowerIds } from './claims';
import { bool, getCI, isObject, type JsonObject, maybeJson, str, stringList } from './fields';
import { httpStatusOf, outcomeOf } from './status';
import { StringMemo } from './stringMemo';
import { parseRecordTime } from './time';
import type {
    AccessPolicyEntry,
    AuditEvent,
    NetworkAclsState,
    ObjectKind,
    TargetObject,
    VaultChange,
    VaultRef,
} from './types';

/** Why a well-formed record is not a Key Vault audit record (it is counted, not quarantined). */
export type SkipReason = 'other-category' | 'other-resource-type';

export { stripPort } from './claims';

export type NormalizeResult =
    | { readonly kind: 'event'; readonly event: AuditEvent }
    | { readonly kind: 'skipped'; readonly reason: SkipReason }
    | { readonly kind: 'rejected'; readonly reason: string };

/** Longest string accepted in any field: real user agents and descriptions stay far below it. */
export const MAX_FIELD_CHARS = 8192;

const VAULTS_SEGMENT = '/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/';
const VAULT_ID =
    /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.keyvault\/vaults\/([a-z0-9-]{3,24})$/;

const COLLECTIONS: ReadonlyMap<string, { kind: ObjectKind; deleted: boolean }> = new Map([
    ['secrets', { kind: 'secret', deleted: false }],
    ['keys', { kind: 'key', deleted: false }],
    ['certificates', { kind: 'certificate', deleted: false }],
    ['storage', { kind: 'storage', deleted: false }],
    ['deletedsecrets', { kind: 'secret', deleted: true }],
    ['deletedkeys', { kind: 'key', deleted: true }],
    ['deletedcertificates', { kind: 'certificate', deleted: true }],
    ['deletedstorage', { kind: 'storage', deleted: true }],
]);

const OTHER_RESOURCE = 0;
const BAD_VAULT_ID = 1;
/** Memo sizes (powers of two): a stream's vaults and its objects read again and again. */
const RESOURCE_SLOTS = 16_384;
const TARGET_SLOTS = 8192;
const TEXT_SLOTS = 4096;

const NO_STRINGS: readonly string[] = Object.freeze([]);
const NO_POLICIES: readonly AccessPolicyEntry[] = Object.freeze([]);

function rejected(reason: string): NormalizeResult {
    return { kind: 'rejected', reason };
}

/**
 * Turns raw records into {@link AuditEvent}s. Pure and deterministic; it keeps bounded caches of parsed resource ids,
 * object URIs and lower-cased principal ids, because a stream holds few vaults, objects and principals and many records
 * for each.
 */
export class RecordNormalizer {
    // Direct-mapped memos (see StringMemo): each record's strings are fresh, and hashing them for a Map cost more than
    // everything else normalization does.
    private readonly resources = new StringMemo(classifyResource, RESOURCE_SLOTS);
    private readonly targets = new StringMemo(targetOf, TARGET_SLOTS);
    private readonly ids = new LowerIds();
    /**
     * User agents, each kept as the first string seen with its text: every stream repeats few of them (the sample day:
     * 17 in 50,000 records; the diverse estate: 3), and an event that holds a memoized string, not the fresh copy of
     * its record, leaves that much less for each young-generation collection to copy while the batch's events are
     * alive. The same text either way. (Request URIs and caller IPs too were memoized: the diverse estate has a new
     * one in most records, and the misses made its pipeline about 10 % slower.)
     */
    private readonly texts = new StringMemo((s: string) => s, TEXT_SLOTS);

    normalize(raw: unknown): NormalizeResult {
        if (!isObject(raw)) return rejected('record is not an object');

        const category = raw.category ?? raw.type;
        const resourceIdRaw = raw.resourceId;
        if (typeof category === 'string' && category !== 'AuditEvent' && category.toLowerCase() !== 'auditevent') {
            // The second input: Activity Log records (only non-AuditEvent categories pay for this test).
            if (isActivityCategory(category)) return normalizeActivity(raw, category);
            return { kind: 'skipped', reason: 'other-category' };
        }
        const resource = typeof resourceIdRaw === 'string' ? this.resourceOf(resourceIdRaw) : undefined;
        if (resource === OTHER_RESOURCE) return { kind: 'skipped', reason: 'other-resource-type' };

        // Allocated at the first problem only: nearly every record has none.
        let problems: string[] | undefined;
        if (typeof category !== 'string')
            (problems ??= []).push(category === undefined ? 'category missing' : 'category not a string');
        if (typeof resourceIdRaw !== 'string')
            (problems ??= []).push(resourceIdRaw === undefined ? 'resourceId missing' : 'resourceId not a string');
        const timeRaw = raw.time;
        let timeMs = Number.NaN;
        if (typeof timeRaw !== 'string')
            (problems ??= []).push(timeRaw === undefined ? 'time missing' : 'time not a string');
        else {
            timeMs = parseRecordTime(timeRaw);
            if (Number.isNaN(timeMs)) (problems ??= []).push('time not an ISO 8601 timestamp');
        }
        const operation = raw.operationName;
        if (typeof operation !== 'string' || operation.length === 0) {
            (problems ??= []).push(
                operation === undefined ? 'operationName missing' : 'operationName not a non-empty string',
            );
        }
        const props = raw.properties;
        if (props !== undefined && props !== null && !isObject(props))
            (problems ??= []).push('properties not an object');
        let identity: unknown = raw.identity;
        if (typeof identity === 'string') identity = maybeJson(identity); // managed HSM records carry it as a JSON string
        if (identity !== undefined && identity !== null && !isObject(identity))
            (problems ??= []).push('identity not an object');

        const vault = resource === undefined || resource === BAD_VAULT_ID ? undefined : resource;
        if (resource === BAD_VAULT_ID) (problems ??= []).push('resourceId is not a Key Vault vault id');
        const p: JsonObject = isObject(props) ? props : {};
        const statusRaw = p.httpStatusCode;
        if (
            statusRaw !== undefined &&
            statusRaw !== null &&
            typeof statusRaw !== 'number' &&
            !(typeof statusRaw === 'string' && /^\d{3}$/.test(statusRaw))
        ) {
            (problems ??= []).push('properties.httpStatusCode not a number');
        }
        const claims = isObject(identity) && isObject(identity.claim) ? identity.claim : undefined;
        if (problems !== undefined || vault === undefined) {
            const long = firstOversized(raw, p, claims);
            if (long !== undefined) (problems ??= []).push(oversized(long));
            return rejected((problems ?? []).join('; '));
        }

        const op = operation as string;
        const resultSignature = str(raw.resultSignature);
        const httpStatus = httpStatusOf(statusRaw, resultSignature);
        const isDataPlane = isDataPlaneOperation(op);

        const event: AuditEvent = {
            time: timeRaw as string,
            timeMs,
            vault,
            operation: op,
            operationVersion: str(raw.operationVersion),
            httpStatus,
            outcome: outcomeOf(httpStatus),
            resultSignature,
            resultDescription: str(raw.resultDescription),
            caller: callerOf(claims, raw.callerIpAddress, p.trustedService, this.ids),
            target: this.targetOf(p.id),
            clientInfo: this.text(p.clientInfo),
            requestUri: str(p.requestUri),
            correlationId: str(raw.correlationId),
            durationMs: durationOf(raw.durationMs),
            isAccessPolicyMatch: bool(p.isAccessPolicyMatch),
            isRbacAuthorized: bool(p.isRbacAuthorized),
            tlsVersion: str(p.tlsVersion),
            vaultChange: isDataPlane ? undefined : vaultChangeOf(p),
            objectProperties: isDataPlane ? objectPropertiesOf(p) : undefined,
            activity: undefined,
        };
        // Checked on the kept values (cheap, monomorphic); the raw record is only walked for a rejection.
        const long = oversizedField(event);
        if (long !== undefined) return rejected(oversized(long));
        return { kind: 'event', event };
    }

    /** `str(value)`, through {@link texts}. */
    private text(value: unknown): string | undefined {
        return typeof value === 'string' && value.length > 0 ? this.texts.get(value) : undefined;
    }

    /** Parsed target objects are immutable and URIs repeat (the same secret read again and again): memoized. */
    private targetOf(idRaw: unknown): TargetObject | undefined {
        if (typeof idRaw !== 'string' || idRaw.length === 0) return undefined;
        return this.targets.get(idRaw);
    }

    /** Classifies a raw resource id once: a vault, another resource type, or a malformed vault id. */
    private resourceOf(resourceId: string): VaultRef | typeof OTHER_RESOURCE | typeof BAD_VAULT_ID {
        return this.resources.get(resourceId);
    }
}

function classifyResource(resourceId: string): VaultRef | typeof OTHER_RESOURCE | typeof BAD_VAULT_ID {
    if (!resourceId.toUpperCase().includes(VAULTS_SEGMENT)) return OTHER_RESOURCE;
    const id = resourceId.toLowerCase().replace(/\/+$/, '');
    const m = VAULT_ID.exec(id);
    return m
        ? {
              subscriptionId: m[1] as string,
              resourceGroup: m[2] as string,
              name: m[3] as string,
              resourceId: id,
          }
        : BAD_VAULT_ID;
}

const CHECKED_TOP = [
    'resultDescription',
    'resultSignature',
    'callerIpAddress',
    'correlationId',
    'operationVersion',
] as const;
const CHECKED_PROPS = ['id', 'clientInfo', 'requestUri', 'tlsVersion', 'trustedService'] as const;
const CHECKED_CLAIMS = [
    'oid',
    CLAIM_OID,
    'upn',
    CLAIM_UPN,
    'unique_name',
    'appid',
    CLAIM_APPID,
    'azp',
    'xms_mirid',
    'ipaddr',
] as const;

function oversized(field: string): string {
    return `${field} longer than ${MAX_FIELD_CHARS} characters`;
}

function tooLong(s: string | undefined): boolean {
    return s !== undefined && s.length > MAX_FIELD_CHARS;
}

/** The first string of an event over the size limit, named by its record path. */
function oversizedField(e: AuditEvent): string | undefined {
    if (tooLong(e.clientInfo)) return 'properties.clientInfo';
    if (tooLong(e.requestUri)) return 'properties.requestUri';
    if (tooLong(e.target?.uri)) return 'properties.id';
    if (tooLong(e.resultDescription)) return 'resultDescription';
    if (tooLong(e.resultSignature)) return 'resultSignature';
    if (tooLong(e.correlationId)) return 'correlationId';
    if (tooLong(e.operationVersion)) return 'operationVersion';
    if (tooLong(e.tlsVersion)) return 'properties.tlsVersion';
    const c = e.caller;
    if (tooLong(c.ipAddress)) return 'callerIpAddress';
    if (tooLong(c.trustedService)) return 'properties.trustedService';
    if (tooLong(c.upn)) return 'identity.claim.upn';
    if (tooLong(c.objectId)) return 'identity.claim.oid';
    if (tooLong(c.appId)) return 'identity.claim.appid';
    if (tooLong(c.managedIdentityResourceId)) return 'identity.claim.xms_mirid';
    return undefined;
}

/** The first kept string field over the size limit, read from the raw record (rejections only). */
function firstOversized(raw: JsonObject, p: JsonObject, claims: JsonObject | undefined): string | undefined {
    for (const k of CHECKED_TOP) {
        const v = raw[k];
        if (typeof v === 'string' && v.length > MAX_FIELD_CHARS) return k;
    }
    for (const k of CHECKED_PROPS) {
        const v = p[k];
        if (typeof v === 'string' && v.length > MAX_FIELD_CHARS) return `properties.${k}`;
    }
    if (claims !== undefined) {
        for (const k of CHECKED_CLAIMS) {
            const v = claims[k];
            if (typeof v === 'string' && v.length > MAX_FIELD_CHARS) return `identity.claim.${k}`;
        }
    }
    return undefined;
}

/** An operation on secrets, keys or certificates: its name starts with `Secret`, `Key` or `Certificate`. */
function isDataPlaneOperation(op: string): boolean {
    // One test by the first character, then the one prefix it can be (three prefix tests for every record before).
    switch (op.charCodeAt(0)) {
        case 83 /* S */:
            return op.startsWith('Secret');
        case 75 /* K */:
            return op.startsWith('Key');
        case 67 /* C */:
            return op.startsWith('Certificate');
        default:
            return false;
    }
}

function durationOf(value: unknown): number | undefined {
    if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
    if (typeof value === 'string' && value.length > 0) {
        const n = Number(value);
        return Number.isFinite(n) ? n : undefined;
    }
    return undefined;
}

function lowerId(value: unknown): string | undefined {
    return typeof value === 'string' && value.length > 0 ? value.toLowerCase() : undefined;
}

/** Parses `https://<vault>.vault.azure.net/<collection>/<name>/<version>`. */
export function targetOf(idRaw: unknown): TargetObject | undefined {
    const uri = str(idRaw);
    if (uri === undefined) return undefined;
    const scheme = uri.indexOf('://');
    let i = uri.indexOf('/', scheme >= 0 ? scheme + 3 : 0);
    // Up to three path segments: collection, name, version; a query or fragment ends the path.
    const parts: string[] = [];
    while (i >= 0 && i < uri.length && parts.length < 3) {
        let j = i + 1;
        while (j < uri.length) {
            const c = uri.charCodeAt(j);
            if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
            j++;
        }
        if (j > i + 1) parts.push(uri.slice(i + 1, j));
        if (j >= uri.length || uri.charCodeAt(j) !== 47) break;
        i = j;
    }
    const collection = parts[0];
    if (collection === undefined) return { kind: 'vault', deleted: false, name: undefined, version: undefined, uri };
    const known = COLLECTIONS.get(collection) ?? COLLECTIONS.get(collection.toLowerCase());
    return { kind: known?.kind ?? 'other', deleted: known?.deleted ?? false, name: parts[1], version: parts[2], uri };
}

function objectPropertiesOf(p: JsonObject): Readonly<Record<string, unknown>> | undefined {
    // Four named reads, in this order (the order of the result's keys), rather than a loop over the names: a keyed
    // read of a name most records lack is slow.
    const k = p.keyProperties;
    const s = p.secretProperties;
    const c = p.certificateProperties;
    const cp = p.certificatePolicyProperties;
    if ((k ?? s ?? c ?? cp ?? null) === null) return undefined;
    const out: Record<string, unknown> = {};
    if (k !== undefined && k !== null) out.keyProperties = k;
    if (s !== undefined && s !== null) out.secretProperties = s;
    if (c !== undefined && c !== null) out.certificateProperties = c;
    if (cp !== undefined && cp !== null) out.certificatePolicyProperties = cp;
    return out;
}

function permissionsOf(value: unknown): AccessPolicyEntry['permissions'] {
    const v = maybeJson(value);
    const obj = isObject(v) ? v : {};
    const list = (key: string): string[] => stringList(getCI(obj, key)).map((s) => s.toLowerCase());
    return {
        keys: list('keys'),
        secrets: list('secrets'),
        certificates: list('certificates'),
        storage: list('storage'),
    };
}

function accessPoliciesOf(value: unknown): AccessPolicyEntry[] {
    const v = maybeJson(value);
    const items = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    const out: AccessPolicyEntry[] = [];
    for (const item of items) {
        const e = maybeJson(item);
        if (!isObject(e)) continue;
        out.push({
            tenantId: lowerId(getCI(e, 'tenantId')),
            objectId: lowerId(getCI(e, 'objectId')),
            applicationId: lowerId(getCI(e, 'applicationId')),
            permissions: permissionsOf(getCI(e, 'permissions')),
        });
    }
    return out;
}

const RULE_VALUE_KEYS = ['value', 'ipAddressOrRange', 'addressPrefix', 'ipAddress', 'id'];

function ruleValuesOf(value: unknown): string[] {
    const v = maybeJson(value);
    const items = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    const out: string[] = [];
    for (const item of items) {
        const e = maybeJson(item);
        if (typeof e === 'string' && e.length > 0) out.push(e);
        else if (isObject(e)) {
            for (const key of RULE_VALUE_KEYS) {
                const s = str(getCI(e, key));
                if (s !== undefined) {
                    out.push(s);
                    break;
                }
            }
        }
    }
    return out;
}

function networkAclsOf(value: unknown): NetworkAclsState | null | undefined {
    const v = maybeJson(value);
    if (v === null) return null;
    if (!isObject(v)) return undefined;
    const ip = getCI(v, 'ipRules');
    const vnet = getCI(v, 'virtualNetworkRules');
    return {
        defaultAction: str(getCI(v, 'defaultAction')),
        bypass: str(getCI(v, 'bypass')),
        ipRules: ip === undefined || ip === null ? undefined : ruleValuesOf(ip),
        virtualNetworkRules:
            vnet === undefined || vnet === null ? undefined : ruleValuesOf(vnet).map((s) => s.toLowerCase()),
    };
}

const CHANGE_KEY = /^(added|removed)(accesspolic(?:y|ies)|iprules?|virtualnetworkrules?|vnetrules?)$/;

/** Vault after-state and change details of a control-plane record; undefined when it carries none. */
function vaultChangeOf(p: JsonObject): VaultChange | undefined {
    const after = maybeJson(getCI(p, 'properties'));
    const a: JsonObject | undefined = isObject(after) ? after : undefined;
    let addedAccessPolicies = NO_POLICIES;
    let removedAccessPolicies = NO_POLICIES;
    let addedIpRules = NO_STRINGS;
    let removedIpRules = NO_STRINGS;
    let addedVirtualNetworkRules = NO_STRINGS;
    let removedVirtualNetworkRules = NO_STRINGS;
    let sawChange = false;
    for (const key in p) {
        // Only names starting with "added" or "removed" can match: the others are not lower-cased and tested.
        const c = key.charCodeAt(0) | 0x20;
        if (c !== 97 /* a */ && c !== 114 /* r */) continue;
        const m = CHANGE_KEY.exec(key.toLowerCase());
        if (m === null) continue;
        sawChange = true;
        const added = m[1] === 'added';
        const what = m[2] as string;
        if (what.startsWith('accesspolic')) {
            const list = accessPoliciesOf(p[key]);
            if (added) addedAccessPolicies = [...addedAccessPolicies, ...list];
            else removedAccessPolicies = [...removedAccessPolicies, ...list];
        } else if (what.startsWith('iprule')) {
            const list = ruleValuesOf(p[key]);
            if (added) addedIpRules = [...addedIpRules, ...list];
            else removedIpRules = [...removedIpRules, ...list];
        } else {
            const list = ruleValuesOf(p[key]).map((s) => s.toLowerCase());
            if (added) addedVirtualNetworkRules = [...addedVirtualNetworkRules, ...list];
            else removedVirtualNetworkRules = [...removedVirtualNetworkRules, ...list];
        }
    }
    if (a === undefined && !sawChange) return undefined;
    const g = (key: string): unknown => (a === undefined ? undefined : getCI(a, key));
    const policies = g('accessPolicies');
    return {
        networkAcls: networkAclsOf(g('networkAcls')),
        publicNetworkAccess: str(g('publicNetworkAccess')),
        enableRbacAuthorization: bool(g('enableRbacAuthorization')),
        enableSoftDelete: bool(g('enableSoftDelete')),
        enablePurgeProtection: bool(g('enablePurgeProtection')),
        enabledForDeployment: bool(g('enabledForDeployment')),
        enabledForDiskEncryption: bool(g('enabledForDiskEncryption')),
        enabledForTemplateDeployment: bool(g('enabledForTemplateDeployment')),
        tenantId: lowerId(g('tenantId')),
        accessPolicies: policies === undefined || policies === null ? undefined : accessPoliciesOf(policies),
        addedAccessPolicies,
        removedAccessPolicies,
        addedIpRules,
        removedIpRules,
        addedVirtualNetworkRules,
        removedVirtualNetworkRules,
    };
}
