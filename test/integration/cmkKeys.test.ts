// CMK findings carry the key's current state, read through the real @azure/keyvault-keys client; cmk-expiring-in-use
// reads the key versions the inventory shows in use.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { KeyVaultKeyStateReader, parseKeyId } from '../../shared/adapters/keyStateReader';
import { checkExpiringKeys } from '../../shared/app/cmk';
import { createResponder } from '../../shared/app/createPipeline';
import { LocalLinkSigner } from '../../shared/adapters/linkSigner';
import { LinkTokens } from '../../shared/app/alerting';
import { DEFAULT_CONFIG, parseResponderConfig } from '../../shared/config/responderConfig';
import { ruleIds } from '../../shared/core/rules';
import { RecordingChannel, TestClock } from '../support/alertingDoubles';
import type { FindingDecision } from '../../shared/core/decisions';
import type { Logger } from '../../shared/core/ports';
import {
    type KeyVaultKeysFake,
    keysClientOptionsFor,
    startKeyVaultKeysFake,
} from '../../shared/simulation/keyVaultKeysFake';
import { StubTokenCredential } from '../fakes/armClient';
import { redirectTo } from '../support/redirectPolicy';

const FIXTURE = join(__dirname, '..', 'fixtures', 'rules', 'cmk-disabled-in-use', 'fires.disable-version-in-use.json');
const V1 = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const KEY_ID = `https://kv-payments-prod.vault.azure.net/keys/cmk-storage/${V1}`;
const DAY_MS = 86_400_000;

class Log implements Logger {
    readonly errors: string[] = [];
    info(): void {}
    warn(): void {}
    error(message: string, fields?: Readonly<Record<string, unknown>>): void {
        this.errors.push(`${message} ${JSON.stringify(fields)}`);
    }
}

let fake: KeyVaultKeysFake;
let reader: KeyVaultKeyStateReader;
beforeAll(async () => {
    fake = await startKeyVaultKeysFake({
        keys: [
            {
                name: 'cmk-storage',
                versions: [{ version: V1, enabled: false, exp: Math.floor(Date.parse('2026-10-20T00:00:00Z') / 1000) }],
            },
        ],
    });
    // The records name kv-payments-prod.vault.azure.net: the client keeps that host and is redirected to the fake.
    reader = new KeyVaultKeyStateReader(new StubTokenCredential(fake.token), {
        ...keysClientOptionsFor(fake),
        disableChallengeResourceVerification: false,
        additionalPolicies: [{ policy: redirectTo(fake.url), position: 'perRetry' }],
    });
});
afterAll(async () => {
    await fake.close();
});

function records(): { records: Record<string, unknown>[] } {
    return JSON.parse(readFileSync(FIXTURE, 'utf8')) as { records: Record<string, unknown>[] };
}

describe('KeyVaultKeyStateReader', () => {
    it('reads a key version, the current version, and nothing for an unknown key', async () => {
        expect(await reader.read(KEY_ID)).toMatchObject({
            keyId: KEY_ID,
            enabled: false,
            expiresOn: '2026-10-20T00:00:00.000Z',
        });
        expect((await reader.read('https://kv-payments-prod.vault.azure.net/keys/cmk-storage'))?.keyId).toBe(KEY_ID);
        expect(await reader.read('https://kv-payments-prod.vault.azure.net/keys/nope/0123')).toBeUndefined();
        expect(() => parseKeyId('https://kv.vault.azure.net/secrets/x')).toThrow(/not a Key Vault key id/);
    });
});

describe('CMK findings carry the key state', () => {
    it('adds enabled, expiry and last update from Key Vault to cmk-disabled-in-use and cmk-access-denied', async () => {
        fake.clearLog();
        const decisions = new MemoryDecisionSink();
        const { pipeline } = createResponder(
            DEFAULT_CONFIG,
            { decisions, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: true, keys: reader, log: new Log() },
        );
        await pipeline.processBatch([{ body: records() }]);
        const findings = decisions.decisions.filter((d): d is FindingDecision => d.type === 'finding');
        expect(findings.map((f) => f.rule)).toEqual(['cmk-disabled-in-use', 'cmk-access-denied', 'cmk-access-denied']);
        for (const f of findings)
            expect(f.keyState).toMatchObject({ keyId: KEY_ID, enabled: false, expiresOn: '2026-10-20T00:00:00.000Z' });
        // One read per key id and batch.
        expect(fake.requests.filter((r) => r.method === 'GET' && r.status === 200)).toHaveLength(1);
    });

    it('notes an unreadable key in the finding and logs it, without failing the batch', async () => {
        fake.inject({ status: 403, match: { pathIncludes: '/keys/cmk-storage' }, times: 10 });
        const log = new Log();
        const decisions = new MemoryDecisionSink();
        const { pipeline } = createResponder(
            DEFAULT_CONFIG,
            { decisions, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: true, keys: reader, log },
        );
        await pipeline.processBatch([{ body: records() }]);
        fake.clearFaults();
        const f = decisions.decisions.find((d): d is FindingDecision => d.type === 'finding');
        expect(String((f?.keyState as { error?: string }).error)).toMatch(/403|Forbidden|authoriz/i);
        expect(log.errors.some((e) => e.startsWith('kvr.key-state-unavailable'))).toBe(true);
    });
});

