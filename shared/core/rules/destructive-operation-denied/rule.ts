import type { StatelessRule } from '../../engine/rule';
import { describeCaller, describeTarget } from '../text';

export const destructiveOperationDenied: StatelessRule = {
    kind: 'stateless',
    meta: {
        id: 'destructive-operation-denied',
        title: 'Destructive Key Vault operation denied',
        severity: 'medium',
        mitre: ['T1485', 'T1490'],
        description:
            'A sensitive operation (the configurable sensitiveOperations list: deletes, purges, backups, recovers, restores, list-deleted) answered 401 or 403 (the HTTP status, never resultType, which says Success on denials). Someone tried to destroy or export vault content and lacked the permission: often a stolen credential testing what it can do. A 401 without any caller identity is the normal authentication challenge of the Key Vault SDKs and is not reported. Repeats of one caller on one vault within the grouping window form one finding.',
        falsePositives: [
            'Cleanup automation whose identity lost its purge or delete permission.',
            'A person trying a purge on a vault with purge protection (answered 403 by design).',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/logging',
            'https://learn.microsoft.com/azure/key-vault/general/soft-delete-overview',
        ],
        runbook: [
            'Identify the caller and its sign-in (IP address, user agent).',
            'Confirm with its owner whether the operation was intended; if not, disable the credential and check what else it tried (denied-access-burst, sensitive-operation).',
            'Confirm soft delete and purge protection are on for the vault.',
        ],
    },
    operations: undefined, // the sensitive-operation list is configurable
    evaluate(event, ctx) {
        if (event.outcome !== 'forbidden' && event.outcome !== 'unauthorized') return undefined;
        if (event.activity !== undefined || !ctx.settings.sensitiveOperations.has(event.operation)) return undefined;
        if (event.outcome === 'unauthorized' && event.caller.kind === 'anonymous') return undefined;
        return [
            {
                summary: `${event.operation} on ${describeTarget(event)} denied (${event.httpStatus ?? ''}) to ${describeCaller(event)}`,
                details: { httpStatus: event.httpStatus },
            },
        ];
    },
};
