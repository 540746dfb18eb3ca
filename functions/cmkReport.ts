import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleCmkReport, handleCmkWeekly } from '../shared/app/handlers/handleCmkReport';

// The live CMK dependency report (function key), and its weekly summary notice (Mondays 07:00 UTC).
app.http('cmkReport', {
    route: 'cmk/report',
    methods: ['GET'],
    authLevel: 'function',
    handler: (request, context) => handleCmkReport(request, context, deps().cmkReport),
});

app.timer('cmkWeekly', {
    schedule: '0 0 7 * * 1',
    handler: (timer, context) => handleCmkWeekly(timer, context, deps().cmkReport),
});
