// ARM resource providers beyond Key Vault that protect a vault from outside it, mounted in the ARM simulator through
// its `providerRoutes` option (so injected faults act on them as on the vault routes):
//
// - Microsoft.Authorization role assignments, api-version 2022-04-01 (the version @azure/arm-authorization 9.x sends):
//   `RoleAssignments_GetById` / `_CreateById` / `_DeleteById` (`/{roleAssignmentId}`, which is the same URL as
//   `/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}`) and `RoleAssignments_ListForScope`
//   with `$filter=atScope()` (at or above the scope) or `$filter=principalId eq '{id}'` (at, above or below it).
// - Microsoft.Insights diagnostic settings of a resource, api-version 2021-05-01-preview: `DiagnosticSettings_List`,
//   `_Get`, `_CreateOrUpdate`, `_Delete`.
//
// Contract sources: the official OpenAPI definitions vendored in ./spec (see spec/SOURCE.md): request bodies are
// validated against them and every answer of the fake is checked against the documented response (a mismatch is a
// bug in the fake and fails loudly). Service behaviour the specs do not state is marked "service rule" with its source.
import { randomUUID } from 'node:crypto';
import {
    type ArmProviderRequest,
    type ArmProviderRoute,
    OpenApiSpec,
    specDir,
    type ValidationError,
} from './armSimulator';

export const ROLE_ASSIGNMENTS_API_VERSION = '2022-04-01';
export const ROLE_ASSIGNMENTS_SPEC =
    'specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json';
export const DIAGNOSTIC_SETTINGS_API_VERSION = '2021-05-01-preview';
export const DIAGNOSTIC_SETTINGS_SPEC =
    'specification/monitor/resource-manager/Microsoft.Insights/preview/2021-05-01-preview/diagnosticsSettings_API.json';

/** A role assignment as `RoleAssignments_GetById` returns it. */
export interface RoleAssignmentWire {
    id: string;
    name: string;
    type: 'Microsoft.Authorization/roleAssignments';
    properties: {
        scope: string;
        roleDefinitionId: string;
        principalId: string;
        principalType?: string;
        description?: string;
        condition?: string;
        conditionVersion?: string;
        createdOn: string;
        updatedOn: string;
        createdBy: string;
        updatedBy: string;
    };
}

/** The properties of a diagnostic setting (DiagnosticSettings in the Monitor spec). */
export interface DiagnosticSettingWireProperties {
    eventHubAuthorizationRuleId?: string;
    eventHubName?: string;
    storageAccountId?: string;
    workspaceId?: string;
    marketplacePartnerId?: string;
    serviceBusRuleId?: string;
    logAnalyticsDestinationType?: string;
    logs?: {
        category?: string;
        categoryGroup?: string;
        enabled: boolean;
        retentionPolicy?: { enabled: boolean; days: number };
    }[];
    metrics?: { category?: string; timeGrain?: string; enabled: boolean }[];
}

export interface ArmAccessRoutes {
    readonly route: ArmProviderRoute;
    /** Creates (or replaces) a role assignment, as if someone assigned it. Returns its id. */
    putRoleAssignment(a: {
        scope: string;
        roleDefinitionGuid: string;
        principalId: string;
        principalType?: string;
        name?: string;
    }): string;
    /** The assignment with this id (case-insensitive), or undefined. */
    roleAssignment(id: string): RoleAssignmentWire | undefined;
    /** Every assignment, deep-copied. */
    roleAssignments(): RoleAssignmentWire[];
    deleteRoleAssignment(id: string): boolean;
    /** Replaces a resource's diagnostic settings. */
    setDiagnosticSettings(
        resourceId: string,
        settings: readonly ({ name: string } & DiagnosticSettingWireProperties)[],
    ): void;
    /** A resource's diagnostic settings, deep-copied. */
    diagnosticSettings(resourceId: string): ({ name: string } & DiagnosticSettingWireProperties)[];
}

