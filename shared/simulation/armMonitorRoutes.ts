// ARM routes beyond Key Vault, mounted in the ARM simulator through its `extraRoutes` option: what `kvr doctor` reads.
//
// - `GET {scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01` (Authorization REST API,
//   "Permissions - List For Resource / Resource Group"): `{ value: Permission[] }`, one entry per role the caller
//   holds at the scope or above it (inherited from the resource group and subscription).
// - `GET {resourceId}/providers/Microsoft.Insights/diagnosticSettings?api-version=2021-05-01-preview` (Monitor REST
//   API, "Diagnostic Settings - List"): `{ value: DiagnosticSettingsResource[] }`.
// - `GET .../providers/Microsoft.EventHub/namespaces/{ns}/eventhubs/{hub}[/consumergroups/{cg}]?api-version=2024-01-01`
//   (Event Hubs REST API, "Event Hubs - Get", "Consumer Groups - Get"): the resource, or 404.
// The fake does not tell callers apart: every caller holds the permissions granted here.
import type { ArmExtraRoute } from './armSimulator';

export interface PermissionWire {
    actions: string[];
    notActions: string[];
    dataActions: string[];
    notDataActions: string[];
}

export interface DiagnosticSettingInput {
    name: string;
    eventHubAuthorizationRuleId?: string;
    eventHubName?: string;
    logs?: { category?: string; categoryGroup?: string; enabled: boolean }[];
}

export interface ArmMonitorRoutes {
    readonly route: ArmExtraRoute;
    /** Grants the caller a role's permissions at a scope (a resource, resource group or subscription id). */
    grant(scope: string, permission: Partial<PermissionWire>): void;
    /** Drops every grant at a scope. */
    revokeAll(scope: string): void;
    /** Replaces a resource's diagnostic settings. */
    setDiagnosticSettings(resourceId: string, settings: readonly DiagnosticSettingInput[]): void;
    /** Creates an Event Hubs namespace, hub or consumer group (by resource id) with the given properties. */
    putResource(resourceId: string, properties?: Record<string, unknown>): void;
    deleteResource(resourceId: string): void;
}

export const PERMISSIONS_API_VERSION = '2022-04-01';
export const DIAGNOSTIC_SETTINGS_API_VERSION = '2021-05-01-preview';
export const EVENTHUB_API_VERSION = '2024-01-01';

const norm = (id: string) => id.toLowerCase().replace(/\/+$/, '');

function badVersion(apiVersion: string | undefined, wanted: string): { status: number; body: unknown } | undefined {
    if (apiVersion === wanted) return undefined;
    return {
        status: 400,
        body: {
            error: {
                code: 'InvalidApiVersionParameter',
                message: `The api-version '${apiVersion ?? ''}' is invalid. The supported versions (in this fake) are '${wanted}'.`,
            },
        },
    };
}

const EVENTHUB_TYPES: Record<string, string> = {
    namespaces: 'Microsoft.EventHub/namespaces',
    eventhubs: 'Microsoft.EventHub/namespaces/eventhubs',
    consumergroups: 'Microsoft.EventHub/namespaces/eventhubs/consumergroups',
};

/**
 * @param options.diagnosticSettings - false when armAccessRoutes.ts serves diagnostic settings (reads and writes,
 *   with faults) in the same fake.
 */
export function armMonitorRoutes(options: { diagnosticSettings?: boolean } = {}): ArmMonitorRoutes {
    const grants = new Map<string, PermissionWire[]>();
    const diagnostics = new Map<string, DiagnosticSettingInput[]>();
    const resources = new Map<string, { id: string; properties: Record<string, unknown> }>();

    const route: ArmExtraRoute = ({ method, path, apiVersion }) => {
        if (method !== 'GET') return undefined;
        const perms = /^(.*)\/providers\/Microsoft\.Authorization\/permissions$/i.exec(path);
        if (perms !== null) {
            const bad = badVersion(apiVersion, PERMISSIONS_API_VERSION);
            if (bad !== undefined) return bad;
            const scope = norm(perms[1] as string);
            const value = [...grants.entries()]
                .filter(([s]) => scope === s || scope.startsWith(`${s}/`))
                .flatMap(([, list]) => list.map((p) => structuredClone(p)));
            return { status: 200, body: { value } };
        }
        const diag = /^(.*)\/providers\/Microsoft\.Insights\/diagnosticSettings$/i.exec(path);
        if (diag !== null && options.diagnosticSettings !== false) {
            const bad = badVersion(apiVersion, DIAGNOSTIC_SETTINGS_API_VERSION);
            if (bad !== undefined) return bad;
            const resourceId = diag[1] as string;
            const value = (diagnostics.get(norm(resourceId)) ?? []).map((s) => ({
                id: `${resourceId}/providers/microsoft.insights/diagnosticSettings/${s.name}`,
                name: s.name,
                type: 'Microsoft.Insights/diagnosticSettings',
                properties: {
                    ...(s.eventHubAuthorizationRuleId === undefined
                        ? {}
                        : { eventHubAuthorizationRuleId: s.eventHubAuthorizationRuleId }),
                    ...(s.eventHubName === undefined ? {} : { eventHubName: s.eventHubName }),
                    logs: (s.logs ?? []).map((l) => ({
                        ...(l.category === undefined ? {} : { category: l.category }),
                        ...(l.categoryGroup === undefined ? {} : { categoryGroup: l.categoryGroup }),
                        enabled: l.enabled,
                        retentionPolicy: { enabled: false, days: 0 },
                    })),
                    metrics: [],
                },
            }));
            return { status: 200, body: { value } };
        }
        const hub =
            /\/providers\/Microsoft\.EventHub\/namespaces\/[^/]+(?:\/eventhubs\/[^/]+(?:\/consumergroups\/[^/]+)?)?$/i;
        if (hub.test(path)) {
            const bad = badVersion(apiVersion, EVENTHUB_API_VERSION);
            if (bad !== undefined) return bad;
            const r = resources.get(norm(path));
            if (r === undefined) {
                const parts = path.split('/');
                return {
                    status: 404,
                    body: {
                        error: {
                            code: 'NotFound',
                            message: `The messaging entity '${parts.slice(-3).join('/')}' could not be found.`,
                        },
                    },
                };
            }
            const segments = r.id.split('/');
            const name = segments[segments.length - 1] as string;
            const kind = (segments[segments.length - 2] as string).toLowerCase();
            return {
                status: 200,
                body: { id: r.id, name, type: EVENTHUB_TYPES[kind] ?? 'Microsoft.EventHub', properties: r.properties },
            };
        }
        return undefined;
    };

    return {
        route,
        grant(scope, p) {
            const list = grants.get(norm(scope)) ?? [];
            list.push({
                actions: p.actions ?? [],
                notActions: p.notActions ?? [],
                dataActions: p.dataActions ?? [],
                notDataActions: p.notDataActions ?? [],
            });
            grants.set(norm(scope), list);
        },
        revokeAll(scope) {
            grants.delete(norm(scope));
        },
        setDiagnosticSettings(resourceId, settings) {
            diagnostics.set(norm(resourceId), structuredClone([...settings]));
        },
        putResource(resourceId, properties = {}) {
            resources.set(norm(resourceId), {
                id: resourceId.replace(/\/+$/, ''),
                properties: structuredClone(properties),
            });
        },
        deleteResource(resourceId) {
            resources.delete(norm(resourceId));
        },
    };
}
