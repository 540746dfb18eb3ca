// CMK posture end to end: the real @azure/keyvault-keys KeyClient against the local Key Vault keys fake, `kvr posture`
// in-process, and the timer handler with its real clients.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeyClient } from '@azure/keyvault-keys';
import { readVaultKeys } from '../../shared/adapters/keyVaultKeys';
import { loadSettings } from '../../shared/config/loadSettings';
import { composeCmkPosture, handleCmkPosture, postureTargetOf } from '../../shared/app/handlers/handleCmkPosture';
import { parseResponderConfig } from '../../shared/config/responderConfig';
import { checkVaultPosture } from '../../shared/core/cmk/posture';
import type { Decision } from '../../shared/core/decisions';
import { ConfigError } from '../../shared/core/errors';
import type { VaultSnapshot } from '../../shared/core/remediation/types';
import { ruleIds } from '../../shared/core/rules';
import {
    type KeyVaultKeysFake,
    keysClientOptionsFor,
    startKeyVaultKeysFake,
} from '../../shared/simulation/keyVaultKeysFake';
import { StubTokenCredential } from '../fakes/armClient';
import { decisionsOf, REPO, runKvr } from '../support/cli';
import { makeContext } from '../support/context';
import { tempDir } from '../support/tempDirs';

const NOW_S = Math.floor(Date.now() / 1000);
const DAY_S = 86_400;
const ROTATE = { lifetimeActions: [{ trigger: { timeAfterCreate: 'P90D' }, action: { type: 'Rotate' } }] };

const clientFor = (fake: KeyVaultKeysFake) =>
    new KeyClient(fake.vaultUrl, new StubTokenCredential(fake.token), keysClientOptionsFor(fake));

const statuses = (fake: KeyVaultKeysFake, path: string) =>
    fake.requests.filter((r) => r.path === path).map((r) => r.status);

