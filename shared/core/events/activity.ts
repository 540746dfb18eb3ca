import { callerOf } from './claims';
import { getCI, isObject, type JsonObject, maybeJson, str } from './fields';
import type { NormalizeResult } from './normalize';
import { httpStatusOf, outcomeOf } from './status';
import { parseRecordTime } from './time';
import type {
    ActivityDetails,
    AuditEvent,
    DiagnosticSettingBody,
    DiagnosticSettingChange,
    RoleAssignmentChange,
    ScopeRef,
    VaultRef,
} from './types';

/**
 * The Azure Activity Log as a second input. A subscription (or management-group) diagnostic setting streams it to
 * Event Hubs in the "storage account and event hubs" schema of the Activity Log event schema documentation
 * (learn.microsoft.com/azure/azure-monitor/essentials/activity-log-schema): `category` is `Write`, `Delete` or
 * `Action` there (real exports also carry `Administrative`), `identity` holds `authorization` and `claims`,
 * `resultType` is `Start`, `Accept`, `Success` or `Failure`, and `properties` carries `eventCategory`, `entity`,
 * `hierarchy`, `statusCode` and, for some operations, `requestbody` / `responseBody` as JSON strings. For a role
 * assignment the body (assignee, role, scope) is on the `Start` record, and the `Success` record usually carries the
 * outcome only: the rules join the two by correlation id.
 *
 * Only the records that matter to Key Vault protection are kept: role assignment writes and deletes at a vault's scope
 * or above it, diagnostic-setting writes and deletes on vaults, and Key Vault vault operations. The rest is skipped
 * and counted like any record of another resource type.
 */

const ACTIVITY_CATEGORIES: ReadonlySet<string> = new Set(['write', 'delete', 'action', 'administrative', 'policy']);

/** True for the `category` values of Activity Log records. */
export function isActivityCategory(category: string): boolean {
    return ACTIVITY_CATEGORIES.has(category.toLowerCase());
}

const ROLE_ASSIGNMENT_OPS = 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/';
const DIAGNOSTIC_OPS = 'MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/';
const VAULT_OPS = 'MICROSOFT.KEYVAULT/VAULTS/';
const RA_SEGMENT = '/providers/microsoft.authorization/roleassignments/';
const DIAG_SEGMENT = '/providers/microsoft.insights/diagnosticsettings/';

/** Activity Log operation names, upper-cased (the Event Hubs schema spelling), that rules listen to. */
export const ACTIVITY_OPERATIONS = {
    roleAssignmentWrite: 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE',
    roleAssignmentDelete: 'MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/DELETE',
    diagnosticSettingWrite: 'MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/WRITE',
    diagnosticSettingDelete: 'MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/DELETE',
} as const;

const MG = /^\/providers\/microsoft\.management\/managementgroups\/([^/]+)$/;
const SUB = /^\/subscriptions\/([^/]+)$/;
const RG = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)$/;
const VAULT =
    /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.keyvault\/vaults\/([a-z0-9-]{3,24})(?:\/.*)?$/;

/** Longest resource id or body string accepted. */
const MAX_ID_CHARS = 2048;
const MAX_BODY_CHARS = 64 * 1024;

type Parsed = { scope: ScopeRef; vault: VaultRef | undefined } | undefined;

/** The scope a (lower-case, trimmed) resource id denotes, when it is a vault (or under one) or a scope above vaults. */
export function parseScope(idRaw: string): Parsed {
    const id = idRaw.toLowerCase().replace(/\/+$/, '');
    if (id === '' || id === '/')
        return {
            scope: {
                level: 'tenant',
                id: '/',
                subscriptionId: undefined,
                resourceGroup: undefined,
                managementGroup: undefined,
            },
            vault: undefined,
        };
    let m = VAULT.exec(id);
    if (m !== null) {
        const [, sub, rg, name] = m as unknown as [string, string, string, string];
        const resourceId = `/subscriptions/${sub}/resourcegroups/${rg}/providers/microsoft.keyvault/vaults/${name}`;
        return {
            scope: {
                level: 'vault',
                id: resourceId,
                subscriptionId: sub,
                resourceGroup: rg,
                managementGroup: undefined,
            },
            vault: { subscriptionId: sub, resourceGroup: rg, name, resourceId },
        };
    }
    m = RG.exec(id);
    if (m !== null)
        return {
            scope: {
                level: 'resource-group',
                id,
                subscriptionId: m[1],
                resourceGroup: m[2],
                managementGroup: undefined,
            },
            vault: undefined,
        };
    m = SUB.exec(id);
    if (m !== null)
        return {
            scope: {
                level: 'subscription',
                id,
                subscriptionId: m[1],
                resourceGroup: undefined,
                managementGroup: undefined,
            },
            vault: undefined,
        };
    m = MG.exec(id);
    if (m !== null)
        return {
            scope: {
                level: 'management-group',
                id,
                subscriptionId: undefined,
                resourceGroup: undefined,
                managementGroup: m[1],
            },
            vault: undefined,
        };
    return undefined;
}

