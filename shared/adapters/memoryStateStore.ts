import {
    type PutResult,
    type StateKey,
    type StateStore,
    type StateWrite,
    type StoredState,
    stateKey,
    type WriteResult,
} from '../core/state/store';

/**
 * In-process state (unit tests, `kvr replay`, the benchmark): the compare-and-set contract of the Table store, in a
 * representation whose size is proportional to the bytes of state, not to the objects that make it up.
 *
 * A replay of a large estate holds an entry per vault, principal and rule (a million after a million records of a
 * 10,000-vault estate); kept as JavaScript objects (a key object, its strings, an entry object, the value's objects and
 * boxed numbers, a map slot) each took about 400 bytes of retained heap, and three to four times that in peak RSS,
 * since V8 lets garbage of a large old generation accumulate between its collections. Here:
 *
 * - Entries are grouped into records by partition and trailing GUID: the rows `mass|<id>`, `enum|<id>`, `app|<id>` of
 *   one vault (most rule state: a caller's windows and baselines) share one record, which holds the GUID once (16
 *   bytes) and then each entry as its row's head (interned to a byte), creation order, version, expiry and value.
 *   Any other row is a record of its own, with one entry. The logical keys are unchanged: grouping is how they are
 *   laid out, not what they are.
 * - A record is a position in typed-array columns (partition id, hash, where its bytes are, how much room it has, a
 *   lower bound of its entries' expiry in seconds: 20 bytes, grown by a quarter at a time): no object per entry,
 *   nothing for the collector to walk or promote. Its bytes are in an arena of 1 MiB buffers, outside the V8 heap.
 * - Values in a binary form of plain JSON ({@link ValueCodec}: object keys and short names interned, integers as
 *   varints, timestamps relative to the first one met; its JSON text for what is not plain data). A last-seen baseline (`{ last: <ms> }`, the most common state) keeps only its
 *   number. A rewrite that fits the record's room is made in place; otherwise the record moves and its old bytes are
 *   counted as dead, and the arena is compacted in place (records slid down, empty chunks freed) once the dead bytes
 *   pass a sixteenth of the live ones.
 * - Records are found through an open-addressing index (an `Int32Array`), hashing and comparing their GUID or row.
 * - Partitions (vault names and the like: few) are interned to numbers.
 *
 * Reading returns a new value decoded from the bytes (as the Table store parses its JSON, so a rule can never change
 * the stored state through the object it was handed), and values round-trip exactly as they do through JSON in Table
 * Storage. About 85 bytes an entry on the diverse workload (columns, index, arena); see docs/state.md.
 */

const CHUNK_BYTES = 1 << 20;
/** A value longer than this (bytes of JSON) is kept as a string beside the arena rather than in it. */
const LARGE_VALUE_BYTES = 48 * 1024;
/**
 * The same bound for an entry of a shared record (a row ending in a GUID): at most {@link MAX_HEADS} of these and
 * their headers fit a record in a chunk, with the room it is given when it moves.
 */
const GROUPED_LARGE_VALUE_BYTES = 8 * 1024;
/** Dead arena bytes tolerated before a compaction, whatever the live ones. */
const MIN_DEAD_FOR_COMPACTION = 4 * CHUNK_BYTES;

/** How an entry holds its value (the low 3 bits of its tag byte). */
const TAG_UNDEFINED = 0; // `undefined`: no bytes
const TAG_JSON = 1; // varint length, JSON text
const TAG_LAST_SEEN = 2; // `{ last: n }`: n as 8 bytes (a double)
const TAG_LARGE = 3; // varint id of its JSON text in `large`
const TAG_PACKED = 4; // varint length, the value in the store's binary form (see {@link ValueCodec})
const TAG_LAST_INT = 5; // `{ last: n }`, n an integer of {@link ValueCodec.relative} range: a varint of it
/** Tag bit: the expiry is a varint ({@link ValueCodec.relative}), not 8 bytes of a double. */
const EXPIRY_VARINT = 0x80;

/**
 * Row heads (the text before a trailing GUID: `mass|`, `enum|`, `app|`, `user|`) interned at most: ids 1 to 63, a byte
 * in each entry. A row whose head is longer than {@link MAX_HEAD_LENGTH}, or new once the table is full, is kept
 * whole in a record of its own: a head's place is decided the first time it is written and never changes.
 */
const MAX_HEADS = 63;
const MAX_HEAD_LENGTH = 64;
/** First byte of a record whose rows end in a GUID (16 bytes follow); a whole row's starts with varint(length + 1). */
const GUID_RECORD = 0;
/**
 * A whole row ending in a canonical GUID after other text (its head not interned) keeps the GUID as 16 bytes behind
 * this mark, 17 bytes instead of 36. 0xff never occurs in UTF-8, so a packed row never equals another row's bytes.
 */
const GUID_MARK = 0xff;
const PACKED_GUID_BYTES = 17;
const HEX_DIGITS = '0123456789abcdef';

/** The value of a lower-case hex digit's char code, or -1. */
function hexValue(c: number): number {
    if (c >= 48 && c <= 57) return c - 48;
    if (c >= 97 && c <= 102) return c - 87;
    return -1;
}

/**
 * Writes the lower-case GUID that ends `row` (see {@link endsWithGuid}) as its 16 bytes at `at` of `to`; returns where
 * they end.
 */
function packGuid(row: string, to: Buffer, at: number): number {
    const b = row.length - 36;
    for (let i = 0; i < 36; i++) {
        if (i === 8 || i === 13 || i === 18 || i === 23) continue;
        const hi = hexValue(row.charCodeAt(b + i));
        const lo = hexValue(row.charCodeAt(b + ++i));
        to[at++] = (hi << 4) | lo;
    }
    return at;
}

/** Whether `row` ends with a lower-case GUID (`8-4-4-4-12` hex digits) preceded by at least one character. */
function endsWithGuid(row: string): boolean {
    const n = row.length;
    if (n < 37) return false;
    const b = n - 36;
    for (let i = 0; i < 36; i++) {
        const c = row.charCodeAt(b + i);
        if (i === 8 || i === 13 || i === 18 || i === 23) {
            if (c !== 45) return false;
        } else if (hexValue(c) < 0) return false;
    }
    return true;
}

