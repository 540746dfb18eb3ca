// Issue 15 remediation through the whole pipeline and reconcile worker, against the ARM simulator with the real
// clients (@azure/arm-keyvault for the vault, @azure/arm-authorization for role assignments, ArmAccessAdmin's REST
// calls for diagnostic settings): remove-role-assignment, restore-rbac-authorization, restore-diagnostic-setting, their
// rails (modes, approvals, protected principals, blast-radius caps), every ARM fault class, and their undo.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { LinkTokens } from '../../shared/app/alerting';
import { createResponder } from '../../shared/app/createPipeline';
import type { ReconcileIntent } from '../../shared/app/reconcileIntents';
import { readApprovals } from '../../shared/app/undoer';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Incident } from '../../shared/core/alerts/incident';
import { incidentPageContext } from '../../shared/core/alerts/incidentPage';
import type { OutgoingNotification } from '../../shared/core/alerts/types';
import type { ActionDecision, Decision, FindingDecision } from '../../shared/core/decisions';
import { ruleIds } from '../../shared/core/rules';
import { armAccessRoutes, type ArmAccessRoutes } from '../../shared/simulation/armAccessRoutes';
import {
    type ArmFault,
    type ArmKeyVaultFake,
    makeVault,
    startArmKeyVaultFake,
} from '../../shared/simulation/armSimulator';
import { accessAdminFor, vaultAdminFor } from '../fakes/armClient';
import { RecordingChannel, TestClock } from '../support/alertingDoubles';
import { REPO } from '../support/cli';

