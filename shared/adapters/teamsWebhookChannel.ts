// Delivery to a Microsoft Teams channel through a Teams Workflows ("Post to a channel when a webhook request is
// received") webhook: one POST of the TeamsWebhookMessage as JSON. The service answers 202 once the flow is
// triggered; whether the card then renders is decided later, inside the flow run, and is not reported back.
//
// HTTP goes through the undici package's own fetch, not the global one, so that the Agent which trusts an extra CA
// (tests) and the fetch that uses it are always the same undici version, whatever undici the Node runtime bundles.
//
// The webhook URL is a credential: its `sig` query parameter is a shared-access signature. It never appears in an
// error message, a log line or an exception cause produced here (see redactWebhookUrl).
import { Agent, fetch } from 'undici';
import { TEAMS_MESSAGE_MAX_BYTES } from '../core/alerts/render';
import { type DeliveryChannel, DeliveryError, type OutgoingNotification } from '../core/alerts/types';

export interface TeamsWebhookChannelOptions {
    /** The complete webhook URL, including `sig`. */
    webhookUrl: string;
    /** Per-request timeout (default 15 000 ms). */
    timeoutMs?: number;
    /**
     * Extra CA certificates (PEM) to trust, replacing the default roots for this channel only: for a local HTTPS fake.
     * Never needed in production.
     */
    ca?: string;
}

const DEFAULT_TIMEOUT_MS = 15_000;
/** Query parameters of a Workflows / Logic Apps trigger URL that authorise the call. */
const SECRET_QUERY_PARAMETERS = ['sig'];

