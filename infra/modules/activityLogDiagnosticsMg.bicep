// The Activity Log of every subscription under a management group streamed to the responder's hub: a management
// group diagnostic setting (microsoft.insights/diagnosticSettings at the management group, which accepts the
// categories Administrative and Policy). Deploy it at the management group that is the protected scope, for
// example: az deployment mg create --management-group-id <mg> --location <region>
//   --template-file infra/modules/activityLogDiagnosticsMg.bicep --parameters eventHubRuleId=<EVENT_HUB_RULE_ID>
//   eventHubName=<hub>   (see infra/README.md). Same stream and reasons as activityLogDiagnostics.bicep.
targetScope = 'managementGroup'

@description('Namespace authorization rule Azure Monitor streams through (Manage, Send, Listen).')
param eventHubRuleId string
@description('The responder hub (the Key Vault log hub).')
param eventHubName string
@description('Setting name, unique among the management group\'s diagnostic settings.')
param settingName string = 'kv-responder-activity'

// Management group diagnostic settings have their own REST API, whose only version is 2020-01-01-preview
// (azure-rest-api-specs, specification/monitor/resource-manager/Microsoft.Insights/preview/2020-01-01-preview/
// managementGroupDiagnosticSettings_API.json, PUT /providers/Microsoft.Management/managementGroups/{id}/providers/
// Microsoft.Insights/diagnosticSettings/{name}); hence the suppression on this one line.
#disable-next-line use-recent-api-versions
resource setting 'Microsoft.Insights/diagnosticSettings@2020-01-01-preview' = {
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
