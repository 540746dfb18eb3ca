import { parseRecordTime } from '../../shared/core/events/time';

describe('parseRecordTime', () => {
    it.each([
        '2026-10-05T10:20:00.0000000Z',
        '2026-10-05T10:20:00Z',
        '2026-10-05T10:20:00.5Z',
        '2026-10-05T23:59:59.9999999Z',
        '2024-02-29T12:00:00.1234567Z',
        '2026-02-30T00:00:00Z',
        '2026-10-05T10:20:00+02:00',
        '2026-10-05T10:20:00.000',
        '2026-13-05T10:20:00Z',
        '2026-10-05T24:00:00Z',
        '2026-10-05T10:20:00.Z',
        '2026-1a-05T10:20:00Z',
        'yesterday',
        // More fraction digits than Azure writes: truncated to the millisecond, never rounded up (a run of nines
        // summed as fractions once came to the next second, here the next day).
        '2026-10-05T10:20:00.12Z',
        '2026-10-05T10:20:00.12345678901Z',
        '2026-10-05T10:20:00.99999999999999999999Z',
        '2026-10-05T23:59:59.99999999999999999Z',
        '2026-10-05T10:20:00.1234x678Z',
        '2026-10-05T10:20:00.12x4Z',
    ])('agrees with Date.parse on %s', (t) => {
        expect(parseRecordTime(t)).toEqual(Date.parse(t));
    });

    it('agrees with Date.parse over many generated timestamps', () => {
        for (let i = 0; i < 5000; i++) {
            const t = new Date(Date.UTC(2020, 0, 1) + i * 7_919_113)
                .toISOString()
                .replace('Z', `${String(i % 10000).padStart(4, '0')}Z`);
            expect(parseRecordTime(t)).toBe(Date.parse(t));
        }
    });

    it('agrees with Date.parse when consecutive timestamps share their minute (parsed once), malformed ones included', () => {
        const minute = '2026-10-05T10:20';
        const sequence = [
            `${minute}:00Z`,
            `${minute}:59.9999999Z`,
            `${minute}:60Z`,
            `${minute}:5xZ`,
            `${minute}:07.Z`,
            `${minute}:07.123+01:00`,
            `${minute}:07.1234567Z`,
            '2026-10-05T10:21:00Z',
            `${minute}:30Z`,
            `${minute}Z`,
            '1999-12-31T23:59:59.999Z',
            `${minute}:31.5Z`,
            '0050-01-01T00:00:01Z',
            '0050-01-01T00:00:02.25Z',
        ];
        for (const t of sequence) expect({ t, ms: parseRecordTime(t) }).toEqual({ t, ms: Date.parse(t) });
        // Minutes revisited out of order, seconds and fractions varying.
        for (let i = 0; i < 3000; i++) {
            const at = Date.UTC(2026, 9, 5, 10, 20) + ((i * 7_919) % 5) * 60_000 + ((i * 104_729) % 60_000);
            const t = new Date(at).toISOString().replace('Z', `${String(i % 1000).padStart(3, '0')}Z`);
            expect(parseRecordTime(t)).toBe(Date.parse(t));
        }
    });
});
