import { isResponder, type StatefulRule } from '../../engine/rule';
import { boundedId, boundedText } from '../../state/limits';
import { stateKey } from '../../state/store';
import { isVaultWrite, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

/**
 * Recent grants on one vault: grantee object id → [grant time, granting principal]. Ids and names are bounded
 * (../../state/limits.ts) and at most {@link MAX_TRACKED} grants are kept: under 100,000 characters of JSON.
 */
interface Grants {
    readonly grants: Readonly<Record<string, readonly [number, string]>>;
}

const MAX_TRACKED = 200;

export const accessPolicyGrantedThenRevoked: StatefulRule<Grants> = {
    kind: 'stateful',
    meta: {
        id: 'access-policy-granted-then-revoked',
        title: 'Key Vault access granted and revoked again within minutes',
        severity: 'high',
        mitre: ['T1098', 'T1070'],
        description:
            'A principal is granted an access policy and removed again within the window (10 minutes by default): use the access, then cover the tracks. This is Sentinel\'s hunting query "Azure Key Vault access policy manipulation" turned into an alert.',
        falsePositives: [
            'A deployment script that recreates access policies (remove, then add) in the other order is not matched; a script that adds then removes within minutes is.',
        ],
        references: [
            'https://github.com/Azure/Azure-Sentinel/blob/master/Solutions/Cloud%20Service%20Threat%20Protection%20Essentials/Hunting%20Queries/AzureKeyVaultAccessManipulation.yaml',
        ],
        runbook: [
            'Find what the principal did on the vault between the grant and the revocation (data-plane records by its object id).',
            'Treat every secret it read as disclosed: rotate them.',
            'Review who made both changes.',
        ],
    },
    operations: VAULT_WRITES,
    stateKey(event, ctx) {
        const change = event.vaultChange;
        if (!isVaultWrite(event) || change === undefined || isResponder(event, ctx.settings)) return undefined;
        if (change.addedAccessPolicies.length === 0 && change.removedAccessPolicies.length === 0) return undefined;
        return stateKey(event.vault.name, 'grants');
    },
    stateTtlMs: (settings) => settings.grantRevokeWindowMs,
    evaluate(event, ctx, state) {
        const change = event.vaultChange;
        if (change === undefined) return {};
        const t = event.timeMs;
        const window = ctx.settings.grantRevokeWindowMs;
        const grants: Record<string, readonly [number, string]> = {};
        for (const [oid, g] of Object.entries(state?.grants ?? {})) if (g[0] > t - window) grants[oid] = g;
        let changed = Object.keys(grants).length !== Object.keys(state?.grants ?? {}).length;
        const findings = [];
        for (const removed of change.removedAccessPolicies) {
            const oid = removed.objectId === undefined ? undefined : boundedId(removed.objectId);
            const g = oid === undefined ? undefined : grants[oid];
            if (oid === undefined || g === undefined || g[0] > t) continue;
            const minutes = Math.max(0, Math.round((t - g[0]) / 6000) / 10);
            findings.push({
                summary: `access of ${oid} on ${event.vault.name} granted by ${g[1]} and revoked ${minutes} min later by ${describeCaller(event)}`,
                details: { grantee: oid, grantedAt: new Date(g[0]).toISOString() },
            });
            delete grants[oid];
            changed = true;
        }
        for (const added of change.addedAccessPolicies) {
            const oid = added.objectId === undefined ? undefined : boundedId(added.objectId);
            if (oid === undefined || (grants[oid] !== undefined && grants[oid][0] >= t)) continue;
            grants[oid] = [t, boundedText(event.caller.upn ?? event.caller.objectId ?? 'unknown', 256)];
            changed = true;
        }
        const keys = Object.keys(grants);
        if (keys.length > MAX_TRACKED) for (const k of keys.slice(0, keys.length - MAX_TRACKED)) delete grants[k];
        return changed ? { findings, state: { grants } } : { findings };
    },
};
