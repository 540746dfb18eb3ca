import { randomUUID } from 'node:crypto';
import {
    acknowledge,
    applyFinding,
    boundedLines,
    manualLines,
    escalationDue,
    type Incident,
    incidentKeyOf,
    markUndone,
    nextDueMs,
    withActions,
    withOutcomeNotice,
    type NotificationRecord,
    type PersonAction,
    markReenabled,
    recordDelivery,
    reenableTarget,
    stillOpenFor,
    undoableAction,
    undoScopeOf,
    type UpdateContext,
    withNotices,
} from '../core/alerts/incident';
import { buildMime } from '../core/alerts/mime';
import { eachBounded } from '../core/bounded';
import {
    type IncidentLinks,
    portalUrlOf,
    type RenderedEmail,
    renderEmail,
    renderSummaryCard,
    renderSummaryEmail,
    renderTeamsCard,
} from '../core/alerts/render';
import type { AlertSettings, Roster } from '../core/alerts/settings';
import {
    checkClaims,
    type LinkAction,
    type LinkClaims,
    parseToken,
    signingInputOf,
    tokenOf,
} from '../core/alerts/token';
import {
    type ChannelName,
    DeliveryError,
    type DeliveryChannel,
    type EmailMessage,
    type OutgoingNotification,
} from '../core/alerts/types';
import type { ActionDecision, Decision, FindingDecision } from '../core/decisions';
import { ResponderError } from '../core/errors';
import { hash64 } from '../core/hash';
import { parseScope, scopeVaultRef } from '../core/events/activity';
import type { VaultRef } from '../core/events/types';
import type { Clock, DecisionSink, KeyStateReader, Logger } from '../core/ports';
import { type StateKey, type StateStore, stateKey } from '../core/state/store';
import { LastWritten } from '../core/state/lastWritten';
import type { LinkSigner } from '../adapters/linkSigner';
import type { UndoRecord } from '../core/remediation/undo';
import { undoPreviewOf } from '../core/alerts/incidentPage';
import type { Undoer } from './undoer';

const INCIDENTS = '~incidents';
/**
 * The due index (incident id → when it next needs attention), split over {@link DUE_SHARDS} keys by a hash of the
 * incident id, so that instances updating different incidents do not all compare-and-set one entity (issue 13). The
 * single key of earlier versions ({@link LEGACY_DUE_KEY}) is still read by the timer and moved into the shards.
 */
const DUE_SHARDS = 16;
const DUE_KEYS: readonly StateKey[] = Array.from({ length: DUE_SHARDS }, (_, i) =>
    stateKey('~alerting', `due|${String(i).padStart(2, '0')}`),
);
const LEGACY_DUE_KEY = stateKey('~alerting', 'due');

function dueKeyOf(id: string): StateKey {
    return DUE_KEYS[parseInt(hash64(id).slice(0, 8), 16) % DUE_SHARDS] as StateKey;
}
const TOKENS = '~tokens';
const DAY_MS = 86_400_000;
const INCIDENT_TTL_MS = 90 * DAY_MS;
/** A notification being sent is claimed this long, so that a concurrent processor does not send it too. */
const CLAIM_MS = 2 * 60_000;
const CAS_ATTEMPTS = 10;
/** Incidents and due-index shards whose last written ETag an instance keeps (see `Alerting.written`). */
const MAX_WRITTEN = 1_000;
const MAX_DUE_ENTRIES = 5000;
/** The bound of one due shard (the whole index holds about {@link MAX_DUE_ENTRIES}). */
const MAX_DUE_PER_SHARD = Math.ceil(MAX_DUE_ENTRIES / DUE_SHARDS);

const VAULT_ID = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.keyvault\/vaults\/([^/]+)$/;

export function vaultRefOf(vaultId: string): VaultRef {
    const id = vaultId.toLowerCase();
    const m = VAULT_ID.exec(id);
    if (m === null) throw new ResponderError('INPUT.UNREADABLE', `not a vault resource id: ${vaultId}`);
    return { subscriptionId: m[1] as string, resourceGroup: m[2] as string, name: m[3] as string, resourceId: id };
}

/**
 * The vault an incident or finding names, for routing: a vault's own, or the stand-in of a scope above vaults (a role
 * assignment at a resource group, subscription or management group: `rg:<sub>:<group>` ..., see scopeVaultRef), which
 * routes by its subscription and resource group. Never throws.
 */
function routingRefOf(vaultId: string): VaultRef {
    const id = vaultId.toLowerCase();
    if (VAULT_ID.test(id)) return vaultRefOf(id);
    const parsed = parseScope(id);
    if (parsed !== undefined) return parsed.vault ?? scopeVaultRef(parsed.scope);
    return { subscriptionId: '', resourceGroup: '', name: id, resourceId: id };
}

const RA_SEGMENT = '/providers/microsoft.authorization/roleassignments/';

/**
 * Where the incident of the finding that asked for this action lives: the action's own vault, and for a role
 * assignment above vault scope the stand-in of that scope (its finding is filed there, the action on each vault the
 * scope covers).
 */
function incidentVaultsOf(a: ActionDecision): string[] {
    const out = [a.vault];
    const id = typeof a.detail.roleAssignmentId === 'string' ? a.detail.roleAssignmentId.toLowerCase() : '';
    const at = id.indexOf(RA_SEGMENT);
    if (at >= 0) {
        const parsed = parseScope(at === 0 ? '/' : id.slice(0, at));
        if (parsed !== undefined && parsed.vault === undefined) out.push(scopeVaultRef(parsed.scope).name);
    }
    return out;
}

