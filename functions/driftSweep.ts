import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleDriftSweep } from '../shared/app/handlers/handleReconcile';
import { driftSweepSchedule } from '../shared/app/reconcileSettings';

// Hourly by default (KVR_DRIFT_SWEEP_SCHEDULE): every known vault is reconciled against ARM, events or not.
app.timer('driftSweep', {
    schedule: driftSweepSchedule(process.env),
    handler: (timer, context) => handleDriftSweep(timer, context, deps().reconcile),
});
