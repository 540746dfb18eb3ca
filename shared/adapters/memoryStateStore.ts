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
 * - An entry is a position in typed-array columns (partition id, key hash, version, expiry, value tag, where its bytes
 *   are: 31 bytes, grown by a quarter at a time): no object per entry, nothing for the collector to walk or promote.
 * - Its row key and value are bytes in an arena of 1 MiB buffers (outside the V8 heap): the row as UTF-8 (a trailing
 *   GUID, the principal of most rule keys, as 16 bytes), the value in a binary form of plain JSON ({@link ValueCodec}:
 *   object keys interned, integers as varints; its JSON text for what is not plain data). A last-seen baseline
 *   (`{ last: <ms> }`, the most common state) keeps only its number. A rewrite that fits the record's room is made in
 *   place; otherwise the record moves and its old bytes are counted as dead, and the arena is compacted in place
 *   (records slid down, empty chunks freed) once the dead bytes pass an eighth of the live ones.
 * - Keys are found through an open-addressing index (an `Int32Array`), hashing and comparing the row's bytes.
 * - Partitions (vault names and the like: few) are interned to numbers.
 *
 * Reading returns a new value decoded from the bytes (as the Table store parses its JSON, so a rule can never change
 * the stored state through the object it was handed), and values round-trip exactly as they do through JSON in Table
 * Storage. About 120 bytes an entry on the diverse workload (columns, index, arena); see docs/state.md.
 */

const CHUNK_BYTES = 1 << 20;
/** A value longer than this (bytes of JSON) is kept as a string beside the arena rather than in it. */
const LARGE_VALUE_BYTES = 48 * 1024;
/** Dead arena bytes tolerated before a compaction, whatever the live ones. */
const MIN_DEAD_FOR_COMPACTION = 4 * CHUNK_BYTES;

/** How an entry holds its value. */
const TAG_UNDEFINED = 0; // `undefined`: no bytes
const TAG_JSON = 1; // JSON text in the arena, after the row
const TAG_LAST_SEEN = 2; // `{ last: n }`: n as 8 bytes (a double) in the arena, after the row
const TAG_LARGE = 3; // JSON text in `large` (the arena holds the row only)
const TAG_PACKED = 4; // the value in the store's binary form (see {@link ValueCodec}) in the arena, after the row

