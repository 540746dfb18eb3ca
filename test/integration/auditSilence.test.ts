// The live half of audit-log-silent: the `auditSilence` timer over the heartbeat rows in Table Storage (Azurite) and in
// memory, its handler as the host calls it, and `kvr replay` running the same check on the records' clock.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { checkAuditSilence } from '../../shared/app/auditSilence';
import { handleAuditSilence } from '../../shared/app/handlers/handleAuditSilence';
import { replay } from '../../shared/app/replay';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import type { Decision, FindingDecision } from '../../shared/core/decisions';
import type { Logger } from '../../shared/core/ports';
import { ruleIds } from '../../shared/core/rules';
import { HEARTBEAT_ROW, type Heartbeat } from '../../shared/core/rules/audit-log-silent/rule';
import { type StateStore, stateKey } from '../../shared/core/state/store';
import { makeContext } from '../support/context';
import { fixtureRecord } from '../support/fixtures';
import { stateStoresUnderTest } from '../support/stateStores';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-10-05T09:00:00Z');
const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
const vaultRef = (name: string) => ({
    subscriptionId: SUB,
    resourceGroup: 'rg-payments',
    name,
    resourceId: `/subscriptions/${SUB}/resourcegroups/rg-payments/providers/microsoft.keyvault/vaults/${name}`,
});
const config = parseResponderConfig(
    { guardrails: { overrides: [{ match: { vaultName: 'kv-idle' }, quietPeriodHours: 48 }] } },
    ruleIds,
    'test',
);

class Log implements Logger {
    readonly lines: { level: string; event: string; fields?: Record<string, unknown> }[] = [];
    info(event: string, fields?: Record<string, unknown>) {
        this.lines.push({ level: 'info', event, ...(fields === undefined ? {} : { fields }) });
    }
    warn(event: string, fields?: Record<string, unknown>) {
        this.lines.push({ level: 'warn', event, ...(fields === undefined ? {} : { fields }) });
    }
    error(event: string, fields?: Record<string, unknown>) {
        this.lines.push({ level: 'error', event, ...(fields === undefined ? {} : { fields }) });
    }
}

const findingsOf = (decisions: readonly Decision[]): FindingDecision[] =>
    decisions.filter((d): d is FindingDecision => d.type === 'finding' && d.rule === 'audit-log-silent');

async function beat(store: StateStore, name: string, last: number): Promise<void> {
    const key = stateKey(name, HEARTBEAT_ROW);
    const [now] = await store.getMany([key]);
    const value: Heartbeat = { vault: vaultRef(name), first: T0, last };
    const r = await store.put(key, value, now?.etag, Number.MAX_SAFE_INTEGER / 2);
    expect(r.ok).toBe(true);
}

const stores = stateStoresUnderTest('kvrsilence');

describe.each(stores)('the auditSilence check over %s', (_name, makeStore) => {
    let store: StateStore;
    beforeEach(async () => {
        store = makeStore();
        await beat(store, 'kv-quiet', T0);
        await beat(store, 'kv-busy', T0 + 9 * HOUR);
        await beat(store, 'kv-idle', T0);
    });

    it('reports each vault silent past its quiet period once, while the silence lasts', async () => {
        const sink = new MemoryDecisionSink();
        const log = new Log();
        const now = T0 + 10 * HOUR;
        const first = await checkAuditSilence({ store, settings: config.detection, sink, log }, now);
        expect(first.vaults).toBe(3);
        expect(first.truncated).toBe(false);
        // kv-idle has a 48 h quiet period; kv-busy sent a record an hour ago.
        expect(findingsOf(sink.decisions).map((f) => [f.vault, f.silentHours, f.resolved, f.severity])).toEqual([
            ['kv-quiet', 10, false, 'high'],
        ]);
        const again = await checkAuditSilence({ store, settings: config.detection, sink, log }, now + HOUR);
        expect(again.findings).toEqual([]);
        expect(findingsOf(sink.decisions)).toHaveLength(1);
        // Records come back and stop again: a new silence is a new finding.
        await beat(store, 'kv-quiet', T0 + 12 * HOUR);
        await checkAuditSilence({ store, settings: config.detection, sink, log }, T0 + 19 * HOUR);
        // ...and kv-busy, silent for 10 h by then.
        expect(
            findingsOf(sink.decisions)
                .map((f) => [f.vault, f.silentFrom])
                .sort(),
        ).toEqual([
            ['kv-busy', new Date(T0 + 9 * HOUR).toISOString()],
            ['kv-quiet', new Date(T0).toISOString()],
            ['kv-quiet', new Date(T0 + 12 * HOUR).toISOString()],
        ]);
    });

    it('does not report a vault whose records resumed between the scan and the report', async () => {
        const sink = new MemoryDecisionSink();
        // A batch writes a newer heartbeat while the check runs (after its scan, before its re-read).
        const racing: StateStore = Object.create(store) as StateStore;
        racing.getMany = async (keys) => {
            await beat(store, 'kv-quiet', T0 + 10 * HOUR);
            return store.getMany(keys);
        };
        const r = await checkAuditSilence(
            { store: racing, settings: config.detection, sink, log: new Log() },
            T0 + 10 * HOUR,
        );
        expect(r.findings).toEqual([]);
        expect(sink.decisions).toEqual([]);
    });

    it('a sink failure throws before marking anything, and the next run reports the silence', async () => {
        const failing = {
            write: () => Promise.reject(new Error('decision log unavailable')),
        };
        await expect(
            checkAuditSilence({ store, settings: config.detection, sink: failing, log: new Log() }, T0 + 10 * HOUR),
        ).rejects.toThrow('decision log unavailable');
        const sink = new MemoryDecisionSink();
        await checkAuditSilence({ store, settings: config.detection, sink, log: new Log() }, T0 + 10 * HOUR);
        expect(findingsOf(sink.decisions).map((f) => f.vault)).toEqual(['kv-quiet']);
    });

    it('says so, as an error, when there are more vaults than one run checks', async () => {
        const log = new Log();
        const r = await checkAuditSilence(
            { store, settings: config.detection, sink: new MemoryDecisionSink(), log, maxHeartbeats: 2 },
            T0 + 10 * HOUR,
        );
        expect(r.truncated).toBe(true);
        expect(r.vaults).toBe(2);
        expect(log.lines).toEqual([expect.objectContaining({ level: 'error', event: 'kvr.audit-silence-truncated' })]);
    });
});

