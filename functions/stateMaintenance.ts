import { app } from '@azure/functions';
import { composeStateMaintenance, handleStateMaintenance } from '../shared/app/handlers/handleStateMaintenance';

const deps = composeStateMaintenance(process.env);

// Hourly, at minute 17: deletes rule state that expired more than a day ago, a bounded amount per run.
app.timer('stateMaintenance', {
    schedule: '0 17 * * * *',
    handler: (timer, context) => handleStateMaintenance(timer, context, deps),
});