describe('readVaultKeys through the real KeyClient', () => {
    let fake: KeyVaultKeysFake;
    afterEach(async () => {
        await fake.close();
    });

    it('reads every page, enabled and disabled keys, their type, size, curve, dates, tags and rotation', async () => {
        fake = await startKeyVaultKeysFake({
            pageSize: 2,
            keys: [
                {
                    name: 'a-rsa',
                    keySize: 3072,
                    exp: NOW_S + 30 * DAY_S,
                    tags: { app_tier: 'web' },
                    rotationPolicy: ROTATE,
                },
                { name: 'b-ec', kty: 'EC-HSM', curve: 'P-384', nbf: NOW_S - DAY_S, keyOps: ['sign', 'verify'] },
                { name: 'c-off', enabled: false },
                {
                    name: 'd-notify',
                    rotationPolicy: {
                        lifetimeActions: [{ trigger: { timeBeforeExpiry: 'P30D' }, action: { type: 'Notify' } }],
                        expiryTime: 'P1Y',
                    },
                },
                { name: 'e-rotated', versions: [{ enabled: false }, { tags: { gen: '2' } }], rotationPolicy: ROTATE },
            ],
        });
        const facts = await readVaultKeys(clientFor(fake), 'kv-test');
        const current = (name: string) => fake.keyBundle(name).key.kid.split('/').pop();
        expect(facts).toEqual([
            {
                name: 'a-rsa',
                version: current('a-rsa'),
                kty: 'RSA',
                keySize: 3072,
                enabled: true,
                expiresOn: (NOW_S + 30 * DAY_S) * 1000,
                tags: { app_tier: 'web' },
                managed: false,
                hasRotationPolicy: true,
                keyOps: ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'],
            },
            {
                name: 'b-ec',
                version: current('b-ec'),
                kty: 'EC-HSM',
                curve: 'P-384',
                enabled: true,
                notBefore: (NOW_S - DAY_S) * 1000,
                tags: {},
                managed: false,
                hasRotationPolicy: false,
                keyOps: ['sign', 'verify'],
            },
            expect.objectContaining({ name: 'c-off', enabled: false, kty: 'RSA', keySize: 2048 }),
            // Notify-only with an expiryTime rotates nothing.
            expect.objectContaining({ name: 'd-notify', hasRotationPolicy: false }),
            // The current (last) version: enabled, with its own tags.
            expect.objectContaining({
                name: 'e-rotated',
                version: current('e-rotated'),
                enabled: true,
                tags: { gen: '2' },
                hasRotationPolicy: true,
            }),
        ]);
        // Three list pages of two (the SDK follows nextLink), one getKey and one policy read per key.
        expect(statuses(fake, '/keys').filter((s) => s === 200)).toHaveLength(3);
        expect(fake.requests.filter((r) => /^\/keys\/[^/]+\/$/.test(r.path) && r.status === 200)).toHaveLength(5);
        expect(fake.requests.filter((r) => r.path.endsWith('/rotationpolicy') && r.status === 200)).toHaveLength(5);
    });

    it('does not read the rotation policy of a certificate-backed key', async () => {
        fake = await startKeyVaultKeysFake({ keys: [{ name: 'tls-cert', managed: true, exp: NOW_S + DAY_S }] });
        const [k] = await readVaultKeys(clientFor(fake), 'kv-test');
        expect(k).toMatchObject({ name: 'tls-cert', managed: true, hasRotationPolicy: undefined });
        expect(k?.unreadable).toBeUndefined();
        expect(fake.requests.some((r) => r.path.includes('rotationpolicy'))).toBe(false);
    });

    it('a 403 on the rotation policy makes it unknown and reported, not "no policy"', async () => {
        fake = await startKeyVaultKeysFake({ keys: [{ name: 'locked' }, { name: 'open', rotationPolicy: ROTATE }] });
        fake.inject({ status: 403, match: { method: 'GET', pathIncludes: '/keys/locked/rotationpolicy' } });
        const facts = await readVaultKeys(clientFor(fake), 'kv-test');
        expect(facts.map((k) => [k.name, k.hasRotationPolicy])).toEqual([
            ['locked', undefined],
            ['open', true],
        ]);
        expect(facts[0]?.unreadable).toEqual({
            rotationPolicy: '403 Forbidden: Caller is not authorized to perform action on resource.',
        });
        expect(statuses(fake, '/keys/locked/rotationpolicy')).toEqual([403]);

        const decisions = checkVaultPosture(
            { vaultUrl: 'https://kv-test.vault.azure.net', vaultName: 'kv-test', keys: facts },
            { appTierTag: undefined, minRsaBits: 2048, allowedKeyTypes: ['RSA'], allowedCurves: [] },
            Date.now(),
        );
        // 'locked' has no expiry (a finding) and an unknown policy (an error line); 'open' only lacks an expiry.
        expect(decisions.map((d) => [d.type, d.rule, d.type === 'error' ? d.message : d.summary])).toEqual([
            ['finding', 'cmk-no-expiry', 'Enabled key locked in vault kv-test has no expiration date'],
            [
                'error',
                'cmk-no-rotation-policy',
                'key locked in vault kv-test: rotation policy unknown, it could not be read: 403 Forbidden: Caller is not authorized to perform action on resource.',
            ],
            ['finding', 'cmk-no-expiry', 'Enabled key open in vault kv-test has no expiration date'],
        ]);
    });

    it('a 403 on getKey leaves the type unknown; a 404 (deleted since listed) leaves the key out', async () => {
        fake = await startKeyVaultKeysFake({ keys: [{ name: 'gone' }, { name: 'hidden', exp: NOW_S + DAY_S }] });
        fake.inject({ status: 403, match: { method: 'GET', pathIncludes: '/keys/hidden/' }, times: 1 });
        // The key disappears between the list and its read.
        const client = clientFor(fake);
        const listed = fake.requests.length;
        const original = client.getKey.bind(client);
        client.getKey = async (name, options) => {
            if (name === 'gone') fake.removeKey('gone');
            return original(name, options);
        };
        const facts = await readVaultKeys(client, 'kv-test');
        expect(facts).toEqual([
            {
                name: 'hidden',
                version: undefined,
                kty: undefined,
                enabled: true,
                expiresOn: (NOW_S + DAY_S) * 1000,
                tags: {},
                managed: false,
                hasRotationPolicy: false,
                keyOps: [],
                unreadable: { key: '403 Forbidden: Caller is not authorized to perform action on resource.' },
            },
        ]);
        expect(fake.requests.slice(listed).some((r) => r.path === '/keys/gone/' && r.status === 404)).toBe(true);
    });

    it('throws, naming the vault, when the list fails', async () => {
        fake = await startKeyVaultKeysFake({ keys: [{ name: 'k' }] });
        fake.inject({ status: 403, match: { method: 'GET', pathIncludes: '/keys' }, times: 5 });
        await expect(readVaultKeys(clientFor(fake), 'kv-test')).rejects.toThrow(
            // The SDK's pager reports the status with its own text, not the service's message.
            'cannot list the keys of vault kv-test: 403 Forbidden: Pagination failed with unexpected statusCode 403',
        );
    });

    it('throws when a read fails for another reason than 403/404 (after the client retries)', async () => {
        fake = await startKeyVaultKeysFake({ keys: [{ name: 'k' }] });
        fake.inject({ status: 500, match: { pathIncludes: '/keys/k/rotationpolicy' }, times: 10 });
        await expect(readVaultKeys(clientFor(fake), 'kv-test')).rejects.toThrow(
            'cannot read the keys of vault kv-test: 500 InternalServerError',
        );
        expect(statuses(fake, '/keys/k/rotationpolicy')).toEqual([500, 500, 500, 500]);
    });
});

