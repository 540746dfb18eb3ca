/**
 * Acknowledge and undo links carry a compact RS256 token (JWS compact serialization): a header naming the signing
 * key, claims binding it to one incident and one action with an expiry, and the signature. Parsing and claim checks
 * are pure; signing and signature verification are adapters (Key Vault in production, a development key locally).
 */

export type LinkAction = 'ack' | 'undo' | 'reenable';
export const LINK_ACTIONS: readonly LinkAction[] = ['ack', 'undo', 'reenable'];

export interface LinkClaims {
    /** Incident id. */
    readonly inc: string;
    readonly act: LinkAction;
    /** Issued at / expires, epoch seconds. */
    readonly iat: number;
    readonly exp: number;
    /** Unique token id: a token acts once. */
    readonly jti: string;
}

export interface ParsedToken {
    readonly kid: string;
    readonly claims: LinkClaims;
    /** What the signature covers: `<header>.<claims>` as sent. */
    readonly signingInput: string;
    readonly signature: Uint8Array;
}

const MAX_TOKEN_CHARS = 2048;

function b64url(text: string): string {
    return Buffer.from(text, 'utf8').toString('base64url');
}

function fromB64url(part: string): Buffer | undefined {
    if (!/^[A-Za-z0-9_-]*$/.test(part)) return undefined;
    return Buffer.from(part, 'base64url');
}

/** The signing input for new claims. */
export function signingInputOf(kid: string, claims: LinkClaims): string {
    return `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }))}.${b64url(JSON.stringify(claims))}`;
}

export function tokenOf(signingInput: string, signature: Uint8Array): string {
    return `${signingInput}.${Buffer.from(signature).toString('base64url')}`;
}

function isClaims(v: unknown): v is LinkClaims {
    if (typeof v !== 'object' || v === null) return false;
    const c = v as Record<string, unknown>;
    return (
        typeof c.inc === 'string' &&
        typeof c.act === 'string' &&
        (LINK_ACTIONS as readonly string[]).includes(c.act) &&
        typeof c.iat === 'number' &&
        typeof c.exp === 'number' &&
        typeof c.jti === 'string'
    );
}

/** Parses a token's structure (not its signature). Returns a reason on failure, never throws. */
export function parseToken(token: string): ParsedToken | { readonly error: string } {
    if (token.length === 0) return { error: 'the link has no token' };
    if (token.length > MAX_TOKEN_CHARS) return { error: 'the token is too long' };
    const parts = token.split('.');
    if (parts.length !== 3) return { error: 'the token is malformed' };
    const [h, c, s] = parts as [string, string, string];
    const header = fromB64url(h);
    const claims = fromB64url(c);
    const signature = fromB64url(s);
    if (header === undefined || claims === undefined || signature === undefined || signature.length === 0)
        return { error: 'the token is malformed' };
    let hv: unknown;
    let cv: unknown;
    try {
        hv = JSON.parse(header.toString('utf8'));
        cv = JSON.parse(claims.toString('utf8'));
    } catch {
        return { error: 'the token is malformed' };
    }
    const hd = hv as { alg?: unknown; kid?: unknown };
    if (typeof hv !== 'object' || hv === null || hd.alg !== 'RS256' || typeof hd.kid !== 'string')
        return { error: 'the token is not an RS256 token of kv-responder' };
    if (!isClaims(cv)) return { error: 'the token does not carry kv-responder claims' };
    return { kid: hd.kid, claims: cv, signingInput: `${h}.${c}`, signature };
}

/** Checks the claims of a token whose signature was verified, against the link it came with. */
export function checkClaims(
    claims: LinkClaims,
    expected: { readonly incidentId: string; readonly action: LinkAction },
    nowMs: number,
): string | undefined {
    if (claims.inc !== expected.incidentId) return 'the token belongs to another incident';
    if (claims.act !== expected.action) return `the token is for "${claims.act}", not "${expected.action}"`;
    if (nowMs >= claims.exp * 1000) return `the link expired at ${new Date(claims.exp * 1000).toISOString()}`;
    if (claims.iat * 1000 > nowMs + 5 * 60_000) return 'the token was issued in the future';
    return undefined;
}
