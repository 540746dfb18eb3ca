import { randomBytes } from 'node:crypto';
import type { TokenCredential } from '@azure/identity';
import { TableClient } from '@azure/data-tables';
import { eachBounded } from '../core/bounded';
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
import { type PropertyValue, sendOperation, submitTransaction, type TableOp } from './tableTransaction';

/** Characters Table Storage forbids in PartitionKey and RowKey (plus `%`, the escape itself). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what Table Storage forbids
const FORBIDDEN = /[%/\\#?\u0000-\u001f\u007f-\u009f]/g;
// eslint-disable-next-line no-control-regex -- the same characters, to test without replacing
const NEEDS_ESCAPE = /[%/\\#?\u0000-\u001f\u007f-\u009f]/;

/** Escapes a key part for Table Storage (`/` becomes `%2F` ...); ids and vault names pass unchanged. */
export function encodeKeyPart(s: string): string {
    if (!NEEDS_ESCAPE.test(s)) return s;
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
/**
 * Transactions of one shard in flight at once (at most `writeConcurrency` shards are written at once): the writes of
 * one call touch distinct entities, so their transactions need not wait for one another.
 */
const TRANSACTIONS_IN_FLIGHT = 4;
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
    const e = encodeKeyPart(s);
    return e.includes('|') ? e.replace(/\|/g, '%7C') : e;
}

