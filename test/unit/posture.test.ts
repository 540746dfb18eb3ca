// The CMK posture checks (pure): each check fires on exactly the condition it names and stays quiet otherwise.
import { DEFAULT_CONFIG, parseResponderConfig } from '../../shared/config/responderConfig';
import {
    checkVaultPosture,
    type KeyFacts,
    POSTURE_CHECK_IDS,
    POSTURE_CHECKS,
    type PosturePolicy,
    type VaultKeyFacts,
    weaknessesOf,
} from '../../shared/core/cmk/posture';
import type { RuleToggle } from '../../shared/core/engine/rule';
import { ruleIds } from '../../shared/core/rules';
import { CMK_EXPIRING_IN_USE } from '../../shared/core/cmk/expiry';
import { ruleCatalogue } from '../../shared/core/rules/catalogue';

const NOW = Date.UTC(2026, 5, 1, 5, 30);
const TIME = new Date(NOW).toISOString();
const DAY = 86_400_000;
const VAULT_ID =
    '/subscriptions/6c1f4e2a-8b3d-4f5e-a1c2-9d8e7f6a5b40/resourceGroups/rg-App/providers/Microsoft.KeyVault/vaults/KV-App';
const VAULT_URL = 'https://kv-app.vault.azure.net';

const POLICY: PosturePolicy = {
    appTierTag: { name: 'app_tier', value: 'web' },
    minRsaBits: 2048,
    allowedKeyTypes: ['RSA', 'RSA-HSM', 'EC', 'EC-HSM'],
    allowedCurves: ['P-256', 'P-384', 'P-521'],
};

/** Fields to change; `undefined` removes the field (the key then lacks that fact). */
type Overrides = { [K in keyof KeyFacts]?: KeyFacts[K] | undefined };

/** A key that passes every check. */
function key(name: string, overrides: Overrides = {}): KeyFacts {
    const k: Record<string, unknown> = {
        name,
        version: `${name}-v1`,
        kty: 'RSA-HSM',
        keySize: 3072,
        enabled: true,
        expiresOn: NOW + 365 * DAY,
        tags: {},
        managed: false,
        hasRotationPolicy: true,
        keyOps: ['wrapKey', 'unwrapKey'],
    };
    for (const [field, value] of Object.entries(overrides)) {
        if (value === undefined) delete k[field];
        else k[field] = value;
    }
    return k as unknown as KeyFacts;
}

const APP_KEY = key('app-cmk', { tags: { app_tier: 'web' } });

function vault(keys: KeyFacts[], overrides: Partial<VaultKeyFacts> = {}): VaultKeyFacts {
    return { vaultUrl: VAULT_URL, vaultName: 'KV-App', vaultId: VAULT_ID, keys, ...overrides };
}

/** The fields every posture finding has. */
function finding(rule: string, severity: string, summary: string, details: Record<string, unknown>) {
    return {
        type: 'finding',
        rule,
        severity,
        vault: 'kv-app',
        vaultId: VAULT_ID.toLowerCase(),
        time: TIME,
        operations: ['PostureCheck'],
        correlationIds: [],
        count: 1,
        summary,
        vaultUrl: VAULT_URL,
        ...details,
    };
}

const check = (v: VaultKeyFacts, policy = POLICY, toggles?: ReadonlyMap<string, RuleToggle>) =>
    checkVaultPosture(v, policy, NOW, toggles);

