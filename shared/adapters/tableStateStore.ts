import type { TokenCredential } from '@azure/identity';
import { TableClient, type TransactionAction } from '@azure/data-tables';
import { ResponderError } from '../core/errors';
import { hash64 } from '../core/hash';
import {
    type PutResult,
    type ReadOptions,
    type StateKey,
    type StateStore,
    type StateWrite,
    type StoredState,
    stateKey,
    type WriteResult,
} from '../core/state/store';

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
/**
 * PartitionKey shards by default. State keys are spread over this many Table partitions by a hash of their own
 * partition (the vault, or the principal of a cross-vault rule), so that one batch's writes, whatever vaults it
 * touches, fall into a few partitions and go out as entity-group transactions of up to 100 entities each. The service
 * targets 2,000 entities/s per partition and 20,000 requests/s per account ("Scalability and performance targets for
 * Table storage", https://learn.microsoft.com/azure/storage/tables/scalability-targets): 8 partitions take about 16,000
 * entity writes a second, far above what daily baselines and windows write in steady state; more shards take more,
 * at the price of more transactions per batch (option `shards`).
 */
export const DEFAULT_SHARDS = 8;
/** Entities per entity-group transaction: the service allows 100 operations on one PartitionKey per request. */
export const MAX_TRANSACTION_ENTITIES = 100;
/** Request body bytes per transaction, below the 4 MiB the service allows with room for the multipart framing. */
const MAX_TRANSACTION_BYTES = 3_500_000;
/** Default deadline of one Table call, SDK retries included (see {@link TableStateStoreOptions.callTimeoutMs}). */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;
/**
 * The retry policy {@link tableStateStoreAt} gives its Table client: 3 retries of a 5xx, a 408, a throttled 503 or a
 * network error, exponential from 200 ms to at most 2 s, so that the retries of one call fit in its
 * {@link DEFAULT_CALL_TIMEOUT_MS} deadline; what is left after them surfaces as a retryable `STATE.UNAVAILABLE`.
 * (@azure/data-tables' default, 3 retries from 1 s up to 64 s, could outlast the Functions batch that waits for it.)
 */
export const TABLE_RETRY_OPTIONS = Object.freeze({ maxRetries: 3, retryDelayInMs: 200, maxRetryDelayInMs: 2_000 });

/** Options of a {@link TableStateStore}. */
export interface TableStateStoreOptions {
    /** PartitionKey shards (default {@link DEFAULT_SHARDS}). Changing it moves every key (docs/state.md). */
    readonly shards?: number;
    /** Deadline of each Table call, SDK retries included: its abort signal fires then (default 10 s). */
    readonly callTimeoutMs?: number;
    /**
     * How old the instance-local copy of a shard may be for reads that allow it (`{ cached: true }`) before it is
     * brought up to date with one query of the entities changed since (their `Timestamp`). Default 10 s.
     */
    readonly cacheValidityMs?: number;
    /** Entities kept in the instance-local cache at most (default 500,000); beyond it, shards are dropped whole. */
    readonly maxCachedEntities?: number;
    /** Transactions (or point reads) in flight at once (default 8 transactions, 16 reads). */
    readonly writeConcurrency?: number;
    readonly readConcurrency?: number;
    /** Wall clock (ms) for the cache's validity; default Date.now. */
    readonly now?: () => number;
}

/**
 * Table `Timestamp`s are set by the service's clock and the cache's by this instance's: a refresh asks for everything
 * changed since its last query minus this margin, so that a skew below it loses no change.
 */
