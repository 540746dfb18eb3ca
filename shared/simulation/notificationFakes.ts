// Local HTTPS fakes of the two services kv-responder notifies people through, for the real delivery channels
// (shared/adapters/teamsWebhookChannel.ts, shared/adapters/graphMailChannel.ts) to talk to in tests:
//
// - a Teams Workflows webhook ("Post to a channel when a webhook request is received"): a Logic Apps manual trigger,
//   `POST /workflows/{id}/triggers/manual/paths/invoke?api-version=...&sp=...&sv=...&sig=...`;
// - Microsoft Graph `POST /v1.0/users/{id | userPrincipalName}/sendMail`, JSON and MIME forms.
//
// Both listen on 127.0.0.1 with a certificate signed by the throw-away test CA (selfSignedCa.ts): clients trust
// `caPem` per client, never process-wide. Both support fault injection in the style of the ARM fake.
//
// Contract sources: shared/docs/azure-contracts.md 5.1-5.3 (Graph sendMail: 202 with no body, MIME as base64 with
// `Content-Type: text/plain`, 400 ErrorMimeContentInvalidBase64String; Graph error body `{ error: { code, message } }`;
// the Workflows webhook answers 202). Where a fake is stricter than, or guesses at, the real service it says so below.
import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import { listenHttps } from './httpsFake';

// ---------------------------------------------------------------------------------------------------------------
// Shared machinery: faults, request log, server lifecycle

/**
 * A fault for the next `times` (default 1) requests that pass authentication. A status fault answers instead of the
 * service (nothing is delivered); a delay fault holds the request for `delayMs` and then lets the service handle it,
 * so a client that timed out meanwhile may still have its message delivered, as with a real slow service.
 */
export type NotificationFault = { times?: number } & (
    | { status: 429; retryAfterSeconds?: number }
    | { status: 500 | 502 | 503 | 504; retryAfterSeconds?: number }
    | { delayMs: number }
);

/** One request as a fake received it. */
export interface NotificationRequest {
    method: string;
    /** The URL path as sent (still percent-encoded), without the query. */
    path: string;
    contentType: string | undefined;
    /** The raw request body. */
    body: string;
    /** The status the fake answered with (0 while in progress). */
    status: number;
    /** The fault that answered or delayed this request, if any. */
    fault?: NotificationFault;
    /** The client had gone (timed out, aborted) before the fake answered. */
    clientGone?: boolean;
    /** Why the request was rejected (status 4xx), when it was. */
    errors?: string[];
}

interface FakeError {
    status: number;
    code: string;
    message: string;
    headers?: Record<string, string>;
}

interface Harness {
    readonly requests: NotificationRequest[];
    takeFault(): NotificationFault | undefined;
    wait(ms: number): Promise<void>;
    readonly closed: () => boolean;
    inject(fault: NotificationFault): void;
    pendingFaults(): number;
    clearFaults(): void;
    clearLog(): void;
}

function createHarness(name: string, extraLog: () => void): Harness & { shutdown(): void } {
    const requests: NotificationRequest[] = [];
    const faults: { fault: NotificationFault; remaining: number }[] = [];
    const timers = new Set<NodeJS.Timeout>();
    let closed = false;
    return {
        requests,
        takeFault() {
            const pending = faults[0];
            if (pending === undefined) return undefined;
            pending.remaining -= 1;
            if (pending.remaining === 0) faults.shift();
            return pending.fault;
        },
        wait(ms) {
            return new Promise<void>((resolve) => {
                const t = setTimeout(() => {
                    timers.delete(t);
                    resolve();
                }, ms);
                timers.add(t);
            });
        },
        closed: () => closed,
        inject(fault) {
            const times = fault.times ?? 1;
            if (!Number.isInteger(times) || times < 1) throw new Error(`${name}: times must be >= 1, got ${times}`);
            faults.push({ fault: structuredClone(fault), remaining: times });
        },
        pendingFaults: () => faults.reduce((n, f) => n + f.remaining, 0),
        clearFaults() {
            faults.length = 0;
        },
        clearLog() {
            requests.length = 0;
            extraLog();
        },
        shutdown() {
            closed = true;
            for (const t of timers) clearTimeout(t);
            timers.clear();
        },
    };
}

