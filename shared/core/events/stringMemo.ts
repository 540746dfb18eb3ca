/**
 * A bounded memo of a pure function of a string, for the strings a record stream repeats in nearly every record
 * (resource ids, object URIs, principal ids).
 *
 * Every record's strings are fresh copies made by `JSON.parse`, so a `Map` lookup hashes every character of the string
 * each time (a V8 string caches its hash, but each record brings a new string): on the in-memory pipeline that hashing
 * was the largest cost of normalization. This memo is direct-mapped instead: the slot comes from the length and some of
 * the characters (see {@link slotOf}), and a hit is confirmed by comparing the whole string. A different string in the slot is replaced, so two strings that share a
 * slot only cost a recomputation each. Deterministic and bounded; `get(s)` always returns what `compute(s)` returned
 * for an equal string, which, `compute` being pure, is what it would return now.
 */
export class StringMemo<V> {
    private readonly keys: (string | undefined)[];
    private readonly values: (V | undefined)[];
    private readonly mask: number;

    /** @param slots - A power of two: how many strings the memo holds at most. */
    constructor(
        private readonly compute: (s: string) => V,
        slots: number,
    ) {
        if (!(slots > 0 && (slots & (slots - 1)) === 0)) throw new RangeError(`slots must be a power of two: ${slots}`);
        this.mask = slots - 1;
        this.keys = new Array<string | undefined>(slots).fill(undefined);
        this.values = new Array<V | undefined>(slots).fill(undefined);
    }

    get(s: string): V {
        const slot = slotOf(s) & this.mask;
        if (this.keys[slot] === s) return this.values[slot] as V;
        const v = this.compute(s);
        this.keys[slot] = s;
        this.values[slot] = v;
        return v;
    }
}

/**
 * A 32-bit hash of the length, the first and last {@link EDGE} characters and eight spread over the rest: ids differ
 * at their ends (a GUID's last group, a URI's vault name near its start and object version or name at its end, a
 * resource id's vault name at its end). Strings that differ only inside their middle may share a slot: slower, never
 * wrong.
 */
export function slotOf(s: string): number {
    const n = s.length;
    let h = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
    if (n <= 2 * EDGE) {
        for (let i = 0; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    } else {
        for (let i = 0; i < EDGE; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
        for (let i = n - EDGE; i < n; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
        const step = Math.max(1, (n - 2 * EDGE) >> 3);
        for (let i = EDGE; i < n - EDGE; i += step) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    }
    return (h ^ (h >>> 15)) >>> 0;
}

/** Characters hashed at each end of a string by {@link slotOf}. */
const EDGE = 16;
