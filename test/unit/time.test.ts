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
});
