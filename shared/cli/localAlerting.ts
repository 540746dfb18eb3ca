// Alerting for local runs (`kvr replay --outbox`, `kvr serve`): notifications go to an outbox directory unless a
// Teams webhook or a Graph mailbox is configured in the environment; links are signed with a development key.
import { DefaultAzureCredential } from '@azure/identity';
import { GraphMailChannel } from '../adapters/graphMailChannel';
import { StreamLogger } from '../adapters/invocationLogger';
import { LocalLinkSigner } from '../adapters/linkSigner';
import { OutboxDirectory } from '../adapters/outboxDirectory';
import { systemClock } from '../adapters/systemClock';
import { TeamsWebhookChannel } from '../adapters/teamsWebhookChannel';
import { LinkTokens } from '../app/alerting';
import type { PipelineOptions } from '../app/createPipeline';
import type { ResponderConfig } from '../config/responderConfig';
import { SettingNames } from '../config/settingNames';
import type { Logger } from '../core/ports';

export const DEFAULT_SIGNING_KEY = '.kvr/dev-signing-key.pem';
export const DEFAULT_PUBLIC_URL = 'http://localhost:7071';
export const DEFAULT_MAIL_FROM = 'kv-responder@localhost.localdomain';

export interface LocalAlertingOptions {
    readonly config: ResponderConfig;
    readonly outbox: string | undefined;
    readonly publicUrl: string;
    readonly signingKeyPath: string;
    readonly env: Readonly<Record<string, string | undefined>>;
    readonly log: Logger;
}

export interface LocalAlerting {
    readonly options: NonNullable<PipelineOptions['alerting']>;
    readonly outbox: OutboxDirectory | undefined;
    /** Where notifications go, for the summary. */
    readonly destinations: readonly string[];
}

/** Logs errors only (the decision log already carries findings and actions). */
export function errorsOnly(out: { write(chunk: string): unknown }): Logger {
    const inner = new StreamLogger(out);
    return { info: () => undefined, warn: () => undefined, error: (m, f) => inner.error(m, f) };
}

export async function localAlerting(o: LocalAlertingOptions): Promise<LocalAlerting> {
    const webhook = o.env[SettingNames.teamsWebhookUrl]?.trim() || undefined;
    const sender = o.env[SettingNames.mailSender]?.trim() || undefined;
    const outbox =
        o.outbox !== undefined || webhook === undefined || sender === undefined
            ? new OutboxDirectory(o.outbox ?? '.kvr/outbox')
            : undefined;
    const destinations: string[] = [];
    let teams;
    if (webhook !== undefined) {
        teams = new TeamsWebhookChannel({ webhookUrl: webhook });
        destinations.push('Teams webhook');
    } else {
        teams = (outbox as OutboxDirectory).channel('teams');
        destinations.push(`Teams cards in ${(outbox as OutboxDirectory).dir}`);
    }
    let email;
    if (sender !== undefined) {
        email = new GraphMailChannel({ credential: new DefaultAzureCredential() });
        destinations.push(`email from ${sender} through Microsoft Graph`);
    } else {
        email = (outbox as OutboxDirectory).channel('email');
        destinations.push(`emails in ${(outbox as OutboxDirectory).dir}`);
    }
    const signer = await LocalLinkSigner.fromFile(o.signingKeyPath);
    return {
        options: {
            channels: { teams, email },
            mailFrom: sender ?? DEFAULT_MAIL_FROM,
            links: new LinkTokens(signer, o.publicUrl, o.config.alerting.linkTtlMs, systemClock),
            log: o.log,
        },
        outbox,
        destinations,
    };
}
