import { createReadStream, type Dirent } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { BatchItem } from '../app/pipeline';
import { ResponderError } from '../core/errors';
import { JsonSplitter } from './jsonSplitter';

/** File names picked up when a directory is replayed; a file named explicitly is read whatever its name. */
const CAPTURE_FILE = /\.(json|jsonl|ndjson|log)(\.gz)?$|\.gz$/i;

export interface CaptureFile {
    readonly path: string;
    readonly size: number;
    /** Why the file cannot be read (found while listing a directory): it is replayed as one rejected item. */
    readonly unreadable?: string;
}

/** Reasons of the rejected items that stand for a damaged or unreadable file (or its lost remainder) start so. */
export const DAMAGED_INPUT = 'damaged input: ';

/** True for the reason of a rejected item that stands for a damaged or unreadable file. */
export function isDamagedInput(reason: string): boolean {
    return reason.startsWith(DAMAGED_INPUT);
}

export interface CaptureListing {
    readonly files: readonly CaptureFile[];
    /** Files inside replayed directories that were not captures (README.md ...). */
    readonly ignored: readonly string[];
}

function whyUnreadable(err: unknown): string {
    const e = err as NodeJS.ErrnoException;
    return e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
}

function unreadable(path: string, err: unknown): ResponderError {
    return new ResponderError('INPUT.UNREADABLE', `cannot read '${path}': ${whyUnreadable(err)}`, false, {
        cause: err,
    });
}

async function walk(path: string, files: CaptureFile[], ignored: string[], explicit: boolean): Promise<void> {
    // A path named on the command line is checked before any output (a usage error); a file or folder found inside
    // a replayed directory that cannot be read is replayed as one rejected item, and the others are still processed.
    let s: Awaited<ReturnType<typeof stat>>;
    try {
        s = await stat(path);
    } catch (err) {
        if (explicit) throw unreadable(path, err);
        files.push({ path, size: 0, unreadable: whyUnreadable(err) });
        return;
    }
    if (s.isDirectory()) {
        let entries: Dirent[];
        try {
            entries = await readdir(path, { withFileTypes: true });
        } catch (err) {
            if (explicit) throw unreadable(path, err);
            files.push({ path, size: 0, unreadable: `cannot list the folder: ${whyUnreadable(err)}` });
            return;
        }
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        for (const e of entries) {
            if (e.name.startsWith('.')) continue;
            await walk(join(path, e.name), files, ignored, false);
        }
        return;
    }
    if (!s.isFile()) {
        if (explicit) throw new ResponderError('INPUT.UNREADABLE', `cannot read '${path}': not a regular file`);
        ignored.push(path);
        return;
    }
    if (!explicit && !CAPTURE_FILE.test(path)) {
        ignored.push(path);
        return;
    }
    // Prove readability up front, so that a bad path fails before any output is written.
    try {
        const h = await open(path, 'r');
        await h.close();
    } catch (err) {
        if (explicit) throw unreadable(path, err);
        files.push({ path, size: s.size, unreadable: whyUnreadable(err) });
        return;
    }
    files.push({ path, size: s.size });
}

/** Resolves the command-line paths (files and directories, recursively, in name order) to capture files. */
export async function listCaptures(paths: readonly string[]): Promise<CaptureListing> {
    const files: CaptureFile[] = [];
    const ignored: string[] = [];
    for (const p of paths) await walk(p, files, ignored, true);
    return { files, ignored };
}

async function isGzip(path: string): Promise<boolean> {
    const h = await open(path, 'r');
    try {
        const buf = Buffer.alloc(2);
        const { bytesRead } = await h.read(buf, 0, 2, 0);
        return bytesRead === 2 && buf[0] === 0x1f && buf[1] === 0x8b;
    } finally {
        await h.close();
    }
}

/** A group of items read from one file, plus how many compressed bytes of it have been consumed so far. */
export interface CaptureChunk {
    readonly items: readonly BatchItem[];
    readonly bytesRead: number;
}

/** How {@link readCapture} groups items. */
export interface CaptureGrouping {
    /** Flush a group once it holds this many items (default: no item bound). */
    readonly maxItems?: number;
    /** Flush a group once its items hold this many characters (default 1 MiB). */
    readonly maxGroupChars?: number;
}

