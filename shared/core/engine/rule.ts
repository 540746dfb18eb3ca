import type { Severity } from '../decisions';
import type { AuditEvent } from '../events/types';

import type { DetectionSettings, VaultPolicy } from '../rules/settings';
import type { StateKey } from '../state/store';

/** Documentation carried by every rule: the README catalogue and the runbooks come from it. */
export interface RuleMeta {
    /** Kebab-case id, part of the decision-log contract; equal to the rule's directory name. */
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
    /** The actor, when it is not the caller; defaults to the caller's object id or app id. */
    readonly principal?: string;
    readonly severity?: Severity;
    /** Extra fields for the decision log (JSON-serializable, no secret). */
    readonly details?: Readonly<Record<string, unknown>>;
    /** Splits grouping further than (rule, vault, principal), e.g. by operation. */
    readonly groupKey?: string;
}

/** Per-rule switches from the responder config. */
export interface RuleToggle {
    readonly enabled: boolean;
    readonly severity: Severity | undefined;
}

/** What a rule sees besides the event. */
export interface RuleContext {
    readonly settings: DetectionSettings;
    /** The guardrail policy of the event's vault. */
    readonly policy: VaultPolicy;
    /** Event time at which kv-responder first saw this vault (baselines learn before they alert). */
    readonly vaultFirstSeenMs: number;
}

interface RuleBase {
    readonly meta: RuleMeta;
    /** Operations the rule looks at; `undefined` means every operation. A cheap prefilter. */
    readonly operations: readonly string[] | undefined;
}

/** A detection that needs no memory: a pure function of (event, settings). */
export interface StatelessRule extends RuleBase {
    readonly kind: 'stateless';
    evaluate(event: AuditEvent, ctx: RuleContext): readonly FindingDraft[] | undefined;
}

/** One step of a stateful rule: findings, and the new state when it changed. */
export interface RuleStep<TState> {
    readonly findings?: readonly FindingDraft[];
    /** Present when the state changed; the engine writes it with compare-and-set. */
    readonly state?: TState;
}

/**
 * A detection with memory (windows, baselines). Pure: the state comes in as a value and goes out as a new value;
 * the engine reads and writes it. States must be idempotent under redelivery (sets keyed by item, not counters).
 */
export interface StatefulRule<TState> extends RuleBase {
    readonly kind: 'stateful';
    /** The key of the state this event needs; undefined when the rule has nothing to do with it. */
    stateKey(event: AuditEvent, ctx: RuleContext): StateKey | undefined;
    /** How long after the event the written state stays useful (it may then be swept). */
    stateTtlMs(settings: DetectionSettings): number;
    evaluate(event: AuditEvent, ctx: RuleContext, state: TState | undefined): RuleStep<TState>;
}

/**
 * The step of an event that finds nothing and changes no state: one shared, frozen value, because most events of a
 * stream are such steps and a fresh object (and empty findings array) for each is garbage for every record.
 */
export const NO_CHANGE: RuleStep<never> = Object.freeze({});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a registry holds rules of different state types
export type Rule = StatelessRule | StatefulRule<any>;

/** True when the caller is one of the responder's own identities. */
export function isResponder(event: AuditEvent, settings: DetectionSettings): boolean {
    const c = event.caller;
    return (
        (c.objectId !== undefined && settings.responderIdentities.has(c.objectId)) ||
        (c.appId !== undefined && c.upn === undefined && settings.responderIdentities.has(c.appId))
    );
}
