import { isCovered, parseRange } from '../../shared/core/net/cidr';

describe('CIDR ranges', () => {
    const approved = ['198.51.100.0/24', '2001:db8:100::/48', '203.0.113.7']
        .map((r) => parseRange(r))
        .filter((r) => r !== undefined);

    it.each([
        ['198.51.100.17', true],
        ['198.51.100.17/32', true],
        ['198.51.100.128/25', true],
        ['198.51.100.0/24', true],
        ['198.51.0.0/16', false],
        ['198.51.101.1', false],
        ['203.0.113.7', true],
        ['203.0.113.8', false],
        ['2001:db8:100:5::/64', true],
        ['2001:DB8:100::1', true],
        ['2001:db8:200::/64', false],
        ['2001:db8::/32', false],
        ['::ffff:198.51.100.1', false],
        ['not-an-ip', false],
        ['300.1.1.1', false],
        ['198.51.100.0/33', false],
    ])('%s covered: %s', (rule, covered) => {
        expect(isCovered(rule, approved)).toBe(covered);
    });

    it('parses ranges to their first and last address', () => {
        expect(parseRange('10.1.2.3/8')).toMatchObject({ family: 4, first: 0x0a000000n, last: 0x0affffffn });
        expect(parseRange('::1')).toMatchObject({ family: 6, first: 1n, last: 1n });
        expect(parseRange('::ffff:1.2.3.4')).toMatchObject({ family: 6, first: 0xffff01020304n });
        expect(parseRange('1::2::3')).toBeUndefined();
        expect(parseRange('1:2:3:4:5:6:7:8:9')).toBeUndefined();
    });
});
