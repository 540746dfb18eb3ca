import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { RuleContext } from '../../shared/core/engine/rule';
import type { AuditEvent, VaultRef } from '../../shared/core/events/types';
import { ruleIds } from '../../shared/core/rules';
import { auditLogSilent, type Heartbeat, silentVaults } from '../../shared/core/rules/audit-log-silent/rule';
import { stateKey } from '../../shared/core/state/store';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-10-05T09:00:00Z');
const vault = (name: string): VaultRef => ({
    subscriptionId: '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40',
    resourceGroup: 'rg',
    name,
    resourceId: `/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourcegroups/rg/providers/microsoft.keyvault/vaults/${name}`,
});
const config = parseResponderConfig(
    { guardrails: { overrides: [{ match: { vaultName: 'kv-idle' }, quietPeriodHours: 48 }] } },
    ruleIds,
    'test',
);
const ctxOf = (v: VaultRef): RuleContext => ({
    settings: config.detection,
    policy: config.detection.policyFor(v),
    vaultFirstSeenMs: T0,
});
const event = (v: VaultRef, timeMs: number, activity?: AuditEvent['activity']) =>
    ({ vault: v, timeMs, time: new Date(timeMs).toISOString(), activity }) as AuditEvent;

/** Runs the rule over event times as the engine does (state in, state out). */
function run(v: VaultRef, times: readonly number[]) {
    let state: Heartbeat | undefined;
    let writes = 0;
    const found: Record<string, unknown>[] = [];
    for (const t of times) {
        const step = auditLogSilent.evaluate(event(v, t), ctxOf(v), state);
        if (step.state !== undefined) {
            state = step.state;
            writes++;
        }
        for (const f of step.findings ?? []) found.push({ ...f.details });
    }
    return { state, writes, found };
}

describe('audit-log-silent on the records clock', () => {
    it('reports a gap longer than the quiet period once records resume, with its bounds', () => {
        const { found } = run(vault('kv-a'), [T0, T0 + HOUR, T0 + 8 * HOUR]);
        expect(found).toEqual([
            expect.objectContaining({ silentFromMs: T0 + HOUR, silentHours: 7, quietPeriodHours: 6, resolved: true }),
        ]);
    });

    it('writes the heartbeat in steps, not per record, and ignores records older than it', () => {
        const minutes = Array.from({ length: 120 }, (_, i) => T0 + i * 60_000);
        const { writes, state } = run(vault('kv-a'), [...minutes, T0]);
        // 6 h / 20 = 18 min steps over two hours: the first record and six steps.
        expect(writes).toBe(7);
        expect(state?.first).toBe(T0);
    });

    it('uses the per-vault quiet period, and ignores Activity Log records', () => {
        expect(run(vault('kv-idle'), [T0, T0 + 40 * HOUR]).found).toEqual([]);
        expect(run(vault('kv-idle'), [T0, T0 + 51 * HOUR]).found).toHaveLength(1);
        expect(
            auditLogSilent.stateKey(
                event(vault('kv-a'), T0, { category: 'Write' } as AuditEvent['activity']),
                ctxOf(vault('kv-a')),
            ),
        ).toBeUndefined();
    });
});

describe('silentVaults: the timer half over the heartbeat rows', () => {
    const entries = [
        {
            key: stateKey('kv-a', 'heartbeat'),
            value: { vault: vault('kv-a'), first: T0, last: T0 } satisfies Heartbeat,
        },
        {
            key: stateKey('kv-idle', 'heartbeat'),
            value: { vault: vault('kv-idle'), first: T0, last: T0 } satisfies Heartbeat,
        },
        {
            key: stateKey('kv-b', 'heartbeat'),
            value: { vault: vault('kv-b'), first: T0, last: T0 + 5 * HOUR } satisfies Heartbeat,
        },
        { key: stateKey('kv-a', 'meta'), value: { first: T0 } },
    ];

    it('reports the vaults silent past their quiet period at the given time, each silence once', () => {
        const now = T0 + 10 * HOUR;
        const { findings, updates } = silentVaults(entries, now, config.detection);
        expect(findings.map((f) => [f.rule, f.vault, f.silentHours, f.resolved])).toEqual([
            ['audit-log-silent', 'kv-a', 10, false],
        ]);
        expect(updates).toEqual([{ key: entries[0]?.key, value: { ...entries[0]?.value, reported: T0 } }]);
        const again = silentVaults([{ key: updates[0]!.key, value: updates[0]!.value }], now + HOUR, config.detection);
        expect(again.findings).toEqual([]);
    });

    it('marks the resumption finding of a silence the timer already reported as low', () => {
        const v = vault('kv-a');
        const step = auditLogSilent.evaluate(event(v, T0 + 12 * HOUR), ctxOf(v), {
            vault: v,
            first: T0,
            last: T0,
            reported: T0,
        });
        expect(step.findings?.[0]).toMatchObject({ severity: 'low', details: { reportedWhileSilent: true } });
    });
});
