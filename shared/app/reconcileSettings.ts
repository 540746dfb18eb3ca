import type { QueueLocation } from '../adapters/storageReconcileQueue';
import { RECONCILE_QUEUE } from '../adapters/storageReconcileQueue';
import { ReconcileSettingNames, SettingNames } from '../config/settingNames';

export const DEFAULT_DRIFT_SWEEP_SCHEDULE = '0 41 * * * *';

/** Where the reconcile queue is, from the app settings; undefined when none is configured. Throws on a bad value. */
export function queueLocationOf(env: Readonly<Record<string, string | undefined>>): QueueLocation | undefined {
    const name = SettingNames.reconcileQueue;
    const connectionString = env[name]?.trim();
    if (connectionString !== undefined && connectionString !== '')
        return { kind: 'connection-string', connectionString, queue: RECONCILE_QUEUE };
    const url = env[`${name}__queueServiceUri`]?.trim();
    if (url === undefined || url === '') return undefined;
    if (!url.startsWith('https://'))
        throw new Error(`${name}__queueServiceUri must be an https URL (https://<account>.queue.core.windows.net)`);
    return { kind: 'url', url, queue: RECONCILE_QUEUE };
}

/** The drift sweep's NCRONTAB schedule (six fields), default hourly. */
export function driftSweepSchedule(env: Readonly<Record<string, string | undefined>>): string {
    const v = env[ReconcileSettingNames.driftSweepSchedule]?.trim();
    if (v === undefined || v === '') return DEFAULT_DRIFT_SWEEP_SCHEDULE;
    if (v.split(/\s+/).length !== 6)
        throw new Error(
            `${ReconcileSettingNames.driftSweepSchedule} must be a six-field NCRONTAB expression, got "${v}"`,
        );
    return v;
}
