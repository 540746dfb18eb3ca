import { isResponder, type StatefulRule } from '../../engine/rule';
import { KeyMemo } from '../../state/store';
import { baselineStep, baselineTtlMs, type LastSeen } from '../baseline';

const APP_KEYS = new KeyMemo('app|');

export const newAppAccess: StatefulRule<LastSeen> = {
    kind: 'stateful',
    meta: {
        id: 'new-app-access',
        title: 'Application reads from a Key Vault for the first time',
        severity: 'medium',
        mitre: ['T1555.006', 'T1078.004'],
        description:
            'A successful read (SecretGet, KeyGet, VaultGet by default) by an application (service principal or managed identity, by app id) never seen on that vault within the baseline window. Platform scanners (Azure Resource Graph 509e4652-da8d-478d-a730-e9d4a1996ca4, Policy Insights 8cae6e77-e04e-42ce-b5cb-50d82bce26b1), configured knownScanners and kv-responder own identities (responderIdentities) are never reported. Users are covered by new-user-access.',
        falsePositives: ['A newly deployed workload; a scanner that is not in knownScanners.'],
        references: ['https://learn.microsoft.com/azure/defender-for-cloud/alerts-azure-key-vault'],
        runbook: [
            'Identify the application (Entra app registration or managed identity) and its owner.',
            'If unknown: disable the service principal, rotate what it read, find where its credential came from.',
        ],
    },
    operations: undefined,
    stateKey(event, ctx) {
        const c = event.caller;
        if (event.outcome !== 'success' || c.appId === undefined) return undefined;
        if (c.kind !== 'service-principal' && c.kind !== 'managed-identity') return undefined;
        if (!ctx.settings.readOperations.has(event.operation) || ctx.settings.knownScanners.has(c.appId))
            return undefined;
        // The responder reads the vaults it protects (key state, posture): its own reads are not a new app.
        if (isResponder(event, ctx.settings)) return undefined;
        return APP_KEYS.get(event.vault.name, c.appId);
    },
    stateTtlMs: baselineTtlMs,
    evaluate: baselineStep,
};
