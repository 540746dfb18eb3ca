import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleAlertingTimer } from '../shared/app/handlers/handleAlertingTimer';

// Every minute: notification retries and escalation of unacknowledged incidents.
app.timer('alertingTimer', {
    schedule: '0 */1 * * * *',
    handler: (timer, context) => handleAlertingTimer(timer, context, deps()),
});
