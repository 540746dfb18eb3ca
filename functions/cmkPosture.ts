import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleCmkPosture } from '../shared/app/handlers/handleCmkPosture';

// Daily at 05:30 UTC: reads the keys of cmk.posture.vaults and reports the posture findings through alerting.
app.timer('cmkPosture', {
    schedule: '0 30 5 * * *',
    handler: (timer, context) => handleCmkPosture(timer, context, deps().cmkPosture),
});