// Binary form of plain JSON values: a tag byte, then what the tag says. Integers (timestamps, counts) as varints,
// object keys interned to numbers, strings as UTF-8.
const V_NULL = 0;
const V_FALSE = 1;
const V_TRUE = 2;
const V_UINT = 3; // varint
const V_NEGINT = 4; // varint of the magnitude
const V_DOUBLE = 5; // 8 bytes
const V_STRING = 6; // varint byte length, UTF-8
const V_KEY = 7; // varint id of an interned key (object keys only)
const V_ARRAY = 8; // varint length, the items
const V_OBJECT = 9; // varint length, (key, value) pairs
const V_ISTRING = 10; // varint id of an interned string (a short string value)
const V_TIME = 11; // varint of an integer relative to the codec's time base ({@link ValueCodec.relative})
/** Integers at most this far from 0 are kept relative to the time base: twice their distance to it stays exact. */
const RELATIVE_LIMIT = 2 ** 50;
const V_SMALL = 0x80; // 0x80 + n: an integer 0 <= n < 128
/** Object keys interned at most (state keys are field names; past this, keys are written as strings). */
const MAX_INTERNED_KEYS = 4096;
/**
 * Short string values interned at most, first come (secret and key names, kinds: a window lists the same few names for
 * every caller of a vault), and the longest interned. About 100 bytes of heap each at most.
 */
const MAX_INTERNED_STRINGS = 16384;
const MAX_INTERNED_STRING_LENGTH = 40;
/** Nesting packed at most; deeper values (and cycles, which JSON.stringify refuses) take the JSON path. */
const MAX_PACKED_DEPTH = 64;

/**
 * Buffer's own UTF-8 methods, without the argument checks of `write` and `toString` (which cost a fifth of the store's
 * time in a profile of the diverse workload). Node has had them for ever, undocumented; `write`/`toString` otherwise.
 */
interface Utf8Buffer {
    utf8Write?(text: string, offset: number, max: number): number;
    utf8Slice?(start: number, end: number): string;
}
const RAW = Buffer.prototype as unknown as Utf8Buffer;
const utf8Write: (b: Buffer, text: string, offset: number, max: number) => number =
    typeof RAW.utf8Write === 'function'
        ? (b, text, offset, max) => (b as unknown as Required<Utf8Buffer>).utf8Write(text, offset, max)
        : (b, text, offset, max) => b.write(text, offset, max, 'utf8');
const utf8Slice: (b: Buffer, start: number, end: number) => string =
    typeof RAW.utf8Slice === 'function'
        ? (b, start, end) => (b as unknown as Required<Utf8Buffer>).utf8Slice(start, end)
        : (b, start, end) => b.toString('utf8', start, end);

/**
 * Whether `text` has a decimal digit: names (`storage-connection`, `api-key`) repeat across a vault's callers and are
 * worth interning; ids, hashes and numbered names (`kv-est-00107`, a GUID) mostly do not, and would fill the table.
 */
function hasDigit(text: string): boolean {
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c >= 48 && c <= 57) return true;
    }
    return false;
}

/** `{ last: n }` and nothing else. */
function lastSeenOf(value: unknown): number | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const last = (value as { last?: unknown }).last;
    if (typeof last !== 'number') return undefined;
    for (const k in value) if (k !== 'last') return undefined;
    return last;
}

/** Copies `n` bytes: a loop for the short records of rule state (Buffer#copy makes a view object per call). */
function copyBytes(from: Buffer, fromOff: number, to: Buffer, toOff: number, n: number): void {
    if (n > 64) {
        from.copy(to, toOff, fromOff, fromOff + n);
        return;
    }
    for (let i = 0; i < n; i++) to[toOff + i] = from[fromOff + i] as number;
}

/**
 * The binary form of plain JSON values: what `JSON.stringify` keeps of a value, read back as `JSON.parse` builds it
 * (a property that is `undefined`, a function or a symbol is left out, an array item that is one becomes `null`, a
 * non-finite number becomes `null`, `-0` becomes `0`). A value that is not plain data (anything with another
 * prototype than an object's or an array's, or with `toJSON`, a `bigint`, a key `__proto__`, nesting deeper than
 * {@link MAX_PACKED_DEPTH}) is refused, and the store keeps its JSON text instead, so that nothing changes for it.
 * Rule state is small objects of timestamps and names: `{"items":[["api-key",1793606454993]]}` takes 48 bytes as JSON and
 * 24 here, with no string made to write or to read it.
 */
export class ValueCodec {
    private buf = Buffer.allocUnsafe(4096);
    private pos = 0;
    private readonly keyIds = new Map<string, number>();
    private readonly keys: string[] = [];
    private readonly stringIds = new Map<string, number>();
    private readonly strings: string[] = [];
    private src: Buffer = this.buf;
    private at = 0;
    /** The first timestamp-sized integer the codec met: times near it (rule state's) take 3 to 5 bytes, not 6. */
    private base = Number.NaN;

    /** Whether `n` can be kept {@link relative} to the time base. */
    static relativeFits(n: number): boolean {
        return Number.isSafeInteger(n) && n > -RELATIVE_LIMIT && n < RELATIVE_LIMIT;
    }

    /**
     * `n` (see {@link relativeFits}) as a non-negative integer that is small when `n` is near the time base (the first
     * value given here sets it): its distance to the base, zigzagged (0, -1, 1, -2 … as 0, 1, 2, 3 …).
     */
    relative(n: number): number {
        if (this.base !== this.base) this.base = n;
        const d = n - this.base;
        return d >= 0 ? d * 2 : -d * 2 - 1;
    }

    /** The integer {@link relative} gave `z` for. */
    absolute(z: number): number {
        return this.base + (z % 2 === 0 ? z / 2 : -(z + 1) / 2);
    }

    /** The bytes of the last {@link encode}. */
    get bytes(): Buffer {
        return this.buf;
    }

    /** Object keys interned so far (tests). */
    get internedKeys(): number {
        return this.keys.length;
    }

    /** String values interned so far (tests). */
    get internedStrings(): number {
        return this.strings.length;
    }

    /** Encodes `value` into {@link bytes}; returns its length, or -1 when it is not plain JSON data. */
    encode(value: unknown): number {
        this.pos = 0;
        return this.put(value, 0) ? this.pos : -1;
    }

