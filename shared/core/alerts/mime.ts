/**
 * An RFC 5322 / MIME email with a plain-text and an HTML alternative, as the base64 text Microsoft Graph
 * `POST /users/{from}/sendMail` takes with `Content-Type: text/plain`. Pure and deterministic: the same input always
 * gives the same bytes (the multipart boundary is derived from the content, and there is no Date header unless one is
 * passed in).
 *
 * Header safety: subject and body text may carry attacker-controlled strings (caller IPs, user agents, resource
 * names from audit logs). The subject is stripped of control characters (CR and LF included) and, when it is not
 * plain printable ASCII, sent as RFC 2047 encoded-words; addresses and the Message-ID must match a conservative
 * syntax or `buildMime` throws. Both bodies are base64-encoded, so no body line can end the headers or a part.
 */
import { hash64 } from '../hash';

export interface MimeInput {
    /** The sender's address (the mailbox Graph sends as). */
    readonly from: string;
    readonly to: readonly string[];
    readonly subject: string;
    readonly text: string;
    readonly html: string;
    /** `<id@domain>`; the service assigns one when it is absent. */
    readonly messageId?: string;
    /** Written as the Date header (UTC); the service stamps the message when it is absent. */
    readonly date?: Date;
}

const CRLF = '\r\n';
/** RFC 5322 recommends lines of at most 78 characters, CRLF excluded; base64 body lines use 76. */
const MAX_LINE = 78;
const BASE64_LINE = 76;
const ENCODED_WORD_PREFIX = '=?UTF-8?B?';
const ENCODED_WORD_SUFFIX = '?=';

// A deliberately narrow addr-spec: dot-atom local part and a DNS host name. No display names, comments, quoted
// strings, whitespace or angle brackets, so nothing in an address can break out of its header.
const ADDRESS =
    /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
const MESSAGE_ID = /^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>$/;
// Control characters (C0 incl. CR, LF and TAB; DEL; C1) and the Unicode line and paragraph separators.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Whether `address` is a plain addr-spec this module accepts (config validation uses the same rule). */
export function isMailAddress(address: string): boolean {
    return ADDRESS.test(address);
}

function checkAddress(address: string, field: string): string {
    if (!ADDRESS.test(address))
        throw new Error(`buildMime: ${field} is not a plain email address: ${JSON.stringify(address)}`);
    return address;
}

/** The subject as one line of text: control characters become one space, surrounding blanks are trimmed. */
export function sanitizeHeaderText(value: string): string {
    return value.replace(CONTROL, ' ').trim();
}

/**
 * `Subject: ...` folded to lines of at most 78 characters. Printable ASCII that fits on one line is sent as is;
 * anything else (non-ASCII, a long subject, or text that could be mistaken for an encoded-word) as UTF-8 base64
 * encoded-words, split between code points, one per line.
 */
export function encodeSubjectHeader(subject: string): string {
    const clean = sanitizeHeaderText(subject);
    const plain = `Subject: ${clean}`;
    if (PRINTABLE_ASCII.test(clean) && !clean.includes('=?') && plain.length <= MAX_LINE) return plain;
    // The first line carries "Subject: " (9) and one encoded-word: prefix (10) + base64 + suffix (2), at most 78 in
    // all, so at most 57 base64 characters: 42 bytes (a multiple of 3, so no padding inside a word). Every word is
    // then at most 68 characters, within RFC 2047's 75.
    const maxBytes =
        Math.floor((MAX_LINE - 'Subject: '.length - ENCODED_WORD_PREFIX.length - ENCODED_WORD_SUFFIX.length) / 4) * 3;
    const words: string[] = [];
    let chunk = '';
    let chunkBytes = 0;
    for (const codePoint of clean) {
        const bytes = Buffer.byteLength(codePoint, 'utf8');
        if (chunkBytes + bytes > maxBytes) {
            words.push(chunk);
            chunk = '';
            chunkBytes = 0;
        }
        chunk += codePoint;
        chunkBytes += bytes;
    }
    if (chunk !== '') words.push(chunk);
    const encoded = words.map(
        (w) => `${ENCODED_WORD_PREFIX}${Buffer.from(w, 'utf8').toString('base64')}${ENCODED_WORD_SUFFIX}`,
    );
    return `Subject: ${encoded.join(`${CRLF} `)}`;
}

