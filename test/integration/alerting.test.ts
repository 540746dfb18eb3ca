// The Alerting service as production drives it: audit bodies through createResponder's pipeline (real rules), incidents
// and their outbox in a shared state store, recording fake channels, a controllable clock, RS256 links signed by a
// local key, and the acknowledge link handler.
import { HttpRequest, type HttpResponseInit } from '@azure/functions';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { type Alerting, type AlertingOptions, LinkTokens } from '../../shared/app/alerting';
import { createResponder, type Responder } from '../../shared/app/createPipeline';
import { handleIncidentLink } from '../../shared/app/handlers/handleIncidentLink';
import { parseResponderConfig, type ResponderConfig } from '../../shared/config/responderConfig';
import type { Incident } from '../../shared/core/alerts/incident';
import type { FindingDecision } from '../../shared/core/decisions';
import { DeliveryError, type OutgoingNotification } from '../../shared/core/alerts/types';
import type { Logger } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import {
    type PutResult,
    type StateKey,
    type StateStore,
    type StoredState,
    stateKey,
} from '../../shared/core/state/store';
import { validateTeamsWebhookMessage } from '../support/adaptiveCard';
import { makeContext } from '../support/context';
import { fixtureBody, fixtureRecord } from '../support/fixtures';
import { RecordingChannel, TestClock, yieldTurns } from '../support/alertingDoubles';

const MIN = 60_000;
const HOUR = 60 * MIN;
const PUBLIC_URL = 'https://kvr.example.net/';
const MAIL_FROM = 'kvr@contoso.example';
/** The firewall fixture's record time (09:05) and the wall clock a minute later. */
const RECORD_T0 = Date.parse('2026-10-05T09:05:00.000Z');
const START = RECORD_T0 + MIN;

const CONFIG_INPUT = {
    // Every record its own finding: the incident, not the engine's grouping, must keep notices to one.
    grouping: { windowMinutes: 1 },
    alerting: {
        incidentWindowMinutes: 60,
        escalation: { afterMinutes: 15, minSeverity: 'high', maxReminders: 1 },
        linkTtlHours: 24,
        maxDeliveryAttempts: 3,
        rosters: {
            default: {
                tiers: [
                    { name: 'primary', email: ['oncall@contoso.example'] },
                    { name: 'secondary', email: ['lead@contoso.example'], teams: false },
                    { name: 'management', email: ['ciso@contoso.example', 'oncall@contoso.example'] },
                ],
            },
        },
    },
};
const CONFIG = parseResponderConfig(CONFIG_INPUT, ruleIds, 'alerting.test');

/** The test config with some top-level sections replaced (alerting merged). */
function configWith(over: { rules?: unknown; alerting?: Record<string, unknown> }): ResponderConfig {
    return parseResponderConfig(
        {
            ...CONFIG_INPUT,
            ...(over.rules === undefined ? {} : { rules: over.rules }),
            alerting: { ...CONFIG_INPUT.alerting, ...over.alerting },
        },
        ruleIds,
        'alerting.test',
    );
}

// One RSA key per file: generating one takes a while.
const SIGNER = LocalLinkSigner.generate();

/** Lets other pending work run: a send that takes "a while" without any real time passing. */
class RecordingLogger implements Logger {
    readonly entries: { level: string; message: string; fields: Readonly<Record<string, unknown>> }[] = [];
    info(message: string, fields: Readonly<Record<string, unknown>> = {}): void {
        this.entries.push({ level: 'info', message, fields });
    }
    warn(message: string, fields: Readonly<Record<string, unknown>> = {}): void {
        this.entries.push({ level: 'warn', message, fields });
    }
    error(message: string, fields: Readonly<Record<string, unknown>> = {}): void {
        this.entries.push({ level: 'error', message, fields });
    }
    of(message: string) {
        return this.entries.filter((e) => e.message === message);
    }
}

/** A state store that records its writes (to prove a GET changes nothing) and can fail chosen writes. */
class RecordingStore implements StateStore {
    readonly puts: StateKey[] = [];
    failPut: (key: StateKey) => boolean = () => false;
    constructor(readonly inner = new MemoryStateStore()) {}
    scan(rowPrefix: string, limit: number) {
        return this.inner.scan(rowPrefix, limit);
    }
    /** Every key read, in order. */
    readonly reads: StateKey[] = [];
    getMany(keys: readonly StateKey[]): Promise<readonly (StoredState | undefined)[]> {
        this.reads.push(...keys);
        return this.inner.getMany(keys);
    }
    put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number): Promise<PutResult> {
        if (this.failPut(key)) return Promise.reject(new Error('state store unavailable'));
        this.puts.push(key);
        return this.inner.put(key, value, etag, expiresMs);
    }
}

interface Setup {
    readonly responder: Responder;
    readonly alerting: Alerting;
    readonly store: RecordingStore;
    readonly clock: TestClock;
    readonly teams: RecordingChannel;
    readonly email: RecordingChannel;
    readonly log: RecordingLogger;
    readonly decisions: MemoryDecisionSink;
    process(...bodies: unknown[]): Promise<void>;
}

function setup(
    shared: {
        store?: RecordingStore;
        clock?: TestClock;
        signer?: LocalLinkSigner;
        config?: ResponderConfig;
        tagsOf?: AlertingOptions['tagsOf'];
    } = {},
): Setup {
    const config = shared.config ?? CONFIG;
    const store = shared.store ?? new RecordingStore();
    const clock = shared.clock ?? new TestClock(START);
    const teams = new RecordingChannel('teams');
    const email = new RecordingChannel('email');
    const log = new RecordingLogger();
    const decisions = new MemoryDecisionSink();
    const responder = createResponder(
        config,
        { decisions, quarantine: new MemoryQuarantineSink() },
        {
            acceptBareRecords: true,
            store,
            clock,
            alerting: {
                channels: { teams, email },
                mailFrom: MAIL_FROM,
                links: new LinkTokens(shared.signer ?? SIGNER, PUBLIC_URL, config.alerting.linkTtlMs, clock),
                log,
                ...(shared.tagsOf === undefined ? {} : { tagsOf: shared.tagsOf }),
            },
        },
    );
    const alerting = responder.alerting;
    if (alerting === undefined) throw new Error('createResponder built no alerting');
    return {
        responder,
        alerting,
        store,
        clock,
        teams,
        email,
        log,
        decisions,
        process: async (...bodies) => {
            await responder.pipeline.processBatch(bodies.map((body) => ({ body })));
        },
    };
}

