/**
 * The normalized shape of one Key Vault `AuditEvent` record, produced by {@link normalizeRecord}.
 *
 * Every field is always present (`undefined` when the record did not carry it) so that all events share one
 * object shape; values taken from the record keep their wire spelling except identifiers, which are lower-cased.
 */

/** The vault a record belongs to, parsed from its upper-cased `resourceId`; every part lower-case. */
export interface VaultRef {
    readonly subscriptionId: string;
    readonly resourceGroup: string;
    readonly name: string;
    readonly resourceId: string;
}

/** The outcome of the request, derived from `properties.httpStatusCode` / `resultSignature`, never `resultType`. */
export type Outcome =
    | 'success'
    | 'unauthorized'
    | 'forbidden'
    | 'not-found'
    | 'conflict'
    | 'throttled'
    | 'client-error'
    | 'server-error'
    | 'unknown';

/** Who made the request, merged from both identity-claim shapes (URI claim names and short names). */
export interface Caller {
    /** Entra object id (`oid` or the objectidentifier URI claim), lower-case. */
    readonly objectId: string | undefined;
    /** User principal name (`upn`, the upn URI claim, or `unique_name`). */
    readonly upn: string | undefined;
    /** Application (client) id (`appid`), lower-case. */
    readonly appId: string | undefined;
    /** Managed identity resource id (`xms_mirid`), lower-case. */
    readonly managedIdentityResourceId: string | undefined;
    /** Caller IP address (`callerIpAddress`, else the `ipaddr` claim), without a port. */
    readonly ipAddress: string | undefined;
    /** The trusted Azure service that made the call (`properties.trustedService`), when one did. */
    readonly trustedService: string | undefined;
    readonly kind: CallerKind;
}

export type CallerKind = 'user' | 'managed-identity' | 'service-principal' | 'trusted-service' | 'anonymous';

export type ObjectKind = 'vault' | 'secret' | 'key' | 'certificate' | 'storage' | 'other';

/** The object a data-plane request addressed, parsed from `properties.id`. */
export interface TargetObject {
    readonly kind: ObjectKind;
    /** True for the `deletedsecrets` / `deletedkeys` / `deletedcertificates` collections. */
    readonly deleted: boolean;
    /** Object name as it appears in the URI (attacker-controlled: escape before rendering). */
    readonly name: string | undefined;
    readonly version: string | undefined;
    /** The full `properties.id`. */
    readonly uri: string;
}

/** Permissions of an access-policy entry, by object type. Lower-cased permission names. */
export interface AccessPolicyPermissions {
    readonly keys: readonly string[];
    readonly secrets: readonly string[];
    readonly certificates: readonly string[];
    readonly storage: readonly string[];
}

export interface AccessPolicyEntry {
    readonly tenantId: string | undefined;
    readonly objectId: string | undefined;
    readonly applicationId: string | undefined;
    readonly permissions: AccessPolicyPermissions;
}

export interface NetworkAclsState {
    readonly defaultAction: string | undefined;
    readonly bypass: string | undefined;
    /** IP rules as recorded (CIDR or single address), when the record lists them. */
    readonly ipRules: readonly string[] | undefined;
    /** Virtual-network rule subnet ids, lower-case, when the record lists them. */
    readonly virtualNetworkRules: readonly string[] | undefined;
}

/**
 * The vault's recorded after-state (`properties.properties` on control-plane records) and any added/removed
 * access-policy and IP-rule details. These are partial and sometimes inferred: remediation re-reads the vault.
 */
export interface VaultChange {
    /** `null` when the record says `"networkAcls": null`, `undefined` when it does not mention it. */
    readonly networkAcls: NetworkAclsState | null | undefined;
    readonly publicNetworkAccess: string | undefined;
    readonly enableRbacAuthorization: boolean | undefined;
    readonly enableSoftDelete: boolean | undefined;
    readonly enablePurgeProtection: boolean | undefined;
    readonly enabledForDeployment: boolean | undefined;
    readonly enabledForDiskEncryption: boolean | undefined;
    readonly enabledForTemplateDeployment: boolean | undefined;
    readonly tenantId: string | undefined;
    /** The full access-policy list, when the after-state carries one. */
    readonly accessPolicies: readonly AccessPolicyEntry[] | undefined;
    readonly addedAccessPolicies: readonly AccessPolicyEntry[];
    readonly removedAccessPolicies: readonly AccessPolicyEntry[];
    readonly addedIpRules: readonly string[];
    readonly removedIpRules: readonly string[];
    readonly addedVirtualNetworkRules: readonly string[];
    readonly removedVirtualNetworkRules: readonly string[];
}