function clientGone(res: ServerResponse): boolean {
    return res.destroyed || res.socket === null || res.socket.destroyed;
}

function respond(
    res: ServerResponse,
    record: NotificationRequest,
    status: number,
    body: string,
    headers: Record<string, string>,
): void {
    record.status = status;
    if (clientGone(res)) {
        record.clientGone = true;
        return;
    }
    res.writeHead(status, headers);
    res.end(body);
}

function closeServer(server: Server): Promise<void> {
    return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
    });
}

/** The fault, log and lifecycle controls every fake exposes. */
function controlsOf(harness: Harness & { shutdown(): void }, server: Server) {
    return {
        inject: (f: NotificationFault) => harness.inject(f),
        pendingFaults: () => harness.pendingFaults(),
        clearFaults: () => harness.clearFaults(),
        clearLog: () => harness.clearLog(),
        async close(): Promise<void> {
            harness.shutdown();
            await closeServer(server);
        },
    };
}

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------------------------
// Teams Workflows webhook

export interface TeamsWorkflowsFakeOptions {
    /** The workflow id in the path (default a fixed 32-hex id). */
    workflowId?: string;
    /** The trigger's shared-access signature (default a random 43-character value, like the service's). */
    sig?: string;
    /**
     * Extra checks on each card (`attachments[0].content`), e.g. a JSON-schema validator: a non-empty result rejects
     * the request with 400. The real service accepts the request and fails later, inside the flow run, where the
     * sender cannot see it; the fake reports it to the test instead.
     */
    validateCard?: (card: unknown) => string[];
}

export interface TeamsWebhookRequest extends NotificationRequest {
    apiVersion: string | undefined;
    /** Whether the request carried the right `sig` (the value itself is not recorded). */
    sigValid: boolean;
}

export interface TeamsWorkflowsFake {
    /** https://localhost:PORT */
    readonly url: string;
    /** The complete webhook URL, `sig` included: what an administrator copies from the workflow. */
    readonly webhookUrl: string;
    /** The CA that signed the fake's certificate. */
    readonly caPem: string;
    readonly requests: readonly TeamsWebhookRequest[];
    /** Every accepted message body, in order (as parsed JSON). */
    readonly messages: readonly Record<string, unknown>[];
    /** The Adaptive Card of every accepted message (`attachments[0].content`), in order. */
    readonly cards: readonly Record<string, unknown>[];
    inject(fault: NotificationFault): void;
    pendingFaults(): number;
    clearFaults(): void;
    /** Empties `requests`, `messages` and `cards`. */
    clearLog(): void;
    close(): Promise<void>;
}

const ADAPTIVE_CARD_CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive';

/** Problems with a Workflows webhook body: a message whose first attachment is an Adaptive Card. */
export function teamsMessageProblems(body: unknown): string[] {
    if (!isObject(body)) return ['the body is not a JSON object'];
    const problems: string[] = [];
    if (body.type !== 'message') problems.push(`type must be 'message', got ${JSON.stringify(body.type)}`);
    const attachments = body.attachments;
    if (!Array.isArray(attachments) || attachments.length === 0) {
        problems.push('attachments must be a non-empty array');
        return problems;
    }
    const first: unknown = attachments[0];
    if (!isObject(first)) return [...problems, 'attachments[0] must be an object'];
    if (first.contentType !== ADAPTIVE_CARD_CONTENT_TYPE) {
        problems.push(`attachments[0].contentType must be '${ADAPTIVE_CARD_CONTENT_TYPE}'`);
    }
    if (!isObject(first.content) || first.content.type !== 'AdaptiveCard') {
        problems.push("attachments[0].content must be an object with type 'AdaptiveCard'");
    }
    return problems;
}