const CLOCK_MARGIN_MS = 15_000;

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
    /** The state key's partition and row, when the RowKey had to shorten them (see {@link tableKeysOf}). */
    readonly p?: string;
    readonly r?: string;
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
function oversize(parts: readonly string[], partitionKey: string, rowKey: string): string | undefined {
    if (parts.length === 1) return undefined;
    let serviceBytes = 4 + 2 * (partitionKey.length + rowKey.length) + 3 * 30;
    let bodyBytes = 0;
    for (let i = 0; i < parts.length; i++) {
        const p = parts[i] as string;
        serviceBytes += 8 + 2 * String(i).length + 2 + 4 + 2 * p.length;
        bodyBytes += Buffer.byteLength(JSON.stringify(p)) + 8;
    }
    if (parts.length < 250 && serviceBytes <= ENTITY_BUDGET_BYTES && bodyBytes <= ENTITY_BUDGET_BYTES) return undefined;
    return `${Math.max(serviceBytes, bodyBytes)} bytes, over the ${ENTITY_BUDGET_BYTES} one entity may hold`;
}

/** {@link encodeKeyPart}, and `|` too: the separator of the two parts of a RowKey. */
function encodeRowPart(s: string): string {
    return encodeKeyPart(s).replace(/\|/g, '%7C');
}

/** Longest RowKey written (characters): below the 1 KiB (512 UTF-16 characters) a key may hold. */
const MAX_ROW_KEY_CHARS = 480;

/**
 * Where a state key lives in the table: PartitionKey `s00` ... (a hash of the key's partition, modulo `shards`), RowKey
 * the key's row and partition, each escaped, joined by `|` (row first: a scan by row prefix is one range of RowKeys
 * in every shard). A RowKey that would pass {@link MAX_ROW_KEY_CHARS} keeps its beginning and a hash of the whole
 * (`long` is then true: the entity carries the key's parts in `p` and `r`).
 */
export function tableKeysOf(
    key: StateKey,
    shards: number = DEFAULT_SHARDS,
): { readonly partitionKey: string; readonly rowKey: string; readonly long: boolean } {
    const h = parseInt(hash64(key.partition).slice(0, 8), 16);
    const partitionKey = `s${String(h % shards).padStart(2, '0')}`;
    const rowKey = `${encodeRowPart(key.row)}|${encodeRowPart(key.partition)}`;
    if (rowKey.length <= MAX_ROW_KEY_CHARS) return { partitionKey, rowKey, long: false };
    return { partitionKey, rowKey: `${rowKey.slice(0, MAX_ROW_KEY_CHARS - 17)}~${hash64(key.id)}`, long: true };
}

/** The state key of an entity (the reverse of {@link tableKeysOf}). */
function stateKeyOf(e: { rowKey?: string; p?: unknown; r?: unknown }): StateKey | undefined {
    if (typeof e.p === 'string' && typeof e.r === 'string') return stateKey(e.p, e.r);
    const rk = e.rowKey ?? '';
    const bar = rk.indexOf('|');
    if (bar < 0) return undefined;
    return stateKey(decodeKeyPart(rk.slice(bar + 1)), decodeKeyPart(rk.slice(0, bar)));
}

interface Cached {
    readonly value: unknown;
    readonly etag: string;
}

/** The instance-local copy of one shard (PartitionKey). */
interface Shard {
    readonly entities: Map<string, Cached>;
    /** Every entity of the shard as of `syncedAt` is in `entities`: a RowKey not there did not exist. */
    complete: boolean;
    /** RowKeys whose copy is not to be trusted (a write met a conflict): read from the table next time. */
    readonly doubtful: Set<string>;
    /** Wall-clock ms when the query behind the copy started (0: never loaded). */
    syncedAt: number;
    /** The load or refresh in progress. */
    loading: Promise<void> | undefined;
}

/** One prepared write of {@link TableStateStore.putMany}. */
interface Prepared {
    readonly index: number;
    /** `partition/row` of the state key, for messages. */
    readonly name: string;
    readonly partitionKey: string;
    readonly rowKey: string;
    readonly entity: Record<string, unknown> & { partitionKey: string; rowKey: string };
    readonly etag: string | undefined;
    readonly value: unknown;
    readonly bytes: number;
}

