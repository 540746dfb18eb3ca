import type { Severity } from '../decisions';
import type { VaultRef } from '../events/types';

/** One tier of an on-call roster: who is notified when an incident reaches this level. */
export interface OnCallTier {
    readonly name: string;
    /** Email recipients (UPNs or addresses). */
    readonly email: readonly string[];
    /** Whether this tier's notices also go to the Teams channel. */
    readonly teams: boolean;
}

export interface Roster {
    readonly name: string;
    /** Tier 0 gets the first notice; escalation moves to the next tier. */
    readonly tiers: readonly OnCallTier[];
}

/** Alerting settings, resolved from the config file. */
export interface AlertSettings {
    /** Findings below this severity open incidents that notify nobody (they are still recorded). */
    readonly minSeverity: Severity;
    /** A finding joins the open incident of its vault, rule and principal when it comes within this window. */
    readonly incidentWindowMs: number;
    /** High and critical incidents (or `escalateMinSeverity`) unacknowledged this long move to the next tier. */
    readonly escalateAfterMs: number;
    readonly escalateMinSeverity: Severity;
    /** After the last tier, the last tier is reminded at most this many times. */
    readonly maxReminders: number;
    /** Lifetime of acknowledge and undo links. */
    readonly linkTtlMs: number;
    /** Delivery attempts per notification before the channel is reported failing on the other channel. */
    readonly maxDeliveryAttempts: number;
    /** The roster that receives an incident of this vault and severity. */
    rosterFor(vault: VaultRef, severity: Severity, tags?: Readonly<Record<string, string>>): Roster;
    /** A roster by name (an incident keeps the name of the roster it was routed to). */
    rosterNamed(name: string): Roster | undefined;
    /** Whether any route matches on vault tags (they are then looked up when an incident opens). */
    readonly routesUseTags: boolean;
}

export const SEVERITY_RANK: Readonly<Record<Severity, number>> = { low: 0, medium: 1, high: 2, critical: 3 };

export function atLeast(severity: Severity, floor: Severity): boolean {
    return SEVERITY_RANK[severity] >= SEVERITY_RANK[floor];
}
