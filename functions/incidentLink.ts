import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleIncidentLink } from '../shared/app/handlers/handleIncidentLink';

// Function-level auth is anonymous on purpose (no function key in links). Who may act is decided in front of and in the
// handler: App Service Authentication signs the user in with Microsoft Entra ID (KVR_TRUST_EASY_AUTH=true) and the
// handler requires that user, the signed token (one incident and action, expiry, once) and a same-origin POST; without
// Easy Auth links act only with the explicit KVR_ALLOW_POSSESSION_ONLY_LINKS opt-in. See docs/undo.md.
app.http('incidentLink', {
    route: 'incidents/{id}/{action}',
    methods: ['GET', 'POST'],
    authLevel: 'anonymous',
    handler: (request, context) => handleIncidentLink(request, context, deps().incidentLink),
});
