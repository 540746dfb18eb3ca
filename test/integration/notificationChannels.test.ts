// The real delivery channels (Teams Workflows webhook over fetch, Microsoft Graph sendMail through the real Graph
// client) against the local HTTPS fakes, the test CA trusted per channel.
import { Agent, fetch } from 'undici';
import { GRAPH_SCOPE, GraphMailChannel, type GraphMailChannelOptions } from '../../shared/adapters/graphMailChannel';
import { TeamsWebhookChannel, parseRetryAfterMs, redactWebhookUrl } from '../../shared/adapters/teamsWebhookChannel';
import { buildMime, renderMime, type MimeInput } from '../../shared/core/alerts/mime';
import {
    DeliveryError,
    type EmailMessage,
    type OutgoingNotification,
    type TeamsWebhookMessage,
} from '../../shared/core/alerts/types';
import {
    type GraphFake,
    type TeamsWorkflowsFake,
    parseMime,
    startGraphFake,
    startTeamsWorkflowsFake,
} from '../../shared/simulation/notificationFakes';
import { StubTokenCredential } from '../fakes/armClient';
import {
    asTeamsMessage,
    sampleAlertCard,
    validateAdaptiveCard,
    validateTeamsWebhookMessage,
} from '../support/adaptiveCard';

const SIG = 'pX2vQ9tLw7rK4mZs8NcYb3HdF6gJe1UoAiTqRyWxV0k';

function teamsNotification(teams: TeamsWebhookMessage): OutgoingNotification {
    return { id: 'n-teams-1', incidentId: 'inc-7f3a91', kind: 'opened', channel: 'teams', teams };
}

function emailNotification(email: EmailMessage): OutgoingNotification {
    return { id: 'n-email-1', incidentId: 'inc-7f3a91', kind: 'opened', channel: 'email', email };
}

/** The error `promise` rejects with; fails the test if it resolves or rejects with something else. */
async function deliveryErrorOf(promise: Promise<unknown>): Promise<DeliveryError> {
    const outcome = await promise.then(
        () => undefined,
        (e: unknown) => e,
    );
    if (!(outcome instanceof DeliveryError)) {
        throw new Error(`expected a DeliveryError, got ${outcome === undefined ? 'success' : JSON.stringify(outcome)}`);
    }
    return outcome;
}

/** Every text an error exposes: message, stack, own properties and the chain of causes. */
function everythingIn(e: unknown): string {
    const parts: string[] = [];
    let cur: unknown = e;
    for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
        if (!(cur instanceof Error)) {
            parts.push(JSON.stringify(cur));
            break;
        }
        parts.push(cur.message, cur.stack ?? '', JSON.stringify(cur));
        cur = (cur as { cause?: unknown }).cause;
    }
    return parts.join('\n');
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
        if (Date.now() > deadline) throw new Error('condition not met in time');
        await new Promise((r) => setTimeout(r, 10));
    }
}