describe('posture checks', () => {
    it('report nothing for a vault whose keys are all compliant', () => {
        expect(check(vault([APP_KEY, key('other'), key('ec', { kty: 'EC-HSM', curve: 'P-384' })]))).toEqual([]);
    });

    describe('cmk-app-tier-missing', () => {
        it('fires when no key carries the app-tier tag', () => {
            expect(check(vault([key('other', { tags: { app_tier: 'db' } })]))).toEqual([
                finding(
                    'cmk-app-tier-missing',
                    'high',
                    'No usable key in vault kv-app carries the app-tier tag app_tier=web (1 key(s) checked)',
                    { appTierTag: 'app_tier=web', keysChecked: 1, taggedKeys: [] },
                ),
            ]);
            expect(check(vault([]))).toEqual([
                finding(
                    'cmk-app-tier-missing',
                    'high',
                    'No usable key in vault kv-app carries the app-tier tag app_tier=web (0 key(s) checked)',
                    { appTierTag: 'app_tier=web', keysChecked: 0, taggedKeys: [] },
                ),
            ]);
        });

        it('fires when every tagged key is unusable, naming why', () => {
            const tags = { app_tier: 'web' };
            const keys = [
                key('disabled', { tags, enabled: false }),
                key('expired', { tags, expiresOn: NOW - 1 }),
                key('future', { tags, notBefore: NOW + DAY }),
                key('cert', { tags, managed: true }),
            ];
            expect(check(vault(keys))).toEqual([
                finding(
                    'cmk-app-tier-missing',
                    'high',
                    'No usable key in vault kv-app carries the app-tier tag app_tier=web: tagged but disabled (disabled), expired (expired), future (not yet valid), cert (certificate-backed)',
                    {
                        appTierTag: 'app_tier=web',
                        keysChecked: 4,
                        taggedKeys: [
                            { key: 'disabled', state: 'disabled' },
                            { key: 'expired', state: 'expired' },
                            { key: 'future', state: 'not yet valid' },
                            { key: 'cert', state: 'certificate-backed' },
                        ],
                    },
                ),
            ]);
        });

        it('is satisfied by one usable tagged key (tag name case-insensitive, value exact), and off without appTierTag', () => {
            expect(check(vault([key('a', { tags: { APP_TIER: 'web' } }), key('b', { enabled: false })]))).toEqual([]);
            expect(check(vault([key('a', { tags: { app_tier: 'Web' } })])).map((d) => d.rule)).toEqual([
                'cmk-app-tier-missing',
            ]);
            expect(check(vault([key('plain')]), { ...POLICY, appTierTag: undefined })).toEqual([]);
            expect(check(vault([key('plain')]), DEFAULT_CONFIG.cmk.posture)).toEqual([]);
        });
    });

    describe('cmk-weak-key', () => {
        it('fires for an RSA key under the minimum size, and not at the minimum', () => {
            const weak = key('legacy', { kty: 'RSA', keySize: 1024 });
            expect(check(vault([APP_KEY, weak, key('ok', { kty: 'RSA', keySize: 2048 })]))).toEqual([
                finding(
                    'cmk-weak-key',
                    'high',
                    'Weak key legacy in vault kv-app: RSA key of 1024 bits, under the minimum of 2048',
                    {
                        key: 'legacy',
                        keyVersion: 'legacy-v1',
                        kty: 'RSA',
                        keySize: 1024,
                        weaknesses: ['RSA key of 1024 bits, under the minimum of 2048'],
                    },
                ),
            ]);
        });

        it('fires for a key type or a curve outside the policy, listing every weakness', () => {
            const oct = key('sym', { kty: 'oct-HSM', keySize: undefined });
            const k1 = key('secp', { kty: 'EC', keySize: undefined, curve: 'P-256K' });
            expect(check(vault([APP_KEY, oct, k1]))).toEqual([
                finding(
                    'cmk-weak-key',
                    'high',
                    'Weak key sym in vault kv-app: key type oct-HSM is not allowed (allowed: RSA, RSA-HSM, EC, EC-HSM)',
                    {
                        key: 'sym',
                        keyVersion: 'sym-v1',
                        kty: 'oct-HSM',
                        weaknesses: ['key type oct-HSM is not allowed (allowed: RSA, RSA-HSM, EC, EC-HSM)'],
                    },
                ),
                finding(
                    'cmk-weak-key',
                    'high',
                    'Weak key secp in vault kv-app: curve P-256K is not allowed (allowed: P-256, P-384, P-521)',
                    {
                        key: 'secp',
                        keyVersion: 'secp-v1',
                        kty: 'EC',
                        curve: 'P-256K',
                        weaknesses: ['curve P-256K is not allowed (allowed: P-256, P-384, P-521)'],
                    },
                ),
            ]);
            const strict = { ...POLICY, minRsaBits: 4096, allowedKeyTypes: ['RSA-HSM'] };
            expect(weaknessesOf(key('k', { kty: 'RSA', keySize: 3072 }), strict)).toEqual([
                'key type RSA is not allowed (allowed: RSA-HSM)',
                'RSA key of 3072 bits, under the minimum of 4096',
            ]);
        });

        it('skips disabled keys; a key whose type could not be read is an error line, not a finding', () => {
            const disabled = key('old', { kty: 'RSA', keySize: 1024, enabled: false, expiresOn: undefined });
            const unread = key('hidden', {
                kty: undefined,
                keySize: undefined,
                version: undefined,
                unreadable: { key: '403 Forbidden: Caller is not authorized to perform action on resource.' },
            });
            expect(check(vault([APP_KEY, disabled, unread]))).toEqual([
                {
                    type: 'error',
                    rule: 'cmk-weak-key',
                    vault: 'kv-app',
                    time: TIME,
                    message:
                        'key hidden in vault kv-app: type and size unknown, the key could not be read: 403 Forbidden: Caller is not authorized to perform action on resource.',
                },
            ]);
        });
    });

    describe('cmk-no-expiry', () => {
        it('fires for an enabled key without expiry (certificate-backed ones too), not for a disabled one', () => {
            const keys = [
                APP_KEY,
                key('forever', { expiresOn: undefined }),
                key('cert', { expiresOn: undefined, managed: true, hasRotationPolicy: undefined }),
                key('off', { expiresOn: undefined, enabled: false }),
            ];
            expect(check(vault(keys))).toEqual([
                finding('cmk-no-expiry', 'medium', 'Enabled key forever in vault kv-app has no expiration date', {
                    key: 'forever',
                    keyVersion: 'forever-v1',
                    kty: 'RSA-HSM',
                    keySize: 3072,
                }),
                finding('cmk-no-expiry', 'medium', 'Enabled key cert in vault kv-app has no expiration date', {
                    key: 'cert',
                    keyVersion: 'cert-v1',
                    kty: 'RSA-HSM',
                    keySize: 3072,
                    managed: true,
                }),
            ]);
        });
    });

    describe('cmk-no-rotation-policy', () => {
        it('fires for an enabled key without a rotating policy; skips certificate-backed and disabled keys', () => {
            const keys = [
                APP_KEY,
                key('manual', { hasRotationPolicy: false }),
                key('cert', { hasRotationPolicy: undefined, managed: true }),
                key('off', { hasRotationPolicy: false, enabled: false }),
            ];
            expect(check(vault(keys))).toEqual([
                finding(
                    'cmk-no-rotation-policy',
                    'medium',
                    'Enabled key manual in vault kv-app has no rotation policy that rotates it',
                    { key: 'manual', keyVersion: 'manual-v1', kty: 'RSA-HSM', keySize: 3072 },
                ),
            ]);
        });

        it('reports a policy that could not be read as unknown (an error line), not as missing', () => {
            const keys = [
                APP_KEY,
                key('locked', {
                    hasRotationPolicy: undefined,
                    unreadable: {
                        rotationPolicy: '403 Forbidden: Caller is not authorized to perform action on resource.',
                    },
                }),
            ];
            expect(check(vault(keys))).toEqual([
                {
                    type: 'error',
                    rule: 'cmk-no-rotation-policy',
                    vault: 'kv-app',
                    time: TIME,
                    message:
                        'key locked in vault kv-app: rotation policy unknown, it could not be read: 403 Forbidden: Caller is not authorized to perform action on resource.',
                },
            ]);
        });
    });

    describe('disk-encryption-vault-shared', () => {
        const kek = key('ade-kek', { tags: { purpose: 'disk-encryption' } });
        const ade = (keys: KeyFacts[], more: Partial<VaultKeyFacts> = {}) =>
            check(vault(keys, { enabledForDiskEncryption: true, ...more }), { ...POLICY, appTierTag: undefined });

        it('fires for keys next to a tagged disk-encryption key', () => {
            expect(ade([kek, APP_KEY, key('off', { enabled: false })])).toEqual([
                finding(
                    'disk-encryption-vault-shared',
                    'medium',
                    'Vault kv-app is enabled for disk encryption and holds 1 key(s) not tagged purpose=disk-encryption: app-cmk',
                    { unrelatedKeys: ['app-cmk'], diskEncryptionKeys: ['ade-kek'] },
                ),
            ]);
        });

        it('takes a single untagged key for the KEK, and reports two or more untagged keys', () => {
            expect(ade([key('kek')])).toEqual([]);
            expect(ade([key('kek'), key('other')])).toEqual([
                finding(
                    'disk-encryption-vault-shared',
                    'medium',
                    'Vault kv-app is enabled for disk encryption and holds 2 enabled keys and none tagged purpose=disk-encryption: kek, other',
                    { unrelatedKeys: ['kek', 'other'], diskEncryptionKeys: [] },
                ),
            ]);
        });

        it('counts other secrets when they are known', () => {
            expect(ade([kek], { secretsCount: 3 })).toEqual([
                finding(
                    'disk-encryption-vault-shared',
                    'medium',
                    'Vault kv-app is enabled for disk encryption and holds 3 other secret(s)',
                    { unrelatedKeys: [], diskEncryptionKeys: ['ade-kek'], secretsCount: 3 },
                ),
            ]);
        });

        it('stays quiet for tagged keys only, disabled extras, and vaults not (or not known to be) enabled', () => {
            expect(ade([kek, key('kek2', { tags: { Purpose: 'disk-encryption' } })])).toEqual([]);
            expect(ade([kek, key('retired', { enabled: false })])).toEqual([]);
            expect(ade([key('a'), key('b')], { enabledForDiskEncryption: false })).toEqual([]);
            const unknown = check(vault([key('a'), key('b')]), { ...POLICY, appTierTag: undefined });
            expect(unknown).toEqual([]);
        });
    });

    it('names the vault by its URL when the resource id is unknown', () => {
        const [d] = check({ vaultUrl: VAULT_URL, vaultName: 'KV-App', keys: [] });
        expect(d).toMatchObject({ rule: 'cmk-app-tier-missing', vault: 'kv-app', vaultId: VAULT_URL });
    });

    it('honours per-check switches: off reports nothing, a severity override applies', () => {
        const keys = [key('forever', { expiresOn: undefined, hasRotationPolicy: false })];
        const toggles = new Map<string, RuleToggle>([
            ['cmk-app-tier-missing', { enabled: false, severity: undefined }],
            ['cmk-no-expiry', { enabled: true, severity: 'critical' }],
        ]);
        expect(
            check(vault(keys), POLICY, toggles).map((d) => [d.type === 'finding' ? d.severity : '', d.rule]),
        ).toEqual([
            ['critical', 'cmk-no-expiry'],
            ['medium', 'cmk-no-rotation-policy'],
        ]);
    });

    it('takes its policy from the config (cmk.posture)', () => {
        const config = parseResponderConfig(
            { cmk: { posture: { minRsaBits: 4096, allowedCurves: ['P-384'] } } },
            ruleIds,
            'test',
        );
        const keys = [
            key('rsa', { kty: 'RSA', keySize: 3072 }),
            key('ec', { kty: 'EC', keySize: undefined, curve: 'P-256' }),
        ];
        expect(check(vault(keys), config.cmk.posture).map((d) => (d.type === 'finding' ? d.weaknesses : d))).toEqual([
            ['RSA key of 3072 bits, under the minimum of 4096'],
            ['curve P-256 is not allowed (allowed: P-384)'],
        ]);
    });
});

