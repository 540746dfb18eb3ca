// Undo of a remediation from the alert, end to end: the ARM simulator behind the real @azure/arm-keyvault client, the
// responder built by createResponder with alerting (recording channels, signed links), and Alerting.act as the POST
// of the undo page would call it.
import { HttpRequest } from '@azure/functions';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { LinkTokens } from '../../shared/app/alerting';
import { createResponder, type Responder } from '../../shared/app/createPipeline';
import { handleIncidentLink, type IncidentLinkDeps } from '../../shared/app/handlers/handleIncidentLink';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Incident } from '../../shared/core/alerts/incident';
import type { NoticeKind, OutgoingNotification } from '../../shared/core/alerts/types';
import type { ActionDecision, Decision, FindingDecision } from '../../shared/core/decisions';
import type { Logger } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import { stateKey } from '../../shared/core/state/store';
import { useArmKeyVaultFake, vaultAdminFor } from '../fakes/armClient';
import { fixtureBody } from '../support/fixtures';
import { RecordingChannel, TestClock } from '../support/alertingDoubles';
import { makeContext } from '../support/context';
import { paymentsVault, RESOURCE_ID, TENANT, VAULT } from '../support/paymentsVault';

const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';
const ALICE = 'a1a1a1a1-0000-4000-8000-0000000000a1';
const EVE = 'e5e5e5e5-0000-4000-8000-0000000000e5';
const API = 'c0c0c0c0-0000-4000-8000-0000000000a1';
const BREAK_GLASS = 'b6b6b6b6-0000-4000-8000-0000000000b6';
const RESPONDER = '5e5e5e5e-0000-4000-8000-00000000005e';
const PUBLIC_URL = 'https://kvr-func.example.net';
const PERSON = { by: 'oncall@contoso.example', from: '198.51.100.7' };

interface LogLine {
    readonly level: 'info' | 'warn' | 'error';
    readonly message: string;
    readonly fields: Readonly<Record<string, unknown>>;
}

class RecordingLogger implements Logger {
    readonly lines: LogLine[] = [];
    info(message: string, fields: Readonly<Record<string, unknown>> = {}): void {
        this.lines.push({ level: 'info', message, fields });
    }
    warn(message: string, fields: Readonly<Record<string, unknown>> = {}): void {
        this.lines.push({ level: 'warn', message, fields });
    }
    error(message: string, fields: Readonly<Record<string, unknown>> = {}): void {
        this.lines.push({ level: 'error', message, fields });
    }
}

/** The vault as the attack left it: firewall open, an approved IP rule, the approved app and break-glass. */
function openedVault() {
    return paymentsVault({
        networkAcls: {
            bypass: 'AzureServices',
            defaultAction: 'Allow',
            ipRules: [{ value: '198.51.100.7/32' }],
            virtualNetworkRules: [],
        },
        publicNetworkAccess: 'Enabled',
        enableRbacAuthorization: false,
        accessPolicies: [
            { tenantId: TENANT, objectId: API, permissions: { secrets: ['Get', 'List'] } },
            { tenantId: TENANT, objectId: BREAK_GLASS, permissions: { secrets: ['all'] } },
        ],
    });
}

const EVE_POLICY = { tenantId: TENANT, objectId: EVE, permissions: { keys: ['get'], secrets: ['get', 'list'] } };

/** The vault after Alice granted Eve access (firewall closed). */
function grantedVault() {
    const v = openedVault();
    return paymentsVault({
        ...v.properties,
        networkAcls: { ...v.properties.networkAcls, defaultAction: 'Deny' },
        accessPolicies: [...(v.properties.accessPolicies ?? []), EVE_POLICY],
    });
}

function configFor(mode: 'enforce' | 'monitor', extra: Record<string, unknown> = {}) {
    return parseResponderConfig(
        {
            guardrails: {
                default: {
                    ...extra,
                    networkDefaultAction: 'Deny',
                    approvedIpRanges: ['198.51.100.0/24'],
                    approvedPrincipals: [
                        { objectId: API, permissions: { secrets: ['get', 'list'] } },
                        ...((extra.approvedPrincipals as unknown[] | undefined) ?? []),
                    ],
                },
                overrides: [{ match: { vaultName: VAULT }, mode }],
            },
            protectedPrincipals: [BREAK_GLASS],
            responderIdentities: [RESPONDER],
            remediation: { retryBudgetSeconds: 3 },
            alerting: {
                rosters: {
                    default: {
                        tiers: [
                            { name: 'secops', email: ['secops@contoso.example'], teams: true },
                            { name: 'ciso', email: ['ciso@contoso.example'], teams: false },
                        ],
                    },
                },
            },
        },
        ruleIds,
        'undo-test',
    );
}

interface Record0 {
    time: string;
    correlationId: string;
    resourceId: string;
    properties: Record<string, unknown>;
    identity: { claim: Record<string, string> };
}

function record0(body: { records: Record<string, unknown>[] }): Record0 {
    return body.records[0] as unknown as Record0;
}

/** Mallory patched the firewall open (VaultPatch, after-state default action Allow). */
function firewallAttack(time = '2026-10-05T09:05:00.0000000Z', correlationId = 'firewall-1') {
    const body = fixtureBody('vault-patch-firewall-allow.json');
    const r = record0(body);
    r.resourceId = RESOURCE_ID;
    r.time = time;
    r.correlationId = correlationId;
    return body;
}

/** Alice granted Eve keys/get and secrets/get,list (VaultPatch with addedAccessPolicy). */
function grantAttack(time = '2026-10-05T09:07:00.0000000Z', correlationId = 'grant-1') {
    const body = fixtureBody('vault-patch-access-policy-added.json');
    const r = record0(body);
    r.resourceId = RESOURCE_ID;
    r.time = time;
    r.correlationId = correlationId;
    r.identity.claim['http://schemas.microsoft.com/identity/claims/objectidentifier'] = ALICE;
    r.identity.claim['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn'] = 'alice@contoso.example';
    r.identity.claim['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name'] = 'alice@contoso.example';
    r.properties.addedAccessPolicy = {
        TenantId: TENANT,
        ObjectId: EVE,
        Permissions: { keys: ['get'], secrets: ['get', 'list'], certificates: [] },
    };
    return body;
}

