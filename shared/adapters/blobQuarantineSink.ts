import { randomUUID } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { ResponderError } from '../core/errors';
import type { QuarantineItem, QuarantineSink } from '../core/ports';

function bodyOf(raw: unknown): string | Buffer {
    if (typeof raw === 'string') return raw;
    if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    try {
        return JSON.stringify(raw) ?? String(raw);
    } catch {
        return String(raw);
    }
}

/** Metadata values travel as HTTP headers: ASCII only, bounded. */
function header(value: string): string {
    return encodeURIComponent(value.slice(0, 512));
}

/**
 * Keeps each quarantined item, whole, as one blob `yyyy/mm/dd/hh/<uuid>.json` with its reason and source as
 * metadata. A write failure throws a retryable error: the trigger's retry policy re-runs the batch rather than lose
 * the item.
 */
export class BlobQuarantineSink implements QuarantineSink {
    private created: Promise<unknown> | undefined;

    constructor(
        private readonly container: ContainerClient,
        private readonly now: () => Date = () => new Date(),
    ) {}

    async put(items: readonly QuarantineItem[]): Promise<void> {
        try {
            this.created ??= this.container.createIfNotExists().catch((err: unknown) => {
                this.created = undefined;
                throw err;
            });
            await this.created;
            const prefix = this.now().toISOString().slice(0, 13).replace(/[-T]/g, '/');
            await Promise.all(
                items.map((item) => {
                    const body = bodyOf(item.raw);
                    const blob = this.container.getBlockBlobClient(`${prefix}/${randomUUID()}.json`);
                    return blob.upload(body, Buffer.byteLength(body), {
                        blobHTTPHeaders: { blobContentType: 'application/json' },
                        metadata: { reason: header(item.reason), source: header(item.source ?? '') },
                    });
                }),
            );
        } catch (err) {
            throw new ResponderError(
                'SINK.WRITE_FAILED',
                `cannot write ${items.length} quarantined item(s) to container ${this.container.containerName}: ${(err as Error).message}`,
                true,
                { cause: err },
            );
        }
    }
}