function pause(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** An OData string literal. */
function quote(v: string): string {
    return `'${v.replace(/'/g, "''")}'`;
}

/** The `STATE.TOO_LARGE` refusal of one write (not retryable: the same input makes the same state). */
function tooLarge(key: StateKey, chars: number, problem: string): ResponderError {
    return new ResponderError(
        'STATE.TOO_LARGE',
        `state ${key.partition}/${key.row} is ${chars} characters of JSON (${problem}): not written`,
    );
}

/** Longest RowKey written (characters): below the 1 KiB (512 UTF-16 characters) a key may hold. */
const MAX_ROW_KEY_CHARS = 480;

/** The PartitionKey of a state key partition: `s00` ... (a hash of the partition, modulo `shards`). */
function shardOf(partition: string, shards: number): string {
    const h = parseInt(hash64(partition).slice(0, 8), 16);
    return `s${String(h % shards).padStart(2, '0')}`;
}

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
    const partitionKey = shardOf(key.partition, shards);
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

/**
 * Detection state kept in packs: rows without `|` (one per vault) and rows of these classes (`app|<id>` ...). Every
 * key of one of these rows lives in its vault's pack entity (see {@link packRowKeyOf}) as one property, until the pack
 * is full. Other state (incidents, leases, intents, undo records, the key inventory, finding groups) keeps one entity
 * per key: it is read uncached, scanned by row prefix, or large.
 */
const PACKED_SINGLETONS: ReadonlySet<string> = new Set(['meta', 'heartbeat', 'rbac', 'throttle', 'firewall', 'grants']);
const PACKED_CLASSES: ReadonlySet<string> = new Set(['app', 'user', 'mass', 'enum']);
/**
 * Keys one pack holds at most: an entity holds up to 255 properties, of which the pack uses a few of its own. A key
 * that would be one more goes to an entity of its own, and the pack is marked `full` (for good) in the same
 * transaction, so that a reader knows where to look.
 */
export const MAX_PACK_KEYS = 200;
/**
 * A key's property in a pack is at most this many characters, and this many bytes in the JSON request body; a larger
 * state is kept in a side entity written in the same transaction as the pack. 200 keys of 2,000 characters (4,000
 * bytes as the service counts, 4,500 as Azurite does) stay below the 1 MiB of an entity.
 */
const PACK_INLINE_CHARS = 2_000;
const PACK_INLINE_BODY_BYTES = 4_500;
/** RowKey prefixes of packs and side entities: `~` sorts after every row, so no scan by row prefix meets them. */
const PACK_PREFIX = '~v|';
const SIDE_PREFIX = '~s|';
/**
 * Attempts at one pack's writes in one call, each after a fresh read of the pack, before its writes report conflicts
 * (which the caller then handles as any conflict: it reads again and retries). Every attempt that fails means another
 * writer's attempt succeeded, so this bounds only how many writers at once one pack can take without a spurious
 * conflict; from the third attempt on, a short random pause spreads the contenders.
 */
const PACK_ATTEMPTS = 30;

/** True when the key lives in its vault's pack (see {@link PACKED_CLASSES}). */
export function isPackedKey(key: StateKey): boolean {
    const r = key.row;
    const bar = r.indexOf('|');
    return bar < 0 ? PACKED_SINGLETONS.has(r) : PACKED_CLASSES.has(r.slice(0, bar));
}

/** Whether a packed key's row may start with the prefix (a scan then reads the packs too). */
function packsMayHold(rowPrefix: string): boolean {
    for (const c of PACKED_SINGLETONS) if (c.startsWith(rowPrefix) || rowPrefix.startsWith(c)) return true;
    for (const c of PACKED_CLASSES) if (`${c}|`.startsWith(rowPrefix) || rowPrefix.startsWith(`${c}|`)) return true;
    return false;
}

/** The RowKey of the pack of a state key partition (a vault): `~v|` and the escaped partition. */
export function packRowKeyOf(partition: string): string {
    const rk = `${PACK_PREFIX}${encodeRowPart(partition)}`;
    return rk.length <= MAX_ROW_KEY_CHARS ? rk : `${rk.slice(0, MAX_ROW_KEY_CHARS - 17)}~${hash64(partition)}`;
}

const SLOTS = new Map<string, string>();

/** The property of a row in its pack (a hash: property names must be identifiers). Memoized, bounded. */
function slotOf(row: string): string {
    let name = SLOTS.get(row);
    if (name === undefined) {
        if (SLOTS.size >= 50_000) SLOTS.clear();
        name = `k${hash64(row)}`;
        SLOTS.set(row, name);
    }
    return name;
}

const SLOT_NAME = /^k[0-9a-f]{16}$/;

/** One key in a pack: its row, its version (the key's ETag is `~<version>`), its expiry and its value. */
interface Slot {
    readonly row: string;
    readonly ver: string;
    readonly exp: number;
    /** The value, or undefined when it is in the side entity (`side`). */
    readonly value: unknown;
    readonly side: boolean;
}

/** What is known of one pack entity. */
interface Pack {
    /** Undefined: the pack does not exist. */
    readonly etag: string | undefined;
    readonly full: boolean;
    readonly slots: ReadonlyMap<string, Slot>;
    /** The earliest `exp` of its slots (infinite: none), so that a write need not walk every slot to find it. */
    readonly exp: number;
}

const NO_PACK: Pack = { etag: undefined, full: false, slots: new Map(), exp: Number.POSITIVE_INFINITY };

/** What a cached pack counts towards the cache's bound on entities: its keys (one at least). */
function weightOf(pack: Pack | undefined): number {
    return pack === undefined ? 0 : Math.max(1, pack.slots.size);
}

/** Decodes a pack entity: `[row, version, exp, value]` per key, `[row, version, exp]` when the value is aside. */
function decodePack(e: Record<string, unknown>): Pack {
    const slots = new Map<string, Slot>();
    let exp = Number.POSITIVE_INFINITY;
    for (const name of Object.keys(e)) {
        if (!SLOT_NAME.test(name)) continue;
        const v = e[name];
        if (typeof v !== 'string') continue;
        const a = JSON.parse(v) as [string, string, number, unknown?];
        slots.set(name, { row: a[0], ver: a[1], exp: a[2], value: a[3], side: a.length < 4 });
        if (a[2] < exp) exp = a[2];
    }
    return { etag: typeof e.etag === 'string' ? e.etag : undefined, full: e.full === true, slots, exp };
}

/** The side entity of a packed key too large for its pack: its version, and its value. */
interface Side {
    readonly ver: string;
    readonly value: unknown;
}

function decodeSide(e: StateEntity & { n?: unknown }): Side {
    return { ver: String(e.n), value: JSON.parse(joinValue(e)) as unknown };
}

/** The instance-local copy of one shard (PartitionKey). */
interface Shard {
    readonly entities: Map<string, Cached>;
    /** Packs (by RowKey) and side entities (by RowKey) of the shard. */
    readonly packs: Map<string, Pack>;
    readonly sides: Map<string, Side>;
    /** The keys of the packs in `packs` (a pack counts as its keys towards the cache's bound). */
    packKeys: number;
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
    /** The entity's properties (besides its keys). */
    readonly props: [string, PropertyValue][];
    readonly etag: string | undefined;
    readonly value: unknown;
    readonly bytes: number;
}

/**
 * Operations of one transaction that stand or fall together: one plain write, or the writes of one pack (the pack
 * entity, its side entities, and the keys that overflowed it).
 */
interface Unit {
    readonly partitionKey: string;
    readonly actions: TableOp[];
    readonly rowKeys: readonly string[];
    readonly bytes: number;
    /** The transaction succeeded: the ETags of the unit's actions. */
    done(etags: readonly (string | undefined)[]): void;
    /** Its action `i` failed with `status`: the unit to send instead (undefined: nothing left). */
    failed(i: number, status: number, err: unknown): Promise<Unit | undefined>;
}

/** The operation of a write to an entity of its own: an insert, or a Replace on its ETag. */
function plainOp(p: Prepared): TableOp {
    return p.etag === undefined
        ? { kind: 'insert', partitionKey: p.partitionKey, rowKey: p.rowKey, props: p.props }
        : { kind: 'replace', partitionKey: p.partitionKey, rowKey: p.rowKey, props: p.props, etag: p.etag };
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
    private readonly partitions = new Map<string, { readonly partitionKey: string; readonly packRk: string }>();
    /** This instance's prefix of packed key versions, and its counter. */
    private readonly tag = randomBytes(6).toString('base64url');
    private versions = 0;

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

    /** The PartitionKey of a state key partition (a vault) and the RowKey of its pack. Memoized, bounded. */
    private partitionOf(partition: string): { readonly partitionKey: string; readonly packRk: string } {
        let p = this.partitions.get(partition);
        if (p === undefined) {
            if (this.partitions.size >= 100_000) this.partitions.clear();
            p = { partitionKey: shardOf(partition, this.shards), packRk: packRowKeyOf(partition) };
            this.partitions.set(partition, p);
        }
        return p;
    }

    async getMany(keys: readonly StateKey[], options?: ReadOptions): Promise<readonly (StoredState | undefined)[]> {
        await this.ensureTable();
        const out = new Array<StoredState | undefined>(keys.length);
        // The PartitionKey is the partition's; a key's RowKey is only needed for what is not in its pack.
        const located = keys.map((k) => this.partitionOf(k.partition));
        const rowKeyOf = (i: number): string => this.keysOf(keys[i] as StateKey).rowKey;
        const point: number[] = [];
        if (options?.cached === true) {
            const shards = new Set(located.map((l) => l.partitionKey));
            await Promise.all([...shards].map((pk) => this.freshShard(pk)));
            for (let i = 0; i < keys.length; i++) {
                const key = keys[i] as StateKey;
                const { partitionKey, packRk } = located[i] as { partitionKey: string; packRk: string };
                const shard = this.cache.get(partitionKey);
                if (shard === undefined) {
                    point.push(i);
                    continue;
                }
                if (isPackedKey(key)) {
                    const pack = shard.doubtful.has(packRk) ? undefined : shard.packs.get(packRk);
                    if (pack === undefined) {
                        // No pack: the key does not exist (a key lives outside its pack only once the pack is full).
                        if (shard.complete && !shard.doubtful.has(packRk)) out[i] = undefined;
                        else point.push(i);
                        continue;
                    }
                    const slot = pack.slots.get(slotOf(key.row));
                    if (slot !== undefined) {
                        const side = slot.side ? shard.sides.get(`${SIDE_PREFIX}${rowKeyOf(i)}`) : undefined;
                        if (!slot.side) out[i] = { value: slot.value, etag: `~${slot.ver}` };
                        else if (side?.ver === slot.ver) out[i] = { value: side.value, etag: `~${slot.ver}` };
                        else point.push(i);
                        continue;
                    }
                    if (!pack.full) {
                        out[i] = undefined;
                        continue;
                    }
                }
                const rowKey = rowKeyOf(i);
                const hit = shard.doubtful.has(rowKey) ? undefined : shard.entities.get(rowKey);
                if (hit !== undefined) out[i] = hit;
                else if (shard.complete && !shard.doubtful.has(rowKey)) out[i] = undefined;
                else point.push(i);
            }
        } else for (let i = 0; i < keys.length; i++) point.push(i);
        // Packed keys: one read of each pack (and of a side entity or an overflowed key where needed).
        const packs = new Map<string, Promise<Pack>>();
        const packOf = (partitionKey: string, partition: string): Promise<Pack> => {
            const rk = packRowKeyOf(partition);
            let p = packs.get(`${partitionKey}/${rk}`);
            if (p === undefined) {
                p = this.readPack(partitionKey, rk);
                packs.set(`${partitionKey}/${rk}`, p);
            }
            return p;
        };
        let next = 0;
        const worker = async (): Promise<void> => {
            while (next < point.length) {
                const i = point[next++] as number;
                const key = keys[i] as StateKey;
                const { partitionKey } = located[i] as { partitionKey: string };
                const rowKey = rowKeyOf(i);
                if (isPackedKey(key)) {
                    const found = await this.readPacked(key, partitionKey, rowKey, packOf);
                    if (found !== 'plain') {
                        out[i] = found;
                        continue;
                    }
                }
                out[i] = await this.readPlain(key, partitionKey, rowKey);
            }
        };
        await Promise.all(Array.from({ length: Math.min(this.readConcurrency, point.length) }, worker));
        return out;
    }

    /** One entity of its own (a key not packed, or overflowed from its full pack). */
    private async readPlain(key: StateKey, partitionKey: string, rowKey: string): Promise<StoredState | undefined> {
        let out: StoredState | undefined;
        try {
            const e = await this.table.getEntity<StateEntity>(partitionKey, rowKey, { abortSignal: this.deadline() });
            out = { value: JSON.parse(joinValue(e)) as unknown, etag: e.etag };
        } catch (err) {
            if (statusOf(err) === 404) out = undefined;
            else throw unavailable(`reading ${key.partition}/${key.row}`, err);
        }
        this.remember(partitionKey, rowKey, out);
        return out;
    }

    /**
     * A packed key read from the table: its slot in the pack (and its side entity, checked against the slot's
     * version), nothing when the pack does not hold it and is not full, or `'plain'` when the pack is full and the key
     * may have an entity of its own.
     */
    private async readPacked(
        key: StateKey,
        partitionKey: string,
        rowKey: string,
        packOf: (partitionKey: string, partition: string) => Promise<Pack>,
    ): Promise<StoredState | undefined | 'plain'> {
        let pack = await packOf(partitionKey, key.partition);
        for (let attempt = 0; ; attempt++) {
            const slot = pack.slots.get(slotOf(key.row));
            if (slot === undefined) return pack.full ? 'plain' : undefined;
            if (!slot.side) return { value: slot.value, etag: `~${slot.ver}` };
            const sideRk = `${SIDE_PREFIX}${rowKey}`;
            try {
                const e = await this.table.getEntity<StateEntity & { n?: unknown }>(partitionKey, sideRk, {
                    abortSignal: this.deadline(),
                });
                const side = decodeSide(e);
                this.rememberSide(partitionKey, sideRk, side);
                if (side.ver === slot.ver) return { value: side.value, etag: `~${slot.ver}` };
            } catch (err) {
                if (statusOf(err) !== 404) throw unavailable(`reading ${key.partition}/${key.row}`, err);
            }
            // The pack and its side entity are written in one transaction: a mismatch means a write landed between
            // the two reads. Read both again.
            if (attempt >= 3)
                throw unavailable(`reading ${key.partition}/${key.row}`, new Error('pack kept changing while read'));
            pack = await this.readPack(partitionKey, packRowKeyOf(key.partition));
        }
    }

    /** Reads a pack entity from the table (not there: {@link NO_PACK}), and keeps the copy where its shard is cached. */
    private async readPack(partitionKey: string, packRk: string): Promise<Pack> {
        let pack: Pack;
        try {
            const e = await this.table.getEntity<Record<string, unknown>>(partitionKey, packRk, {
                abortSignal: this.deadline(),
            });
            pack = decodePack(e);
        } catch (err) {
            if (statusOf(err) !== 404) throw unavailable(`reading pack ${partitionKey}/${packRk}`, err);
            pack = NO_PACK;
        }
        this.rememberPack(partitionKey, packRk, pack);
        return pack;
    }

    /** Records what a read or a write established about one pack, where its shard is cached. */
    private rememberPack(partitionKey: string, packRk: string, pack: Pack): void {
        const shard = this.cache.get(partitionKey);
        if (shard === undefined) return;
        shard.doubtful.delete(packRk);
        const before = weightOf(shard.packs.get(packRk));
        if (pack.etag === undefined) shard.packs.delete(packRk);
        else shard.packs.set(packRk, pack);
        const change = (pack.etag === undefined ? 0 : weightOf(pack)) - before;
        shard.packKeys += change;
        this.cachedEntities += change;
        if (change > 0) this.bound();
    }

    /**
     * Records a successful write of a pack (`plan`, planned on `base`), where its shard is cached. When the copy holds
     * `base` itself, its map of keys is updated in place rather than copied whole for every write (a pack holds up to
     * 200 keys, and a batch of a cold estate writes hundreds of packs): whoever still plans on `base` (a concurrent
     * call) holds the pack's old ETag, so the service refuses its write and it reads the pack again.
     */
    private rememberWritten(
        partitionKey: string,
        packRk: string,
        base: Pack,
        etag: string,
        plan: { readonly full: boolean; readonly slots: ReadonlyMap<string, Slot>; readonly exp: number },
    ): void {
        const shard = this.cache.get(partitionKey);
        if (shard === undefined) return;
        const cached = shard.packs.get(packRk);
        if (cached === undefined || cached !== base || shard.doubtful.has(packRk)) {
            const slots = new Map(base.slots);
            for (const [name, slot] of plan.slots) slots.set(name, slot);
            this.rememberPack(partitionKey, packRk, { etag, full: plan.full, slots, exp: plan.exp });
            return;
        }
        const before = weightOf(cached);
        const slots = cached.slots as Map<string, Slot>;
        for (const [name, slot] of plan.slots) slots.set(name, slot);
        shard.packs.set(packRk, { etag, full: plan.full, slots, exp: plan.exp });
        const change = weightOf(cached) - before;
        shard.packKeys += change;
        this.cachedEntities += change;
        if (change > 0) this.bound();
    }

    private rememberSide(partitionKey: string, sideRk: string, side: Side | undefined): void {
        const shard = this.cache.get(partitionKey);
        if (shard !== undefined) this.setCached(shard.sides, sideRk, side);
    }

    /** Records what a read or a write established about one entity, where its shard is cached. */
    private remember(partitionKey: string, rowKey: string, state: Cached | undefined): void {
        const shard = this.cache.get(partitionKey);
        if (shard === undefined) return;
        shard.doubtful.delete(rowKey);
        this.setCached(shard.entities, rowKey, state);
    }

    /** Sets one cached entity of a shard's map, or deletes it (`undefined`), keeping the count of cached entities. */
    private setCached<V>(map: Map<string, V>, rowKey: string, value: V | undefined): void {
        const had = map.has(rowKey);
        if (value === undefined) {
            if (had) {
                map.delete(rowKey);
                this.cachedEntities--;
            }
            return;
        }
        map.set(rowKey, value);
        if (!had) {
            this.cachedEntities++;
            this.bound();
        }
    }

    /** A write met a conflict: the copy of that entity (or pack) is not to be trusted until read again. */
    private doubt(partitionKey: string, rowKey: string): void {
        const shard = this.cache.get(partitionKey);
        if (shard === undefined) return;
        if (shard.entities.delete(rowKey)) this.cachedEntities--;
        const pack = shard.packs.get(rowKey);
        if (pack !== undefined) {
            shard.packs.delete(rowKey);
            shard.packKeys -= weightOf(pack);
            this.cachedEntities -= weightOf(pack);
        }
        shard.doubtful.add(rowKey);
    }

    /** Keeps the cache within its bound by dropping whole shards (the largest first). */
    private bound(): void {
        const size = (s: Shard): number => s.entities.size + s.packKeys + s.sides.size;
        while (this.cachedEntities > this.maxCachedEntities && this.cache.size > 0) {
            let largest: [string, Shard] | undefined;
            for (const entry of this.cache)
                if (largest === undefined || size(entry[1]) > size(largest[1])) largest = entry;
            if (largest === undefined) return;
            this.cachedEntities -= size(largest[1]);
            this.cache.delete(largest[0]);
        }
    }

    /** Loads a shard the first time, and brings it up to date once older than the cache validity. */
    private async freshShard(partitionKey: string): Promise<void> {
        let shard = this.cache.get(partitionKey);
        if (shard === undefined) {
            shard = {
                entities: new Map(),
                packs: new Map(),
                sides: new Map(),
                packKeys: 0,
                complete: false,
                doubtful: new Set(),
                syncedAt: 0,
                loading: undefined,
            };
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
                .listEntities<StateEntity & { n?: unknown }>({ queryOptions: { filter }, abortSignal: this.deadline() })
                .byPage({ maxPageSize: 1000 });
            for await (const page of pages) {
                for (const e of page) {
                    const rk = e.rowKey;
                    if (rk === undefined || e.etag === undefined) continue;
                    seen++;
                    if (rk.startsWith(PACK_PREFIX)) {
                        const had = shard.packs.get(rk);
                        if (had?.etag === e.etag && !shard.doubtful.has(rk)) {
                            seen += weightOf(had) - 1;
                            continue;
                        }
                        const pack = decodePack(e as unknown as Record<string, unknown>);
                        seen += weightOf(pack) - 1;
                        this.rememberPack(partitionKey, rk, pack);
                    } else if (rk.startsWith(SIDE_PREFIX)) {
                        this.rememberSide(partitionKey, rk, decodeSide(e));
                    } else {
                        // Unchanged since this instance wrote or read it (a refresh returns its own writes too).
                        if (shard.entities.get(rk)?.etag === e.etag && !shard.doubtful.has(rk)) continue;
                        this.remember(partitionKey, rk, { value: JSON.parse(joinValue(e)) as unknown, etag: e.etag });
                    }
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

    /** Prepares one write of an entity of its own: the entity, or the `STATE.TOO_LARGE` refusal. */
    private prepare(w: StateWrite, index: number): Prepared | ResponderError {
        const v = JSON.stringify(w.value);
        const parts = splitValue(v);
        const { partitionKey, rowKey, long } = this.keysOf(w.key);
        const problem = oversize(parts, partitionKey, rowKey);
        if (problem !== undefined) return tooLarge(w.key, v.length, problem);
        const props: [string, PropertyValue][] = [
            ['v', parts[0] as string],
            ['exp', w.expiresMs],
        ];
        for (let i = 1; i < parts.length; i++) props.push([`v${i}`, parts[i] as string]);
        if (long) props.push(['p', w.key.partition], ['r', w.key.row]);
        const bytes = 2 * v.length + 2 * rowKey.length + 400;
        return {
            index,
            name: `${w.key.partition}/${w.key.row}`,
            partitionKey,
            rowKey,
            props,
            etag: w.etag,
            value: w.value,
            bytes,
        };
    }

    /** A new version of a packed key: unique to this instance and this write. */
    private nextVersion(): string {
        return `${this.tag}${(++this.versions).toString(36)}`;
    }

    async putMany(writes: readonly StateWrite[]): Promise<readonly WriteResult[]> {
        const out = new Array<WriteResult>(writes.length);
        if (writes.length === 0) return out;
        await this.ensureTable();
        // Each key once per round: a second write of a key in the same call meets the first (a conflict when it was
        // made on the same ETag), as it would one put after the other.
        let pending = writes.map((_, i) => i);
        while (pending.length > 0) {
            const seen = new Set<string>();
            const now: number[] = [];
            const later: number[] = [];
            for (const i of pending) {
                const id = (writes[i] as StateWrite).key.id;
                if (seen.has(id)) later.push(i);
                else {
                    seen.add(id);
                    now.push(i);
                }
            }
            await this.putRound(writes, now, out);
            pending = later;
        }
        return out;
    }

    /** Writes keys that are all distinct: shards in parallel (at most writeConcurrency), each shard's units in order. */
    private async putRound(
        writes: readonly StateWrite[],
        indexes: readonly number[],
        out: WriteResult[],
    ): Promise<void> {
        const byShard = new Map<string, { plain: Prepared[]; packs: Map<string, number[]> }>();
        const shardOf = (pk: string): { plain: Prepared[]; packs: Map<string, number[]> } => {
            let s = byShard.get(pk);
            if (s === undefined) {
                s = { plain: [], packs: new Map() };
                byShard.set(pk, s);
            }
            return s;
        };
        for (const i of indexes) {
            const w = writes[i] as StateWrite;
            if (isPackedKey(w.key)) {
                const { partitionKey, packRk: rk } = this.partitionOf(w.key.partition);
                const packs = shardOf(partitionKey).packs;
                const list = packs.get(rk) ?? [];
                list.push(i);
                packs.set(rk, list);
                continue;
            }
            const p = this.prepare(w, i);
            if (p instanceof ResponderError) out[i] = p;
            else shardOf(p.partitionKey).plain.push(p);
        }
        const shards = [...byShard];
        let next = 0;
        const worker = async (): Promise<void> => {
            while (next < shards.length) {
                const [pk, { plain, packs }] = shards[next++] as [
                    string,
                    { plain: Prepared[]; packs: Map<string, number[]> },
                ];
                const units: Unit[] = plain.map((p) => this.plainUnit(p, out));
                const built = await Promise.all(
                    [...packs].map(([rk, list]) => this.packUnit(pk, rk, list, writes, out, undefined, 0)),
                );
                for (const u of built) if (u !== undefined) units.push(u);
                await this.sendUnits(units);
            }
        };
        await Promise.all(Array.from({ length: Math.min(this.writeConcurrency, shards.length) }, worker));
    }

    /** One write to an entity of its own: an insert, or a Replace on its ETag. */
    private plainUnit(p: Prepared, out: WriteResult[]): Unit {
        return {
            partitionKey: p.partitionKey,
            // Replace, not Merge: a state that shrank drops the v1, v2 ... it no longer needs.
            actions: [plainOp(p)],
            rowKeys: [p.rowKey],
            bytes: p.bytes,
            done: (etags) => {
                const etag = etags[0];
                if (etag === undefined) {
                    // No ETag to keep: the write happened, the next read of the entity gets its ETag.
                    this.doubt(p.partitionKey, p.rowKey);
                    out[p.index] = { ok: false };
                    return;
                }
                out[p.index] = { ok: true, etag };
                this.remember(p.partitionKey, p.rowKey, { value: p.value, etag });
            },
            failed: (_i, status, err) => {
                // 409: someone created the key first; 412: someone changed it since we read it; 404: it was swept.
                if (status === 409 || status === 412 || (status === 404 && p.etag !== undefined)) {
                    this.doubt(p.partitionKey, p.rowKey);
                    out[p.index] = { ok: false };
                    return Promise.resolve(undefined);
                }
                return Promise.reject(unavailable(`writing ${p.name}`, err));
            },
        };
    }

    /**
     * The writes of one pack as one unit: each key's compare-and-set is checked against the pack as this instance
     * knows it (its cached copy, else a read), and the pack is written with Merge on the pack's ETag, so that the
     * service refuses it if anyone changed the pack since. Then ({@link Unit.failed}) the pack is read again and each
     * key checked again: a write whose own key did not change is applied again on the fresh pack; only a write whose
     * key changed reports a conflict. Keys past {@link MAX_PACK_KEYS} get entities of their own, in the same
     * transaction as the write that marks the pack full.
     */
    private async packUnit(
        pk: string,
        packRk: string,
        indexes: readonly number[],
        writes: readonly StateWrite[],
        out: WriteResult[],
        given: Pack | undefined,
        attempt: number,
    ): Promise<Unit | undefined> {
        let fresh = given !== undefined;
        let pack = given;
        if (pack === undefined) {
            const shard = this.cache.get(pk);
            if (shard !== undefined && !shard.doubtful.has(packRk)) {
                pack = shard.packs.get(packRk) ?? (shard.complete ? NO_PACK : undefined);
            }
        }
        if (pack === undefined) {
            pack = await this.readPack(pk, packRk);
            fresh = true;
        }
        for (;;) {
            const plan = this.planPack(pk, packRk, indexes, writes, pack);
            // A conflict is reported only on a fresh read of the pack.
            if (plan.conflicts.length > 0 && !fresh) {
                pack = await this.readPack(pk, packRk);
                fresh = true;
                continue;
            }
            for (const i of plan.conflicts) out[i] = { ok: false };
            for (const [i, err] of plan.refused) out[i] = err;
            if (plan.actions.length === 0) return undefined;
            const base = pack;
            return {
                partitionKey: pk,
                actions: plan.actions,
                rowKeys: plan.rowKeys,
                bytes: plan.bytes,
                done: (etags) => {
                    const etag = plan.packAction ? etags[0] : base.etag;
                    if (etag === undefined) this.doubt(pk, packRk);
                    else this.rememberWritten(pk, packRk, base, etag, plan);
                    for (const [rk, side] of plan.sides) this.rememberSide(pk, rk, side);
                    for (const w of plan.packed) out[w.index] = { ok: true, etag: `~${w.ver}` };
                    for (const [j, p] of plan.plain) {
                        const e = etags[j];
                        if (e === undefined) {
                            this.doubt(pk, p.rowKey);
                            out[p.index] = { ok: false };
                        } else {
                            out[p.index] = { ok: true, etag: e };
                            this.remember(pk, p.rowKey, { value: p.value, etag: e });
                        }
                    }
                },
                failed: async (j, status, err) => {
                    const p = plan.plain.get(j);
                    if (p !== undefined) {
                        // A key of its own (the pack is full): that write alone, as for any other entity.
                        if (status === 409 || status === 412 || (status === 404 && p.etag !== undefined)) {
                            this.doubt(pk, p.rowKey);
                            out[p.index] = { ok: false };
                            const rest = indexes.filter((i) => i !== p.index && out[i] === undefined);
                            return this.packUnit(pk, packRk, rest, writes, out, base, attempt);
                        }
                        throw unavailable(`writing ${p.name}`, err);
                    }
                    if (status !== 409 && status !== 412 && status !== 404)
                        throw unavailable(`writing pack ${pk}/${packRk}`, err);
                    // Someone changed the pack since it was read: read it again, check each key again.
                    const pending = indexes.filter((i) => out[i] === undefined);
                    if (attempt + 1 >= PACK_ATTEMPTS) {
                        this.doubt(pk, packRk);
                        for (const i of pending) out[i] = { ok: false };
                        return undefined;
                    }
                    if (attempt >= 2) await pause(Math.random() * 5 * attempt);
                    const again = await this.readPack(pk, packRk);
                    return this.packUnit(pk, packRk, pending, writes, out, again, attempt + 1);
                },
            };
        }
    }

    /** What writing these keys into this pack means: the actions, and each write's outcome if they succeed. */
    private planPack(
        pk: string,
        packRk: string,
        indexes: readonly number[],
        writes: readonly StateWrite[],
        pack: Pack,
    ): {
        conflicts: number[];
        refused: [number, ResponderError][];
        actions: TableOp[];
        rowKeys: string[];
        bytes: number;
        packAction: boolean;
        full: boolean;
        slots: Map<string, Slot>;
        /** The pack's `exp` once written. */
        exp: number;
        sides: Map<string, Side | undefined>;
        packed: { index: number; ver: string }[];
        plain: Map<number, Prepared>;
    } {
        const conflicts: number[] = [];
        const refused: [number, ResponderError][] = [];
        const props: [string, PropertyValue][] = [];
        const slots = new Map<string, Slot>();
        const sides = new Map<string, Side | undefined>();
        const sideActions: TableOp[] = [];
        const rowKeys = [packRk];
        const packed: { index: number; ver: string }[] = [];
        const plainWrites: Prepared[] = [];
        let bytes = 400;
        let count = pack.slots.size;
        let full = pack.full;
        let markFull = false;
        for (const i of indexes) {
            const w = writes[i] as StateWrite;
            const name = slotOf(w.key.row);
            const slot = pack.slots.get(name);
            const mine = w.etag === undefined ? undefined : w.etag.startsWith('~') ? w.etag : 'plain';
            if (slot !== undefined ? mine !== `~${slot.ver}` : mine !== undefined && mine !== 'plain') {
                conflicts.push(i);
                continue;
            }
            if (slot === undefined && (mine === 'plain' || full || count >= MAX_PACK_KEYS)) {
                // Not in the pack, and no room (or already an entity of its own): an entity of its own. A pack is
                // marked full in the same transaction as the first key that overflows it, and stays full.
                const p = this.prepare(w, i);
                if (p instanceof ResponderError) {
                    refused.push([i, p]);
                    continue;
                }
                if (!full) markFull = full = true;
                plainWrites.push(p);
                continue;
            }
            const ver = this.nextVersion();
            const json = JSON.stringify(w.value) ?? 'null';
            const row = JSON.stringify(w.key.row);
            const inline = `[${row},"${ver}",${w.expiresMs},${json}]`;
            const sideRkOf = (): string => `${SIDE_PREFIX}${this.keysOf(w.key).rowKey}`;
            if (
                inline.length <= PACK_INLINE_CHARS &&
                // A character takes at most 6 bytes of the JSON body (a control character escaped): count only beyond.
                (6 * inline.length <= PACK_INLINE_BODY_BYTES ||
                    Buffer.byteLength(JSON.stringify(inline)) <= PACK_INLINE_BODY_BYTES)
            ) {
                props.push([name, inline]);
                bytes += 2 * inline.length + 40;
                if (slot?.side === true) {
                    const sideRk = sideRkOf();
                    sideActions.push({ kind: 'delete', partitionKey: pk, rowKey: sideRk });
                    rowKeys.push(sideRk);
                    sides.set(sideRk, undefined);
                }
                slots.set(name, { row: w.key.row, ver, exp: w.expiresMs, value: w.value, side: false });
            } else {
                // Too large for the pack: a side entity, written (or replaced) in the same transaction.
                const sideRk = sideRkOf();
                const parts = splitValue(json);
                const problem = oversize(parts, pk, sideRk);
                if (problem !== undefined) {
                    refused.push([i, tooLarge(w.key, json.length, problem)]);
                    continue;
                }
                const sideProps: [string, PropertyValue][] = [
                    ['n', ver],
                    ['v', parts[0] as string],
                ];
                for (let k = 1; k < parts.length; k++) sideProps.push([`v${k}`, parts[k] as string]);
                sideActions.push({ kind: 'upsert', partitionKey: pk, rowKey: sideRk, props: sideProps });
                rowKeys.push(sideRk);
                sides.set(sideRk, { ver, value: w.value });
                props.push([name, `[${row},"${ver}",${w.expiresMs}]`]);
                bytes += 2 * json.length + 2 * sideRk.length + 400;
                slots.set(name, { row: w.key.row, ver, exp: w.expiresMs, value: undefined, side: true });
            }
            if (slot === undefined) count++;
            packed.push({ index: i, ver });
        }
        const actions: TableOp[] = [];
        const packAction = packed.length > 0 || markFull;
        // The pack's `exp` is the earliest expiry of its keys: the maintenance sweep prunes them from there. The keys
        // not written keep theirs: unless a key written held the pack's earliest, that is the pack's known `exp`, and
        // only then are the other keys walked.
        let exp = Number.POSITIVE_INFINITY;
        let walk = false;
        for (const [name, s] of slots) {
            if (s.exp < exp) exp = s.exp;
            const old = pack.slots.get(name);
            if (old !== undefined && old.exp <= pack.exp) walk = true;
        }
        if (!walk) exp = Math.min(exp, pack.exp);
        else for (const [name, s] of pack.slots) if (s.exp < exp && !slots.has(name)) exp = s.exp;
        if (packAction) {
            if (Number.isFinite(exp)) props.push(['exp', exp]);
            if (markFull) props.push(['full', true]);
            if (pack.etag === undefined) {
                // The pack's own partition (a vault): what a scan of the packs reads the keys' partition from.
                props.push(['pp', (writes[indexes[0] as number] as StateWrite).key.partition]);
                actions.push({ kind: 'insert', partitionKey: pk, rowKey: packRk, props });
            } else actions.push({ kind: 'merge', partitionKey: pk, rowKey: packRk, props, etag: pack.etag });
        }
        actions.push(...sideActions);
        const plain = new Map<number, Prepared>();
        for (const p of plainWrites) {
            plain.set(actions.length, p);
            actions.push(plainOp(p));
            rowKeys.push(p.rowKey);
            bytes += p.bytes;
        }
        return { conflicts, refused, actions, rowKeys, bytes, packAction, full, slots, exp, sides, packed, plain };
    }

    /**
     * Sends the units of one shard: when no two of them touch one entity (always, for the distinct keys of one round of
     * {@link putMany}), as up to {@link TRANSACTIONS_IN_FLIGHT} transactions at once, each lane of units filled up to
     * what one transaction takes; otherwise one transaction after another. Each transaction is a compare-and-set of
     * its own, whatever the order: side by side, a cold estate's batch (hundreds of packs a shard) waits for one round
     * trip instead of one per 100 entities.
     */
    private async sendUnits(units: readonly Unit[]): Promise<void> {
        const lanes: Unit[][] = [];
        const rows = new Set<string>();
        let lane: Unit[] = [];
        let actions = 0;
        let bytes = 0;
        for (const u of units) {
            for (const r of u.rowKeys) {
                if (rows.has(r)) return this.sendSerially(units);
                rows.add(r);
            }
            if (
                lane.length > 0 &&
                (actions + u.actions.length > MAX_TRANSACTION_ENTITIES || bytes + u.bytes > MAX_TRANSACTION_BYTES)
            ) {
                lanes.push(lane);
                lane = [];
                actions = 0;
                bytes = 0;
            }
            lane.push(u);
            actions += u.actions.length;
            bytes += u.bytes;
        }
        if (lane.length > 0) lanes.push(lane);
        if (lanes.length <= 1) return this.sendSerially(units);
        // A lane that fails stops the others from starting more, and the call fails once those in flight have ended.
        await eachBounded(lanes, TRANSACTIONS_IN_FLIGHT, (l) => this.sendSerially(l));
    }

    /**
     * Sends units as entity-group transactions of up to 100 entities and 3.5 MB, one after another. The service applies
     * a transaction whole or not at all, and names its first failing operation (`<index>:<message>`): that unit
     * decides what to send instead (nothing, for a plain write's conflict), and the rest goes again without it.
     */
    private async sendSerially(units: readonly Unit[]): Promise<void> {
        let queue = [...units];
        const alone = new Set<Unit>();
        while (queue.length > 0) {
            const chunk: Unit[] = [];
            const rest: Unit[] = [];
            let actions = 0;
            let bytes = 0;
            const rows = new Set<string>();
            for (const u of queue) {
                const fits =
                    chunk.length === 0 ||
                    (!alone.has(u) &&
                        !alone.has(chunk[0] as Unit) &&
                        actions + u.actions.length <= MAX_TRANSACTION_ENTITIES &&
                        bytes + u.bytes <= MAX_TRANSACTION_BYTES &&
                        u.rowKeys.every((r) => !rows.has(r)));
                if (!fits || rest.length > 0) {
                    rest.push(u);
                    continue;
                }
                chunk.push(u);
                actions += u.actions.length;
                bytes += u.bytes;
                for (const r of u.rowKeys) rows.add(r);
            }
            const all = chunk.flatMap((u) => u.actions);
            if (all.length === 1) {
                // One entity: a plain request rather than a transaction of one (fewer bytes; its errors are the
                // entity's own).
                const u = chunk[0] as Unit;
                let etag: string | undefined;
                try {
                    etag = await sendOperation(this.table, all[0] as TableOp, this.deadline());
                } catch (err) {
                    const status = statusOf(err);
                    const instead = await u.failed(0, status ?? 0, err);
                    queue = [...(instead === undefined ? [] : [instead]), ...rest];
                    continue;
                }
                u.done([etag]);
                queue = rest;
                continue;
            }
            try {
                const r = await submitTransaction(this.table, all, this.deadline());
                const subs = r.etags;
                let at = 0;
                for (const u of chunk) {
                    const etags = u.actions.map((_, k) => subs[at + k]);
                    at += u.actions.length;
                    u.done(etags);
                }
                queue = rest;
            } catch (err) {
                const status = statusOf(err);
                if (status !== 409 && status !== 412 && status !== 404) {
                    throw unavailable(
                        `writing ${all.length} entities (${chunk
                            .slice(0, 3)
                            .map((u) => u.rowKeys[0])
                            .join(', ')}${chunk.length > 3 ? ' ...' : ''} in ${chunk[0]?.partitionKey ?? ''})`,
                        err,
                    );
                }
                let failed = failedOperation(err);
                if (failed === undefined || failed >= all.length) {
                    if (chunk.length > 1) {
                        // The service did not say which: each unit on its own.
                        for (const u of chunk) alone.add(u);
                        queue = [...chunk, ...rest];
                        continue;
                    }
                    failed = 0;
                }
                let at = 0;
                let culprit = chunk[0] as Unit;
                for (const u of chunk) {
                    if (failed < at + u.actions.length) {
                        culprit = u;
                        break;
                    }
                    at += u.actions.length;
                }
                const instead = await culprit.failed(Math.min(failed - at, culprit.actions.length - 1), status, err);
                queue = [...chunk.filter((u) => u !== culprit), ...(instead === undefined ? [] : [instead]), ...rest];
            }
        }
    }

    async scan(rowPrefix: string, limit: number): Promise<{ key: StateKey; value: unknown }[]> {
        await this.ensureTable();
        const from = encodeRowPart(rowPrefix);
        // Every RowKey whose row has the prefix sorts between the prefix and the prefix with its last character
        // incremented, in every shard: one range query over the table.
        const to = `${from.slice(0, -1)}${String.fromCharCode(from.charCodeAt(from.length - 1) + 1)}`;
        const out: { key: StateKey; value: unknown }[] = [];
        try {
            for await (const e of this.table.listEntities<StateEntity>({
                queryOptions: { filter: `RowKey ge ${quote(from)} and RowKey lt ${quote(to)}` },
                abortSignal: AbortSignal.timeout(this.callTimeoutMs * 10),
            })) {
                if (out.length >= limit) break;
                const key = stateKeyOf(e);
                // A shortened RowKey may match the prefix only in its encoded beginning: check the row itself.
                if (key === undefined || !key.row.startsWith(rowPrefix)) continue;
                out.push({ key, value: JSON.parse(joinValue(e)) as unknown });
            }
            if (out.length < limit && packsMayHold(rowPrefix)) await this.scanPacks(rowPrefix, limit, out);
        } catch (err) {
            if (err instanceof ResponderError) throw err;
            throw unavailable(`scanning ${rowPrefix}*`, err);
        }
        return out;
    }

    /** The packed keys whose row starts with the prefix: a query of every pack (one per vault). */
    private async scanPacks(rowPrefix: string, limit: number, out: { key: StateKey; value: unknown }[]): Promise<void> {
        // A prefix only rows of one per vault can have (`heartbeat`): only their properties are asked for, not the
        // whole packs (a vault's baselines and windows).
        let select: string[] | undefined;
        if (![...PACKED_CLASSES].some((c) => `${c}|`.startsWith(rowPrefix) || rowPrefix.startsWith(`${c}|`))) {
            select = ['PartitionKey', 'RowKey', 'pp'];
            for (const row of PACKED_SINGLETONS) if (row.startsWith(rowPrefix)) select.push(slotOf(row));
        }
        for await (const e of this.table.listEntities<Record<string, unknown>>({
            queryOptions: {
                filter: `RowKey ge ${quote(PACK_PREFIX)} and RowKey lt ${quote('~v}')}`,
                ...(select === undefined ? {} : { select }),
            },
            abortSignal: AbortSignal.timeout(this.callTimeoutMs * 10),
        })) {
            const partition = e.pp;
            if (typeof partition !== 'string' || typeof e.partitionKey !== 'string') continue;
            for (const slot of decodePack(e).slots.values()) {
                if (out.length >= limit) return;
                if (!slot.row.startsWith(rowPrefix)) continue;
                const key = stateKey(partition, slot.row);
                let value = slot.value;
                if (slot.side) {
                    const found = await this.readPacked(key, e.partitionKey, this.keysOf(key).rowKey, () =>
                        Promise.resolve(decodePack(e)),
                    );
                    if (found === undefined || found === 'plain') continue;
                    value = found.value;
                }
                out.push({ key, value });
            }
        }
    }

    /**
     * Removes the keys of a pack that expired before `beforeMs`: one transaction on the pack's ETag (Replace with the
     * keys left, or a delete when none is left and the pack is not full) and the side entities of the removed keys.
     * Returns the keys removed (0: the pack changed meanwhile, or nothing had expired after all).
     */
    private async prunePack(partitionKey: string, packRk: string, beforeMs: number): Promise<number> {
        let e: Record<string, unknown>;
        try {
            e = await this.table.getEntity<Record<string, unknown>>(partitionKey, packRk, {
                abortSignal: this.deadline(),
            });
        } catch (err) {
            if (statusOf(err) === 404) return 0;
            throw unavailable(`reading pack ${partitionKey}/${packRk}`, err);
        }
        const pack = decodePack(e);
        if (pack.etag === undefined) return 0;
        const actions: TableOp[] = [];
        const keep: [string, PropertyValue][] = [];
        if (typeof e.pp === 'string') keep.push(['pp', e.pp]);
        if (pack.full) keep.push(['full', true]);
        let removed = 0;
        let left = 0;
        let exp = Number.POSITIVE_INFINITY;
        for (const [name, slot] of pack.slots) {
            if (slot.exp < beforeMs) {
                removed++;
                if (slot.side && typeof e.pp === 'string') {
                    const { rowKey } = this.keysOf(stateKey(e.pp, slot.row));
                    actions.push({ kind: 'delete', partitionKey, rowKey: `${SIDE_PREFIX}${rowKey}` });
                }
                continue;
            }
            left++;
            keep.push([name, e[name] as string]);
            exp = Math.min(exp, slot.exp);
        }
        if (removed === 0) return 0;
        if (Number.isFinite(exp)) keep.push(['exp', exp]);
        actions.unshift({ kind: 'replace', partitionKey, rowKey: packRk, props: keep, etag: pack.etag });
        let replaced = false;
        try {
            let etag: string | undefined;
            for (let i = 0; i < actions.length; i += MAX_TRANSACTION_ENTITIES) {
                // The pack first, on its ETag: a pack changed meanwhile fails the first transaction, and nothing is lost.
                const r = await submitTransaction(
                    this.table,
                    actions.slice(i, i + MAX_TRANSACTION_ENTITIES),
                    this.deadline(),
                );
                if (i === 0) {
                    etag = r.etags[0];
                    replaced = true;
                }
            }
            // Nothing left (and never full): the empty pack goes too, unless written meanwhile.
            if (left === 0 && !pack.full && etag !== undefined)
                await this.table.deleteEntity(partitionKey, packRk, { etag, abortSignal: this.deadline() });
        } catch (err) {
            const status = statusOf(err);
            if (status !== 412 && status !== 404) throw unavailable(`pruning pack ${partitionKey}/${packRk}`, err);
        }
        this.doubt(partitionKey, packRk);
        return replaced ? removed : 0;
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
                    if (e.rowKey.startsWith(PACK_PREFIX)) {
                        // A pack: its expired keys go, the others stay.
                        const removed = await this.prunePack(e.partitionKey, e.rowKey, beforeMs);
                        if (removed > 0) deleted += removed;
                        else skipped++;
                        continue;
                    }
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