/**
 * The stand-in vault of an event whose scope is above vaults: it names the scope (`rg:<subscription>:<group>`,
 * `sub:<subscription>`, `mg:<group>`, `tenant:root`), so that grouping, state and alert routing by subscription work;
 * the finding lists the known vaults the scope covers.
 */
export function scopeVaultRef(scope: ScopeRef): VaultRef {
    let name = 'tenant:root';
    switch (scope.level) {
        case 'resource-group':
            name = `rg:${scope.subscriptionId ?? ''}:${scope.resourceGroup ?? ''}`;
            break;
        case 'subscription':
            name = `sub:${scope.subscriptionId ?? ''}`;
            break;
        case 'management-group':
            name = `mg:${scope.managementGroup ?? ''}`;
            break;
        case 'tenant':
        case 'vault':
            name = 'tenant:root';
    }
    return {
        subscriptionId: scope.subscriptionId ?? '',
        resourceGroup: scope.resourceGroup ?? '',
        name,
        resourceId: scope.id,
    };
}

/**
 * True when `scope` is the vault's own scope or one above it (the vault inherits assignments made there). Which
 * subscriptions sit under a management group is known only from ARM (an event's `hierarchy` is the path above its own
 * scope, not the subscriptions below it): a management-group assignment is taken to cover every vault.
 */
export function scopeCovers(scope: ScopeRef, vault: VaultRef): boolean {
    switch (scope.level) {
        case 'tenant':
        case 'management-group':
            return true;
        case 'subscription':
            return scope.subscriptionId === vault.subscriptionId;
        case 'resource-group':
            return scope.subscriptionId === vault.subscriptionId && scope.resourceGroup === vault.resourceGroup;
        case 'vault':
            return scope.id === vault.resourceId;
    }
}

function rejected(reason: string): NormalizeResult {
    return { kind: 'rejected', reason };
}

const SKIPPED: NormalizeResult = Object.freeze({ kind: 'skipped', reason: 'other-resource-type' });

function body(value: unknown): JsonObject | undefined {
    if (typeof value === 'string' && value.length > MAX_BODY_CHARS) return undefined;
    const v = maybeJson(value);
    return isObject(v) ? v : undefined;
}

function lowerGuidLike(value: unknown): string | undefined {
    const s = str(value);
    return s === undefined ? undefined : s.toLowerCase();
}

/** `a1b2...` (32 hex digits, as `identity.authorization.evidence.principalId` spells it) as a dashed GUID. */
function dashed(hex: string | undefined): string | undefined {
    if (hex === undefined) return undefined;
    const h = hex.toLowerCase();
    if (/^[0-9a-f]{32}$/.test(h))
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    return /^[0-9a-f-]{36}$/.test(h) ? h : undefined;
}

/**
 * The HTTP status of an Activity Log record: `properties.statusCode` (`Created`, `OK`, `Forbidden`, or a number), else
 * the part of `resultSignature` after the dot (`Failed.Forbidden`), else 200 for a bare `Succeeded`. `resultType` is
 * not used: it is only the phase of the operation.
 */
function activityStatus(statusCode: unknown, resultSignature: string | undefined): number | undefined {
    const fromCode = httpStatusOf(statusCode, undefined) ?? httpStatusOf(undefined, str(statusCode));
    if (fromCode !== undefined) return fromCode;
    if (resultSignature === undefined) return undefined;
    const dot = resultSignature.indexOf('.');
    const head = dot < 0 ? resultSignature : resultSignature.slice(0, dot);
    const tail = dot < 0 ? '' : resultSignature.slice(dot + 1);
    if (tail.length > 0) {
        const s = httpStatusOf(undefined, tail);
        if (s !== undefined) return s;
    }
    return head.toLowerCase() === 'succeeded' ? 200 : undefined;
}

