import { app } from '@azure/functions';
import { handleDoctor } from '../shared/app/handlers/handleDoctor';

// The preflight of the deployed app (function key): GET /api/doctor[?format=table][&sendTestNotice=true].
// It composes its own clients from the settings, so that it runs (and reports them) even when the settings are bad.
app.http('doctor', {
    route: 'doctor',
    methods: ['GET'],
    authLevel: 'function',
    handler: (request, context) => handleDoctor(request, context),
});