/** Issues and checks link tokens (RS256 through a LinkSigner) and builds the link URLs. */
export class LinkTokens {
    constructor(
        private readonly signer: LinkSigner,
        /** Where the app's HTTP functions are reachable, e.g. `https://kvr-func.azurewebsites.net`. */
        private readonly publicUrl: string,
        private readonly ttlMs: number,
        private readonly clock: Clock,
    ) {}

    async issue(incidentId: string, act: LinkAction): Promise<string> {
        const now = this.clock.now();
        const claims: LinkClaims = {
            inc: incidentId,
            act,
            iat: Math.floor(now / 1000),
            exp: Math.floor((now + this.ttlMs) / 1000),
            jti: randomUUID(),
        };
        const input = signingInputOf(await this.signer.currentKid(), claims);
        const token = tokenOf(input, await this.signer.sign(Buffer.from(input, 'ascii')));
        return `${linkBase(this.publicUrl)}/incidents/${encodeURIComponent(incidentId)}/${act}?t=${token}`;
    }

    /** The verified claims, or why the token is refused (and the HTTP status to refuse it with). */
    async verify(
        token: string,
        incidentId: string,
        act: LinkAction,
    ): Promise<{ claims: LinkClaims } | { error: string; status: 400 | 403 | 410 }> {
        const parsed = parseToken(token);
        if ('error' in parsed) return { error: parsed.error, status: 400 };
        const ok = await this.signer.verify(Buffer.from(parsed.signingInput, 'ascii'), parsed.signature, parsed.kid);
        if (!ok) return { error: 'the link signature is not valid', status: 403 };
        const problem = checkClaims(parsed.claims, { incidentId, action: act }, this.clock.now());
        if (problem !== undefined)
            return { error: problem, status: problem.startsWith('the link expired') ? 410 : 403 };
        return { claims: parsed.claims };
    }
}

/** `<publicUrl>/api`: the Functions host serves HTTP functions under /api. */
export function linkBase(publicUrl: string): string {
    return `${publicUrl.replace(/\/+$/, '')}/api`;
}

export interface AlertingOptions {
    readonly store: StateStore;
    readonly settings: AlertSettings;
    readonly channels: { readonly teams?: DeliveryChannel; readonly email?: DeliveryChannel };
    /** The mailbox emails are sent from (required for the email channel). */
    readonly mailFrom?: string;
    readonly links: LinkTokens;
    readonly clock: Clock;
    readonly log: Logger;
    /** Undo needs ARM access and the vault lease. */
    readonly undoer?: Undoer;
    /** Vault tags for tag-matched routes, when known. */
    readonly tagsOf?: (vault: VaultRef) => Promise<Readonly<Record<string, string>> | undefined>;
    /** The Key Vault keys data plane, for "Re-enable key version" (only offered when `allowReenable`). */
    readonly keys?: KeyStateReader;
    /** Offer re-enabling a disabled CMK version from CMK alerts (needs Key Vault Crypto Officer; off by default). */
    readonly allowReenable?: boolean;
    /** Called after each delivery attempt (metrics). */
    readonly onDelivery?: (channel: ChannelName, outcome: 'sent' | 'retry' | 'failed') => void;
    /** The decision log: an undo is written there as an `undo` action with who did it. */
    readonly decisionLog?: DecisionSink;
}

/** The outcome of an acknowledge or undo request, for the page. */
export type LinkOutcome =
    | { readonly kind: 'done'; readonly incident: Incident; readonly message: string }
    | { readonly kind: 'already'; readonly incident: Incident; readonly message: string }
    | { readonly kind: 'refused'; readonly status: number; readonly message: string; readonly incident?: Incident };

/**
 * Incidents and their notifications. Findings open or update incidents in the state store; notices wait in each
 * incident's outbox until a channel accepted them (retried with backoff, reported on the other channel when one
 * keeps failing); escalation moves unacknowledged incidents up the roster. Every write is compare-and-set, and a
 * notice is claimed before it is sent, so redelivered batches and concurrent instances never notify twice.
 */
export class Alerting implements DecisionSink {
    /**
     * Incidents and due-index shards as this instance last wrote them, with their ETags (bounded): the next update
     * tries its compare-and-set on that, unread. A stale entry (another writer since) fails the compare-and-set, and
     * the update reads the entity then, as without it.
     */
    private readonly written = new LastWritten<{ readonly value: unknown; readonly etag: string }>(MAX_WRITTEN);

    constructor(private readonly o: AlertingOptions) {}

    private remember(key: StateKey, value: unknown, etag: string): void {
        this.written.set(key.id, { value, etag });
    }

    /** What {@link remember} kept of `key`, taken out (it is tried once). */
    private recalled(key: StateKey): { readonly value: unknown; readonly etag: string } | undefined {
        return this.written.take(key.id);
    }

    // -- incidents from findings ------------------------------------------------------------------------------

