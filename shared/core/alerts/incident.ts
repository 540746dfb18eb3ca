/**
 * Incidents: findings of one vault, rule and principal within a window form one incident, which is what people are
 * notified about, acknowledge, undo and escalate. Pure: every time is passed in, state lives in the store.
 */
import type { ActionDecision, FindingDecision, Severity } from '../decisions';
import { hash64 } from '../hash';
import { boundedId, boundedText, MAX_TEXT_CHARS } from '../state/limits';
import type { ChannelName, NoticeKind } from './types';
import { type AlertSettings, atLeast, SEVERITY_RANK } from './settings';

export type IncidentStatus = 'open' | 'acknowledged' | 'resolved';

/** Who did what from where, as the triggering records say (attacker-controlled strings: escape when rendering). */
export interface IncidentActor {
    readonly principal?: string;
    readonly upn?: string;
    readonly appId?: string;
    readonly managedIdentity?: string;
    readonly ip?: string;
    readonly userAgent?: string;
}

export interface IncidentAction {
    readonly action: string;
    readonly status: ActionDecision['status'];
    readonly summary?: string;
    readonly undoId?: string;
    /** Why it was skipped or failed (`already-compliant`, `blast-radius`, `not-verified`, `vault-gone` ...). */
    readonly reason?: string;
    /** A failure: the stage and the error ARM answered (bounded). */
    readonly error?: string;
    /** A failure for lack of an Azure RBAC permission (ARM answered 403). */
    readonly missingPermission?: true;
    /**
     * The vault the action ran on, when it is not the incident's own (a role assignment above vault scope: the
     * incident is the scope's, the action ran on a vault it covers, and its undo record is saved there).
     */
    readonly vaultId?: string;
}

export type DeliveryStatus = 'pending' | 'sent' | 'failed';

/** One notification of an incident and its delivery state (the outbox). */
export interface NotificationRecord {
    /** `<kind>-<tier>-<n>-<channel>`: deterministic, so a redelivered batch never adds a second one. */
    readonly id: string;
    readonly channel: ChannelName;
    readonly kind: NoticeKind;
    /** The roster tier notified. */
    readonly tier: number;
    readonly status: DeliveryStatus;
    readonly attempts: number;
    /** Wall-clock epoch ms of the next attempt, while pending. */
    readonly nextAttemptMs?: number;
    readonly lastError?: string;
    readonly sentAt?: string;
    readonly createdAt: string;
}

/**
 * Who acted on an incident through a link: the time, the signed-in user (name and object id, from App Service
 * Authentication) when the host knows it, the client address.
 */
export interface PersonAction {
    readonly at: string;
    readonly by?: string;
    readonly byId?: string;
    readonly from?: string;
}

/** A recorded undo: who, which remediation, what it restored, and what it approved until when. */
export interface UndoneRecord extends PersonAction {
    readonly undoId: string;
    readonly restored: readonly string[];
    /** One line per approved item (absent on undos recorded before approvals expired). */
    readonly approved?: readonly string[];
    /** When those approvals expire (ISO). */
    readonly approvedUntil?: string;
    /**
     * What the undo left to the person, to run with their own rights (re-create a role assignment, delete a setting
     * the responder created): one Azure CLI command per step.
     */
    readonly manual?: readonly string[];
}

export interface Incident {
    readonly id: string;
    readonly vault: string;
    readonly vaultId: string;
    readonly rule: string;
    readonly severity: Severity;
    readonly principal?: string;
    readonly status: IncidentStatus;
    /** Event time of the first and latest finding. */
    readonly openedAt: string;
    readonly lastSeenAt: string;
    readonly lastSeenMs: number;
    readonly findings: number;
    /** Records behind the findings (summed finding counts). */
    readonly records: number;
    readonly summary: string;
    readonly operations: readonly string[];
    readonly correlationIds: readonly string[];
    readonly actor: IncidentActor;
    readonly roster: string;
    /** The highest tier notified so far. */
    readonly tier: number;
    readonly reminders: number;
    /** Wall-clock epoch ms when the current tier was notified: escalation counts from here. */
    readonly tierSinceMs: number;
    readonly actions: readonly IncidentAction[];
    readonly notifications: readonly NotificationRecord[];
    readonly acknowledged?: PersonAction;
    readonly undone?: UndoneRecord;
    /** Object ids the findings name as grantees (access-policy rules): an undo restores only their entries. */
    readonly grantees?: readonly string[];
    /** The customer-managed key version the incident is about (CMK rules). */
    readonly keyId?: string;
    /** When a person re-enabled that key version through a link. */
    readonly reenabled?: PersonAction;
    /**
     * When the people notified were told the remediation's outcome (wall clock, ISO): by the first notice when it went
     * out with the outcome on it, or by the one `remediation` follow-up. Set once; no second follow-up after it.
     */
    readonly outcomeNotified?: string;
    /** Notable events, newest last (bounded). */
    readonly history: readonly { readonly at: string; readonly what: string }[];
}

