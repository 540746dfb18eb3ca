// The responder's own Key Vault: RBAC authorization, purge protection, and the RSA key `ack-signing` that signs the
// acknowledge/undo links of alerts. The app identity may only use that key (Key Vault Crypto User on the key) and, when
// Teams notices are configured, read the one secret `teams-webhook` (Key Vault Secrets User on that secret), which the
// app setting KVR_TEAMS_WEBHOOK_URL references.
//
// API version 2026-02-01: every Key Vault control-plane version before it retires on 27 February 2027
// (learn.microsoft.com/azure/key-vault/general/migrate-api-version). From 2026-02-01 a new vault defaults to Azure RBAC;
// `enableRbacAuthorization` is set explicitly anyway, so the model never depends on the API version's default.

import { builtInRoles } from 'roles.bicep'

param location string
param name string
param signingKeyName string
param principalId string
@secure()
@description('Teams Workflows webhook URL (a credential). Stored as the secret `teams-webhook`; empty: no secret, no grant.')
param teamsWebhookUrl string = ''
param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' = {
    name: name
    location: location
    tags: tags
    properties: {
        tenantId: subscription().tenantId
        sku: { family: 'A', name: 'standard' }
        enableRbacAuthorization: true
        enableSoftDelete: true
        softDeleteRetentionInDays: 90
        enablePurgeProtection: true
        publicNetworkAccess: 'Enabled'
        networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
    }
}

resource signingKey 'Microsoft.KeyVault/vaults/keys@2026-02-01' = {
    parent: vault
    name: signingKeyName
    properties: {
        kty: 'RSA'
        keySize: 3072
        keyOps: ['sign', 'verify']
    }
}

resource cryptoUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(signingKey.id, principalId, builtInRoles.keyVaultCryptoUser)
    scope: signingKey
    properties: {
        roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.keyVaultCryptoUser)
        principalId: principalId
        principalType: 'ServicePrincipal'
    }
}

// A Key Vault reference in an app setting resolves with the identity named by the site's `keyVaultReferenceIdentity`,
// which needs secret read on the referenced secret (App Service docs, "Use Key Vault references as app settings";
// with RBAC: Key Vault Secrets User). Without the grant the app receives the literal `@Microsoft.KeyVault(...)`.
resource teamsWebhook 'Microsoft.KeyVault/vaults/secrets@2026-02-01' = if (!empty(teamsWebhookUrl)) {
    parent: vault
    name: 'teams-webhook'
    properties: {
        value: teamsWebhookUrl
        contentType: 'text/uri-list'
    }
}

resource teamsWebhookReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(teamsWebhookUrl)) {
    name: guid(vault.id, 'teams-webhook', principalId, builtInRoles.keyVaultSecretsUser)
    scope: teamsWebhook
    properties: {
        roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.keyVaultSecretsUser)
        principalId: principalId
        principalType: 'ServicePrincipal'
    }
}

output name string = vault.name
output vaultUri string = vault.properties.vaultUri
output signingKeyId string = signingKey.properties.keyUri
@description('Versionless URI of the Teams webhook secret (the app resolves its latest version); empty without Teams.')
output teamsWebhookSecretUri string = teamsWebhook.?properties.secretUri ?? ''
