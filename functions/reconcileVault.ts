import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleReconcileVault } from '../shared/app/handlers/handleReconcile';
import { RECONCILE_QUEUE } from '../shared/adapters/storageReconcileQueue';
import { SettingNames } from '../shared/config/settingNames';

// One vault per message: reconcile it against ARM under its lease (host.json extensions.queues: retries, poison).
app.storageQueue('reconcileVault', {
    queueName: RECONCILE_QUEUE,
    connection: SettingNames.reconcileQueue,
    handler: (message, context) => handleReconcileVault(message, context, deps().reconcile),
});