const MAX_LISTED = 20;
const MAX_HISTORY = 30;
const MAX_NOTIFICATIONS = 60;

/** The key that groups findings into one incident. */
export function incidentKeyOf(f: Pick<FindingDecision, 'vault' | 'rule' | 'principal'>): string {
    return `${f.rule}|${f.principal ?? '-'}`;
}

/** Incident id from its key and first finding: identical on every processor and on redelivery. */
export function incidentIdOf(vault: string, key: string, firstFindingMs: number): string {
    return `${hash64(`${vault}|${key}|${firstFindingMs}`)}${firstFindingMs.toString(36)}`;
}

function push<T>(list: readonly T[], items: readonly T[], max: number): T[] {
    const out = [...list];
    for (const i of items) if (!out.includes(i)) out.push(i);
    return out.length > max ? out.slice(out.length - max) : out;
}

function historyWith(h: Incident['history'], at: string, what: string): Incident['history'] {
    const out = [...h, { at, what }];
    return out.length > MAX_HISTORY ? out.slice(out.length - MAX_HISTORY) : out;
}

function boundedFinding(f: FindingDecision): FindingDecision {
    const long = (s: string): boolean => s.length > 128;
    if (
        f.summary.length <= 2048 &&
        (f.principal === undefined || f.principal.length <= 1024) &&
        !f.correlationIds.some(long) &&
        !f.operations.some(long)
    )
        return f;
    return {
        ...f,
        summary: boundedText(f.summary, 2048),
        ...(f.principal === undefined ? {} : { principal: boundedText(f.principal) }),
        correlationIds: f.correlationIds.map((c) => boundedId(c)),
        operations: f.operations.map((o) => boundedId(o)),
    };
}

function actorOf(f: FindingDecision): IncidentActor {
    const a = (f.actor ?? {}) as Record<string, unknown>;
    const out: Record<string, string> = {};
    if (f.principal !== undefined) out.principal = f.principal;
    for (const k of ['upn', 'appId', 'managedIdentity', 'ip', 'userAgent'] as const) {
        const v = a[k];
        if (typeof v === 'string' && v !== '') out[k] = v.slice(0, 300);
    }
    return out;
}

/** The grantee object id a finding names (access-policy rules), lower-case. */
function granteeOf(f: FindingDecision): string | undefined {
    const g = f.grantee;
    return typeof g === 'string' && /^[0-9a-fA-F-]{36}$/.test(g) ? g.toLowerCase() : undefined;
}

function actionsOf(actions: readonly ActionDecision[]): IncidentAction[] {
    return actions.map((a) => {
        const str = (v: unknown, max: number): string | undefined =>
            typeof v === 'string' && v !== '' ? boundedText(v, max) : undefined;
        const summary = str(a.detail.summary, MAX_TEXT_CHARS);
        const undoId = str(a.detail.undoId, 128);
        const reason = a.status === 'skipped' || a.status === 'failed' ? str(a.detail.reason, 80) : undefined;
        const stage = str(a.detail.stage, 40);
        const problems = Array.isArray(a.detail.problems)
            ? (a.detail.problems as unknown[]).filter((p): p is string => typeof p === 'string').join('; ')
            : undefined;
        const raw = a.status === 'failed' ? (str(a.detail.error, MAX_ACTION_TEXT) ?? problems) : undefined;
        const error =
            raw === undefined || raw === ''
                ? undefined
                : boundedText(stage === undefined ? raw : `${stage}: ${raw}`, MAX_ACTION_TEXT);
        return {
            action: a.action,
            status: a.status,
            ...(summary === undefined ? {} : { summary }),
            ...(undoId === undefined ? {} : { undoId }),
            ...(reason === undefined ? {} : { reason }),
            ...(error === undefined ? {} : { error }),
            ...(a.status === 'failed' && a.detail.missingPermission === true
                ? { missingPermission: true as const }
                : {}),
        };
    });
}

/** An action's error kept on the incident: bounded so 20 of them stay small. */
const MAX_ACTION_TEXT = 400;

