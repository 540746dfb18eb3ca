/**
 * Azure built-in roles that give Key Vault data access, directly or by letting the assignee grant it. Role definition
 * ids (GUIDs) are the same in every tenant: Azure built-in roles, learn.microsoft.com/azure/role-based-access-control/built-in-roles
 * (sections "Security" for the Key Vault roles and "Privileged" for Owner, Contributor, User Access Administrator and
 * Role Based Access Control Administrator).
 */

/**
 * How a role reaches vault data: `data` reads or uses keys, secrets or certificates itself; `grant` can write role
 * assignments (so can give itself any `data` role); `access-policy` can write the vault (access policies, and the
 * RBAC switch on a vault still using them).
 */
export type RoleReach = 'data' | 'grant' | 'access-policy';

export interface KeyVaultRole {
    readonly id: string;
    readonly name: string;
    readonly reach: RoleReach;
}

export const KEY_VAULT_ROLES: readonly KeyVaultRole[] = [
    { id: '00482a5a-887f-4fb3-b363-3b7fe8e74483', name: 'Key Vault Administrator', reach: 'data' },
    { id: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7', name: 'Key Vault Secrets Officer', reach: 'data' },
    { id: '4633458b-17de-408a-b874-0445c86b69e6', name: 'Key Vault Secrets User', reach: 'data' },
    { id: '14b46e9e-c2b7-41b4-b07b-48a6ebf60603', name: 'Key Vault Crypto Officer', reach: 'data' },
    { id: '12338af0-0e69-4776-bea7-57ae8d297424', name: 'Key Vault Crypto User', reach: 'data' },
    { id: 'e147488a-f6f5-4113-8e2d-b22465e65bf6', name: 'Key Vault Crypto Service Encryption User', reach: 'data' },
    { id: '08bbd89e-9f13-488c-ac41-acfcb10c90ab', name: 'Key Vault Crypto Service Release User', reach: 'data' },
    { id: 'a4417e6f-fecd-4de8-b567-7b0420556985', name: 'Key Vault Certificates Officer', reach: 'data' },
    { id: 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba', name: 'Key Vault Certificate User', reach: 'data' },
    { id: '8b54135c-b56d-4d72-a534-26097cfdc8d8', name: 'Key Vault Data Access Administrator', reach: 'grant' },
    { id: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635', name: 'Owner', reach: 'grant' },
    { id: '18d7d88d-d35e-4fb5-a5c3-7773c20a72d9', name: 'User Access Administrator', reach: 'grant' },
    { id: 'f58310d9-a9f6-439a-9e8d-f62e7b41a168', name: 'Role Based Access Control Administrator', reach: 'grant' },
    { id: 'b24988ac-6180-42a0-ab88-20f7382dd24c', name: 'Contributor', reach: 'access-policy' },
    { id: 'f25e0fa2-a7c8-4377-a976-54943a77a395', name: 'Key Vault Contributor', reach: 'access-policy' },
];

const BY_ID = new Map(KEY_VAULT_ROLES.map((r) => [r.id, r]));
const BY_NAME = new Map(KEY_VAULT_ROLES.map((r) => [r.name.toLowerCase(), r]));
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The Key Vault-relevant built-in role with this definition GUID, if it is one. */
export function keyVaultRole(roleDefinitionId: string | undefined): KeyVaultRole | undefined {
    return roleDefinitionId === undefined ? undefined : BY_ID.get(roleDefinitionId.toLowerCase());
}

/**
 * A role named in the config (a built-in role name of the table above, any casing, or any role definition GUID) as a
 * lower-case GUID; undefined when it is neither.
 */
export function roleIdOf(nameOrId: string): string | undefined {
    const s = nameOrId.trim().toLowerCase();
    if (GUID.test(s)) return s;
    return BY_NAME.get(s)?.id;
}
