// The Function app on Flex Consumption (Linux, Node 20), running as the user-assigned identity. Every connection is
// identity-based: the app settings below carry endpoints and names, never a key, SAS or connection string with a
// secret. Setting names are those of shared/config/settingNames.ts (test/infra.test.ts keeps them in step).
// Flex Consumption takes the runtime from functionAppConfig.runtime and rejects FUNCTIONS_WORKER_RUNTIME /
// FUNCTIONS_EXTENSION_VERSION in the app settings.

param location string
param name string
param planName string
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerUrl string
param eventHubsNamespace string
param eventHubName string
param consumerGroupName string
param stateTableEndpoint string
param stateTableName string
param quarantineContainerUrl string
param responderConfig string
param applicationInsightsConnectionString string
@description('Versionless id of the link-signing key, https://<vault>.vault.azure.net/keys/<name>.')
param signingKeyId string
@description('Base URL of acknowledge/undo links; empty: https://<app name>.azurewebsites.net.')
param publicUrl string = ''
@description('App setting value for the Teams Workflows webhook: a Key Vault reference, @Microsoft.KeyVault(SecretUri=...). Empty: no Teams notices.')
param teamsWebhookSetting string = ''
@description('Mailbox that sends alert email through Microsoft Graph. Empty: no email.')
param mailSender string = ''
@description('True when App Service Authentication fronts the app: links record the signed-in user.')
param trustEasyAuth bool = false
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048
param tags object = {}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
    name: planName
    location: location
    tags: tags
    kind: 'functionapp'
    sku: { name: 'FC1', tier: 'FlexConsumption' }
    properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
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
            runtime: { name: 'node', version: '20' }
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
                { name: 'KVR_QUARANTINE_CONTAINER_URL', value: quarantineContainerUrl }
                { name: 'KVR_CONFIG', value: responderConfig }
                // Alerting: links signed in Key Vault, the webhook URL only as a Key Vault reference.
                { name: 'KVR_PUBLIC_URL', value: empty(publicUrl) ? 'https://${name}.azurewebsites.net' : publicUrl }
                { name: 'KVR_SIGNING_KEY_ID', value: signingKeyId }
                { name: 'KVR_TEAMS_WEBHOOK_URL', value: teamsWebhookSetting }
                { name: 'KVR_MAIL_SENDER', value: mailSender }
                { name: 'KVR_TRUST_EASY_AUTH', value: trustEasyAuth ? 'true' : 'false' }
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

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
