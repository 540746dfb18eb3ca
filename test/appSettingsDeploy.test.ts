/**
 * App settings as the deployed platform hands them over (docs/deploy-packaging.md): unresolved Key Vault references
 * and the responder's own identity set by the templates.
 */
import { MemoryDecisionSink, MemoryQuarantineSink } from '../shared/adapters/memorySinks';
import { composeApp } from '../shared/app/compositionRoot';
import { createPipeline } from '../shared/app/createPipeline';
import { isUnresolvedKeyVaultReference, loadSettings } from '../shared/config/loadSettings';
import { ConfigError } from '../shared/core/errors';
import { fixtureBody } from './support/fixtures';

const BASE = {
    KVR_QUARANTINE_CONTAINER_URL: 'https://acct.blob.core.windows.net/kvr-quarantine',
    KVR_STATE: 'https://acct.table.core.windows.net',
    KVR_PUBLIC_URL: 'https://kvr.example.net',
    KVR_SIGNING_KEY_ID: 'https://kv-kvr.vault.azure.net/keys/ack-signing',
};
// What the platform passes on when it cannot resolve a reference (the app identity may not read the secret).
const UNRESOLVED = '@Microsoft.KeyVault(SecretUri=https://kv-kvr.vault.azure.net/secrets/teams-webhook/)';
const UNRESOLVED_BY_NAME = '@Microsoft.KeyVault(VaultName=kv-kvr;SecretName=mail-sender)';

function problemsOf(fn: () => unknown): readonly string[] {
    try {
        fn();
    } catch (err) {
        if (err instanceof ConfigError) return err.problems;
        throw err;
    }
    throw new Error('expected a ConfigError');
}

describe('an unresolved Key Vault reference', () => {
    it('is recognised in both reference forms, and a real value is not', () => {
        expect(isUnresolvedKeyVaultReference(UNRESOLVED)).toBe(true);
        expect(isUnresolvedKeyVaultReference(UNRESOLVED_BY_NAME)).toBe(true);
        expect(isUnresolvedKeyVaultReference('https://prod.westeurope.logic.azure.com/workflows/x')).toBe(false);
        expect(isUnresolvedKeyVaultReference(undefined)).toBe(false);
    });

    it('in an optional channel turns that channel off and keeps the app loading, with a listed problem', () => {
        const settings = loadSettings({
            ...BASE,
            KVR_TEAMS_WEBHOOK_URL: UNRESOLVED,
            KVR_MAIL_SENDER: UNRESOLVED_BY_NAME,
        });
        expect(settings.alerting.teamsWebhookUrl).toBeUndefined();
        expect(settings.alerting.mailSender).toBeUndefined();
        expect(settings.configProblems.map((p) => [p.setting, p.effect])).toEqual([
            ['KVR_TEAMS_WEBHOOK_URL', 'Teams notices are off'],
            ['KVR_MAIL_SENDER', 'email notices are off'],
        ]);
        expect(settings.configProblems[0]?.problem).toMatch(/Key Vault reference did not resolve.*Secrets User/);
    });

    it('composes the app, logs an error naming the setting and exposes the problem', () => {
        const written: string[] = [];
        const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
            written.push(String(chunk));
            return true;
        });
        let deps: ReturnType<typeof composeApp>;
        try {
            deps = composeApp({ ...BASE, KVR_TEAMS_WEBHOOK_URL: UNRESOLVED });
        } finally {
            spy.mockRestore();
        }
        expect(deps.configProblems.map((p) => p.setting)).toEqual(['KVR_TEAMS_WEBHOOK_URL']);
        const lines = written.map((w) => JSON.parse(w) as Record<string, string>);
        expect(lines).toContainEqual(
            expect.objectContaining({ level: 'error', msg: 'kvr.config-problem', setting: 'KVR_TEAMS_WEBHOOK_URL' }),
        );
        expect(deps.auditBatch.pipeline.stats.bodies).toBe(0);
    });

    it('in a required setting stops the app with one problem naming the reference (not also "is required")', () => {
        expect(problemsOf(() => loadSettings({ ...BASE, KVR_SIGNING_KEY_ID: UNRESOLVED }))).toEqual([
            expect.stringMatching(/^KVR_SIGNING_KEY_ID: the Key Vault reference did not resolve/),
        ]);
    });

    it('leaves a valid channel setting alone', () => {
        const s = loadSettings({ ...BASE, KVR_TEAMS_WEBHOOK_URL: 'https://prod.example.net/workflows/x' });
        expect(s.alerting.teamsWebhookUrl).toBe('https://prod.example.net/workflows/x');
        expect(s.configProblems).toEqual([]);
    });
});

