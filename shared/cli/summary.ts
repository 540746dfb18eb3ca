import type { Writable } from 'node:stream';
import type { PipelineStats } from '../app/pipeline';
import type { ReplayProgress, ReplayResult } from '../app/replay';
import type { Incident } from '../core/alerts/incident';
import { plain } from '../core/alerts/render';
import type { NoticeKind } from '../core/alerts/types';

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

// ---------------------------------------------------------------------------------------------------------------
// The incident list of `kvr serve` (the first screen of `npm start`)

/** One incident as the local server lists it: its short links are served by `kvr serve` only. */
export interface ListedIncident {
    readonly incident: Incident;
    /** What the notice was about (`opened`, `escalated`, `undone`, ...). */
    readonly kind: NoticeKind;
    /** The short local link to the incident page (the server redirects it to the signed link). */
    readonly link: string | undefined;
    /** The short local link to the undo page, when the incident has a remediation to undo. */
    readonly undoLink: string | undefined;
}

const RULE_WIDTH = 34;
const VAULT_WIDTH = 20;
const WHO_WIDTH = 26;

/** A column: bounded at `max`, padded to `width`. */
function cell(text: string, width: number, max = width): string {
    return plain(text, max).padEnd(width);
}

/** The caller in a few words: the UPN, the managed identity, the app, or the object id. */
function callerOf(inc: Incident): string {
    const a = inc.actor;
    if (a.upn !== undefined) return a.upn;
    if (a.managedIdentity !== undefined) return `managed identity ${a.managedIdentity.split('/').pop() ?? ''}`;
    if (a.appId !== undefined) return `app ${a.appId}`;
    return a.principal === undefined ? 'unknown caller' : `object ${a.principal}`;
}

/** What kv-responder did about an incident, in a few words. */
function whatWasDone(inc: Incident): string {
    if (inc.undone !== undefined) return 'remediation undone';
    if (inc.actions.length === 0) return 'alert only';
    const byStatus = new Map<string, string[]>();
    for (const a of inc.actions) {
        const list = byStatus.get(a.status) ?? [];
        if (!list.includes(a.action)) list.push(a.action);
        byStatus.set(a.status, list);
    }
    const words: Record<string, string> = { applied: 'reverted', planned: 'monitor mode, would revert' };
    return [...byStatus].map(([status, actions]) => `${words[status] ?? status}: ${actions.join(', ')}`).join('; ');
}

/**
 * One terminal line per incident: its short link, severity, rule, vault, who, and what was done (and the undo link
 * where there is one). Untrusted strings are made single-line and bounded, nothing else: no zero-width characters,
 * so `grep user@domain` finds them.
 */
export function incidentLine(x: ListedIncident, linkWidth = 0): string {
    const inc = x.incident;
    const label = x.kind === 'opened' ? '' : `${x.kind.toUpperCase()} `;
    const undo = x.undoLink === undefined ? '' : `  undo: ${x.undoLink}`;
    return (
        `  ${(x.link ?? '-').padEnd(linkWidth)}  ${label}${inc.severity.toUpperCase().padEnd(8)} ` +
        `${cell(inc.rule, RULE_WIDTH)} ${cell(inc.vault, VAULT_WIDTH, 60)} ${cell(callerOf(inc), WHO_WIDTH, 80)} ` +
        `${plain(whatWasDone(inc), 80)}${undo}`
    ).trimEnd();
}

/** The lines of a batch of listed incidents, their links in one column. */
export function incidentLines(listed: readonly ListedIncident[]): string[] {
    const width = Math.max(0, ...listed.map((x) => (x.link ?? '-').length));
    return listed.map((x) => incidentLine(x, width));
}

/** The counts behind the list: they add up, and the difference between findings and incidents is explained. */
export interface ListCounts {
    readonly records: number;
    readonly findings: number;
    /** The incidents alerted on (listed above). */
    readonly incidents: readonly Incident[];
    readonly minSeverity: string;
}

/** The closing lines of the first screen: what the numbers mean, and what to do next. */
export function closingSummary(c: ListCounts, base: string): string {
    const inAlerted = c.incidents.reduce((n, i) => n + i.findings, 0);
    const grouped = c.incidents.filter((i) => i.findings > 1);
    const below = c.findings - inAlerted;
    const s = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    const lines = [
        `Summary: ${s(c.records, 'record')} replayed, ${s(c.findings, 'finding')}:`,
        `  ${s(inAlerted, 'finding')} in the ${s(c.incidents.length, 'incident')} listed above` +
            (grouped.length === 0
                ? ''
                : ` (findings of one vault, rule and caller within the incident window are one incident: ` +
                  `${grouped.map((i) => `${i.rule} on ${i.vault} has ${i.findings}`).join(', ')})`),
    ];
    if (below !== 0)
        lines.push(
            `  ${s(below, 'finding')} below the alerting threshold (alerting.minSeverity: ${c.minSeverity}): ` +
                'in the decision log, no notification',
        );
    lines.push(
        'What next:',
        `  - open a link above (served by this process on ${base} only; each one redirects to the signed link)`,
        '  - replay your own logs: npx kvr replay <PT1H.json or a folder of them> --outbox .kvr/my-outbox',
        '  - deploy to Azure: see docs/operate.md and infra/README.md',
    );
    return `${lines.join('\n')}\n`;
}