const RA = /^(.*)\/providers\/Microsoft\.Authorization\/roleAssignments\/([^/]+)$/i;
const RA_LIST = /^(.*)\/providers\/Microsoft\.Authorization\/roleAssignments$/i;
const DS = /^(.*)\/providers\/Microsoft\.Insights\/diagnosticSettings\/([^/]+)$/i;
const DS_LIST = /^(.*)\/providers\/Microsoft\.Insights\/diagnosticSettings$/i;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ROLE_DEFINITION =
    /^(?:\/subscriptions\/[^/]+)?\/providers\/Microsoft\.Authorization\/roleDefinitions\/([0-9a-f-]{36})$/i;
/** "A resource can have up to five diagnostic settings" (learn.microsoft.com/azure/azure-monitor/essentials/diagnostic-settings, service rule). */
const MAX_SETTINGS = 5;

const norm = (id: string): string => id.toLowerCase().replace(/\/+$/, '');

function scopeOf(raw: string): string {
    const s = raw.replace(/\/+$/, '');
    return s === '' ? '/' : s;
}

/** True when `outer` is `inner` or a scope above it. */
function atOrAbove(outer: string, inner: string): boolean {
    const o = norm(outer);
    const i = norm(inner);
    if (o === '' || o === '/') return true;
    // Management groups sit above every subscription here (the fake has no hierarchy).
    if (o.startsWith('/providers/microsoft.management/managementgroups/')) return true;
    return i === o || i.startsWith(`${o}/`);
}

type Answer = ReturnType<ArmProviderRoute['handle']>;

function armError(status: number, code: string, message: string, invalid = status === 400): Answer {
    return { status, body: { error: { code, message } }, ...(invalid ? { invalid: [message] } : {}) };
}

/** The Monitor spec's ErrorResponse is `{ code, message }` at the top level. */
function monitorError(status: number, code: string, message: string, invalid = status === 400): Answer {
    return { status, body: { code, message }, ...(invalid ? { invalid: [message] } : {}) };
}

