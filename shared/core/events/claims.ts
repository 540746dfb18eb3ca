import { type JsonObject, str } from './fields';
import { StringMemo } from './stringMemo';
import type { Caller, CallerKind } from './types';

/** Identity claims by their URI names (AuditEvent `identity.claim` and Activity Log `identity.claims` use both forms). */
export const CLAIM_OID = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
export const CLAIM_UPN = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn';
export const CLAIM_APPID = 'http://schemas.microsoft.com/identity/claims/appid';

/** Strips a port from `a.b.c.d:port` and `[v6]:port`; bare IPv6 addresses keep their colons. */
export function stripPort(ip: string): string {
    if (ip.startsWith('[')) {
        const end = ip.indexOf(']');
        return end > 0 ? ip.slice(1, end) : ip;
    }
    const colon = ip.indexOf(':');
    if (colon > 0 && ip.indexOf(':', colon + 1) === -1 && ip.indexOf('.') > 0) return ip.slice(0, colon);
    return ip;
}

/**
 * Lower-cased identity ids, memoized (see {@link StringMemo}): a stream names few principals in many records, so each
 * keeps one lower-case string (its hash computed once, for every map the rules key by it) instead of a fresh copy per
 * record. Bounded, deterministic: the result is always `id.toLowerCase()`.
 */
export class LowerIds {
    private readonly ids = new StringMemo((s: string) => s.toLowerCase(), 16_384);

    of(value: unknown): string | undefined {
        return typeof value === 'string' && value.length > 0 ? this.ids.get(value) : undefined;
    }
}

/** The caller of a record from its identity claims, its caller IP and its trusted service. */
export function callerOf(
    claims: JsonObject | undefined,
    callerIp: unknown,
    trustedServiceRaw: unknown,
    ids?: LowerIds,
): Caller {
    let objectId: string | undefined;
    let upn: string | undefined;
    let appId: string | undefined;
    let mirid: string | undefined;
    let ipClaim: string | undefined;
    if (claims !== undefined) {
        // One pass over the claims, each name compared with the ten we read, rather than ten reads by name: claim
        // objects come in many shapes (short names on data-plane records, URI names on control-plane ones, more or
        // fewer claims per identity kind), so each read by name was a slow lookup, and most of them miss. The choice
        // between the names of one claim is the same as before: the first of `a ?? b ?? c` that is not null.
        let oid: unknown, oidUri: unknown, upnShort: unknown, upnUri: unknown, uniqueName: unknown;
        let appid: unknown, appidUri: unknown, azp: unknown, xmsMirid: unknown, ipaddr: unknown;
        for (const name in claims) {
            switch (name) {
                case 'oid':
                    oid = claims[name];
                    break;
                case CLAIM_OID:
                    oidUri = claims[name];
                    break;
                case 'upn':
                    upnShort = claims[name];
                    break;
                case CLAIM_UPN:
                    upnUri = claims[name];
                    break;
                case 'unique_name':
                    uniqueName = claims[name];
                    break;
                case 'appid':
                    appid = claims[name];
                    break;
                case CLAIM_APPID:
                    appidUri = claims[name];
                    break;
                case 'azp':
                    azp = claims[name];
                    break;
                case 'xms_mirid':
                    xmsMirid = claims[name];
                    break;
                case 'ipaddr':
                    ipaddr = claims[name];
                    break;
                default:
                    break;
            }
        }
        objectId = lowerId(oid ?? oidUri, ids);
        upn = str(upnShort ?? upnUri ?? uniqueName);
        appId = lowerId(appid ?? appidUri ?? azp, ids);
        mirid = lowerId(xmsMirid, ids);
        ipClaim = str(ipaddr);
    }
    const ipRaw = str(callerIp) ?? ipClaim;
    const trustedService = str(trustedServiceRaw);
    let kind: CallerKind;
    if (mirid !== undefined) kind = 'managed-identity';
    else if (upn !== undefined) kind = 'user';
    else if (objectId !== undefined || appId !== undefined) kind = 'service-principal';
    else if (trustedService !== undefined) kind = 'trusted-service';
    else kind = 'anonymous';
    return {
        objectId,
        upn,
        appId,
        managedIdentityResourceId: mirid,
        ipAddress: ipRaw === undefined ? undefined : stripPort(ipRaw),
        trustedService,
        kind,
    };
}

function lowerId(value: unknown, ids: LowerIds | undefined): string | undefined {
    if (ids !== undefined) return ids.of(value);
    return typeof value === 'string' && value.length > 0 ? value.toLowerCase() : undefined;
}