    /** Decodes the value that starts at `offset` of `from`. */
    decode(from: Buffer, offset: number): unknown {
        this.src = from;
        this.at = offset;
        return this.get();
    }

    private ensure(n: number): void {
        if (this.pos + n <= this.buf.length) return;
        const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
        this.buf.copy(b, 0, 0, this.pos);
        this.buf = b;
    }

    /** A non-negative integer of at most 2^53, 7 bits a byte, low bits first; room for it must be ensured. */
    private varint(n: number): void {
        const b = this.buf;
        while (n >= 128) {
            b[this.pos++] = (n % 128) | 128;
            n = Math.floor(n / 128);
        }
        b[this.pos++] = n;
    }

    private string(text: string): void {
        if (text.length < 43) {
            // At most 126 bytes of UTF-8: a one-byte length, written once the text is.
            this.ensure(2 + text.length * 3);
            this.buf[this.pos] = V_STRING;
            const n = utf8Write(this.buf, text, this.pos + 2, text.length * 3);
            this.buf[this.pos + 1] = n;
            this.pos += 2 + n;
            return;
        }
        const n = Buffer.byteLength(text, 'utf8');
        this.ensure(10 + n);
        this.buf[this.pos++] = V_STRING;
        this.varint(n);
        this.pos += utf8Write(this.buf, text, this.pos, n);
    }

    /** A string value: interned when short (its id), else its UTF-8. */
    private stringValue(text: string): void {
        if (text.length <= MAX_INTERNED_STRING_LENGTH && !hasDigit(text)) {
            let id = this.stringIds.get(text);
            if (id === undefined && this.strings.length < MAX_INTERNED_STRINGS) {
                id = this.strings.length;
                this.strings.push(text);
                this.stringIds.set(text, id);
            }
            if (id !== undefined) {
                this.ensure(10);
                this.buf[this.pos++] = V_ISTRING;
                this.varint(id);
                return;
            }
        }
        this.string(text);
    }

    private number(v: number): void {
        this.ensure(10);
        const b = this.buf;
        if (!Number.isFinite(v)) b[this.pos++] = V_NULL;
        else if (Number.isInteger(v) && v >= 0 && v < 128)
            b[this.pos++] = V_SMALL + v; // -0 too, as JSON makes it 0
        else if (v >= 2 ** 32 && v < RELATIVE_LIMIT && Number.isInteger(v)) {
            // A timestamp: relative to the time base when that is shorter than its own varint.
            const z = this.relative(v);
            b[this.pos++] = z < v ? V_TIME : V_UINT;
            this.varint(z < v ? z : v);
        } else if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
            b[this.pos++] = v < 0 ? V_NEGINT : V_UINT;
            this.varint(Math.abs(v));
        } else {
            b[this.pos++] = V_DOUBLE;
            b.writeDoubleLE(v, this.pos);
            this.pos += 8;
        }
    }

    private key(k: string): void {
        let id = this.keyIds.get(k);
        if (id === undefined && this.keys.length < MAX_INTERNED_KEYS && k.length <= 64) {
            id = this.keys.length;
            this.keys.push(k);
            this.keyIds.set(k, id);
        }
        if (id === undefined) {
            this.string(k);
            return;
        }
        this.ensure(10);
        this.buf[this.pos++] = V_KEY;
        this.varint(id);
    }

    private put(v: unknown, depth: number): boolean {
        switch (typeof v) {
            case 'string':
                this.stringValue(v);
                return true;
            case 'number':
                this.number(v);
                return true;
            case 'boolean':
                this.ensure(1);
                this.buf[this.pos++] = v ? V_TRUE : V_FALSE;
                return true;
            case 'object':
                break;
            case 'undefined':
            case 'function':
            case 'symbol':
            case 'bigint':
                return false; // as the value itself: JSON has nothing (or refuses); the JSON path decides
        }
        if (v === null) {
            this.ensure(1);
            this.buf[this.pos++] = V_NULL;
            return true;
        }
        if (depth >= MAX_PACKED_DEPTH || typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
        if (Array.isArray(v)) {
            this.ensure(10);
            this.buf[this.pos++] = V_ARRAY;
            this.varint(v.length);
            for (let i = 0; i < v.length; i++) {
                const x: unknown = v[i];
                const t = typeof x;
                if (x === undefined || t === 'function' || t === 'symbol') {
                    this.ensure(1);
                    this.buf[this.pos++] = V_NULL;
                } else if (!this.put(x, depth + 1)) return false;
            }
            return true;
        }
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) return false;
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o);
        let n = 0;
        for (let i = 0; i < keys.length; i++) {
            const x = o[keys[i] as string];
            const t = typeof x;
            if (x !== undefined && t !== 'function' && t !== 'symbol') n++;
        }
        this.ensure(10);
        this.buf[this.pos++] = V_OBJECT;
        this.varint(n);
        for (let i = 0; i < keys.length; i++) {
            const k = keys[i] as string;
            const x = o[k];
            const t = typeof x;
            if (x === undefined || t === 'function' || t === 'symbol') continue;
            if (k === '__proto__') return false;
            this.key(k);
            if (!this.put(x, depth + 1)) return false;
        }
        return true;
    }

    private readVarint(): number {
        const n = varintAt(this.src, this.at);
        this.at = varintEnd;
        return n;
    }

    private readString(): string {
        const n = this.readVarint();
        const s = utf8Slice(this.src, this.at, this.at + n);
        this.at += n;
        return s;
    }

    private get(): unknown {
        const t = this.src[this.at++] as number;
        if (t >= V_SMALL) return t - V_SMALL;
        switch (t) {
            case V_NULL:
                return null;
            case V_FALSE:
                return false;
            case V_TRUE:
                return true;
            case V_UINT:
                return this.readVarint();
            case V_NEGINT:
                return -this.readVarint();
            case V_TIME:
                return this.absolute(this.readVarint());
            case V_DOUBLE: {
                const d = this.src.readDoubleLE(this.at);
                this.at += 8;
                return d;
            }
            case V_STRING:
                return this.readString();
            case V_ISTRING:
                return this.strings[this.readVarint()];
            case V_ARRAY: {
                const n = this.readVarint();
                const a: unknown[] = [];
                for (let i = 0; i < n; i++) a.push(this.get());
                return a;
            }
            case V_OBJECT: {
                const n = this.readVarint();
                const o: Record<string, unknown> = {};
                for (let i = 0; i < n; i++) {
                    const k =
                        this.src[this.at++] === V_KEY ? (this.keys[this.readVarint()] as string) : this.readString();
                    o[k] = this.get();
                }
                return o;
            }
            default:
                throw new Error(`in-memory state: bad value byte ${t}`);
        }
    }
}

