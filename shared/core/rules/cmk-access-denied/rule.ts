import type { StatelessRule } from '../../engine/rule';
import { describeCaller, describeTarget } from '../text';

export const CMK_OPERATIONS: readonly string[] = [
    'KeyWrap',
    'KeyUnwrap',
    'KeyEncrypt',
    'KeyDecrypt',
    'KeySign',
    'KeyVerify',
    'KeyGet',
];

export const cmkAccessDenied: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'cmk-access-denied',
        title: 'Customer-managed key access denied to an Azure service',
        severity: 'critical',
        mitre: ['T1485', 'T1486'],
        description:
            'A key operation (wrap, unwrap, encrypt, decrypt, sign, verify, get) by a managed identity or a trusted Azure service fails with 401 or 403. Typically a customer-managed key was disabled, expired or lost its access policy or role: the storage accounts, disks and databases encrypted with it stop working.',
        falsePositives: ['A service probing a key it no longer uses after a planned key rotation.'],
        references: [
            'https://learn.microsoft.com/azure/storage/common/customer-managed-keys-overview',
            'https://learn.microsoft.com/azure/key-vault/general/logging',
        ],
        runbook: [
            'Read resultDescription: disabled key, expired key, or missing permission.',
            'Restore access now (re-enable the key version, restore the role assignment or access policy); the dependent service is down meanwhile.',
            'Find who changed the key or its access (KeyUpdate, VaultPatch records).',
        ],
    },
    operations: CMK_OPERATIONS,
    evaluate(event) {
        const c = event.caller;
        if (event.outcome !== 'forbidden' && event.outcome !== 'unauthorized') return undefined;
        if (c.kind !== 'managed-identity' && c.kind !== 'trusted-service' && c.managedIdentityResourceId === undefined)
            return undefined;
        const why = event.resultDescription === undefined ? '' : `: ${event.resultDescription.split('\n')[0] ?? ''}`;
        return [
            {
                summary: `${event.operation} of ${describeTarget(event)} denied to ${describeCaller(event)} (HTTP ${event.httpStatus ?? '?'})${why}`,
                details: { service: c.managedIdentityResourceId ?? c.trustedService, keyId: event.target?.uri },
            },
        ];
    },
};
