// Storage account for the Functions host (identity-based AzureWebJobsStorage), the Flex Consumption deployment
// package, rule state (table) and quarantined input (blob container). Shared-key access is disabled: Flex Consumption
// deploys from the package container with the managed identity, and every client uses Microsoft Entra tokens.

import { builtInRoles } from 'roles.bicep'

param location string
param name string
param stateTableName string
param quarantineContainerName string
param deploymentContainerName string
param principalId string
param tags object = {}

resource account 'Microsoft.Storage/storageAccounts@2025-06-01' = {
    name: name
    location: location
    tags: tags
    sku: { name: 'Standard_LRS' }
    kind: 'StorageV2'
    properties: {
        minimumTlsVersion: 'TLS1_2'
        supportsHttpsTrafficOnly: true
        allowBlobPublicAccess: false
        allowSharedKeyAccess: false
        defaultToOAuthAuthentication: true
    }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
    parent: account
    name: 'default'
}

resource quarantine 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = {
    parent: blobService
    name: quarantineContainerName
    properties: { publicAccess: 'None' }
}

resource deployment 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = {
    parent: blobService
    name: deploymentContainerName
    properties: { publicAccess: 'None' }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-06-01' = {
    parent: account
    name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-06-01' = {
    parent: tableService
    name: stateTableName
}

// The reconcile work queue and its poison queue: the Functions queue trigger moves a message that failed
// maxDequeueCount times to `<queue>-poison` (Functions docs, "Azure Queue storage trigger"); both names are fixed in
// shared/adapters/storageReconcileQueue.ts.
resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-06-01' = {
    parent: account
    name: 'default'
}

resource reconcileQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-06-01' = [
    for q in ['kvr-reconcile', 'kvr-reconcile-poison']: {
        parent: queueService
        name: q
    }
]

// Account-level grants the identity-based host storage needs (blob leases and checkpoints, host queues and tables)
// plus the rule state table and the reconcile queues; the quarantine grant is scoped to its container.
var accountRoles = [
    builtInRoles.storageBlobDataOwner
    builtInRoles.storageQueueDataContributor
    builtInRoles.storageTableDataContributor
]

resource accountGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
    for roleId in accountRoles: {
        name: guid(account.id, principalId, roleId)
        scope: account
        properties: {
            roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
            principalId: principalId
            principalType: 'ServicePrincipal'
        }
    }
]

resource quarantineGrant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(quarantine.id, principalId, builtInRoles.storageBlobDataContributor)
    scope: quarantine
    properties: {
        roleDefinitionId: subscriptionResourceId(
            'Microsoft.Authorization/roleDefinitions',
            builtInRoles.storageBlobDataContributor
        )
        principalId: principalId
        principalType: 'ServicePrincipal'
    }
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output queueEndpoint string = account.properties.primaryEndpoints.queue
output quarantineContainerUrl string = '${account.properties.primaryEndpoints.blob}${quarantine.name}'
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deployment.name}'
output stateTableName string = stateTable.name