/**
 * Rule state in Azure Table Storage, built so that a batch costs a few requests whatever the number of vaults and
 * principals it touches (docs/state.md):
 *
 * - Keys are spread over {@link DEFAULT_SHARDS} PartitionKeys (see {@link tableKeysOf}); the writes of one call to
 *   {@link putMany} go out as entity-group transactions, up to 100 entities of one PartitionKey per request, at most
 *   `writeConcurrency` in flight.
 * - Every write is compare-and-set on the entity's ETag (`If-Match`, or an insert for a new key), inside a transaction
 *   too: a transaction that fails on one entity's condition is sent again without it, and only that write reports a
 *   conflict. Two instances never lose each other's updates.
 * - Reads that allow it (`{ cached: true }`: detection state, whose every change is a compare-and-set write) are served
 *   from an instance-local copy of each shard: loaded with one query the first time, brought up to date with a query
 *   of what changed since (`Timestamp`) once it is older than `cacheValidityMs`. A stale copy costs a conflict and a
 *   point read, never a lost update. Other reads (alerting, leases, intents) always go to the table.
 * - Every call has a deadline (`callTimeoutMs`, its abort signal) and every failure surfaces as a retryable
 *   `STATE.UNAVAILABLE`.
 */
export class TableStateStore implements StateStore {
    private ready: Promise<void> | undefined;
    private readonly shards: number;
    readonly callTimeoutMs: number;
    private readonly cacheValidityMs: number;
    private readonly maxCachedEntities: number;
    private readonly writeConcurrency: number;
    private readonly readConcurrency: number;
    private readonly now: () => number;
    private readonly cache = new Map<string, Shard>();
    private cachedEntities = 0;

    constructor(
        private readonly table: TableClient,
        options: TableStateStoreOptions = {},
    ) {
        this.shards = Math.max(1, Math.min(100, Math.floor(options.shards ?? DEFAULT_SHARDS)));
        this.callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
        this.cacheValidityMs = options.cacheValidityMs ?? 10_000;
        this.maxCachedEntities = options.maxCachedEntities ?? 500_000;
        this.writeConcurrency = Math.max(1, options.writeConcurrency ?? 8);
        this.readConcurrency = Math.max(1, options.readConcurrency ?? 16);
        this.now = options.now ?? Date.now;
    }

    /** The abort signal of one call. */
    private deadline(): AbortSignal {
        return AbortSignal.timeout(this.callTimeoutMs);
    }

    /** Creates the table when it does not exist (once per instance). */
    private ensureTable(): Promise<void> {
        this.ready ??= this.table.createTable({ abortSignal: this.deadline() }).catch((err: unknown) => {
            this.ready = undefined;
            throw unavailable(`creating table ${this.table.tableName}`, err);
        });
        return this.ready;
    }

    private keysOf(key: StateKey): { partitionKey: string; rowKey: string; long: boolean } {
        return tableKeysOf(key, this.shards);
    }

    async getMany(keys: readonly StateKey[], options?: ReadOptions): Promise<readonly (StoredState | undefined)[]> {
        await this.ensureTable();
        const out = new Array<StoredState | undefined>(keys.length);
        const located = keys.map((k) => this.keysOf(k));
        const point: number[] = [];
        if (options?.cached === true) {
            const shards = new Set(located.map((l) => l.partitionKey));
            await Promise.all([...shards].map((pk) => this.freshShard(pk)));
            for (let i = 0; i < keys.length; i++) {
                const { partitionKey, rowKey } = located[i] as { partitionKey: string; rowKey: string };
                const shard = this.cache.get(partitionKey);
                const hit = shard?.doubtful.has(rowKey) === false ? shard.entities.get(rowKey) : undefined;
                if (hit !== undefined) out[i] = hit;
                else if (shard?.complete === true && !shard.doubtful.has(rowKey)) out[i] = undefined;
                else point.push(i);
            }
        } else for (let i = 0; i < keys.length; i++) point.push(i);
        let next = 0;
        const worker = async (): Promise<void> => {
            while (next < point.length) {
                const i = point[next++] as number;
                const key = keys[i] as StateKey;
                const { partitionKey, rowKey } = located[i] as { partitionKey: string; rowKey: string };
                try {
                    const e = await this.table.getEntity<StateEntity>(partitionKey, rowKey, {
                        abortSignal: this.deadline(),
                    });
                    out[i] = { value: JSON.parse(joinValue(e)) as unknown, etag: e.etag };
                } catch (err) {
                    if (statusOf(err) === 404) out[i] = undefined;
                    else throw unavailable(`reading ${key.partition}/${key.row}`, err);
                }
                this.remember(partitionKey, rowKey, out[i]);
            }
        };
        await Promise.all(Array.from({ length: Math.min(this.readConcurrency, point.length) }, worker));
        return out;
    }

