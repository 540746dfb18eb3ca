import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

describe('kvr replay --vaults over the same capture (simulated ARM, real clients): the ARM end state', () => {
    const VAULTS = join(DIR, 'vaults.json');
    const VAULT_ID = `/subscriptions/${SUB}/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/kv-payments-prod`;
    const RULE_ID = `/subscriptions/${SUB}/resourceGroups/rg-kvr/providers/Microsoft.EventHub/namespaces/evhns-kvr/authorizationRules/kvr-send`;
    let tmp: string;
    beforeAll(() => {
        tmp = mkdtempSync(join(tmpdir(), 'kvr-activity-'));
    });
    afterAll(() => {
        rmSync(tmp, { recursive: true, force: true });
    });

    /** The capture config with the vault in enforce mode and Azure RBAC wanted. */
    function enforcing(config: string): string {
        const c = JSON.parse(readFileSync(join(DIR, config), 'utf8')) as {
            guardrails: { overrides: Record<string, unknown>[] };
            remediation?: Record<string, unknown>;
            $schema?: string;
        };
        delete c.$schema;
        c.guardrails.overrides = c.guardrails.overrides.map((o) => ({ ...o, mode: 'enforce', authorization: 'rbac' }));
        c.remediation = { maxPerVaultPerHour: 10 };
        const path = join(tmp, `enforce-${config}`);
        writeFileSync(path, JSON.stringify(c));
        return path;
    }

    async function endState(config: string) {
        const run = await runKvr('replay', CAPTURE, '--vaults', VAULTS, '--config', enforcing(config));
        expect(run.code).toBe(0);
        const decisions = decisionsOf(run.stdout);
        const state = decisions.find((d) => d.type === 'vault-state' && d.vaultId === VAULT_ID) as {
            properties: { enableRbacAuthorization?: boolean };
            roleAssignments: { principalId: string; scope: string }[];
            diagnosticSettings: Record<string, unknown>[];
        };
        const applied = decisions
            .filter((d) => d.type === 'action' && d.status === 'applied')
            .map((d) => d.action as string);
        const critical = decisions.filter((d) => d.type === 'finding' && String(d.rule).startsWith('remediation-'));
        return { state, applied, critical };
    }

    it('with --outbox: the role assignment at the resource group is an incident like the others (the alerting sink routes a scope above vaults)', async () => {
        const outbox = join(tmp, 'outbox');
        const run = await runKvr(
            'replay',
            CAPTURE,
            '--vaults',
            VAULTS,
            '--config',
            enforcing('capture-config.json'),
            '--outbox',
            outbox,
            '--signing-key',
            join(tmp, 'key.pem'),
        );
        expect(run.stderr).not.toContain('not a vault resource id');
        expect(run.code).toBe(0);
        expect(run.stderr).toMatch(new RegExp(`ALERT [A-Z]+ · role-assignment-granted · rg:${SUB}:rg-payments: `));
        expect(run.stderr).toMatch(/ALERT [A-Z]+ · diagnostic-setting-removed · kv-payments-prod: /);
    });

    it('role assignment gone, RBAC on, the diagnostic setting back', async () => {
        const { state, applied, critical } = await endState('capture-config.json');
        expect(critical).toEqual([]);
        expect(applied).toEqual(
            expect.arrayContaining([
                'remove-role-assignment',
                'restore-rbac-authorization',
                'restore-diagnostic-setting',
            ]),
        );
        // bob's Key Vault Secrets User at the resource group was created by the capture and deleted by the responder.
        expect(state.roleAssignments.filter((a) => a.principalId === BOB)).toEqual([]);
        expect(state.properties.enableRbacAuthorization).toBe(true);
        expect(state.diagnosticSettings).toEqual([
            {
                name: 'kv-responder',
                eventHubAuthorizationRuleId: RULE_ID.toLowerCase(),
                eventHubName: 'kv-audit',
                logs: [{ category: 'AuditEvent', enabled: true }],
                metrics: [{ category: 'AllMetrics', enabled: false }],
            },
        ]);
    });

    it('with the assignee approved, its role assignment stays', async () => {
        const { state, applied } = await endState('capture-config-approved.json');
        expect(applied).not.toContain('remove-role-assignment');
        expect(state.roleAssignments).toMatchObject([
            { principalId: BOB, scope: `/subscriptions/${SUB}/resourcegroups/rg-payments` },
        ]);
        expect(state.properties.enableRbacAuthorization).toBe(true);
    });
});
