/** Small, allocation-light readers for untrusted JSON values. */

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A non-empty string, else undefined. */
export function str(value: unknown): string | undefined {
    return typeof value === 'string' && value.length > 0 ? value : undefined;
}

export function bool(value: unknown): boolean | undefined {
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'True') return true;
    if (value === 'false' || value === 'False') return false;
    return undefined;
}

/**
 * Reads `key` from `obj`, trying the exact spelling first and then any casing: the inferred vault-change fields
 * (`addedAccessPolicy.ObjectId` ...) are known only from Log Analytics column names.
 */
export function getCI(obj: JsonObject, key: string): unknown {
    const exact = obj[key];
    if (exact !== undefined) return exact;
    const lower = key.toLowerCase();
    for (const k in obj) {
        // Lengths first: lower-casing every property name of a record for each missing key made this a hot path.
        if (k.length === lower.length && k.toLowerCase() === lower) return obj[k];
    }
    return undefined;
}

/** A JSON string holding an object or array is parsed (Log Analytics exports arrays as JSON strings). */
export function maybeJson(value: unknown): unknown {
    if (typeof value !== 'string') return value;
    const t = value.trimStart();
    if (t.startsWith('{') || t.startsWith('[')) {
        try {
            return JSON.parse(t) as unknown;
        } catch {
            return value; // not JSON after all: the caller treats it as a plain string
        }
    }
    return value;
}

/** A list of strings from an array, a JSON-string array or a comma-separated string. */
export function stringList(value: unknown): string[] {
    const v = maybeJson(value);
    if (Array.isArray(v)) {
        const out: string[] = [];
        for (const item of v) if (typeof item === 'string' && item.length > 0) out.push(item);
        return out;
    }
    if (typeof v === 'string' && v.length > 0) {
        return v
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s.length > 0);
    }
    return [];
}
