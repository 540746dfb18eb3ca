import { parseResponderConfig } from '../../shared/config/responderConfig';
import { ConfigError } from '../../shared/core/errors';
import { ruleIds } from '../../shared/core/rules';
import { windowStep } from '../../shared/core/rules/common';
import { boundedId, boundedJson, MAX_ID_CHARS, MAX_KEY_PART_CHARS } from '../../shared/core/state/limits';
import { stateKey } from '../../shared/core/state/store';

describe('bounded ids', () => {
    it('keeps short ids verbatim, bounds long ones stably and keeps them distinct', () => {
        expect(boundedId('abc')).toBe('abc');
        const a = `${'a'.repeat(500)}1`;
        const b = `${'a'.repeat(500)}2`;
        expect(boundedId(a)).toHaveLength(MAX_ID_CHARS);
        expect(boundedId(a)).toBe(boundedId(a));
        expect(boundedId(a)).not.toBe(boundedId(b));
        expect(boundedId(a).startsWith('a'.repeat(100))).toBe(true);
    });

    it('never cuts a surrogate pair in half', () => {
        const s = `${'x'.repeat(MAX_ID_CHARS - 18)}😀${'y'.repeat(200)}`;
        const b = boundedId(s);
        expect(b.length).toBeLessThanOrEqual(MAX_ID_CHARS);
        expect(() => encodeURIComponent(b)).not.toThrow();
    });

    it('bounds both parts of a state key', () => {
        const k = stateKey(`principal~${'p'.repeat(9000)}`, `group|r|${'q'.repeat(9000)}`);
        expect(k.partition.length).toBeLessThanOrEqual(MAX_KEY_PART_CHARS);
        expect(k.row.length).toBeLessThanOrEqual(MAX_KEY_PART_CHARS);
        expect(k.row.startsWith('group|r|q')).toBe(true);
        expect(stateKey('v', 'short')).toEqual({ partition: 'v', row: 'short', id: 'v\u0000short' });
    });

    it('bounds strings, lists, objects and depth of JSON details; returns small values as they are', () => {
        const small = { a: ['x'], b: 1 };
        expect(boundedJson(small)).toBe(small);
        const big = boundedJson({
            list: new Array(500).fill('z'.repeat(5000)),
            deep: { a: { b: { c: { d: { e: 1 } } } } },
        });
        const json = JSON.stringify(big);
        expect(json.length).toBeLessThan(60_000);
        expect((big as { list: string[] }).list).toHaveLength(50);
        expect((big as { deep: unknown }).deep).toEqual({ a: { b: { c: { d: null } } } });
    });

    it('window items are kept bounded and still counted as distinct', () => {
        let items: [string, number][] | undefined;
        let inWindow = 0;
        for (let i = 0; i < 12; i++) {
            const step = windowStep(items, `${'s'.repeat(8000)}${i}`, 1_000 + i, 60_000, 10);
            items = step.next ?? items;
            inWindow = step.inWindow;
        }
        expect(inWindow).toBe(12);
        for (const [item] of items ?? []) expect(item.length).toBeLessThanOrEqual(MAX_ID_CHARS);
    });

    it('the config refuses window thresholds over 1,000', () => {
        expect(() =>
            parseResponderConfig({ thresholds: { vaultThrottled: { count: 1001 } } }, ruleIds, 'limits'),
        ).toThrow(ConfigError);
        expect(() =>
            parseResponderConfig({ thresholds: { vaultThrottled: { count: 1000 } } }, ruleIds, 'limits'),
        ).not.toThrow();
    });
});
