// The pure alerting core: incidents from findings, escalation, the delivery outbox, link tokens, rendering of
// attacker-controlled strings, and the undo plan.
import { parseResponderConfig } from '../../shared/config/responderConfig';
import {
    acknowledge,
    applyFinding,
    escalationDue,
    type Incident,
    incidentIdOf,
    incidentKeyOf,
    markUndone,
    nextDueMs,
    recordDelivery,
    retryDelayMs,
    undoableAction,
    type UpdateContext,
    withActions,
    withOutcomeNotice,
} from '../../shared/core/alerts/incident';
import { buildMime } from '../../shared/core/alerts/mime';
import {
    cardText,
    confirmationPage,
    errorPage,
    html,
    type IncidentLinks,
    type NoticeView,
    plain,
    renderEmail,
    renderTeamsCard,
    resultPage,
} from '../../shared/core/alerts/render';
import type { AlertSettings } from '../../shared/core/alerts/settings';
import { checkClaims, type LinkClaims, parseToken, signingInputOf, tokenOf } from '../../shared/core/alerts/token';
import type { ActionDecision, FindingDecision } from '../../shared/core/decisions';
import { planRemediation } from '../../shared/core/remediation/plan';
import type { VaultSnapshot } from '../../shared/core/remediation/types';
import { mergeApprovals, planRestore, type UndoRecord, withApprovals } from '../../shared/core/remediation/undo';
import { ruleIds } from '../../shared/core/rules';
import { validateTeamsWebhookMessage } from '../support/adaptiveCard';

const MIN = 60_000;
const VAULT_ID =
    '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/kv-payments-prod';
const MALLORY = 'bad0bad0-0000-4000-8000-00000000000d';
const T0 = Date.parse('2026-10-05T09:05:00.000Z');
const NOW = Date.parse('2026-10-05T09:06:00.000Z');

const config = parseResponderConfig(
    {
        alerting: {
            minSeverity: 'medium',
            incidentWindowMinutes: 60,
            escalation: { afterMinutes: 15, minSeverity: 'high', maxReminders: 2 },
            linkTtlHours: 72,
            maxDeliveryAttempts: 3,
            rosters: {
                default: {
                    tiers: [
                        { name: 'primary', email: ['oncall@contoso.example'] },
                        { name: 'secondary', email: ['lead@contoso.example'], teams: false },
                        { name: 'management', email: ['ciso@contoso.example'] },
                    ],
                },
            },
        },
    },
    ruleIds,
    'test',
);
const settings: AlertSettings = config.alerting;

function ctxAt(nowMs: number, s: AlertSettings = settings, over: Partial<UpdateContext> = {}): UpdateContext {
    return {
        nowMs,
        settings: s,
        rosterName: 'default',
        tiers: 3,
        teamsTiers: [true, false, true],
        emailTiers: [true, true, true],
        ...over,
    };
}

function finding(over: Partial<FindingDecision> = {}): FindingDecision {
    return {
        type: 'finding',
        rule: 'firewall-opened',
        severity: 'high',
        vault: 'kv-payments-prod',
        vaultId: VAULT_ID,
        time: new Date(T0).toISOString(),
        principal: MALLORY,
        operations: ['VaultPatch'],
        correlationIds: ['0a1a7c86-0066-40a1-8a7c-0a1a7c860a1a'],
        count: 1,
        summary: 'kv-payments-prod network ACL default action is Allow after VaultPatch by mallory@contoso.example',
        actor: { upn: 'mallory@contoso.example', ip: '203.0.113.66', userAgent: 'Mozilla/5.0' },
        ...over,
    };
}

function at(ms: number): string {
    return new Date(ms).toISOString();
}

const ids = (inc: Incident): string[] => inc.notifications.map((n) => n.id);

