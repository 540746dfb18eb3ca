import { useAzureMonitor } from '@azure/monitor-opentelemetry';
import { credentialFor } from '../adapters/credential';
import { telemetrySettingsOf } from '../config/telemetrySettings';

let started = false;

/**
 * Registers the global OpenTelemetry providers that export to Application Insights with Entra ID auth, once per
 * process; a no-op without a connection string. It must run before the instrumented SDKs (Azure SDK clients, undici,
 * http) are loaded, or auto-instrumentation does not attach to them (deployment-contracts.md, "Azure Functions":
 * `useAzureMonitor()` before the instrumented SDKs). The Function app calls it from shared/app/telemetryFirst.ts, the
 * first module of the bundle.
 */
export function startTelemetry(env: Readonly<Record<string, string | undefined>>): boolean {
    if (started) return true;
    const s = telemetrySettingsOf(env);
    if (s.connectionString === undefined) return false;
    useAzureMonitor({
        azureMonitorExporterOptions: {
            connectionString: s.connectionString,
            credential: credentialFor(s.managedIdentityClientId),
        },
    });
    started = true;
    return true;
}
