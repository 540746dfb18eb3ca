import { NO_CHANGE, type RuleContext, type RuleStep } from '../engine/rule';
import type { AuditEvent } from '../events/types';
import type { DetectionSettings } from './settings';
import { DAY_MS } from './settings';
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
 * back after the window) unless the vault is still in its learning period. Last-seen is refreshed at most daily (a
 * twentieth of the window when that is shorter), so a principal seen every day costs one state write a day, not one an
 * hour: the stored time may lag the true last sighting by that step, and a principal last seen between the window minus
 * the step and the window ago may be reported as new again.
 */
export function baselineStep(event: AuditEvent, ctx: RuleContext, state: LastSeen | undefined): RuleStep<LastSeen> {
    const t = event.timeMs;
    const { baselineWindowMs, learningPeriodMs } = ctx.settings;
    const isNew = state === undefined || t - state.last > baselineWindowMs;
    const learning = t < ctx.vaultFirstSeenMs + learningPeriodMs;
    const refresh = state === undefined || t - state.last > Math.min(DAY_MS, baselineWindowMs / 20);
    if (!isNew || learning) return refresh ? { state: { last: Math.max(t, state?.last ?? t) } } : NO_CHANGE;
    return {
        findings: [{ summary: `first ${event.operation} of ${describeTarget(event)} by ${describeCaller(event)}` }],
        ...(refresh ? { state: { last: Math.max(t, state?.last ?? t) } } : {}),
    };
}