    /** Records what a read or a write established about one entity, where its shard is cached. */
    private remember(partitionKey: string, rowKey: string, state: Cached | undefined): void {
        const shard = this.cache.get(partitionKey);
        if (shard === undefined) return;
        shard.doubtful.delete(rowKey);
        const had = shard.entities.has(rowKey);
        if (state === undefined) {
            if (had) {
                shard.entities.delete(rowKey);
                this.cachedEntities--;
            }
            return;
        }
        shard.entities.set(rowKey, state);
        if (!had) {
            this.cachedEntities++;
            this.bound();
        }
    }

    /** A write met a conflict: the copy of that entity is not to be trusted until read again. */
    private doubt(partitionKey: string, rowKey: string): void {
        const shard = this.cache.get(partitionKey);
        if (shard === undefined) return;
        if (shard.entities.delete(rowKey)) this.cachedEntities--;
        shard.doubtful.add(rowKey);
    }

    /** Keeps the cache within its bound by dropping whole shards (the largest first). */
    private bound(): void {
        while (this.cachedEntities > this.maxCachedEntities && this.cache.size > 0) {
            let largest: [string, Shard] | undefined;
            for (const entry of this.cache)
                if (largest === undefined || entry[1].entities.size > largest[1].entities.size) largest = entry;
            if (largest === undefined) return;
            this.cachedEntities -= largest[1].entities.size;
            this.cache.delete(largest[0]);
        }
    }

    /** Loads a shard the first time, and brings it up to date once older than the cache validity. */
    private async freshShard(partitionKey: string): Promise<void> {
        let shard = this.cache.get(partitionKey);
        if (shard === undefined) {
            shard = { entities: new Map(), complete: false, doubtful: new Set(), syncedAt: 0, loading: undefined };
            this.cache.set(partitionKey, shard);
        }
        if (shard.loading !== undefined) return shard.loading;
        if (shard.syncedAt !== 0 && this.now() - shard.syncedAt < this.cacheValidityMs) return;
        const s = shard;
        s.loading = this.sync(partitionKey, s).finally(() => {
            s.loading = undefined;
        });
        return s.loading;
    }