export function armAccessRoutes(): ArmAccessRoutes {
    const spec = new OpenApiSpec(specDir());
    const assignments = new Map<string, RoleAssignmentWire>();
    const settings = new Map<string, Map<string, { name: string } & DiagnosticSettingWireProperties>>();

    function validate(file: string, ref: string, value: unknown, mode: 'request' | 'response'): ValidationError[] {
        const errors: ValidationError[] = [];
        spec.validate(value, { $ref: ref }, file, '', mode, errors);
        return errors;
    }

    /** The fake's own answers must match the documented response. */
    function checked(file: string, ref: string, status: number, body: unknown): Answer {
        const wrong = validate(file, ref, body, 'response');
        if (wrong.length > 0)
            throw new Error(`armAccessRoutes: answer does not match ${ref}: ${wrong.map((e) => e.message).join('; ')}`);
        return { status, body };
    }

    function makeAssignment(
        scope: string,
        name: string,
        p: { roleDefinitionId: string; principalId: string; principalType?: string } & Record<string, unknown>,
    ): RoleAssignmentWire {
        const now = new Date().toISOString();
        const s = scopeOf(scope);
        return {
            id: `${s === '/' ? '' : s}/providers/Microsoft.Authorization/roleAssignments/${name}`,
            name,
            type: 'Microsoft.Authorization/roleAssignments',
            properties: {
                scope: s,
                roleDefinitionId: p.roleDefinitionId,
                principalId: p.principalId,
                // RoleAssignmentProperties.principalType: "default": "User".
                principalType: p.principalType ?? 'User',
                ...(typeof p.description === 'string' ? { description: p.description } : {}),
                ...(typeof p.condition === 'string' ? { condition: p.condition } : {}),
                ...(typeof p.conditionVersion === 'string' ? { conditionVersion: p.conditionVersion } : {}),
                createdOn: now,
                updatedOn: now,
                createdBy: '00000000-0000-0000-0000-0000000000c1',
                updatedBy: '00000000-0000-0000-0000-0000000000c1',
            },
        };
    }

    function roleAssignmentsOp(req: ArmProviderRequest, operationId: string): Answer {
        const file = ROLE_ASSIGNMENTS_SPEC;
        if (req.apiVersion !== ROLE_ASSIGNMENTS_API_VERSION)
            return armError(
                400,
                'InvalidApiVersionParameter',
                `The api-version '${req.apiVersion ?? ''}' is invalid. The supported versions (in this fake) are '${ROLE_ASSIGNMENTS_API_VERSION}'.`,
            );
        if (operationId === 'RoleAssignments_ListForScope') {
            const scope = scopeOf((RA_LIST.exec(req.path) as RegExpExecArray)[1] as string);
            const filter = req.query.get('$filter') ?? undefined;
            let pick: (a: RoleAssignmentWire) => boolean;
            if (filter === undefined || filter === '')
                pick = (a) => atOrAbove(a.properties.scope, scope) || atOrAbove(scope, a.properties.scope);
            else if (/^atScope\(\)$/i.test(filter.trim())) pick = (a) => atOrAbove(a.properties.scope, scope);
            else {
                const m = /^principalId\s+eq\s+'([^']+)'$/i.exec(filter.trim());
                if (m === null)
                    return armError(400, 'UnsupportedQuery', `The filter '${filter}' is not supported (in this fake).`);
                const principal = (m[1] as string).toLowerCase();
                pick = (a) =>
                    a.properties.principalId.toLowerCase() === principal &&
                    (atOrAbove(a.properties.scope, scope) || atOrAbove(scope, a.properties.scope));
            }
            const value = [...assignments.values()].filter(pick).map((a) => structuredClone(a));
            return checked(file, '#/definitions/RoleAssignmentListResult', 200, { value });
        }
        const m = RA.exec(req.path) as RegExpExecArray;
        const scope = m[1] as string;
        const name = m[2] as string;
        const key = norm(req.path);
        const existing = assignments.get(key);
        if (operationId === 'RoleAssignments_GetById') {
            if (existing === undefined)
                return armError(404, 'RoleAssignmentNotFound', `The role assignment '${name}' is not found.`, false);
            return checked(file, '#/definitions/RoleAssignment', 200, structuredClone(existing));
        }
        if (operationId === 'RoleAssignments_DeleteById') {
            // 204: "Role assignment already deleted or does not exist."
            if (existing === undefined) return { status: 204 };
            assignments.delete(key);
            return checked(file, '#/definitions/RoleAssignment', 200, existing);
        }
        // RoleAssignments_CreateById
        if (!req.contentType.startsWith('application/json'))
            return armError(
                415,
                'UnsupportedMediaType',
                `The content media type '${req.contentType}' is not supported.`,
                true,
            );
        if (!req.bodyIsJson || req.body === undefined || req.body === null)
            return armError(
                400,
                'InvalidRequestContent',
                'The request content was invalid and could not be deserialized.',
            );
        const errors = validate(file, '#/definitions/RoleAssignmentCreateParameters', req.body, 'request');
        // Service rules (Azure RBAC troubleshooting, learn.microsoft.com/azure/role-based-access-control/troubleshooting):
        // the name is a GUID, the principal id a GUID, the role definition a role definition resource id.
        const p = (req.body as { properties?: Record<string, unknown> }).properties ?? {};
        if (!GUID.test(name))
            errors.push({
                code: 'BadRequest',
                message: `The role assignment ID '${name}' is not valid. The role assignment ID must be a GUID.`,
            });
        if (typeof p.principalId === 'string' && !GUID.test(p.principalId))
            errors.push({
                code: 'BadRequest',
                message: `Principal ${p.principalId} is not a valid GUID (InvalidPrincipalId).`,
            });
        if (typeof p.roleDefinitionId === 'string' && !ROLE_DEFINITION.test(p.roleDefinitionId))
            errors.push({
                code: 'BadRequest',
                message: `The role definition ID '${p.roleDefinitionId}' is not valid (InvalidRoleDefinitionId).`,
            });
        if (errors.length > 0) {
            const message = errors.map((e) => e.message).join('; ');
            return {
                status: 400,
                body: { error: { code: errors[0]?.code ?? 'BadRequest', message } },
                invalid: errors.map((e) => e.message),
            };
        }
        const wanted = makeAssignment(scope, name, p as { roleDefinitionId: string; principalId: string });
        const same = (a: RoleAssignmentWire) =>
            norm(a.properties.scope) === norm(wanted.properties.scope) &&
            roleGuid(a.properties.roleDefinitionId) === roleGuid(wanted.properties.roleDefinitionId) &&
            a.properties.principalId.toLowerCase() === wanted.properties.principalId.toLowerCase();
        if (existing !== undefined) {
            // Service rule: an assignment's role and principal cannot change (RoleAssignmentUpdateNotPermitted).
            if (!same(existing))
                return armError(
                    400,
                    'RoleAssignmentUpdateNotPermitted',
                    'Tenant ID, application ID, principal ID, and scope are not allowed to be updated.',
                );
            return checked(file, '#/definitions/RoleAssignment', 200, structuredClone(existing));
        }
        // Service rule: one assignment per scope, role and principal (RoleAssignmentExists, 409).
        if ([...assignments.values()].some(same))
            return armError(409, 'RoleAssignmentExists', 'The role assignment already exists.', false);
        assignments.set(key, wanted);
        return checked(file, '#/definitions/RoleAssignment', 201, structuredClone(wanted));
    }

    function settingWire(resourceId: string, s: { name: string } & DiagnosticSettingWireProperties) {
        const { name, ...properties } = s;
        return {
            id: `${resourceId.replace(/\/+$/, '')}/providers/microsoft.insights/diagnosticSettings/${name}`,
            name,
            type: 'Microsoft.Insights/diagnosticSettings',
            properties: structuredClone(properties),
        };
    }

    function diagnosticSettingsOp(req: ArmProviderRequest, operationId: string): Answer {
        const file = DIAGNOSTIC_SETTINGS_SPEC;
        if (req.apiVersion !== DIAGNOSTIC_SETTINGS_API_VERSION)
            return monitorError(
                400,
                'InvalidApiVersionParameter',
                `The api-version '${req.apiVersion ?? ''}' is invalid. The supported versions (in this fake) are '${DIAGNOSTIC_SETTINGS_API_VERSION}'.`,
            );
        if (operationId === 'DiagnosticSettings_List') {
            const resourceId = (DS_LIST.exec(req.path) as RegExpExecArray)[1] as string;
            const value = [...(settings.get(norm(resourceId))?.values() ?? [])].map((s) => settingWire(resourceId, s));
            return checked(file, '#/definitions/DiagnosticSettingsResourceCollection', 200, { value });
        }
        const m = DS.exec(req.path) as RegExpExecArray;
        const resourceId = m[1] as string;
        const name = m[2] as string;
        const list =
            settings.get(norm(resourceId)) ?? new Map<string, { name: string } & DiagnosticSettingWireProperties>();
        const existing = list.get(name.toLowerCase());
        if (operationId === 'DiagnosticSettings_Get') {
            if (existing === undefined)
                return monitorError(404, 'ResourceNotFound', `The diagnostic setting '${name}' doesn't exist.`, false);
            return checked(file, '#/definitions/DiagnosticSettingsResource', 200, settingWire(resourceId, existing));
        }
        if (operationId === 'DiagnosticSettings_Delete') {
            if (existing === undefined) return { status: 204 };
            list.delete(name.toLowerCase());
            return { status: 200 };
        }
        // DiagnosticSettings_CreateOrUpdate
        if (!req.contentType.startsWith('application/json'))
            return monitorError(
                415,
                'UnsupportedMediaType',
                `The content media type '${req.contentType}' is not supported.`,
                true,
            );
        if (!req.bodyIsJson || req.body === undefined || req.body === null)
            return monitorError(
                400,
                'InvalidRequestContent',
                'The request content was invalid and could not be deserialized.',
            );
        const errors = validate(file, '#/definitions/DiagnosticSettingsResource', req.body, 'request');
        const p = ((req.body as { properties?: unknown }).properties ?? {}) as DiagnosticSettingWireProperties;
        // Service rules (diagnostic settings documentation): at least one destination; at most five settings.
        if (
            errors.length === 0 &&
            [
                p.eventHubAuthorizationRuleId,
                p.storageAccountId,
                p.workspaceId,
                p.marketplacePartnerId,
                p.serviceBusRuleId,
            ].every((d) => d === undefined || d === '')
        )
            errors.push({
                code: 'BadRequest',
                message: 'At least one storage account, event hub, workspace or partner solution must be specified.',
            });
        if (existing === undefined && list.size >= MAX_SETTINGS)
            errors.push({
                code: 'BadRequest',
                message: `Number of diagnostic settings exceeded the limit of ${MAX_SETTINGS}.`,
            });
        if (errors.length > 0) {
            const message = errors.map((e) => e.message).join('; ');
            return { status: 400, body: { code: 'BadRequest', message }, invalid: errors.map((e) => e.message) };
        }
        const stored = { name, ...structuredClone(p) };
        list.set(name.toLowerCase(), stored);
        settings.set(norm(resourceId), list);
        return checked(file, '#/definitions/DiagnosticSettingsResource', 200, settingWire(resourceId, stored));
    }

    const route: ArmProviderRoute = {
        operationOf({ method, path }) {
            if (RA_LIST.test(path)) return method === 'GET' ? 'RoleAssignments_ListForScope' : undefined;
            if (RA.test(path))
                return method === 'GET'
                    ? 'RoleAssignments_GetById'
                    : method === 'PUT'
                      ? 'RoleAssignments_CreateById'
                      : method === 'DELETE'
                        ? 'RoleAssignments_DeleteById'
                        : undefined;
            if (DS_LIST.test(path)) return method === 'GET' ? 'DiagnosticSettings_List' : undefined;
            if (DS.test(path))
                return method === 'GET'
                    ? 'DiagnosticSettings_Get'
                    : method === 'PUT'
                      ? 'DiagnosticSettings_CreateOrUpdate'
                      : method === 'DELETE'
                        ? 'DiagnosticSettings_Delete'
                        : undefined;
            return undefined;
        },
        actionOf(operationId) {
            if (operationId.startsWith('RoleAssignments_'))
                return operationId.endsWith('DeleteById')
                    ? 'Microsoft.Authorization/roleAssignments/delete'
                    : operationId.endsWith('CreateById')
                      ? 'Microsoft.Authorization/roleAssignments/write'
                      : 'Microsoft.Authorization/roleAssignments/read';
            return operationId.endsWith('Delete')
                ? 'Microsoft.Insights/diagnosticSettings/delete'
                : operationId.endsWith('CreateOrUpdate')
                  ? 'Microsoft.Insights/diagnosticSettings/write'
                  : 'Microsoft.Insights/diagnosticSettings/read';
        },
        handle(req, operationId) {
            return operationId.startsWith('RoleAssignments_')
                ? roleAssignmentsOp(req, operationId)
                : diagnosticSettingsOp(req, operationId);
        },
    };

    return {
        route,
        putRoleAssignment(a) {
            const name = a.name ?? randomUUID();
            const sub = /^\/subscriptions\/([^/]+)/i.exec(a.scope)?.[1];
            const roleDefinitionId = `${sub === undefined ? '' : `/subscriptions/${sub}`}/providers/Microsoft.Authorization/roleDefinitions/${a.roleDefinitionGuid}`;
            const wire = makeAssignment(a.scope, name, {
                roleDefinitionId,
                principalId: a.principalId,
                ...(a.principalType === undefined ? {} : { principalType: a.principalType }),
            });
            assignments.set(norm(wire.id), wire);
            return wire.id;
        },
        roleAssignment: (id) => {
            const a = assignments.get(norm(id));
            return a === undefined ? undefined : structuredClone(a);
        },
        roleAssignments: () => [...assignments.values()].map((a) => structuredClone(a)),
        deleteRoleAssignment: (id) => assignments.delete(norm(id)),
        setDiagnosticSettings(resourceId, list) {
            settings.set(norm(resourceId), new Map(list.map((s) => [s.name.toLowerCase(), structuredClone(s)])));
        },
        diagnosticSettings: (resourceId) =>
            [...(settings.get(norm(resourceId))?.values() ?? [])].map((s) => structuredClone(s)),
    };
}

function roleGuid(roleDefinitionId: string): string {
    return roleDefinitionId.toLowerCase().split('/').pop() ?? '';
}
