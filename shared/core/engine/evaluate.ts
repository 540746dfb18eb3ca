import type { Decision, FindingDecision, Severity } from '../decisions';
import type { AuditEvent } from '../events/types';
import { type FindingDraft, principalOf, type Rule } from './rule';

/** Per-rule switches from the responder config. */
export interface RuleToggle {
    readonly enabled: boolean;
    readonly severity: Severity | undefined;
}

/** Rules indexed by operation, so an event only meets the rules that look at its operation. */
export class RuleSet<TSettings> {
    private readonly byOperation = new Map<string, Rule<TSettings>[]>();
    private readonly anyOperation: Rule<TSettings>[] = [];
    readonly severities = new Map<string, Severity>();

    constructor(rules: readonly Rule<TSettings>[], toggles: ReadonlyMap<string, RuleToggle> = new Map()) {
        for (const rule of rules) {
            const toggle = toggles.get(rule.meta.id);
            if (toggle !== undefined && !toggle.enabled) continue;
            this.severities.set(rule.meta.id, toggle?.severity ?? rule.meta.severity);
            if (rule.operations === undefined) this.anyOperation.push(rule);
            else
                for (const op of rule.operations) {
                    const list = this.byOperation.get(op) ?? [];
                    list.push(rule);
                    this.byOperation.set(op, list);
                }
        }
    }

    get size(): number {
        return this.severities.size;
    }

    rulesFor(operation: string): readonly Rule<TSettings>[] {
        const specific = this.byOperation.get(operation);
        if (specific === undefined) return this.anyOperation;
        return this.anyOperation.length === 0 ? specific : [...specific, ...this.anyOperation];
    }
}

export function findingOf(
    rule: Rule<unknown>,
    severity: Severity,
    event: AuditEvent,
    draft: FindingDraft,
): FindingDecision {
    const principal = draft.principal ?? principalOf(event);
    return {
        type: 'finding',
        rule: rule.meta.id,
        severity: draft.severity ?? severity,
        vault: event.vault.name,
        vaultId: event.vault.resourceId,
        time: event.time,
        ...(principal === undefined ? {} : { principal }),
        operations: [event.operation],
        correlationIds: event.correlationId === undefined ? [] : [event.correlationId],
        count: 1,
        summary: draft.summary,
        ...draft.details,
    };
}

/**
 * Runs every applicable rule on one event. A rule that throws is isolated: it yields an `error` decision and the
 * other rules still run.
 */
export function evaluateEvent<TSettings>(
    event: AuditEvent,
    ruleSet: RuleSet<TSettings>,
    settings: TSettings,
    out: Decision[],
): void {
    for (const rule of ruleSet.rulesFor(event.operation)) {
        let drafts: readonly FindingDraft[] | undefined;
        try {
            drafts = rule.evaluate(event, settings);
        } catch (err) {
            out.push({
                type: 'error',
                rule: rule.meta.id,
                message: `rule ${rule.meta.id} threw: ${err instanceof Error ? err.message : String(err)}`,
                vault: event.vault.name,
                time: event.time,
                ...(event.correlationId === undefined ? {} : { correlationId: event.correlationId }),
            });
            continue;
        }
        if (drafts === undefined) continue;
        const severity = ruleSet.severities.get(rule.meta.id) ?? rule.meta.severity;
        for (const d of drafts) out.push(findingOf(rule, severity, event, d));
    }
}
