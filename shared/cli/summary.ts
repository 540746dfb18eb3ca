import type { Writable } from 'node:stream';
import type { PipelineStats } from '../app/pipeline';
import type { ReplayProgress, ReplayResult } from '../app/replay';

function list(map: ReadonlyMap<string, number>): string {
    return [...map.entries()]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
}

function counts(stats: PipelineStats): string {
    return `${stats.bodies} bodies, ${stats.records} records`;
}

/** The short human summary printed on stderr at the end of a replay. */
export function formatSummary(
    result: ReplayResult,
    seconds: number,
    where: { readonly decisions: string; readonly quarantine: string | undefined },
): string {
    const s = result.stats;
    const lines = [
        `kvr replay: ${result.files} file${result.files === 1 ? '' : 's'}, ${counts(s)} in ${seconds.toFixed(2)} s`,
        `  processed ${s.events} Key Vault audit events` +
            (s.skipped > 0 ? `; skipped ${s.skipped} other records (${list(s.skippedByReason)})` : ''),
        `  rejected ${s.rejected} (${s.rejectedBodies} bodies, ${s.rejectedRecords} records)` +
            (where.quarantine === undefined ? '' : `, quarantined in ${where.quarantine}`),
        `  findings ${s.findings}${s.findings > 0 ? `: ${list(s.findingsByRule)}` : ''}`,
    ];
    if (s.actionsByStatus.size > 0) lines.push(`  remediation actions: ${list(s.actionsByStatus)}`);
    if (s.ruleErrors > 0) lines.push(`  rule errors ${s.ruleErrors} (see "type":"error" lines)`);
    if (result.ignoredFiles.length > 0) {
        const shown = result.ignoredFiles.slice(0, 3).join(', ');
        const more = result.ignoredFiles.length > 3 ? ` and ${result.ignoredFiles.length - 3} more` : '';
        lines.push(`  ignored ${result.ignoredFiles.length} non-capture file(s): ${shown}${more}`);
    }
    lines.push(`  decision log: ${where.decisions}`);
    return `${lines.join('\n')}\n`;
}

/** Progress on long runs: a line at most every two seconds, starting after two seconds. */
export class ProgressReporter {
    private last: number;
    private shown = false;

    constructor(
        private readonly err: Writable & { isTTY?: boolean },
        started: number,
        private readonly intervalMs = 2000,
    ) {
        this.last = started;
    }

    update(p: ReplayProgress): void {
        const now = performance.now();
        if (now - this.last < this.intervalMs) return;
        this.last = now;
        const pct = p.bytesTotal > 0 ? Math.min(100, Math.floor((100 * p.bytesDone) / p.bytesTotal)) : 0;
        const line = `kvr replay: ${pct}% (file ${p.fileIndex + 1}/${p.fileCount}), ${counts(p.stats)}, ${p.stats.findings} findings`;
        if (this.err.isTTY === true) this.err.write(`\r${line}\x1b[K`);
        else this.err.write(`${line}\n`);
        this.shown = true;
    }

    clear(): void {
        if (this.shown && this.err.isTTY === true) this.err.write('\r\x1b[K');
    }
}
