import type { InvocationContext, Timer } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import type { DecisionSink } from '../../core/ports';
import type { DetectionSettings } from '../../core/rules/settings';
import type { StateStore } from '../../core/state/store';
import { checkAuditSilence } from '../auditSilence';

export interface AuditSilenceTimerDeps {
    readonly store: StateStore;
    readonly settings: DetectionSettings;
    /** Decision log, then alerting. */
    readonly sink: DecisionSink;
    readonly now: () => number;
}

/**
 * Every 15 minutes: vaults that stopped sending AuditEvent records (`audit-log-silent`, reported while the silence
 * lasts). A state or sink failure throws: the run is logged as failed by the host and the next run checks again.
 */
export async function handleAuditSilence(
    timer: Pick<Timer, 'isPastDue'> | undefined,
    context: InvocationContext,
    deps: AuditSilenceTimerDeps,
): Promise<void> {
    const log = new InvocationLogger(context);
    const nowMs = deps.now();
    const r = await checkAuditSilence({ store: deps.store, settings: deps.settings, sink: deps.sink, log }, nowMs);
    for (const f of r.findings)
        log.warn('kvr.finding', { rule: f.rule, severity: f.severity, vault: f.vault, summary: f.summary });
    log.info('kvr.audit-silence', {
        vaults: r.vaults,
        silent: r.findings.length,
        truncated: r.truncated,
        pastDue: timer?.isPastDue ?? false,
    });
}
