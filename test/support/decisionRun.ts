import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { createPipeline } from '../../shared/app/createPipeline';
import { parseResponderConfigText, type ResponderConfig } from '../../shared/config/responderConfig';
import type { Decision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import type { StateStore } from '../../shared/core/state/store';

const REPO = join(__dirname, '..', '..');

/** The configuration `npm start` replays the sample day with. */
export function demoConfig(): ResponderConfig {
    return parseResponderConfigText(
        readFileSync(join(REPO, 'samples', 'demo-config.json'), 'utf8'),
        ruleIds,
        'demo-config.json',
    );
}

/** The bundled sample day's Event Hubs bodies (one a minute), in batches of `perBatch` bodies. */
export function sampleDayBatches(perBatch: number): string[][] {
    const lines = gunzipSync(readFileSync(join(REPO, 'samples', 'sample-day.jsonl.gz')))
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
    const out: string[][] = [];
    for (let i = 0; i < lines.length; i += perBatch) out.push(lines.slice(i, i + perBatch));
    return out;
}

/** Every decision the pipeline makes for the batches, in order, with its state in `store`. */
export async function decisionsOf(
    config: ResponderConfig,
    store: StateStore,
    batches: readonly (readonly string[])[],
): Promise<Decision[]> {
    const decisions = new MemoryDecisionSink();
    const p = createPipeline(
        config,
        { decisions, quarantine: new MemoryQuarantineSink() },
        { acceptBareRecords: true, store },
    );
    for (const batch of batches) await p.processBatch(batch.map((body) => ({ body })));
    return decisions.decisions;
}

/** A summary of decisions that changes when any decision does: counts by type and rule, and a hash of all of them. */
export function digestOf(decisions: readonly Decision[]): {
    readonly decisions: number;
    readonly byRule: Record<string, number>;
    readonly sha256: string;
} {
    const byRule: Record<string, number> = {};
    for (const d of decisions) {
        const k = `${d.type}:${(d as { rule?: string }).rule ?? ''}`;
        byRule[k] = (byRule[k] ?? 0) + 1;
    }
    const sha256 = createHash('sha256').update(JSON.stringify(decisions)).digest('hex');
    return { decisions: decisions.length, byRule: Object.fromEntries(Object.entries(byRule).sort()), sha256 };
}
