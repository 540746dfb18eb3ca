/**
 * Notifications: what kv-responder sends to people, and the port the delivery channels implement. Pure types; the
 * channels (Teams Workflows webhook, Microsoft Graph sendMail, a local outbox directory) are adapters.
 */

export type ChannelName = 'teams' | 'email';

/**
 * Why a notification is sent. `remediation`: the outcome of a remediation that ran after the incident was notified
 * (the reconcile worker in the Function app), sent once per incident.
 */
export type NoticeKind = 'opened' | 'escalated' | 'undone' | 'channel-failing' | 'remediation';

/** The body POSTed to a Teams Workflows webhook: a message whose one attachment is an Adaptive Card. */
export interface TeamsWebhookMessage {
    readonly type: 'message';
    readonly attachments: readonly {
        readonly contentType: 'application/vnd.microsoft.card.adaptive';
        readonly contentUrl: null;
        readonly content: Readonly<Record<string, unknown>>;
    }[];
}

/**
 * An email, sent with Microsoft Graph `POST /users/{from}/sendMail` as MIME (base64, `Content-Type: text/plain`):
 * the only Graph form that carries an HTML body with a plain-text alternative.
 */
export interface EmailMessage {
    /** The sending mailbox (UPN or object id). */
    readonly from: string;
    readonly to: readonly string[];
    readonly subject: string;
    readonly text: string;
    readonly html: string;
    /** The complete MIME message, base64: exactly the request body sent to Graph. */
    readonly mimeBase64: string;
}

interface NotificationBase {
    /** Deterministic (incident, kind, tier, channel): a redelivered batch produces the same id, never a second send. */
    readonly id: string;
    readonly incidentId: string;
    readonly kind: NoticeKind;
}

export type OutgoingNotification =
    | (NotificationBase & { readonly channel: 'teams'; readonly teams: TeamsWebhookMessage })
    | (NotificationBase & { readonly channel: 'email'; readonly email: EmailMessage });

/** A failed send. `transient` failures (429, 5xx, timeouts, connection errors) are retried from the outbox. */
export class DeliveryError extends Error {
    constructor(
        message: string,
        readonly transient: boolean,
        readonly status?: number,
        /** From a `Retry-After` header, when the service sent one. */
        readonly retryAfterMs?: number,
        options?: { cause?: unknown },
    ) {
        super(message, options);
        this.name = 'DeliveryError';
    }
}

/** One delivery channel. `send` resolves when the service accepted the notification and throws DeliveryError. */
export interface DeliveryChannel {
    readonly name: ChannelName;
    send(notification: OutgoingNotification): Promise<void>;
}
