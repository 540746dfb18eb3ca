// The app-tier CMK posture checks (daily timer and `kvr posture`): pure functions from what a vault's keys look like
// to findings. Reading the keys is the adapter's job (shared/adapters/keyVaultKeys.ts).
import type { ErrorDecision, FindingDecision } from '../decisions';
import type { RuleMeta, RuleToggle } from '../engine/rule';

/**
 * The current version of one key, as read from the vault. Times are epoch milliseconds.
 *
 * `hasRotationPolicy` is true when the key's rotation policy has a `Rotate` lifetime action (Key Vault then creates
 * new versions on its own). A policy with only `Notify` actions, or only an `expiryTime` (the expiry given to
 * versions created by a rotation), rotates nothing and counts as no policy: that is also what the service answers
 * for a key that never had a policy (the default `Notify 30 days before expiry`). Undefined when the policy was not
 * read: a certificate-backed key (`managed`), or a read that was refused (`unreadable.rotationPolicy` says why).
 */
export interface KeyFacts {
    readonly name: string;
    /** The current version; undefined when the key itself could not be read (`unreadable.key`). */
    readonly version: string | undefined;
    /** JWK key type (RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM); undefined when the key could not be read. */
    readonly kty: string | undefined;
    /** RSA modulus size in bits. */
    readonly keySize?: number;
    /** EC curve name. */
    readonly curve?: string;
    readonly enabled: boolean;
    readonly notBefore?: number;
    readonly expiresOn?: number;
    readonly tags: Readonly<Record<string, string>>;
    /** True for the key of a Key Vault certificate: its lifecycle follows the certificate policy. */
    readonly managed: boolean;
    readonly hasRotationPolicy: boolean | undefined;
    readonly keyOps: readonly string[];
    /** Facts that could not be read, with the service's answer (a 403 or 404). */
    readonly unreadable?: { readonly key?: string; readonly rotationPolicy?: string };
}

export interface VaultKeyFacts {
    /** https://<name>.vault.azure.net */
    readonly vaultUrl: string;
    readonly vaultName: string;
    /** ARM resource id, when known (an inventory or ARM read); findings then name it, lower-case. */
    readonly vaultId?: string;
    /** `properties.enabledForDiskEncryption` from ARM; undefined when unknown (disk-encryption-vault-shared skipped). */
    readonly enabledForDiskEncryption?: boolean;
    readonly keys: readonly KeyFacts[];
    /**
     * Secrets other than the ones Azure Disk Encryption writes itself (its BEK secrets), when known. Nothing reads the
     * secrets data plane yet: every caller leaves this undefined and disk-encryption-vault-shared looks at keys only.
     */
    readonly secretsCount?: number;
}

/** The posture policy (`ResponderConfig.cmk.posture` without the vault list). */
export interface PosturePolicy {
    readonly appTierTag: { readonly name: string; readonly value: string } | undefined;
    readonly minRsaBits: number;
    readonly allowedKeyTypes: readonly string[];
    readonly allowedCurves: readonly string[];
}

/** Marks the key-encryption keys of Azure Disk Encryption in a vault enabled for disk encryption. */
export const DISK_ENCRYPTION_KEY_TAG = { name: 'purpose', value: 'disk-encryption' } as const;

/** The `operations` of every posture finding. */
export const POSTURE_OPERATION = 'PostureCheck';

export type PostureDecision = FindingDecision | ErrorDecision;

