import { isResponder, type StatefulRule } from '../../engine/rule';
import { stateKey } from '../../state/store';
import { describeCaller } from '../text';

/** The last known RBAC switch of a vault and the event time it was seen. */
interface RbacState {
    readonly enabled: boolean;
    readonly t: number;
}

export const rbacAuthorizationDisabled: StatefulRule<RbacState> = {
    kind: 'stateful',
    meta: {
        id: 'rbac-authorization-disabled',
        title: 'Azure RBAC authorization turned off on a Key Vault',
        severity: 'high',
        mitre: ['T1098', 'T1484'],
        description:
            "enableRbacAuthorization turns from true to false. The vault's access policies become effective again, so anyone with vaults/write can grant themselves data access through them: a privilege-escalation path. The previous value is learned from any record that carries the vault's configuration (VaultGet, VaultPatch, VaultPut).",
        falsePositives: ['A planned migration back to access policies.'],
        references: ['https://learn.microsoft.com/azure/key-vault/general/rbac-migration'],
        runbook: [
            'Confirm the change with the vault owner.',
            'Review the access policies now in force, and any added since.',
            'Turn RBAC authorization back on if the change was not approved.',
        ],
    },
    operations: ['VaultGet', 'VaultPatch', 'VaultPut'],
    stateKey(event) {
        if (event.outcome !== 'success' || event.vaultChange?.enableRbacAuthorization === undefined) return undefined;
        return stateKey(event.vault.name, 'rbac');
    },
    stateTtlMs: () => Number.MAX_SAFE_INTEGER / 2,
    evaluate(event, ctx, state) {
        const enabled = event.vaultChange?.enableRbacAuthorization;
        if (enabled === undefined || (state !== undefined && state.t > event.timeMs)) return {};
        const next = state?.enabled === enabled ? undefined : { enabled, t: event.timeMs };
        const turnedOff =
            state?.enabled === true && !enabled && event.operation !== 'VaultGet' && !isResponder(event, ctx.settings);
        return {
            findings: turnedOff
                ? [{ summary: `RBAC authorization turned off on ${event.vault.name} by ${describeCaller(event)}` }]
                : [],
            ...(next === undefined ? {} : { state: next }),
        };
    },
};