/** Statuses that are an outcome to tell people about (a plan in monitor mode says what would have been done). */
const OUTCOME_STATUSES: ReadonlySet<string> = new Set(['applied', 'failed', 'skipped', 'planned']);

/** Whether any notice of the incident may have reached someone, or is on its way with the incident as it was. */
function noticeStarted(inc: Incident, nowMs: number): boolean {
    return inc.notifications.some((n) => n.status !== 'pending' || n.attempts > 0 || (n.nextAttemptMs ?? 0) > nowMs);
}

/**
 * The incident after a remediation outcome was added to it: when its notices went out (or are being sent) without
 * the outcome, one `remediation` follow-up to every tier notified so far, on the channels that tier uses. When its
 * notices have not started yet, they render the incident as it is when they go out, outcome included: only the
 * marker is set. Once the marker is set, nothing more is added (redelivered outcomes, concurrent writers: the caller
 * writes the incident with compare-and-set, so the marker is set exactly once). Unchanged (same object) when there is
 * nothing to tell or it was told already; an incident that notified nobody (below the severity floor) stays silent.
 */
export function withOutcomeNotice(inc: Incident, ctx: UpdateContext): Incident {
    if (inc.outcomeNotified !== undefined || inc.notifications.length === 0) return inc;
    const outcome = inc.actions.filter((a) => OUTCOME_STATUSES.has(a.status));
    if (outcome.length === 0) return inc;
    const at = new Date(ctx.nowMs).toISOString();
    if (!noticeStarted(inc, ctx.nowMs)) return { ...inc, outcomeNotified: at };
    let out: Incident = {
        ...inc,
        outcomeNotified: at,
        history: historyWith(
            inc.history,
            at,
            `remediation outcome sent as a follow-up: ${outcome.map((a) => `${a.status} ${a.action}`).join(', ')}`.slice(
                0,
                1000,
            ),
        ),
    };
    // Teams is one channel for the whole roster: one card. Email goes to each tier notified so far (its own address).
    const firstTeams = ctx.teamsTiers.findIndex((on, t) => on && t <= inc.tier);
    const once: UpdateContext = { ...ctx, teamsTiers: ctx.teamsTiers.map((on, t) => on && t === firstTeams) };
    for (let t = 0; t <= inc.tier; t++) out = withNotices(out, 'remediation', t, once);
    return out;
}

/**
 * The incident with the outcome of a remediation that ran after its finding was written (the reconcile worker):
 * the actions are listed, and an applied one with an undo id offers undo from then on. Unchanged (same object) when
 * every action is listed already (a worker outcome sent again).
 */
export function withActions(inc: Incident, actions: readonly ActionDecision[], atIso: string): Incident {
    const listed = new Set(inc.actions.map((a) => JSON.stringify(a)));
    const own = inc.vaultId.toLowerCase();
    const fresh = actionsOf(actions)
        .map((a, i) => {
            const vaultId = actions[i]?.vaultId;
            return typeof vaultId === 'string' && vaultId.toLowerCase() !== own
                ? { ...a, vaultId: boundedText(vaultId, 400) }
                : a;
        })
        .filter((a) => !listed.has(JSON.stringify(a)));
    if (fresh.length === 0) return inc;
    return {
        ...inc,
        actions: [...inc.actions, ...fresh].slice(-MAX_LISTED),
        history: historyWith(
            inc.history,
            atIso,
            `remediation: ${fresh.map((a) => `${a.status} ${a.action}`).join(', ')}`,
        ),
    };
}

/** Wall-clock context of an incident update. */
export interface UpdateContext {
    readonly nowMs: number;
    readonly settings: AlertSettings;
    /** The roster of the incident's vault and severity. */
    readonly rosterName: string;
    readonly tiers: number;
    readonly teamsTiers: readonly boolean[];
    readonly emailTiers: readonly boolean[];
}

