/**
 * Bounds on what kv-responder stores, so that no record within the input limits (every string field up to
 * `MAX_FIELD_CHARS`, see ../events/normalize.ts) can push a stored entity past what Azure Table Storage holds.
 *
 * Table Storage limits (Table service data model, https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model):
 * PartitionKey and RowKey are strings of up to 1 KiB each; a string property holds up to 64 KiB (UTF-16, so 32K
 * characters); an entity holds up to 255 properties and 1 MiB of data in all. docs/limits.md lists what each kind of
 * state keeps within these bounds, and what happens beyond them.
 */
import { hash64 } from '../hash';

/** Longest partition or row key part kept as is: encoding for Table Storage can triple a character, 3 × 160 < 512. */
export const MAX_KEY_PART_CHARS = 160;
/**
 * Largest state value, in characters of its JSON, a store must hold: the Table store splits it over properties of
 * 32,000 characters, 15 of them within the 1 MiB entity (2 bytes a character). Every kind of state is bounded far
 * below it by its own caps; beyond it a write is refused with `STATE.TOO_LARGE`.
 */
export const MAX_STATE_CHARS = 480_000;
/** Longest identifier (correlation id, operation name, window item) kept in state and findings as is. */
export const MAX_ID_CHARS = 128;
/** Longest free text (a summary, a user agent, a principal) kept in state and findings as is. */
export const MAX_TEXT_CHARS = 1024;

const HASH_SUFFIX = 17; // '~' and 16 hex digits

/**
 * `s` when it has at most `max` characters; else its beginning, `~` and a hash of the whole string, `max` characters
 * in all (one less when the cut would split a surrogate pair). Stable: the same long id always bounds to the same
 * string, so sets and dedupe keyed by it keep working, and two long ids differing only past the cut stay distinct.
 */
export function boundedId(s: string, max: number = MAX_ID_CHARS): string {
    if (s.length <= max) return s;
    let cut = Math.max(0, max - HASH_SUFFIX);
    const c = s.charCodeAt(cut - 1);
    if (cut > 0 && c >= 0xd800 && c <= 0xdbff) cut--;
    return `${s.slice(0, cut)}~${hash64(s)}`;
}

/** {@link boundedId} with the text bound. */
export function boundedText(s: string, max: number = MAX_TEXT_CHARS): string {
    return boundedId(s, max);
}

/** Limits of {@link boundedJson}. */
export interface JsonBounds {
    readonly maxString: number;
    readonly maxArray: number;
    readonly maxKeys: number;
    readonly maxDepth: number;
}

export const DETAIL_BOUNDS: JsonBounds = { maxString: MAX_TEXT_CHARS, maxArray: 50, maxKeys: 50, maxDepth: 5 };

/**
 * A copy of a JSON-like value with every string, array and object bounded (strings by {@link boundedId}, arrays and
 * objects to their first elements, nesting below `maxDepth` replaced by null). Returns the value itself when nothing
 * needed bounding, so the common case allocates nothing.
 */
export function boundedJson(value: unknown, bounds: JsonBounds = DETAIL_BOUNDS, depth = 0): unknown {
    if (typeof value === 'string') return boundedId(value, bounds.maxString);
    if (value === null || typeof value !== 'object') return value;
    if (depth >= bounds.maxDepth) return null;
    if (Array.isArray(value)) {
        let changed = value.length > bounds.maxArray;
        const list = changed ? value.slice(0, bounds.maxArray) : value;
        const out = list.map((v: unknown) => {
            const b = boundedJson(v, bounds, depth + 1);
            if (b !== v) changed = true;
            return b;
        });
        return changed ? out : value;
    }
    const entries = Object.entries(value as Record<string, unknown>);
    let changed = entries.length > bounds.maxKeys;
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries.slice(0, bounds.maxKeys)) {
        const bk = boundedId(k, MAX_ID_CHARS);
        const bv = boundedJson(v, bounds, depth + 1);
        if (bk !== k || bv !== v) changed = true;
        out[bk] = bv;
    }
    return changed ? out : value;
}
