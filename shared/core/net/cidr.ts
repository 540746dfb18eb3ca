/**
 * IPv4 and IPv6 ranges in CIDR notation, for "is this IP rule inside the approved ranges". Addresses are held as
 * BigInt so that both families share one code path.
 */
export interface IpRange {
    readonly family: 4 | 6;
    readonly first: bigint;
    readonly last: bigint;
    readonly text: string;
}

function parseV4(text: string): bigint | undefined {
    const parts = text.split('.');
    if (parts.length !== 4) return undefined;
    let n = 0n;
    for (const p of parts) {
        if (!/^\d{1,3}$/.test(p)) return undefined;
        const v = Number(p);
        if (v > 255) return undefined;
        n = (n << 8n) | BigInt(v);
    }
    return n;
}

function parseV6(text: string): bigint | undefined {
    let s = text;
    // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
    const lastColon = s.lastIndexOf(':');
    if (s.includes('.', lastColon)) {
        const v4 = parseV4(s.slice(lastColon + 1));
        if (v4 === undefined) return undefined;
        s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
    }
    const halves = s.split('::');
    if (halves.length > 2) return undefined;
    const head = halves[0] === '' ? [] : (halves[0] as string).split(':');
    const tail = halves.length === 2 ? (halves[1] === '' ? [] : (halves[1] as string).split(':')) : [];
    const missing = 8 - head.length - tail.length;
    if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
    const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
    let n = 0n;
    for (const g of groups) {
        if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
        n = (n << 16n) | BigInt(parseInt(g, 16));
    }
    return n;
}

/** Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n`; undefined when it is neither. */
export function parseRange(text: string): IpRange | undefined {
    const t = text.trim();
    const slash = t.indexOf('/');
    const addr = slash < 0 ? t : t.slice(0, slash);
    const isV6 = addr.includes(':');
    const bits = isV6 ? 128 : 32;
    const value = isV6 ? parseV6(addr) : parseV4(addr);
    if (value === undefined) return undefined;
    let prefix = bits;
    if (slash >= 0) {
        const p = t.slice(slash + 1);
        if (!/^\d{1,3}$/.test(p) || Number(p) > bits) return undefined;
        prefix = Number(p);
    }
    const hostBits = BigInt(bits - prefix);
    const mask = (1n << hostBits) - 1n;
    const first = value & ~mask;
    return { family: isV6 ? 6 : 4, first, last: first | mask, text: t };
}

/** True when every address of `inner` is inside `outer`. */
export function rangeWithin(inner: IpRange, outer: IpRange): boolean {
    return inner.family === outer.family && inner.first >= outer.first && inner.last <= outer.last;
}

/** True when the range (or address) `text` lies entirely inside one of `approved`; false for unparsable text. */
export function isCovered(text: string, approved: readonly IpRange[]): boolean {
    const r = parseRange(text);
    return r !== undefined && approved.some((a) => rangeWithin(r, a));
}
