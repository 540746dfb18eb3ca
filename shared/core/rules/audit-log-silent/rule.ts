import type { FindingDecision } from '../../decisions';
import { NO_CHANGE, type StatefulRule } from '../../engine/rule';
import type { VaultRef } from '../../events/types';
import { KeyMemo, type StateKey } from '../../state/store';
import { DEFAULT_QUIET_PERIOD_MS, type DetectionSettings } from '../settings';

/** The row of a vault's heartbeat state (one per vault). */
export const HEARTBEAT_ROW = 'heartbeat';
/** The heartbeat key of each vault, memoized: every record reads it. */
const HEARTBEAT_KEYS = new KeyMemo(HEARTBEAT_ROW);

/**
 * When a vault's AuditEvent records were last seen, on the records' clock. `last` moves in steps of a twentieth of the
 * quiet period (one write per step, not per record), so it may lag the newest record by that much.
 */
export interface Heartbeat {
    readonly vault: VaultRef;
    readonly first: number;
    readonly last: number;
    /** The `last` value a timer already reported as silent (so that it reports each silence once). */
    readonly reported?: number;
}

function hours(ms: number): string {
    return `${Math.round((ms / 3_600_000) * 10) / 10} h`;
}

export const auditLogSilent: StatefulRule<Heartbeat> = {
    kind: 'stateful',
    meta: {
        id: 'audit-log-silent',
        title: 'Key Vault audit log went silent',
        severity: 'high',
        mitre: ['T1562.008'],
        description:
            "A vault that has sent AuditEvent records sends none for longer than its quiet period (quietPeriodHours in the vault policy, 6 h by default): its diagnostic setting may be gone or redirected, the pipeline may be broken, or the vault deleted. Evaluated on the records' clock: when records come back after a longer gap, the silence is reported with its bounds (resolved), which is how a replay of archives shows the silences a live deployment would have seen; the auditSilence timer (every 15 minutes) reports a silence while it lasts from the same durable state, and kvr replay runs that check on the records' clock. The last-seen time is stored in steps of a twentieth of the quiet period, so only gaps longer than 1.05 quiet periods are certain to be reported.",
        falsePositives: [
            'Vaults that are idle by design (a yearly key, a break-glass vault): give them a longer quietPeriodHours.',
            'An Event Hubs or Functions outage upstream of kv-responder (every vault goes silent at once).',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/logging',
            'https://learn.microsoft.com/azure/azure-monitor/essentials/diagnostic-settings',
        ],
        runbook: [
            "Check the vault's diagnostic settings in ARM: is AuditEvent still sent to the responder hub?",
            'Check the Activity Log of the vault for diagnostic-setting and vault changes over the silent period.',
            'If every vault went silent at once: check the Event Hubs namespace and the Function app instead.',
        ],
    },
    operations: undefined, // every AuditEvent record is a heartbeat
    stateKey(event) {
        return event.activity === undefined ? HEARTBEAT_KEYS.get(event.vault.name, '') : undefined;
    },
    stateTtlMs: () => Number.MAX_SAFE_INTEGER / 2,
    evaluate(event, ctx, prev) {
        const t = event.timeMs;
        const quiet = ctx.policy.quietPeriodMs ?? DEFAULT_QUIET_PERIOD_MS;
        if (prev === undefined) return { state: { vault: event.vault, first: t, last: t } };
        if (t <= prev.last + quiet / 20) return NO_CHANGE; // a record seen within the step (or older): nothing to write
        const gap = t - prev.last;
        const state: Heartbeat = { vault: prev.vault, first: prev.first, last: t };
        if (gap <= quiet + quiet / 20) return { state };
        const already = prev.reported === prev.last;
        return {
            state,
            findings: [
                {
                    summary: `No AuditEvent record from ${event.vault.name} for ${hours(gap)} (quiet period ${hours(quiet)}); records resumed at ${event.time}`,
                    principal: '',
                    groupKey: String(prev.last),
                    ...(already ? { severity: 'low' as const } : {}),
                    details: {
                        silentFromMs: prev.last,
                        silentFrom: new Date(prev.last).toISOString(),
                        silentUntil: event.time,
                        silentHours: Math.round((gap / 3_600_000) * 10) / 10,
                        quietPeriodHours: quiet / 3_600_000,
                        resolved: true,
                        reportedWhileSilent: already,
                    },
                },
            ],
        };
    },
};

/**
 * The timer half: the vaults whose heartbeat is older than their quiet period at `nowMs` (the wall clock live, the
 * newest record time in a replay), as findings, with the states to write back (marked reported). Pure: the caller
 * scans the heartbeat rows (`store.scan(HEARTBEAT_ROW, …)`) and writes the returned states with compare-and-set.
 */
export function silentVaults(
    entries: readonly { readonly key: StateKey; readonly value: unknown }[],
    nowMs: number,
    settings: DetectionSettings,
): { readonly findings: FindingDecision[]; readonly updates: { key: StateKey; value: Heartbeat }[] } {
    const findings: FindingDecision[] = [];
    const updates: { key: StateKey; value: Heartbeat }[] = [];
    for (const { key, value } of entries) {
        if (key.row !== HEARTBEAT_ROW) continue;
        const h = value as Heartbeat;
        if (typeof h?.last !== 'number' || h.vault === undefined || h.reported === h.last) continue;
        const quiet = settings.policyFor(h.vault).quietPeriodMs ?? DEFAULT_QUIET_PERIOD_MS;
        const gap = nowMs - h.last;
        if (gap <= quiet + quiet / 20) continue;
        findings.push({
            type: 'finding',
            rule: auditLogSilent.meta.id,
            severity: auditLogSilent.meta.severity,
            vault: h.vault.name,
            vaultId: h.vault.resourceId,
            time: new Date(nowMs).toISOString(),
            operations: [],
            correlationIds: [],
            count: 1,
            summary: `No AuditEvent record from ${h.vault.name} for ${hours(gap)} (quiet period ${hours(quiet)})`,
            silentFromMs: h.last,
            silentFrom: new Date(h.last).toISOString(),
            silentHours: Math.round((gap / 3_600_000) * 10) / 10,
            quietPeriodHours: quiet / 3_600_000,
            resolved: false,
        });
        updates.push({ key, value: { ...h, reported: h.last } });
    }
    return { findings, updates };
}