describe('TeamsWebhookChannel against the Teams Workflows fake', () => {
    let fake: TeamsWorkflowsFake;
    let channel: TeamsWebhookChannel;

    beforeAll(async () => {
        fake = await startTeamsWorkflowsFake({ sig: SIG, validateCard: validateAdaptiveCard });
        channel = new TeamsWebhookChannel({ webhookUrl: fake.webhookUrl, ca: fake.caPem, timeoutMs: 2000 });
    });
    afterAll(async () => {
        await channel.close();
        await fake.close();
    });
    afterEach(() => {
        fake.clearFaults();
        fake.clearLog();
    });

    it('has a webhook URL shaped like the service: a manual trigger with a sig', () => {
        const url = new URL(fake.webhookUrl);
        expect(url.pathname).toMatch(/^\/workflows\/[0-9a-f]{32}\/triggers\/manual\/paths\/invoke$/);
        expect(url.searchParams.get('sig')).toBe(SIG);
        expect(url.searchParams.get('api-version')).toBe('2016-06-01');
    });

    it('delivers: 202, and the fake records exactly the card that was sent', async () => {
        const message = asTeamsMessage(sampleAlertCard());
        expect(validateTeamsWebhookMessage(message)).toEqual([]);
        await channel.send(teamsNotification(message));

        expect(fake.requests).toHaveLength(1);
        const [request] = fake.requests;
        expect(request).toMatchObject({ method: 'POST', status: 202, sigValid: true, apiVersion: '2016-06-01' });
        expect(request?.contentType).toMatch(/^application\/json/);
        expect(fake.messages).toEqual([message]);
        expect(fake.cards).toEqual([message.attachments[0]!.content]);
    });

    it('maps 429 with Retry-After to a transient DeliveryError with retryAfterMs', async () => {
        fake.inject({ status: 429, retryAfterSeconds: 7 });
        const err = await deliveryErrorOf(channel.send(teamsNotification(asTeamsMessage(sampleAlertCard()))));
        expect(err).toMatchObject({ transient: true, status: 429, retryAfterMs: 7000 });
        expect(err.message).toContain('429');
        expect(everythingIn(err)).not.toContain(SIG);
        expect(fake.cards).toHaveLength(0);
    });

    it('reads Retry-After as delta-seconds or an HTTP date', () => {
        const now = Date.parse('2026-03-14T09:00:00Z');
        expect(parseRetryAfterMs('120', now)).toBe(120_000);
        expect(parseRetryAfterMs('Sat, 14 Mar 2026 09:00:30 GMT', now)).toBe(30_000);
        expect(parseRetryAfterMs('Sat, 14 Mar 2026 08:59:00 GMT', now)).toBe(0);
        expect(parseRetryAfterMs('soon', now)).toBeUndefined();
        expect(parseRetryAfterMs(null, now)).toBeUndefined();
    });

    it.each([500, 503] as const)('maps %i to a transient DeliveryError', async (status) => {
        fake.inject({ status });
        const err = await deliveryErrorOf(channel.send(teamsNotification(asTeamsMessage(sampleAlertCard()))));
        expect(err).toMatchObject({ transient: true, status, retryAfterMs: undefined });
        expect(everythingIn(err)).not.toContain(SIG);
    });

    it('maps 400 (a body the service rejects) to a non-transient DeliveryError', async () => {
        const bad = asTeamsMessage(sampleAlertCard()) as unknown as { attachments: { contentType: string }[] };
        bad.attachments[0]!.contentType = 'application/vnd.microsoft.card.hero';
        const err = await deliveryErrorOf(channel.send(teamsNotification(bad as unknown as TeamsWebhookMessage)));
        expect(err).toMatchObject({ transient: false, status: 400 });
        expect(err.message).toContain('application/vnd.microsoft.card.adaptive');
        expect(everythingIn(err)).not.toContain(SIG);
    });

    it('a card that breaks the Adaptive Card schema is refused by the fake (the service would drop it later)', async () => {
        const card = sampleAlertCard();
        delete (card.actions as Record<string, unknown>[])[0]!.url;
        const err = await deliveryErrorOf(channel.send(teamsNotification(asTeamsMessage(card))));
        expect(err).toMatchObject({ transient: false, status: 400 });
        expect(err.message).toContain("must have required property 'url'");
        expect(fake.cards).toHaveLength(0);
    });

    it('maps a wrong sig (401) to a non-transient DeliveryError that reveals neither sig', async () => {
        const wrongSig = 'WrongSignatureWrongSignatureWrongSignature0';
        const url = new URL(fake.webhookUrl);
        url.searchParams.set('sig', wrongSig);
        const wrong = new TeamsWebhookChannel({ webhookUrl: url.toString(), ca: fake.caPem });
        try {
            const err = await deliveryErrorOf(wrong.send(teamsNotification(asTeamsMessage(sampleAlertCard()))));
            expect(err).toMatchObject({ transient: false, status: 401 });
            expect(err.message).toContain('sig=***');
            expect(err.message).toContain('DirectApiInvalidAuthorizationSignature');
            expect(everythingIn(err)).not.toContain(wrongSig);
            expect(everythingIn(err)).not.toContain(SIG);
            expect(fake.requests[0]).toMatchObject({ status: 401, sigValid: false });
        } finally {
            await wrong.close();
        }
    });

    it('maps a timeout to a transient DeliveryError; the slow service may still post the card', async () => {
        fake.inject({ delayMs: 800 });
        const slow = new TeamsWebhookChannel({ webhookUrl: fake.webhookUrl, ca: fake.caPem, timeoutMs: 150 });
        try {
            const err = await deliveryErrorOf(slow.send(teamsNotification(asTeamsMessage(sampleAlertCard()))));
            // The client gave up before the service answered (the request, if it arrived yet, is still pending).
            expect(fake.requests[0]?.status ?? 0).toBe(0);
            expect(err).toMatchObject({ transient: true, status: undefined });
            expect(err.message).toMatch(/timed out after 150 ms/);
            expect(everythingIn(err)).not.toContain(SIG);
            // At-least-once: the request reached the service, which posts the card after the client gave up, so a
            // retry from the outbox can post it twice.
            await until(() => (fake.requests[0]?.status ?? 0) !== 0);
            expect(fake.requests[0]).toMatchObject({ status: 202, clientGone: true });
            expect(fake.cards).toHaveLength(1);
        } finally {
            await slow.close();
        }
    });

    it('maps a refused connection to a transient DeliveryError without the sig', async () => {
        const gone = await startTeamsWorkflowsFake({ sig: SIG });
        await gone.close();
        const refused = new TeamsWebhookChannel({ webhookUrl: gone.webhookUrl, ca: gone.caPem });
        try {
            const err = await deliveryErrorOf(refused.send(teamsNotification(asTeamsMessage(sampleAlertCard()))));
            expect(err).toMatchObject({ transient: true, status: undefined });
            expect(err.message).toContain('ECONNREFUSED');
            expect(everythingIn(err)).not.toContain(SIG);
        } finally {
            await refused.close();
        }
    });

    it('trusts the test CA per channel only: without `ca` the TLS handshake fails', async () => {
        const untrusting = new TeamsWebhookChannel({ webhookUrl: fake.webhookUrl });
        const err = await deliveryErrorOf(untrusting.send(teamsNotification(asTeamsMessage(sampleAlertCard()))));
        expect(err.transient).toBe(true);
        expect(err.message).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|self[- ]signed|unable to verify/i);
        expect(fake.requests).toHaveLength(0);
        expect(everythingIn(err)).not.toContain(SIG);
    });

    it('redacts the sig of any webhook URL, and refuses plain http', () => {
        expect(
            redactWebhookUrl(`https://x.logic.azure.com/workflows/1/triggers/manual/paths/invoke?sv=1.0&sig=${SIG}`),
        ).toBe('https://x.logic.azure.com/workflows/1/triggers/manual/paths/invoke?sv=1.0&sig=***');
        expect(redactWebhookUrl(`not a url ?sig=${SIG}&x=1`)).toBe('not a url ?sig=***&x=1');
        expect(() => new TeamsWebhookChannel({ webhookUrl: `http://localhost/x?sig=${SIG}` })).toThrow(
            /must be https: http:\/\/localhost\/x\?sig=\*\*\*$/,
        );
    });

    it('refuses a notification for another channel', async () => {
        const email = { from: 'a@b.example', to: ['c@d.example'], subject: 's', text: 't', html: 'h', mimeBase64: '' };
        const err = await deliveryErrorOf(channel.send(emailNotification(email)));
        expect(err.transient).toBe(false);
        expect(fake.requests).toHaveLength(0);
    });
});

