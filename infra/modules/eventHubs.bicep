// Event Hubs namespace (Standard) for the Key Vault resource logs.
//
// - The hub is named `insights-logs-auditevent` by default: the built-in policy sets no event hub name, so Azure
//   Monitor writes each category to `insights-logs-<category>` in the namespace; creating that hub up front lets us
//   choose its partition count and add the responder's consumer group. Direct diagnostic settings
//   (vaultDiagnostics.bicep) name the same hub.
// - Azure Monitor streams through a namespace-level authorization rule ("Streaming to event hubs requires Manage,
//   Send, and Listen permissions", Azure Monitor diagnostic settings docs). That rule is used only by Azure Monitor;
//   the responder itself connects with its managed identity (Azure Event Hubs Data Receiver on the hub) and never
//   reads a key.
// - Event hubs must be in the same region as the vaults they receive logs from.

import { builtInRoles } from 'roles.bicep'

param location string
param namespaceName string
param eventHubName string
param partitionCount int
param consumerGroupName string
param receiverPrincipalId string
param tags object = {}

resource namespace 'Microsoft.EventHub/namespaces@2026-01-01' = {
    name: namespaceName
    location: location
    tags: tags
    sku: { name: 'Standard', tier: 'Standard', capacity: 1 }
    properties: {
        minimumTlsVersion: '1.2'
        // Keys stay enabled: Azure Monitor diagnostic settings stream through the authorization rule below.
        disableLocalAuth: false
    }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2026-01-01' = {
    parent: namespace
    name: eventHubName
    properties: {
        partitionCount: partitionCount
        messageRetentionInDays: 7
    }
}

resource consumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2026-01-01' = {
    parent: hub
    name: consumerGroupName
}

resource monitorRule 'Microsoft.EventHub/namespaces/authorizationRules@2026-01-01' = {
    parent: namespace
    name: 'azure-monitor-diagnostics'
    properties: {
        rights: ['Manage', 'Send', 'Listen']
    }
}

resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(hub.id, receiverPrincipalId, builtInRoles.eventHubsDataReceiver)
    scope: hub
    properties: {
        roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.eventHubsDataReceiver)
        principalId: receiverPrincipalId
        principalType: 'ServicePrincipal'
    }
}

// Control-plane read of the namespace, for kvr doctor's hub and consumer-group checks (docs/doctor.md).
resource namespaceReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(namespace.id, receiverPrincipalId, builtInRoles.reader)
    scope: namespace
    properties: {
        roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.reader)
        principalId: receiverPrincipalId
        principalType: 'ServicePrincipal'
    }
}

output namespaceName string = namespace.name
output namespaceId string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output eventHubName string = hub.name
output consumerGroupName string = consumerGroup.name
output authorizationRuleId string = monitorRule.id