describe('applyFinding', () => {
    it('opens an incident that notifies once on each channel tier 0 uses', () => {
        const inc = applyFinding(undefined, finding(), [], ctxAt(NOW));
        expect(inc).toMatchObject({
            vault: 'kv-payments-prod',
            vaultId: VAULT_ID,
            rule: 'firewall-opened',
            severity: 'high',
            principal: MALLORY,
            status: 'open',
            openedAt: at(T0),
            lastSeenMs: T0,
            findings: 1,
            records: 1,
            tier: 0,
            reminders: 0,
            tierSinceMs: NOW,
            roster: 'default',
            actor: { principal: MALLORY, upn: 'mallory@contoso.example', ip: '203.0.113.66' },
        });
        expect(inc.id).toBe(incidentIdOf('kv-payments-prod', incidentKeyOf(finding()), T0));
        expect(inc.notifications).toEqual([
            {
                id: 'opened-0-0-teams',
                channel: 'teams',
                kind: 'opened',
                tier: 0,
                status: 'pending',
                attempts: 0,
                nextAttemptMs: NOW,
                createdAt: at(NOW),
            },
            {
                id: 'opened-0-0-email',
                channel: 'email',
                kind: 'opened',
                tier: 0,
                status: 'pending',
                attempts: 0,
                nextAttemptMs: NOW,
                createdAt: at(NOW),
            },
        ]);
    });

    it('uses only the channels configured for tier 0', () => {
        const emailOnly = applyFinding(undefined, finding(), [], ctxAt(NOW, settings, { teamsTiers: [false] }));
        expect(ids(emailOnly)).toEqual(['opened-0-0-email']);
        const teamsOnly = applyFinding(undefined, finding(), [], ctxAt(NOW, settings, { emailTiers: [false] }));
        expect(ids(teamsOnly)).toEqual(['opened-0-0-teams']);
    });

    it('folds later findings within the window into the incident without new notices', () => {
        const first = applyFinding(undefined, finding(), [], ctxAt(NOW));
        const second = applyFinding(
            first,
            finding({
                time: at(T0 + 10 * MIN),
                severity: 'critical',
                operations: ['VaultPatch', 'VaultPut'],
                correlationIds: ['c-2'],
                count: 3,
                summary: 'second summary',
            }),
            [],
            ctxAt(NOW + 10 * MIN),
        );
        expect(second.id).toBe(first.id);
        expect(second).toMatchObject({
            severity: 'critical',
            findings: 2,
            records: 4,
            summary: 'second summary',
            openedAt: at(T0),
            lastSeenAt: at(T0 + 10 * MIN),
            lastSeenMs: T0 + 10 * MIN,
            operations: ['VaultPatch', 'VaultPut'],
            correlationIds: ['0a1a7c86-0066-40a1-8a7c-0a1a7c860a1a', 'c-2'],
        });
        expect(second.notifications).toEqual(first.notifications);
        expect(second.history.map((h) => h.what)).toContain('severity raised to critical');

        // A lower severity never lowers the incident; an older finding does not move lastSeen back.
        const third = applyFinding(
            second,
            finding({ time: at(T0 + 5 * MIN), severity: 'low', correlationIds: ['c-3'] }),
            [],
            ctxAt(NOW + 11 * MIN),
        );
        expect(third).toMatchObject({ severity: 'critical', findings: 3, lastSeenMs: T0 + 10 * MIN });
        expect(third.notifications).toEqual(first.notifications);

        // The same finding emitted again (its first batch failed after the incident was written) changes nothing.
        expect(applyFinding(third, finding(), [], ctxAt(NOW + 12 * MIN))).toBe(third);
    });

    it('slides the window from the latest finding and opens a new incident after it', () => {
        let inc = applyFinding(undefined, finding(), [], ctxAt(NOW));
        const firstId = inc.id;
        inc = applyFinding(inc, finding({ time: at(T0 + 50 * MIN) }), [], ctxAt(NOW + 50 * MIN));
        inc = applyFinding(inc, finding({ time: at(T0 + 110 * MIN) }), [], ctxAt(NOW + 110 * MIN));
        expect(inc.id).toBe(firstId);
        expect(inc.findings).toBe(3);
        const exactlyAtWindow = applyFinding(inc, finding({ time: at(T0 + 170 * MIN) }), [], ctxAt(NOW));
        expect(exactlyAtWindow.id).toBe(firstId);

        const later = applyFinding(inc, finding({ time: at(T0 + 170 * MIN + 1) }), [], ctxAt(NOW + 171 * MIN));
        expect(later.id).not.toBe(firstId);
        expect(later).toMatchObject({ findings: 1, records: 1, openedAt: at(T0 + 170 * MIN + 1), tier: 0 });
        expect(ids(later)).toEqual(['opened-0-0-teams', 'opened-0-0-email']);
    });

    it('opens a new incident when the previous one was resolved', () => {
        const inc = applyFinding(undefined, finding(), [], ctxAt(NOW));
        const next = applyFinding(
            { ...inc, status: 'resolved' },
            finding({ time: at(T0 + MIN) }),
            [],
            ctxAt(NOW + MIN),
        );
        expect(next.id).not.toBe(inc.id);
        expect(next.findings).toBe(1);
    });

    it('records findings below minSeverity silently, and notifies once a finding raises the incident over it', () => {
        const low = applyFinding(undefined, finding({ severity: 'low' }), [], ctxAt(NOW));
        expect(low.notifications).toEqual([]);
        const stillLow = applyFinding(low, finding({ severity: 'low', time: at(T0 + MIN) }), [], ctxAt(NOW + MIN));
        expect(stillLow.notifications).toEqual([]);

        const raised = applyFinding(
            stillLow,
            finding({ severity: 'medium', time: at(T0 + 2 * MIN) }),
            [],
            ctxAt(NOW + 2 * MIN),
        );
        expect(raised.id).toBe(low.id);
        expect(raised.severity).toBe('medium');
        expect(ids(raised)).toEqual(['opened-0-0-teams', 'opened-0-0-email']);
        expect(raised.notifications.every((n) => n.nextAttemptMs === NOW + 2 * MIN)).toBe(true);

        const again = applyFinding(
            raised,
            finding({ severity: 'critical', time: at(T0 + 3 * MIN) }),
            [],
            ctxAt(NOW + 3 * MIN),
        );
        expect(ids(again)).toEqual(['opened-0-0-teams', 'opened-0-0-email']);
    });

    it('keeps the remediation actions of the batch, with summary and undo id', () => {
        const action: ActionDecision = {
            type: 'action',
            action: 'restore-firewall-default',
            vault: 'kv-payments-prod',
            rule: 'firewall-opened',
            status: 'applied',
            detail: { summary: 'set network ACL default action back to Deny', undoId: 'u1-p1', ignored: 3 },
        };
        const inc = applyFinding(undefined, finding(), [action], ctxAt(NOW));
        expect(inc.actions).toEqual([
            {
                action: 'restore-firewall-default',
                status: 'applied',
                summary: 'set network ACL default action back to Deny',
                undoId: 'u1-p1',
            },
        ]);
        expect(undoableAction(inc)?.undoId).toBe('u1-p1');
    });
});

