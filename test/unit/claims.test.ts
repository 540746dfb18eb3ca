import { CLAIM_APPID, CLAIM_OID, CLAIM_UPN, callerOf, LowerIds, stripPort } from '../../shared/core/events/claims';
import { isObject, type JsonObject, str } from '../../shared/core/events/fields';
import type { Caller, CallerKind } from '../../shared/core/events/types';

/**
 * The caller as the claims were read before `callerOf` read them in one pass: each claim by its names, the first of
 * `a ?? b ?? c` that is not null. The identity of a caller decides protected principals, loop prevention and
 * baselines, so the one-pass reader must give exactly this for every shape of claims.
 */
function byName(claims: JsonObject | undefined, callerIp: unknown, trustedServiceRaw: unknown): Caller {
    const lower = (v: unknown): string | undefined =>
        typeof v === 'string' && v.length > 0 ? v.toLowerCase() : undefined;
    let objectId: string | undefined;
    let upn: string | undefined;
    let appId: string | undefined;
    let mirid: string | undefined;
    let ipClaim: string | undefined;
    if (claims !== undefined) {
        objectId = lower(claims.oid ?? claims[CLAIM_OID]);
        upn = str(claims.upn ?? claims[CLAIM_UPN] ?? claims.unique_name);
        appId = lower(claims.appid ?? claims[CLAIM_APPID] ?? claims.azp);
        mirid = lower(claims.xms_mirid);
        ipClaim = str(claims.ipaddr);
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

const ABSENT = Symbol('absent');
type Slot = unknown;
/** The values a claim can take in a record: absent, null, empty, a string in mixed case, not a string. */
const VALUES: readonly Slot[] = [ABSENT, null, '', 'Mixed-Case-Value', 42, { nested: 'x' }];

/** The claims as JSON.parse gives them (the only way records reach the reader), in the given name order. */
function claimsOf(entries: readonly (readonly [string, Slot])[]): JsonObject {
    // Written as JSON text, so that a "__proto__" claim is an own property, as JSON.parse makes it.
    const text = entries
        .filter(([, value]) => value !== ABSENT)
        .map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value)}`)
        .join(',');
    const parsed: unknown = JSON.parse(`{${text}}`);
    if (!isObject(parsed)) throw new Error('claims not an object');
    return parsed;
}

/** Every combination of VALUES over `names`. */
function* combinations(names: readonly string[]): Generator<[string, Slot][]> {
    const n = names.length;
    const idx = new Array<number>(n).fill(0);
    for (;;) {
        yield names.map((name, i) => [name, VALUES[idx[i] as number]] as [string, Slot]);
        let k = 0;
        while (k < n && (idx[k] = ((idx[k] as number) + 1) % VALUES.length) === 0) k++;
        if (k === n) return;
    }
}

const GROUPS: readonly (readonly string[])[] = [
    ['oid', CLAIM_OID],
    ['upn', CLAIM_UPN, 'unique_name'],
    ['appid', CLAIM_APPID, 'azp'],
    ['xms_mirid'],
    ['ipaddr'],
];
/** Claims the reader ignores, present in real records (and names that differ from ours only by case). */
const OTHERS: readonly (readonly [string, Slot])[] = [
    ['appidacr', '2'],
    ['xms_az_nwperimid', []],
    ['OID', 'not-the-oid'],
    ['http://schemas.microsoft.com/identity/claims/tenantid', 'tenant'],
    ['__proto__', { oid: 'from-proto' }],
];

/** One memo for all cases, as the normalizer keeps one for its stream. */
const ids = new LowerIds();

function expectSame(claims: JsonObject | undefined, ip: unknown, trusted: unknown): void {
    const expected = byName(claims, ip, trusted);
    expect(callerOf(claims, ip, trusted)).toEqual(expected);
    expect(callerOf(claims, ip, trusted, ids)).toEqual(expected);
}

describe('callerOf reads the identity claims in one pass, as it read them by name', () => {
    it('gives the same caller for every combination of each claim group, in either name order', () => {
        let cases = 0;
        for (const group of GROUPS)
            for (const combo of combinations(group))
                for (const entries of [combo, [...combo].reverse()])
                    for (const extra of [[], OTHERS]) {
                        expectSame(claimsOf([...extra, ...entries]), undefined, undefined);
                        cases++;
                    }
        expect(cases).toBeGreaterThan(1000);
    });

    it('gives the same caller for seeded random mixes of every claim, caller IP and trusted service', () => {
        const names = GROUPS.flat();
        let seed = 0x2545f491;
        const next = (n: number): number => {
            seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
            return (seed >>> 8) % n;
        };
        const ips: unknown[] = [undefined, '', '10.0.0.1:443', '[2001:db8::1]:80', 7];
        const services: unknown[] = [undefined, '', 'AzureBackup', false];
        for (let c = 0; c < 3000; c++) {
            const entries: [string, Slot][] = names.map((name) => [name, VALUES[next(VALUES.length)]]);
            for (let i = entries.length - 1; i > 0; i--) {
                const j = next(i + 1);
                [entries[i], entries[j]] = [entries[j] as [string, Slot], entries[i] as [string, Slot]];
            }
            if (next(2) === 1) for (const [name, value] of OTHERS) entries.push([name, value]);
            expectSame(claimsOf(entries), ips[next(ips.length)], services[next(services.length)]);
        }
    });

    it('reads the short name before the URI name, and null as missing', () => {
        const c = callerOf(
            claimsOf([
                [CLAIM_OID, 'URI-OID'],
                ['oid', 'Short-OID'],
                ['upn', null],
                [CLAIM_UPN, 'Uri@Contoso.com'],
                ['appid', 5],
                ['azp', 'AZP'],
            ]),
            undefined,
            undefined,
        );
        expect(c).toMatchObject({ objectId: 'short-oid', upn: 'Uri@Contoso.com', appId: undefined, kind: 'user' });
    });

    it('gives the same caller without claims', () => {
        expectSame(undefined, '1.2.3.4:5', undefined);
        expectSame(undefined, undefined, 'AzureBackup');
        expectSame(claimsOf([]), undefined, undefined);
    });
});