function roleAssignmentOf(resourceId: string, p: JsonObject): RoleAssignmentChange | undefined {
    const at = resourceId.lastIndexOf(RA_SEGMENT);
    if (at < 0) return undefined;
    const name = resourceId.slice(at + RA_SEGMENT.length);
    if (name.length === 0 || name.includes('/')) return undefined;
    const idScope = parseScope(resourceId.slice(0, at));
    const b = body(getCI(p, 'requestbody')) ?? body(getCI(p, 'responseBody'));
    const props = b === undefined ? undefined : getCI(b, 'properties');
    const bp: JsonObject | undefined = isObject(props) ? props : b;
    const scopeRaw = bp === undefined ? undefined : str(getCI(bp, 'scope'));
    const bodyScope = scopeRaw === undefined ? undefined : parseScope(scopeRaw);
    const scope = (bodyScope ?? idScope)?.scope;
    if (scope === undefined) return undefined;
    const roleRaw = bp === undefined ? undefined : str(getCI(bp, 'roleDefinitionId'));
    return {
        id: resourceId,
        name,
        scope,
        principalId: bp === undefined ? undefined : lowerGuidLike(getCI(bp, 'principalId')),
        principalType: bp === undefined ? undefined : str(getCI(bp, 'principalType')),
        roleDefinitionId:
            roleRaw === undefined ? undefined : roleRaw.toLowerCase().replace(/\/+$/, '').split('/').pop(),
    };
}

function diagnosticBodyOf(b: JsonObject): DiagnosticSettingBody {
    const props = getCI(b, 'properties');
    const bp: JsonObject = isObject(props) ? props : b;
    const logs = maybeJson(getCI(bp, 'logs'));
    const enabledLogs: string[] = [];
    if (Array.isArray(logs)) {
        for (const item of logs) {
            if (!isObject(item)) continue;
            const enabled = getCI(item, 'enabled');
            if (enabled !== true && enabled !== 'true' && enabled !== 'True') continue;
            const name = str(getCI(item, 'category')) ?? str(getCI(item, 'categoryGroup'));
            if (name !== undefined) enabledLogs.push(name.toLowerCase());
        }
    }
    return {
        eventHubAuthorizationRuleId: lowerGuidLike(getCI(bp, 'eventHubAuthorizationRuleId'))?.replace(/\/+$/, ''),
        eventHubName: lowerGuidLike(getCI(bp, 'eventHubName')),
        enabledLogs,
    };
}

function diagnosticSettingOf(resourceId: string, p: JsonObject): DiagnosticSettingChange | undefined {
    const at = resourceId.lastIndexOf(DIAG_SEGMENT);
    if (at < 0) return undefined;
    const name = resourceId.slice(at + DIAG_SEGMENT.length);
    if (name.length === 0 || name.includes('/')) return undefined;
    const b = body(getCI(p, 'requestbody')) ?? body(getCI(p, 'responseBody'));
    return { name, body: b === undefined ? undefined : diagnosticBodyOf(b) };
}

