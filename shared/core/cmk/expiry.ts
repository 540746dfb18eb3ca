/** cmk-expiring-in-use: key versions in use that expire soon (checked daily against Key Vault). Pure. */
import type { RuleMeta } from '../engine/rule';
import type { FindingDecision } from '../decisions';
import type { KeyVersionState } from '../ports';
import { type Dependency, dependencyOf, describeDependency, type KeyInventory } from './inventory';

export const CMK_EXPIRING_IN_USE: RuleMeta = {
    id: 'cmk-expiring-in-use',
    title: 'Customer-managed key in use expires soon',
    severity: 'high',
    mitre: ['T1485'],
    description:
        'A key version that the live inventory shows in use by a service expires within cmk.expiringWithinDays (default 30). An expired key version refuses wrap and unwrap: the services encrypted with it stop. Checked daily (the cmkExpiry timer) against the key properties in Key Vault.',
    falsePositives: [
        'A key version already replaced by a new one that the services pick up automatically before the expiry (versionless key URIs with auto-rotation).',
    ],
    references: [
        'https://learn.microsoft.com/azure/key-vault/keys/how-to-configure-key-rotation',
        'https://learn.microsoft.com/azure/storage/common/customer-managed-keys-overview#update-the-key-version',
    ],
    runbook: [
        'Rotate the key (or extend the expiry) and make sure every listed service uses the new version before the date.',
        'Set a rotation policy so that this happens automatically (see cmk-no-rotation-policy).',
    ],
};

/** The key versions worth checking: those with a dependent service in use, and their dependents. */
export function versionsInUse(
    s: KeyInventory,
    nowMs: number,
    inUseMs: number,
): { readonly version: string; readonly dependents: readonly Dependency[] }[] {
    const out: { version: string; dependents: Dependency[] }[] = [];
    for (const { version, services } of s.versions) {
        const dependents = services
            .filter((u) => u.lastSuccessMs !== undefined && u.lastSuccessMs >= nowMs - inUseMs)
            .map((u) => dependencyOf(version, u))
            .sort((a, b) => a.name.localeCompare(b.name));
        if (dependents.length > 0) out.push({ version, dependents });
    }
    return out;
}

/** The finding for one key version, when it is enabled and expires within the window. */
export function expiringFinding(
    s: KeyInventory,
    version: string,
    dependents: readonly Dependency[],
    state: KeyVersionState,
    nowMs: number,
    withinMs: number,
): FindingDecision | undefined {
    if (!state.enabled || state.expiresOn === undefined) return undefined;
    const expires = Date.parse(state.expiresOn);
    if (Number.isNaN(expires) || expires - nowMs > withinMs) return undefined;
    const days = Math.max(0, Math.floor((expires - nowMs) / 86_400_000));
    const services = [...new Set(dependents.map(describeDependency))];
    const when =
        expires <= nowMs ? `expired on ${state.expiresOn}` : `expires on ${state.expiresOn} (in ${days} day(s))`;
    return {
        type: 'finding',
        rule: CMK_EXPIRING_IN_USE.id,
        severity: CMK_EXPIRING_IN_USE.severity,
        vault: s.vault,
        vaultId: s.vaultId,
        time: new Date(nowMs).toISOString(),
        operations: ['KeyExpiryCheck'],
        correlationIds: [],
        count: 1,
        summary: `key ${s.key}${version === '' ? '' : ` version ${version}`} in ${s.vault} ${when}, in use by ${services.join(', ')}`,
        keyId: state.keyId,
        expiresOn: state.expiresOn,
        dependents: dependents.map((d) => d.id),
    };
}
