/**
 * The live customer-managed key inventory: for every (vault, key, version) used in key operations, which services use
 * it (managed identity resource id, trusted service, or application id), first seen, last success, last failure and
 * counts. Kept from the audit stream, one state entry per vault and key, bounded. Pure: events in, state out.
 */
import type { AuditEvent } from '../events/types';
import { recordIdOf } from '../events/identity';
import { stateKey, type StateKey } from '../state/store';

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
const KEY_USE = new Set(KEY_USE_OPERATIONS.map((o) => o.toLowerCase()));

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
    readonly successes: number;
    readonly failures: number;
}

export interface KeyInventory {
    readonly vault: string;
    readonly vaultId: string;
    readonly key: string;
    /** By version ('' when the records named none), then by `<kind>:<id>`. */
    readonly versions: Readonly<Record<string, Readonly<Record<string, KeyUse>>>>;
    readonly lastUsedMs: number;
    /** Identities of the latest records counted: a redelivered record is not counted twice. */
    readonly recent: readonly string[];
}

const MAX_VERSIONS = 20;
const MAX_SERVICES = 50;
const MAX_RECENT = 200;

/** The state key of a vault's key in the inventory. */
export function inventoryKeyOf(vault: string, key: string): StateKey {
    return stateKey(vault, `cmk|${key.toLowerCase()}`);
}

/** The key a key-operation event addresses, when it is one. */
export function keyOf(e: AuditEvent): { readonly name: string; readonly version: string } | undefined {
    const t = e.target;
    if (t === undefined || t.kind !== 'key' || t.deleted || t.name === undefined) return undefined;
    return { name: t.name.toLowerCase(), version: (t.version ?? '').toLowerCase() };
}

/** The service behind a key operation; people are not services (their key use is not a dependency). */
export function serviceOf(e: AuditEvent): { readonly kind: ServiceKind; readonly id: string } | undefined {
    const c = e.caller;
    if (c.managedIdentityResourceId !== undefined) return { kind: 'managed-identity', id: c.managedIdentityResourceId };
    if (c.trustedService !== undefined) return { kind: 'trusted-service', id: c.trustedService };
    if (c.upn === undefined && c.appId !== undefined && c.kind !== 'user') return { kind: 'application', id: c.appId };
    return undefined;
}

/** Whether the event is a service using a key (the inventory counts it). */
export function isKeyUse(e: AuditEvent): boolean {
    return KEY_USE.has(e.operation.toLowerCase()) && keyOf(e) !== undefined && serviceOf(e) !== undefined;
}

function bounded<T>(entries: [string, T][], max: number, recency: (v: T) => number): Record<string, T> {
    if (entries.length <= max) return Object.fromEntries(entries);
    return Object.fromEntries([...entries].sort((a, b) => recency(b[1]) - recency(a[1])).slice(0, max));
}

function lastActivity(u: KeyUse): number {
    return Math.max(u.lastSuccessMs ?? 0, u.lastFailure?.timeMs ?? 0, u.firstSeenMs);
}

/** Counts one key operation; returns the state unchanged (same object) for a record counted before. */
export function recordKeyUse(state: KeyInventory | undefined, e: AuditEvent): KeyInventory | undefined {
    const key = keyOf(e);
    const service = serviceOf(e);
    if (key === undefined || service === undefined || !KEY_USE.has(e.operation.toLowerCase())) return state;
    const rid = recordIdOf(e);
    if (state?.recent.includes(rid) === true) return state;
    const t = e.timeMs;
    const id = `${service.kind}:${service.id}`;
    const byService = state?.versions[key.version] ?? {};
    const prior = byService[id];
    const ok = e.outcome === 'success';
    const failed = e.outcome === 'forbidden' || e.outcome === 'unauthorized' || e.outcome === 'client-error';
    const use: KeyUse = {
        kind: service.kind,
        id: service.id,
        firstSeenMs: Math.min(prior?.firstSeenMs ?? t, t),
        successes: (prior?.successes ?? 0) + (ok ? 1 : 0),
        failures: (prior?.failures ?? 0) + (failed ? 1 : 0),
        ...(ok || prior?.lastSuccessMs !== undefined
            ? { lastSuccessMs: Math.max(prior?.lastSuccessMs ?? 0, ok ? t : 0) }
            : {}),
        ...(failed && t >= (prior?.lastFailure?.timeMs ?? 0)
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
    const services = bounded(Object.entries({ ...byService, [id]: use }), MAX_SERVICES, lastActivity);
    const versions = bounded(
        Object.entries({ ...(state?.versions ?? {}), [key.version]: services }),
        MAX_VERSIONS,
        (s) => Math.max(0, ...Object.values(s).map(lastActivity)),
    );
    return {
        vault: e.vault.name,
        vaultId: e.vault.resourceId,
        key: key.name,
        versions,
        lastUsedMs: Math.max(state?.lastUsedMs ?? 0, t),
        recent: [...(state?.recent ?? []), rid].slice(-MAX_RECENT),
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
    readonly successes: number;
    readonly failures: number;
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
        successes: u.successes,
        failures: u.failures,
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
    for (const [v, services] of Object.entries(state?.versions ?? {})) {
        if (version !== undefined && v !== version && v !== '') continue;
        for (const u of Object.values(services))
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
