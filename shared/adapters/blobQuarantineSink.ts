import { createHash } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { ResponderError } from '../core/errors';
import type { QuarantineItem, QuarantineSink } from '../core/ports';

/** Bytes of JSON Lines per blob before the batch's rejects continue in another blob. */
export const DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024;
/** Blob uploads in flight at once for one batch (only a batch over the size cap has more than one blob). */
const UPLOAD_CONCURRENCY = 4;

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** One quarantine line: the item whole, as text when it is text, else base64, else the parsed value. */
function lineOf(item: QuarantineItem): string {
    const head = { reason: item.reason, source: item.source ?? null, excerpt: item.excerpt };
    const raw = item.raw;
    if (typeof raw === 'string') return JSON.stringify({ ...head, raw });
    if (raw instanceof Uint8Array) {
        try {
            return JSON.stringify({ ...head, raw: UTF8.decode(raw) });
        } catch {
            return JSON.stringify({ ...head, raw: Buffer.from(raw).toString('base64'), rawEncoding: 'base64' });
        }
    }
    try {
        // `undefined` (or a function) has no JSON form: say so rather than drop the field.
        const text = JSON.stringify({ ...head, raw });
        if (text !== undefined && raw !== undefined) return text;
    } catch {
        // A value JSON cannot hold (a BigInt, a cycle): keep its string form.
    }
    return JSON.stringify({ ...head, raw: String(raw), rawEncoding: 'string' });
}

/** Metadata values travel as HTTP headers: ASCII only, bounded. */
function header(value: string): string {
    return encodeURIComponent(value.slice(0, 256)).slice(0, 1024);
}

/**
 * Keeps the rejected items of one batch, whole, as JSON Lines (`reason`, `source`, `excerpt`, `raw` per line) in
 * one blob `yyyy/mm/dd/hh/<sha256 of the lines>.jsonl`, or, past {@link DEFAULT_MAX_BLOB_BYTES}, in a few blobs
 * `<sha256>.<n>-of-<total>.jsonl` uploaded at most four at a time. However many records a body rejects, a batch
 * costs a bounded number of requests and file handles.
 *
 * The name comes from the content: a redelivered batch (the same rejected items) within the same hour overwrites
 * its blob instead of adding a copy, and a copy written in a later hour has the same name. A write failure throws a
 * retryable error: the trigger's retry policy re-runs the batch rather than lose the items.
 */
export class BlobQuarantineSink implements QuarantineSink {
    private created: Promise<unknown> | undefined;

    constructor(
        private readonly container: ContainerClient,
        private readonly now: () => Date = () => new Date(),
        private readonly maxBlobBytes = DEFAULT_MAX_BLOB_BYTES,
    ) {}

    async put(items: readonly QuarantineItem[]): Promise<void> {
        if (items.length === 0) return;
        try {
            this.created ??= this.container.createIfNotExists().catch((err: unknown) => {
                this.created = undefined;
                throw err;
            });
            await this.created;
            const parts = this.partsOf(items);
            const prefix = this.now().toISOString().slice(0, 13).replace(/[-T]/g, '/');
            const digest = createHash('sha256');
            for (const p of parts) for (const chunk of p.chunks) digest.update(chunk);
            const name = digest.digest('hex');
            let next = 0;
            const upload = async (): Promise<void> => {
                while (next < parts.length) {
                    const i = next++;
                    const part = parts[i] as Part;
                    const body = Buffer.concat(part.chunks);
                    const blobName = parts.length === 1 ? `${name}.jsonl` : `${name}.${i + 1}-of-${parts.length}.jsonl`;
                    await this.container.getBlockBlobClient(`${prefix}/${blobName}`).upload(body, body.length, {
                        blobHTTPHeaders: { blobContentType: 'application/x-ndjson' },
                        metadata: {
                            items: String(part.items),
                            reasons: header([...part.reasons].join('; ')),
                            source: header(part.firstSource ?? ''),
                        },
                    });
                }
            };
            await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, parts.length) }, upload));
        } catch (err) {
            throw new ResponderError(
                'SINK.WRITE_FAILED',
                `cannot write ${items.length} quarantined item(s) to container ${this.container.containerName}: ${(err as Error).message}`,
                true,
                { cause: err },
            );
        }
    }

    /** The items as JSON Lines, cut into parts of at most `maxBlobBytes` (an item larger than that is a part alone). */
    private partsOf(items: readonly QuarantineItem[]): Part[] {
        const parts: Part[] = [];
        let current: Part | undefined;
        for (const item of items) {
            const line = Buffer.from(`${lineOf(item)}\n`, 'utf8');
            if (current === undefined || (current.bytes > 0 && current.bytes + line.length > this.maxBlobBytes)) {
                current = { chunks: [], bytes: 0, items: 0, reasons: new Set(), firstSource: item.source };
                parts.push(current);
            }
            current.chunks.push(line);
            current.bytes += line.length;
            current.items++;
            if (current.reasons.size < 8) current.reasons.add(item.reason);
        }
        return parts;
    }
}

interface Part {
    readonly chunks: Buffer[];
    bytes: number;
    items: number;
    readonly reasons: Set<string>;
    readonly firstSource: string | undefined;
}
