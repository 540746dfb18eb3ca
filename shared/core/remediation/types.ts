/**
 * The part of an ARM `Microsoft.KeyVault/vaults` resource that remediation reads and writes, in the wire shape
 * `vaults.get` returns. Our own type: the pure core does not import the SDK.
 */
export interface VaultAccessPolicy {
    readonly tenantId: string;
    readonly objectId: string;
    readonly applicationId?: string;
    readonly permissions: {
        readonly keys?: readonly string[];
        readonly secrets?: readonly string[];
        readonly certificates?: readonly string[];
        readonly storage?: readonly string[];
    };
}

export interface VaultNetworkAcls {
    readonly bypass?: string;
    readonly defaultAction?: string;
    readonly ipRules?: readonly { readonly value: string }[];
    readonly virtualNetworkRules?: readonly {
        readonly id: string;
        readonly ignoreMissingVnetServiceEndpoint?: boolean;
    }[];
}

export interface VaultSnapshot {
    readonly id: string;
    readonly name: string;
    readonly location?: string;
    readonly tags?: Readonly<Record<string, string>>;
    readonly properties: {
        readonly tenantId: string;
        readonly accessPolicies?: readonly VaultAccessPolicy[];
        readonly networkAcls?: VaultNetworkAcls;
        readonly publicNetworkAccess?: string;
        readonly enableRbacAuthorization?: boolean;
        readonly [other: string]: unknown;
    };
}

/**
 * A role assignment as ARM returns it (`RoleAssignments_GetById`, api-version 2022-04-01): what remediation checks
 * before deleting it and what undo needs to create exactly that assignment again.
 */
export interface RoleAssignmentSnapshot {
    /** `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`. */
    readonly id: string;
    readonly scope: string;
    /** The full role definition id (`/subscriptions/.../providers/Microsoft.Authorization/roleDefinitions/{guid}`). */
    readonly roleDefinitionId: string;
    readonly principalId: string;
    readonly principalType?: string;
    readonly description?: string;
    readonly condition?: string;
    readonly conditionVersion?: string;
}

/** One log destination of a diagnostic setting (`logs[*]`, Monitor 2021-05-01-preview). */
export interface DiagnosticLogSetting {
    readonly category?: string;
    readonly categoryGroup?: string;
    readonly enabled: boolean;
}

/** A diagnostic setting's `properties` as remediation reads and writes them (the fields kv-responder cares about). */
export interface DiagnosticSettingProperties {
    readonly eventHubAuthorizationRuleId?: string;
    readonly eventHubName?: string;
    readonly storageAccountId?: string;
    readonly workspaceId?: string;
    readonly logs?: readonly DiagnosticLogSetting[];
    readonly metrics?: readonly { readonly category?: string; readonly enabled: boolean }[];
}

export interface DiagnosticSettingSnapshot {
    readonly name: string;
    readonly properties: DiagnosticSettingProperties;
}

/** Action ids are part of the decision-log contract. */
export type ActionId =
    | 'restore-firewall-default'
    | 'remove-ip-rule'
    | 'remove-vnet-rule'
    | 'disable-public-network-access'
    | 'remove-access-policy'
    | 'remove-role-assignment'
    | 'restore-rbac-authorization'
    | 'restore-diagnostic-setting';

/**
 * ARM actions the responder must not hold although an action's undo could use them: granting roles (any role, Owner
 * included, at the protected scope) and deleting diagnostic settings (cutting the audit trail it guards). Undo that
 * would need them is manual. `kvr doctor` warns when the identity holds any of them.
 */
export const EXCLUDED_PERMISSIONS: readonly string[] = [
    'Microsoft.Authorization/roleAssignments/write',
    'Microsoft.Insights/diagnosticSettings/delete',
];

/** What each action needs in Azure RBAC; the infra templates grant exactly these. */
const JOIN_SUBNET = 'Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action';

export const ACTION_PERMISSIONS: Readonly<Record<ActionId, readonly string[]>> = {
    // A PATCH of networkAcls re-sends the vault's virtual network rules, and ARM checks joinViaServiceEndpoint on
    // each subnet a request names (service endpoint docs; see infra/modules/roles.bicep).
    'restore-firewall-default': ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write', JOIN_SUBNET],
    'remove-ip-rule': ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write', JOIN_SUBNET],
    // The PATCH names the subnets of the rules it keeps; its undo names the removed subnet again (a join).
    'remove-vnet-rule': ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write', JOIN_SUBNET],
    'disable-public-network-access': ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write'],
    'remove-access-policy': ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/accessPolicies/write'],
    // Re-read by id before the delete and after it (ARM is the truth), delete. No roleAssignments/write: it would let
    // the identity assign any role, Owner included, at the protected scope; undo of a deleted assignment is manual
    // (docs/remediation.md, "Re-granting access is a human act").
    'remove-role-assignment': [
        'Microsoft.Authorization/roleAssignments/read',
        'Microsoft.Authorization/roleAssignments/delete',
    ],
    // One PATCH of enableRbacAuthorization (and the read before and after it).
    'restore-rbac-authorization': ['Microsoft.KeyVault/vaults/read', 'Microsoft.KeyVault/vaults/write'],
    // List the vault's settings and PUT the setting the templates deploy; undo PUTs the previous setting back. No
    // diagnosticSettings/delete: undo of a setting we created (none of that name before) is a manual delete.
    'restore-diagnostic-setting': [
        'Microsoft.Insights/diagnosticSettings/read',
        'Microsoft.Insights/diagnosticSettings/write',
    ],
};

/** Which rule's findings each action answers. */
export const ACTIONS_BY_RULE: Readonly<Record<string, ActionId>> = {
    'firewall-opened': 'restore-firewall-default',
    'firewall-ip-rule-added': 'remove-ip-rule',
    'firewall-vnet-rule-added': 'remove-vnet-rule',
    'public-network-access-enabled': 'disable-public-network-access',
    'access-policy-granted': 'remove-access-policy',
    'self-granted-access': 'remove-access-policy',
    'role-assignment-granted': 'remove-role-assignment',
    'rbac-authorization-disabled': 'restore-rbac-authorization',
    'diagnostic-setting-removed': 'restore-diagnostic-setting',
};

/** One step of a plan, with why and what. */
export interface PlannedAction {
    readonly action: ActionId;
    readonly rule: string;
    readonly summary: string;
    readonly detail: Readonly<Record<string, unknown>>;
}

/** An action that will not run, and why (already compliant, protected principal, RBAC vault ...). */
export interface SkippedAction {
    readonly action: ActionId;
    readonly rule: string;
    readonly reason: string;
    readonly detail: Readonly<Record<string, unknown>>;
}

/** The smallest change that brings a vault back to its policy. */
export interface RemediationPlan {
    /**
     * One PATCH: `networkAcls` complete (bypass, ipRules, virtualNetworkRules kept), `publicNetworkAccess` and/or
     * `enableRbacAuthorization`.
     */
    readonly patch:
        | {
              readonly networkAcls?: VaultNetworkAcls;
              readonly publicNetworkAccess?: string;
              readonly enableRbacAuthorization?: boolean;
          }
        | undefined;
    /** Entries for `vaults.updateAccessPolicy(..., 'remove', ...)`: exactly the permissions to take away. */
    readonly accessPolicyRemovals: readonly VaultAccessPolicy[];
    readonly actions: readonly PlannedAction[];
    readonly skipped: readonly SkippedAction[];
}
