/**
 * Writes samples/sample-day.jsonl.gz: the bundled sample day (SAMPLE_DAY), one Event Hubs body per line, gzip level 9.
 * The output is byte-for-byte reproducible: the generator is seeded and zlib writes a zero mtime in the gzip header.
 *
 * Usage: node dist/scripts/generateSample.js [output path]   (default samples/sample-day.jsonl.gz, from the cwd)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gzipSync } from 'node:zlib';
import { generateBatches, SAMPLE_DAY, sampleInventory } from '../shared/sample/trafficGenerator';

export const SAMPLE_PATH = 'samples/sample-day.jsonl.gz';
export const INVENTORY_PATH = 'samples/vaults.json';

/** The vault inventory of the sample, as `kvr replay --vaults` reads it. */
export function inventoryText(): string {
    return `${JSON.stringify(sampleInventory(), null, 2)}\n`;
}

/** The sample as text (JSON Lines, a newline after every body) with its counts. */
export function sampleContent(): { text: string; bodies: number; records: number } {
    const lines: string[] = [];
    let records = 0;
    for (const b of generateBatches(SAMPLE_DAY)) {
        lines.push(b.body);
        records += b.records;
    }
    return { text: `${lines.join('\n')}\n`, bodies: lines.length, records };
}

/** The decompressed content of samples/sample-day.jsonl.gz, for a test that regenerates and compares it. */
export function sampleText(): string {
    return sampleContent().text;
}

/** The exact bytes of samples/sample-day.jsonl.gz. */
export function sampleGzip(text: string = sampleText()): Buffer {
    return gzipSync(Buffer.from(text, 'utf8'), { level: 9 });
}

function main(): void {
    const out = process.argv[2] ?? SAMPLE_PATH;
    const { text, bodies, records } = sampleContent();
    const gz = sampleGzip(text);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, gz);
    if (process.argv[2] === undefined) writeFileSync(INVENTORY_PATH, inventoryText());
    process.stderr.write(
        `${out}: ${records} records in ${bodies} bodies, ${(gz.length / 1024 / 1024).toFixed(2)} MB gzip\n`,
    );
}

if (require.main === module) main();