describe('kvr posture', () => {
    const dir = tempDir('kvr-posture-');
    const write = (name: string, value: unknown): string => {
        const path = join(dir, name);
        writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
        return path;
    };
    const sample = (f: string) => join(REPO, 'samples', f);
    const inventory = JSON.parse(readFileSync(sample('vaults.json'), 'utf8')) as {
        id: string;
        name: string;
        properties: Record<string, unknown>;
    }[];

    it('reports every listed condition for the shipped sample, as decision-log lines', async () => {
        const run = await runKvr(
            'posture',
            '--vaults',
            sample('vaults.json'),
            '--keys',
            sample('keys.json'),
            '--config',
            sample('posture-config.json'),
        );
        expect(run.code).toBe(0);
        const decisions = decisionsOf(run.stdout);
        expect(decisions.map((d) => [d.rule, d.vault, d.key ?? d.unrelatedKeys ?? d.taggedKeys])).toEqual([
            ['cmk-weak-key', 'kv-payments-prod', 'payments-legacy'],
            ['cmk-no-expiry', 'kv-payments-prod', 'payments-legacy'],
            ['cmk-no-rotation-policy', 'kv-payments-prod', 'payments-legacy'],
            ['cmk-app-tier-missing', 'kv-hr-prod', [{ key: 'hr-app-cmk', state: 'disabled' }]],
            ['cmk-weak-key', 'kv-hr-prod', 'hr-signing'],
            ['cmk-no-rotation-policy', 'kv-cmk-prod', 'storage-cmk'],
            ['disk-encryption-vault-shared', 'kv-cmk-prod', ['storage-cmk']],
        ]);
        const ids = new Map(inventory.map((v) => [v.name, v.id.toLowerCase()]));
        for (const d of decisions) {
            expect(d).toMatchObject({
                type: 'finding',
                vaultId: ids.get(String(d.vault)),
                vaultUrl: `https://${String(d.vault)}.vault.azure.net`,
                operations: ['PostureCheck'],
                correlationIds: [],
                count: 1,
            });
            expect(Math.abs(Date.parse(String(d.time)) - Date.now())).toBeLessThan(60_000);
        }
        expect(decisions[0]).toMatchObject({ kty: 'RSA', keySize: 2048, severity: 'high' });
        expect(decisions[4]).toMatchObject({ kty: 'EC', curve: 'P-256' });
        expect(run.stderr).toContain('posture: 3 vault(s), 6 key(s) read; 7 finding(s), 0 fact(s) unknown');
        expect(run.stderr).toContain(
            '[medium] disk-encryption-vault-shared: Vault kv-cmk-prod is enabled for disk encryption and holds 1 key(s) not tagged purpose=disk-encryption: storage-cmk',
        );
    });

    it('reads the keys of a temporary inventory; default policy; a JSON summary with --json', async () => {
        const vaults = write('vaults.json', [
            { ...inventory[3], properties: { ...inventory[3]?.properties, enabledForDiskEncryption: false } },
            inventory[5],
        ]);
        const keys = write('keys.json', {
            'KV-CMK-PROD': [
                { name: 'one', exp: '2030-01-01T00:00:00Z', rotationPolicy: ROTATE },
                { name: 'two', exp: NOW_S + DAY_S, rotationPolicy: ROTATE },
            ],
            'kv-apps-dev': [
                { name: 'dev-key', rotationPolicy: ROTATE },
                { name: 'old', enabled: false },
            ],
        });
        const run = await runKvr('posture', '--vaults', vaults, '--keys', keys, '--json');
        expect(run.code).toBe(0);
        // Disk encryption is off here, so two keys are fine; only the dev key lacks an expiry.
        expect(decisionsOf(run.stdout).map((d) => [d.rule, d.vault, d.key])).toEqual([
            ['cmk-no-expiry', 'kv-apps-dev', 'dev-key'],
        ]);
        expect(JSON.parse(run.stderr)).toEqual({
            vaults: 2,
            keys: 4,
            findings: { 'cmk-no-expiry': 1 },
            unknown: 0,
            appTierChecked: false,
        });
    });

    it('exits 2 listing every problem of a bad key inventory', async () => {
        const keys = write('bad-keys.json', {
            'kv-nowhere': [{ name: 'x' }],
            'kv-hr-prod': [
                { name: 'ok' },
                { name: 'bad name' },
                { name: 'small', keySize: 1024 },
                { name: 'rsa-curve', curve: 'P-256' },
                { name: 'OK' },
                { name: 'typo', expires: 5 },
                { name: 'when', exp: 'tomorrow' },
            ],
            'kv-cmk-prod': 'none',
        });
        const run = await runKvr('posture', '--vaults', sample('vaults.json'), '--keys', keys);
        expect(run.code).toBe(2);
        expect(run.stdout).toBe('');
        for (const problem of [
            'kv-hr-prod[1].name: expected 1-127 letters, digits and -',
            'kv-hr-prod[2].keySize: expected 2048, 3072 or 4096',
            'kv-hr-prod[3].curve: curve is for EC keys (set kty EC or EC-HSM)',
            "kv-hr-prod[4].name: key 'OK' is listed twice",
            'kv-hr-prod[5]: Unrecognized key: "expires"',
            'kv-hr-prod[6].exp: expected epoch seconds or an ISO date-time',
            'kv-cmk-prod: Invalid input: expected array, received string',
            'kv-nowhere: not a vault of the vault inventory (known: kv-payments-prod, kv-hr-prod',
        ])
            expect(run.stderr).toContain(problem);
        expect(run.stderr.startsWith(`kvr: ${keys}: `)).toBe(true);
    });

    it('exits 2 on a bad vault inventory, a missing option or an unreadable file', async () => {
        const notArray = await runKvr(
            'posture',
            '--vaults',
            write('v.json', { vaults: [] }),
            '--keys',
            sample('keys.json'),
        );
        expect(notArray).toMatchObject({ code: 2, stdout: '' });
        expect(notArray.stderr).toContain('expected a JSON array of vaults');

        const invalid = await runKvr(
            'posture',
            '--vaults',
            write('v2.json', [{ name: 'kv-x' }]),
            '--keys',
            sample('keys.json'),
        );
        expect(invalid.code).toBe(2);
        expect(invalid.stderr).toContain('v2.json');

        const noKeys = await runKvr('posture', '--vaults', sample('vaults.json'));
        expect(noKeys).toMatchObject({
            code: 2,
            stderr: "kvr: posture needs --keys <key-inventory.json>; see 'kvr posture --help'\n",
        });

        const missing = await runKvr('posture', '--vaults', sample('vaults.json'), '--keys', join(dir, 'nope.json'));
        expect(missing.code).toBe(2);
        expect(missing.stderr).toContain("cannot read key inventory '");

        const notObject = await runKvr('posture', '--vaults', sample('vaults.json'), '--keys', write('k.json', []));
        expect(notObject.code).toBe(2);
        expect(notObject.stderr).toContain('expected a JSON object { "<vault name>": [keys] }');
    });
});

