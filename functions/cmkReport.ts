import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleCmkReport } from '../shared/app/handlers/handleCmkReport';

// The live CMK dependency report (function key): GET /api/cmk/report[?format=table].
app.http('cmkReport', {
    route: 'cmk/report',
    methods: ['GET'],
    authLevel: 'function',
    handler: (request, context) => handleCmkReport(request, context, deps().cmkReport),
});
