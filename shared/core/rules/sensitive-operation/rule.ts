import type { StatelessRule } from '../../engine/rule';
import { describeCaller, describeTarget } from '../text';

export const sensitiveOperation: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'sensitive-operation',
        title: 'Sensitive Key Vault operation succeeded',
        severity: 'high',
        mitre: ['T1485', 'T1552.001', 'T1070'],
        description:
            'A successful (2xx) operation of the configurable sensitiveOperations list (by default deletes, purges, backups, recovers, restores and list-deleted) on a vault or its objects. Deletes and purges destroy data or cover tracks; a backup exports object material that restores into any vault of the same subscription and geography. A denied attempt is not reported here (it may be reconnaissance: see denied-access-burst).',
        falsePositives: [
            'Planned decommissioning of a vault, or rotation that deletes old objects.',
            'Backup jobs run by an approved automation identity.',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/logging',
            'https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview',
        ],
        runbook: [
            'Confirm with the caller, or its owner, that the operation was planned.',
            'For a delete without purge: recover the object (soft delete keeps it for the retention period).',
            'For a backup: find where the backup went; it restores only within the same subscription and geography.',
            'If unplanned: disable the caller, rotate what it could read, and check the vault for further changes.',
        ],
    },
    operations: undefined, // the sensitive-operation list is configurable
    evaluate(event, ctx) {
        if (event.outcome !== 'success' || !ctx.settings.sensitiveOperations.has(event.operation)) return undefined;
        if (event.activity !== undefined) return undefined;
        return [
            {
                summary: `${event.operation} ${describeTarget(event)} by ${describeCaller(event)}`,
                groupKey: event.operation,
            },
        ];
    },
};