/** Adds notices of `kind` for `tier` on every channel that tier uses (once per id). */
export function withNotices(inc: Incident, kind: NoticeKind, tier: number, ctx: UpdateContext): Incident {
    const at = new Date(ctx.nowMs).toISOString();
    const channels: ChannelName[] = [];
    if (ctx.teamsTiers[tier] === true) channels.push('teams');
    if (ctx.emailTiers[tier] === true) channels.push('email');
    const n = inc.notifications.filter((x) => x.kind === kind && x.tier === tier).length / Math.max(1, channels.length);
    const added: NotificationRecord[] = [];
    for (const channel of channels) {
        const id = `${kind}-${tier}-${Math.floor(n)}-${channel}`;
        if (inc.notifications.some((x) => x.id === id)) continue;
        added.push({
            id,
            channel,
            kind,
            tier,
            status: 'pending',
            attempts: 0,
            nextAttemptMs: ctx.nowMs,
            createdAt: at,
        });
    }
    if (added.length === 0) return inc;
    const notifications = [...inc.notifications, ...added];
    return {
        ...inc,
        notifications:
            notifications.length > MAX_NOTIFICATIONS ? notifications.slice(-MAX_NOTIFICATIONS) : notifications,
    };
}

/**
 * Applies one finding (and the remediation actions of its vault and rule in the same batch) to the incident it
 * belongs to. Returns a new incident when there is none or the open one is older than the window; the first notice
 * goes out at once, later findings only update the incident.
 */
export function applyFinding(
    current: Incident | undefined,
    f: FindingDecision,
    actions: readonly ActionDecision[],
    ctx: UpdateContext,
): Incident {
    const timeMs = Date.parse(f.time);
    // Findings from the engine are bounded already; others (remediation outcomes) are bounded here: the incident is
    // stored, and strings from records must not take it past what a state entity holds (../state/limits.ts).
    f = boundedFinding(f);
    const key = incidentKeyOf(f);
    const fresh = current === undefined || !stillOpenFor(current, timeMs, ctx.settings);
    const nowIso = new Date(ctx.nowMs).toISOString();
    if (fresh) {
        const notify = atLeast(f.severity, ctx.settings.minSeverity);
        const inc: Incident = {
            id: incidentIdOf(f.vault, key, timeMs),
            vault: f.vault,
            vaultId: f.vaultId,
            rule: f.rule,
            severity: f.severity,
            ...(f.principal === undefined ? {} : { principal: f.principal }),
            status: 'open',
            openedAt: f.time,
            lastSeenAt: f.time,
            lastSeenMs: timeMs,
            findings: 1,
            records: f.count,
            summary: f.summary,
            operations: f.operations.slice(0, MAX_LISTED),
            correlationIds: f.correlationIds.slice(-MAX_LISTED),
            actor: actorOf(f),
            ...(typeof f.keyId === 'string' ? { keyId: f.keyId } : {}),
            ...(granteeOf(f) === undefined ? {} : { grantees: [granteeOf(f) as string] }),
            roster: ctx.rosterName,
            tier: 0,
            reminders: 0,
            tierSinceMs: ctx.nowMs,
            actions: actionsOf(actions),
            notifications: [],
            history: [{ at: nowIso, what: `opened by ${f.rule} at ${f.time}` }],
        };
        return notify ? withNotices(inc, 'opened', 0, ctx) : inc;
    }
    // The same finding again (emitted once more because its first batch failed after this incident was written).
    if (
        timeMs <= current.lastSeenMs &&
        f.correlationIds.length > 0 &&
        f.correlationIds.every((c) => current.correlationIds.includes(c))
    )
        return current;
    const severity = SEVERITY_RANK[f.severity] > SEVERITY_RANK[current.severity] ? f.severity : current.severity;
    const newActions = actionsOf(actions);
    let inc: Incident = {
        ...current,
        severity,
        lastSeenAt: timeMs > current.lastSeenMs ? f.time : current.lastSeenAt,
        lastSeenMs: Math.max(timeMs, current.lastSeenMs),
        findings: current.findings + 1,
        records: current.records + f.count,
        summary: f.summary,
        operations: push(current.operations, f.operations, MAX_LISTED),
        correlationIds: push(current.correlationIds, f.correlationIds, MAX_LISTED),
        actions: newActions.length > 0 ? [...current.actions, ...newActions].slice(-MAX_LISTED) : current.actions,
        ...(granteeOf(f) === undefined
            ? {}
            : { grantees: push(current.grantees ?? [], [granteeOf(f) as string], MAX_LISTED) }),
        history:
            severity === current.severity
                ? current.history
                : historyWith(current.history, nowIso, `severity raised to ${severity}`),
    };
    // An incident that was below the notification floor notifies once a finding lifts it over.
    if (
        inc.notifications.length === 0 &&
        atLeast(severity, ctx.settings.minSeverity) &&
        !atLeast(current.severity, ctx.settings.minSeverity)
    )
        inc = withNotices(inc, 'opened', 0, ctx);
    return inc;
}

