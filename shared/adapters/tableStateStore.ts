import type { TokenCredential } from '@azure/identity';
import { TableClient } from '@azure/data-tables';
import { ResponderError } from '../core/errors';
import { type PutResult, type StateKey, type StateStore, type StoredState, stateKey } from '../core/state/store';

/** Characters Table Storage forbids in PartitionKey and RowKey (plus `%`, the escape itself). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what Table Storage forbids
const FORBIDDEN = /[%/\\#?\u0000-\u001f\u007f-\u009f]/g;

/** Escapes a key part for Table Storage (`/` becomes `%2F` ...); ids and vault names pass unchanged. */
export function encodeKeyPart(s: string): string {
    return s.replace(FORBIDDEN, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
}

/** Reverses {@link encodeKeyPart}. */
export function decodeKeyPart(s: string): string {
    return s.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * Characters of state JSON per string property. A string property holds up to 64 KiB of UTF-16 (32,768 characters)
 * and an entity up to 255 properties and 1 MiB (Table service data model:
 * https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model); larger state
 * continues in `v1`, `v2` ... (see {@link splitValue}).
 */
export const PROPERTY_CHARS = 32_000;
/**
 * Bytes an entity may take, below the 1 MiB limit with room for the keys and the system properties. Checked both as
 * the service counts (2 bytes a UTF-16 character, plus the property names) and as Azurite does (the UTF-8 bytes of the
 * JSON request body), so that what the tests accept, Azure accepts.
 */
const ENTITY_BUDGET_BYTES = 1_000_000;
/** Point reads in flight at once per batch. */
const READ_CONCURRENCY = 16;

function statusOf(err: unknown): number | undefined {
    const s = (err as { statusCode?: unknown }).statusCode;
    return typeof s === 'number' ? s : undefined;
}

function unavailable(what: string, err: unknown): ResponderError {
    return new ResponderError('STATE.UNAVAILABLE', `state store ${what} failed: ${(err as Error).message}`, true, {
        cause: err,
    });
}

interface StateEntity {
    readonly partitionKey: string;
    readonly rowKey: string;
    /** The state as JSON (its first {@link PROPERTY_CHARS} characters when longer: the rest is in v1, v2 ...). */
    readonly v: string;
    /** Event time (epoch ms) after which the entity may be swept. */
    readonly exp: number;
    readonly [more: `v${number}`]: string | undefined;
}

/**
 * Cuts state JSON into property values of at most {@link PROPERTY_CHARS} characters, never between the two halves of
 * a surrogate pair (a lone surrogate would not survive the request body).
 */
export function splitValue(v: string): string[] {
    if (v.length <= PROPERTY_CHARS) return [v];
    const out: string[] = [];
    for (let i = 0; i < v.length;) {
        let end = Math.min(v.length, i + PROPERTY_CHARS);
        const c = v.charCodeAt(end - 1);
        if (end < v.length && c >= 0xd800 && c <= 0xdbff) end--;
        out.push(v.slice(i, end));
        i = end;
    }
    return out;
}

/** The state JSON of an entity: `v`, then `v1`, `v2` ... while present. */
function joinValue(e: StateEntity): string {
    if (e.v1 === undefined) return e.v;
    const parts = [e.v];
    for (let i = 1; ; i++) {
        const p = e[`v${i}`];
        if (typeof p !== 'string') break;
        parts.push(p);
    }
    return parts.join('');
}

/** Why the parts cannot be one entity, or undefined when they fit (checked only for state that needed splitting). */
function oversize(parts: readonly string[], key: StateKey): string | undefined {
    if (parts.length === 1) return undefined;
    let serviceBytes = 4 + 2 * (key.partition.length + key.row.length) + 3 * 30;
    let bodyBytes = 0;
    for (let i = 0; i < parts.length; i++) {
        const p = parts[i] as string;
        serviceBytes += 8 + 2 * String(i).length + 2 + 4 + 2 * p.length;
        bodyBytes += Buffer.byteLength(JSON.stringify(p)) + 8;
    }
    if (parts.length < 250 && serviceBytes <= ENTITY_BUDGET_BYTES && bodyBytes <= ENTITY_BUDGET_BYTES) return undefined;
    return `${Math.max(serviceBytes, bodyBytes)} bytes, over the ${ENTITY_BUDGET_BYTES} one entity may hold`;
}

/**
 * Rule state in Azure Table Storage: one entity per key, written with ETag compare-and-set (`If-Match`, or insert for a
 * new key), so that function instances working on different partitions never lose each other's updates.
 */
export class TableStateStore implements StateStore {
    private ready: Promise<void> | undefined;

    constructor(private readonly table: TableClient) {}

    /** Creates the table when it does not exist (once per instance). */
    private ensureTable(): Promise<void> {
        this.ready ??= this.table.createTable().catch((err: unknown) => {
            this.ready = undefined;
            throw unavailable(`creating table ${this.table.tableName}`, err);
        });
        return this.ready;
    }

    async getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        await this.ensureTable();
        const out = new Array<StoredState | undefined>(keys.length);
        let next = 0;
        const worker = async (): Promise<void> => {
            while (next < keys.length) {
                const i = next++;
                const key = keys[i] as StateKey;
                try {
                    const e = await this.table.getEntity<StateEntity>(
                        encodeKeyPart(key.partition),
                        encodeKeyPart(key.row),
                    );
                    out[i] = { value: JSON.parse(joinValue(e)) as unknown, etag: e.etag };
                } catch (err) {
                    if (statusOf(err) === 404) out[i] = undefined;
                    else throw unavailable(`reading ${key.partition}/${key.row}`, err);
                }
            }
        };
        await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, keys.length) }, worker));
        return out;
    }

    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        await this.ensureTable();
        const v = JSON.stringify(value);
        const parts = splitValue(v);
        const partitionKey = encodeKeyPart(key.partition);
        const rowKey = encodeKeyPart(key.row);
        const problem = oversize(parts, { ...key, partition: partitionKey, row: rowKey });
        if (problem !== undefined) {
            // Not retryable: the same input makes the same state. The caller turns it into a decision for this key.
            throw new ResponderError(
                'STATE.TOO_LARGE',
                `state ${key.partition}/${key.row} is ${v.length} characters of JSON (${problem}): not written`,
            );
        }
        const more: Record<string, string> = {};
        for (let i = 1; i < parts.length; i++) more[`v${i}`] = parts[i] as string;
        const entity = { partitionKey, rowKey, v: parts[0] as string, exp: expiresMs, ...more };
        try {
            const r =
                etag === undefined
                    ? await this.table.createEntity(entity)
                    : // Replace, not Merge: a state that shrank drops the v1, v2 ... it no longer needs.
                      await this.table.updateEntity(entity, 'Replace', { etag });
            if (r.etag === undefined) throw new Error('no ETag in the response');
            return { ok: true, etag: r.etag };
        } catch (err) {
            const status = statusOf(err);
            // 409: someone created the key first; 412: someone changed it since we read it; 404: it was swept.
            if (status === 409 || status === 412 || (status === 404 && etag !== undefined)) return { ok: false };
            throw unavailable(`writing ${key.partition}/${key.row}`, err);
        }
    }

    async scan(rowPrefix: string, limit: number): Promise<{ key: StateKey; value: unknown }[]> {
        await this.ensureTable();
        const from = encodeKeyPart(rowPrefix);
        // Every row key with the prefix sorts between the prefix and the prefix with its last character incremented.
        const to = `${from.slice(0, -1)}${String.fromCharCode(from.charCodeAt(from.length - 1) + 1)}`;
        const q = (v: string): string => `'${v.replace(/'/g, "''")}'`;
        const out: { key: StateKey; value: unknown }[] = [];
        try {
            for await (const e of this.table.listEntities<StateEntity>({
                queryOptions: { filter: `RowKey ge ${q(from)} and RowKey lt ${q(to)}` },
            })) {
                if (out.length >= limit) break;
                if (e.partitionKey === undefined || e.rowKey === undefined) continue;
                out.push({
                    key: stateKey(decodeKeyPart(e.partitionKey), decodeKeyPart(e.rowKey)),
                    value: JSON.parse(joinValue(e)) as unknown,
                });
            }
        } catch (err) {
            throw unavailable(`scanning ${rowPrefix}*`, err);
        }
        return out;
    }

    /**
     * Deletes entities whose `exp` (event-time expiry, epoch ms) is before `beforeMs`, page by page, stopping after
     * `maxDeletes` delete attempts (`more` then says the next run has work left: what is deleted drops out of the
     * filter, so the next run simply starts over). Each delete is conditional on the ETag the query returned: an entity
     * rewritten meanwhile (412) or already gone (404) is skipped.
     *
     * `exp` is written as an untyped JSON number, which Table Storage stores as `Edm.Double` when it does not fit an
     * Int32 (every epoch-ms time), and a filter comparison only matches a property of the literal's type: the literal
     * is written as a double (`1767225600000.0`, as the .NET SDK's double filter does for whole numbers), not as an
     * Int32 or Int64 (`L`) literal. Azurite does not compare types strictly, so the tests cannot prove this part; the
     * expiry is checked again here before deleting, whatever the service matched.
     */
    async sweepExpired(
        beforeMs: number,
        options: { readonly maxDeletes: number; readonly pageSize?: number },
    ): Promise<SweepResult> {
        if (!Number.isFinite(beforeMs)) throw new RangeError('beforeMs must be a finite number');
        const filter = `exp lt ${doubleLiteral(Math.floor(beforeMs))}`;
        const pages = this.table
            .listEntities<{ exp?: unknown }>({ queryOptions: { filter, select: ['PartitionKey', 'RowKey', 'exp'] } })
            .byPage({ maxPageSize: Math.min(1000, Math.max(1, options.pageSize ?? 1000)) });
        let scanned = 0;
        let deleted = 0;
        let skipped = 0;
        let attempts = 0;
        try {
            for await (const page of pages) {
                for (const e of page) {
                    if (attempts >= options.maxDeletes) return { scanned, deleted, skipped, more: true };
                    scanned++;
                    const exp = typeof e.exp === 'number' ? e.exp : Number(e.exp);
                    if (
                        !(exp < beforeMs) ||
                        e.etag === undefined ||
                        e.partitionKey === undefined ||
                        e.rowKey === undefined
                    ) {
                        skipped++;
                        continue;
                    }
                    attempts++;
                    try {
                        await this.table.deleteEntity(e.partitionKey, e.rowKey, { etag: e.etag });
                        deleted++;
                    } catch (err) {
                        const status = statusOf(err);
                        if (status === 412 || status === 404) skipped++;
                        else throw unavailable(`deleting ${e.partitionKey}/${e.rowKey}`, err);
                    }
                }
            }
        } catch (err) {
            // No table yet: nothing to sweep.
            if (statusOf(err) === 404 && scanned === 0) return { scanned, deleted, skipped, more: false };
            if (err instanceof ResponderError) throw err;
            throw unavailable('sweeping expired entities', err);
        }
        return { scanned, deleted, skipped, more: false };
    }
}

