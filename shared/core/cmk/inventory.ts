/**
 * The live customer-managed key inventory: for every (vault, key, version) used in key operations, which services use
 * it (managed identity resource id, trusted service, or application id), first seen, last success, last failure and
 * counts. Kept from the audit stream, one state entry per vault and key, bounded. Pure: events in, state out.
 */
import type { AuditEvent } from '../events/types';
import { boundedId, MAX_TEXT_CHARS } from '../state/limits';
import { KeyMemo, type StateKey } from '../state/store';

/** Key operations that show a service depends on a key version. */
export const KEY_USE_OPERATIONS: readonly string[] = [
    'KeyWrap',
    'KeyUnwrap',
    'KeyEncrypt',
    'KeyDecrypt',
    'KeySign',
    'KeyVerify',
    'KeyGet',
];
/** Operation names as recorded (the engine dispatches rules on them as recorded too). */
const KEY_USE = new Set(KEY_USE_OPERATIONS);

export interface KeyRef {
    readonly name: string;
    readonly version: string;
}

const KEY_REFS = new Map<string, KeyRef>();

export type ServiceKind = 'managed-identity' | 'trusted-service' | 'application';

export interface KeyUse {
    readonly kind: ServiceKind;
    /** Managed identity resource id (lower-case), trusted service name, or application id. */
    readonly id: string;
    readonly firstSeenMs: number;
    readonly lastSuccessMs?: number;
    readonly lastFailure?: {
        readonly timeMs: number;
        readonly status: number | undefined;
        readonly description?: string;
    };
    /** Minutes (of event time) with at least one successful use, since first seen. */
    readonly successMinutes: number;
    /** Minutes with at least one refused use. */
    readonly failureMinutes: number;
}

export interface VersionUse {
    readonly version: string;
    readonly services: readonly KeyUse[];
}

export interface KeyInventory {
    readonly vault: string;
    readonly vaultId: string;
    readonly key: string;
    /** The versions used ('' when the records named none), each with the services that used it. */
    readonly versions: readonly VersionUse[];
    readonly lastUsedMs: number;
}

const MAX_VERSIONS = 20;
const MAX_SERVICES = 50;
/**
 * Service entries of one key, all versions together (the least recently active go first). With ids bounded to 512
 * characters and failure descriptions to 300, the inventory of a key stays under 250,000 characters of JSON.
 */
const MAX_USES = 200;
const MAX_SERVICE_ID_CHARS = MAX_TEXT_CHARS / 2;
const MINUTE_MS = 60_000;

const INVENTORY_KEYS = new KeyMemo('cmk|');

/** The state key of a vault's key in the inventory (memoized: it is needed on every key use). */
export function inventoryKeyOf(vault: string, key: string): StateKey {
    return INVENTORY_KEYS.get(vault, key.toLowerCase());
}

/** The key a key-operation event addresses, when it is one. */
export function keyOf(e: AuditEvent): KeyRef | undefined {
    const t = e.target;
    if (t === undefined || t.kind !== 'key' || t.deleted || t.name === undefined) return undefined;
    // Memoized by URI: the same key versions come back on every use (bounded, deterministic).
    let ref = KEY_REFS.get(t.uri);
    if (ref === undefined) {
        if (KEY_REFS.size >= 1_024) KEY_REFS.clear();
        ref = { name: boundedId(t.name.toLowerCase()), version: boundedId((t.version ?? '').toLowerCase()) };
        KEY_REFS.set(t.uri, ref);
    }
    return ref;
}

const SERVICES: Record<ServiceKind, Map<string, { readonly kind: ServiceKind; readonly id: string }>> = {
    'managed-identity': new Map(),
    'trusted-service': new Map(),
    application: new Map(),
};

/** One shared object per service (the same services come back on every key use; bounded). */
function service(kind: ServiceKind, id: string): { readonly kind: ServiceKind; readonly id: string } {
    const byId = SERVICES[kind];
    let s = byId.get(id);
    if (s === undefined) {
        if (byId.size >= 10_000) byId.clear();
        s = { kind, id: id.length > MAX_SERVICE_ID_CHARS ? boundedId(id, MAX_SERVICE_ID_CHARS) : id };
        byId.set(id, s);
    }
    return s;
}

