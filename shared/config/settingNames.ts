/**
 * Every app setting the Function app reads, by name. The infra templates and `local.settings.example.json` use these
 * exact names; a test keeps them in step.
 */
export const SettingNames = {
    /** Event Hubs connection prefix: `KV_LOGS_EVENTHUB__fullyQualifiedNamespace` (identity-based, no secrets). */
    eventHubConnection: 'KV_LOGS_EVENTHUB',
    /** The event hub that receives the Key Vault diagnostic logs (the built-in policy lets Azure Monitor pick it). */
    eventHubName: 'KV_LOGS_HUB',
    /**
     * ARM resource id of the Event Hubs namespace (set by the templates; read by `kvr doctor`, which checks the hub
     * and the consumer group through ARM): `/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.EventHub/namespaces/<name>`.
     */
    eventHubNamespaceId: 'KVR_EVENTHUB_NAMESPACE_ID',
    /** Dedicated consumer group of the responder. */
    eventHubConsumerGroup: 'KV_LOGS_CONSUMER_GROUP',
    /** Responder config as inline JSON (takes precedence over the path). */
    config: 'KVR_CONFIG',
    /** Path of the responder config file, relative to the app root. */
    configPath: 'KVR_CONFIG_PATH',
    /** Blob container URL for quarantined input, e.g. `https://<account>.blob.core.windows.net/kvr-quarantine`. */
    quarantineContainerUrl: 'KVR_QUARANTINE_CONTAINER_URL',
    /** Storage connection string for the quarantine (local runs against Azurite only; Azure uses the URL). */
    quarantineConnectionString: 'KVR_QUARANTINE_CONNECTION_STRING',
    /** Container name when a connection string is used. */
    quarantineContainer: 'KVR_QUARANTINE_CONTAINER',
    /** Rule state: `https://<account>.table.core.windows.net` (managed identity), or a connection string for Azurite. */
    state: 'KVR_STATE',
    /** Table name for rule state (default `kvrstate`). */
    stateTable: 'KVR_STATE_TABLE',
    /** Application Insights: telemetry (OpenTelemetry metrics) is off unless this is set. */
    appInsightsConnectionString: 'APPLICATIONINSIGHTS_CONNECTION_STRING',
    /** Base URL of the app as people reach it (`https://<app>.azurewebsites.net`): acknowledge and undo links. */
    publicUrl: 'KVR_PUBLIC_URL',
    /** The RSA key that signs links: `https://<vault>.vault.azure.net/keys/<name>` (Key Vault Crypto User on it). */
    signingKeyId: 'KVR_SIGNING_KEY_ID',
    /** Teams Workflows webhook URL (a secret: use a Key Vault reference); no Teams notices without it. */
    teamsWebhookUrl: 'KVR_TEAMS_WEBHOOK_URL',
    /** Mailbox that sends alert email through Microsoft Graph (Mail.Send scoped to it); no email without it. */
    mailSender: 'KVR_MAIL_SENDER',
    /**
     * `true` when App Service Authentication fronts the app: link pages and actions then require a signed-in
     * Microsoft Entra ID user, recorded as who acted.
     */
    trustEasyAuth: 'KVR_TRUST_EASY_AUTH',
    /**
     * `true` lets links act on their token alone, without sign-in (whoever holds the link): an explicit opt-in for
     * local runs, never for production. Without it and without Easy Auth, links act on nothing.
     */
    possessionOnlyLinks: 'KVR_ALLOW_POSSESSION_ONLY_LINKS',
    /**
     * Connection of the reconcile queue (`kvr-reconcile`, and `kvr-reconcile-poison`), used by the queue trigger and
     * by the app: identity-based as `KVR_RECONCILE_QUEUE__queueServiceUri` (`https://<account>.queue.core.windows.net`,
     * with `__credential` = managedidentity and `__clientId`), or a connection string in `KVR_RECONCILE_QUEUE` (Azurite).
     * Without it, the app remediates in process after each batch (no queue).
     */
    reconcileQueue: 'KVR_RECONCILE_QUEUE',
    /** Client id of the user-assigned managed identity (read by `@azure/identity`). */
    managedIdentityClientId: 'AZURE_CLIENT_ID',
    /**
     * Object (principal) id of the app's own user-assigned identity, set by the templates: added to the config's
     * `responderIdentities`, so that the responder's own reads raise no finding and its own changes are excluded by
     * the loop guard without editing the config.
     */
    responderPrincipalId: 'KVR_RESPONDER_PRINCIPAL_ID',
} as const;

/** The trigger binding expressions, resolved by the Functions host from the settings above. */
export const EventHubBinding = {
    connection: SettingNames.eventHubConnection,
    eventHubName: `%${SettingNames.eventHubName}%`,
    consumerGroup: `%${SettingNames.eventHubConsumerGroup}%`,
} as const;

/**
 * The trigger hands each body to the handler as the raw string. Without a `dataType` the host deserializes every body
 * of a `cardinality: 'many'` batch as JSON itself, and one body that is not JSON fails the binding of the whole batch
 * before the handler runs (retried, then checkpointed: lost). With `string` the pipeline parses each body and
 * quarantines a bad one alone. Sources: Azure/azure-functions-eventhubs-extension#118,
 * Azure/azure-functions-nodejs-library#340 (deployment-contracts.md, "Azure Functions"). The v4 typings of
 * `app.eventHub` lack `dataType`; `toCoreFunctionMetadata` copies every trigger option into the binding, so it reaches
 * the host (test/deployPackage.test.ts checks the registered binding).
 */
export const EventHubBindingDataType: { readonly dataType: 'string' } = { dataType: 'string' };

/**
 * Settings read only by `kvr consume` (the Function app checkpoints through `AzureWebJobsStorage` instead). Kept out
 * of {@link SettingNames} because the Function app does not need them.
 */
export const ConsumeSettingNames = {
    /** Blob container for checkpoints and partition ownership, `https://<account>.blob.core.windows.net/<container>`. */
    checkpointContainerUrl: 'KVR_CHECKPOINT_CONTAINER_URL',
    /** Storage connection string for the checkpoints (local runs against Azurite only; Azure uses the URL). */
    checkpointConnectionString: 'KVR_CHECKPOINT_CONNECTION_STRING',
    /** Container name when a connection string is used (default `kvr-checkpoints`). */
    checkpointContainer: 'KVR_CHECKPOINT_CONTAINER',
} as const;

/**
 * Settings of the reconcile queue and the drift sweep. Kept apart from {@link SettingNames} until the infra templates
 * set them (then move them in: the infra test checks that every name there is in the templates).
 */
export const ReconcileSettingNames = {
    /** NCRONTAB schedule of the drift sweep (default `0 41 * * * *`: hourly). */
    driftSweepSchedule: 'KVR_DRIFT_SWEEP_SCHEDULE',
} as const;

/**
 * Settings read only by `kvr doctor` (and `GET /api/doctor`): where the resources it checks are, when the app's own
 * settings do not say. Optional: a check without its setting is skipped, with the setting named.
 */
export const DoctorSettingNames = {
    /** URL of the reconcile queue, `https://<account>.queue.core.windows.net/kvr-reconcile`. */
    reconcileQueueUrl: 'KVR_RECONCILE_QUEUE_URL',
} as const;
