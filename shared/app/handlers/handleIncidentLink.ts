import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import { checkSameOrigin, easyAuthActor, type LinkActor, originOf } from '../../core/alerts/linkGuard';
import type { Incident } from '../../core/alerts/incident';
import { type IncidentPageContext, incidentPageContext } from '../../core/alerts/incidentPage';
import { confirmationPage, errorPage, resultPage, signInPage } from '../../core/alerts/render';
import { LINK_ACTIONS } from '../../core/alerts/token';
import type { Alerting, LinkOutcome } from '../alerting';

export interface IncidentLinkDeps {
    readonly alerting: Alerting;
    /**
     * App Service Authentication fronts the app (`KVR_TRUST_EASY_AUTH=true`): every link request needs a signed-in
     * Microsoft Entra ID user, recorded as who acted.
     */
    readonly trustEasyAuth: boolean;
    /**
     * Without Easy Auth, act on the link token alone (whoever holds the link): an explicit opt-in for local use
     * (`KVR_ALLOW_POSSESSION_ONLY_LINKS=true`, `kvr serve --possession-only-links`). When neither is set, links show
     * the incident but act on nothing.
     */
    readonly possessionOnlyLinks?: boolean;
    /** The app's public URL (`KVR_PUBLIC_URL`): a confirming POST must come from this origin. */
    readonly publicUrl: string;
}

const PAGE_HEADERS = {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Security-Policy':
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'X-Content-Type-Options': 'nosniff',
    // same-origin: the confirming POST then carries our Origin (no-referrer would make browsers send `Origin: null`),
    // while nothing (the token in the URL) leaks to another site.
    'Referrer-Policy': 'same-origin',
    'X-Robots-Tag': 'noindex',
};

/** Why links do nothing when the deployment chose neither sign-in nor possession-only links. */
export const NO_LINK_AUTH =
    'This deployment accepts no link actions: it is not behind App Service Authentication (KVR_TRUST_EASY_AUTH=true), and possession-only links are not enabled (KVR_ALLOW_POSSESSION_ONLY_LINKS=true, or kvr serve --possession-only-links).';

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

/** The Easy Auth login URL that comes back to this link (a relative redirect stays on this app). */
function loginUrlFor(request: HttpRequest): string {
    const u = new URL(request.url);
    return `/.auth/login/aad?post_login_redirect_uri=${encodeURIComponent(`${u.pathname}${u.search}`)}`;
}

/** The page's extra sections (changes, undo scope, runbook) from the saved undo records; none if they cannot be read. */
async function pageContext(alerting: Alerting, inc: Incident, log: InvocationLogger): Promise<IncidentPageContext> {
    try {
        return incidentPageContext(inc, await alerting.undoRecordsOf(inc));
    } catch (err) {
        log.warn('kvr.link-page-context-failed', {
            incident: inc.id,
            error: (err instanceof Error ? err.message : String(err)).slice(0, 300),
        });
        return incidentPageContext(inc, []);
    }
}

type Authorized = { readonly actor: LinkActor | undefined } | { readonly response: HttpResponseInit; reason: string };

/** Who the request acts as: the signed-in user (Easy Auth), nobody (possession-only), or a refusal. */
function authorize(request: HttpRequest, deps: IncidentLinkDeps): Authorized {
    if (deps.trustEasyAuth) {
        const r = easyAuthActor((n) => request.headers.get(n));
        if ('error' in r) return { response: respond(401, signInPage(r.error, loginUrlFor(request))), reason: r.error };
        return { actor: r.actor };
    }
    if (deps.possessionOnlyLinks === true) return { actor: undefined };
    return { response: respond(403, errorPage('This link cannot be used', NO_LINK_AUTH)), reason: NO_LINK_AUTH };
}

/**
 * Acknowledge, undo and re-enable links (`GET|POST /api/incidents/{id}/{ack|undo|reenable}?t=<token>`). A GET only
 * shows the incident and a confirmation button (mail scanners and link previews fetch URLs); the POST from that page
 * acts, once, and only when it comes from the page's own origin and, in Azure, from a signed-in Entra ID user.
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
    const refuse = (status: number, reason: string, response: HttpResponseInit): HttpResponseInit => {
        log.warn('kvr.link-refused', { incident: id, action: act, status, reason });
        return response;
    };
    if (request.method === 'GET' || request.method === 'HEAD') {
        // In Azure even the page needs a signed-in user; possession-only or not, a GET changes nothing.
        const auth = deps.trustEasyAuth ? authorize(request, deps) : { actor: undefined };
        if ('response' in auth) return refuse(auth.response.status ?? 401, auth.reason, auth.response);
        const outcome = await deps.alerting.view(id, act, request.query.get('t') ?? '');
        if (outcome.kind === 'refused') return refuse(outcome.status, outcome.message, refused(outcome));
        const blocked =
            outcome.kind === 'already'
                ? outcome.message
                : !deps.trustEasyAuth && deps.possessionOnlyLinks !== true
                  ? NO_LINK_AUTH
                  : undefined;
        const actor = auth.actor;
        return respond(
            200,
            confirmationPage(
                outcome.incident,
                act,
                request.query.get('t') ?? '',
                blocked,
                actor?.name ?? actor?.id,
                await pageContext(deps.alerting, outcome.incident, log),
            ),
        );
    }
    if (request.method !== 'POST') return { status: 405, headers: { Allow: 'GET, POST' } };
    const publicOrigin = originOf(deps.publicUrl) ?? deps.publicUrl;
    const crossOrigin = checkSameOrigin((n) => request.headers.get(n), publicOrigin);
    if (crossOrigin !== undefined)
        return refuse(403, crossOrigin, respond(403, errorPage('This link cannot be used', crossOrigin)));
    const auth = authorize(request, deps);
    if ('response' in auth) return refuse(auth.response.status ?? 403, auth.reason, auth.response);
    const form = new URLSearchParams(await request.text());
    const token = form.get('t') ?? request.query.get('t') ?? '';
    const by = auth.actor?.name ?? auth.actor?.id;
    const byId = auth.actor?.id;
    const from = clientAddress(request);
    const outcome = await deps.alerting.act(id, act, token, {
        ...(by === undefined ? {} : { by }),
        ...(byId === undefined ? {} : { byId }),
        ...(from === undefined ? {} : { from: from.slice(0, 100) }),
    });
    if (outcome.kind === 'refused') {
        log.warn('kvr.link-refused', {
            incident: id,
            action: act,
            status: outcome.status,
            reason: outcome.message,
            ...(by === undefined ? {} : { by }),
            ...(byId === undefined ? {} : { byId }),
        });
        return outcome.incident === undefined
            ? refused(outcome)
            : respond(
                  outcome.status,
                  resultPage(
                      outcome.incident,
                      act,
                      outcome.message,
                      await pageContext(deps.alerting, outcome.incident, log),
                  ),
              );
    }
    return respond(
        outcome.kind === 'done' ? 200 : 409,
        resultPage(outcome.incident, act, outcome.message, await pageContext(deps.alerting, outcome.incident, log)),
    );
}
