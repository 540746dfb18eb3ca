// The one place for role and policy definition ids. Imported (compile-time) by the other templates:
//   import { builtInRoles, diagnosticsPolicyDefinitionId } from 'roles.bicep'
// Ids checked against the Azure built-in roles reference (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
// test/infra.test.ts keeps the same name -> id map and fails if a template uses any other built-in role id.

@export()
@description('Built-in Azure role definition ids (GUIDs), by role name.')
var builtInRoles = {
    // Azure Event Hubs Data Receiver: the trigger reads the Key Vault log hub.
    eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
    // Storage Table Data Contributor: rule state (KVR_STATE), Functions host tables.
    storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
    // Storage Blob Data Contributor: quarantine blobs (KVR_QUARANTINE_CONTAINER_URL), scoped to that container.
    storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
    // Storage Blob Data Owner: identity-based AzureWebJobsStorage (host leases, Event Hubs checkpoints) and the
    // Flex Consumption deployment container.
    storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
    // Storage Queue Data Contributor: identity-based AzureWebJobsStorage (host queues).
    storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
    // Key Vault Crypto User: sign/verify acknowledgement links with the `ack-signing` key.
    keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
    // Key Vault Secrets User: read the one secret `teams-webhook` that the Key Vault reference of
    // KVR_TEAMS_WEBHOOK_URL points at (scoped to that secret).
    keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
    // Reader: `kvr doctor` reads the Event Hubs namespace, its hub and consumer group through ARM (control plane).
    reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
    // Key Vault Reader: key metadata and public material of the protected vaults (CMK state, expiry and posture);
    // no secret values, no private key operations.
    keyVaultReader: '21090545-7ca7-4776-b22c-e363652d74d2'
    // Monitoring Metrics Publisher: Application Insights ingestion with Microsoft Entra authentication.
    monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
    // Contributor: the managed identity of the deployIfNotExists policy assignment (remediation tasks).
    contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
}

@export()
@description('Built-in policy "Deploy Diagnostic Settings for Key Vault to Event Hub" (deployIfNotExists).')
var diagnosticsPolicyDefinitionId = '/providers/Microsoft.Authorization/policyDefinitions/ed7c8c13-51e7-49d1-8a43-8490431a0da2'

@export()
@description('The ARM actions of the custom remediation role: the union of ACTION_PERMISSIONS (shared/core/remediation/types.ts).')
var remediationActions = [
    'Microsoft.KeyVault/vaults/read'
    'Microsoft.KeyVault/vaults/write'
    'Microsoft.KeyVault/vaults/accessPolicies/write'
    // The firewall actions PATCH `networkAcls` complete, so they send the vault's virtual network rules back as read.
    // Securing a resource to a subnet needs this action on the subnet (learn.microsoft.com/azure/virtual-network/
    // virtual-network-service-endpoints-overview, "Provisioning"), and ARM checks such linked scopes on the request
    // body, changed or not: a PATCH that re-sends unchanged subnet references is refused with LinkedAuthorizationFailed
    // without it (seen for App Service access restrictions, Azure/azure-cli#14857). Without this action, remediation
    // of any vault that has a VNet rule would fail. It adds no reach the role lacks: it only lets the identity link the
    // resources it may already write (vaults) to subnets, and vaults/write alone can open a firewall completely.
    // Subnets outside the assignable scope need the same action granted where they live (infra/README.md).
    'Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action'
    // remove-role-assignment (issue 15): read the assignment by id before and after deleting it, delete it. No
    // roleAssignments/write: it would let this identity assign any role (Owner included) at the protected scope. Undo
    // of a deleted assignment is manual, with the person's own rights (docs/remediation.md).
    'Microsoft.Authorization/roleAssignments/read'
    'Microsoft.Authorization/roleAssignments/delete'
    // restore-diagnostic-setting: list the vault's settings and write the templates' setting back (undo writes the
    // previous one back). No diagnosticSettings/delete: undo of a setting the responder created is a manual delete.
    'Microsoft.Insights/diagnosticSettings/read'
    'Microsoft.Insights/diagnosticSettings/write'
]
