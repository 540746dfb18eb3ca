// kv-responder: everything `azd up` deploys.
//
// Scope: subscription. The template creates the resource group of the responder, and the subscription-level pieces
// (the custom remediation role and its assignment, the built-in diagnostic-settings policy assignment) need a
// subscription-scope deployment. For a management group as protected scope, see modules/remediationRoleMg.bicep.
//
// Steps that cannot be templated (see infra/README.md):
// - Email alerts: assign the identity's service principal the Exchange Online RBAC for Applications role
//   "Application Mail.Send" scoped to the alert mailbox (New-ManagementScope + New-ManagementRoleAssignment), and
//   remove any Entra ID consent of Graph Mail.Send: the two grants add up, so a tenant-wide consent would let the app
//   send as any mailbox (learn.microsoft.com/exchange/permissions-exo/application-rbac).
// - Teams alerts: create the Teams Workflows webhook ("When a Teams webhook request is received") in the Teams
//   client and pass its URL as the secure parameter teamsWebhookUrl (it is stored in the responder's vault).
// - Built-in authentication of the incident links: an Entra ID app registration (authClientId).

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds resource names.')
param environmentName string

@description('Region of every resource. Must be the region of the protected vaults (Event Hubs destination rule).')
param location string

@minLength(2)
@maxLength(10)
@description('Short prefix of resource names.')
param namePrefix string = 'kvr'

@minValue(1)
@maxValue(32)
@description('Partitions of the Key Vault log hub (fixed after creation on Standard).')
param eventHubPartitionCount int = 4

@description('Name of the Key Vault log hub. `insights-logs-auditevent` is where the built-in policy (which sets no hub name) makes Azure Monitor write.')
param eventHubName string = 'insights-logs-auditevent'

@description('Scope of the custom remediation role: `/subscriptions/<id>`. Defaults to this subscription. For a management group, leave the default and deploy modules/remediationRoleMg.bicep.')
param protectedScope string = subscription().id

@description('Subscription id where the diagnostic-settings policy is assigned (empty: do not assign it).')
param policyAssignmentSubscriptionId string = subscription().subscriptionId

@description('Stream the protected subscription\'s Activity Log (Administrative, Policy) to the hub: role assignments, diagnostic-setting changes and vault deletes are written there, not to AuditEvent. For a management group, deploy modules/activityLogDiagnosticsMg.bicep instead.')
param streamActivityLog bool = true

@description('Resource ids of existing vaults that get a diagnostic setting to the hub directly.')
param vaultResourceIds array = []

@description('Responder config as JSON (KVR_CONFIG), see config.schema.json.')
param responderConfigJson string = '{}'

@description('Base URL of acknowledge/undo links (empty: the app default host name).')
param publicUrl string = ''

@secure()
@description('Teams Workflows webhook URL (a credential). Stored as the secret `teams-webhook` in the responder vault; the app setting is a Key Vault reference to it and the app identity may read that one secret. Empty: no Teams notices.')
param teamsWebhookUrl string = ''

@description('Mailbox that sends alert email (Graph Mail.Send scoped to it with Exchange Online RBAC for Applications). Empty: no email.')
param mailSender string = ''

@description('Client id of an Entra ID app registration for App Service Authentication on the incident links (/api/incidents/*). Empty: off. See infra/README.md.')
param authClientId string = ''

@description('Resource id of an existing subnet, delegated to Microsoft.App/environments, for the app\'s virtual network integration. Needed to read the data plane of vaults whose firewall denies by default. Empty: none.')
param appSubnetId string = ''

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))
var stateTableName = 'kvrstate'
var quarantineContainerName = 'kvr-quarantine'
var deploymentContainerName = 'app-package-${take(token, 8)}'
var consumerGroupName = 'kv-responder'
// One name for the diagnostic setting on every vault, whoever creates it: the policy (its `profileName`) or
// vaultDiagnostics.bicep. Same name and shape, so they never overwrite each other (see vaultDiagnostics.bicep).
var diagnosticSettingName = 'kv-responder'

resource rg 'Microsoft.Resources/resourceGroups@2025-04-01' = {
    name: 'rg-${namePrefix}-${environmentName}'
    location: location
    tags: tags
}

module identity 'modules/identity.bicep' = {
    scope: rg
    name: 'identity'
    params: {
        location: location
        name: 'id-${namePrefix}-${token}'
        tags: tags
    }
}

module monitoring 'modules/monitoring.bicep' = {
    scope: rg
    name: 'monitoring'
    params: {
        location: location
        logAnalyticsName: 'log-${namePrefix}-${token}'
        applicationInsightsName: 'appi-${namePrefix}-${token}'
        principalId: identity.outputs.principalId
        tags: tags
    }
}

