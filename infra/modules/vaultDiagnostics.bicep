// A diagnostic setting on one existing vault (deployed in the vault's resource group): the `audit` category group
// to the Key Vault log hub. For vaults the policy does not cover, or to avoid waiting for its evaluation cycle.
// A resource can have at most five diagnostic settings; the vault must be in the hub's region.

param vaultName string
param eventHubRuleId string
param eventHubName string
param settingName string = 'kv-responder'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
    name: vaultName
}

resource setting 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
    name: settingName
    scope: vault
    properties: {
        eventHubAuthorizationRuleId: eventHubRuleId
        eventHubName: eventHubName
        logs: [
            {
                categoryGroup: 'audit'
                enabled: true
            }
        ]
    }
}
