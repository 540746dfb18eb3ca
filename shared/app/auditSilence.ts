// The timer half of `audit-log-silent`: vaults whose AuditEvent heartbeat is older than their quiet period, reported
// while the silence lasts (the rule itself reports a silence, resolved, when records come back). Runs live from the
// `auditSilence` timer on the wall clock, and in `kvr replay` on the records' clock.
import type { FindingDecision } from '../core/decisions';
import type { DecisionSink, Logger } from '../core/ports';
import { HEARTBEAT_ROW, type Heartbeat, silentVaults } from '../core/rules/audit-log-silent/rule';
import type { DetectionSettings } from '../core/rules/settings';
import type { StateStore } from '../core/state/store';

/** Heartbeat rows read per run: one per vault that ever sent a record. Past it, the run says so (it never guesses). */
export const MAX_HEARTBEATS = 50_000;

/** Heartbeats never expire on their own (the rule's state TTL): the entry stays until the vault is forgotten. */
const NEVER_MS = Number.MAX_SAFE_INTEGER / 2;

export interface AuditSilenceDeps {
    readonly store: StateStore;
    readonly settings: DetectionSettings;
    /** Decision log, then alerting. */
    readonly sink: DecisionSink;
    readonly log: Logger;
    readonly maxHeartbeats?: number;
}

export interface AuditSilenceResult {
    /** Vaults with a heartbeat. */
    readonly vaults: number;
    /** Findings written (silences newly seen). */
    readonly findings: readonly FindingDecision[];
    /** More heartbeat rows than `maxHeartbeats`: some vaults were not checked. */
    readonly truncated: boolean;
}

/**
 * Reports each silence once: a vault is reported only if its heartbeat still reads as scanned (records did not resume
 * meanwhile), the findings are written, and then the heartbeat is marked reported with compare-and-set. A sink
 * failure throws before anything is marked, so the next run reports again (at least once); a lost compare-and-set
 * means records resumed or another run marked it, and the rule's own resumed finding follows.
 */
export async function checkAuditSilence(deps: AuditSilenceDeps, nowMs: number): Promise<AuditSilenceResult> {
    const limit = deps.maxHeartbeats ?? MAX_HEARTBEATS;
    const rows = (await deps.store.scan(HEARTBEAT_ROW, limit + 1)).filter((r) => r.key.row === HEARTBEAT_ROW);
    const truncated = rows.length > limit;
    const scanned = truncated ? rows.slice(0, limit) : rows;
    if (truncated)
        deps.log.error('kvr.audit-silence-truncated', {
            limit,
            fix: 'more vaults than one run checks: raise maxHeartbeats or split the responder per scope',
        });
    const { findings, updates } = silentVaults(scanned, nowMs, deps.settings);
    if (updates.length === 0) return { vaults: scanned.length, findings: [], truncated };
    const current = await deps.store.getMany(updates.map((u) => u.key));
    const still: { finding: FindingDecision; key: (typeof updates)[number]['key']; value: Heartbeat; etag: string }[] =
        [];
    updates.forEach((u, i) => {
        const now = current[i];
        const last = (now?.value as Heartbeat | undefined)?.last;
        const finding = findings[i];
        if (now === undefined || finding === undefined || last !== u.value.last) return;
        still.push({ finding, key: u.key, value: u.value, etag: now.etag });
    });
    if (still.length === 0) return { vaults: scanned.length, findings: [], truncated };
    const reported = still.map((s) => s.finding);
    await deps.sink.write(reported);
    for (const s of still) {
        const r = await deps.store.put(s.key, s.value, s.etag, NEVER_MS);
        if (!r.ok) deps.log.info('kvr.audit-silence-mark-lost', { vault: s.finding.vault });
    }
    return { vaults: scanned.length, findings: reported, truncated };
}
