/** Longest string a {@link StringMemo} holds: ids, URIs and user agents are far shorter. */
export const MAX_HELD_CHARS = 512;

/**
 * A bounded memo of a pure function of a string, for the strings a record stream repeats in nearly every record
 * (resource ids, object URIs, principal ids).
 *
 * Every record's strings are fresh copies made by `JSON.parse`, so a `Map` lookup hashes every character of the string
 * each time (a V8 string caches its hash, but each record brings a new string): on the in-memory pipeline that hashing
 * was the largest cost of normalization. This memo is direct-mapped instead: the slot comes from the length and some of
 * the characters (see {@link slotOf}), and a hit is confirmed by comparing the whole string. A different string in the
 * slot is replaced, so two strings that share a slot only cost a recomputation each. Deterministic and bounded (in
 * slots, and in the length of the strings it holds: {@link MAX_HELD_CHARS}); `get(s)` always returns what `compute(s)`
 * returned for an equal string, which, `compute` being pure, is what it would return now.
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
        // A string longer than any id is computed, never held: records may carry strings of up to a megabyte (they
        // are then rejected as oversized, after this), and a memo of such strings would hold gigabytes.
        if (s.length > MAX_HELD_CHARS) return this.compute(s);
        const slot = slotOf(s) & this.mask;
        if (this.keys[slot] === s) return this.values[slot] as V;
        const v = this.compute(s);
        this.keys[slot] = s;
        this.values[slot] = v;
        return v;
    }
}

/**
 * `s.toLowerCase()`, without the call when `s` has no character it would change (no `A`-`Z`, nothing beyond ASCII):
 * most names in a stream are lower-case already, and the call cost more than this scan.
 */
export function lowerCased(s: string): string {
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if ((c >= 65 && c <= 90) || c > 127) return s.toLowerCase();
    }
    return s;
}

/**
 * A 31-bit hash of the length and 24 of the characters: the four characters at each of positions 8, 12, n - 12,
 * n - 8 and n - 4, and four spread over the string (the first, and those at a quarter, half and three quarters of
 * the length); a string shorter than 24 characters is hashed whole. Ids differ at their ends and just after a fixed
 * prefix: a GUID's first and last groups, an object URI's vault name after `https://` and its object version or name at
 * its end, a resource id's vault name at its end. Four characters go
 * into each multiply step and the positions are fixed, because this runs several times for every record (the
 * characters read, one by one, were most of its cost). Strings that differ only elsewhere may share a slot: slower,
 * never wrong.
 */
export function slotOf(s: string): number {
    const n = s.length;
    let h = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
    if (n < SAMPLED) {
        for (let i = 0; i < n; i++) h = mix(h, s.charCodeAt(i));
    } else {
        h = mix(h, quad(s, 8));
        h = mix(h, quad(s, 12));
        h = mix(h, quad(s, n - 12));
        h = mix(h, quad(s, n - 8));
        h = mix(h, quad(s, n - 4));
        h = mix(
            h,
            s.charCodeAt(0) |
                (s.charCodeAt(n >> 2) << 8) |
                (s.charCodeAt(n >> 1) << 16) |
                (s.charCodeAt((3 * n) >> 2) << 24),
        );
    }
    // The final mix of MurmurHash3: every input bit reaches the low bits that pick the slot.
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h ^= h >>> 13;
    // 31 bits: a small integer, which V8 returns without allocating a number object.
    return (h ^ (h >>> 16)) & 0x7fffffff;
}

/** Strings shorter than this are hashed whole by {@link slotOf}. */
const SAMPLED = 24;

/** Four characters from `i` in one number (characters above 0xff overlap their neighbours: a weaker hash, no error). */
function quad(s: string, i: number): number {
    return s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24);
}

/** One multiply step (MurmurHash2's constant), with a shift that brings high bits down. */
function mix(h: number, w: number): number {
    const m = Math.imul(h ^ w, 0x5bd1e995);
    return m ^ (m >>> 15);
}
