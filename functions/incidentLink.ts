import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleIncidentLink } from '../shared/app/handlers/handleIncidentLink';

// Anonymous on purpose: the signed token in the link is the authorization (bound to one incident and action, with an
// expiry, usable once); a GET only renders the confirmation page.
app.http('incidentLink', {
    route: 'incidents/{id}/{action}',
    methods: ['GET', 'POST'],
    authLevel: 'anonymous',
    handler: (request, context) => handleIncidentLink(request, context, deps().incidentLink),
});
