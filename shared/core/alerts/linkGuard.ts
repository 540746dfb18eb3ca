/**
 * Who may act through a link, and from where. Pure: the handler passes the request headers in.
 *
 * Signed-in user: App Service Authentication ("Easy Auth") in front of the app signs people in with Microsoft Entra
 * ID and passes the user to the app in request headers that clients cannot set themselves (the platform strips them
 * from incoming requests): `X-MS-CLIENT-PRINCIPAL` (Base64 of a JSON object `{auth_typ, claims: [{typ, val}],
 * name_typ, role_typ}`), `X-MS-CLIENT-PRINCIPAL-NAME`, `-ID` and `-IDP`. Source: Microsoft Learn, "Work with user
 * identities in Azure App Service authentication" (learn.microsoft.com/azure/app-service/configure-authentication-user-identities).
 * They are trusted only when the deployment says Easy Auth is in front (`KVR_TRUST_EASY_AUTH=true`): without it
 * anyone can send them.
 *
 * Same origin: the confirming POST must come from the confirmation page itself (see {@link checkSameOrigin}).
 */

/** The signed-in user as App Service Authentication passes it. */
export interface LinkActor {
    /** A readable name (UPN or email). */
    readonly name?: string;
    /** The Entra ID object id. */
    readonly id?: string;
    /** The identity provider (`aad` for Microsoft Entra ID). */
    readonly idp?: string;
}

/** Header lookup, case-insensitive (as `Headers.get`). */
export type HeaderGet = (name: string) => string | null | undefined;

const OID_CLAIMS = ['http://schemas.microsoft.com/identity/claims/objectidentifier', 'oid'];
const NAME_CLAIMS = [
    'preferred_username',
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
    'upn',
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress',
    'email',
    'name',
];
const MAX_PRINCIPAL_CHARS = 16_384;

const clean = (v: string | null | undefined, max: number): string | undefined => {
    // eslint-disable-next-line no-control-regex
    const s = v?.replace(/[\u0000-\u001f\u007f]/g, '').trim();
    return s === undefined || s === '' ? undefined : s.slice(0, max);
};

interface PrincipalJson {
    readonly auth_typ?: unknown;
    readonly name_typ?: unknown;
    readonly claims?: unknown;
}

/** Decodes `X-MS-CLIENT-PRINCIPAL`; undefined when absent or unreadable. */
function decodePrincipal(value: string | null | undefined): LinkActor | undefined {
    if (value === null || value === undefined || value === '' || value.length > MAX_PRINCIPAL_CHARS) return undefined;
    let p: PrincipalJson;
    try {
        p = JSON.parse(Buffer.from(value, 'base64').toString('utf8')) as PrincipalJson;
    } catch {
        return undefined;
    }
    if (typeof p !== 'object' || p === null || !Array.isArray(p.claims)) return undefined;
    const claims = new Map<string, string>();
    for (const c of p.claims as unknown[]) {
        const { typ, val } = (c ?? {}) as { typ?: unknown; val?: unknown };
        if (typeof typ === 'string' && typeof val === 'string' && !claims.has(typ)) claims.set(typ, val);
    }
    const first = (types: readonly string[]): string | undefined =>
        types.map((t) => claims.get(t)).find((v) => v !== undefined && v !== '');
    const nameTyp = typeof p.name_typ === 'string' ? p.name_typ : undefined;
    const name = clean((nameTyp === undefined ? undefined : claims.get(nameTyp)) ?? first(NAME_CLAIMS), 200);
    const id = clean(first(OID_CLAIMS), 100);
    const idp = clean(typeof p.auth_typ === 'string' ? p.auth_typ : undefined, 50);
    return {
        ...(name === undefined ? {} : { name }),
        ...(id === undefined ? {} : { id }),
        ...(idp === undefined ? {} : { idp }),
    };
}

/**
 * The signed-in user from App Service Authentication headers, or why there is none. The decoded principal wins over
 * the plain name and id headers; a user needs a name or an object id; another identity provider than Microsoft Entra
 * ID (`aad`) is refused.
 */
export function easyAuthActor(get: HeaderGet): { readonly actor: LinkActor } | { readonly error: string } {
    const decoded = decodePrincipal(get('x-ms-client-principal'));
    const name = decoded?.name ?? clean(get('x-ms-client-principal-name'), 200);
    const id = decoded?.id ?? clean(get('x-ms-client-principal-id'), 100);
    const idp = (decoded?.idp ?? clean(get('x-ms-client-principal-idp'), 50))?.toLowerCase();
    if (name === undefined && id === undefined)
        return { error: 'sign-in required: open the link again and sign in with your Microsoft Entra ID account' };
    if (idp !== undefined && idp !== 'aad')
        return { error: `signed in with '${idp}': sign in with a Microsoft Entra ID account` };
    return {
        actor: {
            ...(name === undefined ? {} : { name }),
            ...(id === undefined ? {} : { id }),
            ...(idp === undefined ? {} : { idp }),
        },
    };
}

/** `scheme://host[:port]` of a URL, normalized (default ports dropped, lower-case host); undefined if unparsable. */
export function originOf(url: string): string | undefined {
    try {
        const u = new URL(url);
        return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : undefined;
    } catch {
        return undefined;
    }
}

/**
 * Whether a confirming POST came from our own page. The rule:
 * 1. `Sec-Fetch-Site`, when sent (browsers set it; pages cannot), must be `same-origin`.
 * 2. `Origin`, when sent and not `null`, must equal the app's public origin (from `KVR_PUBLIC_URL`).
 * 3. Without a usable `Origin` (absent, or `null` as privacy modes send it), the request needs positive evidence:
 *    `Sec-Fetch-Site: same-origin`, or a `Referer` whose origin is the public origin.
 * Anything else (no header at all, another origin, a cross-site fetch) is refused. Returns why, or undefined.
 */
export function checkSameOrigin(get: HeaderGet, publicOrigin: string): string | undefined {
    const site = get('sec-fetch-site')?.trim().toLowerCase();
    if (site !== undefined && site !== '' && site !== 'same-origin')
        return `the request came from another site (Sec-Fetch-Site: ${site.slice(0, 40)})`;
    const origin = get('origin')?.trim();
    if (origin !== undefined && origin !== '' && origin !== 'null') {
        return originOf(origin) === publicOrigin
            ? undefined
            : `the request came from ${origin.slice(0, 200)}, not from ${publicOrigin}`;
    }
    if (site === 'same-origin') return undefined;
    const referer = get('referer');
    if (referer !== null && referer !== undefined && originOf(referer) === publicOrigin) return undefined;
    return 'the request does not show that it came from the confirmation page (no Origin, Sec-Fetch-Site or Referer)';
}
