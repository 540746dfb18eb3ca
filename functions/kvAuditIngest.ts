import { app } from '@azure/functions';
import { composeApp } from '../shared/app/compositionRoot';
import { handleAuditBatch } from '../shared/app/handlers/handleAuditBatch';
import { EventHubBinding } from '../shared/config/settingNames';

const deps = composeApp(process.env);

app.eventHub('kvAuditIngest', {
    ...EventHubBinding,
    cardinality: 'many',
    // Without a running retry policy the trigger checkpoints a failed batch; with it, a whole-batch failure (a sink
    // down) is retried with backoff before the checkpoint moves on.
    retry: {
        strategy: 'exponentialBackoff',
        maxRetryCount: 8,
        minimumInterval: { seconds: 5 },
        maximumInterval: { minutes: 10 },
    },
    handler: (messages, context) => handleAuditBatch(messages, context, deps.auditBatch),
});