/** `To: a@x, b@y` folded after commas so that no line exceeds 78 characters (an address longer than that stays whole). */
function addressListHeader(name: string, addresses: readonly string[]): string {
    const lines: string[] = [];
    let line = `${name}:`;
    addresses.forEach((address, i) => {
        const item = ` ${address}${i < addresses.length - 1 ? ',' : ''}`;
        if (line.length + item.length > MAX_LINE && line !== `${name}:`) {
            lines.push(line);
            line = '';
        }
        line += item;
    });
    lines.push(line);
    return lines.join(CRLF);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** RFC 5322 date-time in UTC, e.g. `Thu, 01 Jan 2026 12:00:00 +0000`. */
function rfc5322Date(date: Date): string {
    if (Number.isNaN(date.getTime())) throw new Error('buildMime: date is not a valid Date');
    const two = (n: number) => String(n).padStart(2, '0');
    return (
        `${DAYS[date.getUTCDay()]}, ${two(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
        `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`
    );
}

/** Text with every line break (CRLF, CR or LF) as CRLF: the canonical form of text/* bodies. */
function canonicalLineBreaks(text: string): string {
    return text.replace(/\r\n|\r|\n/g, CRLF);
}

function base64Lines(text: string): string {
    const b64 = Buffer.from(text, 'utf8').toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < b64.length; i += BASE64_LINE) lines.push(b64.slice(i, i + BASE64_LINE));
    return lines.join(CRLF);
}

/**
 * The multipart boundary: a hash of the content, no randomness. It cannot collide with the content: every body line is
 * base64, whose alphabet has neither "-" nor "_", so no body line can be "--" + boundary; the part headers and the
 * preamble are fixed text.
 */
function boundaryFor(input: MimeInput, subject: string): string {
    const identity = [input.from, input.to.join(','), subject, input.text, input.html, input.messageId ?? ''].join(
        '\u0000',
    );
    return `=_kvr_${hash64(identity)}`;
}

/** The complete MIME message as text (ASCII only, CRLF line endings). */
export function renderMime(input: MimeInput): string {
    const from = checkAddress(input.from, 'from');
    if (input.to.length === 0) throw new Error('buildMime: at least one recipient is required');
    const to = input.to.map((address, i) => checkAddress(address, `to[${i}]`));
    if (input.messageId !== undefined && !MESSAGE_ID.test(input.messageId)) {
        throw new Error(`buildMime: messageId is not <local@domain>: ${JSON.stringify(input.messageId)}`);
    }
    const subjectHeader = encodeSubjectHeader(input.subject);
    const boundary = boundaryFor(input, subjectHeader);
    const headers = [
        `From: ${from}`,
        addressListHeader('To', to),
        subjectHeader,
        ...(input.date === undefined ? [] : [`Date: ${rfc5322Date(input.date)}`]),
        ...(input.messageId === undefined ? [] : [`Message-ID: ${input.messageId}`]),
        'MIME-Version: 1.0',
        `Content-Type: multipart/alternative; boundary="${boundary}"`,
    ];
    const part = (contentType: string, body: string) =>
        [
            `--${boundary}`,
            `Content-Type: ${contentType}; charset=UTF-8`,
            'Content-Transfer-Encoding: base64',
            '',
            base64Lines(canonicalLineBreaks(body)),
        ].join(CRLF);
    return [
        ...headers,
        '',
        // Preamble: shown by clients that do not understand MIME, ignored by the rest.
        'This is a multi-part message in MIME format.',
        part('text/plain', input.text),
        part('text/html', input.html),
        `--${boundary}--`,
        '',
    ].join(CRLF);
}

/** The complete MIME message, base64-encoded (no line breaks): the request body for Graph `sendMail`. */
export function buildMime(input: MimeInput): string {
    return Buffer.from(renderMime(input), 'ascii').toString('base64');
}
