import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { createPipeline } from '../../shared/app/createPipeline';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import { decisionsOf, REPO, runKvr } from '../support/cli';
import { fixtureRecord } from '../support/fixtures';
import { tempDir } from '../support/tempDirs';

/**
 * One incident is one finding: a tug of war is one `remediation-suspended` per suspension, and `firewall-opened`
 * fires when a vault's firewall opens, not on every later change of a vault that is open already.
 */

const VAULTS = join(REPO, 'samples/vaults.json');
const ENFORCE = join(REPO, 'samples/enforce-config.json');
const OID = 'http://schemas.microsoft.com/identity/claims/objectidentifier';
const UPN = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn';
const T0 = Date.UTC(2026, 9, 5, 10, 0, 30);
const MIN = 60_000;

/** A VaultPatch of kv-payments-prod at `T0 + minutes`, by `who`, leaving the firewall at `defaultAction`. */
function patch(minutes: number, defaultAction: 'Allow' | 'Deny', who = 'mallory', extraIp?: string) {
    const r = fixtureRecord('vault-patch-firewall-allow.json') as {
        time: string;
        correlationId: string;
        identity: { claim: Record<string, string> };
        properties: { properties: { networkAcls: Record<string, unknown> } };
    };
    r.time = new Date(T0 + minutes * MIN).toISOString();
    r.correlationId = `patch-${minutes}-${who}`;
    if (who !== 'mallory') {
        r.identity.claim[OID] = `${who === 'alice' ? 'a11ce' : 'b0b00'}000-0000-4000-8000-000000000001`;
        r.identity.claim[UPN] = `${who}@contoso.example`;
    }
    r.properties.properties.networkAcls = {
        bypass: 'AzureServices',
        defaultAction,
        ...(extraIp === undefined ? {} : { ipRules: [{ value: extraIp }] }),
    };
    return r;
}

/** A capture of one Event Hubs body per line, each holding one record (replayed one batch each). */
function capture(records: readonly object[]): string {
    const dir = tempDir('kvr-noise-');
    const path = join(dir, 'capture.jsonl');
    writeFileSync(path, records.map((r) => JSON.stringify({ records: [r] })).join('\n'));
    return path;
}

const findingsOf = (stdout: string, rule: string) =>
    decisionsOf(stdout).filter((d) => d.type === 'finding' && d.rule === rule);

describe('remediation-suspended: one finding per suspension', () => {
    it('a tug of war is one finding while suspended, and a new one once the cap lifted and holds again', async () => {
        // A pipeline re-opens the firewall every four minutes for 96 minutes. The hourly cap (3) lets 10:00:30,
        // 10:04:30 and 10:08:30 be remediated, suspends 10:12:30 to 10:56:30 (until 11:00:30, when the first of the
        // three is an hour old), remediates 11:00:30, 11:04:30, 11:08:30 and suspends again from 11:12:30.
        const run = await runKvr(
            'replay',
            capture(Array.from({ length: 25 }, (_, i) => patch(i * 4, 'Allow'))),
            '--vaults',
            VAULTS,
            '--config',
            ENFORCE,
        );
        expect(run.stderr).not.toContain('Error');
        expect(run.code).toBe(0);
        const decisions = decisionsOf(run.stdout);
        const restores = decisions.filter((d) => d.type === 'action' && d.action === 'restore-firewall-default');
        // 13 held back in the first suspension: the 12 re-openings and the hourly drift sweep at 10:41 (replayed on
        // the records' clock), which finds the vault open as a live deployment's sweep would.
        expect(restores.map((a) => a.status)).toEqual([
            ...new Array<string>(3).fill('applied'),
            ...new Array<string>(13).fill('skipped'),
            ...new Array<string>(3).fill('applied'),
            ...new Array<string>(7).fill('skipped'),
        ]);
        expect(restores.filter((a) => a.time === '2026-10-05T10:41:00.000Z').map((a) => a.status)).toEqual(['skipped']);
        const suspended = findingsOf(run.stdout, 'remediation-suspended');
        expect(suspended.map((f) => [f.time, f.suspendedUntil])).toEqual([
            ['2026-10-05T10:12:30.000Z', '2026-10-05T11:00:30.000Z'],
            ['2026-10-05T11:12:30.000Z', '2026-10-05T12:00:30.000Z'],
        ]);
        // The later attempts are counted in their suspension.
        const skipped = restores.filter((a) => a.status === 'skipped');
        expect(skipped.map((a) => (a.detail as { suspension: { attempts: number } }).suspension.attempts)).toEqual([
            ...Array.from({ length: 13 }, (_, i) => i + 1),
            ...Array.from({ length: 7 }, (_, i) => i + 1),
        ]);
    });
});