const APP_TIER_MISSING: RuleMeta = {
    id: 'cmk-app-tier-missing',
    title: 'No app-tier customer-managed key in a Key Vault',
    severity: 'high',
    mitre: ['T1530'],
    description:
        'Only when `cmk.posture.appTierTag` is set: no key of the vault carries the app-tier tag (name=value) while being usable, that is enabled, within its activation and expiry dates and not the key of a certificate. The application tier then encrypts its data at rest with platform-managed keys (or with a key nobody tagged), and its owners cannot revoke access to that data by disabling their key. Reference: Trend Micro Cloud One Conformity KeyVault-008 "App Tier Customer-Managed Key In Use" (risk level high). Tag names match case-insensitively, values exactly. Severity high as in KeyVault-008: the control the team relies on does not exist.',
    falsePositives: [
        'A vault that serves another tier, listed in cmk.posture.vaults by mistake.',
        'An app-tier key created under another tag value (a typo or an old naming scheme): fix the tag.',
    ],
    references: [
        'https://www.trendmicro.com/cloudoneconformity/knowledge-base/azure/KeyVault/app-tier-customer-master-key.html',
        'https://learn.microsoft.com/azure/security/fundamentals/encryption-models',
    ],
    runbook: [
        'Check whether the app tier keeps its customer-managed key in this vault; the finding lists tagged keys that exist but are unusable (disabled, expired, not yet valid, certificate-backed).',
        'If a tagged key is only disabled or expired, find out why before re-enabling or extending it (KeyUpdate records).',
        'Otherwise create the key (RSA 3072 or more, or RSA-HSM), tag it with the app-tier tag, give it an expiry and a rotation policy, and configure the app-tier services to use it.',
    ],
};

const WEAK_KEY: RuleMeta = {
    id: 'cmk-weak-key',
    title: 'Key Vault key weaker than the key policy',
    severity: 'high',
    mitre: [],
    description:
        'An enabled key is an RSA key shorter than `cmk.posture.minRsaBits` (default 2048), has a key type outside `allowedKeyTypes` (default RSA, RSA-HSM, EC, EC-HSM), or an EC curve outside `allowedCurves` (default P-256, P-384, P-521). Data wrapped with a weak key is only as safe as that key, for as long as the wrapped copies exist: severity high, and a new key (not a new version under the same key policy) is the fix. Certificate-backed keys are checked too (their size comes from the certificate policy). No ATT&CK technique describes a weak key by itself.',
    falsePositives: [
        'A legacy integration that cannot use larger keys, accepted as a documented exception (turn the check down for that vault by moving it out of cmk.posture.vaults).',
    ],
    references: [
        'https://learn.microsoft.com/azure/key-vault/keys/about-keys',
        'https://csrc.nist.gov/pubs/sp/800/131/a/r2/final',
    ],
    runbook: [
        'Find the services that use the key (the CMK inventory, `kvr cmk-report`, or the KeyWrap/KeyUnwrap audit records).',
        'Create a compliant key, point every dependent service at it, and let them re-wrap their data encryption keys.',
        'Disable the weak key once no service uses it, and delete it after the retention you need for old backups.',
    ],
};

const NO_EXPIRY: RuleMeta = {
    id: 'cmk-no-expiry',
    title: 'Key Vault key without an expiration date',
    severity: 'medium',
    mitre: ['T1552.004'],
    description:
        'An enabled key has no expiration date. A key that never expires is never forced through review or rotation, and key material that leaked (an exportable or imported key, a backup) stays valid for ever. Severity medium: a hygiene gap, not an exposure by itself. Set an expiry together with a rotation policy: an expiry alone, with nobody rotating, turns into an outage of every service that uses the key (cmk-expiring-in-use warns before that).',
    falsePositives: ['Keys of test or sandbox vaults listed in cmk.posture.vaults.'],
    references: [
        'https://learn.microsoft.com/azure/key-vault/keys/how-to-configure-key-rotation',
        'https://learn.microsoft.com/azure/key-vault/general/azure-policy',
    ],
    runbook: [
        'Agree the key lifetime with its owners (for example one or two years).',
        'Set a rotation policy first (Rotate some days before expiry, expiryTime for new versions), then the expiry of the current version.',
        'Check that every dependent service follows new versions (versionless key URI, or automatic key version update).',
    ],
};

