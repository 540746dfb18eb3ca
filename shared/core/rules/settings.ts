/**
 * Settings the rules read, resolved from the responder config. Grows with the detection catalogue; every field has a
 * default so that a rule never has to guess.
 */
export interface DetectionSettings {
    readonly sensitiveOperations: ReadonlySet<string>;
}

export const DEFAULT_SENSITIVE_OPERATIONS: readonly string[] = [
    'VaultDelete',
    'KeyDelete',
    'SecretDelete',
    'CertificateDelete',
    'KeyPurge',
    'SecretPurge',
    'CertificatePurge',
    'KeyBackup',
    'SecretBackup',
    'CertificateBackup',
    'KeyListDeleted',
    'SecretListDeleted',
];

export const DEFAULT_DETECTION_SETTINGS: DetectionSettings = Object.freeze({
    sensitiveOperations: new Set(DEFAULT_SENSITIVE_OPERATIONS),
});
