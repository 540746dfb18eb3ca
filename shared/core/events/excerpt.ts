/**
 * Builds the short excerpt kept with a rejected item in logs and the decision log: truncated, and with anything
 * that looks like a credential masked. The full item goes to the quarantine sink, never to logs.
 */

export const EXCERPT_CHARS = 240;

const SECRET_PATTERNS: readonly [RegExp, string][] = [
    // JSON properties whose values are credentials.
    [
        /("(?:[\w-]*(?:password|passwd|secret|token|credential|apikey|api_key|accesskey|access_key|sharedaccesskey|connectionstring|authorization|signature|sig|privatekey|private_key|client_secret))"\s*:\s*)"(?:[^"\\]|\\.)*"/gi,
        '$1"[redacted]"',
    ],
    // key=value pairs in connection strings, SAS tokens and query strings.
    [
        /\b(SharedAccessKey|SharedAccessSignature|AccountKey|sig|client_secret|password|access_token|code|token|se|skoid)=([^;&\s"']+)/gi,
        '$1=[redacted]',
    ],
    // Bearer tokens and bare JWTs.
    [/\bBearer\s+[A-Za-z0-9._~+/=-]+/g, 'Bearer [redacted]'],
    [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?/g, '[redacted-jwt]'],
    // PEM blocks.
    [/-----BEGIN [A-Z ]+-----[\s\S]*?(-----END [A-Z ]+-----|$)/g, '[redacted-pem]'],
];

export function redactSecrets(text: string): string {
    let out = text;
    for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
    return out;
}

/** A one-line, secret-free excerpt of at most `max` characters (plus an ellipsis with the original length). */
export function excerptOf(item: unknown, max = EXCERPT_CHARS): string {
    let text: string;
    if (typeof item === 'string') text = item;
    else if (item instanceof Uint8Array)
        text = Buffer.from(item.buffer, item.byteOffset, Math.min(item.byteLength, 64 * 1024)).toString('utf8');
    else {
        try {
            text = JSON.stringify(item) ?? String(item);
        } catch {
            text = String(item);
        }
    }
    // Redact on a bounded prefix: a pattern cut at the boundary still masks what it covers.
    const head = text.length > max * 8 ? text.slice(0, max * 8) : text;
    const clean = redactSecrets(head).replace(/\s+/g, ' ').trim();
    return clean.length > max || text.length > head.length ? `${clean.slice(0, max)}… (${text.length} chars)` : clean;
}