describe('the auditSilence timer handler', () => {
    it('writes the findings to its sink and logs one summary line', async () => {
        const store = new MemoryStateStore();
        await beat(store, 'kv-quiet', T0);
        const sink = new MemoryDecisionSink();
        const { context, logs } = makeContext();
        await handleAuditSilence({ isPastDue: false }, context, {
            store,
            settings: config.detection,
            sink,
            now: () => T0 + 7 * HOUR,
        });
        expect(findingsOf(sink.decisions).map((f) => f.vault)).toEqual(['kv-quiet']);
        expect(logs.map((l) => [l.level, l.entry.msg])).toEqual([
            ['warning', 'kvr.finding'],
            ['information', 'kvr.audit-silence'],
        ]);
        expect(logs[1]?.entry).toMatchObject({ vaults: 1, silent: 1, truncated: false, pastDue: false });
    });
});

describe('kvr replay runs the silence check on the records clock', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'kvr-silence-replay-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    /** An AuditEvent SecretGet record of `vault` at `timeMs` (from the real fixture, renamed and re-timed). */
    function record(vault: string, timeMs: number): Record<string, unknown> {
        const r = fixtureRecord('secret-get-success.json');
        r.time = new Date(timeMs).toISOString();
        r.resourceId = `/SUBSCRIPTIONS/${SUB.toUpperCase()}/RESOURCEGROUPS/RG-PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/${vault.toUpperCase()}`;
        r.correlationId = `${vault}-${timeMs}`;
        const p = r.properties as Record<string, unknown>;
        p.id = `https://${vault}.vault.azure.net/secrets/db-password`;
        p.requestUri = `https://${vault}.vault.azure.net/secrets/db-password?api-version=7.4`;
        return r;
    }
    const hours = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => T0 + (from + i) * HOUR);

    async function run(files: Record<string, Record<string, unknown>[]>, batchSize?: number) {
        for (const [name, records] of Object.entries(files))
            writeFileSync(join(dir, name), records.map((r) => JSON.stringify(r)).join('\n'));
        const decisions = new MemoryDecisionSink();
        await replay({
            inputs: Object.keys(files).map((n) => join(dir, n)),
            config,
            sinks: { decisions, quarantine: new MemoryQuarantineSink() },
            ...(batchSize === undefined ? {} : { batchSize }),
        });
        return findingsOf(decisions.decisions);
    }

    it('reports a silence while it lasts, in record order, and the resumption as already reported', async () => {
        // kv-a sends every hour for 30 h; kv-b for the first 4 h, then again from hour 28.
        const merged = [
            ...hours(0, 30).map((t) => record('kv-a', t)),
            ...[...hours(0, 4), ...hours(28, 30)].map((t) => record('kv-b', t)),
        ];
        merged.sort((x, y) => Date.parse(String(x.time)) - Date.parse(String(y.time)));
        const found = await run({ 'merged.jsonl': merged }, 1);
        expect(found.map((f) => [f.vault, f.resolved, f.severity])).toEqual([
            ['kv-b', false, 'high'],
            ['kv-b', true, 'low'],
        ]);
        // Reported at the first 15-minute mark of the records' clock past 6.3 h of silence (hour 4 + 6.3 h).
        expect(Date.parse(found[0]?.time ?? '')).toBe(T0 + 11 * HOUR);
        expect(found[0]?.silentFrom).toBe(new Date(T0 + 4 * HOUR).toISOString());
    });

    it("calls no vault silent against another vault's clock when archives come one vault after the other", async () => {
        const found = await run(
            {
                '1-kv-a.jsonl': hours(0, 30).map((t) => record('kv-a', t)),
                '2-kv-b.jsonl': [...hours(0, 4), ...hours(28, 30)].map((t) => record('kv-b', t)),
            },
            1,
        );
        // kv-b's own gap, reported when its records resume; nothing for kv-a (whose records end at hour 30, past
        // the clock of every kv-b batch), and nothing for kv-b at its first record (hour 0, long before kv-a's last).
        expect(found.map((f) => [f.vault, f.resolved, f.severity])).toEqual([['kv-b', true, 'high']]);
    });
});
