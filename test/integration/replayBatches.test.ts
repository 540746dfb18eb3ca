import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCapture } from '../../shared/adapters/captureReader';
import { fixtureRecord } from '../support/fixtures';
import { decisionsOf, REPO, runKvr } from '../support/cli';
import { tempDir } from '../support/tempDirs';

const VAULTS = join(REPO, 'samples/vaults.json');
const ENFORCE = join(REPO, 'samples/enforce-config.json');

/** A capture of one Event Hubs body per line, each holding one record. */
function capture(name: string, records: Record<string, unknown>[]): string {
    const dir = tempDir('kvr-batches-');
    const path = join(dir, name);
    writeFileSync(path, records.map((r) => JSON.stringify({ records: [r] })).join('\n'));
    return path;
}

function at(fixture: string, time: string, correlationId: string): Record<string, unknown> {
    const r = fixtureRecord(fixture);
    r.time = time;
    r.correlationId = correlationId;
    return r;
}

/** 15 re-openings of kv-payments-prod's firewall, one every four minutes within an hour. */
function reopenings(): string {
    return capture(
        'reopenings.jsonl',
        Array.from({ length: 15 }, (_, i) => {
            const t = new Date(Date.UTC(2026, 9, 5, 10, 0, 30) + i * 4 * 60_000).toISOString();
            return at('vault-patch-firewall-allow.json', t, `reopen-${i}`);
        }),
    );
}

const actions = (stdout: string) => decisionsOf(stdout).filter((d) => d.type === 'action');
const findings = (stdout: string) => decisionsOf(stdout).filter((d) => d.type === 'finding');

describe('kvr replay keeps the captured batches', () => {
    it('reads one body per group when asked, however many a read chunk holds', async () => {
        const path = reopenings();
        const groups: number[] = [];
        for await (const g of readCapture({ path, size: 0 }, { maxItems: 1 })) groups.push(g.items.length);
        expect(groups).toEqual(new Array<number>(15).fill(1));
        const fours: number[] = [];
        for await (const g of readCapture({ path, size: 0 }, { maxItems: 4 })) fours.push(g.items.length);
        expect(fours).toEqual([4, 4, 4, 3]);
    });

    it('15 firewall re-openings over an hour: the blast-radius cap shows in the backtest', async () => {
        const run = await runKvr('replay', reopenings(), '--vaults', VAULTS, '--config', ENFORCE);
        expect(run.code).toBe(0);
        const applied = actions(run.stdout).filter((a) => a.status === 'applied');
        // Remediated as each re-opening arrived, until the hourly cap (3 by default) suspends remediation.
        expect(applied.length).toBe(3);
        expect(findings(run.stdout).filter((f) => f.rule === 'remediation-suspended').length).toBeGreaterThan(0);
    });

    it('--batch-size mimics the trigger batching: all 15 in one batch remediate the vault once', async () => {
        const run = await runKvr('replay', reopenings(), '--vaults', VAULTS, '--config', ENFORCE, '--batch-size', '15');
        expect(run.code).toBe(0);
        expect(actions(run.stdout).filter((a) => a.status === 'applied').length).toBe(1);
        expect(findings(run.stdout).filter((f) => f.rule === 'remediation-suspended')).toEqual([]);
    });

    it('a grant revoked four minutes later was remediated when it happened, not reported already-compliant', async () => {
        const path = capture('grant.jsonl', [
            at('vault-patch-access-policy-added.json', '2026-10-05T11:00:00.0000000Z', 'grant'),
            at('vault-patch-access-policy-removed.json', '2026-10-05T11:04:00.0000000Z', 'revoke'),
        ]);
        const run = await runKvr('replay', path, '--vaults', VAULTS, '--config', ENFORCE);
        expect(run.code).toBe(0);
        const removals = actions(run.stdout).filter((a) => a.action === 'remove-access-policy');
        expect(removals.map((a) => a.status)).toContain('applied');
        for (const a of removals) expect(JSON.stringify(a)).not.toContain('already-compliant');
    });

    it('refuses a batch size that is not a whole number from 1 to 10000', async () => {
        for (const bad of ['0', '-1', '2.5', 'x', '10001', '']) {
            const run = await runKvr('replay', reopenings(), `--batch-size=${bad}`);
            expect({ bad, code: run.code }).toEqual({ bad, code: 2 });
            expect(run.stderr).toMatch(/--batch-size must be a whole number from 1 to 10000/);
        }
    });
});
