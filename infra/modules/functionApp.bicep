// The Function app on Flex Consumption (Linux, Node 22), running as the user-assigned identity. Every connection is
// identity-based: the app settings below carry endpoints and names, never a key, SAS or connection string with a
// secret. Setting names are those of shared/config/settingNames.ts (test/infra.test.ts keeps them in step).
// Flex Consumption takes the runtime from functionAppConfig.runtime and rejects FUNCTIONS_WORKER_RUNTIME /
// FUNCTIONS_EXTENSION_VERSION in the app settings.

param location string
param name string
param planName string
param identityId string
param identityClientId string
@description('Principal (object) id of the same identity: the app adds it to responderIdentities (KVR_RESPONDER_PRINCIPAL_ID).')
param identityPrincipalId string
param storageAccountName string
param deploymentContainerUrl string
param eventHubsNamespace string
@description('ARM resource id of the Event Hubs namespace (kvr doctor checks the hub and consumer group through ARM).')
param eventHubsNamespaceId string
param eventHubName string
param consumerGroupName string
param stateTableEndpoint string
@description('Queue service endpoint of the reconcile queues (kvr-reconcile, kvr-reconcile-poison).')
param reconcileQueueEndpoint string
param stateTableName string
param quarantineContainerUrl string
param responderConfig string
param applicationInsightsConnectionString string
@description('Versionless id of the link-signing key, https://<vault>.vault.azure.net/keys/<name>.')
param signingKeyId string
@description('Base URL of acknowledge/undo links; empty: https://<app name>.azurewebsites.net.')
param publicUrl string = ''
@description('Versionless URI of the Key Vault secret holding the Teams Workflows webhook URL. Empty: no Teams notices.')
param teamsWebhookSecretUri string = ''
@description('Mailbox that sends alert email through Microsoft Graph. Empty: no email.')
param mailSender string = ''
@description('Client id of the Entra ID app registration for App Service Authentication on the incident links. Empty: no built-in authentication (the signed link token alone authorizes).')
param authClientId string = ''
@description('Resource id of an existing subnet (delegated to Microsoft.App/environments) for virtual network integration. Empty: none.')
param virtualNetworkSubnetId string = ''
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048
param tags object = {}

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
    name: planName
    location: location
    tags: tags
    kind: 'functionapp'
    sku: { name: 'FC1', tier: 'FlexConsumption' }
    properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2025-03-01' = {
    name: name
    location: location
    // azd deploys the `kv-responder` service of azure.yaml to the app carrying this tag.
    tags: union(tags, { 'azd-service-name': 'kv-responder' })
    kind: 'functionapp,linux'
    identity: {
        type: 'UserAssigned'
        userAssignedIdentities: { '${identityId}': {} }
    }
    properties: {
        serverFarmId: plan.id
        httpsOnly: true
        // Key Vault references in app settings (the Teams webhook) resolve with the app's user-assigned identity.
        keyVaultReferenceIdentity: identityId
        // Optional virtual network integration (Flex Consumption: a subnet delegated to Microsoft.App/environments,
        // learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#enable-virtual-network-integration).
        // Functions is not a Key Vault trusted service: data-plane reads (key state, posture) of a vault whose
        // firewall says `defaultAction: Deny` need this subnet in the vault's virtual network rules (service endpoint
        // Microsoft.KeyVault on the subnet) or a private endpoint reachable from it; otherwise they answer 403
        // (learn.microsoft.com/azure/key-vault/general/overview-vnet-service-endpoints, trusted services list).
        virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
        functionAppConfig: {
            deployment: {
                storage: {
                    type: 'blobContainer'
                    value: deploymentContainerUrl
                    authentication: {
                        type: 'UserAssignedIdentity'
                        userAssignedIdentityResourceId: identityId
                    }
                }
            }
            scaleAndConcurrency: {
                maximumInstanceCount: maximumInstanceCount
                instanceMemoryMB: instanceMemoryMB
            }
            // Node 22: Node 20 support on Functions ended 2026-04-30 (learn.microsoft.com/azure/azure-functions/
            // supported-languages).
            runtime: { name: 'node', version: '22' }
        }
        siteConfig: {
            minTlsVersion: '1.2'
            ftpsState: 'Disabled'
            appSettings: [
                // Functions host storage, identity-based.
                { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
                { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
                { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
                // Event Hubs trigger connection `KV_LOGS_EVENTHUB` (SettingNames.eventHubConnection).
                { name: 'KV_LOGS_EVENTHUB__fullyQualifiedNamespace', value: eventHubsNamespace }
                { name: 'KV_LOGS_EVENTHUB__credential', value: 'managedidentity' }
                { name: 'KV_LOGS_EVENTHUB__clientId', value: identityClientId }
                { name: 'KV_LOGS_HUB', value: eventHubName }
                { name: 'KV_LOGS_CONSUMER_GROUP', value: consumerGroupName }
                // Rule state in Table Storage (https endpoint: managed identity, not a connection string).
                { name: 'KVR_STATE', value: stateTableEndpoint }
                { name: 'KVR_STATE_TABLE', value: stateTableName }
                { name: 'KVR_EVENTHUB_NAMESPACE_ID', value: eventHubsNamespaceId }
                // Identity-based queue connection for the reconcile trigger and the app (docs/remediation.md).
                { name: 'KVR_RECONCILE_QUEUE__queueServiceUri', value: reconcileQueueEndpoint }
                { name: 'KVR_RECONCILE_QUEUE__credential', value: 'managedidentity' }
                { name: 'KVR_RECONCILE_QUEUE__clientId', value: identityClientId }
                { name: 'KVR_QUARANTINE_CONTAINER_URL', value: quarantineContainerUrl }
                { name: 'KVR_CONFIG', value: responderConfig }
                // Alerting: links signed in Key Vault, the webhook URL only as a Key Vault reference.
                { name: 'KVR_PUBLIC_URL', value: empty(publicUrl) ? 'https://${name}.azurewebsites.net' : publicUrl }
                { name: 'KVR_SIGNING_KEY_ID', value: signingKeyId }
                {
                    name: 'KVR_TEAMS_WEBHOOK_URL'
                    value: empty(teamsWebhookSecretUri) ? '' : '@Microsoft.KeyVault(SecretUri=${teamsWebhookSecretUri})'
                }
                { name: 'KVR_MAIL_SENDER', value: mailSender }
                // Links read the signed-in user from the headers App Service Authentication sets, only when it is on.
                { name: 'KVR_TRUST_EASY_AUTH', value: empty(authClientId) ? 'false' : 'true' }
                // The responder's own identity (object id): the app counts it among responderIdentities, so its own
                // reads raise no new-app-access finding and its own changes are never answered (loop guard).
                { name: 'KVR_RESPONDER_PRINCIPAL_ID', value: identityPrincipalId }
                // Read by @azure/identity (DefaultAzureCredential / ManagedIdentityCredential).
                { name: 'AZURE_CLIENT_ID', value: identityClientId }
                // Application Insights with Microsoft Entra authentication (local auth is disabled on the resource).
                { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
                {
                    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
                    value: 'ClientId=${identityClientId};Authorization=AAD'
                }
            ]
        }
    }
}

// App Service Authentication (Easy Auth, authsettingsV2) in front of the incident links only: /api/incidents/* need a
// signed-in Entra ID user (RedirectToLoginPage); every other path is excluded, so function-key endpoints and the
// host's own endpoints keep working (triggers such as Event Hubs and timers do not go through the front end at all).
// excludedPaths takes exact paths and a trailing `/*` wildcard (MicrosoftDocs/azure-docs#86514, product team answer).
// No client secret: the id_token (implicit) sign-in flow, so the app registration must allow ID tokens and have the
// redirect URI https://<host>/.auth/login/aad/callback (learn.microsoft.com/azure/app-service/
// configure-authentication-provider-aad). test/infra.test.ts checks that every HTTP route of functions/ other than the
// links is excluded.
var authExcludedPaths = [
    '/api/cmk/*'
    '/api/doctor'
    '/admin/*'
    '/runtime/*'
]

resource auth 'Microsoft.Web/sites/config@2025-03-01' = if (!empty(authClientId)) {
    parent: app
    name: 'authsettingsV2'
    properties: {
        platform: { enabled: true }
        globalValidation: {
            requireAuthentication: true
            unauthenticatedClientAction: 'RedirectToLoginPage'
            redirectToProvider: 'azureactivedirectory'
            excludedPaths: authExcludedPaths
        }
        identityProviders: {
            azureActiveDirectory: {
                enabled: true
                registration: {
                    clientId: authClientId
                    openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
                }
                validation: {
                    allowedAudiences: [authClientId, 'api://${authClientId}']
                }
            }
        }
        login: {
            tokenStore: { enabled: false }
        }
        httpSettings: {
            requireHttps: true
        }
    }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
