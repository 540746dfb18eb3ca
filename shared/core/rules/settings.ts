import type { IpRange } from '../net/cidr';
import type { AccessPolicyPermissions, ObjectKind, VaultRef } from '../events/types';

/** What a vault's guardrail policy wants; resolved per vault from defaults plus overrides. */
export interface VaultPolicy {
    /** Wanted `networkAcls.defaultAction`; undefined: no opinion. */
    readonly networkDefaultAction: 'Allow' | 'Deny' | undefined;
    /** Wanted `publicNetworkAccess`; undefined: no opinion. */
    readonly publicNetworkAccess: 'Enabled' | 'Disabled' | undefined;
    readonly approvedIpRanges: readonly IpRange[];
    /**
     * Approved virtual network rules: subnet resource ids, lower-case. Undefined when no policy names any (the
     * default): virtual network rules are then not judged at all, neither detected nor removed.
     */
    readonly approvedVirtualNetworkRules?: ReadonlySet<string>;
    /** Approved access-policy principals by object id (lower-case) and their allowed permissions (undefined: any). */
    readonly approvedPrincipals: ReadonlyMap<string, AccessPolicyPermissions | undefined>;
    /**
     * Azure roles each approved principal may hold (role definition GUIDs, lower-case), by object id; a principal
     * absent here but present in `approvedPrincipals` may hold any role. Absent: every approved principal, any role.
     */
    readonly approvedRoles?: ReadonlyMap<string, ReadonlySet<string>>;
    /**
     * Role assignments approved at one scope only (an undo of remove-role-assignment, while its approval lasts): the
     * scopes (lower-case) by `principal|roleGuid` (lower-case). Not an approval of the principal anywhere else.
     */
    readonly approvedRoleScopes?: ReadonlyMap<string, ReadonlySet<string>>;
    /**
     * The authorization model the vault must use: `rbac` makes restore-rbac-authorization switch
     * `enableRbacAuthorization` back on; undefined: no opinion (the vault is only reported).
     */
    readonly authorization?: 'rbac' | 'access-policies';
    /** Set while an undo of restore-diagnostic-setting is approved: the vault's setting is not restored again. */
    readonly auditSettingExempt?: boolean;
    /** How long the vault may send no AuditEvent record before audit-log-silent fires (default 6 h). */
    readonly quietPeriodMs?: number;
    /** `enforce`: remediate; `monitor`: plan only. A vault is acted on only when config puts it in enforce scope. */
    readonly mode: RemediationMode;
    /** Per-rule modes on this vault; a rule in monitor mode is planned only, even on an enforced vault. */
    readonly ruleModes: ReadonlyMap<string, RemediationMode>;
}

export type RemediationMode = 'enforce' | 'monitor';

/** The mode a remediation runs in: enforce only when both the vault and the rule say so. */
export function modeFor(policy: VaultPolicy, rule: string): RemediationMode {
    return policy.mode === 'enforce' && policy.ruleModes.get(rule) !== 'monitor' ? 'enforce' : 'monitor';
}

export interface Decoy {
    /** Vault name (lower-case); undefined: any vault. */
    readonly vault: string | undefined;
    /** Object kind; undefined: any kind. */
    readonly kind: ObjectKind | undefined;
    /** Object name, lower-case (Key Vault names are case-insensitive). */
    readonly name: string;
}

export interface WindowThreshold {
    /** Fires when the count goes above this. */
    readonly count: number;
    readonly windowMs: number;
}

/** Everything the rules read, resolved from the responder config. Every field has a default. */
export interface DetectionSettings {
    readonly sensitiveOperations: ReadonlySet<string>;
    /** Successful reads that the new-user / new-app baselines watch. */
    readonly readOperations: ReadonlySet<string>;
    /** App ids never reported by new-app-access (platform scanners). */
    readonly knownScanners: ReadonlySet<string>;
    /** Object ids and app ids of the responder itself: its own changes are its audit trail. */
    readonly responderIdentities: ReadonlySet<string>;
    readonly decoys: readonly Decoy[];
    readonly baselineWindowMs: number;
    readonly learningPeriodMs: number;
    readonly massSecretRetrieval: WindowThreshold;
    readonly vaultThrottled: WindowThreshold;
    readonly deniedAccessBurst: WindowThreshold;
    readonly grantRevokeWindowMs: number;
    /** A principal that lists and then reads objects of this many kinds (keys, secrets, certificates) in the window. */
    readonly vaultEnumeration: { readonly kinds: number; readonly windowMs: number };
    /**
     * Vaults known by resource id (from the config's overrides, the CMK posture list and the inventory): a role
     * assignment above vaults is checked against the policy of each known vault it covers.
     */
    readonly knownVaults: readonly VaultRef[];
    /** Where every vault's diagnostic setting must send AuditEvent (diagnostic-setting-removed); undefined: anywhere. */
    readonly auditDestination: AuditDestination | undefined;
    /** Repeated findings of one rule, vault and principal within this window form one finding. */
    readonly groupWindowMs: number;
    /** A key version used successfully by a service within this long is in use (customer-managed key rules). */
    readonly cmkInUseMs: number;
    /** The guardrail policy of a vault. */
    /**
     * The guardrail policy of a vault.
     * @param tags - The vault's tags when known (from ARM); otherwise those of the inventory, if any.
     */
    policyFor(vault: VaultRef, tags?: Readonly<Record<string, string>>): VaultPolicy;
}

/** The Event Hubs destination of the responder's AuditEvent stream, lower-case. */
export interface AuditDestination {
    readonly eventHubAuthorizationRuleId: string | undefined;
    readonly eventHubName: string | undefined;
    /**
     * The name of the diagnostic setting restore-diagnostic-setting writes: the `profileName` of the templates' policy
     * assignment and vaultDiagnostics.bicep (default `kv-responder`), so that the policy and the responder manage one
     * setting instead of overwriting each other.
     */
    readonly settingName?: string;
}

export const DEFAULT_SENSITIVE_OPERATIONS: readonly string[] = [
    'VaultDelete',
    'VaultPurge',
    'KeyDelete',
    'SecretDelete',
    'CertificateDelete',
    'KeyPurge',
    'SecretPurge',
    'CertificatePurge',
    'KeyBackup',
    'SecretBackup',
    'CertificateBackup',
    'KeyListDeleted',
    'SecretListDeleted',
    'KeyRecover',
    'SecretRecover',
    'CertificateRecover',
    'KeyRestore',
    'SecretRestore',
    'CertificateRestore',
];

export const DEFAULT_READ_OPERATIONS: readonly string[] = ['SecretGet', 'KeyGet', 'VaultGet'];

/** Azure Resource Graph and Policy Insights: they read every vault's configuration. */
export const PLATFORM_SCANNERS: readonly string[] = [
    '509e4652-da8d-478d-a730-e9d4a1996ca4',
    '8cae6e77-e04e-42ce-b5cb-50d82bce26b1',
];

export const MINUTE_MS = 60_000;
/** The default quiet period of audit-log-silent. */
export const DEFAULT_QUIET_PERIOD_MS = 6 * 60 * MINUTE_MS;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;
