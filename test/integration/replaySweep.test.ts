// The drift sweep in `kvr replay --vaults` runs on the records' clock, at the live timer's cadence (hourly at minute
// 41 by default): a change that reaches ARM with no record that triggers anything is found and remediated at its sweep.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { replay } from '../../shared/app/replay';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { ActionDecision, FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import { type Simulation, startSimulation } from '../../shared/simulation/simulation';
import { REPO } from '../support/cli';

const DIR = join(REPO, 'test/fixtures/activity-log');
const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const VAULT_ID = `/subscriptions/${SUB}/resourceGroups/rg-payments/providers/Microsoft.KeyVault/vaults/kv-payments-prod`;
const VAULT = {
    subscriptionId: SUB,
    resourceGroup: 'rg-payments',
    name: 'kv-payments-prod',
    resourceId: VAULT_ID.toLowerCase(),
};
/** A data-plane read of the mixed capture (line 2): it triggers no remediation. */
const READ = JSON.parse(readFileSync(join(DIR, 'mixed-capture.jsonl'), 'utf8').split('\n')[1] ?? '') as Record<
    string,
    unknown
>;
const readAt = (time: string, n: number) => ({
    ...READ,
    time,
    correlationId: `00000${n}00-0f1e-4c2d-8b3a-000000000000`,
});

/** Someone opens the firewall through ARM; no record of it reaches the replay. */
const OPEN_FIREWALL = {
    networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow', ipRules: [], virtualNetworkRules: [] },
} as const;

let tmp: string;
let sim: Simulation;
beforeEach(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'kvr-sweep-'));
    sim = await startSimulation(JSON.parse(readFileSync(join(DIR, 'vaults.json'), 'utf8')), 'vaults.json');
});
afterEach(async () => {
    await sim.close();
    rmSync(tmp, { recursive: true, force: true });
});

function config(mode: 'enforce' | 'monitor') {
    return parseResponderConfig(
        { guardrails: { overrides: [{ match: { resourceId: VAULT_ID }, mode }] } },
        ruleIds,
        'test',
    );
}

/** Replays reads at the given times, one per batch; `between(i)` runs after batch i (its promise awaited). */
async function run(mode: 'enforce' | 'monitor', times: string[], between: (i: number) => Promise<void>) {
    const file = join(tmp, 'capture.jsonl');
    writeFileSync(file, times.map((t, i) => JSON.stringify(readAt(t, i))).join('\n') + '\n');
    const decisions = new MemoryDecisionSink();
    let batch = 0;
    const result = await replay({
        inputs: [file],
        config: config(mode),
        sinks: { decisions, quarantine: new MemoryQuarantineSink() },
        simulation: sim,
        batchSize: 1,
        onProgress: () => between(batch++),
    });
    return { decisions: decisions.decisions, result };
}

describe('kvr replay --vaults: the drift sweep on the records’ clock', () => {
    it('a firewall opened through ARM between records, with no record of it, is closed at the next sweep (09:41), at that event time', async () => {
        const { decisions, result } = await run(
            'enforce',
            [
                '2026-10-05T09:00:00.000Z',
                '2026-10-05T09:20:00.000Z',
                '2026-10-05T09:50:00.000Z',
                '2026-10-05T10:10:00.000Z',
            ],
            async (i) => {
                // After the 09:20 batch: someone opens the firewall through ARM; no record of it reaches the replay.
                if (i === 1) await sim.admin.patch(VAULT, OPEN_FIREWALL);
            },
        );
        const findings = decisions.filter((d): d is FindingDecision => d.type === 'finding');
        const actions = decisions.filter((d): d is ActionDecision => d.type === 'action');
        expect(findings.map((f) => [f.rule, f.vault, f.time])).toEqual([
            ['firewall-opened', 'kv-payments-prod', '2026-10-05T09:41:00.000Z'],
        ]);
        expect(findings[0]).toMatchObject({ source: 'arm-drift' });
        expect(actions.map((a) => [a.action, a.status, a.time])).toEqual([
            ['restore-firewall-default', 'applied', '2026-10-05T09:41:00.000Z'],
        ]);
        // The ARM end state: closed again.
        const state = decisions.find((d) => d.type === 'vault-state') as unknown as {
            properties: { networkAcls: { defaultAction: string } };
        };
        expect(state.properties.networkAcls.defaultAction).toBe('Deny');
        expect(result.stats.actionsByStatus.get('applied')).toBe(1);
    });

    it('no sweep before the records’ clock passes minute 41, and monitor mode only reports the drift', async () => {
        const early = await run(
            'enforce',
            ['2026-10-05T09:00:00.000Z', '2026-10-05T09:20:00.000Z', '2026-10-05T09:40:00.000Z'],
            async (i) => {
                if (i === 1) await sim.admin.patch(VAULT, OPEN_FIREWALL);
            },
        );
        expect(early.decisions.filter((d) => d.type === 'finding' || d.type === 'action')).toEqual([]);

        // The vault is still open (no sweep yet); a later capture in monitor mode reports it at 10:41 without closing it.
        const monitor = await run('monitor', ['2026-10-05T10:30:00.000Z', '2026-10-05T10:45:00.000Z'], () =>
            Promise.resolve(),
        );
        expect(
            monitor.decisions
                .filter((d) => d.type === 'finding' || d.type === 'action')
                .map((d) => [
                    d.type,
                    (d as FindingDecision).rule,
                    (d as { status?: string }).status,
                    (d as FindingDecision).time,
                ]),
        ).toEqual([
            ['action', 'firewall-opened', 'planned', '2026-10-05T10:41:00.000Z'],
            ['finding', 'firewall-opened', undefined, '2026-10-05T10:41:00.000Z'],
        ]);
    });
});
