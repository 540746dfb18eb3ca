import { type FindingDraft, isResponder, type StatefulRule } from '../../engine/rule';
import { ACTIVITY_OPERATIONS } from '../../events/activity';
import type { AuditEvent, DiagnosticSettingBody } from '../../events/types';
import { stateKey } from '../../state/store';
import type { AuditDestination } from '../settings';
import { describeCaller } from '../text';

/** Log categories and category groups that carry a vault's AuditEvent records. */
const AUDIT_LOGS: ReadonlySet<string> = new Set(['auditevent', 'audit', 'alllogs']);

/**
 * One diagnostic-setting write or delete, joined across its Activity Log records (the body is on the `Start` record,
 * the outcome on the `Success` or `Failure` one, in either order).
 */
interface SettingState {
    readonly corr: string | undefined;
    /** What the written body does: undefined until a record with the body arrives. */
    readonly verdict?: 'keeps' | 'no-audit' | 'other-destination';
    readonly ok?: boolean;
    readonly fired?: boolean;
    readonly t: number;
}

type Verdict = NonNullable<SettingState['verdict']>;

function verdictOf(body: DiagnosticSettingBody, want: AuditDestination | undefined): Verdict {
    if (!body.enabledLogs.some((l) => AUDIT_LOGS.has(l))) return 'no-audit';
    if (body.eventHubAuthorizationRuleId === undefined) return 'other-destination';
    if (want === undefined) return 'keeps';
    if (
        want.eventHubAuthorizationRuleId !== undefined &&
        want.eventHubAuthorizationRuleId !== body.eventHubAuthorizationRuleId
    )
        return 'other-destination';
    // A setting without eventHubName sends to one hub per category (insights-logs-auditevent).
    const hub = body.eventHubName ?? 'insights-logs-auditevent';
    if (want.eventHubName !== undefined && want.eventHubName !== hub) return 'other-destination';
    return 'keeps';
}

function draft(event: AuditEvent, deleted: boolean, verdict: SettingState['verdict']): FindingDraft {
    const name = event.activity?.diagnosticSetting?.name ?? '';
    const what = deleted
        ? 'deleted'
        : verdict === 'no-audit'
          ? 'changed to stop sending AuditEvent'
          : 'changed to send AuditEvent elsewhere than the responder hub';
    return {
        summary: `Diagnostic setting ${name} of ${event.vault.name} ${what} by ${describeCaller(event)}`,
        groupKey: name,
        details: {
            diagnosticSetting: name,
            change: deleted ? 'deleted' : verdict,
            resourceId: event.activity?.resourceId,
        },
    };
}

export const diagnosticSettingRemoved: StatefulRule<SettingState> = {
    kind: 'stateful',
    meta: {
        id: 'diagnostic-setting-removed',
        title: 'Key Vault audit trail cut: diagnostic setting deleted or redirected',
        severity: 'critical',
        mitre: ['T1562.008'],
        description:
            "A diagnostic setting of a vault is deleted (MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/DELETE), or written (WRITE) with a body that no longer sends AuditEvent (category AuditEvent, or the audit / allLogs group) to an event hub, or to the responder's hub when auditDestination is configured. From then on the vault's data-plane activity is invisible to kv-responder. Read from the Azure Activity Log: the body comes from the Start record, the outcome from the HTTP status of the Success or Failure record. A delete fires even if another setting still streams the vault (the record cannot tell): remediation reads the vault's settings from ARM.",
        falsePositives: [
            'A planned move of the vault logs to another event hub or workspace, before auditDestination is updated.',
            'Replacing a setting by deleting it and creating a new one (the new one sends AuditEvent again).',
        ],
        references: [
            'https://learn.microsoft.com/azure/azure-monitor/essentials/diagnostic-settings',
            'https://learn.microsoft.com/azure/azure-monitor/essentials/activity-log-schema',
            'https://learn.microsoft.com/azure/key-vault/general/logging',
        ],
        runbook: [
            "Check the vault's diagnostic settings in ARM: does any still send AuditEvent to the responder hub?",
            'If not: restore the setting (the deployment templates define it), then look for what happened on the vault while it was unlogged (Activity Log, and the vault objects changed since).',
            'Identify the actor and why it could write diagnostic settings; treat an unexplained change as an intrusion in progress.',
        ],
    },
    operations: [ACTIVITY_OPERATIONS.diagnosticSettingWrite, ACTIVITY_OPERATIONS.diagnosticSettingDelete],
    stateKey(event) {
        const d = event.activity?.diagnosticSetting;
        if (d === undefined) return undefined;
        return stateKey(event.vault.name, `diag|${d.name.replace(/[/\\#?]/g, '_')}`);
    },
    stateTtlMs: (settings) => Math.max(settings.groupWindowMs, 24 * 3_600_000),
    evaluate(event, ctx, prev) {
        const d = event.activity?.diagnosticSetting;
        if (d === undefined) return {};
        const corr = event.correlationId;
        const deleted = event.operation === ACTIVITY_OPERATIONS.diagnosticSettingDelete;
        const base: SettingState =
            prev === undefined || (corr !== undefined && prev.corr !== undefined && prev.corr !== corr)
                ? { corr, t: event.timeMs }
                : prev;
        let next = base;
        if (!deleted && d.body !== undefined && next.verdict === undefined)
            next = { ...next, verdict: verdictOf(d.body, ctx.settings.auditDestination) };
        if (event.outcome === 'success' && next.ok === undefined) next = { ...next, ok: true };
        else if (event.outcome !== 'success' && event.outcome !== 'unknown' && next.ok === undefined)
            next = { ...next, ok: false };
        const findings: FindingDraft[] = [];
        const known = deleted || next.verdict !== undefined;
        if (next.ok === true && known && next.fired !== true) {
            if (!isResponder(event, ctx.settings) && (deleted || next.verdict !== 'keeps'))
                findings.push(draft(event, deleted, next.verdict));
            next = { ...next, fired: true };
        }
        return next === prev ? { findings } : { findings, state: next };
    },
};