describe('withOutcomeNotice (a remediation outcome that arrives after the first notice)', () => {
    const applied: ActionDecision = {
        type: 'action',
        action: 'restore-firewall-default',
        vault: 'kv-payments-prod',
        rule: 'firewall-opened',
        status: 'applied',
        detail: { summary: 'set network ACL default action back to Deny', undoId: 'u1-p1' },
    };
    const failed: ActionDecision = {
        ...applied,
        status: 'failed',
        detail: { stage: 'apply', error: 'HTTP 403 AuthorizationFailed', missingPermission: true },
    };
    const opened = () => applyFinding(undefined, finding(), [], ctxAt(NOW));
    const sentAll = (inc: Incident): Incident => ({
        ...inc,
        notifications: inc.notifications.map((x) => ({ ...x, status: 'sent' as const, attempts: 1 })),
    });

    it('adds one follow-up to the tiers notified so far, once, when the first notice went out without the outcome', () => {
        const later = NOW + MIN;
        const inc = withOutcomeNotice(withActions(sentAll(opened()), [applied], at(later)), ctxAt(later));
        expect(inc.outcomeNotified).toBe(at(later));
        expect(ids(inc).filter((x) => x.startsWith('remediation-'))).toEqual([
            'remediation-0-0-teams',
            'remediation-0-0-email',
        ]);
        // The same outcome again, or another one later: nothing more.
        expect(withOutcomeNotice(inc, ctxAt(later + MIN))).toBe(inc);
        const more = withActions(inc, [failed], at(later + MIN));
        expect(withOutcomeNotice(more, ctxAt(later + MIN))).toBe(more);
    });

    it('after escalation: one Teams card, and one email per tier notified so far', () => {
        const escalated: Incident = { ...sentAll(opened()), tier: 2 };
        const inc = withOutcomeNotice(withActions(escalated, [applied], at(NOW)), ctxAt(NOW));
        expect(ids(inc).filter((x) => x.startsWith('remediation-'))).toEqual([
            'remediation-0-0-teams',
            'remediation-0-0-email',
            'remediation-1-0-email',
            'remediation-2-0-email',
        ]);
    });

    it('counts a notice being sent (claimed) as gone out, and a notice not yet tried as carrying the outcome', () => {
        const claimed: Incident = {
            ...opened(),
            notifications: opened().notifications.map((x) => ({ ...x, nextAttemptMs: NOW + 2 * MIN })),
        };
        const withOutcome = withActions(claimed, [applied], at(NOW));
        expect(ids(withOutcomeNotice(withOutcome, ctxAt(NOW))).some((x) => x.startsWith('remediation-'))).toBe(true);
        const untried = withOutcomeNotice(withActions(opened(), [applied], at(NOW)), ctxAt(NOW));
        expect(untried.outcomeNotified).toBe(at(NOW));
        expect(ids(untried).some((x) => x.startsWith('remediation-'))).toBe(false);
    });

    it('stays silent for an incident that notified nobody, and without an outcome', () => {
        const quiet = applyFinding(undefined, finding({ severity: 'low' }), [], ctxAt(NOW));
        expect(quiet.notifications).toEqual([]);
        const q = withActions(quiet, [applied], at(NOW));
        expect(withOutcomeNotice(q, ctxAt(NOW))).toBe(q);
        const none = sentAll(opened());
        expect(withOutcomeNotice(none, ctxAt(NOW))).toBe(none);
    });

    it('renders before/after and the undo button when applied, the failure and its fix when failed', () => {
        const links: IncidentLinks = { ack: 'https://x/ack', undo: 'https://x/undo', portal: 'https://portal' };
        const ok = withOutcomeNotice(withActions(sentAll(opened()), [applied], at(NOW)), ctxAt(NOW));
        const view: NoticeView = {
            incident: ok,
            kind: 'remediation',
            tier: 0,
            tierName: 'primary',
            links,
            changes: [{ what: 'Firewall default action', before: 'Allow', after: 'Deny' }],
        };
        const email = renderEmail(view);
        expect(email.subject).toContain('Remediation applied · HIGH · firewall-opened · kv-payments-prod');
        expect(email.text).toContain('Changed: Firewall default action: Allow → Deny.');
        expect(email.text).toContain('Undo remediation: https://x/undo');
        expect(validateTeamsWebhookMessage(renderTeamsCard(view))).toEqual([]);

        const bad = withOutcomeNotice(withActions(sentAll(opened()), [failed], at(NOW)), ctxAt(NOW));
        const text = renderEmail({ ...view, incident: bad, links: { portal: 'https://portal' }, changes: [] }).text;
        expect(text).toContain('Remediation failed · HIGH');
        expect(text).toContain('Failed: restore-firewall-default: apply: HTTP 403 AuthorizationFailed.');
        expect(text).toMatch(/Fix: Give the responder's identity the remediation role/);
        expect(text).not.toContain('Undo remediation');
    });
});

describe('incidentIdOf', () => {
    it('is deterministic and distinguishes vault, key and first finding time', () => {
        const key = incidentKeyOf(finding());
        const id = incidentIdOf('kv-payments-prod', key, T0);
        expect(incidentIdOf('kv-payments-prod', key, T0)).toBe(id);
        expect(incidentIdOf('kv-other', key, T0)).not.toBe(id);
        expect(incidentIdOf('kv-payments-prod', incidentKeyOf(finding({ principal: 'someone-else' })), T0)).not.toBe(
            id,
        );
        expect(incidentIdOf('kv-payments-prod', key, T0 + 1)).not.toBe(id);
        // The form the link handler accepts (Alerting.get).
        expect(id).toMatch(/^[0-9a-z-]{1,64}$/);
    });

    it('groups by rule and principal', () => {
        expect(incidentKeyOf(finding())).toBe(`firewall-opened|${MALLORY}`);
        const { principal: _p, ...noPrincipal } = finding();
        expect(incidentKeyOf(noPrincipal)).toBe('firewall-opened|-');
    });
});

describe('markUndone after an escalation', () => {
    it('sends one undone notice per channel, not one per tier notified (the email of the top tier reaches them all)', () => {
        const after = settings.escalateAfterMs;
        let inc = applyFinding(undefined, finding(), [], ctxAt(NOW));
        for (let k = 1; k <= 2; k++) {
            const next = escalationDue(inc, NOW + k * after, settings, 3);
            if (next === undefined) throw new Error('no escalation');
            inc = next;
        }
        expect(inc.tier).toBe(2);
        const at = NOW + 3 * after;
        const undone = markUndone(
            inc,
            { at: new Date(at).toISOString(), by: 'oncall@contoso.example' },
            { undoId: 'u1', restored: ['firewall default action back to Allow'] },
            ctxAt(at),
        );
        const notices = undone.notifications.filter((n) => n.kind === 'undone');
        // Teams is one webhook for the roster: one card (tier 1 has Teams off); email once, to tiers 1 to 3.
        expect(notices.map((n) => [n.channel, n.tier])).toEqual([
            ['teams', 0],
            ['email', 2],
        ]);
    });
});

describe('escalationDue', () => {
    const opened = applyFinding(undefined, finding(), [], ctxAt(NOW));
    const after = settings.escalateAfterMs;

    it('moves through the tiers, then reminds the last tier a bounded number of times', () => {
        expect(after).toBe(15 * MIN);
        expect(escalationDue(opened, NOW + after - 1, settings, 3)).toBeUndefined();
        const t1 = escalationDue(opened, NOW + after, settings, 3);
        expect(t1).toMatchObject({ tier: 1, reminders: 0, tierSinceMs: NOW + after });
        expect(t1?.history.at(-1)?.what).toBe('escalated to tier 2 (unacknowledged)');
        if (t1 === undefined) throw new Error('unreachable');
        expect(escalationDue(t1, NOW + 2 * after - 1, settings, 3)).toBeUndefined();
        const t2 = escalationDue(t1, NOW + 2 * after, settings, 3);
        expect(t2).toMatchObject({ tier: 2, reminders: 0 });
        if (t2 === undefined) throw new Error('unreachable');
        const r1 = escalationDue(t2, NOW + 3 * after, settings, 3);
        expect(r1).toMatchObject({ tier: 2, reminders: 1, tierSinceMs: NOW + 3 * after });
        if (r1 === undefined) throw new Error('unreachable');
        const r2 = escalationDue(r1, NOW + 4 * after, settings, 3);
        expect(r2).toMatchObject({ tier: 2, reminders: 2 });
        if (r2 === undefined) throw new Error('unreachable');
        expect(escalationDue(r2, NOW + 50 * after, settings, 3)).toBeUndefined();
    });

    it('reminds a single-tier roster without moving the tier', () => {
        const r = escalationDue(opened, NOW + after, settings, 1);
        expect(r).toMatchObject({ tier: 0, reminders: 1 });
    });

    it('never escalates acknowledged or resolved incidents', () => {
        const acked = acknowledge(opened, { at: at(NOW + MIN), by: 'alice@contoso.example' });
        if ('already' in acked) throw new Error('first acknowledgement refused');
        expect(acked.status).toBe('acknowledged');
        expect(escalationDue(acked, NOW + 10 * after, settings, 3)).toBeUndefined();
        expect(escalationDue({ ...opened, status: 'resolved' }, NOW + 10 * after, settings, 3)).toBeUndefined();
        // A second acknowledgement reports the first.
        expect(acknowledge(acked, { at: at(NOW + 2 * MIN) })).toEqual({
            already: { at: at(NOW + MIN), by: 'alice@contoso.example' },
        });
    });

    it('never escalates below escalateMinSeverity or minSeverity', () => {
        const medium = applyFinding(undefined, finding({ severity: 'medium' }), [], ctxAt(NOW));
        expect(medium.notifications).toHaveLength(2);
        expect(escalationDue(medium, NOW + 10 * after, settings, 3)).toBeUndefined();
        // Escalating everything, but the incident never notified anybody: nothing to escalate.
        const all: AlertSettings = { ...settings, escalateMinSeverity: 'low' };
        const low = applyFinding(undefined, finding({ severity: 'low' }), [], ctxAt(NOW, all));
        expect(escalationDue(low, NOW + 10 * after, all, 3)).toBeUndefined();
        expect(escalationDue(medium, NOW + after, all, 3)).toMatchObject({ tier: 1 });
    });
});

describe('recordDelivery', () => {
    const inc = applyFinding(undefined, finding(), [], ctxAt(NOW));
    const teams = 'opened-0-0-teams';
    const max = settings.maxDeliveryAttempts;
    const transient = (error: string, retryAfterMs?: number) =>
        ({
            ok: false,
            transient: true,
            error,
            ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        }) as const;

    function notice(i: Incident, id: string) {
        const n = i.notifications.find((x) => x.id === id);
        if (n === undefined) throw new Error(`no notice ${id}`);
        return n;
    }

    it('marks a notice sent', () => {
        const r = recordDelivery(inc, teams, { ok: true }, NOW + 1000, max);
        expect(r.exhausted).toBeUndefined();
        const n = notice(r.incident, teams);
        expect(n).toMatchObject({ status: 'sent', attempts: 1, sentAt: at(NOW + 1000) });
        expect(n).not.toHaveProperty('nextAttemptMs');
        expect(n).not.toHaveProperty('lastError');
        // The other notice is untouched.
        expect(notice(r.incident, 'opened-0-0-email')).toEqual(notice(inc, 'opened-0-0-email'));
        // A sent notice is not changed by a late outcome.
        const again = recordDelivery(r.incident, teams, transient('late'), NOW + 2000, max);
        expect(notice(again.incident, teams)).toEqual(n);
    });

    it('retries transient failures with backoff, honouring a longer Retry-After', () => {
        const r1 = recordDelivery(inc, teams, transient('HTTP 503'), NOW, max);
        expect(r1.exhausted).toBeUndefined();
        expect(notice(r1.incident, teams)).toMatchObject({
            status: 'pending',
            attempts: 1,
            lastError: 'HTTP 503',
            nextAttemptMs: NOW + 30_000,
        });
        const r2 = recordDelivery(r1.incident, teams, transient('HTTP 429', 120_000), NOW + 30_000, max);
        expect(notice(r2.incident, teams)).toMatchObject({
            status: 'pending',
            attempts: 2,
            nextAttemptMs: NOW + 30_000 + 120_000,
        });
        // A Retry-After shorter than the backoff does not shorten it.
        const r2b = recordDelivery(r1.incident, teams, transient('HTTP 429', 1_000), NOW + 30_000, max);
        expect(notice(r2b.incident, teams).nextAttemptMs).toBe(NOW + 30_000 + 60_000);
        expect(retryDelayMs(1, undefined)).toBe(30_000);
        expect(retryDelayMs(3, undefined)).toBe(120_000);
        expect(retryDelayMs(30, undefined)).toBe(30 * MIN);
        expect(retryDelayMs(30, 45 * MIN)).toBe(45 * MIN);
    });

    it('fails a notice after maxAttempts transient failures and reports it exhausted', () => {
        expect(max).toBe(3);
        let cur = inc;
        for (let i = 1; i < max; i++) {
            const r = recordDelivery(cur, teams, transient(`fail ${i}`), NOW + i, max);
            expect(r.exhausted).toBeUndefined();
            cur = r.incident;
        }
        const last = recordDelivery(cur, teams, transient('fail 3'), NOW + 3, max);
        expect(last.exhausted).toMatchObject({
            id: teams,
            status: 'failed',
            attempts: 3,
            lastError: 'fail 3',
            channel: 'teams',
        });
        expect(last.exhausted).not.toHaveProperty('nextAttemptMs');
        expect(notice(last.incident, teams)).toEqual(last.exhausted);
    });

    it('fails a non-transient error at once', () => {
        const r = recordDelivery(inc, teams, { ok: false, transient: false, error: 'HTTP 400' }, NOW, max);
        expect(r.exhausted).toMatchObject({ id: teams, status: 'failed', attempts: 1, lastError: 'HTTP 400' });
        expect(notice(r.incident, teams).status).toBe('failed');
    });

    it('ignores an unknown notice id', () => {
        const r = recordDelivery(inc, 'opened-9-0-teams', { ok: true }, NOW, max);
        expect(r.exhausted).toBeUndefined();
        expect(r.incident.notifications).toEqual(inc.notifications);
    });
});

describe('nextDueMs', () => {
    const inc = applyFinding(undefined, finding(), [], ctxAt(NOW));
    const sendAll = (i: Incident, when: number): Incident =>
        i.notifications.reduce((cur, n) => recordDelivery(cur, n.id, { ok: true }, when, 3).incident, i);

    it('is the earliest pending attempt or the escalation time', () => {
        expect(nextDueMs(inc, settings, 3)).toBe(NOW);
        const retried = recordDelivery(inc, 'opened-0-0-teams', { ok: false, transient: true, error: 'x' }, NOW, 3);
        const emailSent = recordDelivery(retried.incident, 'opened-0-0-email', { ok: true }, NOW, 3).incident;
        expect(nextDueMs(emailSent, settings, 3)).toBe(NOW + 30_000);
        // A retry later than the escalation: the escalation comes first.
        const late = recordDelivery(inc, 'opened-0-0-teams', { ok: false, transient: true, error: 'x' }, NOW, 3);
        const lateRetry: Incident = {
            ...late.incident,
            notifications: late.incident.notifications.map((n) =>
                n.status === 'pending' ? { ...n, nextAttemptMs: NOW + 60 * MIN } : n,
            ),
        };
        expect(nextDueMs(lateRetry, settings, 3)).toBe(NOW + settings.escalateAfterMs);
        expect(nextDueMs(sendAll(inc, NOW), settings, 3)).toBe(NOW + settings.escalateAfterMs);
    });

    it('is undefined when nothing is pending and nothing escalates', () => {
        const sent = sendAll(inc, NOW);
        const acked = acknowledge(sent, { at: at(NOW) });
        if ('already' in acked) throw new Error('unreachable');
        expect(nextDueMs(acked, settings, 3)).toBeUndefined();
        const medium = sendAll(applyFinding(undefined, finding({ severity: 'medium' }), [], ctxAt(NOW)), NOW);
        expect(nextDueMs(medium, settings, 3)).toBeUndefined();
        const exhausted: Incident = { ...sent, tier: 2, reminders: settings.maxReminders };
        expect(nextDueMs(exhausted, settings, 3)).toBeUndefined();
        // A failed notice is not due any more.
        const failed = recordDelivery(
            applyFinding(undefined, finding({ severity: 'medium' }), [], ctxAt(NOW)),
            'opened-0-0-teams',
            { ok: false, transient: false, error: 'HTTP 400' },
            NOW,
            3,
        ).incident;
        expect(nextDueMs(sendAll(failed, NOW), settings, 3)).toBeUndefined();
    });
});

// -------------------------------------------------------------------------------------------------------------
// Tokens

describe('link tokens', () => {
    const claims: LinkClaims = {
        inc: 'abc123',
        act: 'ack',
        iat: Math.floor(NOW / 1000),
        exp: Math.floor(NOW / 1000) + 3600,
        jti: '6f1c8c57-2a55-4bb5-9a4e-0c1f2b3d4e5f',
    };
    const signature = Uint8Array.from([1, 2, 3, 250, 251, 252, 253, 254, 255]);
    const input = signingInputOf('kid-1', claims);
    const token = tokenOf(input, signature);
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64url');

    it('round-trips: header names RS256 and the key, the claims and signature come back', () => {
        const [h, c, s] = token.split('.');
        expect(JSON.parse(Buffer.from(h ?? '', 'base64url').toString('utf8'))).toEqual({
            alg: 'RS256',
            typ: 'JWT',
            kid: 'kid-1',
        });
        expect(JSON.parse(Buffer.from(c ?? '', 'base64url').toString('utf8'))).toEqual(claims);
        expect(s).toMatch(/^[A-Za-z0-9_-]+$/);
        const parsed = parseToken(token);
        expect(parsed).toEqual({ kid: 'kid-1', claims, signingInput: input, signature: Buffer.from(signature) });
    });

    it.each<[string, string, string]>([
        ['empty', '', 'the link has no token'],
        ['two parts', input, 'the token is malformed'],
        ['four parts', `${token}.x`, 'the token is malformed'],
        ['too long', `${input}.${'A'.repeat(2100)}`, 'the token is too long'],
        ['standard base64 characters', `${input}.ab+c/d==`, 'the token is malformed'],
        ['a padded signature', `${input}.AQID=`, 'the token is malformed'],
        ['an empty signature', `${input}.`, 'the token is malformed'],
        [
            'a header that is not JSON',
            `${Buffer.from('{not json').toString('base64url')}.${b64(claims)}.AQID`,
            'the token is malformed',
        ],
        [
            'alg none',
            `${b64({ alg: 'none', kid: 'kid-1' })}.${b64(claims)}.AQID`,
            'the token is not an RS256 token of kv-responder',
        ],
        [
            'alg HS256',
            `${b64({ alg: 'HS256', kid: 'kid-1' })}.${b64(claims)}.AQID`,
            'the token is not an RS256 token of kv-responder',
        ],
        ['no kid', `${b64({ alg: 'RS256' })}.${b64(claims)}.AQID`, 'the token is not an RS256 token of kv-responder'],
        [
            'a header that is an array',
            `${b64(['RS256'])}.${b64(claims)}.AQID`,
            'the token is not an RS256 token of kv-responder',
        ],
        [
            'an unknown action',
            `${b64({ alg: 'RS256', kid: 'k' })}.${b64({ ...claims, act: 'delete' })}.AQID`,
            'the token does not carry kv-responder claims',
        ],
        [
            'exp as a string',
            `${b64({ alg: 'RS256', kid: 'k' })}.${b64({ ...claims, exp: '9999999999' })}.AQID`,
            'the token does not carry kv-responder claims',
        ],
        [
            'no jti',
            `${b64({ alg: 'RS256', kid: 'k' })}.${b64({ ...claims, jti: undefined })}.AQID`,
            'the token does not carry kv-responder claims',
        ],
        [
            'claims null',
            `${b64({ alg: 'RS256', kid: 'k' })}.${b64(null)}.AQID`,
            'the token does not carry kv-responder claims',
        ],
    ])('refuses %s', (_name, bad, error) => {
        expect(parseToken(bad)).toEqual({ error });
    });

    it('checks incident, action, expiry and issue time', () => {
        const expected = { incidentId: 'abc123', action: 'ack' as const };
        expect(checkClaims(claims, expected, NOW)).toBeUndefined();
        expect(checkClaims(claims, { ...expected, incidentId: 'other' }, NOW)).toBe(
            'the token belongs to another incident',
        );
        expect(checkClaims(claims, { ...expected, action: 'undo' }, NOW)).toBe('the token is for "ack", not "undo"');
        expect(checkClaims(claims, expected, claims.exp * 1000 - 1)).toBeUndefined();
        expect(checkClaims(claims, expected, claims.exp * 1000)).toBe(
            `the link expired at ${new Date(claims.exp * 1000).toISOString()}`,
        );
        // Clock skew of up to five minutes is tolerated; more is a token from the future.
        expect(checkClaims(claims, expected, claims.iat * 1000 - 5 * MIN)).toBeUndefined();
        expect(checkClaims(claims, expected, claims.iat * 1000 - 5 * MIN - 1)).toBe(
            'the token was issued in the future',
        );
    });
});

// -------------------------------------------------------------------------------------------------------------
// Rendering attacker-controlled strings

const EVIL = {
    script: '<script>alert(1)</script>',
    img: '"><img src=x onerror=alert(1)>',
    link: '[click](https://evil.example)',
    url: 'https://evil.example/login',
    date: '{{DATE(2026-10-05T09:05:00Z, SHORT)}}',
    crlf: 'line one\r\nInjected: header\nBcc: victim@contoso.example',
    bidi: 'invoice\u202Egnp.exe',
};
const EVIL_ALL = Object.values(EVIL).join(' ');

/** Schema violations of a Teams webhook body (test/support/adaptiveCard.ts). */
function validateCard(message: unknown): string[] {
    return validateTeamsWebhookMessage(message);
}

function evilIncident(actions: Incident['actions'] = []): Incident {
    const f = finding({
        summary: `${EVIL_ALL} summary`,
        operations: ['VaultPatch', EVIL.script, EVIL.link],
        actor: {
            upn: `${EVIL.img}@contoso.example`,
            ip: EVIL.crlf,
            userAgent: `${EVIL.date} ${EVIL.url} ${EVIL.bidi}`,
        },
    });
    const inc = applyFinding(undefined, f, [], ctxAt(NOW));
    return { ...inc, actions };
}

const LINKS: IncidentLinks = {
    ack: 'https://kvr.example/api/incidents/abc/ack?t=aaa.bbb.ccc',
    portal: `https://portal.azure.com/#resource${VAULT_ID}/overview`,
};

function view(inc: Incident, links: IncidentLinks = LINKS, over: Partial<NoticeView> = {}): NoticeView {
    return { incident: inc, kind: 'opened', tier: 0, tierName: 'primary', links, ...over };
}

/** Every string of the card that Teams renders as Markdown (TextBlock text, fact titles and values). */
function markdownStrings(node: unknown, out: string[] = []): string[] {
    if (Array.isArray(node)) {
        for (const n of node) markdownStrings(n, out);
    } else if (typeof node === 'object' && node !== null) {
        const o = node as Record<string, unknown>;
        if (o.type === 'TextBlock' && typeof o.text === 'string') out.push(o.text);
        if (typeof o.title === 'string' && typeof o.value === 'string') out.push(o.title, o.value);
        for (const v of Object.values(o)) markdownStrings(v, out);
    }
    return out;
}

/** Every string of the card shown as it is (TextRun text, where Markdown is not interpreted, and fallbackText). */
function runStrings(node: unknown, out: string[] = []): string[] {
    if (Array.isArray(node)) {
        for (const n of node) runStrings(n, out);
    } else if (typeof node === 'object' && node !== null) {
        const o = node as Record<string, unknown>;
        if (o.type === 'TextRun' && typeof o.text === 'string') out.push(o.text);
        if (typeof o.fallbackText === 'string') out.push(o.fallbackText);
        for (const v of Object.values(o)) runStrings(v, out);
    }
    return out;
}

/** The card keeps untrusted text out of Markdown and out of anything a client turns into a link or a function. */
function expectSafeCard(card: unknown): void {
    for (const s of markdownStrings(card)) expect(s).not.toMatch(/evil|script|img|Injected|DATE|invoice|\[<>]/i); // only our own words are Markdown
    for (const s of runStrings(card)) expectSafeRun(s);
}

function cardOf(inc: Incident, links: IncidentLinks = LINKS, over: Partial<NoticeView> = {}) {
    const message = renderTeamsCard(view(inc, links, over));
    const card = message.attachments[0]?.content as {
        body: unknown[];
        actions: { type: string; title: string; url: string }[];
        fallbackText: string;
    };
    return { message, card };
}

function expectSafeRun(s: string): void {
    expect(s).not.toMatch(/https?:\/\/evil/); // no bare URL that autolinks
    expect(s).not.toMatch(/www\.evil/);
    expect(s).not.toMatch(/[^\s@]@[^\s@\u200b]+\.[a-z]/i); // no e-mail address that autolinks
    expect(s).not.toContain('{{'); // no Adaptive Card function
    expect(s).not.toMatch(/\\[\\`*_[\]<>#.-]/); // no Markdown escape, shown literally in a TextRun
    expect(s).not.toMatch(/[\r\n\u202a-\u202e\u2066-\u2069]/);
}

describe('cardText, html and plain', () => {
    it('plain removes control characters and bidi overrides and bounds the length', () => {
        expect(plain(EVIL.crlf)).toBe('line one  Injected: header Bcc: victim@contoso.example');
        expect(plain(EVIL.bidi)).toBe('invoice gnp.exe');
        expect(plain('\u2066x\u2069\u2028y')).toBe(' x  y');
        expect(plain('abcdef', 4)).toBe('abc…');
    });

    it('cardText breaks links, addresses and functions and adds no Markdown escapes (TextRuns show text as it is)', () => {
        for (const s of [
            ...Object.values(EVIL),
            EVIL_ALL,
            '# heading',
            '1. item',
            '- item',
            'www.evil.example',
            'a *b* _c_ `d` ~~e~~',
            '{{{{{DATE(2026-10-05T09:05:00Z)}}}',
        ])
            expectSafeRun(cardText(s));
        expect(cardText(EVIL.link)).toBe('[click](https:\u200b//evil.example)');
        expect(cardText('From 20.86.120.33, x86_64, 1. item')).toBe('From 20.86.120.33, x86_64, 1. item');
        expect(cardText('www.evil.example')).not.toContain('www.');
        expect(cardText('a@b.example')).toBe('a@\u200bb.example');
        // Only an address is broken: a lone "@" stays as it is.
        expect(cardText('user @ home, @mention, a@b')).toBe('user @ home, @mention, a@b');
    });

    it('html escapes every character that could open a tag or leave an attribute', () => {
        const out = html(`${EVIL.img} ${EVIL.script} 'x' \`y\` a=b & c`);
        expect(out).not.toMatch(/[<>"'`=]/);
        expect(out).toContain('&#60;img src&#61;x onerror&#61;alert(1)&#62;');
        expect(out).toContain('&#38; c');
        expect(html(EVIL.crlf)).not.toMatch(/[\r\n]/);
        expect(html(EVIL.bidi)).not.toContain('\u202e');
    });
});

describe('renderTeamsCard', () => {
    it('neutralizes attacker strings in every rendered field', () => {
        const { message, card } = cardOf(evilIncident());
        expect(validateCard(message)).toEqual([]);
        const strings = runStrings(card);
        // The hostile text is there (as text: no Markdown, no HTML in a TextRun), so the checks are not vacuous.
        expect(strings.some((s) => s.includes('<script>'))).toBe(true);
        expect(strings.some((s) => s.includes('[click](https:\u200b//evil.example)'))).toBe(true);
        expect(strings.some((s) => s.includes('Injected: header'))).toBe(true);
        expectSafeCard(card);
        // The buttons point at our links only.
        expect(card.actions.map((a) => a.url)).toEqual([LINKS.ack, LINKS.portal]);
        expect(JSON.stringify(card)).not.toContain('\u202e');
    });

    it('offers the undo button only for an applied remediation with an undo id', () => {
        const planned = evilIncident([{ action: 'restore-firewall-default', status: 'planned', undoId: 'u-1' }]);
        const appliedNoUndo = evilIncident([{ action: 'restore-firewall-default', status: 'applied' }]);
        const applied = evilIncident([
            { action: 'restore-firewall-default', status: 'applied', summary: EVIL.link, undoId: 'u-2' },
        ]);
        expect(undoableAction(planned)).toBeUndefined();
        expect(undoableAction(appliedNoUndo)).toBeUndefined();
        expect(undoableAction(applied)?.undoId).toBe('u-2');
        expect(undoableAction({ ...applied, undone: { at: at(NOW), undoId: 'u-2', restored: [] } })).toBeUndefined();

        const linksOf = (inc: Incident): IncidentLinks =>
            undoableAction(inc) === undefined ? LINKS : { ...LINKS, undo: 'https://kvr.example/api/undo' };
        const titles = (inc: Incident) => cardOf(inc, linksOf(inc)).card.actions.map((a) => a.title);
        expect(titles(planned)).toEqual(['Acknowledge', 'Open vault in the Azure portal']);
        expect(titles(appliedNoUndo)).toEqual(['Acknowledge', 'Open vault in the Azure portal']);
        expect(titles(applied)).toEqual(['Acknowledge', 'Undo remediation', 'Open vault in the Azure portal']);
        const { message, card } = cardOf(applied, linksOf(applied));
        expect(validateCard(message)).toEqual([]);
        expectSafeCard(card);
        expect(renderEmail(view(applied, linksOf(applied))).text).toContain(
            'Undo remediation: https://kvr.example/api/undo',
        );
        expect(renderEmail(view(planned, linksOf(planned))).text).not.toContain('Undo remediation');
    });

    it('drops the acknowledge button once the incident is acknowledged', () => {
        const acked = acknowledge(evilIncident(), { at: at(NOW), by: EVIL.link });
        if ('already' in acked) throw new Error('unreachable');
        const { card } = cardOf(acked);
        expect(card.actions.map((a) => a.title)).toEqual(['Open vault in the Azure portal']);
        expectSafeCard(card);
        expect(renderEmail(view(acked)).html).not.toContain('>Acknowledge<');
    });

    it('escapes the channel-failing error and the undo restore lines', () => {
        const failing = cardOf(evilIncident(), LINKS, {
            kind: 'channel-failing',
            failing: { channel: 'teams', error: EVIL_ALL },
        });
        expect(validateCard(failing.message)).toEqual([]);
        expect(runStrings(failing.card).some((s) => s.startsWith('Delivery by teams keeps failing'))).toBe(true);
        expectSafeCard(failing.card);

        const undone: Incident = {
            ...evilIncident(),
            undone: { at: at(NOW), by: EVIL.script, undoId: 'u', restored: [EVIL.link, EVIL.crlf] },
        };
        const u = cardOf(undone, LINKS, { kind: 'undone' });
        expect(validateCard(u.message)).toEqual([]);
        expect(runStrings(u.card).some((s) => s.startsWith('Restored: '))).toBe(true);
        expectSafeCard(u.card);
    });
});

describe('renderEmail', () => {
    const email = renderEmail(view(evilIncident([{ action: 'x', status: 'failed', summary: EVIL_ALL }])));

    it('escapes attacker strings in the HTML body', () => {
        expect(email.html).not.toMatch(/<script|<img|onerror=|href="https:\/\/evil|\u202e/i);
        expect(email.html).toContain('&#60;script&#62;');
        // The only links are ours.
        expect([...email.html.matchAll(/href="([^"]*)"/g)].map((m) => m[1])).toEqual([
            html(LINKS.ack ?? '', 4000),
            html(LINKS.portal, 4000),
        ]);
        // Every attacker line is confined to its element (no raw line breaks inside a cell).
        expect(email.html).not.toMatch(/<td>[^<]*[\r\n]/);
    });

    it('keeps the subject and every text line single-line', () => {
        expect(email.subject).not.toMatch(/[\r\n\u202e]/);
        expect(email.subject.startsWith('[kv-responder] HIGH')).toBe(true);
        const lines = email.text.split('\n');
        expect(lines.some((l) => /^(Injected|Bcc):/.test(l))).toBe(false);
        expect(email.text).not.toMatch(/[\r\u202e]/);
        expect(lines).toContain('From: line one  Injected: header Bcc: victim@contoso.example');
    });

    it('builds a MIME message whose headers carry no injected line', () => {
        const mime = Buffer.from(
            buildMime({
                from: 'kvr@contoso.example',
                to: ['oncall@contoso.example'],
                subject: `${email.subject} ${EVIL.crlf}`,
                text: email.text,
                html: email.html,
            }),
            'base64',
        ).toString('ascii');
        const headers = mime.slice(0, mime.indexOf('\r\n\r\n')).split('\r\n');
        expect(headers.some((h) => /^(Injected|Bcc):/i.test(h))).toBe(false);
        expect(headers.filter((h) => /^To:/i.test(h))).toEqual(['To: oncall@contoso.example']);
    });
});

describe('link pages', () => {
    const inc = evilIncident([{ action: 'restore-firewall-default', status: 'applied', summary: EVIL_ALL }]);
    const hostileToken = `"><script>alert(1)</script>${EVIL.link}`;

    function expectSafePage(page: string): void {
        expect(page).not.toMatch(/<script|<img|onerror=|href="https:\/\/evil|\u202e/i);
    }

    it('the confirmation page escapes the incident and the token, and has one form that POSTs', () => {
        const page = confirmationPage(inc, 'ack', hostileToken);
        expectSafePage(page);
        expect(page).toContain('&#60;script&#62;');
        expect(page.match(/<form/g)).toHaveLength(1);
        expect(page).toContain('<form method="post">');
        expect(page).toContain(`name="t" value="${html(hostileToken, 4096)}"`);
        expect(page).toContain('Nothing has changed yet');
    });

    it('a blocked confirmation page has no form', () => {
        const page = confirmationPage(inc, 'undo', 'aaa.bbb.ccc', `Already ${EVIL.script}`);
        expectSafePage(page);
        expect(page).not.toContain('<form');
        expect(page).toContain('<p id="state">Already &#60;script&#62;');
    });

    it('result and error pages escape the message', () => {
        expectSafePage(resultPage(inc, 'ack', `Acknowledged by ${EVIL.img}`));
        expectSafePage(errorPage(EVIL.script, EVIL_ALL));
    });
});

// -------------------------------------------------------------------------------------------------------------
// Undo

describe('planRestore, withApprovals, mergeApprovals', () => {
    const API = 'c0c0c0c0-0000-4000-8000-0000000000a1';
    const VNET = '/subscriptions/s/resourceGroups/n/providers/Microsoft.Network/virtualNetworks/v/subnets/a';
    const VAULT_REF = {
        subscriptionId: '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40',
        resourceGroup: 'rg-payments',
        name: 'kv-payments-prod',
        resourceId: VAULT_ID,
    };
    const cfg = parseResponderConfig(
        {
            guardrails: {
                default: {
                    networkDefaultAction: 'Deny',
                    publicNetworkAccess: 'Disabled',
                    approvedIpRanges: ['198.51.100.0/24'],
                    approvedPrincipals: [{ objectId: API, permissions: { secrets: ['get'] } }],
                },
            },
        },
        ruleIds,
        'test',
    );
    const policy = cfg.detection.policyFor(VAULT_REF);
    const guard = { protectedPrincipals: new Set<string>() };
    const ALL_RULES = [
        'firewall-opened',
        'firewall-ip-rule-added',
        'public-network-access-enabled',
        'access-policy-granted',
    ];
    const malloryEntry = { tenantId: 't', objectId: MALLORY.toUpperCase(), permissions: { secrets: ['Get', 'List'] } };

    // A record as written before undo was scoped (whole snapshot and plan): still read, parts derived from it.
    const record: UndoRecord & Required<Pick<UndoRecord, 'before' | 'plan'>> = {
        vaultId: VAULT_ID,
        at: at(NOW),
        rules: ALL_RULES,
        before: {
            networkAcls: {
                bypass: 'AzureServices',
                defaultAction: 'Allow',
                ipRules: [{ value: '198.51.100.7/32' }, { value: '203.0.113.66/32' }],
            },
            publicNetworkAccess: 'Enabled',
            accessPolicies: [malloryEntry],
        },
        plan: {
            patch: {
                networkAcls: {
                    bypass: 'AzureServices',
                    defaultAction: 'Deny',
                    ipRules: [{ value: '198.51.100.7/32' }],
                    virtualNetworkRules: [],
                },
                publicNetworkAccess: 'Disabled',
            },
            accessPolicyRemovals: [malloryEntry],
        },
    };

    // The vault now: remediated, then changed by someone else (bypass, a virtual network, an approved IP rule).
    const current: VaultSnapshot = {
        id: VAULT_ID,
        name: 'kv-payments-prod',
        properties: {
            tenantId: 't',
            enableRbacAuthorization: false,
            publicNetworkAccess: 'Disabled',
            networkAcls: {
                bypass: 'None',
                defaultAction: 'Deny',
                ipRules: [{ value: '198.51.100.7/32' }, { value: '198.51.100.20/32' }],
                virtualNetworkRules: [{ id: VNET }],
            },
            accessPolicies: [{ tenantId: 't', objectId: API, permissions: { secrets: ['get'] } }],
        },
    };

    function applyRestore(v: VaultSnapshot, r: ReturnType<typeof planRestore>): VaultSnapshot {
        return {
            ...v,
            properties: {
                ...v.properties,
                ...(r.patch?.networkAcls === undefined ? {} : { networkAcls: r.patch.networkAcls }),
                ...(r.patch?.publicNetworkAccess === undefined
                    ? {}
                    : { publicNetworkAccess: r.patch.publicNetworkAccess }),
                accessPolicies: [...(v.properties.accessPolicies ?? []), ...r.accessPolicyAdds],
            },
        };
    }

    it('restores only what the remediation removed, relative to the vault as it is now', () => {
        const r = planRestore(record, current);
        expect(r.patch).toEqual({
            networkAcls: {
                bypass: 'None',
                defaultAction: 'Allow',
                ipRules: [{ value: '198.51.100.7/32' }, { value: '198.51.100.20/32' }, { value: '203.0.113.66/32' }],
                virtualNetworkRules: [{ id: VNET }],
            },
            publicNetworkAccess: 'Enabled',
        });
        expect(r.accessPolicyAdds).toEqual([malloryEntry]);
        expect(r.restored).toEqual([
            'IP rule 203.0.113.66/32 restored',
            'firewall default action back to Allow',
            'public network access back to Enabled',
            `access policy of ${MALLORY.toUpperCase()} restored (secrets: Get, List)`,
        ]);
        expect(r.approvals).toEqual({
            ipRanges: ['203.0.113.66/32'],
            principals: [
                {
                    objectId: MALLORY,
                    permissions: { keys: [], secrets: ['get', 'list'], certificates: [], storage: [] },
                },
            ],
            networkDefaultAction: 'Allow',
            publicNetworkAccess: 'Enabled',
        });
    });

    it('changes nothing when the vault already has the saved state, but still approves it', () => {
        const already: VaultSnapshot = {
            ...current,
            properties: {
                ...current.properties,
                publicNetworkAccess: 'enabled',
                networkAcls: {
                    defaultAction: 'Allow',
                    ipRules: [{ value: '203.0.113.66/32' }],
                },
            },
        };
        const r = planRestore({ ...record, plan: { ...record.plan, accessPolicyRemovals: [] } }, already);
        expect(r.patch).toBeUndefined();
        expect(r.restored).toEqual(['nothing to restore: the vault already has the saved state']);
        expect(r.approvals).toMatchObject({
            ipRanges: ['203.0.113.66/32'],
            networkDefaultAction: 'Allow',
            publicNetworkAccess: 'Enabled',
        });
    });

    it('does not touch the default action when the remediation did not change it', () => {
        const ipOnly: UndoRecord = {
            ...record,
            before: { ...record.before, networkAcls: { ...record.before.networkAcls, defaultAction: 'Deny' } },
            plan: { patch: { networkAcls: { ...record.plan.patch?.networkAcls } }, accessPolicyRemovals: [] },
        };
        const r = planRestore(ipOnly, {
            ...current,
            properties: {
                ...current.properties,
                networkAcls: { ...current.properties.networkAcls, defaultAction: 'Allow' },
            },
        });
        expect(r.patch?.networkAcls?.defaultAction).toBe('Allow'); // as the vault is now, not as saved
        expect(r.restored).toEqual(['IP rule 203.0.113.66/32 restored']);
        expect(r.approvals).not.toHaveProperty('networkDefaultAction');
        expect(r.approvals).not.toHaveProperty('publicNetworkAccess');
    });

    it('approvals make the restored vault compliant: the responder does not revert the undo', () => {
        const r = planRestore(record, current);
        const restored = applyRestore(current, r);
        // Without the approvals the restored vault is drift again, on every rule.
        const without = planRemediation(restored, ALL_RULES, policy, guard);
        expect(without.actions.map((a) => a.action).sort()).toEqual([
            'disable-public-network-access',
            'remove-access-policy',
            'remove-ip-rule',
            'restore-firewall-default',
        ]);
        const approved = withApprovals(policy, r.approvals);
        const plan = planRemediation(restored, ALL_RULES, approved, guard);
        expect(plan.actions).toEqual([]);
        expect(plan.patch).toBeUndefined();
        expect(plan.accessPolicyRemovals).toEqual([]);
        // Approvals cover what was restored, not more: a new unapproved IP rule or permission is still drift.
        const more: VaultSnapshot = {
            ...restored,
            properties: {
                ...restored.properties,
                networkAcls: {
                    ...restored.properties.networkAcls,
                    ipRules: [...(restored.properties.networkAcls?.ipRules ?? []), { value: '192.0.2.9/32' }],
                },
                accessPolicies: [
                    { tenantId: 't', objectId: MALLORY, permissions: { secrets: ['get', 'list', 'purge'] } },
                ],
            },
        };
        const again = planRemediation(more, ALL_RULES, approved, guard);
        expect(again.actions.map((a) => a.detail)).toEqual(
            expect.arrayContaining([
                expect.objectContaining({ removed: ['192.0.2.9/32'] }),
                expect.objectContaining({ objectId: MALLORY, permissions: { secrets: ['purge'] } }),
            ]),
        );
    });

    it('withApprovals leaves the policy alone without approvals or when they agree with it', () => {
        expect(withApprovals(policy, undefined)).toBe(policy);
        const same = withApprovals(policy, {
            ipRanges: [],
            principals: [],
            networkDefaultAction: 'Deny',
            publicNetworkAccess: 'Disabled',
        });
        expect(same.networkDefaultAction).toBe('Deny');
        expect(same.publicNetworkAccess).toBe('Disabled');
        // A principal approved with any permissions stays "any".
        const anyPolicy = { ...policy, approvedPrincipals: new Map([[MALLORY, undefined]]) };
        const merged = withApprovals(anyPolicy, {
            ipRanges: ['not-a-range'],
            principals: [
                { objectId: MALLORY, permissions: { keys: [], secrets: ['get'], certificates: [], storage: [] } },
            ],
        });
        expect(merged.approvedPrincipals.get(MALLORY)).toBeUndefined();
        expect(merged.approvedPrincipals.has(MALLORY)).toBe(true);
        expect(merged.approvedIpRanges).toHaveLength(policy.approvedIpRanges.length);
    });

    it('mergeApprovals accumulates ranges and permissions; the later default action wins', () => {
        const perms = (secrets: string[]) => ({ keys: [], secrets, certificates: [], storage: [] });
        const a = {
            ipRanges: ['203.0.113.66/32'],
            principals: [{ objectId: MALLORY, permissions: perms(['get']) }],
            networkDefaultAction: 'Allow' as const,
        };
        const b = {
            ipRanges: ['203.0.113.66/32', '192.0.2.0/24'],
            principals: [
                { objectId: MALLORY, permissions: perms(['list', 'get']) },
                { objectId: API, permissions: perms(['set']) },
            ],
            publicNetworkAccess: 'Enabled' as const,
        };
        expect(mergeApprovals(undefined, b)).toBe(b);
        expect(mergeApprovals(a, b)).toEqual({
            ipRanges: ['203.0.113.66/32', '192.0.2.0/24'],
            principals: [
                { objectId: MALLORY, permissions: perms(['get', 'list']) },
                { objectId: API, permissions: perms(['set']) },
            ],
            networkDefaultAction: 'Allow',
            publicNetworkAccess: 'Enabled',
        });
        expect(mergeApprovals(a, { ...b, networkDefaultAction: 'Deny' }).networkDefaultAction).toBe('Deny');
    });
});
