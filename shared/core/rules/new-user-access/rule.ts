import type { StatefulRule } from '../../engine/rule';
import { KeyMemo } from '../../state/store';
import { baselineStep, baselineTtlMs, type LastSeen } from '../baseline';

const USER_KEYS = new KeyMemo('user|');

export const newUserAccess: StatefulRule<LastSeen> = {
    kind: 'stateful',
    meta: {
        id: 'new-user-access',
        title: 'User reads from a Key Vault for the first time',
        severity: 'medium',
        mitre: ['T1555.006', 'T1078'],
        description:
            'A successful read (SecretGet, KeyGet, VaultGet by default) by a user never seen on that vault within the baseline window (30 days). A new vault first learns for the learning period (the window length by default) and reports nothing meanwhile; replaying archived logs seeds the baseline.',
        falsePositives: ['A new team member, or an engineer on call touching a vault for the first time.'],
        references: ['https://learn.microsoft.com/azure/defender-for-cloud/alerts-azure-key-vault'],
        runbook: [
            'Check whether the user is expected to use this vault (team, ticket, on-call).',
            'If not: review what else the user read, and the sign-in behind it (Entra sign-in logs).',
        ],
    },
    operations: undefined, // the read operations are configurable
    stateKey(event, ctx) {
        const c = event.caller;
        if (event.outcome !== 'success' || c.kind !== 'user' || c.objectId === undefined) return undefined;
        if (!ctx.settings.readOperations.has(event.operation)) return undefined;
        return USER_KEYS.get(event.vault.name, c.objectId);
    },
    stateTtlMs: baselineTtlMs,
    evaluate: baselineStep,
};