    async write(decisions: readonly Decision[]): Promise<void> {
        const actions = new Map<string, ActionDecision[]>();
        for (const d of decisions) {
            if (d.type !== 'action') continue;
            const k = `${d.vault}|${d.rule}`;
            actions.set(k, [...(actions.get(k) ?? []), d]);
        }
        // The findings of one incident pointer (vault, rule, principal) one after another, in order; those of different
        // pointers side by side (at most ALERTING_CONCURRENCY at once), so that a batch with many findings waits for
        // about as many round trips as one finding, not one finding's round trips per finding. Every write stays a
        // compare-and-set; the due shards that incidents share are written one call at a time by this instance.
        const byPointer = new Map<string, { f: FindingDecision; actions: readonly ActionDecision[] }[]>();
        for (const d of decisions) {
            if (d.type !== 'finding') continue;
            const k = `${d.vault}|${d.rule}`;
            const pointer = `${d.vault}\u0000${incidentKeyOf(d)}`;
            const list = byPointer.get(pointer) ?? [];
            list.push({ f: d, actions: actions.get(k) ?? [] });
            byPointer.set(pointer, list);
            actions.delete(k); // the actions of a vault and rule belong to its first finding of the batch
        }
        const opened = await eachBounded([...byPointer.values()], ALERTING_CONCURRENCY, async (list) => {
            const ids: string[] = [];
            for (const { f, actions: acts } of list) ids.push(await this.applyFinding(f, acts));
            return ids;
        });
        const touched = new Set<string>(opened.flat());
        // Actions without their finding in this write (the reconcile worker ran after the batch): onto the incidents
        // of the findings that asked for them (`incidentKeys`: rule|principal), with a follow-up notice when the
        // incident was notified before the outcome was known.
        for (const list of actions.values()) for (const id of await this.attachActions(list)) touched.add(id);
        await eachBounded([...touched], ALERTING_CONCURRENCY, (id) => this.deliver(id));
    }

    /** Adds a worker's outcome to its incidents; returns the incidents that got a follow-up notice to send. */
    private async attachActions(list: readonly ActionDecision[]): Promise<string[]> {
        const first = list[0];
        const notify: string[] = [];
        if (first === undefined) return notify;
        // `vault name|incident key` of each incident: the action's vault, or the scope its finding was filed under.
        const keys = new Set<string>();
        for (const a of list)
            for (const k of Array.isArray(a.incidentKeys) ? (a.incidentKeys as unknown[]) : [])
                if (typeof k === 'string' && k.startsWith(`${a.rule}|`))
                    for (const v of incidentVaultsOf(a)) keys.add(`${v}\u0000${k}`);
        const at = new Date(this.o.clock.now()).toISOString();
        const seen = new Set<string>();
        for (const vk of keys) {
            const [vaultName, key] = vk.split('\u0000') as [string, string];
            const [p] = await this.o.store.getMany([stateKey(vaultName, `incident|${key}`)]);
            const id = (p?.value as { id?: string } | null | undefined)?.id;
            if (id === undefined || seen.has(id)) continue;
            seen.add(id);
            let followUp = false;
            // Compare-and-set: of two processors handing over the same outcome, one sets the marker, the other
            // finds it set and adds nothing.
            await this.update(id, (inc) => {
                const next = withOutcomeNotice(withActions(inc, list, at), this.contextOf(this.rosterOf(inc)));
                followUp =
                    inc.outcomeNotified === undefined &&
                    next.notifications.some((n) => n.kind === 'remediation' && n.status === 'pending');
                return next === inc ? undefined : next;
            });
            if (followUp) {
                this.o.log.info('kvr.remediation-follow-up', { incident: id, vault: first.vault, rule: first.rule });
                notify.push(id);
            }
        }
        return notify;
    }

    /** The roster an incident was routed to when it opened. */
    private rosterOf(inc: Pick<Incident, 'roster' | 'vaultId' | 'severity'>): Roster {
        return (
            this.o.settings.rosterNamed(inc.roster) ??
            this.o.settings.rosterFor(routingRefOf(inc.vaultId), inc.severity)
        );
    }

    /** The roster a new incident of this finding goes to (vault tags are read only when a route needs them). */
    private async routeOf(f: FindingDecision): Promise<Roster> {
        const vault = routingRefOf(f.vaultId);
        // A scope above vaults has no vault tags to route by.
        const tags =
            this.o.settings.routesUseTags && !vault.name.includes(':') ? await this.o.tagsOf?.(vault) : undefined;
        return this.o.settings.rosterFor(vault, f.severity, tags);
    }

    private contextOf(roster: Roster): UpdateContext {
        const emailOn = this.o.channels.email !== undefined && this.o.mailFrom !== undefined;
        const teamsOn = this.o.channels.teams !== undefined;
        return {
            nowMs: this.o.clock.now(),
            settings: this.o.settings,
            rosterName: roster.name,
            tiers: roster.tiers.length,
            teamsTiers: roster.tiers.map((t) => teamsOn && t.teams),
            emailTiers: roster.tiers.map((t) => emailOn && t.email.length > 0),
        };
    }