describe("the responder's own identity (KVR_RESPONDER_PRINCIPAL_ID, AZURE_CLIENT_ID)", () => {
    const PRINCIPAL = '5E0F1C2D-3B4A-4C5D-8E6F-7A8B9C0D1E2F';
    const CLIENT = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const CONFIG_ID = '11111111-2222-4333-8444-555555555555';

    it('is merged into responderIdentities, next to the ones the config lists', () => {
        const s = loadSettings({
            ...BASE,
            KVR_CONFIG: JSON.stringify({ responderIdentities: [CONFIG_ID] }),
            KVR_RESPONDER_PRINCIPAL_ID: PRINCIPAL,
            AZURE_CLIENT_ID: CLIENT,
        });
        expect([...s.config.detection.responderIdentities].sort()).toEqual(
            [CONFIG_ID, PRINCIPAL.toLowerCase(), CLIENT].sort(),
        );
    });

    it('must be a GUID', () => {
        expect(problemsOf(() => loadSettings({ ...BASE, KVR_RESPONDER_PRINCIPAL_ID: 'kvr-identity' }))).toEqual([
            "KVR_RESPONDER_PRINCIPAL_ID: expected the object id (a GUID) of the app's identity",
        ]);
    });

    /** A firewall opened on a vault whose policy denies public access, by `claim`. */
    async function findingsFor(env: Record<string, string>, claim: Record<string, string>): Promise<string[]> {
        const settings = loadSettings({ ...BASE, ...env });
        const decisions = new MemoryDecisionSink();
        const pipeline = createPipeline(
            settings.config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: false },
        );
        const body = fixtureBody('vault-patch-firewall-allow.json');
        const record = body.records[0] as { identity: { claim: Record<string, string> } };
        record.identity.claim = claim;
        await pipeline.processBatch([{ body }]);
        return decisions.decisions.filter((d) => d.type === 'finding').map((d) => (d as { rule: string }).rule);
    }

    it("excludes the app's own changes (loop guard) without any config edit", async () => {
        const byOid = { 'http://schemas.microsoft.com/identity/claims/objectidentifier': PRINCIPAL.toLowerCase() };
        const byAppId = { appid: CLIENT };
        expect(await findingsFor({}, byOid)).toContain('firewall-opened');
        expect(await findingsFor({ KVR_RESPONDER_PRINCIPAL_ID: PRINCIPAL }, byOid)).toEqual([]);
        expect(await findingsFor({}, byAppId)).toContain('firewall-opened');
        expect(await findingsFor({ AZURE_CLIENT_ID: CLIENT }, byAppId)).toEqual([]);
    });
});

describe('new-app-access and the responder reading the vaults it protects', () => {
    const CLIENT = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const PRINCIPAL = '5e0f1c2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f';

    async function newAppFindings(env: Record<string, string>): Promise<number> {
        const settings = loadSettings({ ...BASE, KVR_CONFIG: '{"baseline":{"learningDays":1}}', ...env });
        const decisions = new MemoryDecisionSink();
        const pipeline = createPipeline(
            settings.config,
            { decisions, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: false },
        );
        // A known app on day 1 (the vault's learning period starts), then the responder's identity on day 3.
        const first = fixtureBody('secret-get-success.json');
        const own = fixtureBody('secret-get-success.json');
        const firstRecord = first.records[0] as { time: string; identity: { claim: Record<string, string> } };
        const ownRecord = own.records[0] as { time: string; identity: { claim: Record<string, string> } };
        firstRecord.time = '2026-10-05T09:00:00Z';
        ownRecord.time = '2026-10-07T09:00:00Z';
        firstRecord.identity.claim = {
            oid: 'c0c0c0c0-0000-4000-8000-0000000000a1',
            appid: 'a9a9a9a9-0000-4000-8000-0000000000a2',
        };
        ownRecord.identity.claim = { oid: PRINCIPAL, appid: CLIENT };
        await pipeline.processBatch([{ body: first }]);
        await pipeline.processBatch([{ body: own }]);
        return decisions.decisions.filter((d) => d.type === 'finding' && d.rule === 'new-app-access').length;
    }

    it('reports an unknown app, but not the responder once its identity is set', async () => {
        expect(await newAppFindings({})).toBe(1);
        expect(await newAppFindings({ KVR_RESPONDER_PRINCIPAL_ID: PRINCIPAL })).toBe(0);
        expect(await newAppFindings({ AZURE_CLIENT_ID: CLIENT })).toBe(0);
    });
});
