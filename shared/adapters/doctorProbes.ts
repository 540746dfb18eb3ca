// The probes of `kvr doctor`: ARM reads (the vault through @azure/arm-keyvault; permissions, diagnostic settings and
// Event Hubs resources as plain ARM REST GETs), the vault data plane through the real KeyClient, and write-read-delete
// round trips on the app's Table, Blob container and Queue.
import { randomUUID } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import type { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import { KeyClient, type KeyClientOptions } from '@azure/keyvault-keys';
import { Agent, fetch } from 'undici';
import type { DoctorProbes, ProbeError, StorageProbe } from '../core/doctor/ports';
import type { DiagnosticSettingWire, RbacPermission } from '../core/doctor/report';
import type { VaultRef } from '../core/events/types';
import type { VaultAdmin } from '../core/ports';

export const ARM_ENDPOINT = 'https://management.azure.com';
export const ARM_SCOPE = 'https://management.azure.com/.default';
/** Authorization REST API: Permissions - List For Resource. */
export const PERMISSIONS_API_VERSION = '2022-04-01';
/** Monitor REST API: Diagnostic Settings - List. */
export const DIAGNOSTIC_SETTINGS_API_VERSION = '2021-05-01-preview';

export class ArmRestError extends Error implements ProbeError {
    constructor(
        message: string,
        readonly statusCode: number | undefined,
        readonly code: string | undefined,
    ) {
        super(message);
        this.name = 'ArmRestError';
    }
}

export interface ArmRestOptions {
    /** ARM endpoint (default https://management.azure.com). */
    readonly endpoint?: string;
    /** Extra CA (PEM) trusted by this client only: a local HTTPS fake. */
    readonly ca?: string;
}

/** Plain ARM GETs with a bearer token from the app's credential (no retries: the doctor reports what it sees). */
export class ArmRest {
    private readonly endpoint: string;
    private readonly dispatcher: Agent | undefined;

    constructor(
        private readonly credential: TokenCredential,
        options: ArmRestOptions = {},
    ) {
        this.endpoint = (options.endpoint ?? ARM_ENDPOINT).replace(/\/+$/, '');
        this.dispatcher = options.ca === undefined ? undefined : new Agent({ connect: { ca: options.ca } });
    }

    async get(path: string, apiVersion: string, signal: AbortSignal): Promise<Record<string, unknown>> {
        const token = await this.credential.getToken(ARM_SCOPE, { abortSignal: signal });
        if (token === null) throw new ArmRestError('no ARM access token for the app identity', undefined, undefined);
        const url = `${this.endpoint}${path.startsWith('/') ? '' : '/'}${path}?api-version=${encodeURIComponent(apiVersion)}`;
        const response = await fetch(url, {
            headers: { authorization: `Bearer ${token.token}`, accept: 'application/json' },
            signal,
            ...(this.dispatcher === undefined ? {} : { dispatcher: this.dispatcher }),
        });
        const text = await response.text();
        let body: unknown;
        try {
            body = text === '' ? {} : JSON.parse(text);
        } catch {
            body = {};
        }
        if (!response.ok) {
            // ARM error body (common types): { error: { code, message } }.
            const e = (body as { error?: { code?: string; message?: string } }).error;
            throw new ArmRestError(`${e?.message ?? `ARM answered ${response.status}`}`, response.status, e?.code);
        }
        return typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    }

    async close(): Promise<void> {
        await this.dispatcher?.close();
    }
}

/** A Key Vault data-plane failure with the service's own error text (`code: message [inner code]`). */
export class KeyVaultProbeError extends Error implements ProbeError {
    constructor(
        readonly statusCode: number,
        readonly code: string | undefined,
        message: string,
    ) {
        super(message);
        this.name = 'KeyVaultProbeError';
    }
}

/** `error.message` and the inner error code of a Key Vault error body (`innererror`, any case). */
function serviceError(body: string): string | undefined {
    try {
        const e = (JSON.parse(body) as { error?: Record<string, unknown> }).error;
        if (e === undefined) return undefined;
        const innerKey = Object.keys(e).find((k) => k.toLowerCase() === 'innererror');
        const inner = innerKey === undefined ? undefined : (e[innerKey] as { code?: unknown } | undefined)?.code;
        return `${typeof e.message === 'string' ? e.message : ''}${typeof inner === 'string' ? ` (${inner})` : ''}`;
    } catch {
        return undefined;
    }
}

function valueList<T>(body: Record<string, unknown>): T[] {
    return Array.isArray(body.value) ? (body.value as T[]) : [];
}

export interface ArmDoctorProbeOptions {
    readonly admin: Pick<VaultAdmin, 'get'>;
    readonly arm: ArmRest;
    /** Builds the data-plane client of a vault (tests pass the fake's TLS options). */
    readonly keyClient: (vaultUrl: string) => KeyClient;
}

/** The ARM and Key Vault probes of the doctor. */
export function doctorProbes(o: ArmDoctorProbeOptions): DoctorProbes {
    return {
        readVault: (vault: VaultRef) => o.admin.get(vault),
        async permissionsAt(scope, signal) {
            return valueList<RbacPermission>(
                await o.arm.get(
                    `${scope}/providers/Microsoft.Authorization/permissions`,
                    PERMISSIONS_API_VERSION,
                    signal,
                ),
            );
        },
        async diagnosticSettings(resourceId, signal) {
            return valueList<DiagnosticSettingWire>(
                await o.arm.get(
                    `${resourceId}/providers/Microsoft.Insights/diagnosticSettings`,
                    DIAGNOSTIC_SETTINGS_API_VERSION,
                    signal,
                ),
            );
        },
        armGet: (resourceId, apiVersion, signal) => o.arm.get(resourceId, apiVersion, signal),
        async listKeys(vaultUrl, signal) {
            // The pager's error says only "Pagination failed with unexpected statusCode 403": the service's error
            // body (which tells the firewall from a missing permission) is read from the raw response instead.
            let body: string | undefined;
            const pages = o
                .keyClient(vaultUrl)
                .listPropertiesOfKeys({
                    abortSignal: signal,
                    onResponse: (raw) => {
                        body = raw.bodyAsText ?? undefined;
                    },
                })
                .byPage({ maxPageSize: 5 });
            try {
                const first = await pages.next();
                return first.done === true ? 0 : first.value.length;
            } catch (err) {
                const e = err as { statusCode?: number; code?: string; message?: string };
                if (typeof e.statusCode !== 'number' || body === undefined) throw err;
                throw new KeyVaultProbeError(e.statusCode, e.code, serviceError(body) ?? e.message ?? '');
            }
        },
    };
}

/** The KeyClient of a vault with the app's credential. */
export function keyClientFactory(credential: TokenCredential, options: KeyClientOptions = {}) {
    return (vaultUrl: string): KeyClient => new KeyClient(vaultUrl, credential, options);
}

const PROBE_PARTITION = 'kvr-doctor';

/** Inserts, reads back and deletes one entity in the state table (partition `kvr-doctor`). */
export function tableProbe(client: TableClient, target: string): StorageProbe {
    return {
        target,
        async roundTrip(signal) {
            const rowKey = randomUUID();
            await client.createEntity(
                { partitionKey: PROBE_PARTITION, rowKey, probe: 'kvr doctor' },
                { abortSignal: signal },
            );
            try {
                await client.getEntity(PROBE_PARTITION, rowKey, { abortSignal: signal });
            } finally {
                await client.deleteEntity(PROBE_PARTITION, rowKey, { abortSignal: signal });
            }
            return `wrote, read and deleted a probe entity in table ${client.tableName}`;
        },
    };
}

/** Uploads, reads back and deletes one blob `kvr-doctor/<uuid>.txt` in the quarantine container. */
export function blobProbe(container: ContainerClient, target: string): StorageProbe {
    return {
        target,
        async roundTrip(signal) {
            const blob = container.getBlockBlobClient(`${PROBE_PARTITION}/${randomUUID()}.txt`);
            const body = 'kvr doctor probe';
            await blob.upload(body, Buffer.byteLength(body), { abortSignal: signal });
            try {
                await blob.getProperties({ abortSignal: signal });
            } finally {
                await blob.delete({ abortSignal: signal });
            }
            return `wrote, read and deleted a probe blob in container ${container.containerName}`;
        },
    };
}

/** The scope of an Entra ID token for Azure Storage. */
export const STORAGE_SCOPE = 'https://storage.azure.com/.default';
/** Queue service REST version sent (bearer tokens need 2017-11-09 or later). */
const QUEUE_SERVICE_VERSION = '2023-11-03';

export class StorageRestError extends Error implements ProbeError {
    constructor(
        message: string,
        readonly statusCode: number,
        readonly code: string | undefined,
    ) {
        super(message);
        this.name = 'StorageRestError';
    }
}

function xmlValue(xml: string, tag: string): string | undefined {
    const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
    return m?.[1]
        ?.replace(/&amp;/g, '&')
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"');
}

/**
 * Puts one message on a queue (Queue service REST "Put Message", hidden for a minute so that no consumer takes it)
 * and deletes it again with its pop receipt ("Delete Message"), with an Entra ID token of the app's credential.
 */
export function queueProbe(queueUrl: string, credential: TokenCredential, options: { ca?: string } = {}): StorageProbe {
    const base = queueUrl.replace(/\/+$/, '');
    const dispatcher = options.ca === undefined ? undefined : new Agent({ connect: { ca: options.ca } });
    const call = async (method: string, url: string, signal: AbortSignal, body?: string) => {
        const token = await credential.getToken(STORAGE_SCOPE, { abortSignal: signal });
        if (token === null) throw new StorageRestError('no Storage access token for the app identity', 401, undefined);
        const response = await fetch(url, {
            method,
            headers: {
                authorization: `Bearer ${token.token}`,
                'x-ms-version': QUEUE_SERVICE_VERSION,
                'x-ms-date': new Date().toUTCString(),
                ...(body === undefined ? {} : { 'content-type': 'application/xml; charset=utf-8' }),
            },
            ...(body === undefined ? {} : { body }),
            signal,
            ...(dispatcher === undefined ? {} : { dispatcher }),
        });
        const text = await response.text();
        if (!response.ok)
            throw new StorageRestError(
                `${method} ${base}: ${xmlValue(text, 'Message')?.split('\n')[0] ?? `answered ${response.status}`}`,
                response.status,
                response.headers.get('x-ms-error-code') ?? xmlValue(text, 'Code'),
            );
        return text;
    };
    return {
        target: base,
        async roundTrip(signal) {
            const text = Buffer.from('kvr doctor probe', 'utf8').toString('base64');
            const put = await call(
                'POST',
                `${base}/messages?visibilitytimeout=60&messagettl=120`,
                signal,
                `<?xml version="1.0" encoding="utf-8"?><QueueMessage><MessageText>${text}</MessageText></QueueMessage>`,
            );
            const id = xmlValue(put, 'MessageId');
            const receipt = xmlValue(put, 'PopReceipt');
            if (id === undefined || receipt === undefined)
                throw new StorageRestError('Put Message answered without MessageId and PopReceipt', 502, undefined);
            await call(
                'DELETE',
                `${base}/messages/${encodeURIComponent(id)}?popreceipt=${encodeURIComponent(receipt)}`,
                signal,
            );
            return `put and deleted a probe message (hidden meanwhile) on ${base.split('/').pop() ?? base}`;
        },
        ...(dispatcher === undefined ? {} : { close: () => dispatcher.close() }),
    };
}
