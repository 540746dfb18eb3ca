// AccessAdmin over Azure Resource Manager: role assignments through the real @azure/arm-authorization client
// (api-version 2022-04-01, `RoleAssignments_GetById`, `_DeleteById`), diagnostic settings as plain ARM REST calls
// (Monitor `DiagnosticSettings_List`, `_CreateOrUpdate`, api-version 2021-05-01-preview). Nothing here creates a role
// assignment or deletes a diagnostic setting: the responder's role holds neither right (least privilege; undo of those
// is manual, docs/remediation.md).
//
// Why REST for diagnostic settings: the app reads them that way already (`kvr doctor`, doctorProbes.ts), two calls
// on one resource type do not justify @azure/arm-monitor and its dependency tree in the Functions bundle, and
// 2021-05-01-preview is the version the templates deploy (vaultDiagnostics.bicep), so what we write is what they write.
import type { AuthorizationManagementClient, RoleAssignment } from '@azure/arm-authorization';
import type { TokenCredential } from '@azure/identity';
import { Agent, fetch } from 'undici';
import type { AccessAdmin } from '../core/ports';
import type {
    DiagnosticSettingProperties,
    DiagnosticSettingSnapshot,
    RoleAssignmentSnapshot,
} from '../core/remediation/types';
import { ARM_CALL_LIMIT_MS } from './armVaultAdmin';

export const ARM_ENDPOINT = 'https://management.azure.com';
const ARM_SCOPE = 'https://management.azure.com/.default';
/** Monitor REST API, Diagnostic Settings (the version the templates use). */
export const DIAGNOSTIC_SETTINGS_API_VERSION = '2021-05-01-preview';

/** An ARM answer other than 2xx, or a connection failure: `statusCode` / `code` as the SDK's RestError has them. */
export class ArmCallError extends Error {
    constructor(
        message: string,
        readonly statusCode: number | undefined,
        readonly code: string | undefined,
        readonly response?: { headers: { get(name: string): string | undefined } },
    ) {
        super(message);
        this.name = 'ArmCallError';
    }
}

function snapshotOfAssignment(a: RoleAssignment): RoleAssignmentSnapshot {
    return {
        id: a.id ?? '',
        scope: a.scope ?? '',
        roleDefinitionId: a.roleDefinitionId ?? '',
        principalId: a.principalId ?? '',
        ...(a.principalType === undefined ? {} : { principalType: a.principalType }),
        ...(a.description === undefined || a.description === null ? {} : { description: a.description }),
        ...(a.condition === undefined || a.condition === null ? {} : { condition: a.condition }),
        ...(a.conditionVersion === undefined || a.conditionVersion === null
            ? {}
            : { conditionVersion: a.conditionVersion }),
    };
}

export interface ArmAccessAdminOptions {
    /** ARM endpoint (default https://management.azure.com). */
    readonly endpoint?: string;
    /** Extra CA (PEM) trusted by the REST calls only: a local HTTPS fake. */
    readonly ca?: string;
    /** Per-call time limit (default 30 s); a call that takes longer is aborted (and retried by the caller). */
    readonly timeoutMs?: number;
}

/**
 * `AccessAdmin` over ARM. The authorization client's own retries should be off (`retryOptions.maxRetries: 0`): the
 * remediator and the undoer retry 429, 5xx and resets themselves, within their time budget.
 */
export class ArmAccessAdmin implements AccessAdmin {
    private readonly endpoint: string;
    private readonly dispatcher: Agent | undefined;
    private readonly timeoutMs: number;

    /**
     * @param authorization - The role-assignment client. Its subscription id does not matter: every call here is by
     *   id (`/{roleAssignmentId}`), whatever scope the assignment is at.
     */
    constructor(
        private readonly authorization: AuthorizationManagementClient,
        private readonly credential: TokenCredential,
        options: ArmAccessAdminOptions = {},
    ) {
        this.endpoint = (options.endpoint ?? ARM_ENDPOINT).replace(/\/+$/, '');
        this.dispatcher = options.ca === undefined ? undefined : new Agent({ connect: { ca: options.ca } });
        this.timeoutMs = options.timeoutMs ?? ARM_CALL_LIMIT_MS;
    }