describe('cmk-expiring-in-use', () => {
    async function inventory(): Promise<MemoryStateStore> {
        const store = new MemoryStateStore();
        const { pipeline } = createResponder(
            DEFAULT_CONFIG,
            { decisions: new MemoryDecisionSink(), quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: true, store },
        );
        // Only the uses (the first two records), not the disabling.
        await pipeline.processBatch([{ body: { records: records().records.slice(0, 2) } }]);
        return store;
    }

    it('reports an enabled key version in use that expires within the window, naming its services', async () => {
        await fake.setKey({
            name: 'cmk-storage',
            versions: [{ version: V1, enabled: true, exp: Math.floor(Date.parse('2026-10-20T00:00:00Z') / 1000) }],
        });
        const log = new Log();
        const r = await checkExpiringKeys({
            store: await inventory(),
            keys: reader,
            settings: DEFAULT_CONFIG.cmk,
            nowMs: Date.parse('2026-10-06T00:00:00Z'),
            log,
        });
        expect(r).toMatchObject({ checked: 1, unreadable: 0 });
        expect(r.findings).toHaveLength(1);
        expect(r.findings[0]).toMatchObject({
            rule: 'cmk-expiring-in-use',
            severity: 'high',
            vault: 'kv-payments-prod',
            keyId: KEY_ID,
        });
        expect(r.findings[0]?.summary).toMatch(
            /expires on 2026-10-20T00:00:00.000Z \(in 14 day\(s\)\), in use by des-payments .*stpaymentsprod/,
        );
    });

    it('stays quiet when the expiry is beyond the window, and when the services have not used it lately', async () => {
        const store = await inventory();
        await fake.setKey({
            name: 'cmk-storage',
            versions: [{ version: V1, enabled: true, exp: Math.floor(Date.parse('2027-01-01T00:00:00Z') / 1000) }],
        });
        const far = await checkExpiringKeys({
            store,
            keys: reader,
            settings: DEFAULT_CONFIG.cmk,
            nowMs: Date.parse('2026-10-06T00:00:00Z'),
            log: new Log(),
        });
        expect(far).toMatchObject({ checked: 1, findings: [] });
        const idle = await checkExpiringKeys({
            store,
            keys: reader,
            settings: DEFAULT_CONFIG.cmk,
            nowMs: Date.parse('2026-10-05T00:00:00Z') + 40 * DAY_MS,
            log: new Log(),
        });
        expect(idle).toMatchObject({ checked: 0, findings: [] });
    });
});

describe('Re-enable key version (behind a signed link, off unless configured)', () => {
    const DISABLED = { name: 'cmk-storage', versions: [{ version: V1, enabled: false }] };

    async function alerted(allowReenable: boolean) {
        await fake.setKey(DISABLED);
        const clock = new TestClock(Date.parse('2026-10-05T09:20:00Z'));
        const teams = new RecordingChannel('teams');
        const config = parseResponderConfig({ cmk: { allowReenable } }, ruleIds, 'reenable-test');
        const { pipeline, alerting } = createResponder(
            config,
            { decisions: new MemoryDecisionSink(), quarantine: new MemoryQuarantineSink() },
            {
                acceptBareRecords: true,
                clock,
                keys: reader,
                alerting: {
                    channels: { teams },
                    links: new LinkTokens(LocalLinkSigner.generate(), 'https://kvr.example.net', 3_600_000, clock),
                    log: new Log(),
                    keys: reader,
                    allowReenable,
                },
            },
        );
        await pipeline.processBatch([{ body: records() }]);
        const card = teams.sent.find(
            (n) => n.incidentId !== undefined && JSON.stringify(n).includes('cmk-disabled-in-use'),
        );
        if (card === undefined || card.channel !== 'teams' || alerting === undefined) throw new Error('no card');
        const actions = (card.teams.attachments[0]?.content as { actions: { title: string; url: string }[] }).actions;
        return { alerting, card, actions };
    }

    it('re-enables the disabled key version once, through Key Vault', async () => {
        const { alerting, card, actions } = await alerted(true);
        const button = actions.find((a) => a.title === 'Re-enable key version');
        expect(button?.url).toMatch(/\/api\/incidents\/[0-9a-z]+\/reenable\?t=/);
        const token = new URL(button?.url ?? '').searchParams.get('t') ?? '';
        const done = await alerting.act(card.incidentId, 'reenable', token, { from: '198.51.100.7' });
        expect(done).toMatchObject({ kind: 'done', message: `Key version re-enabled: ${KEY_ID}` });
        expect(fake.keyBundle('cmk-storage', V1).attributes.enabled).toBe(true);
        expect((await alerting.get(card.incidentId))?.reenabled?.from).toBe('198.51.100.7');
        const again = await alerting.act(card.incidentId, 'reenable', token, {});
        expect(again.kind).toBe('already');
        expect(again.message).toMatch(/^Key version already re-enabled at /);
    });

    it('offers nothing and refuses a forged attempt when not configured', async () => {
        const { alerting, card, actions } = await alerted(false);
        expect(actions.map((a) => a.title)).not.toContain('Re-enable key version');
        const ack = new URL(actions.find((a) => a.title === 'Acknowledge')?.url ?? '').searchParams.get('t') ?? '';
        // An ack token is not a re-enable token; and even a valid one would be refused while the setting is off.
        expect((await alerting.act(card.incidentId, 'reenable', ack, {})).kind).toBe('refused');
        expect(fake.keyBundle('cmk-storage', V1).attributes.enabled).toBe(false);
    });
});
