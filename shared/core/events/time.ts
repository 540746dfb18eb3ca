/** The value of the ASCII digit at `i`, or NaN (which poisons any sum it enters). */
function digit(t: string, i: number): number {
    const c = t.charCodeAt(i) - 48;
    return c >= 0 && c <= 9 ? c : Number.NaN;
}

/**
 * The minute (`YYYY-MM-DDTHH:MM`, as written) of the last timestamp {@link parseRecordTime} parsed, and its epoch ms:
 * records come roughly in time order, most in the minute of the one before, so the date part is parsed once a minute.
 * A memo only: the result is the same with or without it.
 */
let memoMinute = '';
let memoMinuteMs = 0;

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
    let minuteMs: number;
    if (memoMinute.length === 16 && sameMinute(t, memoMinute)) minuteMs = memoMinuteMs;
    else {
        const year = digit(t, 0) * 1000 + digit(t, 1) * 100 + digit(t, 2) * 10 + digit(t, 3);
        const month = digit(t, 5) * 10 + digit(t, 6);
        const day = digit(t, 8) * 10 + digit(t, 9);
        const hour = digit(t, 11) * 10 + digit(t, 12);
        const minute = digit(t, 14) * 10 + digit(t, 15);
        // NaN fails every comparison; days past 28 fall back so that Date.parse decides on month lengths, and years
        // before 100 because Date.UTC reads them as 19xx.
        if (!(year >= 100 && month >= 1 && month <= 12 && day >= 1 && day <= 28 && hour <= 23 && minute <= 59))
            return Date.parse(t);
        // Exact: whole milliseconds well below 2^53, so adding the seconds below gives what Date.UTC would.
        minuteMs = Date.UTC(year, month - 1, day, hour, minute);
        memoMinute = t.slice(0, 16);
        memoMinuteMs = minuteMs;
    }
    const second = digit(t, 17) * 10 + digit(t, 18);
    let ms = 0;
    if (t.charCodeAt(19) === 46 /* . */) {
        // The milliseconds are the first three fraction digits (Date.parse drops the others, which must be digits
        // too), read as a whole number: summing every digit as a fraction rounded a long run of nines up to the next
        // second.
        if (n < 22) return Date.parse(t); // no digit after the point
        ms = digit(t, 20) * 100;
        if (n > 22) ms += digit(t, 21) * 10;
        if (n > 23) ms += digit(t, 22);
        for (let i = 23; i < n - 1; i++) if (Number.isNaN(digit(t, i))) return Date.parse(t);
    } else if (n !== 20) return Date.parse(t);
    if (!(second <= 59 && ms >= 0)) return Date.parse(t);
    return minuteMs + second * 1000 + ms;
}

/** Whether `t` starts with the 16 characters of `minute`, compared from the end (where two minutes differ). */
function sameMinute(t: string, minute: string): boolean {
    for (let i = 15; i >= 0; i--) if (t.charCodeAt(i) !== minute.charCodeAt(i)) return false;
    return true;
}