    /** One query of a shard: all of it the first time, then what changed since the last query (minus the margin). */
    private async sync(partitionKey: string, shard: Shard): Promise<void> {
        const started = this.now();
        const since = shard.syncedAt;
        let filter = `PartitionKey eq '${partitionKey}'`;
        if (since !== 0) filter += ` and Timestamp ge datetime'${new Date(since - CLOCK_MARGIN_MS).toISOString()}'`;
        // A shard larger than its share of the cache is kept in part: what is not in it is read point by point.
        const room = Math.max(1000, Math.floor(this.maxCachedEntities / this.shards));
        let seen = 0;
        let whole = true;
        try {
            const pages = this.table
                .listEntities<StateEntity>({ queryOptions: { filter }, abortSignal: this.deadline() })
                .byPage({ maxPageSize: 1000 });
            for await (const page of pages) {
                for (const e of page) {
                    if (e.rowKey === undefined || e.etag === undefined) continue;
                    seen++;
                    // Unchanged since this instance wrote or read it (a refresh returns its own writes too).
                    if (shard.entities.get(e.rowKey)?.etag === e.etag && !shard.doubtful.has(e.rowKey)) continue;
                    this.remember(partitionKey, e.rowKey, {
                        value: JSON.parse(joinValue(e)) as unknown,
                        etag: e.etag,
                    });
                }
                if (seen >= room) {
                    whole = false;
                    break;
                }
            }
        } catch (err) {
            throw unavailable(`reading shard ${partitionKey}`, err);
        }
        if (this.cache.get(partitionKey) !== shard) return; // dropped meanwhile by the bound
        shard.complete = since === 0 ? whole : shard.complete && whole;
        shard.syncedAt = started;
    }