/**
 * Empties this module's memos of key references and services (the key memo is emptied with the other key memos by
 * `resetCachesForBenchmark` in state/store), so that a benchmark round starts as cold as a fresh process. Changes no
 * result; only the benchmark calls it, between rounds.
 */
export function resetCachesForBenchmark(): void {
    KEY_REFS.clear();
    for (const byId of Object.values(SERVICES)) byId.clear();
}

/** The service behind a key operation; people are not services (their key use is not a dependency). */
export function serviceOf(e: AuditEvent): { readonly kind: ServiceKind; readonly id: string } | undefined {
    const c = e.caller;
    if (c.managedIdentityResourceId !== undefined) return service('managed-identity', c.managedIdentityResourceId);
    if (c.trustedService !== undefined) return service('trusted-service', c.trustedService);
    if (c.upn === undefined && c.appId !== undefined && c.kind !== 'user') return service('application', c.appId);
    return undefined;
}

/** Whether the event is a service using a key (the inventory counts it). */
export function isKeyUse(e: AuditEvent): boolean {
    return KEY_USE.has(e.operation) && keyOf(e) !== undefined && serviceOf(e) !== undefined;
}

/** `list` with the element at `index` (or a new one at the end, for -1) set to `value`, the `max` most recent kept. */
function withElement<T>(list: readonly T[], index: number, value: T, max: number, recency: (v: T) => number): T[] {
    const out = list.slice();
    if (index >= 0) out[index] = value;
    else out.push(value);
    return out.length <= max ? out : out.sort((a, b) => recency(b) - recency(a)).slice(0, max);
}

/** The versions with at most {@link MAX_USES} service entries in all: the most recently active ones. */
function capUses(versions: VersionUse[]): VersionUse[] {
    let total = 0;
    for (const v of versions) total += v.services.length;
    if (total <= MAX_USES) return versions;
    const all = versions.flatMap((v) => v.services).sort((a, b) => lastActivity(b) - lastActivity(a));
    const keep = new Set(all.slice(0, MAX_USES));
    const out: VersionUse[] = [];
    for (const v of versions) {
        const services = v.services.filter((u) => keep.has(u));
        if (services.length > 0) out.push(services.length === v.services.length ? v : { ...v, services });
    }
    return out;
}

function lastActivity(u: KeyUse): number {
    return Math.max(u.lastSuccessMs ?? 0, u.lastFailure?.timeMs ?? 0, u.firstSeenMs);
}

/**
 * Counts one key operation. Idempotent by construction, with no list of record ids to keep: last success and last
 * failure only move forward, and counts are of minutes with a use, counted when a use falls in a later minute than the
 * last one counted. A redelivered record, or another use within the same minute, returns the state unchanged (the same
 * object: nothing to write), which is also what keeps a busy key cheap. A late record of an earlier minute updates
 * nothing but first seen.
 */
