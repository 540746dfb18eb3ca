import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleCmkWeekly } from '../shared/app/handlers/handleCmkReport';

// Mondays 07:00 UTC: the CMK dependency report as a summary notice.
app.timer('cmkWeekly', {
    schedule: '0 0 7 * * 1',
    handler: (timer, context) => handleCmkWeekly(timer, context, deps().cmkReport),
});
