import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleCmkExpiry } from '../shared/app/handlers/handleCmkExpiry';

// Daily: customer-managed key versions in use that expire soon.
app.timer('cmkExpiry', {
    schedule: '0 0 6 * * *',
    handler: (timer, context) => handleCmkExpiry(timer, context, deps().cmkExpiry),
});