/** Whether a finding of this time still belongs to the incident (same key is assumed). */
export function stillOpenFor(inc: Incident, findingTimeMs: number, settings: AlertSettings): boolean {
    return inc.status !== 'resolved' && findingTimeMs - inc.lastSeenMs <= settings.incidentWindowMs;
}

/** The incident after a person acknowledged it, or the reason it cannot be. */
export function acknowledge(inc: Incident, who: PersonAction): Incident | { readonly already: PersonAction } {
    if (inc.acknowledged !== undefined) return { already: inc.acknowledged };
    return {
        ...inc,
        status: 'acknowledged',
        acknowledged: who,
        history: historyWith(inc.history, who.at, `acknowledged${who.by === undefined ? '' : ` by ${who.by}`}`),
    };
}

/** Rules whose incidents are about one customer-managed key version (re-enable applies). */
const KEY_RULES = new Set(['cmk-disabled-in-use', 'cmk-access-denied', 'cmk-expiring-in-use']);

/** The key version "Re-enable key version" would enable: a versioned key id of a CMK incident, not yet re-enabled. */
export function reenableTarget(inc: Incident): string | undefined {
    if (!KEY_RULES.has(inc.rule) || inc.reenabled !== undefined || inc.keyId === undefined) return undefined;
    return /\/keys\/[^/]+\/[0-9a-zA-Z]+$/.test(inc.keyId) ? inc.keyId : undefined;
}

/** Records a re-enabled key version. */
export function markReenabled(inc: Incident, who: PersonAction): Incident {
    return {
        ...inc,
        reenabled: who,
        history: historyWith(
            inc.history,
            who.at,
            `key version re-enabled${who.by === undefined ? '' : ` by ${who.by}`}`,
        ),
    };
}

/** The remediation of the incident that undo would revert (the latest applied one). */
export function undoableAction(inc: Incident): IncidentAction | undefined {
    if (inc.undone !== undefined) return undefined;
    return [...inc.actions].reverse().find((a) => a.status === 'applied' && a.undoId !== undefined);
}

/** At most `max` lines; the rest counted in a last line. */
export function boundedLines(lines: readonly string[], max = MAX_LISTED): string[] {
    return lines.length <= max ? [...lines] : [...lines.slice(0, max - 1), `... and ${lines.length - max + 1} more`];
}

/** What an incident's undo may restore: the parts of its own rule, and of access policies only its grantees. */
export function undoScopeOf(inc: Incident): {
    readonly rules: readonly string[];
    readonly grantees: readonly string[];
} {
    return { rules: [inc.rule], grantees: inc.grantees ?? [] };
}

/** What an undo did, as the incident records it. */
export interface UndoOutcome {
    readonly undoId: string;
    readonly restored: readonly string[];
    readonly approved?: readonly string[];
    readonly approvedUntil?: string;
    /** Steps left to the person (see {@link UndoneRecord.manual}). */
    readonly manual?: readonly { readonly what: string; readonly command: string }[];
}

/** One line per manual undo step: the command to run (it names what it restores). */
export function manualLines(steps: readonly { readonly what: string; readonly command: string }[]): string[] {
    return steps.map((m) => m.command);
}

/** Records an undo; notifies the tiers notified so far. */
export function markUndone(inc: Incident, who: PersonAction, undo: UndoOutcome, ctx: UpdateContext): Incident {
    const approved =
        undo.approved === undefined || undo.approved.length === 0 || undo.approvedUntil === undefined
            ? ''
            : `; approved until ${undo.approvedUntil}: ${undo.approved.join('; ')}`;
    const manual = manualLines(undo.manual ?? []);
    const left = manual.length === 0 ? '' : `; left to them: ${manual.join('; ')}`;
    let out: Incident = {
        ...inc,
        undone: {
            ...who,
            undoId: undo.undoId,
            restored: boundedLines(undo.restored),
            ...(undo.approved === undefined ? {} : { approved: boundedLines(undo.approved) }),
            ...(undo.approvedUntil === undefined ? {} : { approvedUntil: undo.approvedUntil }),
            ...(manual.length === 0 ? {} : { manual: boundedLines(manual) }),
        },
        history: historyWith(
            inc.history,
            who.at,
            `remediation undone${who.by === undefined ? '' : ` by ${who.by}`}: ${undo.restored.join('; ')}${approved}${left}`.slice(
                0,
                1000,
            ),
        ),
    };
    // One notice per channel: Teams is one webhook for the roster (a card at the first Teams tier notified), and the
    // undone email of a tier goes to that tier and every tier below it (the highest email tier notified reaches all).
    const notified = (on: readonly boolean[]) => on.map((v, t) => v && t <= inc.tier);
    const teams = notified(ctx.teamsTiers).indexOf(true);
    const email = notified(ctx.emailTiers).lastIndexOf(true);
    const only = (tier: number) => ctx.teamsTiers.map((_, t) => t === tier);
    const none = ctx.teamsTiers.map(() => false);
    if (teams >= 0) out = withNotices(out, 'undone', teams, { ...ctx, teamsTiers: only(teams), emailTiers: none });
    if (email >= 0)
        out = withNotices(out, 'undone', email, {
            ...ctx,
            teamsTiers: none,
            emailTiers: ctx.emailTiers.map((_, t) => t === email),
        });
    return out;
}