export function recordKeyUse(state: KeyInventory | undefined, e: AuditEvent): KeyInventory | undefined {
    const key = keyOf(e);
    const service = serviceOf(e);
    if (key === undefined || service === undefined || !KEY_USE.has(e.operation)) return state;
    const ok = e.outcome === 'success';
    const failed = e.outcome === 'forbidden' || e.outcome === 'unauthorized' || e.outcome === 'client-error';
    if (!ok && !failed) return state;
    const t = e.timeMs;
    const versionList = state?.versions ?? [];
    const vi = versionList.findIndex((v) => v.version === key.version);
    const serviceList = vi < 0 ? [] : (versionList[vi] as VersionUse).services;
    const si = serviceList.findIndex((u) => u.id === service.id && u.kind === service.kind);
    const prior = si < 0 ? undefined : serviceList[si];
    const lastMs = ok ? prior?.lastSuccessMs : prior?.lastFailure?.timeMs;
    const counts = lastMs === undefined || Math.floor(t / MINUTE_MS) > Math.floor(lastMs / MINUTE_MS);
    if (prior !== undefined && !counts && t >= prior.firstSeenMs) return state;
    const use: KeyUse = {
        kind: service.kind,
        id: service.id,
        firstSeenMs: Math.min(prior?.firstSeenMs ?? t, t),
        successMinutes: (prior?.successMinutes ?? 0) + (ok && counts ? 1 : 0),
        failureMinutes: (prior?.failureMinutes ?? 0) + (failed && counts ? 1 : 0),
        ...(ok && counts
            ? { lastSuccessMs: t }
            : prior?.lastSuccessMs === undefined
              ? {}
              : { lastSuccessMs: prior.lastSuccessMs }),
        ...(failed && counts
            ? {
                  lastFailure: {
                      timeMs: t,
                      status: e.httpStatus,
                      ...(e.resultDescription === undefined
                          ? {}
                          : { description: e.resultDescription.split('\n')[0]?.slice(0, 300) ?? '' }),
                  },
              }
            : prior?.lastFailure === undefined
              ? {}
              : { lastFailure: prior.lastFailure }),
    };
    const services = withElement(serviceList, si, use, MAX_SERVICES, lastActivity);
    const versions = capUses(
        withElement(versionList, vi, { version: key.version, services }, MAX_VERSIONS, (v) =>
            Math.max(0, ...v.services.map(lastActivity)),
        ),
    );
    return {
        vault: e.vault.name,
        vaultId: e.vault.resourceId,
        key: key.name,
        versions,
        lastUsedMs: Math.max(state?.lastUsedMs ?? 0, t),
    };
}

/** One service that uses a key version, as reports and alerts show it. */
export interface Dependency {
    readonly version: string;
    readonly kind: ServiceKind;
    readonly id: string;
    /** A short name: the resource name of a managed identity, else the id. */
    readonly name: string;
    /** The resource type of a managed identity (`Microsoft.Storage/storageAccounts`), when known. */
    readonly type?: string;
    readonly lastSuccessMs?: number;
    readonly lastFailure?: KeyUse['lastFailure'];
    readonly successMinutes: number;
    readonly failureMinutes: number;
}

const PROVIDER = /\/providers\/([^/]+\/[^/]+)\/([^/]+)$/;

export function dependencyOf(version: string, u: KeyUse): Dependency {
    const m = u.kind === 'managed-identity' ? PROVIDER.exec(u.id) : null;
    return {
        version,
        kind: u.kind,
        id: u.id,
        name: m?.[2] ?? u.id,
        ...(m?.[1] === undefined ? {} : { type: m[1] }),
        ...(u.lastSuccessMs === undefined ? {} : { lastSuccessMs: u.lastSuccessMs }),
        ...(u.lastFailure === undefined ? {} : { lastFailure: u.lastFailure }),
        successMinutes: u.successMinutes,
        failureMinutes: u.failureMinutes,
    };
}

/**
 * The services that used the key (one version, or every version when `version` is undefined) successfully since
 * `sinceMs`: what stops working when that key version goes away.
 */
export function dependentsOf(
    state: KeyInventory | undefined,
    version: string | undefined,
    sinceMs: number,
): Dependency[] {
    const out: Dependency[] = [];
    for (const { version: v, services } of state?.versions ?? []) {
        if (version !== undefined && v !== version && v !== '') continue;
        for (const u of services)
            if (u.lastSuccessMs !== undefined && u.lastSuccessMs >= sinceMs) out.push(dependencyOf(v, u));
    }
    return out.sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

/** `stcustdataprod (Microsoft.Storage/storageAccounts)`, `app 1234...`, or the trusted service. */
export function describeDependency(d: Dependency): string {
    if (d.kind === 'managed-identity') return d.type === undefined ? d.name : `${d.name} (${d.type})`;
    if (d.kind === 'application') return `app ${d.id}`;
    return `trusted service ${d.id}`;
}
