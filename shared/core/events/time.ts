/**
 * Parses the record timestamps Azure Monitor writes (`2026-10-05T10:20:00.0000000Z`: UTC, up to 7 fraction digits)
 * about twice as fast as `Date.parse`, which it falls back to for any other form. Milliseconds are truncated, as
 * `Date.parse` does.
 */
export function parseRecordTime(t: string): number {
    const n = t.length;
    if (n < 20 || t.charCodeAt(n - 1) !== 90 /* Z */ || t.charCodeAt(4) !== 45 || t.charCodeAt(7) !== 45)
        return Date.parse(t);
    if (t.charCodeAt(10) !== 84 /* T */ || t.charCodeAt(13) !== 58 || t.charCodeAt(16) !== 58) return Date.parse(t);
    let bad = false;
    const d = (i: number): number => {
        const c = t.charCodeAt(i) - 48;
        if (c < 0 || c > 9) bad = true;
        return c;
    };
    const year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    const month = d(5) * 10 + d(6);
    const day = d(8) * 10 + d(9);
    const hour = d(11) * 10 + d(12);
    const minute = d(14) * 10 + d(15);
    const second = d(17) * 10 + d(18);
    let ms = 0;
    let i = 19;
    if (t.charCodeAt(19) === 46 /* . */) {
        i = 20;
        let scale = 100;
        while (i < n - 1) {
            ms += d(i) * scale;
            scale /= 10;
            i++;
        }
        if (i === 20) bad = true;
    }
    // Days past 28 fall back so that Date.parse decides on month lengths.
    if (
        bad ||
        i !== n - 1 ||
        month < 1 ||
        month > 12 ||
        day < 1 ||
        day > 28 ||
        hour > 23 ||
        minute > 59 ||
        second > 59
    ) {
        return Date.parse(t);
    }
    return Date.UTC(year, month - 1, day, hour, minute, second, Math.floor(ms));
}
