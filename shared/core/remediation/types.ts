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

/** Action ids are part of the decision-log contract. */
export type ActionId =
    | 'restore-firewall-default'
    | 'remove-ip-rule'
    | 'remove-vnet-rule'
    | 'disable-public-network-access'
    | 'remove-access-policy';

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
};

/** Which rule's findings each action answers. */
export const ACTIONS_BY_RULE: Readonly<Record<string, ActionId>> = {
    'firewall-opened': 'restore-firewall-default',
    'firewall-ip-rule-added': 'remove-ip-rule',
    'firewall-vnet-rule-added': 'remove-vnet-rule',
    'public-network-access-enabled': 'disable-public-network-access',
    'access-policy-granted': 'remove-access-policy',
    'self-granted-access': 'remove-access-policy',
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
    /** One PATCH: `networkAcls` complete (bypass, ipRules, virtualNetworkRules kept) and/or `publicNetworkAccess`. */
    readonly patch: { readonly networkAcls?: VaultNetworkAcls; readonly publicNetworkAccess?: string } | undefined;
    /** Entries for `vaults.updateAccessPolicy(..., 'remove', ...)`: exactly the permissions to take away. */
    readonly accessPolicyRemovals: readonly VaultAccessPolicy[];
    readonly actions: readonly PlannedAction[];
    readonly skipped: readonly SkippedAction[];
}