/** The escalation step due at `nowMs`, if any: the next tier, or a reminder to the last one. */
export function escalationDue(
    inc: Incident,
    nowMs: number,
    settings: AlertSettings,
    tiers: number,
): Incident | undefined {
    if (inc.status !== 'open' || !atLeast(inc.severity, settings.escalateMinSeverity)) return undefined;
    if (!atLeast(inc.severity, settings.minSeverity)) return undefined;
    if (nowMs - inc.tierSinceMs < settings.escalateAfterMs) return undefined;
    const at = new Date(nowMs).toISOString();
    if (inc.tier + 1 < tiers) {
        return {
            ...inc,
            tier: inc.tier + 1,
            tierSinceMs: nowMs,
            history: historyWith(inc.history, at, `escalated to tier ${inc.tier + 2} (unacknowledged)`),
        };
    }
    if (inc.reminders >= settings.maxReminders) return undefined;
    return {
        ...inc,
        reminders: inc.reminders + 1,
        tierSinceMs: nowMs,
        history: historyWith(inc.history, at, `reminder ${inc.reminders + 1} to the last tier (unacknowledged)`),
    };
}

/** Wall-clock ms at which the incident next needs attention (a delivery retry or an escalation), if ever. */
export function nextDueMs(inc: Incident, settings: AlertSettings, tiers: number): number | undefined {
    let due: number | undefined;
    for (const n of inc.notifications)
        if (n.status === 'pending' && n.nextAttemptMs !== undefined) due = Math.min(due ?? Infinity, n.nextAttemptMs);
    const escalates =
        inc.status === 'open' &&
        atLeast(inc.severity, settings.escalateMinSeverity) &&
        atLeast(inc.severity, settings.minSeverity) &&
        (inc.tier + 1 < tiers || inc.reminders < settings.maxReminders);
    if (escalates) due = Math.min(due ?? Infinity, inc.tierSinceMs + settings.escalateAfterMs);
    return due;
}

/** Delivery backoff: 30 s, 1, 2, 4, 8 ... minutes, at most 30 minutes, or what the service asked for. */
export function retryDelayMs(attempts: number, retryAfterMs: number | undefined): number {
    const backoff = Math.min(30 * 60_000, 30_000 * 2 ** Math.max(0, attempts - 1));
    return Math.max(backoff, retryAfterMs ?? 0);
}

/** Applies the outcome of one delivery attempt. */
export function recordDelivery(
    inc: Incident,
    id: string,
    outcome:
        | { readonly ok: true }
        | { readonly ok: false; readonly error: string; readonly retryAfterMs?: number; readonly transient: boolean },
    nowMs: number,
    maxAttempts: number,
): { incident: Incident; exhausted: NotificationRecord | undefined } {
    let exhausted: NotificationRecord | undefined;
    const notifications = inc.notifications.map((n) => {
        if (n.id !== id || n.status !== 'pending') return n;
        const attempts = n.attempts + 1;
        if (outcome.ok) {
            const { nextAttemptMs: _n, lastError: _e, ...rest } = n;
            return { ...rest, status: 'sent' as const, attempts, sentAt: new Date(nowMs).toISOString() };
        }
        if (!outcome.transient || attempts >= maxAttempts) {
            const { nextAttemptMs: _n, ...rest } = n;
            exhausted = { ...rest, status: 'failed', attempts, lastError: boundedText(outcome.error, 512) };
            return exhausted;
        }
        return {
            ...n,
            attempts,
            lastError: boundedText(outcome.error, 512),
            nextAttemptMs: nowMs + retryDelayMs(attempts, outcome.retryAfterMs),
        };
    });
    return { incident: { ...inc, notifications }, exhausted };
}
