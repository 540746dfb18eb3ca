import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleReconcilePoison } from '../shared/app/handlers/handleReconcile';
import { RECONCILE_POISON_QUEUE } from '../shared/adapters/storageReconcileQueue';
import { SettingNames } from '../shared/config/settingNames';

// A reconcile that failed maxDequeueCount times: a critical remediation-failed alert naming the vault and last error.
app.storageQueue('reconcilePoison', {
    queueName: RECONCILE_POISON_QUEUE,
    connection: SettingNames.reconcileQueue,
    handler: (message, context) => handleReconcilePoison(message, context, deps().reconcile),
});