/**
 * Streams one capture file (gzip detected by content) as groups of items: top-level JSON values, each an Event Hubs
 * body (`{"records": [...]}`) or, in JSON Lines archives such as PT1H.json, a bare record. A group closes as soon as
 * it reaches `maxItems` items or `maxGroupChars` characters, whatever the read chunk it came in (a read chunk of
 * 256 KiB often holds many bodies). Memory stays bounded by the group size and the largest single item, whatever the
 * file size.
 */
export async function* readCapture(file: CaptureFile, grouping: CaptureGrouping = {}): AsyncGenerator<CaptureChunk> {
    const maxItems = grouping.maxItems ?? Number.POSITIVE_INFINITY;
    const maxGroupChars = grouping.maxGroupChars ?? 1 << 20;
    if (!(maxItems >= 1)) throw new RangeError('maxItems must be at least 1');
    if (file.unreadable !== undefined) {
        yield { items: [damagedItem(file.path, 0, `cannot read the file: ${file.unreadable}`, '')], bytesRead: 0 };
        return;
    }
    let gz: boolean;
    try {
        gz = await isGzip(file.path);
    } catch (err) {
        yield { items: [damagedItem(file.path, 0, `cannot read the file: ${whyUnreadable(err)}`, '')], bytesRead: 0 };
        return;
    }
    const raw = createReadStream(file.path, { highWaterMark: 256 * 1024 });
    const text = gz ? raw.pipe(createGunzip()) : raw;
    if (gz) raw.on('error', (err) => text.destroy(err));
    text.setEncoding('utf8');
    const splitter = new JsonSplitter();
    let group: BatchItem[] = [];
    let groupChars = 0;
    const toItem = (it: { text: string; line: number; problem?: string }): BatchItem => {
        const source = `${file.path}:${it.line}`;
        // A broken item still goes through the pipeline, which rejects and quarantines it with the splitter's reason.
        return it.problem === undefined ? { body: it.text, source } : { body: it.text, source, problem: it.problem };
    };
    let failure: unknown;
    try {
        for await (const chunk of text) {
            for (const it of splitter.push(chunk as string)) {
                group.push(toItem(it));
                groupChars += it.text.length;
                if (group.length >= maxItems || groupChars >= maxGroupChars) {
                    yield { items: group, bytesRead: raw.bytesRead };
                    group = [];
                    groupChars = 0;
                }
            }
        }
    } catch (err) {
        failure = err;
    }
    if (failure !== undefined) {
        // A damaged file (truncated or corrupt gzip, a read error): the items completed before the damage are kept;
        // the item cut by it and the rest of the file are one rejected item that names the position, and the replay
        // goes on with the next file.
        raw.destroy();
        const cut = splitter.end()[0];
        const what = gz ? `${describeGzipError(failure)} (gzip)` : `read failed: ${whyUnreadable(failure)}`;
        const where =
            `after ${raw.bytesRead} byte(s) of the file` +
            (gz ? `, at decompressed line ${splitter.lineNumber}` : `, at line ${splitter.lineNumber}`);
        const item = damagedItem(
            file.path,
            cut?.line ?? splitter.lineNumber,
            `${what} ${where}; the rest of the file is lost`,
            cut?.text ?? '',
        );
        if (group.length > 0) yield { items: group, bytesRead: raw.bytesRead };
        yield { items: [item], bytesRead: file.size };
        return;
    }
    for (const it of splitter.end()) {
        group.push(toItem(it));
        if (group.length >= maxItems) {
            yield { items: group, bytesRead: raw.bytesRead };
            group = [];
        }
    }
    if (group.length > 0) yield { items: group, bytesRead: raw.bytesRead };
}

function damagedItem(path: string, line: number, problem: string, body: string): BatchItem {
    return { body, source: line > 0 ? `${path}:${line}` : path, problem: `${DAMAGED_INPUT}${problem}` };
}

function describeGzipError(err: unknown): string {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'Z_BUF_ERROR') return 'truncated file: unexpected end of the compressed data';
    if (e.code === 'Z_DATA_ERROR') return `corrupt compressed data (${e.message})`;
    return `read failed: ${whyUnreadable(err)}`;
}
