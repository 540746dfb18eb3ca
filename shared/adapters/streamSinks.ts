import { once } from 'node:events';
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Decision } from '../core/decisions';
import { ResponderError } from '../core/errors';
import type { DecisionSink, QuarantineItem, QuarantineSink } from '../core/ports';

/** Writes decisions as JSON Lines to a stream (stdout or a file), honouring backpressure. */
export class JsonLinesDecisionSink implements DecisionSink {
    constructor(private readonly out: Writable) {}

    async write(decisions: readonly Decision[]): Promise<void> {
        let chunk = '';
        for (const d of decisions) chunk += `${JSON.stringify(d)}\n`;
        if (!this.out.write(chunk)) await once(this.out, 'drain');
    }
}

function rawText(raw: unknown): string {
    if (typeof raw === 'string') return raw;
    if (raw instanceof Uint8Array) return Buffer.from(raw).toString('utf8');
    try {
        return JSON.stringify(raw) ?? String(raw);
    } catch {
        return String(raw);
    }
}

/**
 * Appends quarantined items, whole, to `<dir>/quarantine.jsonl` (one `{reason, source, raw}` object per line) for
 * local runs. Production uses Blob Storage through the same interface.
 */
export class DirectoryQuarantineSink implements QuarantineSink {
    private ready: Promise<unknown> | undefined;

    constructor(private readonly dir: string) {}

    get file(): string {
        return join(this.dir, 'quarantine.jsonl');
    }

    async put(items: readonly QuarantineItem[]): Promise<void> {
        this.ready ??= mkdir(this.dir, { recursive: true });
        try {
            await this.ready;
            const lines = items
                .map((i) => JSON.stringify({ reason: i.reason, source: i.source, raw: rawText(i.raw) }))
                .join('\n');
            await appendFile(this.file, `${lines}\n`, 'utf8');
        } catch (err) {
            throw new ResponderError(
                'SINK.WRITE_FAILED',
                `cannot write quarantine ${this.file}: ${(err as Error).message}`,
                true,
                {
                    cause: err,
                },
            );
        }
    }
}
