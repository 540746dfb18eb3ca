import { app } from '@azure/functions';
import { handleAuditBatch } from '../shared/app/handlers/handleAuditBatch';
import { EventHubBinding, EventHubBindingDataType } from '../shared/config/settingNames';
import { appDeps as deps } from '../shared/app/compositionRoot';

// Composed at load: a misconfigured app fails here, before any event is taken (and checkpointed).
const appDeps = deps();

app.eventHub('kvAuditIngest', {
    ...EventHubBinding,
    // Raw strings, parsed by the pipeline: one non-JSON body is quarantined alone instead of failing the whole batch's
    // binding in the host (the v4 typings lack the option; the library passes it through). See settingNames.ts.
    ...EventHubBindingDataType,
    cardinality: 'many',
    // Without a running retry policy the trigger checkpoints a failed batch; with it, a whole-batch failure (a sink
    // down) is retried with backoff before the checkpoint moves on.
    retry: {
        strategy: 'exponentialBackoff',
        maxRetryCount: 8,
        minimumInterval: { seconds: 5 },
        maximumInterval: { minutes: 10 },
    },
    handler: (messages, context) => handleAuditBatch(messages, context, appDeps.auditBatch),
});
