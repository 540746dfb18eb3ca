// Assigns the built-in policy "Deploy Diagnostic Settings for Key Vault to Event Hub" (deployIfNotExists) at a
// subscription, pointing at the namespace authorization rule. The assignment has a system-assigned identity that
// needs Contributor at the assignment scope to deploy diagnostic settings when remediating existing vaults.
// Remediation of vaults that existed before the assignment needs a remediation task (`az policy remediation create`).
// The policy sets no event hub name: Azure Monitor writes to `insights-logs-auditevent` (see eventHubs.bicep).

targetScope = 'subscription'

import { builtInRoles, diagnosticsPolicyDefinitionId } from 'roles.bicep'

param location string
param eventHubRuleId string
param eventHubLocation string
@description('Name of the diagnostic setting the policy deploys; the same name as vaultDiagnostics.bicep uses.')
param profileName string
param assignmentName string = 'kvr-kv-diagnostics-to-eh'

resource assignment 'Microsoft.Authorization/policyAssignments@2025-03-01' = {
    name: assignmentName
    location: location
    identity: { type: 'SystemAssigned' }
    properties: {
        displayName: 'kv-responder: stream Key Vault audit logs to Event Hubs'
        policyDefinitionId: diagnosticsPolicyDefinitionId
        parameters: {
            profileName: { value: profileName }
            eventHubRuleId: { value: eventHubRuleId }
            eventHubLocation: { value: eventHubLocation }
            metricsEnabled: { value: 'False' }
            logsEnabled: { value: 'True' }
        }
    }
}

resource remediationContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
    name: guid(assignment.id, builtInRoles.contributor)
    properties: {
        roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.contributor)
        principalId: assignment.identity.principalId
        principalType: 'ServicePrincipal'
    }
}

output assignmentId string = assignment.id
