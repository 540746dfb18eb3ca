// The responder's own Key Vault: RBAC authorization, purge protection, and the RSA key `ack-signing` that signs the
// acknowledge/undo links of alerts. The app identity may only use that key (Key Vault Crypto User on the key).

import { builtInRoles } from 'roles.bicep'

param location string
param name string
param signingKeyName string
param principalId string
param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
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

resource signingKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
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

output name string = vault.name
output vaultUri string = vault.properties.vaultUri
output signingKeyId string = signingKey.properties.keyUri