    private signal(): AbortSignal {
        return AbortSignal.timeout(this.timeoutMs);
    }

    async getRoleAssignment(id: string): Promise<RoleAssignmentSnapshot | undefined> {
        try {
            return snapshotOfAssignment(
                await this.authorization.roleAssignments.getById(id, { abortSignal: this.signal() }),
            );
        } catch (err) {
            if ((err as { statusCode?: unknown }).statusCode === 404) return undefined;
            throw err;
        }
    }

    async deleteRoleAssignment(id: string): Promise<void> {
        await this.authorization.roleAssignments.deleteById(id, { abortSignal: this.signal() });
    }

    async listDiagnosticSettings(resourceId: string): Promise<DiagnosticSettingSnapshot[]> {
        const body = await this.rest('GET', `${resourceId}/providers/Microsoft.Insights/diagnosticSettings`);
        const value = Array.isArray(body.value) ? (body.value as Record<string, unknown>[]) : [];
        return value.map((s) => ({
            name: typeof s.name === 'string' ? s.name : '',
            properties: typeof s.properties === 'object' && s.properties !== null ? s.properties : {},
        }));
    }

    async putDiagnosticSetting(resourceId: string, name: string, properties: DiagnosticSettingProperties) {
        await this.rest(
            'PUT',
            `${resourceId}/providers/Microsoft.Insights/diagnosticSettings/${encodeURIComponent(name)}`,
            { properties },
        );
    }

    async close(): Promise<void> {
        await this.dispatcher?.close();
    }

    private async rest(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
        const signal = this.signal();
        const token = await this.credential.getToken(ARM_SCOPE, { abortSignal: signal });
        if (token === null) throw new ArmCallError('no ARM access token for the app identity', 401, 'NoToken');
        const url = `${this.endpoint}${path.startsWith('/') ? '' : '/'}${path}?api-version=${DIAGNOSTIC_SETTINGS_API_VERSION}`;
        let response: Awaited<ReturnType<typeof fetch>>;
        let text: string;
        try {
            response = await fetch(url, {
                method,
                headers: {
                    authorization: `Bearer ${token.token}`,
                    accept: 'application/json',
                    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
                },
                ...(body === undefined ? {} : { body: JSON.stringify(body) }),
                signal,
                ...(this.dispatcher === undefined ? {} : { dispatcher: this.dispatcher }),
            });
            text = await response.text();
        } catch (err) {
            // Our time limit (TimeoutError/AbortError) stays as it is; undici reports a reset as `fetch failed` with
            // the system error as its cause: surface that code, as the SDK clients do.
            const e = err as { name?: string; code?: string; cause?: { code?: string; message?: string } };
            if (e.name === 'TimeoutError' || e.name === 'AbortError') throw err;
            // undici names a dropped socket UND_ERR_SOCKET: any failure to get an answer is a send error (transient).
            const raw = e.cause?.code ?? e.code;
            const code = raw !== undefined && /^E[A-Z]+$/.test(raw) ? raw : 'REQUEST_SEND_ERROR';
            throw new ArmCallError(
                `${method} ${path}: ${raw === undefined ? '' : `${raw} `}${e.cause?.message ?? String(err)}`,
                undefined,
                code,
            );
        }
        let parsed: unknown;
        try {
            parsed = text === '' ? {} : JSON.parse(text);
        } catch {
            parsed = {};
        }
        if (!response.ok) {
            // ARM's error body is { error: { code, message } }; the Monitor spec documents { code, message }.
            const o = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as {
                error?: { code?: string; message?: string };
                code?: string;
                message?: string;
            };
            const code = o.error?.code ?? o.code;
            const message = o.error?.message ?? o.message ?? `ARM answered ${response.status}`;
            const headers = response.headers;
            throw new ArmCallError(`${method} ${path}: ${message}`, response.status, code, {
                headers: { get: (n: string) => headers.get(n) ?? undefined },
            });
        }
        return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    }
}
