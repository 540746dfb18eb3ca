/**
 * Entity-group transactions sent without the SDK's transaction builder.
 *
 * `TableClient.submitTransaction` (@azure/data-tables 13.x) builds each sub-request by running a whole request through
 * a second, intercepting client (core-client serialization, tracing spans, a new TableClient per transaction): about
 * 0.09 ms of CPU per entity on this machine, most of the store's own CPU on a 1,000-record batch of a cold estate.
 * Here the `$batch` body is written directly, from the REST contract ("Performing entity group transactions",
 * https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions): a `multipart/mixed`
 * body with one changeset whose parts are `application/http` requests (insert: POST to the table; Replace: PUT, Merge:
 * PATCH, delete: DELETE on the entity's address, each with its `If-Match`), sent as one POST to `<account>/$batch`.
 * It goes through the TableClient's own `pipeline`, so that its authentication, retry and any added policy (a request
 * counter, an injected fault) apply exactly as to the SDK's requests.
 *
 * The answer is a `multipart/mixed` body too: on success one part per operation, in order, with its status and ETag;
 * when the changeset fails, the service applies nothing and answers with the one part of the first failing operation,
 * whose error message starts with its index (`"1:The specified entity already exists."`). That failure is thrown as
 * the SDK throws it (a `RestError` with the part's status, the message in `message` and in
 * `details.odataError.message.value`), so that callers treat both alike.
 *
 * Bodies are ASCII: every non-ASCII character of the JSON is written as `\uXXXX`, which is the same JSON to any parser
 * (and keeps Azurite's UTF-8 chunk defect, test/integration/azuriteUtf8.test.ts, away from it).
 */
import { randomUUID } from 'node:crypto';
import { createDefaultHttpClient, createHttpHeaders, createPipelineRequest } from '@azure/core-rest-pipeline';
import { RestError, type TableClient } from '@azure/data-tables';

const CRLF = '\r\n';
/** The data service version the SDK's transactions use (x-ms-version 2019-02-02 with OData 3.0 JSON). */
const BATCH_HEADERS = {
    accept: 'application/json',
    'x-ms-version': '2019-02-02',
    DataServiceVersion: '3.0;',
    MaxDataServiceVersion: '3.0;NetFx',
} as const;

// eslint-disable-next-line no-control-regex -- every character outside ASCII
const NON_ASCII = /[^\u0000-\u007f]/g;

