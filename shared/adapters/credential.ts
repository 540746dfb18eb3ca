import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';

/**
 * The credential of every Azure client: the user-assigned managed identity when `AZURE_CLIENT_ID` is set (the Function
 * app, a container), else `DefaultAzureCredential` (a developer's sign-in, workload identity ...).
 */
export function credentialFor(clientId: string | undefined): TokenCredential {
    return clientId === undefined ? new DefaultAzureCredential() : new ManagedIdentityCredential({ clientId });
}
