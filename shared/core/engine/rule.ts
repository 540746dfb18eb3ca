import type { Severity } from '../decisions';
import type { AuditEvent } from '../events/types';

/** Documentation carried by every rule: the README catalogue and the runbooks are generated from it. */
export interface RuleMeta {
    /** Kebab-case id, part of the decision-log contract. */
    readonly id: string;
    readonly title: string;
    readonly severity: Severity;
    /** MITRE ATT&CK technique ids, e.g. `T1562.007`. */
    readonly mitre: readonly string[];
    readonly description: string;
    readonly falsePositives: readonly string[];
    readonly references: readonly string[];
    /** Ordered steps for the on-call. */
    readonly runbook: readonly string[];
}

/** What a rule reports for one event; the engine adds vault, time, operations and correlation ids. */
export interface FindingDraft {
    readonly summary: string;
    /** The actor, when it is not the caller (e.g. the principal granted access); defaults to the caller. */
    readonly principal?: string;
    readonly severity?: Severity;
    /** Extra fields for the decision log (must be JSON-serializable and carry no secret). */
    readonly details?: Readonly<Record<string, unknown>>;
}

/** A detection: a pure function of (normalized event, settings). */
export interface Rule<TSettings = unknown> {
    readonly meta: RuleMeta;
    /** Operations the rule looks at; `undefined` means every operation. Used as a cheap prefilter. */
    readonly operations: readonly string[] | undefined;
    evaluate(event: AuditEvent, settings: TSettings): readonly FindingDraft[] | undefined;
}

export function principalOf(event: AuditEvent): string | undefined {
    return event.caller.objectId ?? event.caller.appId ?? event.caller.managedIdentityResourceId;
}
