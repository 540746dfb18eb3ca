// Validates Adaptive Cards and Teams Workflows webhook bodies against OUR strict JSON schema
// (test/schemas/adaptive-card-1.5.schema.json: a subset of Adaptive Cards 1.5 as Teams renders them).
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import schema from '../schemas/adaptive-card-1.5.schema.json';

const SCHEMA_ID = schema.$id;

interface Validators {
    card: ValidateFunction;
    message: ValidateFunction;
}

let compiled: Validators | undefined;

/** Ajv, compiled once per test file (jest gives each file its own module registry). */
function validators(): Validators {
    if (compiled === undefined) {
        const ajv = new Ajv({ allErrors: true, strict: true });
        ajv.addSchema(schema);
        compiled = {
            card: ajv.getSchema(SCHEMA_ID)!,
            message: ajv.compile({ $ref: `${SCHEMA_ID}#/definitions/TeamsWebhookMessage` }),
        };
    }
    return compiled;
}

/** One line per error, e.g. `/body/0: must NOT have additional property 'wrapp'`. */
function describe(errors: readonly ErrorObject[] | null | undefined): string[] {
    const lines = (errors ?? [])
        // `if`/`then` dispatch repeats the real error as "must match "then" schema": keep the real one.
        .filter((e) => e.keyword !== 'if')
        .map((e) => {
            const at = e.instancePath === '' ? '/' : e.instancePath;
            switch (e.keyword) {
                case 'additionalProperties':
                    return `${at}: must NOT have additional property '${String(e.params.additionalProperty)}'`;
                case 'enum':
                    return `${at}: must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
                case 'const':
                    return `${at}: must be ${JSON.stringify(e.params.allowedValue)}`;
                default:
                    return `${at}: ${e.message ?? e.keyword}`;
            }
        });
    return [...new Set(lines)];
}

/** Schema violations of a top-level Adaptive Card; empty when it is valid. */
export function validateAdaptiveCard(card: unknown): string[] {
    const validate = validators().card;
    return validate(card) ? [] : describe(validate.errors);
}

/**
 * Schema violations of a Teams Workflows webhook body (the message envelope and its card, which must declare
 * version 1.4 or lower); empty when it is valid.
 */
export function validateTeamsWebhookMessage(message: unknown): string[] {
    const validate = validators().message;
    return validate(message) ? [] : describe(validate.errors);
}

/**
 * A realistic kv-responder alert card: severity heading, the facts of the incident, what the responder did, and the
 * Acknowledge / Undo / portal buttons.
 */
export function sampleAlertCard(overrides: { heading?: string; vault?: string } = {}): Record<string, unknown> {
    const vault = overrides.vault ?? 'kv-payments-prod';
    const resourceId = `/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/${vault}`;
    return {
        $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
        type: 'AdaptiveCard',
        version: '1.4',
        msteams: { width: 'Full' },
        fallbackText: `HIGH: secret read from an unknown network on ${vault}`,
        body: [
            {
                type: 'Container',
                style: 'attention',
                bleed: true,
                items: [
                    {
                        type: 'TextBlock',
                        text: overrides.heading ?? 'HIGH — secret read from an unknown network',
                        style: 'heading',
                        size: 'large',
                        weight: 'bolder',
                        wrap: true,
                    },
                    {
                        type: 'TextBlock',
                        text: 'Incident inc-7f3a91 · opened 2026-03-14 09:26:53 UTC',
                        isSubtle: true,
                        spacing: 'none',
                        wrap: true,
                    },
                ],
            },
            {
                type: 'FactSet',
                spacing: 'medium',
                facts: [
                    { title: 'Vault', value: vault },
                    { title: 'Rule', value: 'secret-read-from-unknown-ip (high)' },
                    { title: 'Who', value: 'svc-batch@contoso.com (11111111-1111-1111-1111-111111111111)' },
                    { title: 'From where', value: '203.0.113.77 (not in any allowed range)' },
                    { title: 'When', value: '2026-03-14T09:26:51Z' },
                    { title: 'Operation', value: 'SecretGet on db-password' },
                ],
            },
            {
                type: 'Container',
                style: 'emphasis',
                separator: true,
                items: [
                    { type: 'TextBlock', text: 'What the responder did', weight: 'bolder', wrap: true },
                    {
                        type: 'RichTextBlock',
                        inlines: [
                            'Removed the access policy of ',
                            { type: 'TextRun', text: '11111111-1111-1111-1111-111111111111', fontType: 'monospace' },
                            ' and set the firewall default action to ',
                            { type: 'TextRun', text: 'Deny', weight: 'bolder' },
                            '.',
                        ],
                    },
                    {
                        type: 'ColumnSet',
                        columns: [
                            {
                                type: 'Column',
                                width: 'auto',
                                verticalContentAlignment: 'center',
                                items: [{ type: 'TextBlock', text: 'Undo available until', isSubtle: true }],
                            },
                            {
                                type: 'Column',
                                width: 'stretch',
                                items: [{ type: 'TextBlock', text: '2026-03-21 09:27 UTC', wrap: true }],
                            },
                        ],
                    },
                ],
            },
        ],
        actions: [
            {
                type: 'Action.OpenUrl',
                title: 'Acknowledge',
                style: 'positive',
                url: 'https://kvr-func.azurewebsites.net/api/ack/inc-7f3a91?token=ack-token',
            },
            {
                type: 'Action.OpenUrl',
                title: 'Undo remediation',
                style: 'destructive',
                url: 'https://kvr-func.azurewebsites.net/api/undo/inc-7f3a91?token=undo-token',
            },
            {
                type: 'Action.OpenUrl',
                title: 'Open vault in the Azure portal',
                url: `https://portal.azure.com/#@contoso.onmicrosoft.com/resource${resourceId}/overview`,
            },
        ],
    };
}

/** The card wrapped as a Teams Workflows webhook body. */
export function asTeamsMessage(card: Record<string, unknown>) {
    return {
        type: 'message' as const,
        attachments: [
            { contentType: 'application/vnd.microsoft.card.adaptive' as const, contentUrl: null, content: card },
        ],
    };
}
