import { unwrapBody } from '../../shared/core/events/envelope';
import { EXCERPT_CHARS, excerptOf, redactSecrets } from '../../shared/core/events/excerpt';

const strict = { acceptBareRecords: false };
const lenient = { acceptBareRecords: true };

describe('unwrapBody', () => {
    const body = { records: [{ time: 't' }, { time: 'u' }] };

    it.each([
        ['a parsed object', body],
        ['a JSON string', JSON.stringify(body)],
        ['a Buffer', Buffer.from(JSON.stringify(body))],
        ['a Uint8Array', new TextEncoder().encode(JSON.stringify(body))],
    ])('accepts %s', (_name, item) => {
        expect(unwrapBody(item, strict)).toEqual({ kind: 'records', records: body.records });
    });

    it('rejects text that is not JSON, with the parser message', () => {
        const r = unwrapBody('{"records": [', strict);
        expect(r.kind).toBe('rejected');
        expect(r.kind === 'rejected' && r.reason).toMatch(/^body is not JSON: /);
    });

    it.each([
        [42, 'body is not a JSON object (number)'],
        ['null', 'body is not a JSON object (null)'],
        [{ records: { time: 't' } }, 'body.records is not an array'],
        [{ time: 't' }, 'body has no records array'],
        [[{ time: 't' }], 'body is a JSON array, not an object with a records array'],
    ])('rejects %j', (item, reason) => {
        expect(unwrapBody(item, strict)).toMatchObject({ kind: 'rejected', reason });
    });

    it('accepts bare records and arrays of records when replaying archives', () => {
        expect(unwrapBody({ time: 't' }, lenient)).toEqual({ kind: 'records', records: [{ time: 't' }] });
        expect(unwrapBody([{ time: 't' }], lenient)).toEqual({ kind: 'records', records: [{ time: 't' }] });
        expect(unwrapBody({ records: 'x' }, lenient).kind).toBe('rejected');
    });
});

describe('excerpts of rejected input', () => {
    it('truncates long input and says how long it was', () => {
        const e = excerptOf('x'.repeat(10_000));
        expect(e.startsWith('x'.repeat(EXCERPT_CHARS))).toBe(true);
        expect(e.endsWith('… (10000 chars)')).toBe(true);
    });

    it('folds whitespace onto one line', () => {
        expect(excerptOf('{\n  "a": 1\n}')).toBe('{ "a": 1 }');
    });

    it.each([
        ['{"password":"hunter2"}', 'hunter2'],
        ['{"client_secret": "abc.def"}', 'abc.def'],
        ['Endpoint=sb://x/;SharedAccessKeyName=r;SharedAccessKey=S3cr3tKey=', 'S3cr3tKey'],
        ['https://a.blob.core.windows.net/c?sv=1&sig=AbCdEf%2B&se=2026', 'AbCdEf'],
        ['Authorization: Bearer eyJhbGciOi.eyJzdWIiOiIx.sig', 'eyJhbGciOi'],
        ['token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc', 'eyJhbGciOiJIUzI1NiJ9'],
        ['-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----', 'MIIEv'],
    ])('masks credentials in %s', (text, secret) => {
        expect(redactSecrets(text)).not.toContain(secret);
        expect(excerptOf(text)).not.toContain(secret);
    });

    it('leaves ordinary audit fields alone', () => {
        const text = '{"operationName":"SecretGet","keyProperties":{"type":"RSA"},"upn":"a@b.example"}';
        expect(redactSecrets(text)).toBe(text);
    });
});