    async put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        const [r] = await this.putMany([{ key, value, etag, expiresMs }]);
        if (r instanceof ResponderError) throw r;
        return r ?? { ok: false };
    }

    /** Prepares one write: its entity, or the `STATE.TOO_LARGE` refusal. */
    private prepare(w: StateWrite, index: number): Prepared | ResponderError {
        const v = JSON.stringify(w.value);
        const parts = splitValue(v);
        const { partitionKey, rowKey, long } = this.keysOf(w.key);
        const problem = oversize(parts, partitionKey, rowKey);
        if (problem !== undefined) {
            // Not retryable: the same input makes the same state. The caller turns it into a decision for this key.
            return new ResponderError(
                'STATE.TOO_LARGE',
                `state ${w.key.partition}/${w.key.row} is ${v.length} characters of JSON (${problem}): not written`,
            );
        }
        const entity: Prepared['entity'] = { partitionKey, rowKey, v: parts[0], exp: w.expiresMs };
        for (let i = 1; i < parts.length; i++) entity[`v${i}`] = parts[i];
        if (long) {
            entity.p = w.key.partition;
            entity.r = w.key.row;
        }
        const bytes = 2 * v.length + 2 * rowKey.length + 400;
        return {
            index,
            name: `${w.key.partition}/${w.key.row}`,
            partitionKey,
            rowKey,
            entity,
            etag: w.etag,
            value: w.value,
            bytes,
        };
    }

    async putMany(writes: readonly StateWrite[]): Promise<readonly WriteResult[]> {
        const out = new Array<WriteResult>(writes.length);
        if (writes.length === 0) return out;
        await this.ensureTable();
        // Group by PartitionKey, then cut into transactions of at most 100 entities and 3.5 MB, one write per entity.
        const byShard = new Map<string, Prepared[]>();
        for (let i = 0; i < writes.length; i++) {
            const p = this.prepare(writes[i] as StateWrite, i);
            if (p instanceof ResponderError) {
                out[i] = p;
                continue;
            }
            const list = byShard.get(p.partitionKey) ?? [];
            list.push(p);
            byShard.set(p.partitionKey, list);
        }
        // Shards in parallel (at most writeConcurrency), the transactions of one shard in order: a second write of a
        // key in the same call then meets the first, as it would one put after the other.
        const shards: Prepared[][][] = [];
        for (const list of byShard.values()) {
            const chunks: Prepared[][] = [];
            let chunk: Prepared[] = [];
            let bytes = 0;
            let rows = new Set<string>();
            for (const p of list) {
                if (
                    chunk.length > 0 &&
                    (chunk.length >= MAX_TRANSACTION_ENTITIES ||
                        bytes + p.bytes > MAX_TRANSACTION_BYTES ||
                        rows.has(p.rowKey))
                ) {
                    chunks.push(chunk);
                    chunk = [];
                    bytes = 0;
                    rows = new Set();
                }
                chunk.push(p);
                bytes += p.bytes;
                rows.add(p.rowKey);
            }
            if (chunk.length > 0) chunks.push(chunk);
            shards.push(chunks);
        }
        let next = 0;
        const worker = async (): Promise<void> => {
            while (next < shards.length)
                for (const chunk of shards[next++] as Prepared[][]) await this.writeChunk(chunk, out);
        };
        await Promise.all(Array.from({ length: Math.min(this.writeConcurrency, shards.length) }, worker));
        return out;
    }

    /**
     * Writes one chunk (one PartitionKey) as a transaction. The service applies all of it or nothing: when one
     * entity's condition fails (409 it exists, 412 its ETag changed, 404 it was swept), the error names that operation
     * (`<index>:<message>`): that write is a conflict, and the rest goes again without it.
     */
    private async writeChunk(chunk: readonly Prepared[], out: WriteResult[]): Promise<void> {
        let todo = [...chunk];
        while (todo.length > 0) {
            if (todo.length === 1) {
                const p = todo[0] as Prepared;
                out[p.index] = await this.writeOne(p);
                return;
            }
            const actions: TransactionAction[] = todo.map((p) =>
                p.etag === undefined
                    ? ['create', p.entity]
                    : // Replace, not Merge: a state that shrank drops the v1, v2 ... it no longer needs.
                      ['update', p.entity, 'Replace', { etag: p.etag }],
            );
            try {
                const r = await this.table.submitTransaction(actions, { abortSignal: this.deadline() });
                const subs = r.subResponses;
                for (let i = 0; i < todo.length; i++) {
                    const p = todo[i] as Prepared;
                    const etag = subs.length === todo.length ? subs[i]?.etag : undefined;
                    if (etag === undefined) {
                        // No ETag to keep: the write happened, the next read of the entity gets its ETag.
                        this.doubt(p.partitionKey, p.rowKey);
                        out[p.index] = { ok: false };
                        continue;
                    }
                    out[p.index] = { ok: true, etag };
                    this.remember(p.partitionKey, p.rowKey, { value: p.value, etag });
                }
                return;
            } catch (err) {
                const status = statusOf(err);
                if (status !== 409 && status !== 412 && status !== 404) {
                    throw unavailable(
                        `writing ${todo.length} entities (${todo
                            .slice(0, 3)
                            .map((p) => p.name)
                            .join(', ')}${todo.length > 3 ? ' ...' : ''})`,
                        err,
                    );
                }
                const failed = failedOperation(err);
                if (failed === undefined || failed >= todo.length) {
                    // The service did not say which: each write on its own.
                    for (const p of todo) out[p.index] = await this.writeOne(p);
                    return;
                }
                const p = todo[failed] as Prepared;
                const conflict = status !== 404 || p.etag !== undefined;
                if (!conflict) throw unavailable(`writing ${p.name}`, err);
                this.doubt(p.partitionKey, p.rowKey);
                out[p.index] = { ok: false };
                todo = todo.filter((_, i) => i !== failed);
            }
        }
    }

    /** One entity alone: insert, or replace on its ETag. */
    private async writeOne(p: Prepared): Promise<PutResult> {
        try {
            const r =
                p.etag === undefined
                    ? await this.table.createEntity(p.entity, { abortSignal: this.deadline() })
                    : // Replace, not Merge: a state that shrank drops the v1, v2 ... it no longer needs.
                      await this.table.updateEntity(p.entity, 'Replace', {
                          etag: p.etag,
                          abortSignal: this.deadline(),
                      });
            if (r.etag === undefined) throw new Error('no ETag in the response');
            this.remember(p.partitionKey, p.rowKey, { value: p.value, etag: r.etag });
            return { ok: true, etag: r.etag };
        } catch (err) {
            const status = statusOf(err);
            // 409: someone created the key first; 412: someone changed it since we read it; 404: it was swept.
            if (status === 409 || status === 412 || (status === 404 && p.etag !== undefined)) {
                this.doubt(p.partitionKey, p.rowKey);
                return { ok: false };
            }
            throw unavailable(`writing ${p.name}`, err);
        }
    }

    async scan(rowPrefix: string, limit: number): Promise<{ key: StateKey; value: unknown }[]> {
        await this.ensureTable();
        const from = encodeRowPart(rowPrefix);
        // Every RowKey whose row has the prefix sorts between the prefix and the prefix with its last character
        // incremented, in every shard: one range query over the table.
        const to = `${from.slice(0, -1)}${String.fromCharCode(from.charCodeAt(from.length - 1) + 1)}`;
        const q = (v: string): string => `'${v.replace(/'/g, "''")}'`;
        const out: { key: StateKey; value: unknown }[] = [];
        try {
            for await (const e of this.table.listEntities<StateEntity>({
                queryOptions: { filter: `RowKey ge ${q(from)} and RowKey lt ${q(to)}` },
                abortSignal: AbortSignal.timeout(this.callTimeoutMs * 10),
            })) {
                if (out.length >= limit) break;
                const key = stateKeyOf(e);
                // A shortened RowKey may match the prefix only in its encoded beginning: check the row itself.
                if (key === undefined || !key.row.startsWith(rowPrefix)) continue;
                out.push({ key, value: JSON.parse(joinValue(e)) as unknown });
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
            .listEntities<{ exp?: unknown }>({
                queryOptions: { filter, select: ['PartitionKey', 'RowKey', 'exp'] },
                abortSignal: AbortSignal.timeout(this.callTimeoutMs * 10),
            })
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
                        await this.table.deleteEntity(e.partitionKey, e.rowKey, {
                            etag: e.etag,
                            abortSignal: this.deadline(),
                        });
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

/**
 * The index of the operation a failed transaction names. The service answers a failed changeset with the error of
 * its first failing operation, whose message starts with that operation's index (`"1:The specified entity already
 * exists..."`: "Performing entity group transactions", learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions).
 */
function failedOperation(err: unknown): number | undefined {
    const e = err as { message?: unknown; details?: { odataError?: { message?: { value?: unknown } } } };
    const texts = [e.details?.odataError?.message?.value, e.message];
    for (const t of texts) {
        if (typeof t !== 'string') continue;
        const m = /^(\d+):/.exec(t) ?? /"value"\s*:\s*"(\d+):/.exec(t);
        if (m) return Number(m[1]);
    }
    return undefined;
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

/**
 * The Table client of a location, with {@link TABLE_RETRY_OPTIONS}: a URL uses the given credential, a connection
 * string its key (plain HTTP only for Azurite's development endpoints). Every Table client of the app is built here,
 * so that none falls back to the SDK's default retries (up to 64 s between attempts).
 */
export function tableClientAt(location: TableLocation, credential: () => TokenCredential): TableClient {
    if (location.kind === 'connection-string') {
        const insecure = /DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true/i.test(location.connectionString);
        return TableClient.fromConnectionString(location.connectionString, location.table, {
            allowInsecureConnection: insecure,
            retryOptions: TABLE_RETRY_OPTIONS,
        });
    }
    return new TableClient(location.url, location.table, credential(), { retryOptions: TABLE_RETRY_OPTIONS });
}

/** Builds the Table Storage state store for a location; a URL uses the given credential. */
export function tableStateStoreAt(
    location: TableLocation,
    credential: () => TokenCredential,
    options: TableStateStoreOptions = {},
): TableStateStore {
    return new TableStateStore(tableClientAt(location, credential), options);
}

/** Reads a `--state` / setting value: `https://...` is an account URL, anything else a connection string. */
export function tableLocationOf(value: string, table: string): TableLocation {
    return value.startsWith('https://')
        ? { kind: 'url', url: value.replace(/\/+$/, ''), table }
        : { kind: 'connection-string', connectionString: value, table };
}
