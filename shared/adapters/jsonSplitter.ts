/**
 * Splits a stream of JSON text into top-level items without parsing them, so that a capture of any size replays in
 * constant memory. Accepts one JSON value, concatenated values, JSON Lines, or one top-level array (whose elements
 * become the items). A broken value is emitted as broken and scanning resumes at the next line that starts with `{`.
 */

export interface SplitItem {
    /** The item's text; for a broken or oversized item, its beginning only. */
    readonly text: string;
    /** 1-based line where the item starts. */
    readonly line: number;
    /** Why the item cannot be parsed, when the splitter already knows. */
    readonly problem?: string;
}

const OPEN_OBJ = 123; // {
const CLOSE_OBJ = 125; // }
const OPEN_ARR = 91; // [
const CLOSE_ARR = 93; // ]
const QUOTE = 34;
const BACKSLASH = 92;
const COMMA = 44;
const NEWLINE = 10;

function isSpace(c: number): boolean {
    return c === 32 || c === 10 || c === 13 || c === 9 || c === 0xfeff;
}

export class JsonSplitter {
    private mode: 'unknown' | 'values' | 'array' = 'unknown';
    private depth = 0;
    private inString = false;
    private escape = false;
    /** Kind of the current item: 0 none, 1 container, 2 string, 3 scalar/garbage. */
    private itemKind = 0;
    private parts: string[] = [];
    private partsLength = 0;
    private oversized = false;
    private line = 1;
    private itemLine = 1;
    private atLineStart = true;
    private arrayClosed = false;

    constructor(private readonly maxItemChars = 16 * 1024 * 1024) {}

    /** The 1-based line reached so far (where a damaged input broke off). */
    get lineNumber(): number {
        return this.line;
    }

    /** Feeds a chunk; returns the items completed in it. */
    push(chunk: string): SplitItem[] {
        const out: SplitItem[] = [];
        // Start of the current item's text inside this chunk (0 when an item continues from the previous chunk).
        let start = this.itemKind !== 0 ? 0 : -1;
        const n = chunk.length;
        for (let i = 0; i < n; i++) {
            const c = chunk.charCodeAt(i);
            const lineStart = this.atLineStart;
            this.atLineStart = c === NEWLINE;
            if (this.itemKind === 0) {
                if (isSpace(c)) {
                    if (c === NEWLINE) this.line++;
                    continue;
                }
                if (this.mode === 'unknown') {
                    if (c === OPEN_ARR) {
                        this.mode = 'array';
                        continue;
                    }
                    this.mode = 'values';
                }
                if (this.mode === 'array') {
                    if (c === COMMA) continue;
                    if (c === CLOSE_ARR && !this.arrayClosed) {
                        this.arrayClosed = true;
                        continue;
                    }
                }
                this.itemLine = this.line;
                start = i;
                if (c === OPEN_OBJ || c === OPEN_ARR) {
                    this.itemKind = 1;
                    this.depth = 1;
                } else if (c === QUOTE) {
                    this.itemKind = 2;
                    this.inString = true;
                } else {
                    this.itemKind = 3;
                }
                continue;
            }
            if (c === NEWLINE) this.line++;
            if (this.inString) {
                if (this.escape) this.escape = false;
                else if (c === BACKSLASH) this.escape = true;
                else if (c === QUOTE) {
                    this.inString = false;
                    if (this.itemKind === 2) {
                        this.finish(chunk, start, i + 1, out);
                        start = -1;
                    }
                } else if (c === NEWLINE && this.mode === 'values') {
                    // A raw newline cannot be inside a JSON string: the value is broken.
                    this.finish(chunk, start, i, out, 'unterminated string');
                    start = -1;
                } else if (c !== NEWLINE) {
                    // Most of a record is string content: skip its plain characters at once, up to the next quote,
                    // backslash or newline (the loop's next step handles that one). A plain character changes no
                    // state but `atLineStart`, which is already false after this one.
                    let j = i + 1;
                    while (j < n) {
                        const d = chunk.charCodeAt(j);
                        if (d === QUOTE || d === BACKSLASH || d === NEWLINE) break;
                        j++;
                    }
                    i = j - 1;
                }
                continue;
            }
            if (this.itemKind === 3) {
                const ends = this.mode === 'array' ? c === COMMA || c === CLOSE_ARR || c === NEWLINE : c === NEWLINE;
                if (ends) {
                    this.finish(chunk, start, i, out);
                    start = -1;
                    if (c === CLOSE_ARR) this.arrayClosed = true;
                }
                continue;
            }
            // Inside a container.
            if (c === OPEN_OBJ && lineStart && this.mode === 'values') {
                // A new top-level object at column 0 while the previous one is still open: the previous one is broken.
                this.finish(chunk, start, i, out, 'unterminated JSON value');
                this.itemLine = this.line;
                start = i;
                this.itemKind = 1;
                this.depth = 1;
                continue;
            }
            if (c === QUOTE) this.inString = true;
            else if (c === OPEN_OBJ || c === OPEN_ARR) this.depth++;
            else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
                this.depth--;
                if (this.depth === 0) {
                    this.finish(chunk, start, i + 1, out);
                    start = -1;
                }
            }
        }
        if (this.itemKind !== 0) this.keep(chunk, start, n);
        return out;
    }

    /** Ends the input; returns a trailing incomplete item as broken. */
    end(): SplitItem[] {
        if (this.itemKind === 0) return [];
        const out: SplitItem[] = [];
        const problem = this.itemKind === 3 ? undefined : 'unexpected end of input inside a JSON value';
        this.finish('', 0, 0, out, problem);
        return out;
    }

    private keep(chunk: string, from: number, to: number): void {
        if (this.oversized || to <= from) return;
        const piece = chunk.slice(from, to);
        this.partsLength += piece.length;
        if (this.partsLength > this.maxItemChars) {
            this.oversized = true;
            // Keep only the beginning, for the excerpt.
            const head = this.parts.join('').slice(0, 4096);
            this.parts = [head];
            return;
        }
        this.parts.push(piece);
    }

    private finish(chunk: string, from: number, to: number, out: SplitItem[], problem?: string): void {
        this.keep(chunk, from, to);
        const text = this.parts.length === 1 ? (this.parts[0] as string) : this.parts.join('');
        const p = this.oversized ? `item larger than ${this.maxItemChars} characters` : problem;
        out.push(p === undefined ? { text, line: this.itemLine } : { text, line: this.itemLine, problem: p });
        this.parts = [];
        this.partsLength = 0;
        this.oversized = false;
        this.itemKind = 0;
        this.depth = 0;
        this.inString = false;
        this.escape = false;
    }
}
