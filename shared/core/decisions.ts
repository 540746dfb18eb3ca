/**
 * The decision log: one JSON object per line, a public contract documented in docs/decision-log.md. Extra fields are
 * allowed; the ones declared here are required.
 */

export type Severity = 'low' | 'medium' | 'high' | 'critical';
export const SEVERITIES: readonly Severity[] = ['low', 'medium', 'high', 'critical'];

export interface FindingDecision {
    readonly type: 'finding';
    readonly rule: string;
    readonly severity: Severity;
    /** Vault name, lower-case. */
    readonly vault: string;
    /** Vault resource id, lower-case. */
    readonly vaultId: string;
    /** ISO time of the triggering record. */
    readonly time: string;
    /** Object id or app id of the actor, when known. */
    readonly principal?: string;
    readonly operations: readonly string[];
    readonly correlationIds: readonly string[];
    readonly count: number;
    readonly summary: string;
    readonly [extra: string]: unknown;
}

export type ActionStatus = 'planned' | 'applied' | 'skipped' | 'failed';

export interface ActionDecision {
    readonly type: 'action';
    readonly action: string;
    readonly vault: string;
    readonly rule: string;
    readonly status: ActionStatus;
    readonly detail: Readonly<Record<string, unknown>>;
    readonly [extra: string]: unknown;
}

export interface RejectedDecision {
    readonly type: 'rejected';
    readonly reason: string;
    /** Truncated, secret-free excerpt of the rejected item. */
    readonly excerpt: string;
    /** Where the item came from (file and line, or partition and sequence number), when known. */
    readonly source?: string;
}

export interface ErrorDecision {
    readonly type: 'error';
    readonly message: string;
    readonly rule?: string;
    readonly vault?: string;
    readonly time?: string;
    readonly correlationId?: string;
}

/** The state of a simulated vault at the end of `kvr replay --vaults`. */
export interface VaultStateDecision {
    readonly type: 'vault-state';
    readonly vault: string;
    readonly vaultId: string;
    readonly properties: Readonly<Record<string, unknown>>;
    /** Role assignments at the vault's scope or above it (simulated ARM). */
    readonly roleAssignments?: readonly Readonly<Record<string, unknown>>[];
    /** The vault's diagnostic settings (simulated ARM). */
    readonly diagnosticSettings?: readonly Readonly<Record<string, unknown>>[];
}

export type Decision = FindingDecision | ActionDecision | RejectedDecision | ErrorDecision | VaultStateDecision;