/** Normalizes one Activity Log record (its `category` already says it is one). */
export function normalizeActivity(raw: JsonObject, category: string): NormalizeResult {
    const operationRaw = raw.operationName;
    // The REST shape nests the name in `{ value, localizedValue }`; the Event Hubs shape has a string.
    const opValue = isObject(operationRaw) ? operationRaw.value : operationRaw;
    if (typeof opValue !== 'string' || opValue.length === 0)
        return rejected(opValue === undefined ? 'operationName missing' : 'operationName not a non-empty string');
    const operation = opValue.toUpperCase();
    const isRole = operation.startsWith(ROLE_ASSIGNMENT_OPS);
    const isDiag = operation.startsWith(DIAGNOSTIC_OPS);
    if (!isRole && !isDiag && !operation.startsWith(VAULT_OPS)) return SKIPPED;

    const problems: string[] = [];
    const props = raw.properties;
    if (props !== undefined && props !== null && !isObject(props)) problems.push('properties not an object');
    const p: JsonObject = isObject(props) ? props : {};
    const ridRaw = str(raw.resourceId) ?? str(p.entity);
    if (ridRaw === undefined)
        problems.push(raw.resourceId === undefined ? 'resourceId missing' : 'resourceId not a string');
    else if (ridRaw.length > MAX_ID_CHARS) problems.push(`resourceId longer than ${MAX_ID_CHARS} characters`);
    const timeRaw = raw.time;
    let timeMs = Number.NaN;
    if (typeof timeRaw !== 'string') problems.push(timeRaw === undefined ? 'time missing' : 'time not a string');
    else {
        timeMs = parseRecordTime(timeRaw);
        if (Number.isNaN(timeMs)) problems.push('time not an ISO 8601 timestamp');
    }
    let identity: unknown = raw.identity;
    if (typeof identity === 'string') identity = maybeJson(identity);
    if (identity !== undefined && identity !== null && !isObject(identity)) problems.push('identity not an object');
    if (problems.length > 0) return rejected(problems.join('; '));

    const resourceId = (ridRaw as string).toLowerCase().replace(/\/+$/, '');
    let vault: VaultRef | undefined;
    let roleAssignment: RoleAssignmentChange | undefined;
    let diagnosticSetting: DiagnosticSettingChange | undefined;
    if (isRole) {
        roleAssignment = roleAssignmentOf(resourceId, p);
        // An assignment on another resource (a storage account, a VM) grants nothing on a vault.
        if (roleAssignment === undefined) return SKIPPED;
        const s = roleAssignment.scope;
        vault = (s.level === 'vault' ? parseScope(s.id)?.vault : undefined) ?? scopeVaultRef(s);
    } else if (isDiag) {
        diagnosticSetting = diagnosticSettingOf(resourceId, p);
        const at = resourceId.lastIndexOf(DIAG_SEGMENT);
        vault = at < 0 ? undefined : parseScope(resourceId.slice(0, at))?.vault;
        // Diagnostic settings of other resources (and of subscriptions) are not ours to watch.
        if (diagnosticSetting === undefined || vault === undefined) return SKIPPED;
    } else {
        vault = parseScope(resourceId)?.vault;
        if (vault === undefined) return SKIPPED;
    }

    const idObj = isObject(identity) ? identity : undefined;
    const claimsRaw = idObj === undefined ? undefined : (idObj.claims ?? idObj.claim);
    const claimsParsed = maybeJson(claimsRaw);
    const claims = isObject(claimsParsed) ? claimsParsed : undefined;
    let caller = callerOf(claims, raw.callerIpAddress, undefined);
    if (caller.objectId === undefined && idObj !== undefined) {
        // No claims: the authorization evidence still names the caller's object id.
        const auth = idObj.authorization;
        const evidence = isObject(auth) ? auth.evidence : undefined;
        const oid = dashed(isObject(evidence) ? str(evidence.principalId) : undefined);
        if (oid !== undefined)
            caller = {
                ...caller,
                objectId: oid,
                kind: caller.kind === 'anonymous' ? 'service-principal' : caller.kind,
            };
    }

    const resultType = str(raw.resultType);
    const phase = resultType?.toLowerCase();
    const resultSignature = str(raw.resultSignature);
    const httpStatus = activityStatus(p.statusCode, resultSignature);
    const done = phase !== 'start' && phase !== 'started' && phase !== 'accept' && phase !== 'accepted';
    const activity: ActivityDetails = {
        category,
        resultType,
        resourceId,
        eventCategory: str(p.eventCategory),
        hierarchy: str(p.hierarchy),
        hasBody: getCI(p, 'requestbody') !== undefined || getCI(p, 'responseBody') !== undefined,
        roleAssignment,
        diagnosticSetting,
    };
    const event: AuditEvent = {
        time: timeRaw as string,
        timeMs,
        vault,
        operation,
        operationVersion: str(raw.operationVersion),
        httpStatus,
        outcome: done ? outcomeOf(httpStatus) : 'unknown',
        resultSignature,
        resultDescription: str(raw.resultDescription),
        caller,
        target: undefined,
        clientInfo: undefined,
        requestUri: undefined,
        correlationId: str(raw.correlationId),
        durationMs: undefined,
        isAccessPolicyMatch: undefined,
        isRbacAuthorized: undefined,
        tlsVersion: undefined,
        vaultChange: undefined,
        objectProperties: undefined,
        activity,
    };
    const long = oversized(event);
    return long === undefined
        ? { kind: 'event', event }
        : rejected(`${long} longer than ${MAX_FIELD_CHARS} characters`);
}

/** The same limit as for AuditEvent fields (see `MAX_FIELD_CHARS` in normalize.ts). */
const MAX_FIELD_CHARS = 8192;

function oversized(e: AuditEvent): string | undefined {
    const c = e.caller;
    const fields: [string, string | undefined][] = [
        ['resultDescription', e.resultDescription],
        ['resultSignature', e.resultSignature],
        ['correlationId', e.correlationId],
        ['operationVersion', e.operationVersion],
        ['callerIpAddress', c.ipAddress],
        ['identity.claims.upn', c.upn],
        ['identity.claims.oid', c.objectId],
        ['identity.claims.appid', c.appId],
        ['identity.claims.xms_mirid', c.managedIdentityResourceId],
        ['properties.hierarchy', e.activity?.hierarchy],
    ];
    for (const [name, v] of fields) if (v !== undefined && v.length > MAX_FIELD_CHARS) return name;
    return undefined;
}