describe('the cmkPosture timer handler', () => {
    const SUB = '6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40';
    const idOf = (name: string) =>
        `/subscriptions/${SUB}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/${name}`;
    const ENV = {
        KVR_QUARANTINE_CONTAINER_URL: 'https://acct.blob.core.windows.net/kvr-quarantine',
        KVR_STATE: 'https://acct.table.core.windows.net',
        KVR_PUBLIC_URL: 'https://kvr.example.net',
        KVR_SIGNING_KEY_ID: 'https://kv-kvr.vault.azure.net/keys/ack-signing',
    };
    let fakes: KeyVaultKeysFake[] = [];
    afterEach(async () => {
        await Promise.all(fakes.map((f) => f.close()));
        fakes = [];
    });

    it('parses vault URLs and resource ids', () => {
        expect(postureTargetOf('https://kv-a.vault.azure.net/')).toEqual({
            vaultUrl: 'https://kv-a.vault.azure.net',
            vaultName: 'kv-a',
        });
        expect(postureTargetOf(idOf('KV-B'))).toEqual({
            vaultUrl: 'https://kv-b.vault.azure.net',
            vaultName: 'kv-b',
            ref: {
                subscriptionId: SUB,
                resourceGroup: 'rg-keys',
                name: 'kv-b',
                resourceId: idOf('KV-B').toLowerCase(),
            },
        });
        expect(() => postureTargetOf('https://kv-a.vault.azure.net/keys/x')).toThrow('with no path');
        expect(() => postureTargetOf('kv-a')).toThrow('neither a vault URL nor a vault resource id');
    });

    it('composeCmkPosture validates the vault list at load, naming every bad entry', () => {
        const config = { cmk: { posture: { vaults: ['kv-a', idOf('kv-b'), 'http://kv-c.vault.azure.net'] } } };
        let err: unknown;
        try {
            composeCmkPosture(loadSettings({ ...ENV, KVR_CONFIG: JSON.stringify(config) }), {
                sink: { write: () => Promise.resolve() },
            });
        } catch (e) {
            err = e;
        }
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).problems).toEqual([
            "cmk.posture.vaults.0: 'kv-a' is neither a vault URL nor a vault resource id",
            "cmk.posture.vaults.2: 'http://kv-c.vault.azure.net': expected https://<vault>.vault.azure.net with no path",
        ]);

        const ok = composeCmkPosture(
            loadSettings({
                ...ENV,
                KVR_CONFIG: JSON.stringify({
                    cmk: { posture: { vaults: [idOf('kv-b')], appTierTag: { name: 'tier', value: 'app' } } },
                }),
            }),
            { sink: { write: () => Promise.resolve() } },
        );
        expect(ok.targets.map((t) => t.vaultName)).toEqual(['kv-b']);
        expect(ok.policy.appTierTag).toEqual({ name: 'tier', value: 'app' });
        expect(ok.keyClientFor('https://kv-b.vault.azure.net')).toBe(ok.keyClientFor('https://kv-b.vault.azure.net'));
    });

    it('reads each vault through the real KeyClient, takes the disk-encryption flag from ARM, and writes to the sink', async () => {
        const shared = await startKeyVaultKeysFake({
            keys: [
                {
                    name: 'ade-kek',
                    exp: NOW_S + 90 * DAY_S,
                    tags: { purpose: 'disk-encryption' },
                    rotationPolicy: ROTATE,
                },
                { name: 'app-cmk', exp: NOW_S + 90 * DAY_S, tags: { tier: 'app' }, rotationPolicy: ROTATE },
            ],
        });
        const broken = await startKeyVaultKeysFake({ keys: [{ name: 'k' }] });
        const plain = await startKeyVaultKeysFake({ keys: [{ name: 'tier-key', tags: { tier: 'app' } }] });
        fakes = [shared, broken, plain];
        broken.inject({ status: 503, times: 10 });
        // Vault URL → fake, as ARM's vaultUri (resource-id entries) or the configured URL says.
        const byUrl = new Map([
            ['https://kv-ade.vault.azure.net', shared],
            ['https://kv-broken.vault.azure.net', broken],
            ['https://kv-plain.vault.azure.net', plain],
        ]);
        const armReads: string[] = [];
        const written: Decision[][] = [];
        const config = parseResponderConfig(
            { cmk: { posture: { appTierTag: { name: 'tier', value: 'app' } } } },
            ruleIds,
            'test',
        );
        const { context, logs } = makeContext();
        const NOW = Date.now();
        const result = await handleCmkPosture(undefined, context, {
            targets: [idOf('kv-ade'), idOf('kv-broken'), 'https://kv-plain.vault.azure.net'].map(postureTargetOf),
            policy: config.cmk.posture,
            toggles: config.ruleToggles,
            keyClientFor: (url) => {
                const fake = byUrl.get(url);
                if (fake === undefined) throw new Error(`no fake for ${url}`);
                return clientFor(fake);
            },
            admin: {
                get: (ref) => {
                    armReads.push(ref.name);
                    return Promise.resolve({
                        id: ref.resourceId,
                        name: ref.name,
                        properties: {
                            tenantId: 't',
                            vaultUri: `https://${ref.name}.vault.azure.net/`,
                            ...(ref.name === 'kv-ade' ? { enabledForDiskEncryption: true } : {}),
                        },
                    } as VaultSnapshot);
                },
            },
            sink: {
                write: (d) => {
                    written.push([...d]);
                    return Promise.resolve();
                },
            },
            now: () => NOW,
        });

        expect(armReads).toEqual(['kv-ade', 'kv-broken']);
        expect(result).toEqual({ vaults: 3, failed: 1, keys: 3, findings: 3, unknown: 0 });
        expect(
            written.flat().map((d) => [d.type === 'finding' ? d.rule : d.type, d.type === 'finding' ? d.vaultId : '']),
        ).toEqual([
            ['disk-encryption-vault-shared', idOf('kv-ade').toLowerCase()],
            ['cmk-no-expiry', 'https://kv-plain.vault.azure.net'],
            ['cmk-no-rotation-policy', 'https://kv-plain.vault.azure.net'],
        ]);
        expect(written.flat()[0]).toMatchObject({
            time: new Date(NOW).toISOString(),
            vaultUrl: 'https://kv-ade.vault.azure.net',
            unrelatedKeys: ['app-cmk'],
        });
        // The failing vault is logged and did not stop the third one.
        expect(logs.find((l) => l.entry.msg === 'kvr.cmk-posture-vault-failed')?.entry).toMatchObject({
            vault: 'kv-broken',
            error: expect.stringContaining('cannot list the keys of vault kv-broken: 503'),
        });
        expect(logs.filter((l) => l.entry.msg === 'kvr.finding')).toHaveLength(3);
        expect(logs.at(-1)?.entry).toMatchObject({ msg: 'kvr.cmk-posture', vaults: 3, failed: 1, findings: 3 });
    });

    it('counts a vault whose findings the sink refuses as failed, with a hint for URL entries', async () => {
        const fake = await startKeyVaultKeysFake({ keys: [{ name: 'k' }] });
        fakes = [fake];
        const { context, logs } = makeContext();
        const result = await handleCmkPosture(undefined, context, {
            targets: [postureTargetOf('https://kv-url.vault.azure.net')],
            policy: parseResponderConfig({}, ruleIds, 'test').cmk.posture,
            toggles: new Map(),
            keyClientFor: () => clientFor(fake),
            sink: { write: () => Promise.reject(new Error('not a vault resource id: https://kv-url.vault.azure.net')) },
            now: Date.now,
        });
        expect(result).toMatchObject({ vaults: 1, failed: 1, findings: 2 });
        expect(logs.find((l) => l.entry.msg === 'kvr.cmk-posture-vault-failed')?.entry).toMatchObject({
            vault: 'kv-url',
            hint: 'list the vault by its resource id in cmk.posture.vaults',
        });
    });
});