/** Mallory enabled public network access (VaultPatch). */
function publicAccessAttack(time = '2026-10-05T09:05:30.0000000Z', correlationId = 'pna-1') {
    const body = fixtureBody('vault-patch-public-network-enabled.json');
    const r = record0(body);
    r.resourceId = RESOURCE_ID;
    r.time = time;
    r.correlationId = correlationId;
    r.identity.claim['http://schemas.microsoft.com/identity/claims/objectidentifier'] = MALLORY;
    return body;
}

const MALLORY_POLICY = { tenantId: TENANT, objectId: MALLORY, permissions: { secrets: ['get', 'list'] } };

/** Mallory granted itself secrets get, list (VaultPatch with addedAccessPolicy naming the caller). */
function selfGrantAttack(time = '2026-10-05T09:05:45.0000000Z', correlationId = 'self-grant-1') {
    const body = grantAttack(time, correlationId);
    const r = record0(body);
    r.identity.claim['http://schemas.microsoft.com/identity/claims/objectidentifier'] = MALLORY;
    r.identity.claim['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn'] = 'mallory@contoso.example';
    r.identity.claim['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name'] = 'mallory@contoso.example';
    r.properties.addedAccessPolicy = {
        TenantId: TENANT,
        ObjectId: MALLORY,
        Permissions: { keys: [], secrets: ['get', 'list'], certificates: [] },
    };
    return body;
}

const arm = useArmKeyVaultFake();
afterEach(() => {
    // Neither the remediation nor the undo sent a request the real API would reject.
    expect(arm.fake.invalidRequests).toEqual([]);
});

interface Harness {
    readonly responder: Responder;
    readonly alerting: NonNullable<Responder['alerting']>;
    readonly decisions: MemoryDecisionSink;
    readonly teams: RecordingChannel;
    readonly email: RecordingChannel;
    readonly log: RecordingLogger;
    readonly clock: TestClock;
    readonly links: LinkTokens;
}

const signer = LocalLinkSigner.generate('undo-test-key');

function harness(mode: 'enforce' | 'monitor' = 'enforce', policy: Record<string, unknown> = {}): Harness {
    const clock = new TestClock(Date.parse('2026-10-05T09:06:00.000Z'));
    const config = configFor(mode, policy);
    const decisions = new MemoryDecisionSink();
    const teams = new RecordingChannel('teams');
    const email = new RecordingChannel('email');
    const log = new RecordingLogger();
    const links = new LinkTokens(signer, PUBLIC_URL, config.alerting.linkTtlMs, clock);
    const responder = createResponder(
        config,
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: false,
            admin: vaultAdminFor(arm.fake),
            clock,
            store: new MemoryStateStore(),
            owner: 'undo-test',
            alerting: { channels: { teams, email }, mailFrom: 'kv-responder@contoso.example', links, log },
        },
    );
    const alerting = responder.alerting;
    if (alerting === undefined) throw new Error('createResponder built no alerting');
    return { responder, alerting, decisions, teams, email, log, clock, links };
}

const actionsOf = (ds: readonly Decision[]) => ds.filter((d): d is ActionDecision => d.type === 'action');
const findingsOf = (ds: readonly Decision[]) => ds.filter((d): d is FindingDecision => d.type === 'finding');
const writes = () => arm.fake.requests.filter((r) => r.method !== 'GET');

interface CardAction {
    readonly title: string;
    readonly url: string;
}

function cardActions(n: OutgoingNotification): CardAction[] {
    if (n.channel !== 'teams') throw new Error('not a Teams notification');
    const content = n.teams.attachments[0]?.content as { actions?: CardAction[] } | undefined;
    return content?.actions ?? [];
}

function cardText(n: OutgoingNotification): string {
    if (n.channel !== 'teams') throw new Error('not a Teams notification');
    return JSON.stringify(n.teams.attachments[0]?.content);
}

/** The Teams cards of one kind (optionally for one incident). */
function cards(h: Harness, kind: NoticeKind, incidentId?: string): OutgoingNotification[] {
    return h.teams.sent.filter((n) => n.kind === kind && (incidentId === undefined || n.incidentId === incidentId));
}

/** The one `opened` card of the incident opened by `rule`, and the token of its undo button. */
function undoLinkOf(h: Harness, rule: string): { incidentId: string; url: URL; token: string } {
    const opened = cards(h, 'opened').filter((n) => cardText(n).includes(`· ${rule} ·`));
    expect(opened).toHaveLength(1);
    const card = opened[0] as OutgoingNotification;
    const undo = cardActions(card).find((a) => a.title === 'Undo remediation');
    if (undo === undefined) throw new Error(`the ${rule} card has no undo button: ${cardText(card)}`);
    const url = new URL(undo.url);
    const token = url.searchParams.get('t');
    if (token === null || token === '') throw new Error(`the undo URL carries no token: ${undo.url}`);
    return { incidentId: card.incidentId, url, token };
}

async function incident(h: Harness, id: string): Promise<Incident> {
    const inc = await h.alerting.get(id);
    if (inc === undefined) throw new Error(`no incident ${id}`);
    return inc;
}

/** A fresh undo token for the incident, as a re-sent card would carry. */
async function freshToken(h: Harness, id: string, act: 'ack' | 'undo' = 'undo'): Promise<string> {
    return new URL(await h.links.issue(id, act)).searchParams.get('t') ?? '';
}

async function approvalsOf(h: Harness): Promise<unknown> {
    const [s] = await h.responder.store.getMany([stateKey(VAULT, 'approvals')]);
    return s?.value;
}