/**
 * A row ending in a canonical (lower-case) GUID after other text keeps the GUID as 16 bytes behind this mark, 17 bytes
 * instead of 36: `mass|`, `enum|`, `app|` and `user|` rows are mostly a principal's id. 0xff never occurs in UTF-8, so
 * a packed row never equals, or hashes as, the bytes of another row.
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
const V_SMALL = 0x80; // 0x80 + n: an integer 0 <= n < 128
/** Object keys interned at most (state keys are field names; past this, keys are written as strings). */
const MAX_INTERNED_KEYS = 4096;
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
    private src: Buffer = this.buf;
    private at = 0;

    /** The bytes of the last {@link encode}. */
    get bytes(): Buffer {
        return this.buf;
    }

    /** Object keys interned so far (tests). */
    get internedKeys(): number {
        return this.keys.length;
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

    private number(v: number): void {
        this.ensure(10);
        const b = this.buf;
        if (!Number.isFinite(v)) b[this.pos++] = V_NULL;
        else if (Number.isInteger(v) && v >= 0 && v < 128)
            b[this.pos++] = V_SMALL + v; // -0 too, as JSON makes it 0
        else if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
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
                this.string(v);
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
        const b = this.src;
        let n = 0;
        let scale = 1;
        for (;;) {
            const x = b[this.at++] as number;
            n += (x & 127) * scale;
            if (x < 128) return n;
            scale *= 128;
        }
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
            case V_DOUBLE: {
                const d = this.src.readDoubleLE(this.at);
                this.at += 8;
                return d;
            }
            case V_STRING:
                return this.readString();
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
/** Longest row, in UTF-8 bytes (a 16-bit column; rows are bounded to 160 characters by stateKey). */
const MAX_ROW_BYTES = 1024;

/**
 * Room given to a record of `bytes`: exactly that the first time (most state is written once, or rewritten at the same
 * length), a quarter more when it has outgrown its room, so that a window that grows is not moved on every item.
 */
function roomFor(bytes: number, moving: boolean): number {
    return moving ? bytes + (bytes >> 2) + 8 : bytes;
}

function grown<T extends Int32Array | Uint32Array | Uint16Array | Float64Array | Uint8Array>(a: T, size: number): T {
    const b = new (a.constructor as new (n: number) => T)(size);
    b.set(a);
    return b;
}

export class MemoryStateStore implements StateStore {
    // Interned partitions.
    private readonly partitionIds = new Map<string, number>();
    private readonly partitionNames: string[] = [];

    // Entry columns; entries 0 .. count-1 are live (a sweep closes the gaps it makes).
    private count = 0;
    private capacity = 0;
    private partition = new Int32Array(0);
    private hash = new Int32Array(0);
    private rowBytes = new Uint16Array(0);
    // Both 16-bit: a record is at most a row (1 KiB) and a value of 48 KiB, with a quarter more room.
    private valueBytes = new Uint16Array(0);
    private room = new Uint16Array(0);
    private tag = new Uint8Array(0);
    private address = new Uint32Array(0); // chunk * CHUNK_BYTES + offset
    /** 32-bit until the store has made 2^32 writes, then 64-bit (a double: exact to 2^53). */
    private version: Uint32Array | Float64Array = new Uint32Array(0);
    private expires = new Float64Array(0);

    /** JSON of values over {@link LARGE_VALUE_BYTES}, by entry. */
    private large = new Map<number, string>();

    // Open-addressing index: entry + 1, 0 for an empty slot; at most half full.
    private index = new Int32Array(1024);

    // Arena.
    private chunks: Buffer[] = [];
    private top = 0; // next free address
    private liveBytes = 0;
    private deadBytes = 0;

    private nextVersion = 0;
    private scratch = Buffer.allocUnsafe(4096);
    private scratchLength = 0;
    private readonly codec = new ValueCodec();

    /** Live entries. */
    get size(): number {
        return this.count;
    }

    /** Bytes this store holds outside the V8 heap (arena chunks) and in its columns and index (tests, benchmark). */
    get footprintBytes(): number {
        const columns = this.capacity * (4 + 4 + 2 + 2 + 2 + 1 + 4 + this.version.BYTES_PER_ELEMENT + 8);
        return this.chunks.length * CHUNK_BYTES + columns + this.index.byteLength;
    }

    /** Puts the row's UTF-8 in the scratch buffer and returns its hash with the partition's. */
    private rowHash(partitionId: number, row: string): number {
        if (row.length * 3 > this.scratch.length) this.scratch = Buffer.allocUnsafe(row.length * 3 + 1024);
        let n = utf8Write(this.scratch, row, 0, this.scratch.length);
        if (endsWithGuid(row)) {
            // The GUID's 36 characters are its last 36 bytes: 16 bytes behind the mark instead.
            const s = this.scratch;
            let at = n - 36;
            s[at++] = GUID_MARK;
            const b = row.length - 36;
            for (let i = 0; i < 36; i++) {
                if (i === 8 || i === 13 || i === 18 || i === 23) continue;
                const hi = hexValue(row.charCodeAt(b + i));
                const lo = hexValue(row.charCodeAt(b + ++i));
                s[at++] = (hi << 4) | lo;
            }
            n = at;
        }
        if (n > MAX_ROW_BYTES)
            throw new Error(`state row of ${n} bytes: longer than the ${MAX_ROW_BYTES} a store holds`);
        this.scratchLength = n;
        let h = Math.imul(partitionId ^ 0x811c9dc5, 16777619);
        const s = this.scratch;
        for (let i = 0; i < n; i++) h = Math.imul(h ^ (s[i] as number), 16777619);
        // FNV-1a's low bits (the index slot) mix poorly: finish with a multiply-shift.
        h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
        return (h ^ (h >>> 12)) | 0;
    }

    /** The entry of a key, or -1; leaves the row in the scratch buffer and the probe slot in `slot`. */
    private slot = 0;
    private find(partitionId: number, h: number): number {
        const mask = this.index.length - 1;
        let i = h & mask;
        const n = this.scratchLength;
        for (;;) {
            const e = (this.index[i] as number) - 1;
            if (e < 0) {
                this.slot = i;
                return -1;
            }
            if (this.hash[e] === h && this.partition[e] === partitionId && this.rowBytes[e] === n) {
                if (n === 0) {
                    this.slot = i;
                    return e;
                }
                const a = this.address[e] as number;
                const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                const off = a % CHUNK_BYTES;
                if (this.scratch.compare(chunk, off, off + n, 0, n) === 0) {
                    this.slot = i;
                    return e;
                }
            }
            i = (i + 1) & mask;
        }
    }

    private entryOf(key: StateKey): number {
        const partitionId = this.partitionIds.get(key.partition);
        if (partitionId === undefined) return -1;
        return this.find(partitionId, this.rowHash(partitionId, key.row));
    }

    private valueOf(e: number): unknown {
        const tag = this.tag[e];
        if (tag === TAG_LAST_SEEN) {
            const a = this.address[e] as number;
            const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            return { last: chunk.readDoubleLE((a % CHUNK_BYTES) + (this.rowBytes[e] as number)) };
        }
        if (tag === TAG_PACKED) {
            const a = this.address[e] as number;
            const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            return this.codec.decode(chunk, (a % CHUNK_BYTES) + (this.rowBytes[e] as number));
        }
        if (tag === TAG_JSON) {
            const a = this.address[e] as number;
            const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            const off = (a % CHUNK_BYTES) + (this.rowBytes[e] as number);
            return JSON.parse(utf8Slice(chunk, off, off + (this.valueBytes[e] as number))) as unknown;
        }
        if (tag === TAG_LARGE) return JSON.parse(this.large.get(e) as string) as unknown;
        return undefined;
    }

    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        const out = new Array<StoredState | undefined>(keys.length);
        for (let i = 0; i < keys.length; i++) {
            const e = this.entryOf(keys[i] as StateKey);
            out[i] = e < 0 ? undefined : { value: this.valueOf(e), etag: `m${this.version[e] as number}` };
        }
        return Promise.resolve(out);
    }

    /** Reserves `bytes` of arena that do not cross a chunk boundary; returns their address. */
    private allocate(bytes: number): number {
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

    private newEntry(partitionId: number, h: number): number {
        if (this.count === this.capacity) {
            // A quarter more each time up to 64Ki entries at a time, not twice: little slack (a million entries take
            // 31 MB of columns), and the copy made while growing needs the old columns only once more, not twice.
            const c = Math.max(1024, this.capacity + Math.min(this.capacity >> 2, 1 << 16));
            this.partition = grown(this.partition, c);
            this.hash = grown(this.hash, c);
            this.rowBytes = grown(this.rowBytes, c);
            this.valueBytes = grown(this.valueBytes, c);
            this.room = grown(this.room, c);
            this.tag = grown(this.tag, c);
            this.address = grown(this.address, c);
            this.version = grown(this.version, c);
            this.expires = grown(this.expires, c);
            this.capacity = c;
        }
        const e = this.count++;
        this.partition[e] = partitionId;
        this.hash[e] = h;
        this.rowBytes[e] = this.scratchLength;
        this.valueBytes[e] = 0;
        this.room[e] = 0;
        this.address[e] = 0;
        this.tag[e] = TAG_UNDEFINED;
        this.large.delete(e);
        this.index[this.slot] = e + 1;
        if (this.count * 2 > this.index.length) this.reindex(this.index.length * 2);
        return e;
    }

    private reindex(size: number): void {
        const index = new Int32Array(size);
        const mask = size - 1;
        for (let e = 0; e < this.count; e++) {
            let i = (this.hash[e] as number) & mask;
            while (index[i] !== 0) i = (i + 1) & mask;
            index[i] = e + 1;
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
     * throws here, leaving no entry behind.
     */
    private prepare(value: unknown): void {
        const last = lastSeenOf(value);
        this.nextJson = undefined;
        this.nextTag = TAG_UNDEFINED;
        this.nextBytes = 0;
        if (last !== undefined) {
            this.nextTag = TAG_LAST_SEEN;
            this.nextBytes = 8;
            this.nextLast = last;
        } else if (value !== undefined) {
            const packed = this.codec.encode(value);
            if (packed >= 0 && packed <= LARGE_VALUE_BYTES) {
                this.nextTag = TAG_PACKED;
                this.nextBytes = packed;
            } else {
                const json = JSON.stringify(value);
                const bytes = Buffer.byteLength(json, 'utf8'); // throws for what JSON leaves undefined (a function)
                this.nextJson = json;
                this.nextBytes = bytes;
                this.nextTag = bytes > LARGE_VALUE_BYTES ? TAG_LARGE : TAG_JSON;
            }
        }
    }

    /** Stores the {@link prepare}d value in entry `e`, whose row is in the scratch buffer when `e` is new (room 0). */
    private setValue(e: number): void {
        const tag = this.nextTag;
        const json = this.nextJson;
        const last = this.nextLast;
        let bytes = this.nextBytes;
        if (tag === TAG_LARGE) this.large.set(e, json as string);
        else if (this.tag[e] === TAG_LARGE) this.large.delete(e);
        const rowBytes = this.rowBytes[e] as number;
        if (tag === TAG_LARGE) bytes = 0;
        const need = rowBytes + bytes;
        const room = this.room[e] as number;
        let a = this.address[e] as number;
        if (need > room) {
            const r = roomFor(need, room !== 0);
            const moved = this.allocate(r);
            const to = this.chunks[Math.floor(moved / CHUNK_BYTES)] as Buffer;
            if (room === 0) copyBytes(this.scratch, 0, to, moved % CHUNK_BYTES, rowBytes);
            else {
                const from = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                copyBytes(from, a % CHUNK_BYTES, to, moved % CHUNK_BYTES, rowBytes);
                this.deadBytes += room;
                this.liveBytes -= room;
            }
            this.liveBytes += r;
            this.address[e] = moved;
            this.room[e] = r;
            a = moved;
        }
        if (tag === TAG_PACKED) {
            const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            copyBytes(this.codec.bytes, 0, chunk, (a % CHUNK_BYTES) + rowBytes, bytes);
        } else if (tag === TAG_JSON) {
            const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            utf8Write(chunk, json as string, (a % CHUNK_BYTES) + rowBytes, bytes);
        } else if (tag === TAG_LAST_SEEN) {
            const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
            chunk.writeDoubleLE(last, (a % CHUNK_BYTES) + rowBytes);
        }
        this.valueBytes[e] = bytes;
        this.tag[e] = tag;
    }

    /** The synchronous write behind {@link put} and {@link putMany}. */
    private write(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): PutResult {
        let partitionId = this.partitionIds.get(key.partition);
        let e = -1;
        let h = 0;
        if (partitionId !== undefined) {
            h = this.rowHash(partitionId, key.row);
            e = this.find(partitionId, h);
        }
        if (etag === undefined ? e >= 0 : e < 0 || `m${this.version[e] as number}` !== etag) return { ok: false };
        this.prepare(value);
        if (partitionId === undefined) {
            partitionId = this.partitionNames.length;
            this.partitionIds.set(key.partition, partitionId);
            this.partitionNames.push(key.partition);
            h = this.rowHash(partitionId, key.row);
            this.find(partitionId, h);
        }
        if (e < 0) e = this.newEntry(partitionId, h);
        this.setValue(e);
        const v = ++this.nextVersion;
        if (v > 0xffffffff && this.version instanceof Uint32Array) this.version = Float64Array.from(this.version);
        this.version[e] = v;
        this.expires[e] = expiresMs;
        if (this.deadBytes > MIN_DEAD_FOR_COMPACTION && this.deadBytes * 8 > this.liveBytes) this.compact();
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

    private rowOf(e: number): string {
        const n = this.rowBytes[e] as number;
        if (n === 0) return '';
        const a = this.address[e] as number;
        const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
        const off = a % CHUNK_BYTES;
        if (n < PACKED_GUID_BYTES || chunk[off + n - PACKED_GUID_BYTES] !== GUID_MARK)
            return utf8Slice(chunk, off, off + n);
        let guid = '';
        for (let i = 0; i < 16; i++) {
            if (i === 4 || i === 6 || i === 8 || i === 10) guid += '-';
            const x = chunk[off + n - 16 + i] as number;
            guid += (HEX_DIGITS[x >> 4] as string) + (HEX_DIGITS[x & 15] as string);
        }
        return utf8Slice(chunk, off, off + n - PACKED_GUID_BYTES) + guid;
    }

    /** In the order the partitions were first written, and within one, the order its keys were. */
    scan(rowPrefix: string, limit: number): Promise<{ key: StateKey; value: unknown }[]> {
        // Rows are compared as bytes (UTF-8 keeps prefixes): only the matching ones are decoded.
        const prefix = Buffer.from(rowPrefix, 'utf8');
        const p = prefix.length;
        const found: { e: number; row: string }[] = [];
        for (let e = 0; e < this.count; e++) {
            const n = this.rowBytes[e] as number;
            if (p > 0) {
                const a = this.address[e] as number;
                const chunk = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                const off = a % CHUNK_BYTES;
                // A packed GUID's bytes are not its text: a prefix reaching into it is compared on the row's text.
                const packed = n >= PACKED_GUID_BYTES && chunk[off + n - PACKED_GUID_BYTES] === GUID_MARK;
                const plain = packed ? n - PACKED_GUID_BYTES : n;
                if (p <= plain) {
                    if (chunk[off] !== prefix[0] || chunk.compare(prefix, 0, p, off, off + p) !== 0) continue;
                } else if (!packed || !this.rowOf(e).startsWith(rowPrefix)) continue;
            }
            found.push({ e, row: this.rowOf(e) });
        }
        found.sort((x, y) => (this.partition[x.e] as number) - (this.partition[y.e] as number) || x.e - y.e);
        return Promise.resolve(
            found.slice(0, Math.max(0, limit)).map(({ e, row }) => ({
                key: stateKey(this.partitionNames[this.partition[e] as number] as string, row),
                value: this.valueOf(e),
            })),
        );
    }

    /** Drops entries that expired before `eventTimeMs` (event time: replay and live agree). */
    sweep(eventTimeMs: number): number {
        let kept = 0;
        const large = new Map<number, string>();
        for (let e = 0; e < this.count; e++) {
            if ((this.expires[e] as number) < eventTimeMs) {
                this.deadBytes += this.room[e] as number;
                this.liveBytes -= this.room[e] as number;
                continue;
            }
            if (kept !== e) {
                this.partition[kept] = this.partition[e] as number;
                this.hash[kept] = this.hash[e] as number;
                this.rowBytes[kept] = this.rowBytes[e] as number;
                this.valueBytes[kept] = this.valueBytes[e] as number;
                this.room[kept] = this.room[e] as number;
                this.tag[kept] = this.tag[e] as number;
                this.address[kept] = this.address[e] as number;
                this.version[kept] = this.version[e] as number;
                this.expires[kept] = this.expires[e] as number;
            }
            const json = this.large.get(e);
            if (json !== undefined) large.set(kept, json);
            kept++;
        }
        const dropped = this.count - kept;
        if (dropped === 0) return 0;
        this.count = kept;
        this.large = large;
        let size = 1024;
        while (size < kept * 2) size *= 2;
        this.reindex(size);
        if (this.deadBytes > MIN_DEAD_FOR_COMPACTION && this.deadBytes * 8 > this.liveBytes) this.compact();
        return dropped;
    }

    /**
     * Slides the live records down the arena in address order (a record never moves up, so each copy is within what
     * was already read) and frees the chunks left empty: no second arena, no spike.
     */
    private compact(): void {
        const n = this.count;
        let order: Int32Array | Float64Array;
        let entryOf: (i: number) => number;
        if (n < 1 << 21) {
            // address * 2^21 + entry is exact in a double: a numeric sort of a Float64Array runs outside the heap,
            // where a sort with a comparator copies the array into it (16 MB at a million entries, at every compaction).
            const keys = new Float64Array(n);
            for (let e = 0; e < n; e++) keys[e] = (this.address[e] as number) * 2097152 + e;
            keys.sort();
            order = keys;
            entryOf = (i) => (keys[i] as number) % 2097152;
        } else {
            const list = new Int32Array(n);
            for (let e = 0; e < n; e++) list[e] = e;
            list.sort((x, y) => (this.address[x] as number) - (this.address[y] as number));
            order = list;
            entryOf = (i) => list[i] as number;
        }
        let top = 0;
        for (let i = 0; i < order.length; i++) {
            const e = entryOf(i);
            const r = this.room[e] as number;
            if (r === 0) continue;
            let off = top % CHUNK_BYTES;
            if (off + r > CHUNK_BYTES) {
                top += CHUNK_BYTES - off;
                off = 0;
            }
            const a = this.address[e] as number;
            if (a !== top) {
                const from = this.chunks[Math.floor(a / CHUNK_BYTES)] as Buffer;
                const to = this.chunks[Math.floor(top / CHUNK_BYTES)] as Buffer;
                const used = (this.rowBytes[e] as number) + (this.valueBytes[e] as number);
                from.copy(to, off, a % CHUNK_BYTES, (a % CHUNK_BYTES) + used);
                this.address[e] = top;
            }
            top += r;
        }
        this.top = top;
        this.chunks.length = Math.ceil(top / CHUNK_BYTES);
        this.deadBytes = 0;
    }
}