    private async applyFinding(f: FindingDecision, actions: readonly ActionDecision[]): Promise<string> {
        const pointer = stateKey(f.vault, `incident|${incidentKeyOf(f)}`);
        let route: Roster | undefined;
        for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
            const [p] = await this.o.store.getMany([pointer]);
            const currentId = (p?.value as { id?: string } | null | undefined)?.id;
            const [s] = currentId === undefined ? [undefined] : await this.o.store.getMany([incidentKey(currentId)]);
            const current = s?.value as Incident | undefined;
            const open = current !== undefined && stillOpenFor(current, Date.parse(f.time), this.o.settings);
            if (!open) route ??= await this.routeOf(f);
            const ctx = this.contextOf(open ? this.rosterOf(current) : (route as Roster));
            // With the outcome on it (the worker ran first, in process): its first notice carries the outcome; an
            // incident notified before gets the one follow-up.
            const next = withOutcomeNotice(applyFinding(current, f, actions, ctx), ctx);
            if (next === current) return next.id; // a finding emitted again after a failed batch: already counted
            const expires = next.lastSeenMs + INCIDENT_TTL_MS;
            if (next.id !== current?.id) {
                // A new incident: move the pointer first, then create the incident (create-only: a redelivered
                // first finding computes the same id and finds it there).
                const moved = await this.o.store.put(
                    pointer,
                    { id: next.id },
                    p?.etag,
                    next.lastSeenMs + this.o.settings.incidentWindowMs + DAY_MS,
                );
                if (!moved.ok) continue;
                const created = await this.o.store.put(incidentKey(next.id), next, undefined, expires);
                if (created.ok) this.remember(incidentKey(next.id), next, created.etag);
                if (current !== undefined) await this.setDue(current.id, undefined);
                this.o.log.warn('kvr.incident', {
                    incident: next.id,
                    vault: next.vault,
                    rule: next.rule,
                    severity: next.severity,
                    notices: next.notifications.length,
                });
                return next.id;
            }
            const r = await this.o.store.put(incidentKey(next.id), next, s?.etag, expires);
            if (r.ok) {
                this.remember(incidentKey(next.id), next, r.etag);
                if (next.lastSeenMs > (current?.lastSeenMs ?? 0))
                    await this.o.store.put(
                        pointer,
                        { id: next.id },
                        p?.etag,
                        next.lastSeenMs + this.o.settings.incidentWindowMs + DAY_MS,
                    );
                return next.id;
            }
        }
        throw new ResponderError('STATE.CONFLICT', `gave up updating the incident of ${f.vault}/${f.rule}`, true);
    }

    // -- state helpers ------------------------------------------------------------------------------------------

    async get(id: string): Promise<Incident | undefined> {
        if (!/^[0-9a-z-]{1,64}$/.test(id)) return undefined;
        const [s] = await this.o.store.getMany([incidentKey(id)]);
        return (s?.value ?? undefined) as Incident | undefined;
    }

    /**
     * The saved undo records of an incident's applied remediations (`undo|<id>` of its vault), oldest first, for the
     * incident page: what changed and what an undo would restore, read from the store, never from ARM.
     */
    async undoRecordsOf(inc: Incident): Promise<{ readonly undoId: string; readonly record: UndoRecord }[]> {
        // Each saved under the vault its remediation ran on (the incident's own, or one its scope covers).
        const where = new Map<string, string>();
        for (const a of inc.actions) if (a.undoId !== undefined) where.set(a.undoId, a.vaultId ?? inc.vaultId);
        const ids: { undoId: string; vault: string }[] = [];
        for (const [undoId, vaultId] of where) {
            try {
                ids.push({ undoId, vault: vaultRefOf(vaultId).name });
            } catch {
                // not a vault: nothing saved
            }
        }
        if (ids.length === 0) return [];
        const found = await this.o.store.getMany(ids.map((x) => stateKey(x.vault, `undo|${x.undoId}`)));
        return ids.flatMap(({ undoId }, i) => {
            const record = found[i]?.value as UndoRecord | undefined | null;
            return record === undefined || record === null ? [] : [{ undoId, record }];
        });
    }

    /** Read-modify-write with compare-and-set; `fn` returns undefined to leave the incident as it is. */
    private async update(id: string, fn: (inc: Incident) => Incident | undefined): Promise<Incident | undefined> {
        const key = incidentKey(id);
        let known = this.recalled(key);
        for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
            // What this instance last wrote decides only a write (a compare-and-set); "nothing to change" is decided
            // on what the store holds now.
            const unread = known !== undefined;
            const [s] = known === undefined ? await this.o.store.getMany([key]) : [known];
            known = undefined;
            const inc = s?.value as Incident | undefined;
            if (s === undefined || inc === undefined || inc === null) return undefined;
            const next = fn(inc);
            if (next === undefined) {
                if (unread) continue;
                return inc;
            }
            const r = await this.o.store.put(key, next, s.etag, next.lastSeenMs + INCIDENT_TTL_MS);
            if (r.ok) {
                this.remember(key, next, r.etag);
                return next;
            }
        }
        throw new ResponderError('STATE.CONFLICT', `gave up updating incident ${id}`, true);
    }

    /** The call on each due shard in progress: this instance changes a shard one call at a time (see {@link setDue}). */
    private readonly dueBusy = new Map<string, Promise<void>>();

    /**
     * The due index: incident id → wall-clock ms it next needs attention (delivery retry or escalation). Calls of this
     * instance on one shard wait for one another (incidents handled side by side share the 16 shards): each then
     * writes on the ETag of the one before, instead of meeting it as a conflict.
     */
    private async setDue(id: string, due: number | undefined): Promise<void> {
        const key = dueKeyOf(id);
        const before = this.dueBusy.get(key.id);
        const mine = (async () => {
            if (before !== undefined) await before.catch(() => undefined);
            await this.setDueNow(key, id, due);
        })();
        const settled = mine.catch(() => undefined);
        this.dueBusy.set(key.id, settled);
        try {
            await mine;
        } finally {
            if (this.dueBusy.get(key.id) === settled) this.dueBusy.delete(key.id);
        }
    }

    private async setDueNow(key: StateKey, id: string, due: number | undefined): Promise<void> {
        let known = this.recalled(key);
        for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
            // As in update(): a write may be tried on what this instance last wrote, "nothing to do" is read.
            const unread = known !== undefined;
            const [s] = known === undefined ? await this.o.store.getMany([key]) : [known];
            known = undefined;
            const index = { ...((s?.value ?? {}) as Record<string, number>) };
            if (due === undefined) {
                if (!(id in index)) {
                    if (unread) continue;
                    return;
                }
                delete index[id];
            } else {
                if (index[id] === due) {
                    if (unread) continue;
                    return;
                }
                index[id] = due;
            }
            const size = Object.keys(index).length;
            if (size > MAX_DUE_PER_SHARD && unread) continue;
            if (size > MAX_DUE_PER_SHARD) {
                throw new ResponderError(
                    'STATE.UNAVAILABLE',
                    `about ${size * DUE_SHARDS} incidents wait for delivery or escalation: the channels are down or misconfigured`,
                    true,
                );
            }
            const r = await this.o.store.put(key, index, s?.etag, Number.MAX_SAFE_INTEGER);
            if (r.ok) {
                this.remember(key, index, r.etag);
                return;
            }
        }
        throw new ResponderError('STATE.CONFLICT', 'gave up updating the alerting due index', true);
    }

    private async refreshDue(inc: Incident): Promise<void> {
        const tiers = this.rosterOf(inc).tiers.length;
        await this.setDue(inc.id, nextDueMs(inc, this.o.settings, tiers));
    }

    // -- delivery -----------------------------------------------------------------------------------------------

    /** Sends the incident's due notices: claim, send, record (retry later or report the channel failing). */
    async deliver(id: string): Promise<Incident | undefined> {
        let inc: Incident | undefined;
        for (let round = 0; round < 3; round++) {
            const now = this.o.clock.now();
            const due: NotificationRecord[] = [];
            inc = await this.update(id, (i) => {
                due.length = 0;
                for (const n of i.notifications)
                    if (n.status === 'pending' && (n.nextAttemptMs ?? 0) <= now) due.push(n);
                if (due.length === 0) return undefined;
                const claimed = new Set(due.map((n) => n.id));
                return {
                    ...i,
                    notifications: i.notifications.map((n) =>
                        claimed.has(n.id) ? { ...n, nextAttemptMs: now + CLAIM_MS } : n,
                    ),
                };
            });
            if (inc === undefined || due.length === 0) break;
            // Due again when the claim lapses: if this instance stops mid-send, the timer of another one retries.
            await this.setDue(id, now + CLAIM_MS);
            const outcomes: [NotificationRecord, Parameters<typeof recordDelivery>[2]][] = [];
            for (const n of due) outcomes.push([n, await this.sendOne(inc, n)]);
            inc = await this.update(id, (i) => {
                let next = i;
                for (const [n, outcome] of outcomes) {
                    const r = recordDelivery(
                        next,
                        n.id,
                        outcome,
                        this.o.clock.now(),
                        this.o.settings.maxDeliveryAttempts,
                    );
                    next = r.incident;
                    if (r.exhausted !== undefined) next = this.reportFailing(next, r.exhausted);
                }
                return next;
            });
        }
        if (inc !== undefined) await this.refreshDue(inc);
        return inc;
    }

    /** A notice that will not be delivered: logged as an error and announced on the other channel. */
    private reportFailing(inc: Incident, failed: NotificationRecord): Incident {
        this.o.log.error('kvr.notification-failed', {
            incident: inc.id,
            vault: inc.vault,
            channel: failed.channel,
            kind: failed.kind,
            attempts: failed.attempts,
            error: failed.lastError,
        });
        if (failed.kind === 'channel-failing') return inc;
        const other: ChannelName = failed.channel === 'teams' ? 'email' : 'teams';
        const roster = this.rosterOf(inc);
        // The other channel, whether or not the current tier normally uses it; email goes to every tier notified so
        // far (see sendOne), so it needs an address in any of them.
        const teamsOn = other === 'teams' && this.o.channels.teams !== undefined;
        const emailOn =
            other === 'email' &&
            this.o.channels.email !== undefined &&
            this.o.mailFrom !== undefined &&
            roster.tiers.slice(0, inc.tier + 1).some((t) => t.email.length > 0);
        const alt: UpdateContext = {
            ...this.contextOf(roster),
            teamsTiers: roster.tiers.map(() => teamsOn),
            emailTiers: roster.tiers.map(() => emailOn),
        };
        if (inc.notifications.some((n) => n.kind === 'channel-failing' && n.channel === other)) return inc;
        const next = withNotices(inc, 'channel-failing', inc.tier, alt);
        if (next === inc)
            this.o.log.error('kvr.no-channel-left', { incident: inc.id, vault: inc.vault, failing: failed.channel });
        return next;
    }

    private canReenable(inc: Incident): boolean {
        return this.o.allowReenable === true && this.o.keys !== undefined && reenableTarget(inc) !== undefined;
    }

    private async linksOf(inc: Incident): Promise<IncidentLinks> {
        return {
            ...(inc.acknowledged === undefined ? { ack: await this.o.links.issue(inc.id, 'ack') } : {}),
            ...(undoableAction(inc) === undefined ? {} : { undo: await this.o.links.issue(inc.id, 'undo') }),
            ...(this.canReenable(inc) ? { reenable: await this.o.links.issue(inc.id, 'reenable') } : {}),
            portal: portalUrlOf(inc.vaultId),
        };
    }

    /**
     * What the incident's undoable remediation changed, before and after, from its saved undo record (the incident's
     * own parts). Empty when the record is gone; a follow-up then lists the action summaries instead.
     */
    private async changesOf(inc: Incident): Promise<{ what: string; before: string; after: string }[]> {
        const undoId = undoableAction(inc)?.undoId;
        if (undoId === undefined) return [];
        const record = (await this.undoRecordsOf(inc)).find((r) => r.undoId === undoId);
        if (record === undefined) return [];
        return undoPreviewOf(inc, undoId, record.record)
            .changes.filter((c) => c.undo.restores)
            .map(({ what, before, after }) => ({ what, before, after }));
    }

    /** Renders and sends one notice; never throws (the outcome is recorded). */
    private async sendOne(inc: Incident, n: NotificationRecord): Promise<Parameters<typeof recordDelivery>[2]> {
        try {
            const roster = this.rosterOf(inc);
            const failedOther = inc.notifications.filter((x) => x.channel !== n.channel && x.status === 'failed').pop();
            const view = {
                incident: inc,
                kind: n.kind,
                tier: n.tier,
                tierName: roster.tiers[n.tier]?.name ?? `tier ${n.tier + 1}`,
                links: await this.linksOf(inc),
                ...(n.kind === 'channel-failing' && failedOther !== undefined
                    ? { failing: { channel: failedOther.channel, error: failedOther.lastError ?? 'unknown error' } }
                    : {}),
                ...(n.kind === 'remediation' ? { changes: await this.changesOf(inc) } : {}),
            };
            const base = { id: `${inc.id}.${n.id}`, incidentId: inc.id, kind: n.kind };
            let out: OutgoingNotification;
            let channel: DeliveryChannel | undefined;
            if (n.channel === 'teams') {
                channel = this.o.channels.teams;
                out = { ...base, channel: 'teams', teams: renderTeamsCard(view) };
            } else {
                channel = this.o.channels.email;
                const from = this.o.mailFrom;
                const to = [
                    ...new Set(
                        roster.tiers
                            .filter((_, i) =>
                                n.kind === 'opened' || n.kind === 'escalated' || n.kind === 'remediation'
                                    ? i === n.tier
                                    : i <= n.tier,
                            )
                            .flatMap((t) => t.email),
                    ),
                ];
                if (from === undefined || to.length === 0)
                    return { ok: false, transient: false, error: 'no mailbox or no recipients configured' };
                out = { ...base, channel: 'email', email: emailOf(from, to, renderEmail(view), base.id) };
            }
            if (channel === undefined)
                return { ok: false, transient: false, error: `channel ${n.channel} is not configured` };
            await channel.send(out);
            this.o.onDelivery?.(n.channel, 'sent');
            this.o.log.info('kvr.notification', {
                incident: inc.id,
                vault: inc.vault,
                channel: n.channel,
                kind: n.kind,
            });
            return { ok: true };
        } catch (err) {
            const e = err instanceof DeliveryError ? err : undefined;
            const message = err instanceof Error ? err.message : String(err);
            this.o.onDelivery?.(n.channel, e?.transient === false ? 'failed' : 'retry');
            this.o.log.warn('kvr.notification-attempt-failed', {
                incident: inc.id,
                vault: inc.vault,
                channel: n.channel,
                attempt: n.attempts + 1,
                error: message.slice(0, 300),
            });
            return {
                ok: false,
                // Unknown errors (not a DeliveryError) are retried too: a bug must not silently drop a notice.
                transient: e?.transient ?? true,
                error: message.slice(0, 300),
                ...(e?.retryAfterMs === undefined ? {} : { retryAfterMs: e.retryAfterMs }),
            };
        }
    }

    // -- summaries ----------------------------------------------------------------------------------------------

    /**
     * A one-off summary (the weekly CMK report) to Teams and to the first tier of the default roster by email. Not an
     * incident: a failed channel is logged as an error, and the next summary supersedes it. Returns the channels that
     * accepted it.
     */
    async sendSummary(title: string, table: string): Promise<ChannelName[]> {
        const id = `summary-${this.o.clock.now().toString(36)}`;
        const sent: ChannelName[] = [];
        const attempts: [DeliveryChannel, OutgoingNotification][] = [];
        const base = { id, incidentId: id, kind: 'opened' as const };
        if (this.o.channels.teams !== undefined)
            attempts.push([
                this.o.channels.teams,
                { ...base, channel: 'teams', teams: renderSummaryCard(title, table) },
            ]);
        const to = this.o.settings.rosterNamed('default')?.tiers[0]?.email ?? [];
        const from = this.o.mailFrom;
        if (this.o.channels.email !== undefined && from !== undefined && to.length > 0) {
            attempts.push([
                this.o.channels.email,
                { ...base, channel: 'email', email: emailOf(from, to, renderSummaryEmail(title, table), id) },
            ]);
        }
        for (const [channel, n] of attempts) {
            try {
                await channel.send(n);
                sent.push(channel.name);
            } catch (err) {
                this.o.log.error('kvr.summary-failed', {
                    channel: channel.name,
                    title,
                    error: (err instanceof Error ? err.message : String(err)).slice(0, 300),
                });
            }
        }
        return sent;
    }

    // -- timer: retries and escalation -------------------------------------------------------------------------

    /** Delivers due retries and escalates unacknowledged incidents; returns how many incidents it handled. */
    async tick(): Promise<{ handled: number; escalated: number }> {
        const now = this.o.clock.now();
        const shards = await this.o.store.getMany([...DUE_KEYS, LEGACY_DUE_KEY]);
        const index: Record<string, number> = {};
        for (const s of shards) Object.assign(index, (s?.value ?? {}) as Record<string, number>);
        const legacy = shards[DUE_SHARDS];
        if (legacy !== undefined && legacy.value !== null && Object.keys(legacy.value as object).length > 0) {
            // Written by an earlier version: move its entries into the shards, then empty it (compare-and-set: an
            // entry an old instance adds meanwhile stays for the next tick).
            for (const [id, due] of Object.entries(legacy.value as Record<string, number>)) await this.setDue(id, due);
            await this.o.store.put(LEGACY_DUE_KEY, {}, legacy.etag, Number.MAX_SAFE_INTEGER);
        }
        let handled = 0;
        let escalated = 0;
        for (const [id, due] of Object.entries(index)) {
            if (due > now) continue;
            handled++;
            let stepped = false;
            const updated = await this.update(id, (inc) => {
                const roster = this.rosterOf(inc);
                const up = escalationDue(inc, now, this.o.settings, roster.tiers.length);
                stepped = up !== undefined;
                return up === undefined ? undefined : withNotices(up, 'escalated', up.tier, this.contextOf(roster));
            });
            if (updated === undefined) {
                await this.setDue(id, undefined);
                continue;
            }
            if (stepped) {
                escalated++;
                this.o.log.warn('kvr.escalated', { incident: id, vault: updated.vault, tier: updated.tier });
            }
            await this.deliver(id);
        }
        return { handled, escalated };
    }

    // -- links: acknowledge and undo ------------------------------------------------------------------------------

    /** Verifies a link for a GET: the incident to show, or why the link is refused. Changes nothing. */
    async view(id: string, act: LinkAction, token: string): Promise<LinkOutcome> {
        const v = await this.o.links.verify(token, id, act);
        if ('error' in v) return { kind: 'refused', status: v.status, message: v.error };
        const inc = await this.get(id);
        if (inc === undefined) return { kind: 'refused', status: 404, message: 'no such incident (expired?)' };
        const blocked = blockedReason(inc, act);
        return blocked === undefined
            ? { kind: 'done', incident: inc, message: '' }
            : { kind: 'already', incident: inc, message: blocked };
    }

    /** Carries out a link's action (POST): once per token, once per incident. */
    async act(id: string, act: LinkAction, token: string, who: Omit<PersonAction, 'at'>): Promise<LinkOutcome> {
        const v = await this.o.links.verify(token, id, act);
        if ('error' in v) return { kind: 'refused', status: v.status, message: v.error };
        const inc = await this.get(id);
        if (inc === undefined) return { kind: 'refused', status: 404, message: 'no such incident (expired?)' };
        const tokenKey = stateKey(TOKENS, v.claims.jti);
        const [used] = await this.o.store.getMany([tokenKey]);
        if (used !== undefined)
            return { kind: 'already', incident: inc, message: blockedReason(inc, act) ?? 'this link was already used' };
        const at = { ...who, at: new Date(this.o.clock.now()).toISOString() };
        let outcome: LinkOutcome;
        if (act === 'ack') outcome = await this.acknowledge(id, at);
        else if (act === 'undo') outcome = await this.undo(inc, at);
        else outcome = await this.reenable(inc, at);
        if (outcome.kind === 'done') {
            // One use per token: a replayed POST finds it (and the incident says what happened).
            await this.o.store.put(tokenKey, { inc: id, act, at: at.at }, undefined, v.claims.exp * 1000 + DAY_MS);
        }
        return outcome;
    }

    private async acknowledge(id: string, who: PersonAction): Promise<LinkOutcome> {
        let already: PersonAction | undefined;
        const inc = await this.update(id, (i) => {
            const r = acknowledge(i, who);
            if ('already' in r) {
                already = r.already;
                return undefined;
            }
            return r;
        });
        if (inc === undefined) return { kind: 'refused', status: 404, message: 'no such incident (expired?)' };
        if (already !== undefined) return { kind: 'already', incident: inc, message: alreadyAcked(already) };
        await this.refreshDue(inc);
        this.o.log.info('kvr.acknowledged', { incident: id, vault: inc.vault, ...actorFields(who) });
        return {
            kind: 'done',
            incident: inc,
            message: `Acknowledged at ${who.at}${who.by === undefined ? '' : ` by ${who.by}`}`,
        };
    }

    private async reenable(inc: Incident, who: PersonAction): Promise<LinkOutcome> {
        const blocked = blockedReason(inc, 'reenable');
        if (blocked !== undefined) return { kind: 'already', incident: inc, message: blocked };
        const keyId = reenableTarget(inc);
        if (!this.canReenable(inc) || keyId === undefined || this.o.keys === undefined)
            return {
                kind: 'refused',
                status: 409,
                incident: inc,
                message: 'Re-enabling keys is off for this deployment (cmk.allowReenable).',
            };
        try {
            const state = await this.o.keys.enable(keyId);
            if (!state.enabled) throw new Error('Key Vault still reports the key version disabled');
        } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            this.o.log.error('kvr.reenable-failed', { incident: inc.id, vault: inc.vault, keyId, error: message });
            return { kind: 'refused', status: 409, incident: inc, message: `re-enable failed: ${message}` };
        }
        const updated = (await this.update(inc.id, (i) => markReenabled(i, who))) ?? inc;
        this.o.log.warn('kvr.key-reenabled', { incident: inc.id, vault: inc.vault, keyId, ...actorFields(who) });
        return { kind: 'done', incident: updated, message: `Key version re-enabled: ${keyId}` };
    }

    private async undo(inc: Incident, who: PersonAction): Promise<LinkOutcome> {
        const blocked = blockedReason(inc, 'undo');
        if (blocked !== undefined) return { kind: 'already', incident: inc, message: blocked };
        const action = undoableAction(inc);
        const undoer = this.o.undoer;
        if (action?.undoId === undefined || undoer === undefined)
            return { kind: 'refused', status: 409, incident: inc, message: 'this incident has no remediation to undo' };
        const undoId = action.undoId;
        let result: Awaited<ReturnType<Undoer['undo']>>;
        try {
            // Scoped: only what this incident's own rule (and grantees) changed, never a sibling incident's part.
            // The vault the remediation ran on (for a role assignment above vault scope, a vault the scope covers).
            result = await undoer.undo(vaultRefOf(action.vaultId ?? inc.vaultId), undoId, undoScopeOf(inc));
        } catch (err) {
            if (err instanceof ResponderError && err.code === 'UNDO.ALREADY_DONE') {
                // A remediation recorded before undo was scoped: it was undone whole through another incident.
                const at = err.message;
                const updated = await this.update(inc.id, (i) =>
                    i.undone !== undefined
                        ? undefined
                        : {
                              ...i,
                              undone: { at, undoId, restored: ['undone through another incident of this remediation'] },
                          },
                );
                return { kind: 'already', incident: updated ?? inc, message: `Remediation already undone at ${at}` };
            }
            const message = err instanceof Error ? err.message : String(err);
            this.o.log.error('kvr.undo-failed', {
                incident: inc.id,
                vault: inc.vault,
                undoId,
                error: message,
                ...actorFields(who),
            });
            return { kind: 'refused', status: 409, incident: inc, message: `undo failed: ${message}` };
        }
        const roster = this.rosterOf(inc);
        const updated = await this.update(inc.id, (i) =>
            markUndone(i, who, { undoId, ...result }, this.contextOf(roster)),
        );
        const restored = boundedLines(result.restored, 50);
        const approved = boundedLines(result.approved, 50);
        const manual = boundedLines(manualLines(result.manual), 50);
        this.o.log.warn('kvr.undone', {
            incident: inc.id,
            vault: inc.vault,
            rule: inc.rule,
            undoId,
            restored,
            approved,
            approvedUntil: result.approvedUntil,
            ...(manual.length === 0 ? {} : { manual }),
            ...actorFields(who),
        });
        await this.o.decisionLog?.write([
            {
                type: 'action',
                action: 'undo',
                vault: inc.vault,
                vaultId: inc.vaultId,
                rule: inc.rule,
                status: 'applied',
                time: who.at,
                detail: {
                    incident: inc.id,
                    undoId,
                    restored,
                    approved,
                    approvedUntil: result.approvedUntil,
                    ...(manual.length === 0 ? {} : { manual }),
                    ...actorFields(who),
                },
            },
        ]);
        const after = (updated !== undefined ? await this.deliver(inc.id) : undefined) ?? updated ?? inc;
        return {
            kind: 'done',
            incident: after,
            message:
                `Remediation undone: ${result.restored.length === 0 ? 'nothing restored by the responder' : boundedLines(result.restored).join('; ')}` +
                (manual.length === 0
                    ? ''
                    : `. Left to you, with your own rights (the responder holds no right to re-grant access or delete a diagnostic setting): ${manual.join('; ')}`),
        };
    }
}

