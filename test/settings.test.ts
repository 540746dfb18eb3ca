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

describe('app settings', () => {
    it('requires a quarantine destination and a state store', () => {
        expect(problemsOf(() => loadSettings({}))).toEqual([
            'KVR_QUARANTINE_CONTAINER_URL is required (where rejected input is kept; KVR_QUARANTINE_CONNECTION_STRING for Azurite)',
            'KVR_STATE is required (rule state: https://<account>.table.core.windows.net, or a connection string for Azurite)',
        ]);
    });

    it('validates the state location', () => {
        const base = { KVR_QUARANTINE_CONNECTION_STRING: AZURITE };
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
        expect(problemsOf(() => loadSettings(env))[0]).toMatch(problem);
    });

    it('reads the config from KVR_CONFIG_PATH and reports an unreadable path', () => {
        const files: Record<string, string> = { 'kvr.json': '{"rules":{"sensitive-operation":{"enabled":false}}}' };
        const read = (p: string): string => {
            const t = files[p];
            if (t === undefined) throw new Error('ENOENT');
            return t;
        };
        const ok = loadSettings(
            { KVR_CONFIG_PATH: 'kvr.json', KVR_QUARANTINE_CONNECTION_STRING: AZURITE, KVR_STATE: AZURITE },
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
                    { KVR_CONFIG_PATH: 'missing.json', KVR_QUARANTINE_CONNECTION_STRING: AZURITE, KVR_STATE: AZURITE },
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
        });
        expect(deps.settings.managedIdentityClientId).toBe('c1');
        expect(deps.auditBatch.pipeline.stats.bodies).toBe(0);
    });

    it('fails to compose (so the host loads no trigger) when misconfigured', () => {
        expect(() => composeApp({})).toThrow(ConfigError);
    });
});