/** The firewall fixture as if it happened `minutes` after the original, with its own correlation id. */
function firewallBody(minutes = 0): { records: Record<string, unknown>[] } {
    const r = fixtureRecord('vault-patch-firewall-allow.json');
    r.time = new Date(RECORD_T0 + minutes * MIN).toISOString();
    r.correlationId = `0a1a7c86-0066-40a1-8a7c-${String(minutes).padStart(12, '0')}`;
    return { records: [r] };
}

/**
 * The firewall closed half a minute before `minutes`, then opened again at `minutes`: a new opening
 * (`firewall-opened` reports the transition to open, not every patch of a vault that is open already).
 */
function reopenedBody(minutes: number): { records: Record<string, unknown>[] } {
    const close = fixtureRecord('vault-patch-firewall-allow.json');
    close.time = new Date(RECORD_T0 + (minutes - 0.5) * MIN).toISOString();
    close.correlationId = `c105ed00-0066-40a1-8a7c-${String(minutes).padStart(12, '0')}`;
    const props = (close.properties as { properties: { networkAcls: { defaultAction: string } } }).properties;
    props.networkAcls.defaultAction = 'Deny';
    return { records: [close, ...firewallBody(minutes).records] };
}

function findingsOf(s: Setup, rule: string): number {
    return s.decisions.decisions.filter((d) => d.type === 'finding' && d.rule === rule).length;
}

function only<T>(list: readonly T[], what = 'item'): T {
    expect(list).toHaveLength(1);
    const [x] = list;
    if (x === undefined) throw new Error(`no ${what}`);
    return x;
}

async function incident(s: Setup, id: string): Promise<Incident> {
    const inc = await s.alerting.get(id);
    if (inc === undefined) throw new Error(`no incident ${id}`);
    return inc;
}

interface CardAction {
    readonly type: string;
    readonly title: string;
    readonly url: string;
}

function cardOf(n: OutgoingNotification): { actions: CardAction[]; body: unknown[] } {
    if (n.channel !== 'teams') throw new Error(`${n.id} is not a Teams notice`);
    return n.teams.attachments[0]?.content as { actions: CardAction[]; body: unknown[] };
}

/** The Acknowledge button's URL and its token, from a sent card. */
function ackLinkOf(n: OutgoingNotification): { url: string; token: string } {
    const a = cardOf(n).actions.find((x) => x.title === 'Acknowledge');
    if (a === undefined) throw new Error(`card ${n.id} has no Acknowledge button`);
    const token = new URL(a.url).searchParams.get('t');
    if (token === null) throw new Error(`no token in ${a.url}`);
    return { url: a.url, token };
}

function mimeOf(n: OutgoingNotification): string {
    if (n.channel !== 'email') throw new Error(`${n.id} is not an email`);
    return Buffer.from(n.email.mimeBase64, 'base64').toString('ascii');
}

function emailOf(n: OutgoingNotification) {
    if (n.channel !== 'email') throw new Error(`${n.id} is not an email`);
    return n.email;
}

/** One opened incident: the firewall fixture processed, both notices sent. */
async function openedFirewallIncident(s: Setup = setup()) {
    await s.process(firewallBody());
    const card = only(s.teams.sent, 'card');
    const id = card.incidentId;
    return { s, id, card, ack: ackLinkOf(card) };
}

function incidentStoreKey(id: string): StateKey {
    // Alerting keeps incident <id> under ('~incidents', id).
    return stateKey('~incidents', id);
}

async function storedIncident(store: StateStore, id: string): Promise<StoredState> {
    const [st] = await store.getMany([incidentStoreKey(id)]);
    if (st === undefined) throw new Error(`incident ${id} is not stored under the expected key`);
    return st;
}

function headersOf(res: HttpResponseInit): Record<string, string> {
    return res.headers as Record<string, string>;
}