describe('GraphMailChannel (real Graph client) against the Graph fake', () => {
    let fake: GraphFake;
    const channels: GraphMailChannel[] = [];

    const FROM = 'kv-alerts@contoso.com';
    const TO = ['oncall@contoso.com', 'secops@contoso.com'];
    const HEADERS = ['From', 'To', 'Subject', 'Message-ID', 'MIME-Version', 'Content-Type'];

    function mail(overrides: Partial<MimeInput> = {}): EmailMessage {
        const input: MimeInput = {
            from: FROM,
            to: TO,
            subject: 'HIGH: secret read from an unknown network on kv-payments-prod',
            text: 'Secret db-password was read from 203.0.113.77.\nThe responder removed the access policy.',
            html: '<p>Secret <b>db-password</b> was read from 203.0.113.77.</p><p>The responder removed the access policy.</p>',
            messageId: '<inc-7f3a91.opened@kv-responder.contoso.com>',
            ...overrides,
        };
        return {
            from: input.from,
            to: input.to,
            subject: input.subject,
            text: input.text,
            html: input.html,
            mimeBase64: buildMime(input),
        };
    }

    /** A channel on the fake; the defaults are what a test of the happy path needs (token attached, CA trusted). */
    function channelFor(options: Partial<GraphMailChannelOptions> = {}): {
        channel: GraphMailChannel;
        credential: StubTokenCredential;
    } {
        const credential = new StubTokenCredential(fake.token);
        const channel = new GraphMailChannel({
            credential,
            baseUrl: fake.url,
            customHosts: [fake.host],
            ca: fake.caPem,
            maxRetries: 2,
            retryDelaySeconds: 0,
            timeoutMs: 5000,
            ...options,
        });
        channels.push(channel);
        return { channel, credential };
    }

    beforeAll(async () => {
        fake = await startGraphFake();
    });
    afterAll(async () => {
        await Promise.all(channels.map((c) => c.close()));
        await fake.close();
    });
    afterEach(() => {
        fake.clearFaults();
        fake.clearLog();
    });

    it('sends the MIME message; the token is attached because the fake host is in customHosts', async () => {
        const { channel, credential } = channelFor();
        const email = mail();
        await channel.send(emailNotification(email));

        expect(credential.requestedScopes).toEqual([[GRAPH_SCOPE]]);
        expect(fake.requests).toHaveLength(1);
        const [request] = fake.requests;
        expect(request).toMatchObject({
            method: 'POST',
            path: '/v1.0/users/kv-alerts%40contoso.com/sendMail',
            authorization: `Bearer ${fake.token}`,
            contentType: 'text/plain',
            status: 202,
        });
        expect(request?.body).toBe(email.mimeBase64);

        expect(fake.sent).toHaveLength(1);
        const [sent] = fake.sent;
        expect(sent).toMatchObject({
            mailbox: FROM,
            form: 'mime',
            from: FROM,
            to: TO,
            subject: email.subject,
            text: email.text.replace(/\n/g, '\r\n'),
            html: email.html,
        });
        expect(sent?.headers.map((h) => h.name)).toEqual(HEADERS);
    });

    it('without customHosts the Graph client sends NO token, and the 401 is a non-transient DeliveryError', async () => {
        const credential = new StubTokenCredential(fake.token);
        const bare = new GraphMailChannel({ credential, baseUrl: fake.url, ca: fake.caPem, maxRetries: 0 });
        channels.push(bare);
        const err = await deliveryErrorOf(bare.send(emailNotification(mail())));
        expect(fake.requests).toHaveLength(1);
        expect(fake.requests[0]?.authorization).toBeUndefined();
        expect(credential.requestedScopes).toEqual([]);
        expect(err).toMatchObject({ transient: false, status: 401 });
        expect(err.message).toContain('InvalidAuthenticationToken');
        expect(fake.sent).toHaveLength(0);
    });

    it('429 with Retry-After: 0, then 202: delivered by the Graph client retrying on its own', async () => {
        const { channel, credential } = channelFor();
        fake.inject({ status: 429, retryAfterSeconds: 0 });
        await channel.send(emailNotification(mail()));
        expect(fake.requests.map((r) => [r.status, r.retryAttempt])).toEqual([
            [429, undefined],
            [202, '1'],
        ]);
        expect(fake.sent).toHaveLength(1);
        // The RetryHandler sits after the AuthenticationHandler: the retry re-sends the request with the same token.
        expect(credential.requestedScopes).toHaveLength(1);
        expect(fake.requests[1]?.authorization).toBe(`Bearer ${fake.token}`);
    });

    it('a persistent 503: the client retries maxRetries times, then a transient DeliveryError', async () => {
        const { channel } = channelFor({ maxRetries: 2 });
        fake.inject({ status: 503, retryAfterSeconds: 0, times: 10 });
        const err = await deliveryErrorOf(channel.send(emailNotification(mail())));
        expect(err).toMatchObject({ transient: true, status: 503, retryAfterMs: 0 });
        expect(err.message).toContain('ServiceNotAvailable');
        expect(fake.requests.map((r) => r.status)).toEqual([503, 503, 503]);
        expect(fake.sent).toHaveLength(0);
    });

    it('a Retry-After longer than maxRetryAfterSeconds is not waited out in-process: the outbox gets it', async () => {
        const { channel } = channelFor({ maxRetryAfterSeconds: 10 });
        fake.inject({ status: 429, retryAfterSeconds: 60, times: 5 });
        const started = Date.now();
        const err = await deliveryErrorOf(channel.send(emailNotification(mail())));
        expect(Date.now() - started).toBeLessThan(5000);
        expect(err).toMatchObject({ transient: true, status: 429, retryAfterMs: 60_000 });
        expect(fake.requests).toHaveLength(1);
    });

    it('a 500 (which the Graph client does not retry) is a transient DeliveryError after one request', async () => {
        const { channel } = channelFor();
        fake.inject({ status: 500 });
        const err = await deliveryErrorOf(channel.send(emailNotification(mail())));
        expect(err).toMatchObject({ transient: true, status: 500 });
        expect(fake.requests).toHaveLength(1);
    });

    it('a body that is not base64 is a 400 ErrorMimeContentInvalidBase64String, non-transient', async () => {
        const { channel } = channelFor();
        const err = await deliveryErrorOf(channel.send(emailNotification({ ...mail(), mimeBase64: 'not base64!!' })));
        expect(err).toMatchObject({ transient: false, status: 400 });
        expect(err.message).toContain('ErrorMimeContentInvalidBase64String');
    });

    it('well-formed base64 that is not a MIME message is a non-transient 400', async () => {
        const { channel } = channelFor();
        const notMime = Buffer.from('just some text, no headers').toString('base64');
        const err = await deliveryErrorOf(channel.send(emailNotification({ ...mail(), mimeBase64: notMime })));
        expect(err).toMatchObject({ transient: false, status: 400 });
        expect(err.message).toMatch(/expected exactly one From header/);
    });

    it('a timeout (the fake slower than the channel) is a transient DeliveryError', async () => {
        const { channel } = channelFor({ timeoutMs: 150 });
        fake.inject({ delayMs: 800 });
        const err = await deliveryErrorOf(channel.send(emailNotification(mail())));
        expect(err).toMatchObject({ transient: true, status: undefined });
        expect(err.message).toMatch(/timed out after 150 ms/);
    });

    it('the undici dispatcher in fetchOptions is what trusts the test CA: without `ca` the handshake fails', async () => {
        const untrusting = new GraphMailChannel({
            credential: new StubTokenCredential(fake.token),
            baseUrl: fake.url,
            customHosts: [fake.host],
            maxRetries: 0,
        });
        channels.push(untrusting);
        const err = await deliveryErrorOf(untrusting.send(emailNotification(mail())));
        expect(err.transient).toBe(true);
        expect(err.status).toBeUndefined();
        expect(fake.requests).toHaveLength(0);
    });

    it('attacker strings in the subject cannot add headers; in the bodies they arrive as data, unchanged', async () => {
        const { channel } = channelFor();
        const subject = 'x\r\nBcc: evil@example.com\r\n\r\n<script>alert(1)</script> "><img src=x onerror=alert(1)>';
        const html =
            '<p>caller: "><img src=x onerror=alert(1)></p>\r\nBcc: evil@example.com\r\n<script>alert(1)</script>';
        const text = 'Bcc: evil@example.com\r\n\r\n--boundary--\r\n.';
        await channel.send(emailNotification(mail({ subject, html, text })));

        expect(fake.sent).toHaveLength(1);
        const [sent] = fake.sent;
        expect(sent?.headers.map((h) => h.name)).toEqual(HEADERS);
        expect(sent?.to).toEqual(TO);
        expect(sent?.subject).toBe('x Bcc: evil@example.com <script>alert(1)</script> "><img src=x onerror=alert(1)>');
        expect(sent?.html).toBe(html);
        expect(sent?.text).toBe(text);
        // No header line and no plain-text occurrence: the bodies are base64, the subject an encoded-word.
        expect(sent?.mime).not.toMatch(/^Bcc:/im);
        expect(sent?.mime).not.toContain('evil@example.com');
    });

    it('a non-ASCII subject travels as RFC 2047 encoded-words, in lines of at most 78 characters', async () => {
        const { channel } = channelFor();
        const subject = 'Ungewöhnlicher Zugriff auf den Schlüsseltresor kv-zahlungen — 🔐 bitte prüfen, sofort ✓';
        await channel.send(emailNotification(mail({ subject })));
        const [sent] = fake.sent;
        expect(sent?.subject).toBe(subject);
        expect(sent?.headers.find((h) => h.name === 'Subject')?.value).toMatch(/^=\?UTF-8\?B\?/);
        for (const line of (sent?.mime ?? '').split('\r\n')) expect(line.length).toBeLessThanOrEqual(78);
    });

    it('the fake also accepts the JSON form of sendMail', async () => {
        const agent = new Agent({ connect: { ca: fake.caPem } });
        try {
            const response = await fetch(`${fake.url}v1.0/users/${encodeURIComponent(FROM)}/sendMail`, {
                method: 'POST',
                headers: { authorization: `Bearer ${fake.token}`, 'content-type': 'application/json' },
                body: JSON.stringify({
                    message: {
                        subject: 'Meet for lunch?',
                        body: { contentType: 'Text', content: 'The new cafeteria is open.' },
                        toRecipients: [{ emailAddress: { address: 'frannis@contoso.com' } }],
                    },
                    saveToSentItems: 'false',
                }),
                dispatcher: agent,
            });
            expect(response.status).toBe(202);
            expect(await response.text()).toBe('');
            expect(fake.sent).toEqual([
                {
                    mailbox: FROM,
                    form: 'json',
                    to: ['frannis@contoso.com'],
                    subject: 'Meet for lunch?',
                    text: 'The new cafeteria is open.',
                    headers: [],
                    saveToSentItems: false,
                },
            ]);
        } finally {
            await agent.close();
        }
    });
});

