import type { AccessPolicyEntry as RecordedPolicy, VaultChange } from '../core/events/types';
import { PERMISSION_KINDS } from '../core/rules/permissions';
import type { AccessPolicyEntry, Vault } from './armSimulator';

function mergePolicy(
    list: AccessPolicyEntry[],
    p: RecordedPolicy,
    tenantId: string,
    add: boolean,
): AccessPolicyEntry[] {
    if (p.objectId === undefined) return list;
    const i = list.findIndex((e) => e.objectId.toLowerCase() === p.objectId);
    const current = i >= 0 ? (list[i] as AccessPolicyEntry) : undefined;
    const permissions: Record<string, string[]> = {};
    for (const kind of PERMISSION_KINDS) {
        const have = [...(current?.permissions[kind] ?? [])];
        const delta = p.permissions[kind];
        const next = add
            ? [...have, ...delta.filter((x) => !have.some((h) => h.toLowerCase() === x))]
            : have.filter((h) => !delta.includes(h.toLowerCase()));
        if (next.length > 0) permissions[kind] = next;
    }
    const out = list.filter((_, j) => j !== i);
    if (Object.keys(permissions).length === 0) return out;
    out.splice(i >= 0 ? i : out.length, 0, {
        tenantId: current?.tenantId ?? p.tenantId ?? tenantId,
        objectId: current?.objectId ?? p.objectId,
        permissions,
    });
    return out;
}

/**
 * What a recorded control-plane change did to a vault, applied to its simulated state before the pipeline sees the
 * record: `kvr replay --vaults` replays the attack against the simulation, then remediates it.
 */
export function applyRecordedChange(vault: Vault, change: VaultChange): Vault {
    const p = structuredClone(vault.properties);
    if (change.networkAcls === null) delete p.networkAcls;
    else if (change.networkAcls !== undefined) {
        const acls = { ...(p.networkAcls ?? {}) };
        if (change.networkAcls.defaultAction !== undefined) acls.defaultAction = change.networkAcls.defaultAction;
        if (change.networkAcls.bypass !== undefined) acls.bypass = change.networkAcls.bypass;
        if (change.networkAcls.ipRules !== undefined)
            acls.ipRules = change.networkAcls.ipRules.map((value) => ({ value }));
        p.networkAcls = acls;
    }
    if (change.addedIpRules.length > 0 || change.removedIpRules.length > 0) {
        const acls = { ...(p.networkAcls ?? { defaultAction: 'Allow', bypass: 'AzureServices' }) };
        const rules = (acls.ipRules ?? []).filter((r) => !change.removedIpRules.includes(r.value));
        for (const value of change.addedIpRules) if (!rules.some((r) => r.value === value)) rules.push({ value });
        acls.ipRules = rules;
        p.networkAcls = acls;
    }
    if (change.publicNetworkAccess !== undefined) p.publicNetworkAccess = change.publicNetworkAccess;
    if (change.enableRbacAuthorization !== undefined) p.enableRbacAuthorization = change.enableRbacAuthorization;
    if (change.enabledForDeployment !== undefined) p.enabledForDeployment = change.enabledForDeployment;
    if (change.enabledForDiskEncryption !== undefined) p.enabledForDiskEncryption = change.enabledForDiskEncryption;
    if (change.enabledForTemplateDeployment !== undefined)
        p.enabledForTemplateDeployment = change.enabledForTemplateDeployment;
    let policies = p.accessPolicies;
    for (const added of change.addedAccessPolicies) policies = mergePolicy(policies, added, p.tenantId, true);
    for (const removed of change.removedAccessPolicies) policies = mergePolicy(policies, removed, p.tenantId, false);
    p.accessPolicies = policies;
    return { ...vault, properties: p };
}