describe('undo of a remediation from the alert (ARM simulator, real ARM client)', () => {
    it('firewall opened: the undo link restores Allow, records who undid it, notifies, and approves the state', async () => {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);

        // The remediation: one PATCH setting the default action back to Deny, verified.
        const applied = actionsOf(h.decisions.decisions).filter((a) => a.status === 'applied');
        expect(applied.map((a) => [a.action, a.rule])).toEqual([['restore-firewall-default', 'firewall-opened']]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        expect(writes().map((r) => r.method)).toEqual(['PATCH']);

        // The card carries an undo button with a signed token bound to the incident.
        const { incidentId, url, token } = undoLinkOf(h, 'firewall-opened');
        expect(url.origin).toBe(PUBLIC_URL);
        expect(url.pathname).toBe(`/api/incidents/${incidentId}/undo`);
        expect(token.split('.')).toHaveLength(3);
        expect(h.email.sent.filter((n) => n.kind === 'opened' && n.incidentId === incidentId)).toHaveLength(1);
        const before = await incident(h, incidentId);
        expect(before.principal).toBe(MALLORY);
        expect(before.actions).toEqual([
            expect.objectContaining({
                action: 'restore-firewall-default',
                status: 'applied',
                undoId: applied[0]?.detail.undoId,
            }),
        ]);

        // GET shows the page and changes nothing.
        arm.fake.clearLog();
        expect(await h.alerting.view(incidentId, 'undo', token)).toMatchObject({ kind: 'done' });
        expect(writes()).toEqual([]);

        h.clock.advance(5 * 60_000);
        const undoneAt = new Date(h.clock.now()).toISOString();
        const outcome = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(outcome).toMatchObject({
            kind: 'done',
            message: 'Remediation undone: firewall default action back to Allow',
        });

        // ARM: one PATCH that puts Allow back and keeps everything else.
        const v = arm.fake.vault(VAULT).properties;
        expect(v.networkAcls).toEqual({
            bypass: 'AzureServices',
            defaultAction: 'Allow',
            ipRules: [{ value: '198.51.100.7/32' }],
            virtualNetworkRules: [],
        });
        expect(v.publicNetworkAccess).toBe('Enabled');
        expect(writes().map((r) => r.method)).toEqual(['PATCH']);
        expect(writes()[0]?.body).toMatchObject({ properties: { networkAcls: { defaultAction: 'Allow' } } });

        // The incident says who undid it, from where and when.
        const after = await incident(h, incidentId);
        const approvedUntil = new Date(h.clock.now() + 24 * 3_600_000).toISOString();
        expect(after.undone).toEqual({
            ...PERSON,
            at: undoneAt,
            undoId: applied[0]?.detail.undoId,
            restored: ['firewall default action back to Allow'],
            approved: ['firewall default action Allow'],
            approvedUntil,
        });
        expect(after.history.at(-1)?.what).toBe(
            `remediation undone by oncall@contoso.example: firewall default action back to Allow; approved until ${approvedUntil}: firewall default action Allow`,
        );

        // The undone notice went out on both channels of the notified tier, without another undo button.
        const undoneCards = cards(h, 'undone', incidentId);
        expect(undoneCards).toHaveLength(1);
        expect(cardText(undoneCards[0] as OutgoingNotification)).toContain(
            `Restored: firewall default action back to Allow. Approved for this vault until ${approvedUntil}: firewall default action Allow. After that the policy is enforced again.`,
        );
        expect(cardActions(undoneCards[0] as OutgoingNotification).map((a) => a.title)).not.toContain(
            'Undo remediation',
        );
        expect(h.email.sent.filter((n) => n.kind === 'undone' && n.incidentId === incidentId)).toHaveLength(1);
        expect(h.log.lines).toContainEqual(
            expect.objectContaining({ level: 'warn', message: 'kvr.undone', fields: expect.objectContaining(PERSON) }),
        );
        expect(await approvalsOf(h)).toEqual({
            v: 2,
            grants: [
                {
                    ipRanges: [],
                    principals: [],
                    networkDefaultAction: 'Allow',
                    until: Date.parse(approvedUntil),
                    undoId: applied[0]?.detail.undoId,
                },
            ],
        });

        // A replay of the attack (new correlation id, later time): detected again, but not reverted again.
        arm.fake.clearLog();
        h.decisions.decisions.length = 0;
        h.clock.advance(2 * 3_600_000);
        await h.responder.pipeline.processBatch([
            { body: firewallAttack('2026-10-05T11:05:00.0000000Z', 'firewall-replay') },
        ]);
        expect(findingsOf(h.decisions.decisions).map((f) => f.rule)).toContain('firewall-opened');
        expect(actionsOf(h.decisions.decisions).filter((a) => a.status !== 'skipped')).toEqual([]);
        expect(writes()).toEqual([]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
        // The replay's incident offers no undo: nothing was changed.
        const replayCards = cards(h, 'opened').filter((n) => n.incidentId !== incidentId);
        expect(replayCards).toHaveLength(1);
        expect(cardActions(replayCards[0] as OutgoingNotification).map((a) => a.title)).toEqual([
            'Acknowledge',
            'Open vault in the Azure portal',
        ]);

        // The approval expires: the same attack 36 hours after the undo is remediated again.
        arm.fake.clearLog();
        h.decisions.decisions.length = 0;
        h.clock.advance(34 * 3_600_000);
        await h.responder.pipeline.processBatch([
            { body: firewallAttack('2026-10-06T21:11:00.0000000Z', 'firewall-36h-later') },
        ]);
        expect(
            actionsOf(h.decisions.decisions)
                .filter((a) => a.action === 'restore-firewall-default')
                .map((a) => [a.status, a.detail.reason]),
        ).toEqual([['applied', undefined]]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        expect(writes().map((r) => r.method)).toEqual(['PATCH']);
    });

    // Measured before: the approval an undo wrote never expired, so the same attack 36 h later was skipped as
    // policy-allows and the vault stayed open.
    it('the approval expires: the same attack within the window is allowed, 36 h later it is remediated again', async () => {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        expect((await h.alerting.act(incidentId, 'undo', token, PERSON)).kind).toBe('done');
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');

        const restoreDecisions = () =>
            actionsOf(h.decisions.decisions)
                .filter((a) => a.action === 'restore-firewall-default')
                .map((a) => [a.status, a.detail.reason]);
        h.decisions.decisions.length = 0;
        h.clock.advance(12 * 3_600_000);
        await h.responder.pipeline.processBatch([
            { body: firewallAttack('2026-10-05T21:05:00.0000000Z', 'firewall-12h-later') },
        ]);
        expect(restoreDecisions()).toEqual([['skipped', 'policy-allows']]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');

        h.decisions.decisions.length = 0;
        h.clock.advance(24 * 3_600_000);
        await h.responder.pipeline.processBatch([
            { body: firewallAttack('2026-10-06T21:05:00.0000000Z', 'firewall-36h-later') },
        ]);
        expect(restoreDecisions()).toEqual([['applied', undefined]]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
    });

    it('access policy granted: the undo puts the entry back with its permissions, and a replay leaves it', async () => {
        arm.fake.setVault(grantedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: grantAttack() }]);
        expect(
            actionsOf(h.decisions.decisions)
                .filter((a) => a.status === 'applied')
                .map((a) => [a.action, a.rule, a.detail.objectId]),
        ).toEqual([['remove-access-policy', 'access-policy-granted', EVE]]);
        expect(arm.fake.vault(VAULT).properties.accessPolicies?.map((p) => p.objectId)).toEqual([API, BREAK_GLASS]);

        const { incidentId, token } = undoLinkOf(h, 'access-policy-granted');
        arm.fake.clearLog();
        const outcome = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(outcome.kind).toBe('done');
        expect(outcome.message).toBe(
            `Remediation undone: access policy of ${EVE} restored (keys: get; secrets: get, list)`,
        );
        expect(writes().map((r) => `${r.method} ${r.path.replace(/^.*\/vaults\/[^/]+/, '')}`)).toEqual([
            'PUT /accessPolicies/add',
        ]);
        expect(arm.fake.vault(VAULT).properties.accessPolicies).toEqual([
            { tenantId: TENANT, objectId: API, permissions: { secrets: ['Get', 'List'] } },
            { tenantId: TENANT, objectId: BREAK_GLASS, permissions: { secrets: ['all'] } },
            EVE_POLICY,
        ]);
        expect((await incident(h, incidentId)).undone).toMatchObject({ ...PERSON, at: expect.any(String) });
        expect(cards(h, 'undone', incidentId)).toHaveLength(1);

        // Replay (after the finding window): the grant is detected again (the configured policy does not know Eve),
        // the remediator reads the vault and finds the restored entry approved: Eve stays.
        arm.fake.clearLog();
        h.decisions.decisions.length = 0;
        h.clock.advance(2 * 3_600_000);
        await h.responder.pipeline.processBatch([
            { body: grantAttack('2026-10-05T11:07:00.0000000Z', 'grant-replay') },
        ]);
        expect(findingsOf(h.decisions.decisions).map((f) => f.rule)).toContain('access-policy-granted');
        const ap = actionsOf(h.decisions.decisions).filter((a) => a.action === 'remove-access-policy');
        // Only break-glass (protected, beyond the approved set) is named; nothing about Eve is left to remove.
        expect(ap.map((a) => [a.status, a.detail.reason, a.detail.objectId])).toEqual([
            ['skipped', 'protected-principal', BREAK_GLASS],
        ]);
        expect(arm.fake.requests.length).toBeGreaterThan(0); // the remediator did read the vault
        expect(arm.fake.requests.every((r) => r.method === 'GET')).toBe(true);
        expect(arm.fake.requests.filter((r) => r.path.includes('/accessPolicies/'))).toEqual([]);
        expect(writes()).toEqual([]);
        expect(arm.fake.vault(VAULT).properties.accessPolicies).toContainEqual(EVE_POLICY);
    });

    it('a second undo with a new token, or the same token again, is "already undone" and changes nothing', async () => {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        const first = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(first.kind).toBe('done');
        const undoneAt = (await incident(h, incidentId)).undone?.at;
        arm.fake.clearLog();
        const sentBefore = h.teams.sent.length + h.email.sent.length;

        h.clock.advance(60_000);
        const second = await h.alerting.act(incidentId, 'undo', await freshToken(h, incidentId), {
            by: 'someone-else@contoso.example',
            from: '192.0.2.1',
        });
        expect(second).toMatchObject({
            kind: 'already',
            message: `Remediation already undone at ${undoneAt} by oncall@contoso.example`,
        });
        expect(second.message).toMatch(/^Remediation already undone/);
        const replayed = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(replayed).toMatchObject({ kind: 'already', message: second.message });
        expect(await h.alerting.view(incidentId, 'undo', token)).toMatchObject({ kind: 'already' });

        expect(arm.fake.requests).toEqual([]);
        expect(h.teams.sent.length + h.email.sent.length).toBe(sentBefore);
        expect((await incident(h, incidentId)).undone).toMatchObject({ ...PERSON, at: undoneAt });
    });

    it('restores only what the remediation removed, relative to the vault as it is now', async () => {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        // After the remediation, someone adds an (approved) IP rule.
        const remediated = arm.fake.vault(VAULT);
        const acl = remediated.properties.networkAcls;
        expect(acl?.defaultAction).toBe('Deny');
        arm.fake.setVault({
            ...remediated,
            properties: {
                ...remediated.properties,
                networkAcls: { ...acl, ipRules: [...(acl?.ipRules ?? []), { value: '198.51.100.9/32' }] },
            },
        });
        arm.fake.clearLog();

        const outcome = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(outcome).toMatchObject({
            kind: 'done',
            message: 'Remediation undone: firewall default action back to Allow',
        });
        expect(arm.fake.vault(VAULT).properties.networkAcls).toEqual({
            bypass: 'AzureServices',
            defaultAction: 'Allow',
            ipRules: [{ value: '198.51.100.7/32' }, { value: '198.51.100.9/32' }],
            virtualNetworkRules: [],
        });
        expect(writes().map((r) => r.method)).toEqual(['PATCH']);
    });

    it('when someone already put the state back, the undo changes nothing in ARM and says so', async () => {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        arm.fake.setVault(openedVault()); // opened again by hand (the responder did not see it yet)
        arm.fake.clearLog();

        const outcome = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(outcome).toMatchObject({
            kind: 'done',
            message: 'Remediation undone: nothing to restore: the vault already has the saved state',
        });
        expect(writes()).toEqual([]);
        expect((await incident(h, incidentId)).undone?.restored).toEqual([
            'nothing to restore: the vault already has the saved state',
        ]);
        // Still approved: the state the person asked for stays.
        expect(await approvalsOf(h)).toMatchObject({
            grants: [expect.objectContaining({ networkDefaultAction: 'Allow' })],
        });
    });

    it('an undo whose ARM call is refused (403) is refused with the reason, logged, and can be retried', async () => {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        const sentBefore = h.teams.sent.length + h.email.sent.length;
        arm.fake.clearLog();
        arm.fake.inject({ status: 403, match: { method: 'PATCH' } });

        const outcome = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(outcome.kind).toBe('refused');
        expect(outcome).toMatchObject({ status: 409 });
        expect(outcome.message).toMatch(/^undo failed: /);
        expect(outcome.message).toContain(
            "does not have authorization to perform action 'Microsoft.KeyVault/vaults/write'",
        );
        const failedLog = h.log.lines.filter((l) => l.message === 'kvr.undo-failed');
        expect(failedLog).toEqual([
            expect.objectContaining({
                level: 'error',
                fields: expect.objectContaining({ incident: incidentId, vault: VAULT, error: expect.any(String) }),
            }),
        ]);
        // The PATCH was tried and refused; the vault is as the remediation left it; the incident is not undone.
        expect(arm.fake.requests.filter((r) => r.method === 'PATCH').map((r) => r.status)).toEqual([403]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        const inc = await incident(h, incidentId);
        expect(inc.undone).toBeUndefined();
        expect(h.teams.sent.length + h.email.sent.length).toBe(sentBefore);
        expect(h.log.lines.some((l) => l.message === 'kvr.undone')).toBe(false);

        // The link was not used up: once the permission is there, the same link works.
        const retried = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(retried.kind).toBe('done');
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
    });

    it('a failed undo leaves no approval behind: the next attack is still remediated', async () => {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        arm.fake.inject({ status: 403, match: { method: 'PATCH' } });
        expect((await h.alerting.act(incidentId, 'undo', token, PERSON)).kind).toBe('refused');
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');

        // Nobody approved an open firewall: when it is opened again, the responder closes it again.
        arm.fake.setVault(openedVault());
        arm.fake.clearLog();
        h.decisions.decisions.length = 0;
        h.clock.advance(2 * 3_600_000);
        await h.responder.pipeline.processBatch([
            { body: firewallAttack('2026-10-05T11:05:00.0000000Z', 'firewall-again') },
        ]);
        expect(
            actionsOf(h.decisions.decisions)
                .filter((a) => a.action === 'restore-firewall-default')
                .map((a) => [a.status, a.detail.reason]),
        ).toEqual([['applied', undefined]]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
    });

    it('monitor mode: no remediation, no undo link, and undo tokens that do not fit are refused', async () => {
        arm.fake.setVault(openedVault());
        const h = harness('monitor');
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        expect(actionsOf(h.decisions.decisions).map((a) => [a.action, a.status])).toEqual([
            ['restore-firewall-default', 'planned'],
        ]);
        expect(writes()).toEqual([]);
        const opened = cards(h, 'opened');
        expect(opened).toHaveLength(1);
        const card = opened[0] as OutgoingNotification;
        const id = card.incidentId;
        expect(cardActions(card).map((a) => a.title)).toEqual(['Acknowledge', 'Open vault in the Azure portal']);
        expect(JSON.stringify(h.email.sent)).not.toContain('/undo?t=');

        // Forged: signed by a key that is not ours.
        const forger = new LinkTokens(LocalLinkSigner.generate('undo-test-key'), PUBLIC_URL, 3_600_000, h.clock);
        const forged = new URL(await forger.issue(id, 'undo')).searchParams.get('t') ?? '';
        expect(await h.alerting.act(id, 'undo', forged, PERSON)).toEqual({
            kind: 'refused',
            status: 403,
            message: 'the link signature is not valid',
        });
        // Ours, but for another incident.
        const other = await freshToken(h, 'aaaaaaaaaaaaaaaa0', 'undo');
        expect(await h.alerting.act(id, 'undo', other, PERSON)).toEqual({
            kind: 'refused',
            status: 403,
            message: 'the token belongs to another incident',
        });
        // Ours, for this incident, but the acknowledge link's token.
        const ack = buttonToken(card, 'Acknowledge');
        expect(await h.alerting.act(id, 'undo', ack, PERSON)).toEqual({
            kind: 'refused',
            status: 403,
            message: 'the token is for "ack", not "undo"',
        });
        expect(await h.alerting.act(id, 'undo', 'not-a-token', PERSON)).toMatchObject({ kind: 'refused', status: 400 });
        // Even a valid undo token for this incident finds nothing to undo.
        const valid = await h.alerting.act(id, 'undo', await freshToken(h, id, 'undo'), PERSON);
        expect(valid).toMatchObject({ kind: 'already', message: 'This incident has no applied remediation to undo.' });

        expect(arm.fake.requests.filter((r) => r.method !== 'GET')).toEqual([]);
        expect((await incident(h, id)).undone).toBeUndefined();
        expect(h.log.lines.some((l) => l.message === 'kvr.undone')).toBe(false);
        expect(cards(h, 'undone')).toEqual([]);
    });
    // One remediation plan (one undo id) can answer several rules, each its own incident: each incident's undo restores
    // only its own rule's part, and the other incident stays undoable on its own.
    it('sibling incidents of one remediation are undone independently, each restoring only its own part', async () => {
        const v = openedVault();
        const acl = v.properties.networkAcls;
        arm.fake.setVault({
            ...v,
            properties: {
                ...v.properties,
                networkAcls: { ...acl, ipRules: [...(acl?.ipRules ?? []), { value: '203.0.113.66/32' }] },
            },
        });
        const h = harness();
        const body = firewallAttack();
        record0(body).properties.addedIpRule = { Value: '203.0.113.66/32' };
        await h.responder.pipeline.processBatch([{ body }]);
        const undoIds = new Set(
            actionsOf(h.decisions.decisions)
                .filter((a) => a.status === 'applied')
                .map((a) => a.detail.undoId),
        );
        expect(undoIds.size).toBe(1);
        const opened = undoLinkOf(h, 'firewall-opened');
        const ipRule = undoLinkOf(h, 'firewall-ip-rule-added');
        arm.fake.clearLog();
        const first = await h.alerting.act(opened.incidentId, 'undo', opened.token, PERSON);
        expect(first).toMatchObject({
            kind: 'done',
            message: 'Remediation undone: firewall default action back to Allow',
        });
        // Only the firewall incident's part: the removed IP rule stays removed.
        expect(arm.fake.vault(VAULT).properties.networkAcls).toMatchObject({
            defaultAction: 'Allow',
            ipRules: [{ value: '198.51.100.7/32' }],
        });
        expect((await incident(h, ipRule.incidentId)).undone).toBeUndefined();
        expect((await h.alerting.view(ipRule.incidentId, 'undo', ipRule.token)).kind).toBe('done');

        // The sibling's own undo restores its IP rule, later and by someone else.
        h.clock.advance(10 * 60_000);
        const second = await h.alerting.act(ipRule.incidentId, 'undo', ipRule.token, {
            by: 'lead@contoso.example',
        });
        expect(second).toMatchObject({ kind: 'done', message: 'Remediation undone: IP rule 203.0.113.66/32 restored' });
        expect(arm.fake.vault(VAULT).properties.networkAcls).toMatchObject({
            defaultAction: 'Allow',
            ipRules: [{ value: '198.51.100.7/32' }, { value: '203.0.113.66/32' }],
        });
        expect((await incident(h, ipRule.incidentId)).undone).toMatchObject({
            by: 'lead@contoso.example',
            approved: ['IP rule 203.0.113.66/32'],
        });
        // Each part once: both links now answer "already undone", and nothing more is written.
        arm.fake.clearLog();
        expect(
            (await h.alerting.act(opened.incidentId, 'undo', await freshToken(h, opened.incidentId), PERSON)).kind,
        ).toBe('already');
        expect(
            (await h.alerting.act(ipRule.incidentId, 'undo', await freshToken(h, ipRule.incidentId), PERSON)).kind,
        ).toBe('already');
        expect(writes()).toEqual([]);
        expect(h.log.lines.filter((l) => l.level === 'error')).toEqual([]);
    });
});

describe('scoped undo: one remediation answering several incidents (ARM simulator, real ARM client)', () => {
    // Measured before: the firewall incident's undo also turned public network access back on and restored the
    // critical self-grant of another incident, because one undo snapshot covered the whole remediation.
    it("the firewall incident's undo restores the firewall only, never another incident's changes", async () => {
        const v = openedVault();
        arm.fake.setVault({
            ...v,
            properties: { ...v.properties, accessPolicies: [...(v.properties.accessPolicies ?? []), MALLORY_POLICY] },
        });
        const h = harness('enforce', { publicNetworkAccess: 'Disabled' });
        await h.responder.pipeline.processBatch([
            { body: firewallAttack() },
            { body: publicAccessAttack() },
            { body: selfGrantAttack() },
        ]);
        const applied = actionsOf(h.decisions.decisions).filter((a) => a.status === 'applied');
        expect(new Set(applied.map((a) => a.action))).toEqual(
            new Set(['restore-firewall-default', 'disable-public-network-access', 'remove-access-policy']),
        );
        expect(new Set(applied.map((a) => a.detail.undoId)).size).toBe(1); // one remediation, one undo record
        const remediated = arm.fake.vault(VAULT).properties;
        expect(remediated.networkAcls?.defaultAction).toBe('Deny');
        expect(remediated.publicNetworkAccess).toBe('Disabled');
        expect(remediated.accessPolicies?.map((p) => p.objectId)).not.toContain(MALLORY);

        const firewall = undoLinkOf(h, 'firewall-opened');
        arm.fake.clearLog();
        const outcome = await h.alerting.act(firewall.incidentId, 'undo', firewall.token, PERSON);
        expect(outcome).toMatchObject({
            kind: 'done',
            message: 'Remediation undone: firewall default action back to Allow',
        });
        const after = arm.fake.vault(VAULT).properties;
        expect(after.networkAcls?.defaultAction).toBe('Allow');
        expect(after.publicNetworkAccess).toBe('Disabled');
        expect(after.accessPolicies?.map((p) => p.objectId)).not.toContain(MALLORY);
        expect(writes().map((r) => r.method)).toEqual(['PATCH']);
        expect(writes()[0]?.body).not.toHaveProperty('properties.publicNetworkAccess');
        // Only the firewall's state is approved: public access and the self-grant are still enforced.
        expect(await approvalsOf(h)).toEqual({
            v: 2,
            grants: [expect.objectContaining({ ipRanges: [], principals: [], networkDefaultAction: 'Allow' })],
        });

        // The other incidents keep their own undo, which restores only their own change.
        const pna = undoLinkOf(h, 'public-network-access-enabled');
        arm.fake.clearLog();
        expect(await h.alerting.act(pna.incidentId, 'undo', pna.token, PERSON)).toMatchObject({
            kind: 'done',
            message: 'Remediation undone: public network access back to Enabled',
        });
        expect(arm.fake.vault(VAULT).properties.accessPolicies?.map((p) => p.objectId)).not.toContain(MALLORY);
        expect(writes().filter((r) => r.path.includes('/accessPolicies/'))).toEqual([]);
    });
});

/** The POST of the undo page, as the Functions host hands it to the handler. */
function undoPost(incidentId: string, token: string, headers: Record<string, string>): HttpRequest {
    return new HttpRequest({
        method: 'POST',
        url: `${PUBLIC_URL}/api/incidents/${incidentId}/undo`,
        params: { id: incidentId, action: 'undo' },
        headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'x-forwarded-for': '203.0.113.9:443',
            ...headers,
        },
        body: { string: `t=${encodeURIComponent(token)}` },
    });
}

/** `X-MS-CLIENT-PRINCIPAL` as App Service Authentication sets it for a Microsoft Entra ID user. */
function clientPrincipal(upn: string, oid: string): string {
    const principal = {
        auth_typ: 'aad',
        name_typ: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn',
        role_typ: 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role',
        claims: [
            { typ: 'http://schemas.microsoft.com/identity/claims/objectidentifier', val: oid },
            { typ: 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn', val: upn },
            { typ: 'name', val: 'On Call' },
        ],
    };
    return Buffer.from(JSON.stringify(principal), 'utf8').toString('base64');
}

describe('who may undo through the link, and from where (handler, ARM simulator)', () => {
    const ONCALL_OID = '0c0c0c0c-0000-4000-8000-0000000000c0';
    const SAME_ORIGIN = { origin: PUBLIC_URL };
    const easyAuth = (h: Harness): IncidentLinkDeps => ({
        alerting: h.alerting,
        trustEasyAuth: true,
        publicUrl: PUBLIC_URL,
    });

    async function remediated(): Promise<{ h: Harness; incidentId: string; token: string }> {
        arm.fake.setVault(openedVault());
        const h = harness();
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        arm.fake.clearLog();
        h.decisions.decisions.length = 0;
        return { h, incidentId, token };
    }

    // Measured before: anyone holding the link could undo, and the incident said nothing about who did.
    it('with App Service Authentication, an undo without a signed-in user is refused (401) and changes nothing', async () => {
        const { h, incidentId, token } = await remediated();
        const { context, logs } = makeContext();
        // No principal headers: App Service Authentication let an anonymous request through (AllowAnonymous).
        const res = await handleIncidentLink(undoPost(incidentId, token, SAME_ORIGIN), context, easyAuth(h));
        expect(res.status).toBe(401);
        expect(res.body).toContain('sign-in required');
        expect(res.body).toContain('/.auth/login/aad?post_login_redirect_uri&#61;%2Fapi%2Fincidents%2F');
        expect(writes()).toEqual([]);
        expect((await incident(h, incidentId)).undone).toBeUndefined();
        expect(logs.some((l) => l.entry.msg === 'kvr.link-refused' && l.entry.status === 401)).toBe(true);
        // Another identity provider than Entra ID is refused too.
        const google = Buffer.from(JSON.stringify({ auth_typ: 'google', claims: [{ typ: 'email', val: 'x@y.z' }] }));
        const other = await handleIncidentLink(
            undoPost(incidentId, token, { ...SAME_ORIGIN, 'x-ms-client-principal': google.toString('base64') }),
            context,
            easyAuth(h),
        );
        expect(other.status).toBe(401);
        expect(writes()).toEqual([]);
    });

    it('with App Service Authentication, the signed-in user is recorded on the incident, the log and the decision log', async () => {
        const { h, incidentId, token } = await remediated();
        const { context } = makeContext();
        const res = await handleIncidentLink(
            undoPost(incidentId, token, {
                ...SAME_ORIGIN,
                'x-ms-client-principal': clientPrincipal('oncall@contoso.example', ONCALL_OID),
                'x-ms-client-principal-name': 'oncall@contoso.example',
                'x-ms-client-principal-id': ONCALL_OID,
                'x-ms-client-principal-idp': 'aad',
            }),
            context,
            easyAuth(h),
        );
        expect(res.status).toBe(200);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
        const undone = (await incident(h, incidentId)).undone;
        expect(undone).toMatchObject({ by: 'oncall@contoso.example', byId: ONCALL_OID, from: '203.0.113.9' });
        expect(h.log.lines).toContainEqual(
            expect.objectContaining({
                message: 'kvr.undone',
                fields: expect.objectContaining({ by: 'oncall@contoso.example', byId: ONCALL_OID }),
            }),
        );
        expect(actionsOf(h.decisions.decisions).filter((a) => a.action === 'undo')).toEqual([
            expect.objectContaining({
                rule: 'firewall-opened',
                status: 'applied',
                detail: expect.objectContaining({
                    incident: incidentId,
                    by: 'oncall@contoso.example',
                    byId: ONCALL_OID,
                    restored: ['firewall default action back to Allow'],
                    approved: ['firewall default action Allow'],
                    approvedUntil: undone?.approvedUntil,
                }),
            }),
        ]);
    });

    it('without App Service Authentication, links act only when possession-only links were enabled', async () => {
        const { h, incidentId, token } = await remediated();
        const { context } = makeContext();
        const neither = await handleIncidentLink(undoPost(incidentId, token, SAME_ORIGIN), context, {
            alerting: h.alerting,
            trustEasyAuth: false,
            publicUrl: PUBLIC_URL,
        });
        expect(neither.status).toBe(403);
        expect(neither.body).toContain('KVR_ALLOW_POSSESSION_ONLY_LINKS');
        expect(writes()).toEqual([]);
        expect((await incident(h, incidentId)).undone).toBeUndefined();

        const optedIn = await handleIncidentLink(undoPost(incidentId, token, SAME_ORIGIN), context, {
            alerting: h.alerting,
            trustEasyAuth: false,
            possessionOnlyLinks: true,
            publicUrl: PUBLIC_URL,
        });
        expect(optedIn.status).toBe(200);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
        expect((await incident(h, incidentId)).undone).not.toHaveProperty('by');
    });

    it('refuses a confirming POST from another origin (403), whoever is signed in', async () => {
        const { h, incidentId, token } = await remediated();
        const { context } = makeContext();
        const signedIn = { 'x-ms-client-principal': clientPrincipal('oncall@contoso.example', ONCALL_OID) };
        const forged: Record<string, string>[] = [
            { origin: 'https://evil.example' },
            { origin: 'https://kvr-func.example.net.evil.example' },
            { origin: 'http://kvr-func.example.net' }, // another scheme is another origin
            { origin: PUBLIC_URL, 'sec-fetch-site': 'cross-site' },
            { origin: 'null' },
            { 'sec-fetch-site': 'same-site' },
            { referer: 'https://evil.example/page' },
            {}, // nothing shows where it came from
        ];
        for (const headers of forged) {
            const res = await handleIncidentLink(
                undoPost(incidentId, token, { ...signedIn, ...headers }),
                context,
                easyAuth(h),
            );
            expect([JSON.stringify(headers), res.status]).toEqual([JSON.stringify(headers), 403]);
        }
        expect(writes()).toEqual([]);
        expect((await incident(h, incidentId)).undone).toBeUndefined();
        // The page's own POST: Origin null (privacy modes) with Sec-Fetch-Site same-origin is accepted.
        const own = await handleIncidentLink(
            undoPost(incidentId, token, { ...signedIn, origin: 'null', 'sec-fetch-site': 'same-origin' }),
            context,
            easyAuth(h),
        );
        expect(own.status).toBe(200);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Allow');
    });
});

describe('undo state stays within Table Storage limits', () => {
    /** A string property of a Table Storage entity holds at most 32K characters. */
    const TABLE_PROPERTY_CHARS = 32_000;

    async function undoRecords(h: Harness): Promise<unknown[]> {
        const all = await h.responder.store.scan('undo|', 100);
        return all.map((e) => e.value);
    }

    // Measured before: the record kept the whole vault (every access policy), so a big shared vault could not be
    // remediated at all once the record passed the property limit.
    it('a remediation of a vault with hundreds of access policies keeps only what it changed', async () => {
        const v = openedVault();
        const many = Array.from({ length: 300 }, (_, i) => ({
            tenantId: TENANT,
            objectId: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
            permissions: { keys: ['get', 'list', 'wrapKey', 'unwrapKey'], secrets: ['get', 'list'], certificates: [] },
        }));
        arm.fake.setVault({
            ...v,
            properties: { ...v.properties, accessPolicies: [...(v.properties.accessPolicies ?? []), ...many] },
        });
        // Approved: in enforce mode every reconcile checks the whole access-policy set against the policy, so
        // unapproved entries would be removed too (docs/remediation.md, drift from ARM truth).
        const h = harness('enforce', { approvedPrincipals: many.map((m) => ({ objectId: m.objectId })) });
        await h.responder.pipeline.processBatch([{ body: firewallAttack() }]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.defaultAction).toBe('Deny');
        const records = await undoRecords(h);
        expect(records).toHaveLength(1);
        expect(JSON.stringify(records[0]).length).toBeLessThan(TABLE_PROPERTY_CHARS);
        const { incidentId, token } = undoLinkOf(h, 'firewall-opened');
        expect((await h.alerting.act(incidentId, 'undo', token, PERSON)).kind).toBe('done');
        expect(arm.fake.vault(VAULT).properties.accessPolicies).toHaveLength(302);
    });

    it('a remediation that removes a thousand IP rules keeps them within the limit, and the undo approves them', async () => {
        const v = openedVault();
        const rules = Array.from({ length: 1000 }, (_, i) => ({ value: `20.${(i >> 8) & 255}.${i & 255}.1/32` }));
        arm.fake.setVault({
            ...v,
            properties: {
                ...v.properties,
                networkAcls: { ...v.properties.networkAcls, defaultAction: 'Deny', ipRules: rules },
            },
        });
        const h = harness();
        const body = firewallAttack();
        record0(body).properties.addedIpRule = { Value: '20.0.0.1/32' };
        await h.responder.pipeline.processBatch([{ body }]);
        expect(arm.fake.vault(VAULT).properties.networkAcls?.ipRules).toEqual([]);
        const records = await undoRecords(h);
        expect(records).toHaveLength(1);
        expect(JSON.stringify(records[0]).length).toBeLessThan(TABLE_PROPERTY_CHARS);
        const { incidentId, token } = undoLinkOf(h, 'firewall-ip-rule-added');
        const outcome = await h.alerting.act(incidentId, 'undo', token, PERSON);
        expect(outcome.kind).toBe('done');
        expect(arm.fake.vault(VAULT).properties.networkAcls?.ipRules).toHaveLength(1000);
        const approvals = await approvalsOf(h);
        expect(JSON.stringify(approvals).length).toBeLessThan(TABLE_PROPERTY_CHARS);
        expect((approvals as { grants: { ipRanges: string[] }[] }).grants[0]?.ipRanges).toHaveLength(1000);
        // The incident lists what was approved, bounded.
        const listed = (await incident(h, incidentId)).undone?.approved ?? [];
        expect(listed).toHaveLength(20);
        expect(listed.at(-1)).toBe('... and 981 more');
    });
});

function buttonToken(card: OutgoingNotification, title: string): string {
    const a = cardActions(card).find((x) => x.title === title);
    if (a === undefined) throw new Error(`no ${title} button`);
    return new URL(a.url).searchParams.get('t') ?? '';
}