/** Most arena the store addresses (a 32-bit address). */
const MAX_ARENA_BYTES = 2 ** 32;
/** Longest row kept whole, in UTF-8 bytes (rows are bounded to 160 characters by stateKey). */
const MAX_ROW_BYTES = 1024;

/**
 * Room given to a record of `bytes`: exactly that the first time (most state is written once, or rewritten at the same
 * length), a quarter more when it has outgrown its room, so that a window that grows is not moved on every item.
 */
function roomFor(bytes: number, moving: boolean): number {
    return moving ? bytes + (bytes >> 3) + 4 : bytes;
}

function grown<T extends Int32Array | Uint32Array>(a: T, size: number): T {
    const b = new (a.constructor as new (n: number) => T)(size);
    b.set(a);
    return b;
}

/** Bytes of `n` as a varint. */
function varintLength(n: number): number {
    let k = 1;
    while (n >= 128) {
        n = Math.floor(n / 128);
        k++;
    }
    return k;
}

/** Writes `n` (a non-negative integer of at most 2^53) as a varint at `at`; returns where it ends. */
function putVarint(b: Buffer, at: number, n: number): number {
    while (n >= 128) {
        b[at++] = (n % 128) | 128;
        n = Math.floor(n / 128);
    }
    b[at++] = n;
    return at;
}

/** Where the varint last read by {@link varintAt} ended. */
let varintEnd = 0;

/** The varint at `at` of `b` (its end in {@link varintEnd}). */
function varintAt(b: Buffer, at: number): number {
    let n = 0;
    let scale = 1;
    for (;;) {
        const x = b[at++] as number;
        n += (x & 127) * scale;
        if (x < 128) {
            varintEnd = at;
            return n;
        }
        scale *= 128;
    }
}

/** Where the varint at `at` ends. */
function skipVarint(b: Buffer, at: number): number {
    while ((b[at++] as number) >= 128);
    return at;
}

/**
 * A lower bound, in whole seconds, of an expiry (ms): a sweep opens the records whose bound is at most its own time's,
 * then compares each entry's exact expiry. Anything not a non-negative number is 0 (always opened).
 */
function expirySeconds(ms: number): number {
    return ms >= 0 ? Math.min(Math.floor(ms / 1000), 0xffffffff) : 0;
}

/** Where the entry that starts at `p` ends (head byte, tag, creation order, version, expiry, value). */
function skipEntry(b: Buffer, p: number): number {
    const tag = b[p + 1] as number;
    p = skipVarint(b, skipVarint(b, p + 2));
    p = tag & EXPIRY_VARINT ? skipVarint(b, p) : p + 8;
    switch (tag & 7) {
        case TAG_JSON:
        case TAG_PACKED: {
            let n = 0;
            let scale = 1;
            for (;;) {
                const x = b[p++] as number;
                n += (x & 127) * scale;
                if (x < 128) break;
                scale *= 128;
            }
            return p + n;
        }
        case TAG_LAST_SEEN:
            return p + 8;
        case TAG_LAST_INT:
        case TAG_LARGE:
            return skipVarint(b, p);
        default:
            return p;
    }
}

/** Where a record's entries start: after its GUID or row, and the count byte. */
function entriesStart(b: Buffer, off: number): number {
    if (b[off] === GUID_RECORD) return off + 18;
    let n = 0;
    let scale = 1;
    let p = off;
    for (;;) {
        const x = b[p++] as number;
        n += (x & 127) * scale;
        if (x < 128) break;
        scale *= 128;
    }
    return p + n; // n - 1 bytes of row, then the count byte
}

/** Where a record's count byte is. */
function countAt(b: Buffer, off: number): number {
    return entriesStart(b, off) - 1;
}

export class MemoryStateStore implements StateStore {
    // Interned partitions, and how many entries each has created (an entry's creation order, for scans).
    private readonly partitionIds = new Map<string, number>();
    private readonly partitionNames: string[] = [];
    private readonly partitionCreated: number[] = [];

    // Interned row heads (id 0: a record holding a whole row).
    private readonly heads: string[] = [''];

    // Record columns; records 0 .. count-1 are live (a sweep closes the gaps it makes).
    private count = 0;
    private capacity = 0;
    private partition = new Int32Array(0);
    private hash = new Int32Array(0);
    private address = new Uint32Array(0); // chunk * CHUNK_BYTES + offset
    private room = new Uint32Array(0);
    /** A lower bound of the record's entries' expiry, in seconds ({@link expirySeconds}). */
    private expiresAfter = new Uint32Array(0);

    /** Live entries (in all records). */
    private entries = 0;

    /** JSON of values over {@link LARGE_VALUE_BYTES} (or {@link GROUPED_LARGE_VALUE_BYTES}), by id. */
    private readonly large = new Map<number, string>();
    private nextLargeId = 1;

    // Open-addressing index: record + 1, 0 for an empty slot; at most three quarters full (a GUID record needs no second lookup: few probes).
    private index = new Int32Array(1024);

    // Arena.
    private chunks: Buffer[] = [];
    private top = 0; // next free address
    private liveBytes = 0;
    private deadBytes = 0;

    /** Versions are one counter for the whole store: an ETag never comes back, even for a key swept and re-created. */
    private nextVersion = 0;
    // A key's record identity (its GUID, or its whole row) as the record starts, and its head id.
    private scratch = Buffer.allocUnsafe(4096);
    private scratchStart = 0;
    private scratchLength = 0;
    private headId = 0;
    private readonly codec = new ValueCodec();

    /** Live entries. */
    get size(): number {
        return this.entries;
    }

    /** Bytes this store holds outside the V8 heap (arena chunks) and in its columns and index (tests, benchmark). */
    get footprintBytes(): number {
        return this.chunks.length * CHUNK_BYTES + this.capacity * 20 + this.index.byteLength;
    }