describe('firewall-opened: on the transition to open', () => {
    const config = parseResponderConfig(
        { guardrails: { default: { networkDefaultAction: 'Deny', approvedIpRanges: ['198.51.100.0/24'] } } },
        ruleIds,
        'test',
    );

    async function run(records: readonly object[]): Promise<FindingDecision[]> {
        const decisions = new MemoryDecisionSink();
        const pipeline = createPipeline(
            config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: false },
        );
        for (const r of records) await pipeline.processBatch([{ body: { records: [r] } }]);
        return decisions.decisions.filter(
            (d): d is FindingDecision => d.type === 'finding' && d.rule === 'firewall-opened',
        );
    }

    it('does not fire again on later patches of a vault that is already open', async () => {
        const fired = await run([
            patch(0, 'Allow'),
            // Hours later, outside any grouping window, other people change the open vault.
            patch(120, 'Allow', 'alice', '198.51.100.9/32'),
            patch(240, 'Allow', 'bob'),
        ]);
        expect(fired.map((f) => f.time)).toEqual(['2026-10-05T10:00:30.000Z']);
    });

    it('fires again when the vault is opened after it was closed', async () => {
        const fired = await run([
            patch(0, 'Allow'),
            patch(30, 'Deny', 'bob'),
            patch(45, 'Allow', 'alice'),
            patch(300, 'Allow'),
        ]);
        expect(fired.map((f) => [f.time, f.principal])).toEqual([
            ['2026-10-05T10:00:30.000Z', 'bad0bad0-0000-4000-8000-00000000000d'],
            ['2026-10-05T10:45:30.000Z', 'a11ce000-0000-4000-8000-000000000001'],
        ]);
    });

    it('an older record than the known state changes nothing', async () => {
        const fired = await run([patch(60, 'Deny', 'bob'), patch(0, 'Allow'), patch(90, 'Allow', 'alice')]);
        expect(fired.map((f) => f.time)).toEqual(['2026-10-05T11:30:30.000Z']);
    });

    it('after the responder closed it (its own record never seen), a re-opening fires again; a patch of the vault it could not close does not', async () => {
        // Enforce on kv-payments-prod (env=prod): 10:00:30 opened and closed by the responder; 12:00:30 opened
        // again, two hours later by the same caller: a new opening. The responder's own PATCH has no record in a
        // replay: the reconciler's view of the vault is what tells the rule that the firewall was closed.
        const run1 = await runKvr(
            'replay',
            capture([patch(0, 'Allow'), patch(120, 'Allow')]),
            '--vaults',
            VAULTS,
            '--config',
            ENFORCE,
        );
        expect(run1.code).toBe(0);
        expect(findingsOf(run1.stdout, 'firewall-opened').map((f) => f.time)).toEqual([
            '2026-10-05T10:00:30.000Z',
            '2026-10-05T12:00:30.000Z',
        ]);
        // Monitor mode for the firewall: nobody closes it, so the second patch changes an open vault: one finding,
        // neither from the rule nor as drift seen in ARM.
        const monitorDir = tempDir('kvr-noise-');
        const monitor = join(monitorDir, 'monitor-config.json');
        writeFileSync(
            monitor,
            JSON.stringify({
                guardrails: {
                    default: {
                        networkDefaultAction: 'Deny',
                        mode: 'enforce',
                        ruleModes: { 'firewall-opened': 'monitor' },
                    },
                },
            }),
        );
        const run2 = await runKvr(
            'replay',
            capture([patch(0, 'Allow'), patch(120, 'Allow', 'alice', '198.51.100.9/32')]),
            '--vaults',
            VAULTS,
            '--config',
            monitor,
        );
        expect(run2.code).toBe(0);
        expect(findingsOf(run2.stdout, 'firewall-opened').map((f) => f.time)).toEqual(['2026-10-05T10:00:30.000Z']);
    });
});
