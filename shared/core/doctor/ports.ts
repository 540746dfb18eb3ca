/** The ports of `kvr doctor`: what its checks ask of the outside world (adapters in shared/adapters/doctorProbes.ts). */
import type { VaultRef } from '../events/types';
import type { VaultSnapshot } from '../remediation/types';
import type { DiagnosticSettingWire, RbacPermission } from './report';

/** A failure of an external call, as the adapters report it. */
export interface ProbeError {
    readonly statusCode?: number | undefined;
    readonly code?: string | undefined;
    readonly message?: string | undefined;
}

/** A storage resource the app writes: a write, a read back and a delete of one probe item. */
export interface StorageProbe {
    /** What is probed, for the report (account/table, container URL, queue). */
    readonly target: string;
    /** Writes, reads back and deletes one probe item; resolves to a one-line description. Throws on any failure. */
    roundTrip(signal: AbortSignal): Promise<string>;
    /** Releases its connections, if it holds any. */
    close?(): Promise<void>;
}

export interface DoctorProbes {
    /** `vaults.get` through `@azure/arm-keyvault`. */
    readVault(vault: VaultRef, signal: AbortSignal): Promise<VaultSnapshot>;
    /** `GET {scope}/providers/Microsoft.Authorization/permissions` (2022-04-01): the `value` list. */
    permissionsAt(scope: string, signal: AbortSignal): Promise<readonly RbacPermission[]>;
    /** `GET {resourceId}/providers/Microsoft.Insights/diagnosticSettings` (2021-05-01-preview): the `value` list. */
    diagnosticSettings(resourceId: string, signal: AbortSignal): Promise<readonly DiagnosticSettingWire[]>;
    /** A plain ARM GET of a resource; throws with `statusCode` 404 when it does not exist. */
    armGet(resourceId: string, apiVersion: string, signal: AbortSignal): Promise<Record<string, unknown>>;
    /** Lists key properties of a vault over its data plane (one page); resolves to how many keys the page had. */
    listKeys(vaultUrl: string, signal: AbortSignal): Promise<number>;
}
