// Management-group variant of remediationRole.bicep: the same custom role, defined and assigned at a management
// group. A subscription-scope deployment (main.bicep) cannot deploy to a management group, so this file is deployed
// on its own when the protected scope is a management group:
//   az deployment mg create --management-group-id <mg> --location <region> \
//       --template-file infra/modules/remediationRoleMg.bicep --parameters principalId=<identity principal id>

targetScope = 'managementGroup'

import { builtInRoles, remediationActions } from 'roles.bicep'

@description('Principal id of the responder managed identity (output RESPONDER_PRINCIPAL_ID of main.bicep).')
param principalId string

var protectedScope = managementGroup().id

// Role names are unique per tenant (see remediationRole.bicep): this one names its management group.
resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
    name: guid(protectedScope, 'kv-responder remediation')
    properties: {
        roleName: 'kv-responder remediation (management group ${managementGroup().name})'
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

// Key Vault Reader for customer-managed key assurance (see remediationRole.bicep).
resource keyReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(protectedScope, principalId, builtInRoles.keyVaultReader)
    properties: {
        roleDefinitionId: tenantResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.keyVaultReader)
        principalId: principalId
        principalType: 'ServicePrincipal'
    }
}

output roleDefinitionId string = role.id
