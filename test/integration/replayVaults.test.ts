import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inventoryText } from '../../scripts/generateSample';
import { parseResponderConfigText } from '../../shared/config/responderConfig';
import { planRemediation } from '../../shared/core/remediation/plan';
import { ACTIONS_BY_RULE, type VaultSnapshot } from '../../shared/core/remediation/types';
import { ruleIds } from '../../shared/core/rules';
import { decisionsOf, REPO, runKvr } from '../support/cli';
import { tempDir } from '../support/tempDirs';

const SAMPLE = join(REPO, 'samples/sample-day.jsonl.gz');
const VAULTS = join(REPO, 'samples/vaults.json');
const ENFORCE = join(REPO, 'samples/enforce-config.json');

describe('kvr replay --vaults (simulated Azure Resource Manager)', () => {
    it('ships the inventory the generator makes', () => {
        expect(readFileSync(VAULTS, 'utf8')).toBe(inventoryText());
    });

    it('enforce: every enforced vault ends compliant, every change is audited, approved changes are left alone', async () => {
        const run = await runKvr('replay', SAMPLE, '--vaults', VAULTS, '--config', ENFORCE);
        expect(run.code).toBe(0);
        const decisions = decisionsOf(run.stdout);
        const inventory = JSON.parse(readFileSync(VAULTS, 'utf8')) as { id: string; tags: Record<string, string> }[];
        const tags = new Map(inventory.map((v) => [v.id.toLowerCase(), v.tags]));
        const config = parseResponderConfigText(readFileSync(ENFORCE, 'utf8'), ruleIds, 'enforce', tags);

        const states = decisions.filter((d) => d.type === 'vault-state');
        expect(states.map((s) => s.vault)).toEqual([
            'kv-payments-prod',
            'kv-hr-prod',
            'kv-platform-shared',
            'kv-cmk-prod',
            'kv-sandbox-dev',
            'kv-apps-dev',
        ]);
        for (const s of states) {
            const [, sub, rg, name] =
                /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.keyvault\/vaults\/(.+)$/.exec(
                    String(s.vaultId),
                ) ?? [];
            const ref = {
                subscriptionId: sub ?? '',
                resourceGroup: rg ?? '',
                name: name ?? '',
                resourceId: String(s.vaultId),
            };
            const policy = config.detection.policyFor(ref);
            if (policy.mode !== 'enforce') continue;
            const snapshot = {
                id: String(s.vaultId),
                name: String(s.vault),
                properties: s.properties,
            } as VaultSnapshot;
            const plan = planRemediation(snapshot, Object.keys(ACTIONS_BY_RULE), policy, {
                protectedPrincipals: new Set(),
            });
            expect({ vault: s.vault, pending: plan.actions.map((a) => a.summary) }).toEqual({
                vault: s.vault,
                pending: [],
            });
        }

        const actions = decisions.filter((d) => d.type === 'action');
        const applied = actions.filter((a) => a.status === 'applied');
        expect(applied.length).toBeGreaterThan(0);
        for (const a of applied) {
            const detail = a.detail as Record<string, unknown>;
            expect(typeof detail.undoId).toBe('string');
            expect(detail.verified).toBe(true);
            expect((detail.correlationIds as string[]).length).toBeGreaterThan(0);
        }
        // The pipeline's approved runner address is never removed; dev vaults (monitor) are only planned.
        expect(applied.flatMap((a) => (a.detail as { removed?: string[] }).removed ?? [])).not.toContain(
            '20.86.120.33/32',
        );
        expect(
            actions
                .filter((a) => a.vault === 'kv-sandbox-dev' || a.vault === 'kv-apps-dev')
                .every((a) => a.status === 'planned'),
        ).toBe(true);
        expect(actions.filter((a) => a.status === 'failed')).toEqual([]);
        expect(run.stderr).toMatch(/remediation actions: applied \d+/);
    });

    it('monitor: the same replay plans and applies nothing', async () => {
        const dir = tempDir('kvr-monitor-');
        const monitor = join(dir, 'monitor.json');
        writeFileSync(monitor, readFileSync(ENFORCE, 'utf8').replace(/"enforce"/g, '"monitor"'));
        const run = await runKvr('replay', SAMPLE, '--vaults', VAULTS, '--config', monitor);
        expect(run.code).toBe(0);
        const actions = decisionsOf(run.stdout).filter((d) => d.type === 'action');
        expect(actions.length).toBeGreaterThan(0);
        expect(actions.filter((a) => a.status === 'applied' || a.status === 'failed')).toEqual([]);
        // Nothing was changed: the vaults end exactly as the recorded changes alone leave them (no rule, no trigger).
        const silent = join(dir, 'silent.json');
        writeFileSync(
            silent,
            JSON.stringify({ rules: Object.fromEntries(ruleIds.map((id) => [id, { enabled: false }])) }),
        );
        const recordedOnly = await runKvr('replay', SAMPLE, '--vaults', VAULTS, '--config', silent);
        const states = (out: string) => decisionsOf(out).filter((d) => d.type === 'vault-state');
        expect(states(run.stdout)).toEqual(states(recordedOnly.stdout));
    });

    it('rejects an inventory that is not what vaults.get returns, on one line', async () => {
        const dir = tempDir('kvr-inv-');
        const bad = join(dir, 'vaults.json');
        writeFileSync(bad, JSON.stringify([{ name: 'x' }]));
        const run = await runKvr('replay', SAMPLE, '--vaults', bad);
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
        expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(run.stderr).toMatch(/^kvr: .*vaults\.json: /);
    });
});