const NO_ROTATION_POLICY: RuleMeta = {
    id: 'cmk-no-rotation-policy',
    title: 'Key Vault key without automatic rotation',
    severity: 'medium',
    mitre: ['T1552.004'],
    description:
        'An enabled key has no rotation policy with a Rotate lifetime action: Key Vault never creates a new version on its own, so the key is only rotated when someone remembers. A policy with only Notify actions or only an expiryTime counts as none (it is also what the service answers for a key that never had a policy). Certificate-backed keys are skipped: the certificate policy renews them. When the policy cannot be read (403 or 404), the run reports an error line for the key instead of a finding. Severity medium, as cmk-no-expiry.',
    falsePositives: [
        'Keys rotated on purpose by an external process (an HSM ceremony, a pipeline): document the exception.',
    ],
    references: [
        'https://learn.microsoft.com/azure/key-vault/keys/how-to-configure-key-rotation',
        'https://learn.microsoft.com/azure/key-vault/general/azure-policy',
    ],
    runbook: [
        'Check with the key owner how the key is rotated today.',
        'Set a rotation policy: Rotate at a fixed time after creation or before expiry, and an expiryTime for new versions.',
        'Check that every dependent service follows new versions (versionless key URI, or automatic key version update).',
    ],
};

const DISK_ENCRYPTION_VAULT_SHARED: RuleMeta = {
    id: 'disk-encryption-vault-shared',
    title: 'Vault enabled for disk encryption holds unrelated keys',
    severity: 'medium',
    mitre: ['T1555.006'],
    description: `The vault has \`enabledForDiskEncryption\` set, which lets Azure Disk Encryption retrieve secrets from the vault and unwrap keys, for the whole vault and not per key: every other key and secret in it is within reach of that platform grant (and of whoever can attach disk encryption to a VM with it). Keys of other workloads belong in a vault of their own. Keys are judged by tags: a key tagged ${DISK_ENCRYPTION_KEY_TAG.name}=${DISK_ENCRYPTION_KEY_TAG.value} is a disk-encryption key; when at least one key carries that tag, every enabled key without it is unrelated; when none does, one enabled key is taken for the key-encryption key and two or more are reported (which one is the KEK cannot be told). Disabled keys are not counted (they cannot be unwrapped with). Secrets are not checked: kv-responder does not read the secrets data plane, and Azure Disk Encryption stores its own BitLocker/dm-crypt secrets in the vault anyway. Severity medium: a standing exposure, no incident by itself.`,
    falsePositives: [
        'Several disk-encryption keys without the tag: tag them, and the check stays quiet.',
        'A vault whose disk-encryption flag was set by a template default and is not used: turn the flag off instead.',
    ],
    references: [
        'https://learn.microsoft.com/azure/virtual-machines/windows/disk-encryption-key-vault',
        'https://learn.microsoft.com/azure/key-vault/general/best-practices',
    ],
    runbook: [
        'List the keys the finding names and ask their owners what uses them (the CMK inventory shows the callers).',
        'Move unrelated keys to a vault without enabledForDiskEncryption: create new keys there and re-point the services (keys cannot be moved between vaults, only backed up and restored within one geography and subscription).',
        `Tag the remaining disk-encryption keys ${DISK_ENCRYPTION_KEY_TAG.name}=${DISK_ENCRYPTION_KEY_TAG.value}; turn enabledForDiskEncryption off if no VM uses Azure Disk Encryption with this vault.`,
    ],
};

/** Every posture check, in catalogue order. */
export const POSTURE_CHECKS: readonly RuleMeta[] = [
    APP_TIER_MISSING,
    WEAK_KEY,
    NO_EXPIRY,
    NO_ROTATION_POLICY,
    DISK_ENCRYPTION_VAULT_SHARED,
];

export const POSTURE_CHECK_IDS: readonly string[] = POSTURE_CHECKS.map((c) => c.id);