/** The URL with every secret query parameter's value replaced by `***`, for messages and logs. */
export function redactWebhookUrl(url: string): string {
    try {
        const u = new URL(url);
        for (const name of [...u.searchParams.keys()]) {
            if (SECRET_QUERY_PARAMETERS.includes(name.toLowerCase())) u.searchParams.set(name, '***');
        }
        return u.toString().replace(/%2A%2A%2A/g, '***');
    } catch {
        // Not a URL we can parse: blank any sig=... by hand rather than echo it.
        return url.replace(/([?&]sig=)[^&#\s]*/gi, '$1***');
    }
}

/**
 * Milliseconds to wait from a Retry-After header value: delta-seconds or an HTTP date (RFC 9110 10.2.3). Undefined
 * when absent or unparseable; never negative.
 */
export function parseRetryAfterMs(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
    if (value === null || value === undefined) return undefined;
    const trimmed = value.trim();
    if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
    const at = Date.parse(trimmed);
    if (Number.isNaN(at)) return undefined;
    return Math.max(0, at - nowMs);
}

/** HTTP statuses worth retrying later: throttling, request timeout and server-side failures. */
export function isTransientStatus(status: number): boolean {
    return status === 408 || status === 429 || status >= 500;
}

export class TeamsWebhookChannel implements DeliveryChannel {
    readonly name = 'teams' as const;
    private readonly webhookUrl: string;
    private readonly redactedUrl: string;
    private readonly timeoutMs: number;
    private readonly dispatcher: Agent | undefined;

    constructor(options: TeamsWebhookChannelOptions) {
        const url = new URL(options.webhookUrl);
        if (url.protocol !== 'https:') {
            throw new Error(
                `TeamsWebhookChannel: the webhook URL must be https: ${redactWebhookUrl(options.webhookUrl)}`,
            );
        }
        this.webhookUrl = options.webhookUrl;
        this.redactedUrl = redactWebhookUrl(options.webhookUrl);
        this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
        this.dispatcher = options.ca === undefined ? undefined : new Agent({ connect: { ca: options.ca } });
    }

    async send(notification: OutgoingNotification): Promise<void> {
        if (notification.channel !== 'teams') {
            throw new DeliveryError(`teams channel cannot send a ${notification.channel} notification`, false);
        }
        const body = JSON.stringify(notification.teams);
        // The renderer trims cards to fit; a body still too large would be accepted (202) and then dropped by the
        // flow without a word (deployment-contracts.md, "Graph and Teams"): refuse it here, loudly and for good.
        const bytes = Buffer.byteLength(body, 'utf8');
        if (bytes > TEAMS_MESSAGE_MAX_BYTES) {
            throw new DeliveryError(
                `Teams card of ${bytes} bytes not sent: above the ${TEAMS_MESSAGE_MAX_BYTES}-byte limit, Teams would accept and then drop it`,
                false,
            );
        }
        let response: Awaited<ReturnType<typeof fetch>>;
        try {
            response = await fetch(this.webhookUrl, {
                method: 'POST',
                headers: { 'content-type': 'application/json; charset=utf-8' },
                body,
                // A Workflows trigger does not redirect; a 3xx is reported, not followed with the card.
                redirect: 'manual',
                signal: AbortSignal.timeout(this.timeoutMs),
                ...(this.dispatcher === undefined ? {} : { dispatcher: this.dispatcher }),
            });
        } catch (e) {
            throw this.networkError(e);
        }
        // Read (and so release) the body in every case; keep a little of it for the error message.
        const text = await response.text().catch(() => '');
        if (response.status === 200 || response.status === 202) return;
        const transient = isTransientStatus(response.status);
        const retryAfterMs = transient ? parseRetryAfterMs(response.headers.get('retry-after')) : undefined;
        const detail = this.redact(summariseBody(text));
        throw new DeliveryError(
            `Teams webhook ${this.redactedUrl} answered ${response.status}${detail === '' ? '' : `: ${detail}`}`,
            transient,
            response.status,
            retryAfterMs,
        );
    }

    /** Releases the HTTPS connection pool of a channel created with `ca`. */
    async close(): Promise<void> {
        await this.dispatcher?.close();
    }

    private networkError(e: unknown): DeliveryError {
        const { name, message, code } = describeError(e);
        const timedOut = name === 'TimeoutError' || name === 'AbortError';
        const what = timedOut
            ? `timed out after ${this.timeoutMs} ms`
            : `failed: ${message}${code === undefined ? '' : ` (${code})`}`;
        // The cause is a sanitised copy: undici errors can carry the request URL.
        return new DeliveryError(`Teams webhook ${this.redactedUrl} ${this.redact(what)}`, true, undefined, undefined, {
            cause: new Error(this.redact(`${name}: ${message}${code === undefined ? '' : ` (${code})`}`)),
        });
    }

    private redact(text: string): string {
        const sig = new URL(this.webhookUrl).searchParams.get('sig');
        let out = text.split(this.webhookUrl).join(this.redactedUrl);
        if (sig !== null && sig !== '') {
            out = out.split(sig).join('***');
            out = out.split(encodeURIComponent(sig)).join('***');
        }
        return out;
    }
}

/**
 * Name, message and system error code of a thrown value. Duck-typed rather than `instanceof Error`: errors made inside
 * Node (fetch's DOMException, socket errors) come from another realm when the code runs in a vm context (jest).
 * fetch wraps socket and TLS failures as TypeError('fetch failed') with the system error as `cause`.
 */
export function describeError(e: unknown): { name: string; message: string; code: string | undefined } {
    const field = (v: unknown, key: string): unknown =>
        typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
    const name = typeof field(e, 'name') === 'string' ? String(field(e, 'name')) : 'Error';
    const message = typeof field(e, 'message') === 'string' ? String(field(e, 'message')) : String(e);
    const cause = field(e, 'cause');
    const code = field(e, 'code') ?? field(cause, 'code');
    return { name, message, code: typeof code === 'string' ? code : undefined };
}

/** The first 300 characters of an error body, on one line. */
function summariseBody(text: string): string {
    const oneLine = text.replace(/\s+/g, ' ').trim();
    return oneLine.length > 300 ? `${oneLine.slice(0, 300)}...` : oneLine;
}