/** JSON of a string, ASCII only (`é` as `\u00e9`; lone surrogates JSON.stringify already escapes). */
export function asciiJsonString(s: string): string {
    const json = JSON.stringify(s);
    NON_ASCII.lastIndex = 0;
    if (!NON_ASCII.test(json)) return json;
    return json.replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A property value the store writes: a string, a finite number (untyped JSON: the service stores an integer that
 * fits as Int32, any other as Double, as for the SDK's untyped numbers) or a boolean. */
export type PropertyValue = string | number | boolean;

/**
 * One operation on one entity. The properties are a list, not an object: the names of a pack's properties are hashes
 * (`k` and 16 hex digits), and an object per entity with such names costs V8 a new hidden class per name.
 * - `insert`: fails with 409 when the entity exists.
 * - `replace` / `merge`: `If-Match` on `etag` (`*` when absent: any existing entity; 404 when there is none, 412 when
 *   the ETag is stale).
 * - `upsert`: insert or replace, unconditional.
 * - `delete`: `If-Match` on `etag` (`*` when absent).
 */
export interface TableOp {
    readonly kind: 'insert' | 'replace' | 'merge' | 'upsert' | 'delete';
    readonly partitionKey: string;
    readonly rowKey: string;
    readonly props?: readonly (readonly [string, PropertyValue])[];
    readonly etag?: string;
}

/** The request body of an operation: `PartitionKey`, `RowKey`, then its properties, as ASCII JSON. */
export function entityJson(op: TableOp): string {
    let out = `{"PartitionKey":${asciiJsonString(op.partitionKey)},"RowKey":${asciiJsonString(op.rowKey)}`;
    for (const [name, v] of op.props ?? []) {
        let json: string;
        if (typeof v === 'string') json = asciiJsonString(v);
        else if (typeof v === 'number' && Number.isFinite(v)) json = String(v);
        else if (typeof v === 'boolean') json = v ? 'true' : 'false';
        else throw new TypeError(`entity property ${name}: only strings, finite numbers and booleans are written`);
        out += `,${asciiJsonString(name)}:${json}`;
    }
    return `${out}}`;
}

/** An OData key literal in a URL path: quotes doubled, then percent-encoded. */
function keyLiteral(v: string): string {
    return encodeURIComponent(v.replace(/'/g, "''"));
}

/** The address of an entity. */
function entityUrl(tableUrl: string, op: TableOp): string {
    return `${tableUrl}(PartitionKey='${keyLiteral(op.partitionKey)}',RowKey='${keyLiteral(op.rowKey)}')`;
}

/**
 * The request line and headers of an operation, and its body (empty for a delete), as the SDK sends them: insert is
 * POST to the table (no content back), Replace is PUT, Merge is PATCH, on the entity's address.
 */
function requestOf(tableUrl: string, op: TableOp): { method: string; url: string; headers: string[]; body: string } {
    if (op.kind === 'insert')
        return {
            method: 'POST',
            url: tableUrl,
            headers: [
                'Content-Type: application/json;odata=nometadata',
                'Accept: application/json;odata=minimalmetadata',
                'DataServiceVersion: 3.0',
                'Prefer: return-no-content',
            ],
            body: entityJson(op),
        };
    const url = entityUrl(tableUrl, op);
    if (op.kind === 'delete')
        return {
            method: 'DELETE',
            url,
            headers: [
                'Accept: application/json;odata=minimalmetadata',
                'DataServiceVersion: 3.0',
                `If-Match: ${op.etag ?? '*'}`,
            ],
            body: '',
        };
    const headers = ['Content-Type: application/json', 'Accept: application/json', 'DataServiceVersion: 3.0'];
    if (op.kind !== 'upsert') headers.push(`If-Match: ${op.etag ?? '*'}`);
    return { method: op.kind === 'merge' ? 'PATCH' : 'PUT', url, headers, body: entityJson(op) };
}

/** What one transaction answered: the ETag of each operation, in order (undefined for a delete). */
export interface TransactionResult {
    readonly status: number;
    readonly etags: readonly (string | undefined)[];
}

/**
 * A RestError shaped as @azure/data-tables throws it (see shared/simulation/faultyStateStore.ts): the service's
 * message as `message` for a transaction's failed operation (as its transactions do), the raw body for a request of
 * its own (`raw`, as its entity operations do); `details` with the error code and the parsed OData error either way.
 */
function restError(status: number, body: string, raw = false): RestError {
    let odataError: { code?: unknown; message?: { value?: unknown } } | undefined;
    try {
        const parsed = JSON.parse(body) as { 'odata.error'?: typeof odataError };
        odataError = parsed['odata.error'];
    } catch {
        odataError = undefined;
    }
    const value = odataError?.message?.value;
    const message =
        typeof value === 'string' && !raw ? value : body.length > 0 ? body : `Table request failed (${status})`;
    const e = new RestError(message, { statusCode: status });
    const code = typeof odataError?.code === 'string' ? odataError.code : undefined;
    e.details = { errorCode: code, odataError };
    return e;
}

/** The `$batch` URL of a client's account: its URL (a SAS query moved after `$batch`), and the base of sub-requests. */
function addressesOf(table: TableClient): { batchUrl: string; tableUrl: string; query: string | undefined } {
    const [path = '', query] = table.url.split('?', 2);
    const base = path.endsWith('/') ? path.slice(0, -1) : path;
    return {
        batchUrl: `${base}/$batch${query === undefined ? '' : `?${query}`}`,
        tableUrl: `${base}/${table.tableName}`,
        query,
    };
}

/** The body of a `$batch` request with one changeset holding the operations, in order. */
export function transactionBody(tableUrl: string, ops: readonly TableOp[], batch: string, changeset: string): string {
    const parts: string[] = [`--${batch}${CRLF}Content-Type: multipart/mixed; boundary=${changeset}${CRLF}`];
    for (const op of ops) {
        const r = requestOf(tableUrl, op);
        parts.push(
            `--${changeset}${CRLF}Content-Type: application/http${CRLF}Content-Transfer-Encoding: binary${CRLF}${CRLF}${r.method} ${r.url} HTTP/1.1${CRLF}${r.headers.join(CRLF)}${CRLF}${CRLF}${r.body}`,
        );
    }
    parts.push(`--${changeset}--${CRLF}--${batch}--${CRLF}`);
    return parts.join(CRLF);
}

/** One part of a `$batch` answer: its status, its ETag header, and its body (an error's JSON). */
interface Part {
    readonly status: number;
    readonly etag: string | undefined;
    readonly body: string;
}

/** The parts of a `$batch` answer's changeset, in order. */
export function parseTransactionResponse(text: string): Part[] {
    const out: Part[] = [];
    const re = /HTTP\/1\.1 (\d{3})[^\n]*\n/g;
    let m: RegExpExecArray | null;
    const starts: { status: number; at: number }[] = [];
    while ((m = re.exec(text)) !== null) starts.push({ status: Number(m[1]), at: re.lastIndex });
    for (let i = 0; i < starts.length; i++) {
        const { status, at } = starts[i] as { status: number; at: number };
        let end = text.indexOf('\n--', at);
        if (end < 0) end = text.length;
        const part = text.slice(at, end);
        // Headers, an empty line, the body.
        const blank = part.search(/\r?\n\r?\n/);
        const headers = blank < 0 ? part : part.slice(0, blank);
        const body = blank < 0 ? '' : part.slice(blank).trim();
        const etag = /^ETag:[ \t]*(.*?)\r?$/im.exec(headers)?.[1];
        out.push({ status, etag, body });
    }
    return out;
}

const httpClient = createDefaultHttpClient();

/**
 * Sends the operations (one PartitionKey, at most 100) as one entity-group transaction through the client's pipeline.
 * Resolves with each operation's ETag; rejects with a `RestError` carrying the status of the failed operation (its
 * message starting with `<index>:`), or of the request itself (authentication, a malformed batch, an outage after the
 * pipeline's retries), or with the pipeline's own error (a reset, the abort signal).
 */
export async function submitTransaction(
    table: TableClient,
    ops: readonly TableOp[],
    abortSignal: AbortSignal,
): Promise<TransactionResult> {
    const { batchUrl, tableUrl } = addressesOf(table);
    const batch = `batch_${randomUUID()}`;
    const changeset = `changeset_${randomUUID()}`;
    const request = createPipelineRequest({
        url: batchUrl,
        method: 'POST',
        body: transactionBody(tableUrl, ops, batch, changeset),
        headers: createHttpHeaders({ ...BATCH_HEADERS, 'Content-Type': `multipart/mixed; boundary=${batch}` }),
        abortSignal,
        // Plain HTTP only where the client itself was given an http:// endpoint (Azurite's development endpoints).
        allowInsecureConnection: batchUrl.startsWith('http://'),
    });
    const response = await table.pipeline.sendRequest(httpClient, request);
    const text = response.bodyAsText ?? '';
    if (response.status !== 202) throw restError(response.status, text);
    const parts = parseTransactionResponse(text);
    const failed = parts.find((p) => p.status >= 300);
    if (failed !== undefined) throw restError(failed.status, failed.body);
    // Applied (202, no failed part); an answer that does not list every operation gives no ETag at all.
    if (parts.length !== ops.length) return { status: response.status, etags: ops.map(() => undefined) };
    return { status: response.status, etags: parts.map((p) => p.etag) };
}

/**
 * Sends one operation as a request of its own (no `$batch`), through the client's pipeline. Resolves with the
 * entity's new ETag (undefined for a delete); rejects with a `RestError` carrying the status (409, 412, 404 ...) and
 * the service's message, or with the pipeline's own error.
 */
export async function sendOperation(
    table: TableClient,
    op: TableOp,
    abortSignal: AbortSignal,
): Promise<string | undefined> {
    const { tableUrl, query } = addressesOf(table);
    const r = requestOf(tableUrl, op);
    const headers: Record<string, string> = { 'x-ms-version': '2019-02-02' };
    for (const h of r.headers) {
        const colon = h.indexOf(':');
        headers[h.slice(0, colon)] = h.slice(colon + 1).trim();
    }
    const request = createPipelineRequest({
        url: `${r.url}${query === undefined ? '' : `?${query}`}`,
        method: r.method as 'POST' | 'PUT' | 'PATCH' | 'DELETE',
        ...(r.body === '' ? {} : { body: r.body }),
        headers: createHttpHeaders(headers),
        abortSignal,
        allowInsecureConnection: r.url.startsWith('http://'),
    });
    const response = await table.pipeline.sendRequest(httpClient, request);
    if (response.status >= 300) throw restError(response.status, response.bodyAsText ?? '', true);
    return op.kind === 'delete' ? undefined : (response.headers.get('etag') ?? undefined);
}
