import { isObject } from './fields';

/** Why an Event Hubs body (or a replayed line) could not yield records. */
export type BodyResult =
    | { readonly kind: 'records'; readonly records: readonly unknown[] }
    | { readonly kind: 'rejected'; readonly reason: string; readonly text: string | undefined };

export interface UnwrapOptions {
    /**
     * Accept an object without a `records` key as one bare record. Replay inputs may be JSON Lines of records
     * (the `PT1H.json` blobs of a storage-account archive); Event Hubs bodies always carry the envelope.
     */
    readonly acceptBareRecords: boolean;
}

function decode(item: unknown): { value: unknown; text: string | undefined; error?: string } {
    let text: string | undefined;
    if (typeof item === 'string') text = item;
    else if (item instanceof Uint8Array)
        text = Buffer.from(item.buffer, item.byteOffset, item.byteLength).toString('utf8');
    else return { value: item, text: undefined };
    try {
        return { value: JSON.parse(text) as unknown, text };
    } catch (err) {
        return { value: undefined, text, error: err instanceof Error ? err.message : String(err) };
    }
}

/**
 * Unwraps one Event Hubs body written by an Azure Monitor diagnostic setting (`{"records":[...]}`), given as a
 * parsed object, a JSON string or a Buffer.
 */
export function unwrapBody(item: unknown, options: UnwrapOptions): BodyResult {
    const { value, text, error } = decode(item);
    if (error !== undefined) return { kind: 'rejected', reason: `body is not JSON: ${error}`, text };
    if (Array.isArray(value)) {
        if (options.acceptBareRecords) return { kind: 'records', records: value };
        return { kind: 'rejected', reason: 'body is a JSON array, not an object with a records array', text };
    }
    if (!isObject(value))
        return {
            kind: 'rejected',
            reason: `body is not a JSON object (${value === null ? 'null' : typeof value})`,
            text,
        };
    if ('records' in value) {
        const records = value.records;
        if (!Array.isArray(records)) return { kind: 'rejected', reason: 'body.records is not an array', text };
        return { kind: 'records', records };
    }
    if (options.acceptBareRecords) return { kind: 'records', records: [value] };
    return { kind: 'rejected', reason: 'body has no records array', text };
}