/** Who acted, for log lines and the decision log. */
function actorFields(who: PersonAction): Record<string, string> {
    return {
        ...(who.by === undefined ? {} : { by: who.by }),
        ...(who.byId === undefined ? {} : { byId: who.byId }),
        ...(who.from === undefined ? {} : { from: who.from }),
    };
}

/** The email as Graph receives it: the rendered parts and their MIME message, with a Message-ID from `id`. */
function emailOf(from: string, to: readonly string[], e: RenderedEmail, id: string): EmailMessage {
    return { from, to, ...e, mimeBase64: buildMime({ from, to, ...e, messageId: `<${id}@kv-responder.invalid>` }) };
}

function incidentKey(id: string): StateKey {
    return stateKey(INCIDENTS, id);
}

function alreadyAcked(a: PersonAction): string {
    return `Already acknowledged at ${a.at}${a.by === undefined ? '' : ` by ${a.by}`}`;
}

/** Why the link's action cannot be taken on the incident any more, if so. */
function blockedReason(inc: Incident, act: LinkAction): string | undefined {
    if (act === 'ack') return inc.acknowledged === undefined ? undefined : alreadyAcked(inc.acknowledged);
    if (act === 'reenable')
        return inc.reenabled === undefined
            ? undefined
            : `Key version already re-enabled at ${inc.reenabled.at}${inc.reenabled.by === undefined ? '' : ` by ${inc.reenabled.by}`}`;
    if (inc.undone !== undefined)
        return `Remediation already undone at ${inc.undone.at}${inc.undone.by === undefined ? '' : ` by ${inc.undone.by}`}`;
    return undoableAction(inc) === undefined ? 'This incident has no applied remediation to undo.' : undefined;
}

/** Findings and incidents handled at once by one {@link Alerting.write}. */
const ALERTING_CONCURRENCY = 8;
