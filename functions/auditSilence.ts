import { app } from '@azure/functions';
import { appDeps as deps } from '../shared/app/compositionRoot';
import { handleAuditSilence } from '../shared/app/handlers/handleAuditSilence';

// Every 15 minutes: vaults that stopped sending audit records for longer than their quiet period (audit-log-silent).
app.timer('auditSilence', {
    schedule: '0 */15 * * * *',
    handler: (timer, context) => handleAuditSilence(timer, context, deps().auditSilence),
});
