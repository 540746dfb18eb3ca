import { parseResponderConfig } from '../../shared/config/responderConfig';
import { applyFinding } from '../../shared/core/alerts/incident';
import type { FindingDecision } from '../../shared/core/decisions';
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

describe('bounded incidents', () => {
    it('an incident keeps long correlation ids, operations and summaries of findings from any source bounded', () => {
        const settings = parseResponderConfig({}, ruleIds, 'limits').alerting;
        const ctx = {
            nowMs: Date.parse('2026-10-05T10:00:00Z'),
            settings,
            rosterName: 'default',
            tiers: 1,
            teamsTiers: [true],
            emailTiers: [false],
        };
        // A remediation outcome names the correlation ids of its triggering records as they came.
        const finding = (i: number): FindingDecision => ({
            type: 'finding',
            rule: 'remediation-failed',
            severity: 'critical',
            vault: 'kv-payments-prod',
            vaultId: '/subscriptions/s/resourcegroups/r/providers/microsoft.keyvault/vaults/kv-payments-prod',
            time: new Date(Date.parse('2026-10-05T09:00:00Z') + i * 60_000).toISOString(),
            operations: [`Op${i}${'o'.repeat(8000)}`],
            correlationIds: Array.from({ length: 5 }, (_, j) => `${i}-${j}${'c'.repeat(8000)}`),
            count: 1,
            summary: 's'.repeat(8000),
        });
        let inc = applyFinding(undefined, finding(0), [], ctx);
        for (let i = 1; i < 10; i++) inc = applyFinding(inc, finding(i), [], ctx);
        expect(inc.findings).toBe(10);
        expect(inc.correlationIds).toHaveLength(20);
        expect(new Set(inc.correlationIds).size).toBe(20);
        expect(JSON.stringify(inc).length).toBeLessThan(20_000);
        // The same finding delivered again is recognised with bounded ids too.
        expect(applyFinding(inc, finding(9), [], ctx)).toBe(inc);
    });
});