const RSA_TYPES = new Set(['RSA', 'RSA-HSM']);
const EC_TYPES = new Set(['EC', 'EC-HSM']);

/** Why a key cannot serve as the app-tier key now, or undefined when it can. */
function unusable(k: KeyFacts, nowMs: number): string | undefined {
    if (!k.enabled) return 'disabled';
    if (k.expiresOn !== undefined && k.expiresOn <= nowMs) return 'expired';
    if (k.notBefore !== undefined && k.notBefore > nowMs) return 'not yet valid';
    if (k.managed) return 'certificate-backed';
    return undefined;
}

function tagValue(tags: Readonly<Record<string, string>>, name: string): string | undefined {
    const wanted = name.toLowerCase();
    for (const [k, v] of Object.entries(tags)) if (k.toLowerCase() === wanted) return v;
    return undefined;
}

/** What makes a key weak under the policy; empty when nothing does (or its type is unknown). */
export function weaknessesOf(k: KeyFacts, policy: PosturePolicy): string[] {
    if (k.kty === undefined) return [];
    const out: string[] = [];
    if (!policy.allowedKeyTypes.includes(k.kty))
        out.push(`key type ${k.kty} is not allowed (allowed: ${policy.allowedKeyTypes.join(', ')})`);
    if (RSA_TYPES.has(k.kty) && k.keySize !== undefined && k.keySize < policy.minRsaBits)
        out.push(`RSA key of ${k.keySize} bits, under the minimum of ${policy.minRsaBits}`);
    if (EC_TYPES.has(k.kty) && k.curve !== undefined && !policy.allowedCurves.includes(k.curve))
        out.push(`curve ${k.curve} is not allowed (allowed: ${policy.allowedCurves.join(', ')})`);
    return out;
}

function keyDetails(k: KeyFacts): Record<string, unknown> {
    return {
        key: k.name,
        ...(k.version === undefined ? {} : { keyVersion: k.version }),
        ...(k.kty === undefined ? {} : { kty: k.kty }),
        ...(k.keySize === undefined ? {} : { keySize: k.keySize }),
        ...(k.curve === undefined ? {} : { curve: k.curve }),
        ...(k.managed ? { managed: true } : {}),
    };
}

/**
 * Runs every posture check on one vault. Per-key checks look at enabled keys only (a disabled key protects nothing
 * new until it is enabled again, and the next run sees it then). Facts that could not be read are reported as
 * `error` decisions naming the check they hold up, never as findings.
 * @param nowMs - The time of the check: the findings' time, and what "expired" means for the app-tier key.
 * @param toggles - Per-check switches (`rules.<id>` in the config): a check turned off reports nothing.
 */