module eventHubs 'modules/eventHubs.bicep' = {
    scope: rg
    name: 'eventHubs'
    params: {
        location: location
        namespaceName: 'evhns-${namePrefix}-${token}'
        eventHubName: eventHubName
        partitionCount: eventHubPartitionCount
        consumerGroupName: consumerGroupName
        receiverPrincipalId: identity.outputs.principalId
        tags: tags
    }
}

module storage 'modules/storage.bicep' = {
    scope: rg
    name: 'storage'
    params: {
        location: location
        name: take('st${namePrefix}${token}', 24)
        stateTableName: stateTableName
        quarantineContainerName: quarantineContainerName
        deploymentContainerName: deploymentContainerName
        principalId: identity.outputs.principalId
        tags: tags
    }
}

module keyVault 'modules/keyVault.bicep' = {
    scope: rg
    name: 'keyVault'
    params: {
        location: location
        name: take('kv-${namePrefix}-${token}', 24)
        signingKeyName: 'ack-signing'
        principalId: identity.outputs.principalId
        teamsWebhookUrl: teamsWebhookUrl
        tags: tags
    }
}

module functionApp 'modules/functionApp.bicep' = {
    scope: rg
    name: 'functionApp'
    params: {
        location: location
        name: 'func-${namePrefix}-${token}'
        planName: 'plan-${namePrefix}-${token}'
        identityId: identity.outputs.id
        identityClientId: identity.outputs.clientId
        identityPrincipalId: identity.outputs.principalId
        storageAccountName: storage.outputs.name
        deploymentContainerUrl: storage.outputs.deploymentContainerUrl
        eventHubsNamespace: eventHubs.outputs.fullyQualifiedNamespace
        eventHubsNamespaceId: eventHubs.outputs.namespaceId
        eventHubName: eventHubs.outputs.eventHubName
        consumerGroupName: eventHubs.outputs.consumerGroupName
        stateTableEndpoint: storage.outputs.tableEndpoint
        reconcileQueueEndpoint: storage.outputs.queueEndpoint
        stateTableName: storage.outputs.stateTableName
        quarantineContainerUrl: storage.outputs.quarantineContainerUrl
        responderConfig: responderConfigJson
        applicationInsightsConnectionString: monitoring.outputs.connectionString
        signingKeyId: keyVault.outputs.signingKeyId
        publicUrl: publicUrl
        teamsWebhookSecretUri: keyVault.outputs.teamsWebhookSecretUri
        mailSender: mailSender
        authClientId: authClientId
        virtualNetworkSubnetId: appSubnetId
        tags: tags
    }
}

var protectedIsSubscription = startsWith(toLower(protectedScope), '/subscriptions/')

module remediationRole 'modules/remediationRole.bicep' = if (protectedIsSubscription) {
    scope: subscription(last(split(protectedScope, '/')))
    name: 'kvr-remediation-role'
    params: {
        principalId: identity.outputs.principalId
        protectedScope: protectedScope
    }
}

module diagnosticsPolicy 'modules/diagnosticsPolicy.bicep' = if (!empty(policyAssignmentSubscriptionId)) {
    scope: subscription(policyAssignmentSubscriptionId)
    name: 'kvr-diagnostics-policy'
    params: {
        location: location
        eventHubRuleId: eventHubs.outputs.authorizationRuleId
        eventHubLocation: location
        profileName: diagnosticSettingName
    }
}

// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>
module vaultDiagnostics 'modules/vaultDiagnostics.bicep' = [
    for (vaultId, i) in vaultResourceIds: {
        scope: resourceGroup(split(vaultId, '/')[2], split(vaultId, '/')[4])
        name: 'kvr-vault-diagnostics-${i}'
        params: {
            vaultName: last(split(vaultId, '/'))
            eventHubRuleId: eventHubs.outputs.authorizationRuleId
            eventHubName: eventHubs.outputs.eventHubName
            settingName: diagnosticSettingName
        }
    }
]

// The protected subscription's Activity Log, to the same hub (see modules/activityLogDiagnostics.bicep).
module activityLogDiagnostics 'modules/activityLogDiagnostics.bicep' = if (streamActivityLog && protectedIsSubscription) {
    scope: subscription(last(split(protectedScope, '/')))
    name: 'kvr-activity-log-diagnostics'
    params: {
        eventHubRuleId: eventHubs.outputs.authorizationRuleId
        eventHubName: eventHubs.outputs.eventHubName
    }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output RESPONDER_CLIENT_ID string = identity.outputs.clientId
output RESPONDER_PRINCIPAL_ID string = identity.outputs.principalId
output EVENT_HUBS_NAMESPACE string = eventHubs.outputs.fullyQualifiedNamespace
output EVENT_HUB_RULE_ID string = eventHubs.outputs.authorizationRuleId
output ACK_SIGNING_KEY_ID string = keyVault.outputs.signingKeyId
output KEY_VAULT_URI string = keyVault.outputs.vaultUri
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output REMEDIATION_ROLE_SCOPE string = protectedScope
