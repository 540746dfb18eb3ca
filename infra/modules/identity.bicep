// The user-assigned managed identity the Function app runs as (AZURE_CLIENT_ID). Every data-plane and ARM grant of
// the responder goes to this identity, so it survives re-creating the app.

param location string
param name string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
    name: name
    location: location
    tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
