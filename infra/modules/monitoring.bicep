// Log Analytics workspace + workspace-based Application Insights with local (instrumentation-key) authentication
// disabled: telemetry is accepted only from Microsoft Entra identities holding Monitoring Metrics Publisher.

import { builtInRoles } from 'roles.bicep'

param location string
param logAnalyticsName string
param applicationInsightsName string
param principalId string
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-07-01' = {
    name: logAnalyticsName
    location: location
    tags: tags
    properties: {
        sku: { name: 'PerGB2018' }
        retentionInDays: 30
    }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
    name: applicationInsightsName
    location: location
    tags: tags
    kind: 'web'
    properties: {
        Application_Type: 'web'
        WorkspaceResourceId: workspace.id
        DisableLocalAuth: true
    }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(appInsights.id, principalId, builtInRoles.monitoringMetricsPublisher)
    scope: appInsights
    properties: {
        roleDefinitionId: subscriptionResourceId(
            'Microsoft.Authorization/roleDefinitions',
            builtInRoles.monitoringMetricsPublisher
        )
        principalId: principalId
        principalType: 'ServicePrincipal'
    }
}

// The connection string holds the instrumentation key, an identifier rather than a secret: with DisableLocalAuth
// nothing is ingested without an Entra token.
output connectionString string = appInsights.properties.ConnectionString
output applicationInsightsName string = appInsights.name
output workspaceId string = workspace.id