    /**
     * Puts the record identity of `row` in the scratch buffer (`GUID_RECORD` and 16 bytes for a row ending in a GUID
     * whose head is interned; else varint(length + 1) and the row's UTF-8), its head id in `headId`, and returns the
     * hash of it with the partition's. `intern`: a write, which may intern a new head.
     */
    private rowHash(partitionId: number, row: string, intern: boolean): number {
        const s = this.scratch;
        let id = 0;
        const headLength = row.length - 36;
        if (headLength <= MAX_HEAD_LENGTH && endsWithGuid(row)) {
            // Heads are few: compared in place, with no string made for the head.
            const heads = this.heads;
            for (let i = 1; i < heads.length; i++) {
                const h = heads[i] as string;
                if (h.length === headLength && row.startsWith(h)) {
                    id = i;
                    break;
                }
            }
            if (id === 0 && intern && heads.length <= MAX_HEADS) {
                const head = row.slice(0, headLength);
                id = this.heads.length;
                this.heads.push(head);
            }
        }
        this.headId = id;
        if (id !== 0) {
            s[0] = GUID_RECORD;
            packGuid(row, s, 1);
            this.scratchStart = 0;
            this.scratchLength = 17;
        } else {
            if (row.length * 3 + 2 > s.length) this.scratch = Buffer.allocUnsafe(row.length * 3 + 1024);
            const t = this.scratch;
            let n = utf8Write(t, row, 2, t.length - 2);
            if (endsWithGuid(row)) {
                // The GUID's 36 characters are its last 36 bytes: 16 bytes behind the mark instead.
                const at = 2 + n - 36;
                t[at] = GUID_MARK;
                n = packGuid(row, t, at + 1) - 2;
            }
            if (n > MAX_ROW_BYTES)
                throw new Error(`state row of ${n} bytes: longer than the ${MAX_ROW_BYTES} a store holds`);
            if (n + 1 < 128) {
                t[1] = n + 1;
                this.scratchStart = 1;
                this.scratchLength = n + 1;
            } else {
                putVarint(t, 0, n + 1);
                this.scratchStart = 0;
                this.scratchLength = n + 2;
            }
        }
        const t = this.scratch;
        let h = Math.imul(partitionId ^ 0x811c9dc5, 16777619);
        const end = this.scratchStart + this.scratchLength;
        for (let i = this.scratchStart; i < end; i++) h = Math.imul(h ^ (t[i] as number), 16777619);
        // FNV-1a's low bits (the index slot) mix poorly: finish with a multiply-shift.
        h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
        return (h ^ (h >>> 12)) | 0;
    }

