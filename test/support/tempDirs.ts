// Scratch directories for a test file, removed when the file's tests are done: a test run leaves nothing in the
// system's temp folder. Importing this module registers the file's cleanup (a top-level afterAll).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

afterAll(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A new directory under os.tmpdir() named `<prefix>XXXXXX`, removed after the test file. */
export function tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
}