export async function startTeamsWorkflowsFake(options: TeamsWorkflowsFakeOptions = {}): Promise<TeamsWorkflowsFake> {
    const workflowId = options.workflowId ?? '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
    const sig = options.sig ?? randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '').slice(0, 11);
    const invokePath = `/workflows/${workflowId}/triggers/manual/paths/invoke`;
    const messages: Record<string, unknown>[] = [];
    const cards: Record<string, unknown>[] = [];
    const harness = createHarness('teamsWorkflowsFake', () => {
        messages.length = 0;
        cards.length = 0;
    });
    const requests = harness.requests as TeamsWebhookRequest[];

    // Logic Apps error body: { error: { code, message } }.
    const sendJson = (res: ServerResponse, record: NotificationRequest, e: FakeError) =>
        respond(res, record, e.status, JSON.stringify({ error: { code: e.code, message: e.message } }), {
            'content-type': 'application/json; charset=utf-8',
            ...e.headers,
        });

    async function handle(req: IncomingMessage, res: ServerResponse, raw: Buffer): Promise<void> {
        const url = new URL(req.url ?? '/', 'https://localhost');
        const givenSig = url.searchParams.get('sig');
        const record: TeamsWebhookRequest = {
            method: (req.method ?? 'GET').toUpperCase(),
            path: url.pathname,
            apiVersion: url.searchParams.get('api-version') ?? undefined,
            sigValid: givenSig === sig,
            contentType: req.headers['content-type'],
            body: raw.toString('utf8'),
            status: 0,
        };
        requests.push(record);
        const reject = (e: FakeError) => {
            record.errors = [e.message];
            sendJson(res, record, e);
        };

        if (url.pathname !== invokePath) {
            return reject({ status: 404, code: 'WorkflowNotFound', message: `No workflow at ${url.pathname}.` });
        }
        if (record.method !== 'POST') {
            return reject({
                status: 405,
                code: 'TriggerRequestMethodNotValid',
                message: `The HTTP method for this request is not valid: expected 'Post' and actual '${record.method}'.`,
            });
        }
        // Shared-access signature. Error codes as reported for Logic Apps request triggers (a missing signature:
        // DirectApiAuthorizationRequired, MicrosoftDocs/azure-docs#60706); the invalid-signature code is from memory.
        if (givenSig === null || givenSig === '') {
            return reject({
                status: 401,
                code: 'DirectApiAuthorizationRequired',
                message: 'The request must be authenticated by Shared Access scheme.',
            });
        }
        if (!record.sigValid) {
            return reject({
                status: 401,
                code: 'DirectApiInvalidAuthorizationSignature',
                message: 'The provided authorization signature is not valid.',
            });
        }

        const fault = harness.takeFault();
        if (fault !== undefined) {
            record.fault = fault;
            if ('delayMs' in fault) {
                await harness.wait(fault.delayMs);
                if (harness.closed()) return;
            } else {
                return sendJson(res, record, {
                    status: fault.status,
                    code: fault.status === 429 ? 'WorkflowRequestsThrottled' : 'ServiceUnavailable',
                    message:
                        fault.status === 429
                            ? `Number of requests for workflow '${workflowId}' exceeded the limit (fault injected by the test).`
                            : 'The service is temporarily unavailable (fault injected by the test).',
                    ...(fault.retryAfterSeconds === undefined
                        ? {}
                        : { headers: { 'retry-after': String(fault.retryAfterSeconds) } }),
                });
            }
        }

        // The fake checks the body; the real trigger accepts any body and leaves the failure to the flow run.
        let body: unknown;
        try {
            body = JSON.parse(record.body);
        } catch {
            return reject({ status: 400, code: 'InvalidRequestContent', message: 'The request body is not JSON.' });
        }
        const problems = teamsMessageProblems(body);
        if (problems.length === 0 && options.validateCard !== undefined) {
            const card = ((body as { attachments: { content: unknown }[] }).attachments[0] as { content: unknown })
                .content;
            problems.push(...options.validateCard(card).map((p) => `card: ${p}`));
        }
        if (problems.length > 0) {
            record.errors = problems;
            return sendJson(res, record, {
                status: 400,
                code: 'InvalidRequestContent',
                message: problems.join('; '),
            });
        }
        const message = body as Record<string, unknown>;
        messages.push(message);
        cards.push((message.attachments as { content: Record<string, unknown> }[])[0]!.content);
        respond(res, record, 202, '', { 'x-ms-workflow-run-id': randomUUID().replace(/-/g, '') });
    }

    const { server, port, caPem } = await listenHttps(handle);
    const base = `https://localhost:${port}`;
    return {
        url: base,
        webhookUrl: `${base}${invokePath}?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=${encodeURIComponent(sig)}`,
        caPem,
        requests,
        messages,
        cards,
        ...controlsOf(harness, server),
    };
}

