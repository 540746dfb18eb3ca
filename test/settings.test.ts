import { composeApp } from '../shared/app/compositionRoot';
import { loadSettings } from '../shared/config/loadSettings';
import { ConfigError } from '../shared/core/errors';

function problemsOf(fn: () => unknown): readonly string[] {
    try {
        fn();
    } catch (err) {
        if (err instanceof ConfigError) return err.problems;
        throw err;
    }
    throw new Error('expected a ConfigError');
}

const AZURITE = 'UseDevelopmentStorage=true';
/** The alerting settings production requires (links). */
const ALERTING = {
    KVR_PUBLIC_URL: 'https://kvr.example.net',
    KVR_SIGNING_KEY_ID: 'https://kv-kvr.vault.azure.net/keys/ack-signing',
};

describe('app settings', () => {
    it('requires a quarantine destination and a state store', () => {
        expect(problemsOf(() => loadSettings({}))).toEqual([
            'KVR_QUARANTINE_CONTAINER_URL is required (where rejected input is kept; KVR_QUARANTINE_CONNECTION_STRING for Azurite)',
            'KVR_STATE is required (rule state: https://<account>.table.core.windows.net, or a connection string for Azurite)',
            'KVR_PUBLIC_URL is required (the base URL of acknowledge and undo links)',
            'KVR_SIGNING_KEY_ID is required (the Key Vault key that signs links, https://<vault>.vault.azure.net/keys/<name>)',
        ]);
    });

    it('validates the alerting settings', () => {
        const base = { KVR_QUARANTINE_CONNECTION_STRING: AZURITE, KVR_STATE: AZURITE };
        expect(
            problemsOf(() =>
                loadSettings({
                    ...base,
                    KVR_PUBLIC_URL: 'http://kvr.example.net',
                    KVR_SIGNING_KEY_ID: 'https://kv.vault.azure.net/keys/ack-signing/0123abcd',
                    KVR_TEAMS_WEBHOOK_URL: 'not a url',
                    KVR_MAIL_SENDER: 'Alerts <alerts@contoso.example>',
                    KVR_TRUST_EASY_AUTH: 'yes',
                }),
            ),
        ).toEqual([
            'KVR_PUBLIC_URL: must be https',
            'KVR_SIGNING_KEY_ID: expected https://<vault>.vault.azure.net/keys/<name> (no version)',
            'KVR_TEAMS_WEBHOOK_URL: not a URL',
            "KVR_MAIL_SENDER: expected the sending mailbox's address",
            'KVR_TRUST_EASY_AUTH: expected true or false',
        ]);
        expect(loadSettings({ ...base, ...ALERTING, KVR_MAIL_SENDER: 'alerts@contoso.example' }).alerting).toEqual({
            publicUrl: 'https://kvr.example.net',
            signingKey: { vaultUrl: 'https://kv-kvr.vault.azure.net', name: 'ack-signing' },
            teamsWebhookUrl: undefined,
            mailSender: 'alerts@contoso.example',
            trustEasyAuth: false,
            possessionOnlyLinks: false,
        });
    });

    it('validates the state location', () => {
        const base = { KVR_QUARANTINE_CONNECTION_STRING: AZURITE, ...ALERTING };
        expect(problemsOf(() => loadSettings({ ...base, KVR_STATE: 'http://acct.table.core.windows.net' }))).toEqual([
            'KVR_STATE: a table endpoint must be https',
        ]);
        expect(
            problemsOf(() => loadSettings({ ...base, KVR_STATE: AZURITE, KVR_STATE_TABLE: 'no-dashes' }))[0],
        ).toMatch(/^KVR_STATE_TABLE: 'no-dashes' is not a table name/);
        expect(loadSettings({ ...base, KVR_STATE: 'https://acct.table.core.windows.net/' }).state).toEqual({
            kind: 'url',
            url: 'https://acct.table.core.windows.net',
            table: 'kvrstate',
        });
    });

    it('lists every problem at once', () => {
        const problems = problemsOf(() =>
            loadSettings({
                KVR_CONFIG: '{"rules":{"nope":{}}}',
                KVR_QUARANTINE_CONTAINER_URL: 'http://acct.blob.core.windows.net/q',
                KVR_STATE: AZURITE,
                ...ALERTING,
            }),
        );
        expect(problems).toHaveLength(2);
        expect(problems[0]).toMatch(/^KVR_CONFIG: rules\.nope: unknown rule id/);
        expect(problems[1]).toBe('KVR_QUARANTINE_CONTAINER_URL: must be https');
    });

    it.each([
        [{ KVR_STATE: AZURITE, KVR_QUARANTINE_CONTAINER_URL: 'not a url' }, 'KVR_QUARANTINE_CONTAINER_URL: not a URL'],
        [
            { KVR_STATE: AZURITE, KVR_QUARANTINE_CONTAINER_URL: 'https://acct.blob.core.windows.net/' },
            /must name exactly one container/,
        ],
        [
            {
                KVR_STATE: AZURITE,
                KVR_QUARANTINE_CONTAINER_URL: 'https://a.blob.core.windows.net/q',
                KVR_QUARANTINE_CONNECTION_STRING: AZURITE,
            },
            /set only one of/,
        ],
    ])('rejects %j', (env, problem) => {
        expect(problemsOf(() => loadSettings({ ...env, ...ALERTING }))[0]).toMatch(problem);
    });

    it('reads the config from KVR_CONFIG_PATH and reports an unreadable path', () => {
        const files: Record<string, string> = { 'kvr.json': '{"rules":{"sensitive-operation":{"enabled":false}}}' };
        const read = (p: string): string => {
            const t = files[p];
            if (t === undefined) throw new Error('ENOENT');
            return t;
        };
        const ok = loadSettings(
            { KVR_CONFIG_PATH: 'kvr.json', KVR_QUARANTINE_CONNECTION_STRING: AZURITE, KVR_STATE: AZURITE, ...ALERTING },
            read,
        );
        expect(ok.config.ruleToggles.get('sensitive-operation')?.enabled).toBe(false);
        expect(ok.quarantine).toEqual({
            kind: 'connection-string',
            connectionString: AZURITE,
            container: 'kvr-quarantine',
        });
        expect(
            problemsOf(() =>
                loadSettings(
                    {
                        KVR_CONFIG_PATH: 'missing.json',
                        KVR_QUARANTINE_CONNECTION_STRING: AZURITE,
                        KVR_STATE: AZURITE,
                        ...ALERTING,
                    },
                    read,
                ),
            ),
        ).toEqual(["KVR_CONFIG_PATH: cannot read 'missing.json': ENOENT"]);
    });

    it('composes the app without I/O once the settings are valid', () => {
        const deps = composeApp({
            KVR_QUARANTINE_CONTAINER_URL: 'https://acct.blob.core.windows.net/kvr-quarantine',
            KVR_STATE: 'https://acct.table.core.windows.net',
            AZURE_CLIENT_ID: 'c1',
            ...ALERTING,
        });
        expect(deps.settings.managedIdentityClientId).toBe('c1');
        expect(deps.auditBatch.pipeline.stats.bodies).toBe(0);
    });

    it('fails to compose (so the host loads no trigger) when misconfigured', () => {
        expect(() => composeApp({})).toThrow(ConfigError);
    });
});