    /** The record of the key in the scratch buffer, or -1; leaves the probe slot in `slot`. */
    private slot = 0;
    private find(partitionId: number, h: number): number {
        const mask = this.index.length - 1;
        let i = h & mask;
        const start = this.scratchStart;
        const n = this.scratchLength;
        const s = this.scratch;
        for (;;) {
            const r = (this.index[i] as number) - 1;
            if (r < 0) {
                this.slot = i;
                return -1;
            }
            if (this.hash[r] === h && this.partition[r] === partitionId) {
                const a = this.address[r] as number;
                const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                const off = a % CHUNK_BYTES;
                // The first two bytes settle the length (GUID mark, or a varint of at most two bytes), so the
                // comparison never reads past a record of another length.
                if (chunk[off] === s[start] && (n < 2 || chunk[off + 1] === s[start + 1])) {
                    let same = true;
                    if (n <= 64) {
                        // A loop: Buffer#compare checks its arguments at a cost above a GUID's 17 bytes.
                        for (let k = 2; k < n; k++)
                            if (chunk[off + k] !== s[start + k]) {
                                same = false;
                                break;
                            }
                    } else same = s.compare(chunk, off, off + n, start, start + n) === 0;
                    if (same) {
                        this.slot = i;
                        return r;
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    // Where `locate` found things: the record's chunk and offset, its used length, the entry's start and end (-1).
    private rChunk: Buffer = Buffer.alloc(0);
    private rOff = 0;
    private rUsed = 0;
    private eStart = -1;
    private eEnd = -1;

    /** Finds the entry of head `head` in record `r` (absolute offsets in `rChunk`); `whole`: also its used length. */
    private locate(r: number, head: number, whole: boolean): void {
        const a = this.address[r] as number;
        const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
        const off = a % CHUNK_BYTES;
        let p = entriesStart(chunk, off);
        const n = chunk[p - 1] as number;
        this.eStart = -1;
        for (let i = 0; i < n; i++) {
            const start = p;
            p = skipEntry(chunk, p);
            if (chunk[start] === head) {
                this.eStart = start;
                this.eEnd = p;
                if (!whole) break;
            }
        }
        this.rChunk = chunk;
        this.rOff = off;
        this.rUsed = p - off;
    }

    /** The entry of a key: its record is `locate`d, `eStart` is -1 when there is none. */
    private entryOf(key: StateKey): boolean {
        const partitionId = this.partitionIds.get(key.partition);
        if (partitionId === undefined) return false;
        const r = this.find(partitionId, this.rowHash(partitionId, key.row, false));
        if (r < 0) return false;
        this.locate(r, this.headId, false);
        return this.eStart >= 0;
    }

    /** The version of the entry at `p` of `b`. */
    private static versionAt(b: Buffer, p: number): number {
        return varintAt(b, skipVarint(b, p + 2));
    }

    // A varint reader over `rChunk`-like buffers.
    private at = 0;
    private varint(b: Buffer): number {
        const n = varintAt(b, this.at);
        this.at = varintEnd;
        return n;
    }

    /** The value of the entry at `p` of `b`. */
    private valueAt(b: Buffer, p: number): unknown {
        const tag = b[p + 1] as number;
        p = skipVarint(b, skipVarint(b, p + 2));
        this.at = tag & EXPIRY_VARINT ? skipVarint(b, p) : p + 8;
        switch (tag & 7) {
            case TAG_LAST_INT:
                return { last: this.codec.absolute(this.varint(b)) };
            case TAG_LAST_SEEN:
                return { last: b.readDoubleLE(this.at) };
            case TAG_PACKED: {
                this.varint(b);
                return this.codec.decode(b, this.at);
            }
            case TAG_JSON: {
                const n = this.varint(b);
                return JSON.parse(utf8Slice(b, this.at, this.at + n)) as unknown;
            }
            case TAG_LARGE:
                return JSON.parse(this.large.get(this.varint(b)) as string) as unknown;
            default:
                return undefined;
        }
    }

    /** The expiry of the entry at `p` of `b`. */
    private expiryAt(b: Buffer, p: number): number {
        const tag = b[p + 1] as number;
        p = skipVarint(b, skipVarint(b, p + 2));
        if (tag & EXPIRY_VARINT) {
            this.at = p;
            return this.codec.absolute(this.varint(b));
        }
        return b.readDoubleLE(p);
    }

    /** The creation order of the entry at `p` of `b`. */
    private createdAt(b: Buffer, p: number): number {
        this.at = p + 2;
        return this.varint(b);
    }

    /** Forgets the large value an entry at `p` of `b` holds, if it holds one. */
    private dropLarge(b: Buffer, p: number): void {
        const tag = b[p + 1] as number;
        if ((tag & 7) !== TAG_LARGE) return;
        p = skipVarint(b, skipVarint(b, p + 2));
        this.at = tag & EXPIRY_VARINT ? skipVarint(b, p) : p + 8;
        this.large.delete(this.varint(b));
    }

    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        const out = new Array<StoredState | undefined>(keys.length);
        for (let i = 0; i < keys.length; i++) {
            if (!this.entryOf(keys[i] as StateKey)) {
                out[i] = undefined;
                continue;
            }
            const b = this.rChunk;
            const p = this.eStart;
            out[i] = { value: this.valueAt(b, p), etag: `m${MemoryStateStore.versionAt(b, p)}` };
        }
        return Promise.resolve(out);
    }

    /** Reserves `bytes` of arena that do not cross a chunk boundary; returns their address. */
    private allocate(bytes: number): number {
        if (bytes > CHUNK_BYTES) throw new Error(`in-memory state: a record of ${bytes} bytes`); // bounded far below
        let off = this.top % CHUNK_BYTES;
        if (this.top === this.chunks.length * CHUNK_BYTES || off + bytes > CHUNK_BYTES) {
            if (off !== 0 && this.top < this.chunks.length * CHUNK_BYTES) this.deadBytes += CHUNK_BYTES - off; // the tail of a chunk no record fits
            this.top = this.chunks.length * CHUNK_BYTES;
            if (this.top + CHUNK_BYTES > MAX_ARENA_BYTES) throw new Error('in-memory state over 4 GiB');
            this.chunks.push(Buffer.allocUnsafeSlow(CHUNK_BYTES));
            off = 0;
        }
        const a = this.top;
        this.top += bytes;
        return a;
    }

    private newRecord(partitionId: number, h: number): number {
        if (this.count === this.capacity) {
            // A quarter more each time up to 64Ki records at a time, not twice: little slack, and the copy made while
            // growing needs the old columns only once more, not twice.
            const c = Math.max(1024, this.capacity + Math.min(this.capacity >> 2, 1 << 16));
            this.partition = grown(this.partition, c);
            this.hash = grown(this.hash, c);
            this.address = grown(this.address, c);
            this.room = grown(this.room, c);
            this.expiresAfter = grown(this.expiresAfter, c);
            this.capacity = c;
        }
        const r = this.count++;
        this.partition[r] = partitionId;
        this.hash[r] = h;
        this.address[r] = 0;
        this.room[r] = 0;
        this.expiresAfter[r] = 0xffffffff;
        this.index[this.slot] = r + 1;
        if (this.count * 4 > this.index.length * 3) this.reindex(this.index.length * 2);
        return r;
    }

    private reindex(size: number): void {
        const index = new Int32Array(size);
        const mask = size - 1;
        for (let r = 0; r < this.count; r++) {
            let i = (this.hash[r] as number) & mask;
            while (index[i] !== 0) i = (i + 1) & mask;
            index[i] = r + 1;
        }
        this.index = index;
    }

    // The value being written, as {@link prepare} made it ready (packed in the codec's bytes, or its JSON).
    private nextTag = TAG_UNDEFINED;
    private nextBytes = 0;
    private nextJson: string | undefined;
    private nextLast = 0;

    /**
     * Turns `value` into what the store keeps, before anything changes: a value JSON refuses (a cycle, a bigint)
     * throws here, leaving no entry behind. `largeBytes`: the size past which a value is kept beside the arena.
     */
    private prepare(value: unknown, largeBytes: number): void {
        const last = lastSeenOf(value);
        this.nextJson = undefined;
        this.nextTag = TAG_UNDEFINED;
        this.nextBytes = 0;
        if (last !== undefined) {
            this.nextLast = last;
            if (ValueCodec.relativeFits(last) && !Object.is(last, -0)) {
                this.nextTag = TAG_LAST_INT;
                this.nextLast = this.codec.relative(last);
                this.nextBytes = varintLength(this.nextLast);
            } else {
                this.nextTag = TAG_LAST_SEEN;
                this.nextBytes = 8;
            }
        } else if (value !== undefined) {
            const packed = this.codec.encode(value);
            if (packed >= 0 && packed <= largeBytes) {
                this.nextTag = TAG_PACKED;
                this.nextBytes = varintLength(packed) + packed;
                this.nextLast = packed;
            } else {
                const json = JSON.stringify(value);
                const bytes = Buffer.byteLength(json, 'utf8'); // throws for what JSON leaves undefined (a function)
                this.nextJson = json;
                if (bytes > largeBytes) {
                    this.nextTag = TAG_LARGE;
                    this.nextLast = this.nextLargeId;
                    this.nextBytes = varintLength(this.nextLargeId);
                } else {
                    this.nextTag = TAG_JSON;
                    this.nextLast = bytes;
                    this.nextBytes = varintLength(bytes) + bytes;
                }
            }
        }
    }

    /** Writes the {@link prepare}d entry at `q` of `b`; returns where it ends. */
    /** `expires`: its {@link ValueCodec.relative} form, or -1 to keep `expiresMs` as a double. */
    private putEntry(
        b: Buffer,
        q: number,
        head: number,
        created: number,
        version: number,
        expiresMs: number,
        expires: number,
    ): number {
        const tag = this.nextTag;
        b[q++] = head;
        b[q++] = tag | (expires >= 0 ? EXPIRY_VARINT : 0);
        q = putVarint(b, q, created);
        q = putVarint(b, q, version);
        if (expires >= 0) q = putVarint(b, q, expires);
        else {
            b.writeDoubleLE(expiresMs, q);
            q += 8;
        }
        switch (tag) {
            case TAG_LAST_INT:
                return putVarint(b, q, this.nextLast);
            case TAG_LAST_SEEN:
                b.writeDoubleLE(this.nextLast, q);
                return q + 8;
            case TAG_PACKED: {
                const n = this.nextLast;
                q = putVarint(b, q, n);
                copyBytes(this.codec.bytes, 0, b, q, n);
                return q + n;
            }
            case TAG_JSON: {
                const n = this.nextLast;
                q = putVarint(b, q, n);
                utf8Write(b, this.nextJson as string, q, n);
                return q + n;
            }
            case TAG_LARGE:
                this.large.set(this.nextLargeId++, this.nextJson as string);
                return putVarint(b, q, this.nextLast);
            default:
                return q;
        }
    }

    /** The synchronous write behind {@link put} and {@link putMany}. */
    private write(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): PutResult {
        let partitionId = this.partitionIds.get(key.partition);
        let r = -1;
        let h = 0;
        let exists = false;
        if (partitionId === undefined && etag !== undefined) return { ok: false };
        // A new partition gets the next id: the key's hash is made with it, and no record has it yet.
        h = this.rowHash(partitionId ?? this.partitionNames.length, key.row, true);
        r = this.find(partitionId ?? this.partitionNames.length, h);
        if (r >= 0) {
            this.locate(r, this.headId, true);
            exists = this.eStart >= 0;
        }
        if (
            etag === undefined ? exists : !exists || `m${MemoryStateStore.versionAt(this.rChunk, this.eStart)}` !== etag
        )
            return { ok: false };
        const head = this.headId;
        this.prepare(value, head === 0 ? LARGE_VALUE_BYTES : GROUPED_LARGE_VALUE_BYTES);
        if (partitionId === undefined) {
            partitionId = this.partitionNames.length;
            this.partitionIds.set(key.partition, partitionId);
            this.partitionNames.push(key.partition);
            this.partitionCreated.push(0);
        }
        let created: number;
        if (exists) {
            created = this.createdAt(this.rChunk, this.eStart);
            this.dropLarge(this.rChunk, this.eStart);
        } else {
            created = this.partitionCreated[partitionId] as number;
            this.partitionCreated[partitionId] = created + 1;
        }
        const v = ++this.nextVersion;
        const expires = ValueCodec.relativeFits(expiresMs) ? this.codec.relative(expiresMs) : -1;
        const length =
            2 + varintLength(created) + varintLength(v) + (expires >= 0 ? varintLength(expires) : 8) + this.nextBytes;
        let chunk: Buffer;
        let off: number;
        let used: number; // bytes of the record now
        let s: number; // where the entry goes (relative)
        let e: number; // where what follows it starts (relative)
        if (r < 0) {
            r = this.newRecord(partitionId, h);
            const identity = this.scratchLength;
            used = identity + 1;
            const room = roomFor(used + length, false);
            const a = this.allocate(room);
            chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            off = a % CHUNK_BYTES;
            copyBytes(this.scratch, this.scratchStart, chunk, off, identity);
            chunk[off + identity] = 0;
            this.address[r] = a;
            this.room[r] = room;
            this.liveBytes += room;
            s = used;
            e = used;
        } else {
            chunk = this.rChunk;
            off = this.rOff;
            used = this.rUsed;
            s = exists ? this.eStart - off : used;
            e = exists ? this.eEnd - off : used;
            const need = used - (e - s) + length;
            const room = this.room[r] as number;
            if (need > room) {
                const moved = roomFor(need, true);
                const a = this.allocate(moved);
                const to = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                const toOff = a % CHUNK_BYTES;
                copyBytes(chunk, off, to, toOff, s);
                copyBytes(chunk, off + e, to, toOff + s + length, used - e);
                this.deadBytes += room;
                this.liveBytes += moved - room;
                this.address[r] = a;
                this.room[r] = moved;
                chunk = to;
                off = toOff;
            } else if (e < used && length !== e - s) chunk.copyWithin(off + s + length, off + e, off + used);
        }
        this.putEntry(chunk, off + s, head, created, v, expiresMs, expires);
        if (!exists) {
            const at = countAt(chunk, off);
            chunk[at] = (chunk[at] as number) + 1;
            this.entries++;
        }
        const bound = expirySeconds(expiresMs);
        if (bound < (this.expiresAfter[r] as number)) this.expiresAfter[r] = bound;
        if (this.deadBytes > MIN_DEAD_FOR_COMPACTION && this.deadBytes * 16 > this.liveBytes) this.compact();
        return { ok: true, etag: `m${v}` };
    }

    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        return Promise.resolve(this.write(key, value, etag, expiresMs));
    }

    putMany(writes: readonly StateWrite[]): Promise<readonly WriteResult[]> {
        const out = new Array<WriteResult>(writes.length);
        for (let i = 0; i < writes.length; i++) {
            const w = writes[i] as StateWrite;
            out[i] = this.write(w.key, w.value, w.etag, w.expiresMs);
        }
        return Promise.resolve(out);
    }

    /** The GUID of the 16 bytes after `off` of `b` (a record's mark), as text. */
    private static guidOf(b: Buffer, off: number): string {
        let guid = '';
        for (let i = 0; i < 16; i++) {
            if (i === 4 || i === 6 || i === 8 || i === 10) guid += '-';
            const x = b[off + 1 + i] as number;
            guid += (HEX_DIGITS[x >> 4] as string) + (HEX_DIGITS[x & 15] as string);
        }
        return guid;
    }

    /** In the order the partitions were first written, and within one, the order its keys were. */
    scan(rowPrefix: string, limit: number): Promise<{ key: StateKey; value: unknown }[]> {
        // Whole rows are compared as bytes (UTF-8 keeps prefixes); the rows of a GUID record by their head first, so
        // that only the matching rows are made into strings and decoded.
        const prefix = Buffer.from(rowPrefix, 'utf8');
        const p = prefix.length;
        // Per head: 1 matches whatever the GUID, 2 when the GUID's text starts with the rest of the prefix, 0 never.
        const headMatch = this.heads.map((h) =>
            rowPrefix.length <= h.length ? (h.startsWith(rowPrefix) ? 1 : 0) : rowPrefix.startsWith(h) ? 2 : 0,
        );
        const found: { partition: number; created: number; chunk: Buffer; at: number; row: string }[] = [];
        for (let r = 0; r < this.count; r++) {
            const a = this.address[r] as number;
            const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            const off = a % CHUNK_BYTES;
            let q = entriesStart(chunk, off);
            const n = chunk[q - 1] as number;
            const partition = this.partition[r] as number;
            if (chunk[off] !== GUID_RECORD) {
                if (n === 0) continue;
                const start = skipVarint(chunk, off);
                const bytes = q - 1 - start;
                // A packed GUID's bytes are not its text: a prefix reaching into it is compared on the row's text.
                const packed = bytes >= PACKED_GUID_BYTES && chunk[start + bytes - PACKED_GUID_BYTES] === GUID_MARK;
                const plain = packed ? bytes - PACKED_GUID_BYTES : bytes;
                const row = packed
                    ? utf8Slice(chunk, start, start + plain) + MemoryStateStore.guidOf(chunk, start + plain)
                    : undefined;
                if (p <= plain) {
                    if (p > 0 && chunk.compare(prefix, 0, p, start, start + p) !== 0) continue;
                } else if (row === undefined || !row.startsWith(rowPrefix)) continue;
                found.push({
                    partition,
                    created: this.createdAt(chunk, q),
                    chunk,
                    at: q,
                    row: row ?? utf8Slice(chunk, start, start + bytes),
                });
                continue;
            }
            let guid: string | undefined;
            for (let i = 0; i < n; i++) {
                const head = chunk[q] as number;
                const m = headMatch[head];
                if (m !== 0) {
                    guid ??= MemoryStateStore.guidOf(chunk, off);
                    const h = this.heads[head] as string;
                    if (m === 1 || guid.startsWith(rowPrefix.slice(h.length)))
                        found.push({ partition, created: this.createdAt(chunk, q), chunk, at: q, row: h + guid });
                }
                q = skipEntry(chunk, q);
            }
        }
        found.sort((x, y) => x.partition - y.partition || x.created - y.created);
        return Promise.resolve(
            found.slice(0, Math.max(0, limit)).map(({ partition, chunk, at, row }) => ({
                key: stateKey(this.partitionNames[partition] as string, row),
                value: this.valueAt(chunk, at),
            })),
        );
    }

    /**
     * Drops entries that expired before `eventTimeMs` (event time: replay and live agree). Only the records whose
     * expiry bound says they may hold one are read; a record left empty is dropped.
     */
    sweep(eventTimeMs: number): number {
        const bound = expirySeconds(eventTimeMs);
        let kept = 0;
        let dropped = 0;
        for (let r = 0; r < this.count; r++) {
            if ((this.expiresAfter[r] as number) <= bound) {
                const a = this.address[r] as number;
                const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                const off = a % CHUNK_BYTES;
                let q = entriesStart(chunk, off);
                const n = chunk[q - 1] as number;
                let to = q;
                let left = 0;
                let soonest = 0xffffffff;
                for (let i = 0; i < n; i++) {
                    const end = skipEntry(chunk, q);
                    const expires = this.expiryAt(chunk, q);
                    if (expires < eventTimeMs) {
                        this.dropLarge(chunk, q);
                        dropped++;
                    } else {
                        if (to !== q) chunk.copyWithin(to, q, end);
                        to += end - q;
                        left++;
                        const s = expirySeconds(expires);
                        if (s < soonest) soonest = s;
                    }
                    q = end;
                }
                chunk[countAt(chunk, off)] = left;
                this.expiresAfter[r] = soonest;
                if (left === 0) {
                    const room = this.room[r] as number;
                    this.deadBytes += room;
                    this.liveBytes -= room;
                    continue;
                }
            }
            if (kept !== r) {
                this.partition[kept] = this.partition[r] as number;
                this.hash[kept] = this.hash[r] as number;
                this.address[kept] = this.address[r] as number;
                this.room[kept] = this.room[r] as number;
                this.expiresAfter[kept] = this.expiresAfter[r] as number;
            }
            kept++;
        }
        this.entries -= dropped;
        if (kept !== this.count) {
            this.count = kept;
            let size = 1024;
            while (size * 3 < kept * 4) size *= 2;
            this.reindex(size);
        }
        if (this.deadBytes > MIN_DEAD_FOR_COMPACTION && this.deadBytes * 16 > this.liveBytes) this.compact();
        return dropped;
    }

    /**
     * Slides the live records down the arena in address order (a record never moves up, so each copy is within what
     * was already read) and frees the chunks left empty: no second arena, no spike.
     */
    private compact(): void {
        const n = this.count;
        let order: Int32Array | Float64Array;
        let recordOf: (i: number) => number;
        if (n < 1 << 21) {
            // address * 2^21 + record is exact in a double: a numeric sort of a Float64Array runs outside the heap,
            // where a sort with a comparator copies the array into it (16 MB at a million records, at every compaction).
            const keys = new Float64Array(n);
            for (let r = 0; r < n; r++) keys[r] = (this.address[r] as number) * 2097152 + r;
            keys.sort();
            order = keys;
            recordOf = (i) => (keys[i] as number) % 2097152;
        } else {
            const list = new Int32Array(n);
            for (let r = 0; r < n; r++) list[r] = r;
            list.sort((x, y) => (this.address[x] as number) - (this.address[y] as number));
            order = list;
            recordOf = (i) => list[i] as number;
        }
        let top = 0;
        for (let i = 0; i < order.length; i++) {
            const r = recordOf(i);
            const room = this.room[r] as number;
            let off = top % CHUNK_BYTES;
            if (off + room > CHUNK_BYTES) {
                top += CHUNK_BYTES - off;
                off = 0;
            }
            const a = this.address[r] as number;
            if (a !== top) {
                const from = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                const to = this.chunks[Math.floor(top / CHUNK_BYTES)] as Buffer;
                from.copy(to, off, a % CHUNK_BYTES, (a % CHUNK_BYTES) + room);
                this.address[r] = top;
            }
            top += room;
        }
        this.top = top;
        this.chunks.length = Math.ceil(top / CHUNK_BYTES);
        this.deadBytes = 0;
    }
}