/** What one {@link TableStateStore.sweepExpired} run did. */
export interface SweepResult {
    /** Expired candidates the query returned and this run looked at. */
    readonly scanned: number;
    readonly deleted: number;
    /** Rewritten meanwhile (412), already gone (404), or not expired after all. */
    readonly skipped: number;
    /** True when the run stopped at its bound with candidates left. */
    readonly more: boolean;
}

/** An OData `Edm.Double` literal for a finite number (`5` becomes `5.0`). */
function doubleLiteral(n: number): string {
    const s = String(n);
    return /[.eE]/.test(s) ? s : `${s}.0`;
}

export const DEFAULT_STATE_TABLE = 'kvrstate';

/** Where durable state lives: a table endpoint with Entra ID auth (production) or a connection string (Azurite). */
export type TableLocation =
    | { readonly kind: 'url'; readonly url: string; readonly table: string }
    | { readonly kind: 'connection-string'; readonly connectionString: string; readonly table: string };

/** Builds the Table Storage state store for a location; a URL uses the given credential. */
export function tableStateStoreAt(location: TableLocation, credential: () => TokenCredential): TableStateStore {
    if (location.kind === 'connection-string') {
        const insecure = /DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true/i.test(location.connectionString);
        return new TableStateStore(
            TableClient.fromConnectionString(location.connectionString, location.table, {
                allowInsecureConnection: insecure,
            }),
        );
    }
    return new TableStateStore(new TableClient(location.url, location.table, credential()));
}

/** Reads a `--state` / setting value: `https://...` is an account URL, anything else a connection string. */
export function tableLocationOf(value: string, table: string): TableLocation {
    return value.startsWith('https://')
        ? { kind: 'url', url: value.replace(/\/+$/, ''), table }
        : { kind: 'connection-string', connectionString: value, table };
}