describe('buildMime', () => {
    const input: MimeInput = {
        from: 'kv-alerts@contoso.com',
        to: ['oncall@contoso.com'],
        subject: 'Résumé of incident inc-1',
        text: 'line 1\nline 2',
        html: '<p>line 1</p>',
        date: new Date('2026-03-14T09:26:53Z'),
    };

    it('is deterministic, and the boundary follows the content', () => {
        expect(buildMime(input)).toBe(buildMime({ ...input }));
        const boundary = (raw: string) => /boundary="([^"]+)"/.exec(raw)?.[1];
        expect(boundary(renderMime(input))).toMatch(/^=_kvr_[0-9a-f]{16}$/);
        expect(boundary(renderMime({ ...input, html: '<p>other</p>' }))).not.toBe(boundary(renderMime(input)));
    });

    it('produces a well-formed multipart/alternative message with CRLF line endings', () => {
        const raw = renderMime(input);
        expect(Buffer.from(buildMime(input), 'base64').toString('ascii')).toBe(raw);
        expect(raw).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
        const { message, errors } = parseMime(raw);
        expect(errors).toEqual([]);
        expect(message.partTypes).toEqual(['text/plain', 'text/html']);
        expect(message.text).toBe('line 1\r\nline 2');
        expect(message.html).toBe('<p>line 1</p>');
        expect(raw).toContain('\r\nDate: Sat, 14 Mar 2026 09:26:53 +0000\r\n');
        expect(raw).toContain('\r\nSubject: =?UTF-8?B?');
    });

    it.each([
        ['a recipient with a header injection', { to: ['oncall@contoso.com\r\nBcc: evil@example.com'] }],
        ['a recipient with a display name', { to: ['"Evil" <evil@example.com>'] }],
        ['a sender with a newline', { from: 'kv-alerts@contoso.com\n' }],
        ['no recipients', { to: [] }],
        ['a Message-ID with a newline', { messageId: '<a@b>\r\nBcc: evil@example.com' }],
    ])('refuses %s', (_what, override: Partial<MimeInput>) => {
        expect(() => buildMime({ ...input, ...override })).toThrow(/buildMime/);
    });
});