// ---------------------------------------------------------------------------------------------------------------
// MIME parsing (enough to check what the responder builds: RFC 5322 headers, RFC 2047 encoded-words, multipart
// bodies with base64 or quoted-printable parts)

export interface MimeHeader {
    name: string;
    /** The unfolded value, encoded-words left as they are. */
    value: string;
}

export interface ParsedMime {
    headers: MimeHeader[];
    /** The first text/plain part, decoded. */
    text?: string;
    /** The first text/html part, decoded. */
    html?: string;
    /** Every leaf part's content type, in order. */
    partTypes: string[];
}

/** The decoded value of the only header named `name` (case-insensitive), encoded-words decoded. */
export function headerValue(headers: readonly MimeHeader[], name: string): string | undefined {
    const h = headers.find((x) => x.name.toLowerCase() === name.toLowerCase());
    return h === undefined ? undefined : decodeEncodedWords(h.value);
}

/** RFC 2047: `=?charset?B|Q?text?=` words decoded; whitespace between two adjacent encoded-words dropped. */
export function decodeEncodedWords(value: string): string {
    const word = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;
    const joined = value.replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)/g, '$1');
    return joined.replace(word, (_m, charset: string, enc: string, text: string) => {
        const bytes =
            enc.toUpperCase() === 'B'
                ? Buffer.from(text, 'base64')
                : Buffer.from(
                      text
                          .replace(/_/g, ' ')
                          .replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))),
                      'latin1',
                  );
        return new TextDecoder(charset).decode(bytes);
    });
}

