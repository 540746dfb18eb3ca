// The subscription's Activity Log streamed to the responder's hub: a subscription-scope diagnostic setting.
//
// Role assignments (MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE), diagnostic-setting changes on the vaults
// (MICROSOFT.INSIGHTS/DIAGNOSTICSETTINGS/WRITE|DELETE) and the control-plane writes, deletes and purges of the vaults
// are written to the Activity Log, category Administrative, not to a vault's AuditEvent log (learn.microsoft.com,
// "Azure Activity Log event schema"). `Policy` adds the deny and deployIfNotExists outcomes of Azure Policy.
// The responder reads both streams from one hub: the pipeline tells the two record shapes apart
// (shared/core/events/activity.ts), so the setting names the Key Vault log hub.
//
// Subscription diagnostic settings take logs only (no metrics, no retention). The Activity Log is global: unlike a
// vault's setting, the hub need not be in any particular region. A subscription has at most five settings.
// For a management group, deploy activityLogDiagnosticsMg.bicep at the management group instead (its own resource
// type, categories Administrative and Policy).
targetScope = 'subscription'

@description('Namespace authorization rule Azure Monitor streams through (Manage, Send, Listen).')
param eventHubRuleId string
@description('The responder hub (the Key Vault log hub).')
param eventHubName string
@description('Setting name, unique among the subscription\'s diagnostic settings.')
param settingName string = 'kv-responder-activity'

// 2021-05-01-preview is the newest API version of Microsoft.Insights/diagnosticSettings (see vaultDiagnostics.bicep
// for why the linter's recent-version rule is suppressed on this one line).
#disable-next-line use-recent-api-versions
resource setting 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
    name: settingName
    properties: {
        eventHubAuthorizationRuleId: eventHubRuleId
        eventHubName: eventHubName
        logs: [
            {
                category: 'Administrative'
                enabled: true
            }
            {
                category: 'Policy'
                enabled: true
            }
        ]
    }
}

output settingId string = setting.id
