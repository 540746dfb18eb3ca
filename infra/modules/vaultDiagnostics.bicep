// A diagnostic setting on one existing vault (deployed in the vault's resource group) that streams AuditEvent to the
// Key Vault log hub. For vaults the policy does not cover, or to avoid waiting for its evaluation cycle.
// A resource can have at most five diagnostic settings; the vault must be in the hub's region.
//
// Same name and same shape as the setting the built-in policy deploys (diagnosticsPolicy.bicep), so that the two
// agree instead of overwriting each other. The policy "Deploy Diagnostic Settings for Key Vault to Event Hub"
// (ed7c8c13-51e7-49d1-8a43-8490431a0da2; Azure/azure-policy,
// built-in-policies/policyDefinitions/Key Vault/KeyVault_DiagnosticLog_Deploy.json) looks for a setting named after
// its `profileName` parameter and calls it compliant when at least one `logs[*]` entry has `enabled` ==
// `logsEnabled` ('True') AND at least one `metrics[*]` entry has `enabled` == `metricsEnabled` ('False'). A setting
// of that name without a disabled metrics entry (as the `audit` category group alone was) is non-compliant: every
// policy evaluation would redeploy the policy's own shape over it and every run of this template would put it back.
// So: name = the policy's profileName, logs AuditEvent enabled, metrics AllMetrics present and disabled.
// test/bicep.test.ts evaluates that existence condition against the compiled template.

@description('Name of the vault (in the resource group this module is deployed to).')
param vaultName string
@description('Namespace authorization rule Azure Monitor streams through (Manage, Send, Listen).')
param eventHubRuleId string
@description('The log hub. The policy names none (Azure Monitor then picks insights-logs-auditevent), which is the default hub name.')
param eventHubName string
@description('Must equal the `profileName` of the policy assignment (diagnosticsPolicy.bicep) so both manage one setting.')
param settingName string = 'kv-responder'

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
    name: vaultName
}

// 2021-05-01-preview is the newest API version of Microsoft.Insights/diagnosticSettings; the only GA version the
// linter would accept, 2016-09-01, has no `eventHubName` (the compiler reports BCP037 for it). Hence this one
// suppression of use-recent-api-versions, on this one line.
#disable-next-line use-recent-api-versions
resource setting 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
    name: settingName
    scope: vault
    properties: {
        eventHubAuthorizationRuleId: eventHubRuleId
        eventHubName: eventHubName
        logs: [
            {
                category: 'AuditEvent'
                enabled: true
            }
        ]
        metrics: [
            {
                category: 'AllMetrics'
                enabled: false
            }
        ]
    }
}