describe('posture check metadata', () => {
    it('is complete, with ids distinct from the detection rules', () => {
        expect(POSTURE_CHECK_IDS).toEqual([
            'cmk-app-tier-missing',
            'cmk-weak-key',
            'cmk-no-expiry',
            'cmk-no-rotation-policy',
            'disk-encryption-vault-shared',
        ]);
        expect(POSTURE_CHECK_IDS.filter((id) => ruleIds.includes(id))).toEqual([]);
        expect(POSTURE_CHECKS.map((c) => c.severity)).toEqual(['high', 'high', 'medium', 'medium', 'medium']);
        for (const m of POSTURE_CHECKS) {
            expect({ id: m.id, ok: m.title.length > 0 && m.description.length > 40 }).toEqual({ id: m.id, ok: true });
            expect(m.runbook.length).toBeGreaterThanOrEqual(2);
            expect(m.falsePositives.length).toBeGreaterThanOrEqual(1);
            expect(m.references.length).toBeGreaterThanOrEqual(1);
            expect(m.references.every((x) => x.startsWith('https://'))).toBe(true);
            expect(m.mitre.every((t) => /^T\d{4}(\.\d{3})?$/.test(t))).toBe(true);
        }
        expect(POSTURE_CHECKS[0]?.references[0]).toContain('KeyVault/app-tier-customer-master-key');
    });

    it('is rendered in the catalogue after every detection rule', () => {
        const md = ruleCatalogue();
        const section = md.indexOf('\n# CMK timer checks\n');
        expect(section).toBeGreaterThan(0);
        for (const id of ruleIds) expect(md.indexOf(`\n## ${id}\n`)).toBeLessThan(section);
        for (const m of [CMK_EXPIRING_IN_USE, ...POSTURE_CHECKS]) {
            expect(md.indexOf(`\n## ${m.id}\n`)).toBeGreaterThan(section);
            expect(md).toContain(`| [\`${m.id}\`](#${m.id}) | ${m.title} | ${m.severity} |`);
        }
        expect(md).toContain(
            '| [`cmk-weak-key`](#cmk-weak-key) | Key Vault key weaker than the key policy | high | — |',
        );
    });
});
