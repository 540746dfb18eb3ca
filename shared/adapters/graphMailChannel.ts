// Delivery by email through Microsoft Graph `POST /users/{from}/sendMail`, using the real Graph client
// (@microsoft/microsoft-graph-client 3) with its default middleware chain: AuthenticationHandler (token from a
// TokenCredential), RetryHandler, RedirectHandler, TelemetryHandler, HTTPMessageHandler (global fetch).
//
// The body is the MIME message, base64, with `Content-Type: text/plain` (the only sendMail form that carries an HTML
// body with a plain-text alternative); Graph answers 202 with no body. See shared/docs/azure-contracts.md 5.1, 5.3.
//
// Two Graph client behaviours this adapter depends on:
// - The AuthenticationHandler attaches the token only to https URLs whose host is a Graph host or listed in
//   `customHosts` (compared without the port). A non-Graph `baseUrl` without `customHosts` sends NO Authorization
//   header, silently; Graph then answers 401, reported here as a non-transient DeliveryError.
// - The RetryHandler retries 429, 503 and 504 after Retry-After (or its own delay). It is kept, but capped per request
//   with RetryHandlerOptions: few retries, and no in-process retry when the service asks for a longer wait than
//   `maxRetryAfterSeconds`; that wait is returned as `retryAfterMs` for the outbox to honour instead.
import type { TokenCredential } from '@azure/identity';
import { Client, GraphError, RetryHandlerOptions } from '@microsoft/microsoft-graph-client';
import { TokenCredentialAuthenticationProvider } from '@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials';
import { Agent } from 'undici';
import { type DeliveryChannel, DeliveryError, type OutgoingNotification } from '../core/alerts/types';
import { describeError, isTransientStatus, parseRetryAfterMs } from './teamsWebhookChannel';

export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';

export interface GraphMailChannelOptions {
    credential: TokenCredential;
    /** Graph root, with a trailing slash (default `https://graph.microsoft.com/`); requests go to `${baseUrl}v1.0/...`. */
    baseUrl?: string;
    /**
     * Host names (no port) besides Graph's own that receive the access token: required when `baseUrl` is not a Graph
     * host (a sovereign-cloud proxy, a local fake), or the token is silently left off.
     */
    customHosts?: readonly string[];
    /** Extra CA certificates (PEM) trusted by this channel only, replacing the default roots: for a local HTTPS fake. */
    ca?: string;
    /** Deadline for one `send`, the Graph client's own retries included (default 30 000 ms). */
    timeoutMs?: number;
    /** Retries by the Graph client's RetryHandler for 429, 503 and 504 (default 2; the client allows at most 10). */
    maxRetries?: number;
    /** Seconds the RetryHandler waits when the response has no Retry-After (default 1, grows with each attempt). */
    retryDelaySeconds?: number;
    /**
     * The longest Retry-After (seconds) honoured by an in-process retry (default 10). A longer one ends the send with a
     * transient DeliveryError carrying it as `retryAfterMs`.
     */
    maxRetryAfterSeconds?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RETRIES = 2;
const DEFAULT_RETRY_DELAY_SECONDS = 1;
const DEFAULT_MAX_RETRY_AFTER_SECONDS = 10;

/** Errors with no HTTP response that retrying cannot fix: the credential is not configured. */
const PERMANENT_NO_RESPONSE_ERRORS = new Set(['CredentialUnavailableError']);

export class GraphMailChannel implements DeliveryChannel {
    readonly name = 'email' as const;
    private readonly client: Client;
    private readonly dispatcher: Agent | undefined;
    private readonly timeoutMs: number;
    private readonly retryOptions: RetryHandlerOptions;