export function checkVaultPosture(
    vault: VaultKeyFacts,
    policy: PosturePolicy,
    nowMs: number,
    toggles: ReadonlyMap<string, RuleToggle> = new Map(),
): PostureDecision[] {
    const time = new Date(nowMs).toISOString();
    const vaultName = vault.vaultName.toLowerCase();
    const vaultId = vault.vaultId?.toLowerCase() ?? vault.vaultUrl;
    const out: PostureDecision[] = [];
    const on = (meta: RuleMeta) => toggles.get(meta.id)?.enabled !== false;
    const finding = (meta: RuleMeta, summary: string, details: Record<string, unknown>): void => {
        out.push({
            type: 'finding',
            rule: meta.id,
            severity: toggles.get(meta.id)?.severity ?? meta.severity,
            vault: vaultName,
            vaultId,
            time,
            operations: [POSTURE_OPERATION],
            correlationIds: [],
            count: 1,
            summary,
            vaultUrl: vault.vaultUrl,
            ...details,
        });
    };
    const error = (meta: RuleMeta, message: string): void => {
        out.push({ type: 'error', rule: meta.id, vault: vaultName, time, message });
    };
    const enabled = vault.keys.filter((k) => k.enabled);

    const tag = policy.appTierTag;
    if (tag !== undefined && on(APP_TIER_MISSING)) {
        const tagged = vault.keys.filter((k) => tagValue(k.tags, tag.name) === tag.value);
        if (!tagged.some((k) => unusable(k, nowMs) === undefined)) {
            const why = tagged.map((k) => `${k.name} (${unusable(k, nowMs) ?? ''})`);
            finding(
                APP_TIER_MISSING,
                `No usable key in vault ${vaultName} carries the app-tier tag ${tag.name}=${tag.value}` +
                    (why.length === 0 ? ` (${vault.keys.length} key(s) checked)` : `: tagged but ${why.join(', ')}`),
                {
                    appTierTag: `${tag.name}=${tag.value}`,
                    keysChecked: vault.keys.length,
                    taggedKeys: tagged.map((k) => ({ key: k.name, state: unusable(k, nowMs) })),
                },
            );
        }
    }

    for (const k of enabled) {
        const where = `key ${k.name} in vault ${vaultName}`;
        if (on(WEAK_KEY)) {
            if (k.kty === undefined) {
                error(
                    WEAK_KEY,
                    `${where}: type and size unknown, the key could not be read: ${k.unreadable?.key ?? ''}`,
                );
            } else {
                const weak = weaknessesOf(k, policy);
                if (weak.length > 0)
                    finding(WEAK_KEY, `Weak ${where}: ${weak.join('; ')}`, { ...keyDetails(k), weaknesses: weak });
            }
        }
        if (on(NO_EXPIRY) && k.expiresOn === undefined) {
            finding(NO_EXPIRY, `Enabled ${where} has no expiration date`, keyDetails(k));
        }
        if (on(NO_ROTATION_POLICY) && !k.managed) {
            if (k.hasRotationPolicy === false) {
                finding(NO_ROTATION_POLICY, `Enabled ${where} has no rotation policy that rotates it`, keyDetails(k));
            } else if (k.hasRotationPolicy === undefined) {
                error(
                    NO_ROTATION_POLICY,
                    `${where}: rotation policy unknown, it could not be read: ${k.unreadable?.rotationPolicy ?? 'not read'}`,
                );
            }
        }
    }

    if (vault.enabledForDiskEncryption === true && on(DISK_ENCRYPTION_VAULT_SHARED)) {
        const marked = enabled.filter(
            (k) => tagValue(k.tags, DISK_ENCRYPTION_KEY_TAG.name) === DISK_ENCRYPTION_KEY_TAG.value,
        );
        const unrelated =
            marked.length > 0 ? enabled.filter((k) => !marked.includes(k)) : enabled.length > 1 ? enabled : [];
        const secrets = vault.secretsCount ?? 0;
        if (unrelated.length > 0 || secrets > 0) {
            const parts: string[] = [];
            if (unrelated.length > 0)
                parts.push(
                    marked.length > 0
                        ? `${unrelated.length} key(s) not tagged ${DISK_ENCRYPTION_KEY_TAG.name}=${DISK_ENCRYPTION_KEY_TAG.value}: ${unrelated.map((k) => k.name).join(', ')}`
                        : `${unrelated.length} enabled keys and none tagged ${DISK_ENCRYPTION_KEY_TAG.name}=${DISK_ENCRYPTION_KEY_TAG.value}: ${unrelated.map((k) => k.name).join(', ')}`,
                );
            if (secrets > 0) parts.push(`${secrets} other secret(s)`);
            finding(
                DISK_ENCRYPTION_VAULT_SHARED,
                `Vault ${vaultName} is enabled for disk encryption and holds ${parts.join(' and ')}`,
                {
                    unrelatedKeys: unrelated.map((k) => k.name),
                    diskEncryptionKeys: marked.map((k) => k.name),
                    ...(vault.secretsCount === undefined ? {} : { secretsCount: vault.secretsCount }),
                },
            );
        }
    }
    return out;
}
