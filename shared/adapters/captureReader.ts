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
}

export interface CaptureListing {
    readonly files: readonly CaptureFile[];
    /** Files inside replayed directories that were not captures (README.md ...). */
    readonly ignored: readonly string[];
}

function unreadable(path: string, err: unknown): ResponderError {
    const e = err as NodeJS.ErrnoException;
    const why =
        e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
    return new ResponderError('INPUT.UNREADABLE', `cannot read '${path}': ${why}`, false, { cause: err });
}

async function walk(path: string, files: CaptureFile[], ignored: string[], explicit: boolean): Promise<void> {
    let s: Awaited<ReturnType<typeof stat>>;
    try {
        s = await stat(path);
    } catch (err) {
        throw unreadable(path, err);
    }
    if (s.isDirectory()) {
        let entries: Dirent[];
        try {
            entries = await readdir(path, { withFileTypes: true });
        } catch (err) {
            throw unreadable(path, err);
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
        throw unreadable(path, err);
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
    let raw: ReturnType<typeof createReadStream>;
    try {
        raw = createReadStream(file.path, { highWaterMark: 256 * 1024 });
    } catch (err) {
        throw unreadable(file.path, err);
    }
    const gz = await isGzip(file.path);
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
        if (err instanceof ResponderError) throw err;
        throw new ResponderError('INPUT.UNREADABLE', `cannot read '${file.path}': ${(err as Error).message}`, false, {
            cause: err,
        });
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