    constructor(options: GraphMailChannelOptions) {
        this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
        const maxRetryAfterSeconds = options.maxRetryAfterSeconds ?? DEFAULT_MAX_RETRY_AFTER_SECONDS;
        this.retryOptions = new RetryHandlerOptions(
            options.retryDelaySeconds ?? DEFAULT_RETRY_DELAY_SECONDS,
            options.maxRetries ?? DEFAULT_MAX_RETRIES,
            (_delay, _attempt, _request, _options, response) => {
                const wait = parseRetryAfterMs(response.headers.get('retry-after'));
                return wait === undefined || wait <= maxRetryAfterSeconds * 1000;
            },
        );
        this.dispatcher = options.ca === undefined ? undefined : new Agent({ connect: { ca: options.ca } });
        this.client = Client.initWithMiddleware({
            authProvider: new TokenCredentialAuthenticationProvider(options.credential, { scopes: [GRAPH_SCOPE] }),
            ...(options.baseUrl === undefined ? {} : { baseUrl: options.baseUrl }),
            ...(options.customHosts === undefined ? {} : { customHosts: new Set(options.customHosts) }),
            // The HTTPMessageHandler calls the global fetch(url, options), and an undici dispatcher in fetchOptions
            // reaches it unchanged: verified on Node 20 (bundled undici 6) with the undici 6 package, see
            // test/integration/notificationChannels.test.ts. The cast bridges @types/node's copy of the undici types.
            ...(this.dispatcher === undefined
                ? {}
                : {
                      fetchOptions: {
                          dispatcher: this.dispatcher as unknown as NonNullable<RequestInit['dispatcher']>,
                      },
                  }),
        });
    }

    async send(notification: OutgoingNotification): Promise<void> {
        if (notification.channel !== 'email') {
            throw new DeliveryError(`email channel cannot send a ${notification.channel} notification`, false);
        }
        const { from, mimeBase64 } = notification.email;
        const path = `/users/${encodeURIComponent(from)}/sendMail`;
        let result: unknown;
        try {
            result = await this.client
                .api(path)
                .header('Content-Type', 'text/plain')
                .option('signal', AbortSignal.timeout(this.timeoutMs))
                .middlewareOptions([this.retryOptions])
                .post(mimeBase64);
        } catch (e) {
            throw this.deliveryError(e, from);
        }
        // A 202 resolves to the unread response body stream: release it.
        await cancelStream(result);
    }

    /** Releases the HTTPS connection pool of a channel created with `ca`. */
    async close(): Promise<void> {
        await this.dispatcher?.close();
    }

    private deliveryError(e: unknown, from: string): DeliveryError {
        const where = `Graph sendMail as ${from}`;
        if (e instanceof GraphError && e.statusCode > 0) {
            void cancelStream(e.body);
            const status = e.statusCode;
            const transient = isTransientStatus(status);
            const retryAfterMs = transient ? parseRetryAfterMs(e.headers?.get('retry-after')) : undefined;
            const code = e.code === null || e.code === '' ? '' : ` ${e.code}`;
            return new DeliveryError(
                `${where} failed: ${status}${code}${e.message === '' ? '' : `: ${e.message}`}`,
                transient,
                status,
                retryAfterMs,
                { cause: e },
            );
        }
        // No HTTP response: timeout, connection or TLS failure, or no token. The Graph client wraps the original error
        // in a GraphError (statusCode -1) whose `code` is the original's name, or, when the original does not pass
        // its `instanceof Error` test (another realm), whose `body` is the original.
        const original: unknown = e instanceof GraphError && e.code === null && e.message === '' ? e.body : e;
        const described = describeError(original);
        const name = e instanceof GraphError && e.code !== null ? e.code : described.name;
        const timedOut = name === 'TimeoutError' || name === 'AbortError';
        const detail = `${described.message}${described.code === undefined ? '' : ` (${described.code})`}`;
        const what = timedOut ? `timed out after ${this.timeoutMs} ms` : `failed: ${name}: ${detail}`;
        return new DeliveryError(`${where} ${what}`, !PERMANENT_NO_RESPONSE_ERRORS.has(name), undefined, undefined, {
            cause: e,
        });
    }
}

async function cancelStream(value: unknown): Promise<void> {
    if (typeof value === 'object' && value !== null && typeof (value as { cancel?: unknown }).cancel === 'function') {
        try {
            await (value as { cancel(): Promise<void> }).cancel();
        } catch {
            // Already consumed or closed: nothing to release.
        }
    }
}
