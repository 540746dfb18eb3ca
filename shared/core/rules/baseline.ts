import type { RuleContext, RuleStep } from '../engine/rule';
import type { AuditEvent } from '../events/types';
import type { DetectionSettings } from './settings';
import { HOUR_MS } from './settings';
import { describeCaller, describeTarget } from './text';

/** Baseline entries live as long as the baseline window. */
export function baselineTtlMs(settings: DetectionSettings): number {
    return settings.baselineWindowMs;
}

/** When a principal was last seen on a vault (event time). */
export interface LastSeen {
    readonly last: number;
}

/**
 * One step of a "never seen on this vault within the baseline window" rule: reports a principal that is new (or
 * back after the window) unless the vault is still in its learning period; refreshes last-seen at most hourly.
 */
export function baselineStep(event: AuditEvent, ctx: RuleContext, state: LastSeen | undefined): RuleStep<LastSeen> {
    const t = event.timeMs;
    const { baselineWindowMs, learningPeriodMs } = ctx.settings;
    const isNew = state === undefined || t - state.last > baselineWindowMs;
    const learning = t < ctx.vaultFirstSeenMs + learningPeriodMs;
    const refresh = state === undefined || t - state.last > HOUR_MS;
    return {
        findings:
            isNew && !learning
                ? [{ summary: `first ${event.operation} of ${describeTarget(event)} by ${describeCaller(event)}` }]
                : [],
        ...(refresh ? { state: { last: Math.max(t, state?.last ?? t) } } : {}),
    };
}
