import { join } from 'node:path';
import type { FindingDecision } from '../shared/core/decisions';
import { decisionsOf, REPO, runKvr } from './support/cli';

const DIR = join(REPO, 'test/fixtures/activity-log');
const CAPTURE = join(DIR, 'mixed-capture.jsonl');
const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';
const BOB = 'b0b00000-0000-4000-8000-0000000000b0';

/** rule, vault and principal of each finding, and the run's record counts. */
async function replayWith(config: string) {
    const run = await runKvr('replay', CAPTURE, '--config', join(DIR, config));
    // The storage-account assignment (Start, Success) and the resource group delete are skipped, nothing rejected.
    expect(run.stderr).toContain('skipped 3 other records (other-resource-type 3)\n  rejected 0 (0 bodies, 0 records)');
    expect(run.code).toBe(0);
    const decisions = decisionsOf(run.stdout);
    expect(decisions.filter((d) => d.type === 'rejected' || d.type === 'error')).toEqual([]);
    const findings = decisions.filter((d): d is FindingDecision => d.type === 'finding');
    return { findings, brief: findings.map((f) => [f.rule, f.vault, f.principal]) };
}

describe('kvr replay over a mixed Activity Log and AuditEvent capture (one JSON Lines archive)', () => {
    it('gives exactly the expected findings', async () => {
        const { findings, brief } = await replayWith('capture-config.json');
        expect(brief).toEqual([
            // Key Vault Secrets User for bob at the resource group of kv-payments-prod (Start + Success joined).
            ['role-assignment-granted', `rg:${SUB}:rg-payments`, BOB],
            // AuditEvent: RBAC turned off by mallory (turning it back on is no finding).
            ['rbac-authorization-disabled', 'kv-payments-prod', MALLORY],
            // Activity Log: the diagnostic setting of the vault deleted.
            ['diagnostic-setting-removed', 'kv-payments-prod', MALLORY],
            // Three denied purges: one grouped finding.
            ['destructive-operation-denied', 'kv-payments-prod', MALLORY],
            // bob lists then reads keys, secrets and certificates.
            ['vault-enumeration', 'kv-payments-prod', BOB],
            // No AuditEvent record for a day (quiet period 6 h), reported when records resume.
            ['audit-log-silent', 'kv-payments-prod', undefined],
        ]);
        const ra = findings[0] as FindingDecision & Record<string, unknown>;
        expect(ra).toMatchObject({
            role: 'Key Vault Secrets User',
            scope: `/subscriptions/${SUB}/resourcegroups/rg-payments`,
            scopeLevel: 'resource-group',
            actorId: MALLORY,
            // The config names kv-payments-prod by resource id: the finding lists it as covered.
            coveredVaults: [
                `/subscriptions/${SUB}/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/kv-payments-prod`,
            ],
        });
        expect((findings[3] as FindingDecision).count).toBe(3);
        expect(findings[5]).toMatchObject({
            silentFrom: '2026-10-05T10:30:00.000Z',
            silentHours: 24.5,
            resolved: true,
        });
    });

    it('with the assignee approved for its role and its reads, gives none of the findings about it', async () => {
        const { brief } = await replayWith('capture-config-approved.json');
        // Approval is about who may hold access: cutting the audit trail, switching RBAC off and denied destruction
        // attempts and a silent vault stay findings whoever the assignee is.
        expect(brief).toEqual([
            ['rbac-authorization-disabled', 'kv-payments-prod', MALLORY],
            ['diagnostic-setting-removed', 'kv-payments-prod', MALLORY],
            ['destructive-operation-denied', 'kv-payments-prod', MALLORY],
            ['audit-log-silent', 'kv-payments-prod', undefined],
        ]);
    });
});