export interface AuditEvent {
    /** Record time as recorded (ISO 8601). */
    readonly time: string;
    /** Record time in epoch milliseconds: every window and baseline uses this, never the wall clock. */
    readonly timeMs: number;
    readonly vault: VaultRef;
    /** `operationName` as recorded, e.g. `SecretGet`, `VaultPatch`. */
    readonly operation: string;
    readonly operationVersion: string | undefined;
    /** HTTP status from `properties.httpStatusCode`, else from `resultSignature`. */
    readonly httpStatus: number | undefined;
    readonly outcome: Outcome;
    readonly resultSignature: string | undefined;
    readonly resultDescription: string | undefined;
    readonly caller: Caller;
    readonly target: TargetObject | undefined;
    readonly clientInfo: string | undefined;
    readonly requestUri: string | undefined;
    readonly correlationId: string | undefined;
    readonly durationMs: number | undefined;
    readonly isAccessPolicyMatch: boolean | undefined;
    readonly isRbacAuthorized: boolean | undefined;
    readonly tlsVersion: string | undefined;
    /** Present on control-plane records that carry vault configuration or access-policy / IP-rule changes. */
    readonly vaultChange: VaultChange | undefined;
    /** Raw `keyProperties` / `secretProperties` / `certificateProperties` objects of data-plane records. */
    readonly objectProperties: Readonly<Record<string, unknown>> | undefined;
    /**
     * Set on records of the Azure Activity Log (the second input), `undefined` on Key Vault `AuditEvent` records: the
     * discriminant between the two streams. Rules written for `AuditEvent` ignore events that carry it.
     */
    readonly activity?: ActivityDetails | undefined;
}

/** What an Activity Log operation applies to: a vault, or a scope above vaults. */
export type ScopeLevel = 'vault' | 'resource-group' | 'subscription' | 'management-group' | 'tenant';

export interface ScopeRef {
    readonly level: ScopeLevel;
    /** The scope's resource id, lower-case (`/` for the tenant root). */
    readonly id: string;
    readonly subscriptionId: string | undefined;
    readonly resourceGroup: string | undefined;
    /** The management group name, lower-case, for a management-group scope. */
    readonly managementGroup: string | undefined;
}

/** A role assignment written or deleted, read from the record's request or response body and its resource id. */
export interface RoleAssignmentChange {
    /** The role assignment's resource id, lower-case. */
    readonly id: string;
    /** The assignment's name (a GUID), lower-case. */
    readonly name: string;
    /** The scope the assignment applies to (from the body, else from the resource id). */
    readonly scope: ScopeRef;
    /** The assignee's object id, lower-case (`principalId`); undefined when the record carries no body. */
    readonly principalId: string | undefined;
    readonly principalType: string | undefined;
    /** The role definition GUID, lower-case (the last segment of `roleDefinitionId`). */
    readonly roleDefinitionId: string | undefined;
}

/** A diagnostic setting written or deleted on a vault, with what its body says it sends (WRITE only). */
export interface DiagnosticSettingChange {
    /** The setting's name, lower-case. */
    readonly name: string;
    /** The setting's body as recorded (request body, else response body); undefined when the record has none. */
    readonly body: DiagnosticSettingBody | undefined;
}

export interface DiagnosticSettingBody {
    /** Event Hubs authorization rule id, lower-case. */
    readonly eventHubAuthorizationRuleId: string | undefined;
    /** Event hub name, lower-case. */
    readonly eventHubName: string | undefined;
    /** Enabled log categories and category groups, lower-case (`auditevent`, `audit`, `alllogs`). */
    readonly enabledLogs: readonly string[];
}

/**
 * The Activity Log fields of an event (Event Hubs / storage-account schema). The common fields of {@link AuditEvent}
 * are filled too: `operation` is the upper-cased `operationName`, `vault` is the protected vault or, for a role
 * assignment above vaults, a stand-in naming the scope (see {@link scopeVaultRef}), `caller` comes from
 * `identity.claims`, and `outcome` from the HTTP status (`properties.statusCode`, else `resultSignature`), and is
 * `unknown` while `resultType` is `Start` or `Accept`.
 */
export interface ActivityDetails {
    /** `category` as recorded: `Write`, `Delete`, `Action` (or `Administrative` in some exports). */
    readonly category: string;
    /** `resultType` as recorded: `Start`, `Accept`, `Success`, `Failure`. Not the outcome: see `outcome`. */
    readonly resultType: string | undefined;
    /** The operation's resource id, lower-case. */
    readonly resourceId: string;
    /** `properties.eventCategory`, e.g. `Administrative`. */
    readonly eventCategory: string | undefined;
    /** `properties.hierarchy`: tenant and management-group path to the subscription, when recorded. */
    readonly hierarchy: string | undefined;
    /** True when the record carried a request or response body. */
    readonly hasBody: boolean;
    readonly roleAssignment: RoleAssignmentChange | undefined;
    readonly diagnosticSetting: DiagnosticSettingChange | undefined;
}
