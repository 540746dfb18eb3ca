import type { Decision } from './decisions';
import type { VaultRef } from './events/types';
import type {
    DiagnosticSettingProperties,
    DiagnosticSettingSnapshot,
    RemediationPlan,
    RoleAssignmentSnapshot,
    VaultAccessPolicy,
    VaultSnapshot,
} from './remediation/types';

/** A rejected input kept whole, so that nothing is lost silently. */
export interface QuarantineItem {
    readonly reason: string;
    /** Where it came from (file and line, or partition and sequence number), when known. */
    readonly source: string | undefined;
    /** Truncated, secret-free excerpt (what logs and the decision log show). */
    readonly excerpt: string;
    /** The original item: a string, a Buffer, or a parsed value. */
    readonly raw: unknown;
}

/** Keeps rejected inputs (a local directory in replay and tests, Azure Blob Storage in production). */
export interface QuarantineSink {
    put(items: readonly QuarantineItem[]): Promise<void>;
}

/** Receives every decision (stdout or a file in replay; logs and, later, notifiers in production). */
export interface DecisionSink {
    write(decisions: readonly Decision[]): Promise<void>;
}

/** Structured logger (the Functions `InvocationContext`, or stderr in the CLI). */
export interface Logger {
    info(message: string, fields?: Readonly<Record<string, unknown>>): void;
    warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
    error(message: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Reads and changes vaults through Azure Resource Manager (the truth; log records are only the trigger). */
export interface VaultAdmin {
    get(vault: VaultRef): Promise<VaultSnapshot>;
    /** PATCH `properties` (networkAcls complete, publicNetworkAccess); returns the vault ARM answers with. */
    patch(vault: VaultRef, properties: NonNullable<RemediationPlan['patch']>): Promise<VaultSnapshot>;
    /** `vaults.updateAccessPolicy(..., 'remove', ...)` with exactly this entry's permissions. */
    removeAccessPolicy(vault: VaultRef, entry: VaultAccessPolicy): Promise<void>;
    /** `vaults.updateAccessPolicy(..., 'add', ...)`: merges this entry's permissions into the vault (undo). */
    addAccessPolicy(vault: VaultRef, entry: VaultAccessPolicy): Promise<void>;
}

/**
 * Reads and changes what protects a vault from outside it, through Azure Resource Manager: role assignments at the
 * vault's scope or above it (Microsoft.Authorization) and the vault's diagnostic settings (Microsoft.Insights).
 * Errors carry the HTTP `statusCode` (or a system `code`), as the Key Vault client's do, for the retry policy.
 */
export interface AccessAdmin {
    /** `RoleAssignments_GetById`; undefined when ARM answers 404 (the assignment is gone). */
    getRoleAssignment(id: string): Promise<RoleAssignmentSnapshot | undefined>;
    /** `RoleAssignments_DeleteById` (a 204 "already deleted" is success). */
    deleteRoleAssignment(id: string): Promise<void>;
    /** `DiagnosticSettings_List` of a resource. */
    listDiagnosticSettings(resourceId: string): Promise<DiagnosticSettingSnapshot[]>;
    /** `DiagnosticSettings_CreateOrUpdate`. */
    putDiagnosticSetting(resourceId: string, name: string, properties: DiagnosticSettingProperties): Promise<void>;
}

/** Wall-clock time for leases and rate caps (detections use event time instead). */
export interface Clock {
    now(): number;
    sleep(ms: number): Promise<void>;
}

/** The current state of one key version, as Key Vault reports it. */
export interface KeyVersionState {
    readonly keyId: string;
    readonly enabled: boolean;
    readonly expiresOn?: string;
    readonly notBefore?: string;
    readonly updatedOn?: string;
}

/** Reads (and, when allowed, re-enables) key versions through the Key Vault keys data plane. */
export interface KeyStateReader {
    /** `keyId`: `https://<vault>/keys/<name>[/<version>]` (no version: the current one). Undefined when not found. */
    read(keyId: string): Promise<KeyVersionState | undefined>;
    /** Sets `enabled: true` on the key version (Key Vault Crypto Officer); returns the new state. */
    enable(keyId: string): Promise<KeyVersionState>;
}

/** A wake-up for the reconcile worker: reconcile this vault (the intent in the state store says why). */
export interface ReconcileMessage {
    readonly vaultId: string;
    /** The intent version that was current when the message was sent (a processed version makes it a no-op). */
    readonly version: number;
}

/**
 * The reconcile work queue (Azure Storage Queues in production, in memory for replay and tests): at-least-once,
 * so the worker deduplicates through the intent's version.
 */
export interface ReconcileQueue {
    /** Sends a message; `visibilityDelayMs` hides it that long first (a busy vault is tried again later). */
    send(message: ReconcileMessage, options?: { readonly visibilityDelayMs?: number }): Promise<void>;
}