function linkRequest(method: string, id: string, action: string, token: string, headers: Record<string, string> = {}) {
    // A GET carries the token in the query; a POST only in its form body (so the body is what is read).
    const post = method === 'POST';
    const url = `https://kvr.example.net/api/incidents/${id}/${action}${post ? '' : `?t=${token}`}`;
    return new HttpRequest({
        method,
        url,
        query: post ? {} : { t: token },
        params: { id, action },
        // A POST from our own page carries our Origin (tests of other origins override it).
        headers: post
            ? { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://kvr.example.net', ...headers }
            : headers,
        ...(post ? { body: { string: `t=${encodeURIComponent(token)}` } } : {}),
    });
}

/** The token with one signature character changed (in the middle: the last one may only carry padding bits). */
function tamper(token: string): string {
    const i = token.lastIndexOf('.') + 20;
    const c = token[i] === 'A' ? 'B' : 'A';
    return `${token.slice(0, i)}${c}${token.slice(i + 1)}`;
}

// ---------------------------------------------------------------------------------------------------------------

describe('notices from audit records', () => {
    it('a new incident and its first notices: the incident and its due shard are not read again after this instance wrote them', async () => {
        const s = setup();
        const { id } = await openedFirewallIncident(s);
        const incidentReads = s.store.reads.filter(
            (k) => k.partition === incidentStoreKey(id).partition && k.row === id,
        );
        const dueReads = s.store.reads.filter((k) => k.partition === '~alerting' && k.row.startsWith('due|'));
        // The incident was created from its finding (its pointer read, absent): the delivery's claim and its record
        // write on the ETag of the incident as written (before: two more reads), the due shard is read once for the
        // claim and written on its ETag for the next due time (before: two reads).
        expect(incidentReads.length).toBe(1);
        expect(dueReads.length).toBe(1);
        expect((await incident(s, id)).notifications.every((n) => n.status === 'sent')).toBe(true);
        // What another writer changed since is read, not overwritten: a second finding after an outside change.
        const stored = await storedIncident(s.store.inner, id);
        await s.store.inner.put(
            incidentStoreKey(id),
            { ...(stored.value as Incident) },
            stored.etag,
            Number.MAX_SAFE_INTEGER,
        );
        s.clock.advance(5 * MIN);
        await s.process(reopenedBody(5));
        expect((await incident(s, id)).findings).toBe(2);
    });

    it('sends one Teams card and one email per incident, not per record', async () => {
        const s = setup();
        await s.process(firewallBody(0));
        s.clock.advance(5 * MIN);
        await s.process(reopenedBody(5), reopenedBody(7));
        s.clock.advance(10 * MIN - 1);
        await s.process(reopenedBody(14));
        // The engine reported every record (grouping window 1 minute): the incident kept it to one notice.
        expect(findingsOf(s, 'firewall-opened')).toBe(4);
        const card = only(s.teams.sent, 'card');
        const mail = only(s.email.sent, 'email');
        expect(card).toMatchObject({ kind: 'opened', channel: 'teams' });
        expect(mail).toMatchObject({ kind: 'opened', channel: 'email', incidentId: card.incidentId });

        const inc = await incident(s, card.incidentId);
        expect(inc).toMatchObject({
            vault: 'kv-payments-prod',
            rule: 'firewall-opened',
            severity: 'high',
            status: 'open',
            findings: 4,
            records: 4,
            tier: 0,
            actor: { upn: 'mallory@contoso.example', ip: '203.0.113.66' },
        });
        expect(inc.notifications.map((n) => [n.id, n.status, n.attempts])).toEqual([
            ['opened-0-0-teams', 'sent', 1],
            ['opened-0-0-email', 'sent', 1],
        ]);

        // The card is valid for Teams; its buttons are the signed acknowledge link and the portal (no undo: the
        // remediation was only planned).
        expect(validateTeamsWebhookMessage(card.channel === 'teams' ? card.teams : undefined)).toEqual([]);
        expect(cardOf(card).actions.map((a) => a.title)).toEqual(['Acknowledge', 'Open vault in the Azure portal']);
        expect(ackLinkOf(card).url).toMatch(
            new RegExp(
                `^https://kvr\\.example\\.net/api/incidents/${card.incidentId}/ack\\?t=[\\w-]+\\.[\\w-]+\\.[\\w-]+$`,
            ),
        );
        expect(inc.actions.length).toBeGreaterThan(0);
        expect(inc.actions.every((a) => a.status === 'planned' && a.undoId === undefined)).toBe(true);

        // The email goes to tier 0 from the configured mailbox, as MIME.
        const e = emailOf(mail);
        expect(e.from).toBe(MAIL_FROM);
        expect(e.to).toEqual(['oncall@contoso.example']);
        expect(e.subject).toMatch(/^\[kv-responder\] HIGH · firewall-opened · kv-payments-prod: /);
        expect(e.text).toContain(`Acknowledge: ${PUBLIC_URL}api/incidents/${card.incidentId}/ack?t=`);
        const mime = mimeOf(mail);
        expect(mime).toContain(`From: ${MAIL_FROM}\r\n`);
        expect(mime).toContain('To: oncall@contoso.example\r\n');
        expect(mime).toContain(`Message-ID: <${card.incidentId}.opened-0-0-email@kv-responder.invalid>`);
        expect(s.log.of('kvr.notification')).toHaveLength(2);
    });

    it('notifies separately per incident: another vault and rule, or the same one after the window', async () => {
        const s = setup();
        await s.process(firewallBody(0), fixtureBody('secret-purge-success.json'));
        expect(s.teams.sent.map((n) => n.incidentId)).toHaveLength(2);
        expect(new Set(s.teams.sent.map((n) => n.incidentId)).size).toBe(2);
        expect(s.email.sent).toHaveLength(2);
        const purge = await incident(s, s.teams.sent[1]?.incidentId ?? '');
        expect(purge).toMatchObject({ vault: 'kv-sandbox-dev', rule: 'sensitive-operation' });

        // 61 minutes after the last firewall record: a new incident, notified again.
        s.clock.advance(61 * MIN);
        await s.process(reopenedBody(61));
        expect(s.teams.sent).toHaveLength(3);
        const [first, , third] = s.teams.sent;
        expect(third?.incidentId).not.toBe(first?.incidentId);
        expect((await incident(s, third?.incidentId ?? '')).rule).toBe('firewall-opened');
    });

    it('does not notify again when the same batch is redelivered, to this or to a restarted instance', async () => {
        const s = setup();
        const body = firewallBody();
        await s.process(body);
        await s.process(body);
        const restarted = setup({ store: s.store, clock: s.clock });
        await restarted.process(body);
        await restarted.alerting.tick();
        expect(s.teams.sent).toHaveLength(1);
        expect(s.email.sent).toHaveLength(1);
        expect(restarted.teams.attempts).toHaveLength(0);
        expect(restarted.email.attempts).toHaveLength(0);
        const inc = await incident(s, s.teams.sent[0]?.incidentId ?? '');
        expect(inc.findings).toBe(1);
        expect(inc.notifications).toHaveLength(2);
    });

    it('sends each notice once when two instances sharing the store handle the same decisions concurrently', async () => {
        const store = new RecordingStore();
        const clock = new TestClock(START);
        const a = setup({ store, clock });
        const b = setup({ store, clock });
        // The decisions of one batch, evaluated once, then written by both instances at the same time.
        const report = await a.responder.pipeline.evaluateBatch([{ body: firewallBody() }]);
        expect(report.decisions.filter((d) => d.type === 'finding')).toHaveLength(1);
        // Each send takes a few turns of the event loop; it notes whether the other instance had finished its whole
        // write (incident update and delivery) meanwhile, i.e. whether the two really overlapped.
        const done = { a: false, b: false };
        const overlapped: boolean[] = [];
        for (const [self, other] of [
            [a, 'b'],
            [b, 'a'],
        ] as const) {
            self.teams.hold = async () => {
                await yieldTurns();
                overlapped.push(done[other]);
            };
        }
        await Promise.all([
            a.alerting.write(report.decisions).then(() => (done.a = true)),
            b.alerting.write(report.decisions).then(() => (done.b = true)),
        ]);
        expect(overlapped).toEqual([true]);
        const sends = (c: 'teams' | 'email') => [...a[c].attempts, ...b[c].attempts];
        expect(sends('teams')).toHaveLength(1);
        expect(sends('email')).toHaveLength(1);
        const id = sends('teams')[0]?.incidentId ?? '';
        // Both saw the incident; the notices were claimed by one of them and are sent.
        expect((await incident(a, id)).notifications.map((n) => n.status)).toEqual(['sent', 'sent']);

        // Later timers on both instances send nothing more.
        clock.advance(3 * MIN);
        await Promise.all([a.alerting.tick(), b.alerting.tick()]);
        expect(sends('teams')).toHaveLength(1);
        expect(sends('email')).toHaveLength(1);
    });

    it('sends each notice once when two responders process the same batch concurrently', async () => {
        const store = new RecordingStore();
        const clock = new TestClock(START);
        const a = setup({ store, clock });
        const b = setup({ store, clock });
        const body = firewallBody();
        await Promise.all([a.process(body), b.process(body)]);
        expect([...a.teams.attempts, ...b.teams.attempts]).toHaveLength(1);
        expect([...a.email.attempts, ...b.email.attempts]).toHaveLength(1);
    });

    it('escalates once when two instances tick at the same time', async () => {
        const store = new RecordingStore();
        const clock = new TestClock(START);
        const a = setup({ store, clock });
        const b = setup({ store, clock });
        await a.process(firewallBody());
        clock.advance(15 * MIN);
        await Promise.all([a.alerting.tick(), b.alerting.tick()]);
        const escalated = [...a.email.attempts, ...b.email.attempts].filter((n) => n.kind === 'escalated');
        expect(escalated).toHaveLength(1);
        expect(emailOf(only(escalated)).to).toEqual(['lead@contoso.example']);
        const inc = await incident(a, escalated[0]?.incidentId ?? '');
        expect(inc).toMatchObject({ tier: 1, reminders: 0 });
        expect(inc.notifications.filter((n) => n.kind === 'escalated')).toHaveLength(1);
    });

    // Only the instance whose update escalated counts and logs it.
    it('reports one escalation when two instances tick at the same time', async () => {
        const store = new RecordingStore();
        const clock = new TestClock(START);
        const a = setup({ store, clock });
        const b = setup({ store, clock });
        await a.process(firewallBody());
        clock.advance(15 * MIN);
        const [ra, rb] = await Promise.all([a.alerting.tick(), b.alerting.tick()]);
        expect(ra.escalated + rb.escalated).toBe(1);
        expect([...a.log.of('kvr.escalated'), ...b.log.of('kvr.escalated')]).toHaveLength(1);
    });
});

/** {@link RecordingStore} whose calls each take a millisecond, tracking the longest chain of calls that waited for one another. */
class DepthStore extends RecordingStore {
    private ended = 0;
    deepest = 0;
    private async timed<T>(fn: () => Promise<T>): Promise<T> {
        const d = this.ended + 1;
        this.deepest = Math.max(this.deepest, d);
        try {
            await new Promise((resolve) => setTimeout(resolve, 1));
            return await fn();
        } finally {
            this.ended = Math.max(this.ended, d);
        }
    }
    override getMany(keys: readonly StateKey[]) {
        return this.timed(() => super.getMany(keys));
    }
    override put(key: StateKey, value: unknown, etag: string | undefined, expiresMs: number) {
        return this.timed(() => super.put(key, value, etag, expiresMs));
    }
}

describe('state round trips of a write with many findings', () => {
    it('handles the findings of different incidents side by side: the chain of state calls is that of about one', async () => {
        const findingOf = (n: number): FindingDecision => ({
            type: 'finding',
            rule: 'firewall-opened',
            severity: 'high',
            vault: `kv-side-${n}`,
            vaultId: `/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-side-${n}`,
            time: new Date(RECORD_T0).toISOString(),
            principal: `p-${n}`,
            operations: ['VaultPatch'],
            correlationIds: [`c-${n}`],
            count: 1,
            summary: `firewall of kv-side-${n} opened`,
        });
        const chainOf = async (findings: number): Promise<{ depth: number; s: Setup }> => {
            const store = new DepthStore();
            const s = setup({ store });
            await s.alerting.write(Array.from({ length: findings }, (_, n) => findingOf(n)));
            return { depth: store.deepest, s };
        };
        const one = await chainOf(1);
        const many = await chainOf(8);
        // Eight incidents opened and notified, each once, and their due times all recorded (shared shards included).
        const ids = new Set(many.s.teams.sent.map((n) => n.incidentId));
        expect(ids.size).toBe(8);
        for (const id of ids)
            expect((await incident(many.s, id)).notifications.every((n) => n.status === 'sent')).toBe(true);
        const due = await many.s.store.inner.getMany(
            Array.from({ length: 16 }, (_, i) => stateKey('~alerting', `due|${String(i).padStart(2, '0')}`)),
        );
        const dueIds = due.flatMap((d) => Object.keys((d?.value ?? {}) as Record<string, number>));
        expect(new Set(dueIds)).toEqual(ids);
        // One after another, eight findings took eight times the chain of one; side by side, a few calls more than one
        // (calls on a due shard that two incidents share wait for each other).
        expect(many.depth).toBeLessThan(2 * one.depth);
    });
});

describe('delivery failures', () => {
    it('retries a transient failure on tick once the backoff has passed', async () => {
        const s = setup();
        s.teams.fail = (_n, attempt) =>
            attempt === 1 ? new DeliveryError('Teams answered 503', true, 503) : undefined;
        await s.process(firewallBody());
        expect(s.teams.attempts).toHaveLength(1);
        expect(s.teams.sent).toHaveLength(0);
        expect(s.email.sent).toHaveLength(1);
        const id = s.email.sent[0]?.incidentId ?? '';
        expect((await incident(s, id)).notifications.find((n) => n.channel === 'teams')).toMatchObject({
            status: 'pending',
            attempts: 1,
            lastError: 'Teams answered 503',
            nextAttemptMs: START + 30_000,
        });
        expect(s.log.of('kvr.notification-attempt-failed')[0]).toMatchObject({
            level: 'warn',
            fields: { incident: id, channel: 'teams', attempt: 1, error: 'Teams answered 503' },
        });

        s.clock.advance(30_000 - 1);
        expect(await s.alerting.tick()).toEqual({ handled: 0, escalated: 0 });
        expect(s.teams.attempts).toHaveLength(1);

        s.clock.advance(1);
        expect(await s.alerting.tick()).toEqual({ handled: 1, escalated: 0 });
        expect(s.teams.sent).toHaveLength(1);
        expect(s.email.sent).toHaveLength(1);
        expect((await incident(s, id)).notifications.map((n) => [n.id, n.status, n.attempts])).toEqual([
            ['opened-0-0-teams', 'sent', 2],
            ['opened-0-0-email', 'sent', 1],
        ]);
    });

    it('waits as long as Retry-After asks', async () => {
        const s = setup();
        s.teams.fail = (_n, attempt) =>
            attempt === 1 ? new DeliveryError('Teams answered 429', true, 429, 5 * MIN) : undefined;
        await s.process(firewallBody());
        s.clock.advance(4 * MIN);
        await s.alerting.tick();
        expect(s.teams.attempts).toHaveLength(1);
        s.clock.advance(MIN);
        await s.alerting.tick();
        expect(s.teams.sent).toHaveLength(1);
    });

    it('reports a channel that keeps failing on the other channel after maxDeliveryAttempts, and logs an error', async () => {
        const s = setup();
        s.teams.fail = () => new DeliveryError('Teams answered 503', true, 503);
        await s.process(firewallBody());
        const id = s.email.sent[0]?.incidentId ?? '';
        s.clock.advance(30_000);
        await s.alerting.tick();
        expect(s.teams.attempts).toHaveLength(2);
        expect(s.email.sent.map((n) => n.kind)).toEqual(['opened']);
        s.clock.advance(60_000);
        await s.alerting.tick();
        expect(s.teams.attempts).toHaveLength(CONFIG.alerting.maxDeliveryAttempts);

        const failing = s.email.sent.filter((n) => n.kind === 'channel-failing');
        const notice = only(failing, 'channel-failing email');
        const e = emailOf(notice);
        expect(e.to).toEqual(['oncall@contoso.example']);
        expect(e.subject).toContain('Notifications failing on teams');
        expect(e.text).toContain('Delivery by teams keeps failing: Teams answered 503');
        const error = only(s.log.of('kvr.notification-failed'), 'error log');
        expect(error).toMatchObject({
            level: 'error',
            fields: { incident: id, channel: 'teams', kind: 'opened', attempts: 3, error: 'Teams answered 503' },
        });
        const inc = await incident(s, id);
        expect(inc.notifications.map((n) => [n.id, n.status])).toEqual([
            ['opened-0-0-teams', 'failed'],
            ['opened-0-0-email', 'sent'],
            ['channel-failing-0-0-email', 'sent'],
        ]);

        // Nothing more is attempted on the failed channel, and the failure is not reported twice.
        s.clock.advance(10 * MIN);
        await s.alerting.tick();
        expect(s.teams.attempts).toHaveLength(3);
        expect(s.email.sent.filter((n) => n.kind === 'channel-failing')).toHaveLength(1);
    });

    it('fails a non-transient error at once and reports it on Teams', async () => {
        const s = setup();
        s.email.fail = () => new DeliveryError('Graph answered 403: mailbox not allowed', false, 403);
        await s.process(firewallBody());
        expect(s.email.attempts).toHaveLength(1);
        expect(s.teams.sent.map((n) => n.kind)).toEqual(['opened', 'channel-failing']);
        const failing = s.teams.sent[1];
        if (failing === undefined) throw new Error('no channel-failing card');
        expect(validateTeamsWebhookMessage(failing.channel === 'teams' ? failing.teams : undefined)).toEqual([]);
        expect(JSON.stringify(cardOf(failing).body)).toContain('Delivery by email keeps failing: Graph answered 403');
        expect(s.log.of('kvr.notification-failed')).toHaveLength(1);
    });
});

describe('escalation', () => {
    it('keeps the due index in shard keys (not one global entity), and moves a legacy index into them on tick', async () => {
        const { s, id } = await openedFirewallIncident();
        const legacy = stateKey('~alerting', 'due');
        const shards = Array.from({ length: 16 }, (_, i) => stateKey('~alerting', `due|${String(i).padStart(2, '0')}`));
        const inShards = async () =>
            (await s.store.getMany(shards)).filter((x) => x !== undefined && id in (x.value as object)).length;
        expect((await s.store.getMany([legacy]))[0]).toBeUndefined();
        expect(await inShards()).toBe(1);
        // An index as an earlier version kept it: the entry moves from the single key into its shard, and escalates.
        const all = await s.store.getMany(shards);
        const at = all.findIndex((x) => x !== undefined && id in (x.value as object));
        const own = all[at];
        const shardKey = shards[at] as StateKey;
        expect((await s.store.put(shardKey, {}, own?.etag, Number.MAX_SAFE_INTEGER)).ok).toBe(true);
        await s.store.put(legacy, { [id]: START + 15 * MIN }, undefined, Number.MAX_SAFE_INTEGER);
        s.clock.advance(15 * MIN);
        expect(await s.alerting.tick()).toEqual({ handled: 1, escalated: 1 });
        expect((await s.store.getMany([legacy]))[0]?.value).toEqual({});
        expect(await inShards()).toBe(1);
    });

    it('moves an unacknowledged high incident to tier 2 recipients only, then tier 3, then one reminder', async () => {
        const { s, id } = await openedFirewallIncident();
        s.clock.advance(15 * MIN - 1);
        expect(await s.alerting.tick()).toEqual({ handled: 0, escalated: 0 });

        s.clock.advance(1);
        expect(await s.alerting.tick()).toEqual({ handled: 1, escalated: 1 });
        // Tier 2 ("secondary") has email only: no Teams post, one email to its recipient.
        expect(s.teams.sent).toHaveLength(1);
        const tier2 = only(s.email.sent.filter((n) => n.kind === 'escalated'));
        expect(emailOf(tier2).to).toEqual(['lead@contoso.example']);
        expect(emailOf(tier2).subject).toContain('Escalated to secondary (unacknowledged)');
        expect(s.log.of('kvr.escalated')[0]?.fields).toMatchObject({ incident: id, tier: 1 });
        expect(await incident(s, id)).toMatchObject({ tier: 1, tierSinceMs: START + 15 * MIN });

        s.clock.advance(15 * MIN);
        await s.alerting.tick();
        const tier3 = s.teams.sent.filter((n) => n.kind === 'escalated');
        expect(tier3).toHaveLength(1);
        expect(validateTeamsWebhookMessage(tier3[0]?.channel === 'teams' ? tier3[0].teams : undefined)).toEqual([]);
        const tier3mail = s.email.sent.filter((n) => n.kind === 'escalated').slice(1);
        expect(tier3mail.map((n) => emailOf(n).to)).toEqual([['ciso@contoso.example', 'oncall@contoso.example']]);

        // maxReminders 1: one reminder to the last tier, then nothing.
        s.clock.advance(15 * MIN);
        await s.alerting.tick();
        expect(s.teams.sent.filter((n) => n.kind === 'escalated')).toHaveLength(2);
        expect(await incident(s, id)).toMatchObject({ tier: 2, reminders: 1 });
        const before = [s.teams.attempts.length, s.email.attempts.length];
        for (let i = 0; i < 4; i++) {
            s.clock.advance(15 * MIN);
            await s.alerting.tick();
        }
        expect([s.teams.attempts.length, s.email.attempts.length]).toEqual(before);
        const ids = (await incident(s, id)).notifications.map((n) => n.id);
        expect(new Set(ids).size).toBe(ids.length);
    });

    it('stops escalating once acknowledged through the link in the card', async () => {
        const { s, id, ack } = await openedFirewallIncident();
        s.clock.advance(5 * MIN);
        const r = await s.alerting.act(id, 'ack', ack.token, { from: '198.51.100.7' });
        expect(r).toMatchObject({ kind: 'done', message: `Acknowledged at ${new Date(s.clock.now()).toISOString()}` });
        expect(await incident(s, id)).toMatchObject({
            status: 'acknowledged',
            acknowledged: { at: new Date(START + 5 * MIN).toISOString(), from: '198.51.100.7' },
        });
        for (let i = 0; i < 6; i++) {
            s.clock.advance(15 * MIN);
            await s.alerting.tick();
        }
        expect(s.teams.attempts).toHaveLength(1);
        expect(s.email.attempts).toHaveLength(1);
        expect(s.log.of('kvr.escalated')).toHaveLength(0);
    });

    it('does not escalate an incident below escalation.minSeverity, and does not notify below minSeverity', async () => {
        const medium = setup({ config: configWith({ rules: { 'firewall-opened': { severity: 'medium' } } }) });
        await medium.process(firewallBody());
        const card = only(medium.teams.sent);
        for (let i = 0; i < 4; i++) {
            medium.clock.advance(15 * MIN);
            await medium.alerting.tick();
        }
        expect(await incident(medium, card.incidentId)).toMatchObject({ severity: 'medium', tier: 0 });
        expect(medium.teams.attempts).toHaveLength(1);
        expect(medium.email.attempts).toHaveLength(1);

        const quiet = setup({ config: configWith({ alerting: { minSeverity: 'critical' } }) });
        await quiet.process(firewallBody());
        expect(findingsOf(quiet, 'firewall-opened')).toBe(1);
        quiet.clock.advance(HOUR);
        await quiet.alerting.tick();
        expect(quiet.teams.attempts).toHaveLength(0);
        expect(quiet.email.attempts).toHaveLength(0);
        expect(quiet.log.of('kvr.incident')).toMatchObject([{ fields: { severity: 'high', notices: 0 } }]);
    });
});

describe('link tokens', () => {
    it('refuses a token whose signature was altered, or that another key signed', async () => {
        const { s, id, ack } = await openedFirewallIncident();
        expect(await s.alerting.act(id, 'ack', tamper(ack.token), {})).toMatchObject({
            kind: 'refused',
            status: 403,
            message: 'the link signature is not valid',
        });
        const other = new LinkTokens(LocalLinkSigner.generate(), PUBLIC_URL, CONFIG.alerting.linkTtlMs, s.clock);
        const forged = new URL(await other.issue(id, 'ack')).searchParams.get('t') ?? '';
        expect(forged.split('.')[0]).toBe(ack.token.split('.')[0]); // same header, same kid: only the key differs
        expect(await s.alerting.act(id, 'ack', forged, {})).toMatchObject({ kind: 'refused', status: 403 });
        expect(await s.alerting.view(id, 'ack', forged)).toMatchObject({ kind: 'refused', status: 403 });
        expect(await s.alerting.act(id, 'ack', 'not-a-token', {})).toMatchObject({ kind: 'refused', status: 400 });
        expect((await incident(s, id)).status).toBe('open');
    });

    it('refuses an expired link with 410', async () => {
        const { s, id, ack } = await openedFirewallIncident();
        s.clock.advance(CONFIG.alerting.linkTtlMs);
        const r = await s.alerting.act(id, 'ack', ack.token, {});
        expect(r).toMatchObject({ kind: 'refused', status: 410 });
        expect(r.message).toMatch(/^the link expired at /);
        expect((await incident(s, id)).acknowledged).toBeUndefined();
    });

    it('acts once per token: a replayed POST is told it was already acknowledged', async () => {
        const { s, id, ack } = await openedFirewallIncident();
        const first = await s.alerting.act(id, 'ack', ack.token, { by: 'alice@contoso.example' });
        expect(first.kind).toBe('done');
        const stored = await storedIncident(s.store, id);
        s.clock.advance(MIN);
        const again = await s.alerting.act(id, 'ack', ack.token, { by: 'mallory@contoso.example' });
        expect(again).toMatchObject({ kind: 'already' });
        expect(again.message).toBe(`Already acknowledged at ${new Date(START).toISOString()} by alice@contoso.example`);
        expect((await storedIncident(s.store, id)).etag).toBe(stored.etag);
    });

    it('refuses the token of one incident on another, and an ack token for undo', async () => {
        const s = setup();
        await s.process(firewallBody(), fixtureBody('secret-purge-success.json'));
        const [a, b] = s.teams.sent;
        if (a === undefined || b === undefined) throw new Error('expected two incidents');
        const tokenA = ackLinkOf(a).token;
        const r = await s.alerting.act(b.incidentId, 'ack', tokenA, {});
        expect(r).toMatchObject({ kind: 'refused', status: 403, message: 'the token belongs to another incident' });
        expect(await s.alerting.view(b.incidentId, 'ack', tokenA)).toMatchObject({ kind: 'refused', status: 403 });
        expect(await s.alerting.act(a.incidentId, 'undo', tokenA, {})).toMatchObject({
            kind: 'refused',
            status: 403,
            message: 'the token is for "ack", not "undo"',
        });
        expect((await incident(s, a.incidentId)).status).toBe('open');
        expect((await incident(s, b.incidentId)).status).toBe('open');
    });
});

describe('handleIncidentLink', () => {
    // Without Easy Auth the tests opt in to possession-only links (the handler refuses to act otherwise).
    const deps = (alerting: Alerting, trustEasyAuth = false) => ({
        alerting,
        trustEasyAuth,
        possessionOnlyLinks: !trustEasyAuth,
        publicUrl: 'https://kvr.example.net',
    });

    function expectPageHeaders(res: HttpResponseInit): void {
        const h = headersOf(res);
        expect(h['Cache-Control']).toBe('no-store');
        expect(h['Content-Security-Policy']).toContain("default-src 'none'");
        expect(h['Content-Security-Policy']).toContain("form-action 'self'");
        expect(h['Content-Security-Policy']).toContain("frame-ancestors 'none'");
        expect(h['Content-Type']).toBe('text/html; charset=utf-8');
    }

    it('GET shows a confirmation form and changes nothing; POST acknowledges; a second POST is 409', async () => {
        const { s, id, ack } = await openedFirewallIncident();
        const before = await storedIncident(s.store, id);
        const writes = s.store.puts.length;

        const { context } = makeContext();
        const page = await handleIncidentLink(linkRequest('GET', id, 'ack', ack.token), context, deps(s.alerting));
        expect(page.status).toBe(200);
        expectPageHeaders(page);
        expect(page.body).toContain('<form method="post">');
        expect(page.body).toContain(`<input type="hidden" name="t" value="${ack.token}">`);
        expect(page.body).toContain('Nothing has changed yet');
        const after = await storedIncident(s.store, id);
        expect(after.etag).toBe(before.etag);
        expect(JSON.stringify(after.value)).toBe(JSON.stringify(before.value));
        expect(s.store.puts.length).toBe(writes);

        s.clock.advance(2 * MIN);
        const post = await handleIncidentLink(
            linkRequest('POST', id, 'ack', ack.token, {
                'x-forwarded-for': '198.51.100.7:50123, 10.0.0.4',
                'x-ms-client-principal-name': 'alice@contoso.example',
            }),
            context,
            deps(s.alerting, true),
        );
        expect(post.status).toBe(200);
        expectPageHeaders(post);
        expect(post.body).toContain(
            `<h1 id="state">Acknowledged at ${new Date(START + 2 * MIN).toISOString()} by alice@contoso.example</h1>`,
        );
        expect(await incident(s, id)).toMatchObject({
            status: 'acknowledged',
            acknowledged: { by: 'alice@contoso.example', from: '198.51.100.7' },
        });

        const again = await handleIncidentLink(linkRequest('POST', id, 'ack', ack.token), context, deps(s.alerting));
        expect(again.status).toBe(409);
        expectPageHeaders(again);
        expect(again.body).toContain('Already acknowledged');

        // The link opened again shows the state, without a form.
        const later = await handleIncidentLink(linkRequest('GET', id, 'ack', ack.token), context, deps(s.alerting));
        expect(later.status).toBe(200);
        expect(later.body).not.toContain('<form');
        expect(later.body).toContain('Already acknowledged');
    });

    it('records who only when Easy Auth is trusted', async () => {
        const { s, id, ack } = await openedFirewallIncident();
        const { context } = makeContext();
        const post = await handleIncidentLink(
            linkRequest('POST', id, 'ack', ack.token, { 'x-ms-client-principal-name': 'mallory@contoso.example' }),
            context,
            deps(s.alerting, false),
        );
        expect(post.status).toBe(200);
        expect((await incident(s, id)).acknowledged).not.toHaveProperty('by');
    });

    it('refuses forged, expired and cross-incident links with 403 or 410 pages, GET or POST', async () => {
        const s = setup();
        await s.process(firewallBody(), fixtureBody('secret-purge-success.json'));
        const [a, b] = s.teams.sent;
        if (a === undefined || b === undefined) throw new Error('expected two incidents');
        const tokenA = ackLinkOf(a).token;
        const { context, logs } = makeContext();
        for (const method of ['GET', 'POST']) {
            const forged = await handleIncidentLink(
                linkRequest(method, a.incidentId, 'ack', tamper(tokenA)),
                context,
                deps(s.alerting),
            );
            expect(forged.status).toBe(403);
            expectPageHeaders(forged);
            expect(forged.body).toContain('the link signature is not valid');
            expect(forged.body).not.toContain('<form');
            const cross = await handleIncidentLink(
                linkRequest(method, b.incidentId, 'ack', tokenA),
                context,
                deps(s.alerting),
            );
            expect(cross.status).toBe(403);
            expect(cross.body).toContain('the token belongs to another incident');
        }
        s.clock.advance(CONFIG.alerting.linkTtlMs + 1);
        const expired = await handleIncidentLink(
            linkRequest('POST', a.incidentId, 'ack', tokenA),
            context,
            deps(s.alerting),
        );
        expect(expired.status).toBe(410);
        expect(expired.body).toContain('the link expired at');
        expect(logs.filter((l) => l.entry.msg === 'kvr.link-refused')).toHaveLength(5);
        expect((await incident(s, a.incidentId)).status).toBe('open');
        expect((await incident(s, b.incidentId)).status).toBe('open');
    });

    it('answers unknown actions with 404 and other methods with 405', async () => {
        const { s, id, ack } = await openedFirewallIncident();
        const { context } = makeContext();
        const unknown = await handleIncidentLink(
            linkRequest('GET', id, 'delete', ack.token),
            context,
            deps(s.alerting),
        );
        expect(unknown.status).toBe(404);
        const put = await handleIncidentLink(linkRequest('PUT', id, 'ack', ack.token), context, deps(s.alerting));
        expect(put.status).toBe(405);
        expect((await incident(s, id)).status).toBe('open');
    });
});

describe('notices survive failures between detection and delivery', () => {
    // The engine keeps a group's finding until the batch's sinks confirmed it: when alerting failed (state store
    // unavailable), the retried batch emits the finding again and the incident is created then.
    it('notifies after a batch whose alerting write failed is redelivered', async () => {
        const s = setup();
        s.store.failPut = (key) => key.partition === '~incidents';
        await expect(s.process(firewallBody())).rejects.toThrow('state store unavailable');
        s.store.failPut = () => false;
        await s.process(firewallBody());
        expect(s.teams.sent).toHaveLength(1);
        expect(s.email.sent).toHaveLength(1);
    });

    it('notifies an RBAC switch turned off after its batch failed past the rule state write and is redelivered', async () => {
        const s = setup();
        const record = (minutes: number, enabled: boolean) => {
            const r = fixtureRecord('vault-patch-rbac-disabled.json');
            r.time = new Date(RECORD_T0 + minutes * MIN).toISOString();
            r.correlationId = `82f8634a-006a-482f-8863-${String(minutes).padStart(12, '0')}`;
            ((r.properties as Record<string, unknown>).properties as Record<string, unknown>).enableRbacAuthorization =
                enabled;
            return { records: [r] };
        };
        await s.process(record(0, true));
        s.store.failPut = (key) => key.partition === '~incidents';
        await expect(s.process(record(10, false))).rejects.toThrow('state store unavailable');
        s.store.failPut = () => false;
        await s.process(record(10, false));
        expect(s.teams.sent.map((n) => n.kind)).toEqual(['opened']);
        expect(s.email.sent).toHaveLength(1);
        // A later patch of the vault with RBAC still off is no new finding.
        await s.process(record(20, false));
        expect(s.teams.sent).toHaveLength(1);
    });

    // A claim puts the incident in the due index for when the claim lapses: an instance that stops while sending
    // (claim taken, process recycled) leaves pending notices that another instance's timer retries.
    it('retries a notice claimed by an instance that stopped while sending', async () => {
        const store = new RecordingStore();
        const clock = new TestClock(START);
        const a = setup({ store, clock });
        const b = setup({ store, clock });
        let release: () => void = () => undefined;
        a.teams.hold = () => new Promise<void>((resolve) => (release = resolve));
        const stuck = a.process(firewallBody());
        await yieldTurns(20);
        expect(a.teams.attempts).toHaveLength(1);
        // Instance a never comes back; b's timer runs after the claim expired.
        clock.advance(5 * MIN);
        await b.alerting.tick();
        try {
            expect(b.teams.sent).toHaveLength(1);
            expect(b.email.sent).toHaveLength(1);
        } finally {
            a.teams.fail = () => new Error('instance stopped');
            release();
            await stuck.catch(() => undefined);
        }
    });
});

describe('routing by vault tags', () => {
    const tagged = parseResponderConfig(
        {
            alerting: {
                rosters: {
                    default: { tiers: [{ name: 'platform', email: ['platform@contoso.example'] }] },
                    prod: { tiers: [{ name: 'prod on-call', email: ['prod-oncall@contoso.example'] }] },
                },
                routes: [{ match: { tag: { name: 'env', value: 'prod' } }, roster: 'prod' }],
            },
        },
        ruleIds,
        'tag-routes',
    );

    it('reads the vault tags when an incident opens and routes by them, once per incident', async () => {
        const asked: string[] = [];
        const s = setup({
            config: tagged,
            tagsOf: (vault) => {
                asked.push(vault.name);
                return Promise.resolve({ Env: 'prod' });
            },
        });
        await s.process(firewallBody(0));
        await s.process(firewallBody(5)); // same incident: no second lookup
        expect(asked).toEqual(['kv-payments-prod']);
        const mail = only(s.email.sent);
        if (mail.channel !== 'email') throw new Error('not an email');
        expect(mail.email.to).toEqual(['prod-oncall@contoso.example']);
    });

    it('falls back to the default roster when the tags cannot be read', async () => {
        const s = setup({ config: tagged, tagsOf: () => Promise.resolve(undefined) });
        await s.process(firewallBody(0));
        const mail = only(s.email.sent);
        if (mail.channel !== 'email') throw new Error('not an email');
        expect(mail.email.to).toEqual(['platform@contoso.example']);
    });
});
