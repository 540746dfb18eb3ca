import { SettingNames } from './settingNames';

/** What telemetry needs to start, read before anything else loads (see shared/app/telemetryFirst.ts). */
export interface TelemetrySettings {
    /** Application Insights connection string (no secret: Entra auth); undefined turns telemetry off. */
    readonly connectionString: string | undefined;
    /** Client id of the user-assigned managed identity that authenticates the exporter. */
    readonly managedIdentityClientId: string | undefined;
}

const nonEmpty = (v: string | undefined): string | undefined => {
    const t = v?.trim();
    return t === undefined || t.length === 0 ? undefined : t;
};

/**
 * The telemetry settings alone. Kept apart from `loadSettings` on purpose: this module imports no SDK, so reading it
 * does not load the instrumented Azure SDKs before telemetry starts.
 */
export function telemetrySettingsOf(env: Readonly<Record<string, string | undefined>>): TelemetrySettings {
    return {
        connectionString: nonEmpty(env[SettingNames.appInsightsConnectionString]),
        managedIdentityClientId: nonEmpty(env[SettingNames.managedIdentityClientId]),
    };
}
