import type { AccessPolicyPermissions } from '../events/types';
import type { VaultPolicy } from './settings';

export const PERMISSION_KINDS = ['keys', 'secrets', 'certificates', 'storage'] as const;

type PermissionLists = Partial<Record<(typeof PERMISSION_KINDS)[number], readonly string[]>>;

/**
 * The permissions of a principal's access-policy entry that its vault policy does not approve: all of them for an
 * unapproved principal, the ones outside its approved set otherwise (`all` approves a whole kind). Names keep their
 * spelling (ARM matches them case-sensitively on remove); comparison ignores case. Undefined when nothing is excess.
 */
export function excessPermissions(
    objectId: string | undefined,
    permissions: PermissionLists,
    policy: VaultPolicy,
): Record<string, string[]> | undefined {
    const oid = objectId?.toLowerCase();
    const approved = oid !== undefined && policy.approvedPrincipals.has(oid);
    const allowed: AccessPolicyPermissions | undefined = approved ? policy.approvedPrincipals.get(oid) : undefined;
    if (approved && allowed === undefined) return undefined;
    const excess: Record<string, string[]> = {};
    let any = false;
    for (const kind of PERMISSION_KINDS) {
        const ok = allowed?.[kind];
        if (ok?.includes('all') === true) continue;
        const extra = (permissions[kind] ?? []).filter((p) => ok === undefined || !ok.includes(p.toLowerCase()));
        if (extra.length > 0) {
            excess[kind] = extra;
            any = true;
        }
    }
    // An unapproved principal with an empty entry still holds an entry it should not have.
    return any || !approved ? excess : undefined;
}