function headerParam(value: string, param: string): string | undefined {
    const m = new RegExp(`;\\s*${param}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value);
    return m === null ? undefined : (m[1] ?? m[2]);
}

/** Headers of an entity: CRLF lines, folded lines unfolded. Problems are appended to `errors`. */
function parseHeaderBlock(block: string, errors: string[], where: string): MimeHeader[] {
    const headers: MimeHeader[] = [];
    for (const line of block.split('\r\n')) {
        if (line.length > 998) errors.push(`${where}: a header line is longer than 998 characters`);
        if (/^[ \t]/.test(line)) {
            const last = headers.at(-1);
            if (last === undefined) errors.push(`${where}: the first header line is a continuation`);
            else last.value += line;
            continue;
        }
        const m = /^([!-9;-~]+):[ \t]*(.*)$/.exec(line);
        if (m === null) {
            errors.push(`${where}: not a header line: ${JSON.stringify(line.slice(0, 80))}`);
            continue;
        }
        headers.push({ name: m[1]!, value: m[2]! });
    }
    return headers;
}

function decodeBody(body: string, headers: MimeHeader[], errors: string[], where: string): string {
    const cte = (headerValue(headers, 'Content-Transfer-Encoding') ?? '7bit').trim().toLowerCase();
    const contentType = headerValue(headers, 'Content-Type') ?? 'text/plain';
    const charset = headerParam(contentType, 'charset') ?? 'us-ascii';
    let bytes: Buffer;
    switch (cte) {
        case 'base64': {
            const compact = body.replace(/\s+/g, '');
            if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) {
                errors.push(`${where}: the base64 body is not valid base64`);
            }
            bytes = Buffer.from(compact, 'base64');
            break;
        }
        case 'quoted-printable':
            bytes = Buffer.from(
                body
                    .replace(/=\r\n/g, '')
                    .replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))),
                'latin1',
            );
            break;
        case '7bit':
        case '8bit':
        case 'binary':
            bytes = Buffer.from(body, 'latin1');
            break;
        default:
            errors.push(`${where}: unknown Content-Transfer-Encoding ${cte}`);
            bytes = Buffer.from(body, 'latin1');
    }
    try {
        return new TextDecoder(charset, { fatal: true }).decode(bytes);
    } catch {
        errors.push(`${where}: the body is not valid ${charset}`);
        return bytes.toString('latin1');
    }
}

function parseEntity(entity: string, out: ParsedMime, errors: string[], where: string, depth: number): MimeHeader[] {
    const split = entity.indexOf('\r\n\r\n');
    const block = split < 0 ? entity : entity.slice(0, split);
    const body = split < 0 ? '' : entity.slice(split + 4);
    if (split < 0 && where === 'message') errors.push('message: no empty line between the headers and the body');
    const headers = block === '' ? [] : parseHeaderBlock(block, errors, where);
    const contentType = headerValue(headers, 'Content-Type') ?? 'text/plain; charset=us-ascii';
    const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
    if (mediaType.startsWith('multipart/')) {
        const boundary = headerParam(contentType, 'boundary');
        if (boundary === undefined || boundary === '') {
            errors.push(`${where}: multipart without a boundary`);
            return headers;
        }
        if (depth > 5) {
            errors.push(`${where}: multipart nested too deeply`);
            return headers;
        }
        const lines = body.split('\r\n');
        const parts: string[][] = [];
        let current: string[] | undefined;
        let closed = false;
        for (const line of lines) {
            if (line.trimEnd() === `--${boundary}--`) {
                if (current !== undefined) parts.push(current);
                current = undefined;
                closed = true;
                break;
            }
            if (line.trimEnd() === `--${boundary}`) {
                if (current !== undefined) parts.push(current);
                current = [];
                continue;
            }
            current?.push(line);
        }
        if (!closed) errors.push(`${where}: the closing boundary --${boundary}-- is missing`);
        if (parts.length === 0) errors.push(`${where}: multipart with no parts`);
        parts.forEach((p, i) => parseEntity(p.join('\r\n'), out, errors, `${where} part ${i + 1}`, depth + 1));
        return headers;
    }
    out.partTypes.push(mediaType);
    const decoded = decodeBody(body, headers, errors, where);
    if (mediaType === 'text/plain' && out.text === undefined) out.text = decoded;
    if (mediaType === 'text/html' && out.html === undefined) out.html = decoded;
    return headers;
}

/**
 * Parses a MIME message (CRLF line endings required, as on the wire). Returns the top-level headers and the decoded
 * text/plain and text/html parts, and lists every problem found in `errors` (empty when well formed).
 */
export function parseMime(raw: string): { message: ParsedMime; errors: string[] } {
    const errors: string[] = [];
    if (/[^\t\r\n\x20-\x7e]/.test(raw)) errors.push('message: characters other than printable ASCII, TAB, CR and LF');
    if (/\r(?!\n)|(?<!\r)\n/.test(raw)) errors.push('message: a bare CR or LF (lines must end with CRLF)');
    const message: ParsedMime = { headers: [], partTypes: [] };
    message.headers = parseEntity(raw, message, errors, 'message', 0);
    for (const name of ['From', 'To', 'Subject']) {
        const count = message.headers.filter((h) => h.name.toLowerCase() === name.toLowerCase()).length;
        if (count !== 1) errors.push(`message: expected exactly one ${name} header, found ${count}`);
    }
    return { message, errors };
}

// ---------------------------------------------------------------------------------------------------------------
// Microsoft Graph sendMail

export interface GraphFakeOptions {
    /** The bearer token the fake accepts (default 'fake-graph-access-token'). */
    token?: string;
}

export interface GraphFakeRequest extends NotificationRequest {
    authorization: string | undefined;
    /** The Graph client's `Retry-Attempt` header: set on its RetryHandler's retries. */
    retryAttempt: string | undefined;
}

/** A message Graph accepted, as the fake understood it. */
export interface SentMail {
    /** The `{id | userPrincipalName}` of the URL, decoded. */
    mailbox: string;
    form: 'mime' | 'json';
    /** The From header (MIME form). */
    from?: string;
    to: string[];
    subject: string;
    text?: string;
    html?: string;
    /** Top-level headers in order (MIME form). */
    headers: MimeHeader[];
    /** The decoded MIME message (MIME form). */
    mime?: string;
    saveToSentItems?: boolean;
}

export interface GraphFake {
    /** https://localhost:PORT/ (with the trailing slash the Graph client's `baseUrl` expects). */
    readonly url: string;
    /** The host name to list in the Graph client's `customHosts`. */
    readonly host: string;
    readonly caPem: string;
    readonly token: string;
    readonly requests: readonly GraphFakeRequest[];
    readonly sent: readonly SentMail[];
    inject(fault: NotificationFault): void;
    pendingFaults(): number;
    clearFaults(): void;
    /** Empties `requests` and `sent`. */
    clearLog(): void;
    close(): Promise<void>;
}

const SEND_MAIL = /^\/v1\.0\/users\/([^/]+)\/sendMail$/i;

function addressesOf(recipients: unknown, field: string, problems: string[]): string[] {
    if (recipients === undefined) return [];
    if (!Array.isArray(recipients)) {
        problems.push(`${field} must be an array`);
        return [];
    }
    return recipients.flatMap((r, i) => {
        const address = isObject(r) && isObject(r.emailAddress) ? r.emailAddress.address : undefined;
        if (typeof address !== 'string' || !address.includes('@')) {
            problems.push(`${field}[${i}].emailAddress.address must be an email address`);
            return [];
        }
        return [address];
    });
}

export async function startGraphFake(options: GraphFakeOptions = {}): Promise<GraphFake> {
    const token = options.token ?? 'fake-graph-access-token';
    const sent: SentMail[] = [];
    const harness = createHarness('graphFake', () => {
        sent.length = 0;
    });
    const requests = harness.requests as GraphFakeRequest[];

    // Graph error body: { error: { code, message, innerError: { date, request-id, client-request-id } } }.
    const sendError = (res: ServerResponse, record: NotificationRequest, e: FakeError) => {
        const requestId = randomUUID();
        respond(
            res,
            record,
            e.status,
            JSON.stringify({
                error: {
                    code: e.code,
                    message: e.message,
                    innerError: {
                        date: new Date().toISOString(),
                        'request-id': requestId,
                        'client-request-id': requestId,
                    },
                },
            }),
            { 'content-type': 'application/json', 'request-id': requestId, ...e.headers },
        );
    };

    function mimeMail(mailbox: string, body: string, problems: string[]): SentMail | undefined {
        const compact = body.replace(/\s+/g, '');
        if (compact === '' || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) return undefined;
        const raw = Buffer.from(compact, 'base64').toString('latin1');
        const { message, errors } = parseMime(raw);
        problems.push(...errors);
        return {
            mailbox,
            form: 'mime',
            ...(headerValue(message.headers, 'From') === undefined
                ? {}
                : { from: headerValue(message.headers, 'From')! }),
            to: (headerValue(message.headers, 'To') ?? '')
                .split(',')
                .map((a) => a.trim())
                .filter(Boolean),
            subject: headerValue(message.headers, 'Subject') ?? '',
            ...(message.text === undefined ? {} : { text: message.text }),
            ...(message.html === undefined ? {} : { html: message.html }),
            headers: message.headers,
            mime: raw,
        };
    }

    function jsonMail(mailbox: string, body: unknown, problems: string[]): SentMail {
        if (!isObject(body) || !isObject(body.message)) {
            problems.push("the body must be a JSON object with a 'message' object");
            return { mailbox, form: 'json', to: [], subject: '', headers: [] };
        }
        const m = body.message;
        const to = addressesOf(m.toRecipients, 'message.toRecipients', problems);
        const cc = addressesOf(m.ccRecipients, 'message.ccRecipients', problems);
        const bcc = addressesOf(m.bccRecipients, 'message.bccRecipients', problems);
        if (to.length + cc.length + bcc.length === 0) problems.push('the message has no recipients');
        if (m.subject !== undefined && typeof m.subject !== 'string') problems.push('message.subject must be a string');
        let text: string | undefined;
        let html: string | undefined;
        if (m.body !== undefined) {
            const b = m.body;
            const contentType = isObject(b) && typeof b.contentType === 'string' ? b.contentType.toLowerCase() : '';
            if (!isObject(b) || typeof b.content !== 'string' || (contentType !== 'text' && contentType !== 'html')) {
                problems.push("message.body must be { contentType: 'Text' | 'HTML', content: string }");
            } else if (contentType === 'text') text = b.content;
            else html = b.content;
        }
        // The documented example sends saveToSentItems as the string "false".
        const save = body.saveToSentItems;
        if (save !== undefined && typeof save !== 'boolean' && save !== 'true' && save !== 'false') {
            problems.push('saveToSentItems must be a boolean');
        }
        return {
            mailbox,
            form: 'json',
            to,
            subject: typeof m.subject === 'string' ? m.subject : '',
            ...(text === undefined ? {} : { text }),
            ...(html === undefined ? {} : { html }),
            headers: [],
            ...(save === undefined ? {} : { saveToSentItems: save === true || save === 'true' }),
        };
    }

    async function handle(req: IncomingMessage, res: ServerResponse, raw: Buffer): Promise<void> {
        const url = new URL(req.url ?? '/', 'https://localhost');
        const record: GraphFakeRequest = {
            method: (req.method ?? 'GET').toUpperCase(),
            path: url.pathname,
            authorization: req.headers.authorization,
            retryAttempt: typeof req.headers['retry-attempt'] === 'string' ? req.headers['retry-attempt'] : undefined,
            contentType: req.headers['content-type'],
            body: raw.toString('latin1'),
            status: 0,
        };
        requests.push(record);
        const reject = (e: FakeError, errors = [e.message]) => {
            record.errors = errors;
            sendError(res, record, e);
        };

        // Graph authenticates before routing.
        const auth = req.headers.authorization;
        if (auth === undefined || !/^Bearer\s+\S+/i.test(auth)) {
            return reject({ status: 401, code: 'InvalidAuthenticationToken', message: 'Access token is empty.' });
        }
        if (auth.replace(/^Bearer\s+/i, '') !== token) {
            return reject({
                status: 401,
                code: 'InvalidAuthenticationToken',
                message: 'Access token validation failure. Invalid audience.',
            });
        }
        const route = SEND_MAIL.exec(url.pathname);
        if (route === null) {
            return reject({
                status: 404,
                code: 'UnknownRoute',
                message: `${url.pathname} is not modelled by the fake (it models POST /v1.0/users/{id}/sendMail).`,
            });
        }
        if (record.method !== 'POST') {
            return reject({
                status: 405,
                code: 'Request_BadRequest',
                message: `The HTTP method '${record.method}' is not allowed for sendMail.`,
            });
        }
        const mailbox = decodeURIComponent(route[1]!);

        const fault = harness.takeFault();
        if (fault !== undefined) {
            record.fault = fault;
            if ('delayMs' in fault) {
                await harness.wait(fault.delayMs);
                if (harness.closed()) return;
            } else {
                const retryAfter =
                    fault.retryAfterSeconds === undefined ? {} : { 'retry-after': String(fault.retryAfterSeconds) };
                const [code, message] =
                    fault.status === 429
                        ? ['ApplicationThrottled', 'Application is over its MailboxConcurrency limit.']
                        : fault.status === 503
                          ? ['ServiceNotAvailable', 'The service is temporarily unavailable.']
                          : ['UnknownError', 'An internal server error occurred.'];
                return sendError(res, record, {
                    status: fault.status,
                    code,
                    message: `${message} (fault injected by the test)`,
                    headers: retryAfter,
                });
            }
        }

        const mediaType = (record.contentType ?? '').split(';')[0]!.trim().toLowerCase();
        const problems: string[] = [];
        let mail: SentMail | undefined;
        if (mediaType === 'text/plain') {
            mail = mimeMail(mailbox, record.body, problems);
            if (mail === undefined) {
                return reject({
                    status: 400,
                    code: 'ErrorMimeContentInvalidBase64String',
                    message: 'Invalid base64 string for MIME content.',
                });
            }
            if (problems.length > 0) {
                // The code for well-formed base64 that is not a usable MIME message is the fake's own.
                return reject({ status: 400, code: 'ErrorMimeContentInvalid', message: problems.join('; ') }, problems);
            }
        } else if (mediaType === 'application/json') {
            let body: unknown;
            try {
                body = JSON.parse(record.body);
            } catch {
                return reject({ status: 400, code: 'BadRequest', message: 'Unable to read JSON request payload.' });
            }
            mail = jsonMail(mailbox, body, problems);
            if (problems.length > 0) {
                return reject({ status: 400, code: 'ErrorInvalidRecipients', message: problems.join('; ') }, problems);
            }
        } else {
            return reject({
                status: 415,
                code: 'UnsupportedMediaType',
                message: `Content-Type '${record.contentType ?? ''}' is not supported: send JSON, or base64 MIME as text/plain.`,
            });
        }
        sent.push(mail);
        // 202 Accepted, no body.
        respond(res, record, 202, '', { 'request-id': randomUUID() });
    }

    const { server, port, caPem } = await listenHttps(handle);
    return {
        url: `https://localhost:${port}/`,
        host: 'localhost',
        caPem,
        token,
        requests,
        sent,
        ...controlsOf(harness, server),
    };
}