const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const TENANT = '3f0c2b6e-1d4a-4c8e-9b2f-5a7d1e0c9b11';
const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';
const BOB = 'b0b00000-0000-4000-8000-0000000000b0';
const API = 'c0c0c0c0-0000-4000-8000-0000000000a1';
const RESPONDER = '5e5e5e5e-0000-4000-8000-00000000005e';
const ALICE_OID = 'a1a1a1a1-0000-4000-8000-0000000000a1';
const RG = 'rg-payments';
const VAULT_ID = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.KeyVault/vaults/kv-payments-prod`;
const VAULT_REF = {
    subscriptionId: SUB,
    resourceGroup: RG,
    name: 'kv-payments-prod',
    resourceId: VAULT_ID.toLowerCase(),
};
const RG_SCOPE = `/subscriptions/${SUB}/resourceGroups/${RG}`;
/** The assignment the capture's role assignment write names (Key Vault Secrets User for bob at the resource group). */
const ASSIGNMENT_NAME = '0000014b-0f1e-4c2d-8b3a-0000014b0000';
const ASSIGNMENT_ID = `${RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${ASSIGNMENT_NAME}`;
const SECRETS_USER = '4633458b-17de-408a-b874-0445c86b69e6';
const RULE_ID = `/subscriptions/${SUB}/resourceGroups/rg-kvr/providers/Microsoft.EventHub/namespaces/evhns-kvr/authorizationRules/kvr-send`;

/** The records of the mixed capture (test/fixtures/activity-log), by line number (1-based). */
const CAPTURE = readFileSync(join(REPO, 'test/fixtures/activity-log/mixed-capture.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const lines = (...n: number[]) => ({ body: { records: n.map((i) => CAPTURE[i - 1]) } });
/** The role assignment write (Start + Success), the diagnostic setting delete, RBAC on (VaultGet) then off. */
const ROLE_WRITE = () => lines(3, 4);
const DIAG_DELETE = () => lines(10, 11);
const RBAC_OFF = () => lines(1, 8);

function configFor(
    mode: 'enforce' | 'monitor',
    extra: { approved?: object[]; protectedPrincipals?: string[]; remediation?: object } = {},
) {
    return parseResponderConfig(
        {
            guardrails: {
                default: {
                    approvedPrincipals: [
                        { objectId: API, roles: ['Key Vault Secrets User'] },
                        ...(extra.approved ?? []),
                    ],
                },
                overrides: [{ match: { resourceId: VAULT_ID }, mode, authorization: 'rbac' }],
            },
            auditDestination: { eventHubAuthorizationRuleId: RULE_ID, eventHubName: 'kv-audit' },
            responderIdentities: [RESPONDER],
            ...(extra.protectedPrincipals === undefined ? {} : { protectedPrincipals: extra.protectedPrincipals }),
            remediation: { retryBudgetSeconds: 2, ...extra.remediation },
        },
        ruleIds,
        'test',
    );
}

let fake: ArmKeyVaultFake;
let access: ArmAccessRoutes;

beforeEach(async () => {
    access = armAccessRoutes();
    fake = await startArmKeyVaultFake({
        vaults: [
            makeVault({
                subscriptionId: SUB,
                resourceGroup: RG,
                name: 'kv-payments-prod',
                tenantId: TENANT,
                properties: {
                    networkAcls: {
                        bypass: 'AzureServices',
                        defaultAction: 'Deny',
                        ipRules: [],
                        virtualNetworkRules: [],
                    },
                    enableRbacAuthorization: true,
                    accessPolicies: [{ tenantId: TENANT, objectId: MALLORY, permissions: { secrets: ['get'] } }],
                },
            }),
        ],
        providerRoutes: [access.route],
    });
    access.putRoleAssignment({
        scope: RG_SCOPE,
        roleDefinitionGuid: SECRETS_USER,
        principalId: BOB,
        principalType: 'User',
        name: ASSIGNMENT_NAME,
    });
});
afterEach(async () => {
    // Nothing the remediation or the undo sent would the real APIs refuse.
    expect(fake.invalidRequests).toEqual([]);
    await fake.close();
});

function responder(config = configFor('enforce'), callLimitMs?: number) {
    const decisions = new MemoryDecisionSink();
    const store = new MemoryStateStore();
    const r = createResponder(
        config,
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin: vaultAdminFor(fake),
            access: accessAdminFor(fake, callLimitMs),
            clock: systemClock,
            store,
        },
    );
    return { ...r, sink: decisions, store };
}

const actions = (ds: readonly Decision[], action: string) =>
    ds.filter((d): d is ActionDecision => d.type === 'action' && d.action === action);
const criticals = (ds: readonly Decision[]) =>
    ds.filter((d): d is FindingDecision => d.type === 'finding' && d.rule.startsWith('remediation-'));

/** A reconcile intent of the vault for role assignments (as a trigger would record it), at one time. */
function roleAssignmentIntent(roleAssignmentIds: string[], at: number): ReconcileIntent {
    return {
        vault: VAULT_REF,
        version: 9,
        processed: 8,
        reasons: ['trigger'],
        rules: ['role-assignment-granted'],
        incidentKeys: [],
        correlationIds: [],
        earliestMs: at,
        latestMs: at,
        concurrent: [],
        roleAssignmentIds,
    };
}

describe('remove-role-assignment', () => {
    it('enforce: re-reads the assignment, deletes it, reads back 404; undo is manual: attributed, the command shown, approved for a while, no ARM write', async () => {
        const r = responder();
        await r.pipeline.processBatch([ROLE_WRITE()]);
        const [done] = actions(r.sink.decisions, 'remove-role-assignment');
        expect(done).toMatchObject({
            status: 'applied',
            rule: 'role-assignment-granted',
            vault: 'kv-payments-prod',
            detail: { verified: true, principalId: BOB, role: 'Key Vault Secrets User', scope: RG_SCOPE },
        });
        expect(access.roleAssignment(ASSIGNMENT_ID)).toBeUndefined();
        // ARM first: GET by id, DELETE by id, GET by id (404) for the read-back.
        const calls = () =>
            fake.requests
                .filter((q) => q.path.toLowerCase().includes('roleassignments'))
                .map((q) => [q.method, q.status]);
        expect(calls()).toEqual([
            ['GET', 200],
            ['DELETE', 200],
            ['GET', 404],
        ]);

        const undoId = done?.detail.undoId as string;
        const undo = await r.undoer.undo(VAULT_REF, undoId);
        // The responder's role holds no roleAssignments/write: it sends nothing to ARM for this part.
        expect(calls()).toHaveLength(3);
        expect(fake.requests.filter((q) => q.method === 'PUT')).toEqual([]);
        expect(access.roleAssignment(ASSIGNMENT_ID)).toBeUndefined();
        expect(undo.restored).toEqual([]);
        const roleDefinitionId = `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${SECRETS_USER}`;
        expect(undo.manual).toEqual([
            {
                what: `role assignment of User ${BOB} (role ${roleDefinitionId} at ${RG_SCOPE})`,
                command: `az role assignment create --assignee-object-id ${BOB} --assignee-principal-type User --role ${roleDefinitionId} --scope ${RG_SCOPE}`,
            },
        ]);
        // Recorded: the part is used (a second undo is refused), and the approval is scoped and expiring.
        await expect(r.undoer.undo(VAULT_REF, undoId)).rejects.toMatchObject({ code: 'UNDO.ALREADY_DONE' });
        const approvals = await readApprovals(r.store, VAULT_REF, Date.now());
        expect(approvals?.roles).toEqual([
            { objectId: BOB, roleDefinitionId: SECRETS_USER, scope: RG_SCOPE.toLowerCase() },
        ]);
        const until = Date.parse(undo.approvedUntil);
        expect(until).toBeGreaterThan(Date.now());
        expect(await readApprovals(r.store, VAULT_REF, until)).toBeUndefined();

        // The person runs the command with their own rights (a new assignment id, as `az` makes one).
        const recreated = access.putRoleAssignment({
            scope: RG_SCOPE,
            roleDefinitionGuid: SECRETS_USER,
            principalId: BOB,
            principalType: 'User',
        });
        // While the approval lasts, that write reconciled leaves the assignment alone.
        const again = await r.remediator.remediate(roleAssignmentIntent([recreated], Date.now()), undefined, 10);
        expect(actions(again.decisions, 'remove-role-assignment')).toMatchObject([
            { status: 'skipped', detail: { reason: 'approved-principal' } },
        ]);
        expect(access.roleAssignment(recreated)).toBeDefined();
    });

    it('a manual role-assignment undo approves that principal, role and scope only, until its expiry: after it, the reconciler deletes the re-created assignment', async () => {
        let now = Date.parse('2026-10-05T10:00:00Z');
        const clock = { now: () => now, sleep: () => Promise.resolve() };
        const decisions = new MemoryDecisionSink();
        const store = new MemoryStateStore();
        const r = createResponder(
            configFor('enforce', { remediation: { undoApprovalHours: 2 } }),
            { decisions, quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: false,
                admin: vaultAdminFor(fake),
                access: accessAdminFor(fake),
                clock,
                store,
            },
        );
        await r.pipeline.processBatch([ROLE_WRITE()]);
        const [done] = actions(decisions.decisions, 'remove-role-assignment');
        expect(done?.status).toBe('applied');
        const undo = await r.undoer.undo(VAULT_REF, done?.detail.undoId as string);
        expect(undo.approvedUntil).toBe('2026-10-05T12:00:00.000Z');
        const recreated = access.putRoleAssignment({
            scope: RG_SCOPE,
            roleDefinitionGuid: SECRETS_USER,
            principalId: BOB,
            principalType: 'User',
        });
        const intent = roleAssignmentIntent([recreated], now);
        // The same principal and role at the subscription: not what was undone, deleted even while the approval lasts.
        const broader = access.putRoleAssignment({
            scope: `/subscriptions/${SUB}`,
            roleDefinitionGuid: SECRETS_USER,
            principalId: BOB,
            principalType: 'User',
        });
        now += 3_600_000;
        const within = await r.remediator.remediate(
            { ...intent, roleAssignmentIds: [recreated, broader] },
            undefined,
            10,
        );
        expect(actions(within.decisions, 'remove-role-assignment')).toMatchObject([
            { status: 'skipped', detail: { reason: 'approved-principal' } },
            { status: 'applied', detail: { scope: `/subscriptions/${SUB}` } },
        ]);
        expect(access.roleAssignment(recreated)).toBeDefined();
        expect(access.roleAssignment(broader)).toBeUndefined();
        now += 2 * 3_600_000;
        const after = await r.remediator.remediate({ ...intent, version: 10 }, undefined, 11);
        expect(actions(after.decisions, 'remove-role-assignment')).toMatchObject([{ status: 'applied' }]);
        expect(access.roleAssignment(recreated)).toBeUndefined();
    });

    it('monitor: plans the delete and changes nothing', async () => {
        const r = responder(configFor('monitor'));
        await r.pipeline.processBatch([ROLE_WRITE()]);
        expect(actions(r.sink.decisions, 'remove-role-assignment')).toMatchObject([
            { status: 'planned', detail: { mode: 'monitor', principalId: BOB } },
        ]);
        expect(access.roleAssignment(ASSIGNMENT_ID)).toBeDefined();
        expect(fake.requests.filter((q) => q.method === 'DELETE')).toEqual([]);
    });

    it('an approved assignee (roles list) raises no finding and nothing is deleted', async () => {
        const r = responder(configFor('enforce', { approved: [{ objectId: BOB, roles: ['Key Vault Secrets User'] }] }));
        await r.pipeline.processBatch([ROLE_WRITE()]);
        expect(r.sink.decisions.filter((d) => d.type === 'finding')).toEqual([]);
        expect(actions(r.sink.decisions, 'remove-role-assignment')).toEqual([]);
        expect(access.roleAssignment(ASSIGNMENT_ID)).toBeDefined();
    });

    it('a protected principal is skipped with its reason, and an assignment gone already is compliant', async () => {
        const r = responder(configFor('enforce', { protectedPrincipals: [BOB] }));
        await r.pipeline.processBatch([ROLE_WRITE()]);
        expect(actions(r.sink.decisions, 'remove-role-assignment')).toMatchObject([
            { status: 'skipped', detail: { reason: 'protected-principal' } },
        ]);
        expect(access.roleAssignment(ASSIGNMENT_ID)).toBeDefined();

        access.deleteRoleAssignment(ASSIGNMENT_ID);
        const r2 = responder();
        await r2.pipeline.processBatch([ROLE_WRITE()]);
        expect(actions(r2.sink.decisions, 'remove-role-assignment')).toMatchObject([
            { status: 'skipped', detail: { reason: 'already-compliant' } },
        ]);
        expect(fake.requests.filter((q) => q.method === 'DELETE')).toEqual([]);
    });

    it('the blast-radius cap holds the delete back, loudly', async () => {
        // One remediation an hour: the diagnostic setting restored first uses it up.
        const r = responder(configFor('enforce', { remediation: { maxPerVaultPerHour: 1 } }));
        await r.pipeline.processBatch([DIAG_DELETE()]);
        await r.pipeline.processBatch([ROLE_WRITE()]);
        expect(actions(r.sink.decisions, 'restore-diagnostic-setting')).toMatchObject([{ status: 'applied' }]);
        expect(actions(r.sink.decisions, 'remove-role-assignment')).toMatchObject([
            { status: 'skipped', detail: { reason: 'blast-radius', cap: 'vault-hour' } },
        ]);
        expect(criticals(r.sink.decisions).map((c) => c.rule)).toContain('remediation-suspended');
        expect(access.roleAssignment(ASSIGNMENT_ID)).toBeDefined();
    });

    describe('every fault class ends in a defined outcome', () => {
        const onDelete = { method: 'DELETE', pathIncludes: 'roleAssignments' };
        it.each<[string, ArmFault, 'applied' | 'failed', boolean]>([
            ['400', { status: 400, match: onDelete }, 'failed', true],
            ['401', { status: 401, match: onDelete }, 'failed', true],
            ['403 (missing permission)', { status: 403, match: onDelete }, 'failed', true],
            ['409', { status: 409, match: onDelete }, 'failed', true],
            // 404 on the delete: the read-back shows the assignment still there (the fault changed nothing).
            ['404', { status: 404, match: onDelete }, 'failed', true],
            ['429 then success', { status: 429, retryAfterSeconds: 0, match: onDelete }, 'applied', false],
            ['503 then success', { status: 503, match: onDelete }, 'applied', false],
            ['500 past the retry budget', { status: 500, match: onDelete, times: 1000 }, 'failed', true],
            ['a reset after the delete applied', { reset: true, applied: true, match: onDelete }, 'applied', false],
            ['a reset before it applied', { reset: true, match: onDelete }, 'applied', false],
            [
                'a hang on the read, past the budget',
                { hang: true, match: { method: 'GET', pathIncludes: 'roleAssignments' }, times: 1000 },
                'failed',
                true,
            ],
        ])('%s', async (_name, fault, status, critical) => {
            const r = responder(configFor('enforce'), 300);
            fake.inject(fault);
            await r.pipeline.processBatch([ROLE_WRITE()]);
            const [a] = actions(r.sink.decisions, 'remove-role-assignment');
            expect(a?.status).toBe(status);
            expect(criticals(r.sink.decisions).length > 0).toBe(critical);
            if (status === 'applied') expect(access.roleAssignment(ASSIGNMENT_ID)).toBeUndefined();
            else expect(access.roleAssignment(ASSIGNMENT_ID)).toBeDefined();
            if (_name.startsWith('403')) expect(a?.detail.missingPermission).toBe(true);
            fake.clearFaults();
        });
    });
});

describe('restore-rbac-authorization', () => {
    it('enforce: switches RBAC back on, lists the access policies that were live; undo switches it off and approves that', async () => {
        const r = responder();
        // ARM as mallory's PATCH left it (the record is the trigger, the vault is read from ARM).
        const v = fake.vault(VAULT_ID);
        fake.setVault({ ...v, properties: { ...v.properties, enableRbacAuthorization: false } });
        await r.pipeline.processBatch([RBAC_OFF()]);
        const [done] = actions(r.sink.decisions, 'restore-rbac-authorization');
        expect(done).toMatchObject({
            status: 'applied',
            detail: {
                verified: true,
                before: false,
                after: true,
                liveAccessPolicies: [{ objectId: MALLORY, permissions: { secrets: ['get'] } }],
            },
        });
        expect(fake.vault(VAULT_ID).properties.enableRbacAuthorization).toBe(true);

        // With RBAC off, mallory's access policy was live and unapproved: the same remediation removed it.
        expect(actions(r.sink.decisions, 'remove-access-policy')).toMatchObject([{ status: 'applied' }]);
        // The incident's undo restores its own part only.
        const undo = await r.undoer.undo(VAULT_REF, done?.detail.undoId as string, {
            rules: ['rbac-authorization-disabled'],
        });
        expect(undo.restored).toEqual(['Azure RBAC authorization back to off']);
        expect(fake.vault(VAULT_ID).properties.enableRbacAuthorization).toBe(false);
        expect((await readApprovals(r.store, VAULT_REF, Date.now()))?.authorization).toBe('access-policies');
    });

    it('a policy without an authorization model only reports the switch', async () => {
        const config = parseResponderConfig(
            { guardrails: { overrides: [{ match: { resourceId: VAULT_ID }, mode: 'enforce' }] } },
            ruleIds,
            'test',
        );
        const r = responder(config);
        await r.pipeline.processBatch([RBAC_OFF()]);
        expect(actions(r.sink.decisions, 'restore-rbac-authorization')).toMatchObject([
            { status: 'skipped', detail: { reason: 'policy-allows' } },
        ]);
    });
});

describe('restore-diagnostic-setting', () => {
    it('enforce: writes the templates’ setting (AuditEvent to the configured hub) and reads it back; its undo is a manual delete', async () => {
        const r = responder();
        await r.pipeline.processBatch([DIAG_DELETE()]);
        const [done] = actions(r.sink.decisions, 'restore-diagnostic-setting');
        expect(done).toMatchObject({
            status: 'applied',
            detail: { verified: true, diagnosticSetting: 'kv-responder', replaced: false },
        });
        expect(access.diagnosticSettings(VAULT_ID)).toEqual([
            {
                name: 'kv-responder',
                eventHubAuthorizationRuleId: RULE_ID.toLowerCase(),
                eventHubName: 'kv-audit',
                logs: [{ category: 'AuditEvent', enabled: true }],
                metrics: [{ category: 'AllMetrics', enabled: false }],
            },
        ]);
        const undo = await r.undoer.undo(VAULT_REF, done?.detail.undoId as string);
        // The responder's role holds no diagnosticSettings/delete: the delete is left to the person, with its command.
        expect(undo.restored).toEqual([]);
        expect(undo.manual).toEqual([
            {
                what: 'diagnostic setting kv-responder (there was none before: delete it)',
                command: `az monitor diagnostic-settings delete --name kv-responder --resource ${VAULT_REF.resourceId}`,
            },
        ]);
        expect(fake.requests.filter((q) => q.method === 'DELETE')).toEqual([]);
        expect(access.diagnosticSettings(VAULT_ID)).toHaveLength(1);
        // Approved meanwhile: once the person deleted it, the same delete reconciled is not restored again.
        expect((await readApprovals(r.store, VAULT_REF, Date.now()))?.auditSetting).toBe('exempt');
        access.setDiagnosticSettings(VAULT_ID, []);
        const again = await r.remediator.remediate(
            {
                vault: VAULT_REF,
                version: 9,
                processed: 8,
                reasons: ['trigger'],
                rules: ['diagnostic-setting-removed'],
                incidentKeys: [],
                correlationIds: [],
                earliestMs: Date.now(),
                latestMs: Date.now(),
                concurrent: [],
            },
            undefined,
            10,
        );
        expect(actions(again.decisions, 'restore-diagnostic-setting')).toMatchObject([{ status: 'skipped' }]);
        expect(access.diagnosticSettings(VAULT_ID)).toEqual([]);
    });

    it('another setting that still sends AuditEvent to the hub: already compliant, nothing written', async () => {
        access.setDiagnosticSettings(VAULT_ID, [
            {
                name: 'platform',
                eventHubAuthorizationRuleId: RULE_ID,
                eventHubName: 'kv-audit',
                logs: [{ categoryGroup: 'audit', enabled: true }],
            },
        ]);
        const r = responder();
        await r.pipeline.processBatch([DIAG_DELETE()]);
        expect(actions(r.sink.decisions, 'restore-diagnostic-setting')).toMatchObject([
            { status: 'skipped', detail: { reason: 'already-compliant', diagnosticSetting: 'platform' } },
        ]);
        expect(fake.requests.filter((q) => q.method === 'PUT')).toEqual([]);
    });

    it.each<[string, ArmFault, 'applied' | 'failed']>([
        ['403', { status: 403, match: { method: 'PUT', pathIncludes: 'diagnosticSettings' } }, 'failed'],
        ['429 then success', { status: 429, match: { method: 'PUT', pathIncludes: 'diagnosticSettings' } }, 'applied'],
        [
            'a reset after the write applied',
            { reset: true, applied: true, match: { method: 'PUT', pathIncludes: 'diagnosticSettings' } },
            'applied',
        ],
        [
            'a hang on the list, past the budget',
            { hang: true, match: { method: 'GET', pathIncludes: 'diagnosticSettings' }, times: 1000 },
            'failed',
        ],
    ])('fault %s', async (_name, fault, status) => {
        const r = responder(configFor('enforce'), 300);
        fake.inject(fault);
        await r.pipeline.processBatch([DIAG_DELETE()]);
        expect(actions(r.sink.decisions, 'restore-diagnostic-setting')[0]?.status).toBe(status);
        expect(criticals(r.sink.decisions).length > 0).toBe(status === 'failed');
        fake.clearFaults();
    });
});

describe('manual undo through the signed link (alerting, ARM simulator)', () => {
    const signer = LocalLinkSigner.generate('manual-undo-test-key');

    function withAlerting() {
        const clock = new TestClock(Date.parse('2026-10-05T09:06:00.000Z'));
        const config = configFor('enforce');
        const decisions = new MemoryDecisionSink();
        const teams = new RecordingChannel('teams');
        const email = new RecordingChannel('email');
        const links = new LinkTokens(signer, 'https://kvr-func.example.net', config.alerting.linkTtlMs, clock);
        const r = createResponder(
            config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: false,
                admin: vaultAdminFor(fake),
                access: accessAdminFor(fake),
                clock,
                store: new MemoryStateStore(),
                owner: 'manual-undo-test',
                alerting: {
                    channels: { teams, email },
                    mailFrom: 'kv-responder@contoso.example',
                    links,
                    log: { info: () => {}, warn: () => {}, error: () => {} },
                },
            },
        );
        if (r.alerting === undefined) throw new Error('createResponder built no alerting');
        return { r, alerting: r.alerting, decisions, teams, clock };
    }

    it('role assignment: the link records who undid it, shows the az command on the page, in the result and the notice, approves, and sends nothing to ARM', async () => {
        const h = withAlerting();
        await h.r.pipeline.processBatch([ROLE_WRITE()]);
        expect(actions(h.decisions.decisions, 'remove-role-assignment')).toMatchObject([{ status: 'applied' }]);
        const opened = h.teams.sent.filter((n) => n.kind === 'opened');
        expect(opened).toHaveLength(1);
        const card = opened[0] as OutgoingNotification;
        if (card.channel !== 'teams') throw new Error('not a Teams card');
        const content = card.teams.attachments[0]?.content as { actions?: { title: string; url: string }[] };
        const undoUrl = content.actions?.find((a) => a.title === 'Undo remediation')?.url;
        const token = new URL(undoUrl ?? 'https://x/').searchParams.get('t') ?? '';
        const id = card.incidentId;

        const roleDefinitionId = `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${SECRETS_USER}`;
        const command = `az role assignment create --assignee-object-id ${BOB} --assignee-principal-type User --role ${roleDefinitionId} --scope ${RG_SCOPE}`;
        // The page before: the undo leaves this to the person, with the command.
        const inc = await h.alerting.get(id);
        const page = incidentPageContext(inc as Incident, await h.alerting.undoRecordsOf(inc as Incident));
        expect(page.remediations[0]?.restores).toEqual([
            `left to you, with your own rights: role assignment of User ${BOB} (role ${roleDefinitionId} at ${RG_SCOPE}): ${command}`,
        ]);

        fake.clearLog();
        const outcome = await h.alerting.act(id, 'undo', token, { by: 'oncall@contoso.example', byId: ALICE_OID });
        expect(outcome.kind).toBe('done');
        expect(outcome.message).toContain('nothing restored by the responder');
        expect(outcome.message).toContain(command);
        // No ARM write at all: the person re-grants with their own rights.
        expect(fake.requests.filter((q) => q.method !== 'GET')).toEqual([]);
        expect(access.roleAssignment(ASSIGNMENT_ID)).toBeUndefined();

        const after = (await h.alerting.get(id)) as Incident;
        expect(after.undone).toMatchObject({
            by: 'oncall@contoso.example',
            byId: ALICE_OID,
            restored: [],
            approved: [`role ${SECRETS_USER} for ${BOB} at ${RG_SCOPE.toLowerCase()}`],
            manual: [command],
        });
        const undone = h.teams.sent.filter((n) => n.kind === 'undone' && n.incidentId === id);
        expect(undone).toHaveLength(1);
        const text = JSON.stringify(
            (undone[0] as OutgoingNotification & { channel: 'teams' }).teams.attachments[0]?.content,
        );
        expect(text).toContain('Left to the person who undid, to run with their own rights');
        expect(text).toContain(command);
        // The decision log names who and what is left to do.
        expect(
            h.decisions.decisions.filter((d): d is ActionDecision => d.type === 'action' && d.action === 'undo'),
        ).toMatchObject([
            { status: 'applied', detail: { by: 'oncall@contoso.example', manual: [expect.stringContaining(command)] } },
        ]);
    });
});

describe('Activity Log vault writes reconcile the vault against ARM', () => {
    const VAULT_WRITES = (
        JSON.parse(readFileSync(join(REPO, 'test/fixtures/activity-log/vault-writes.json'), 'utf8')) as {
            records: Record<string, unknown>[];
        }
    ).records;

    /** The firewall opened in ARM, with no AuditEvent record of it. */
    function openFirewallInArm(): void {
        const v = fake.vault(VAULT_ID);
        fake.setVault({
            ...v,
            properties: { ...v.properties, networkAcls: { ...v.properties.networkAcls, defaultAction: 'Allow' } },
        });
    }

    it('a vault write seen only in the Activity Log (no AuditEvent) gets the firewall opened through ARM closed again', async () => {
        // The change as ARM holds it: only the Activity Log carries it.
        openFirewallInArm();
        const r = responder();
        await r.pipeline.processBatch([{ body: { records: VAULT_WRITES.slice(0, 2) } }]);
        expect(actions(r.sink.decisions, 'restore-firewall-default')).toMatchObject([
            { status: 'applied', vault: 'kv-payments-prod', detail: { verified: true } },
        ]);
        expect(fake.vault(VAULT_ID).properties.networkAcls?.defaultAction).toBe('Deny');
    });

    it('a denied write, the responder’s own write and a write on a vault the config does not name change nothing', async () => {
        openFirewallInArm();
        const r = responder();
        await r.pipeline.processBatch([{ body: { records: VAULT_WRITES.slice(3) } }]);
        expect(r.sink.decisions.filter((d) => d.type === 'action')).toEqual([]);
        expect(fake.requests.filter((q) => q.method !== 'GET')).toEqual([]);
        expect(fake.vault(VAULT_ID).properties.networkAcls?.defaultAction).toBe('Allow');
    });
});
