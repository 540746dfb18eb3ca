import type { TokenCredential } from '@azure/identity';
import { QueueClient } from '@azure/storage-queue';
import type { ReconcileMessage, ReconcileQueue } from '../core/ports';

/** Where the reconcile queue lives: a queue service URL (managed identity) or a connection string (Azurite). */
export type QueueLocation =
    | { readonly kind: 'url'; readonly url: string; readonly queue: string }
    | { readonly kind: 'connection-string'; readonly connectionString: string; readonly queue: string };

/** The queue the `reconcileVault` trigger listens on; `<name>-poison` receives what failed five times. */
export const RECONCILE_QUEUE = 'kvr-reconcile';
export const RECONCILE_POISON_QUEUE = `${RECONCILE_QUEUE}-poison`;
/** Azure Storage Queues hide a message at most 7 days. */
const MAX_VISIBILITY_S = 7 * 24 * 3600;

/**
 * The message text as the Functions queue trigger reads it: the host decodes base64 by default
 * (host.json `extensions.queues.messageEncoding`, default `base64`; Functions docs, "Azure Queue storage trigger and
 * bindings", host.json settings), so we send base64 of the UTF-8 JSON.
 */
export function encodeReconcileMessage(m: ReconcileMessage): string {
    return Buffer.from(JSON.stringify({ vaultId: m.vaultId, version: m.version }), 'utf8').toString('base64');
}

/**
 * Reads a message as the trigger hands it over (already decoded, and parsed when it is JSON), or as raw base64 text.
 * Returns undefined when it is not a reconcile message.
 */
export function decodeReconcileMessage(raw: unknown): ReconcileMessage | undefined {
    let value = raw;
    if (typeof value === 'string') {
        const text = value.trim();
        try {
            value = JSON.parse(text.startsWith('{') ? text : Buffer.from(text, 'base64').toString('utf8'));
        } catch {
            return undefined;
        }
    }
    if (value === null || typeof value !== 'object') return undefined;
    const { vaultId, version } = value as { vaultId?: unknown; version?: unknown };
    if (typeof vaultId !== 'string' || vaultId === '' || vaultId.length > 400) return undefined;
    return { vaultId, version: typeof version === 'number' && Number.isFinite(version) ? version : 0 };
}

/** The reconcile queue on Azure Storage Queues. */
export class StorageReconcileQueue implements ReconcileQueue {
    private created: Promise<unknown> | undefined;

    constructor(
        private readonly client: QueueClient,
        /** Create the queue on first use (Azurite); in Azure the templates create it and the identity may not. */
        private readonly createIfMissing = false,
    ) {}

    async send(message: ReconcileMessage, options?: { readonly visibilityDelayMs?: number }): Promise<void> {
        if (this.createIfMissing) {
            this.created ??= this.client.createIfNotExists().catch((err: unknown) => {
                this.created = undefined;
                throw err;
            });
            await this.created;
        }
        const delayS = Math.min(MAX_VISIBILITY_S, Math.ceil(Math.max(0, options?.visibilityDelayMs ?? 0) / 1000));
        await this.client.sendMessage(encodeReconcileMessage(message), {
            ...(delayS > 0 ? { visibilityTimeout: delayS } : {}),
        });
    }
}

export function storageReconcileQueueAt(
    location: QueueLocation,
    credential: () => TokenCredential,
): StorageReconcileQueue {
    if (location.kind === 'connection-string')
        return new StorageReconcileQueue(new QueueClient(location.connectionString, location.queue), true);
    return new StorageReconcileQueue(
        new QueueClient(`${location.url.replace(/\/+$/, '')}/${location.queue}`, credential()),
    );
}
