import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import { confirmationPage, errorPage, resultPage } from '../../core/alerts/render';
import { LINK_ACTIONS } from '../../core/alerts/token';
import type { Alerting, LinkOutcome } from '../alerting';

export interface IncidentLinkDeps {
    readonly alerting: Alerting;
    /** Record `x-ms-client-principal-name` as who acted: only when App Service Authentication fronts the app. */
    readonly trustEasyAuth: boolean;
}

const PAGE_HEADERS = {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Security-Policy':
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Robots-Tag': 'noindex',
};

function respond(status: number, body: string): HttpResponseInit {
    return { status, headers: PAGE_HEADERS, body };
}

function refused(outcome: Extract<LinkOutcome, { kind: 'refused' }>): HttpResponseInit {
    return respond(outcome.status, errorPage('This link cannot be used', outcome.message));
}

/** The client address: the first `X-Forwarded-For` hop (set by the platform front end), without a port. */
function clientAddress(request: HttpRequest): string | undefined {
    const forwarded = request.headers.get('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded === undefined || forwarded === '') return undefined;
    const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(forwarded);
    if (v6 !== null) return v6[1];
    return /^[^:]+:\d+$/.test(forwarded) ? forwarded.replace(/:\d+$/, '') : forwarded;
}

/**
 * Acknowledge and undo links (`GET|POST /api/incidents/{id}/{ack|undo}?t=<token>`). A GET only shows the incident and
 * a confirmation button (mail scanners and link previews fetch URLs); the POST from that page acts, once.
 */
export async function handleIncidentLink(
    request: HttpRequest,
    context: InvocationContext,
    deps: IncidentLinkDeps,
): Promise<HttpResponseInit> {
    const log = new InvocationLogger(context);
    const id = request.params.id ?? '';
    const action = request.params.action;
    const act = LINK_ACTIONS.find((a) => a === action);
    if (act === undefined) return respond(404, errorPage('Not found', 'unknown link'));
    if (request.method === 'GET' || request.method === 'HEAD') {
        const outcome = await deps.alerting.view(id, act, request.query.get('t') ?? '');
        if (outcome.kind === 'refused') {
            log.warn('kvr.link-refused', {
                incident: id,
                action: act,
                status: outcome.status,
                reason: outcome.message,
            });
            return refused(outcome);
        }
        return respond(
            200,
            confirmationPage(
                outcome.incident,
                act,
                request.query.get('t') ?? '',
                outcome.kind === 'already' ? outcome.message : undefined,
            ),
        );
    }
    if (request.method !== 'POST') return { status: 405, headers: { Allow: 'GET, POST' } };
    const form = new URLSearchParams(await request.text());
    const token = form.get('t') ?? request.query.get('t') ?? '';
    const by = deps.trustEasyAuth ? (request.headers.get('x-ms-client-principal-name') ?? undefined) : undefined;
    const from = clientAddress(request);
    const outcome = await deps.alerting.act(id, act, token, {
        ...(by === undefined ? {} : { by: by.slice(0, 200) }),
        ...(from === undefined ? {} : { from: from.slice(0, 100) }),
    });
    if (outcome.kind === 'refused') {
        log.warn('kvr.link-refused', { incident: id, action: act, status: outcome.status, reason: outcome.message });
        return outcome.incident === undefined
            ? refused(outcome)
            : respond(outcome.status, resultPage(outcome.incident, act, outcome.message));
    }
    return respond(outcome.kind === 'done' ? 200 : 409, resultPage(outcome.incident, act, outcome.message));
}
