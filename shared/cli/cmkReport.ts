// `kvr cmk-report`: the customer-managed key dependency report, after replaying captures (or from Table state).
import { MemoryStateStore } from '../adapters/memoryStateStore';
import { JsonLinesDecisionSink } from '../adapters/streamSinks';
import { replay } from '../app/replay';
import type { KeyInventory } from '../core/cmk/inventory';
import { reportRows, reportTable } from '../core/cmk/report';
import type { StateStore } from '../core/state/store';
import {
    type CliIo,
    closeOutput,
    loadConfigFile,
    openOutput,
    parseCommandArgs,
    tableStateOption,
    UsageError,
} from './common';
import { EXIT } from './help';

/** At most this many key inventories in one report. */
const MAX_KEYS = 10_000;

export async function runCmkReport(args: readonly string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs(args, {
        config: { type: 'string' },
        decisions: { type: 'string' },
        json: { type: 'boolean' },
        state: { type: 'string' },
        'state-table': { type: 'string' },
    });
    if (positionals.length === 0 && values.state === undefined)
        throw new UsageError('cmk-report needs captures to replay, or --state to read a deployed inventory');
    const store: StateStore = (await tableStateOption(values.state, values['state-table'])) ?? new MemoryStateStore();
    const config = await loadConfigFile(values.config);
    let rejected = 0;
    if (positionals.length > 0) {
        const out = values.decisions === undefined ? undefined : await openOutput(values.decisions);
        try {
            const result = await replay({
                inputs: positionals,
                config,
                store,
                sinks: {
                    decisions: out === undefined ? { write: () => Promise.resolve() } : new JsonLinesDecisionSink(out),
                    quarantine: { put: () => Promise.resolve() },
                },
            });
            io.stderr.write(
                `kvr cmk-report: replayed ${result.stats.records} record(s) from ${result.files} file(s): ${result.stats.findings} finding(s)\n`,
            );
            rejected = result.stats.rejected;
        } finally {
            if (out !== undefined) await closeOutput(out);
        }
    }
    const states = (await store.scan('cmk|', MAX_KEYS)).map((s) => s.value as KeyInventory);
    // "In use" is relative to the newest key use seen (event time): a replayed capture reads as it did live.
    const nowMs = positionals.length > 0 ? Math.max(0, ...states.map((s) => s.lastUsedMs)) : Date.now();
    const rows = reportRows(states, nowMs, config.cmk.inUseMs);
    if (values.json === true)
        io.stdout.write(
            `${JSON.stringify({ asOf: new Date(nowMs).toISOString(), keys: states.length, rows }, null, 2)}\n`,
        );
    else io.stdout.write(reportTable(rows));
    if (rejected === 0) return EXIT.ok;
    io.stderr.write(
        `kvr cmk-report: processed with problems: ${rejected} input(s) rejected (--decisions lists them); exit status ${EXIT.problems}\n`,
    );
    return EXIT.problems;
}
