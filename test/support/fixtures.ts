import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = join(__dirname, '..', 'fixtures', 'keyvault-audit');

/** The text of a fixture file under test/fixtures/keyvault-audit. */
export function fixtureText(name: string): string {
    return readFileSync(join(FIXTURES, name), 'utf8');
}

/** A fixture body parsed. */
export function fixtureBody(name: string): { records: Record<string, unknown>[] } {
    return JSON.parse(fixtureText(name)) as { records: Record<string, unknown>[] };
}

/** The first record of a fixture body, deep-copied so that a test may mutate it. */
export function fixtureRecord(name: string, index = 0): Record<string, unknown> {
    const r = fixtureBody(name).records[index];
    if (r === undefined) throw new Error(`${name} has no record ${index}`);
    return structuredClone(r);
}
