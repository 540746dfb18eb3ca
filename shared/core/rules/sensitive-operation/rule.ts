import type { Rule } from '../../engine/rule';
import type { DetectionSettings } from '../settings';
import { DEFAULT_SENSITIVE_OPERATIONS } from '../settings';
import { describeCaller, describeTarget } from '../text';

/** A destructive or exfiltration-prone operation that actually happened (2xx). */
export const sensitiveOperation: Rule<DetectionSettings> = {
    meta: {
        id: 'sensitive-operation',
        title: 'Sensitive Key Vault operation succeeded',
        severity: 'high',
        mitre: ['T1485', 'T1552.001', 'T1070'],
        description:
            'A successful delete, purge, backup or list-deleted operation on a vault or its objects. Deletes and purges destroy data (or cover tracks); backups export object material that can be restored into another vault of the same geography and subscription.',
        falsePositives: [
            'Planned decommissioning of a vault or rotation that deletes old objects.',
            'Backup jobs run by an approved automation identity.',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/logging',
            'https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview',
        ],
        runbook: [
            'Confirm with the caller or its owner that the operation was planned.',
            'For a delete without purge: recover the object (soft delete keeps it for the retention period).',
            'For a backup: find where the backup blob went; a backup restores only within the same geography and subscription.',
            'If unplanned: disable the caller, rotate what it could read, and check the vault for further changes.',
        ],
    },
    operations: DEFAULT_SENSITIVE_OPERATIONS,
    evaluate(event, settings) {
        if (event.outcome !== 'success' || !settings.sensitiveOperations.has(event.operation)) return undefined;
        return [{ summary: `${event.operation} ${describeTarget(event)} by ${describeCaller(event)}` }];
    },
};
