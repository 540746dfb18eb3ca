/**
 * Every function the deployed app must register, with the trigger binding and retry policy the host must index: the
 * one table test/deployPackage.test.ts checks against what the real `@azure/functions` library hands to the worker.
 * Add a row when you add a function (e.g. a `doctor` HTTP function, a reconcile queue trigger, a sweep timer).
 *
 * `trigger` lists the binding properties as the worker receives them (toCoreFunctionMetadata: the trigger options plus
 * `type` and `direction`); a property left out is not checked, a property set to `undefined` must be absent.
 * `retryOptions` is the converted policy (durations in whole seconds), or `undefined` for none.
 */
export interface ExpectedFunction {
    readonly trigger: Readonly<Record<string, unknown>>;
    readonly retryOptions: Readonly<Record<string, unknown>> | undefined;
}

const timer = (schedule: string): ExpectedFunction => ({
    trigger: { type: 'timerTrigger', direction: 'in', schedule },
    retryOptions: undefined,
});

export const EXPECTED_FUNCTIONS: Readonly<Record<string, ExpectedFunction>> = {
    kvAuditIngest: {
        trigger: {
            type: 'eventHubTrigger',
            direction: 'in',
            connection: 'KV_LOGS_EVENTHUB',
            eventHubName: '%KV_LOGS_HUB%',
            consumerGroup: '%KV_LOGS_CONSUMER_GROUP%',
            cardinality: 'many',
            // Raw strings: a non-JSON body must not fail the batch's binding (settingNames.ts, EventHubBindingDataType).
            dataType: 'string',
        },
        retryOptions: {
            retryStrategy: 'exponentialBackoff',
            maxRetryCount: 8,
            minimumInterval: { seconds: 5 },
            maximumInterval: { seconds: 600 },
        },
    },
    alertingTimer: timer('0 */1 * * * *'),
    cmkExpiry: timer('0 0 6 * * *'),
    cmkPosture: timer('0 30 5 * * *'),
    cmkWeekly: timer('0 0 7 * * 1'),
    stateMaintenance: timer('0 17 * * * *'),
    cmkReport: {
        trigger: { type: 'httpTrigger', direction: 'in', route: 'cmk/report', methods: ['GET'], authLevel: 'function' },
        retryOptions: undefined,
    },
    driftSweep: timer('0 41 * * * *'),
    auditSilence: timer('0 */15 * * * *'),
    reconcileVault: {
        trigger: {
            type: 'queueTrigger',
            direction: 'in',
            queueName: 'kvr-reconcile',
            connection: 'KVR_RECONCILE_QUEUE',
        },
        retryOptions: undefined,
    },
    reconcilePoison: {
        trigger: {
            type: 'queueTrigger',
            direction: 'in',
            queueName: 'kvr-reconcile-poison',
            connection: 'KVR_RECONCILE_QUEUE',
        },
        retryOptions: undefined,
    },
    doctor: {
        trigger: { type: 'httpTrigger', direction: 'in', route: 'doctor', methods: ['GET'], authLevel: 'function' },
        retryOptions: undefined,
    },
    incidentLink: {
        trigger: {
            type: 'httpTrigger',
            direction: 'in',
            route: 'incidents/{id}/{action}',
            methods: ['GET', 'POST'],
            authLevel: 'anonymous',
        },
        retryOptions: undefined,
    },
};
