// Custom role "kv-responder remediation" and its assignment to the responder identity, at a subscription.
// Its actions are exactly the union of ACTION_PERMISSIONS (shared/core/remediation/types.ts): read a vault, write it
// back (firewall default action, IP rules, public network access, the RBAC switch), write its access policies, read
// and delete role assignments (write for undo only) and read and write its diagnostic settings. No vault delete, no
// data-plane access.
// For a management group, deploy remediationRoleMg.bicep instead (see infra/README.md).

targetScope = 'subscription'

import { builtInRoles, remediationActions } from 'roles.bicep'

param principalId string
@description('The scope the role can be assigned at and is assigned at: `/subscriptions/<id>`.')
param protectedScope string

// Custom role names are unique per tenant: a second definition with the same roleName fails with
// RoleDefinitionWithSameNameExists (learn.microsoft.com/azure/role-based-access-control/custom-roles, "Custom role
// properties": roleName must be unique to the tenant). The name carries the assignable scope, so each subscription
// and each management group (remediationRoleMg.bicep) gets its own definition.
resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
    name: guid(protectedScope, 'kv-responder remediation')
    properties: {
        roleName: 'kv-responder remediation (subscription ${last(split(protectedScope, '/'))})'
        description: 'Lets kv-responder restore Key Vault firewall, public network access, access policies and the RBAC switch, delete unapproved role assignments and restore the audit diagnostic setting.'
        type: 'CustomRole'
        permissions: [
            {
                actions: remediationActions
                notActions: []
            }
        ]
        assignableScopes: [protectedScope]
    }
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(protectedScope, principalId, role.id)
    properties: {
        roleDefinitionId: role.id
        principalId: principalId
        principalType: 'ServicePrincipal'
    }
}

// Customer-managed key assurance reads key properties (enabled, expiry, type, size, tags, rotation policy) of the
// protected vaults: Key Vault Reader (metadata only; vaults on access policies need list/get/getrotationpolicy key
// permissions instead).
resource keyReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(protectedScope, principalId, builtInRoles.keyVaultReader)
    properties: {
        roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.keyVaultReader)
        principalId: principalId
        principalType: 'ServicePrincipal'
    }
}

output roleDefinitionId string = role.id
