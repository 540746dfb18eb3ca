/**
 * Undo of a remediation: the smallest change that puts back what the remediation took away (relative to the vault
 * as it is now, so later unrelated changes survive), and the approvals that keep the responder from reverting it
 * again.
 *
 * Scoped: an undo record keeps one part per change of the remediation (the firewall default action, the removed IP
 * rules, the removed virtual network rules, public network access, each removed access-policy entry), each tagged with the rule that asked for it. An
 * incident's undo restores only the parts of its own rule (and, for access policies, of the principals it names), and
 * marks only those parts used, so sibling incidents of one remediation stay undoable on their own.
 *
 * Expiring and bounded: what an undo approves is stored as one grant with an expiry; expired grants are dropped when
 * read (`now` is passed in), and a vault keeps at most {@link MAX_APPROVED_ITEMS} items within
 * {@link MAX_STATE_CHARS} characters (Table Storage holds at most 32K characters in a property).
 */
import type { AccessPolicyPermissions } from '../events/types';
import { type IpRange, parseRange } from '../net/cidr';
import type { VaultPolicy } from '../rules/settings';
import { scopeKey } from './plan';
import {
    ACTIONS_BY_RULE,
    type ActionId,
    type DiagnosticSettingProperties,
    type RemediationPlan,
    type RoleAssignmentSnapshot,
    type VaultAccessPolicy,
    type VaultNetworkAcls,
    type VaultSnapshot,
} from './types';

/** Stored state (JSON) stays under this many characters: a Table Storage string property holds 32K. */
export const MAX_STATE_CHARS = 24_000;
/** Approved items (IP ranges, principals, settings) per vault; beyond it the grants that expire first are dropped. */
export const MAX_APPROVED_ITEMS = 1000;

interface PartBase {
    /** Unique within its record. */
    readonly id: string;
    /** The rule whose finding asked for this change (the plan action's rule). */
    readonly rule: string;
    /** Set once an undo restored this part. */
    readonly undoneAt?: string;
}

/** One change of a remediation, with what it takes to put it back. */
export type UndoPart =
    | (PartBase & { readonly action: 'restore-firewall-default'; readonly defaultAction: string })
    | (PartBase & {
          readonly action: 'remove-ip-rule';
          readonly ipRules: readonly string[];
          /** Removed rules not kept (the record would have grown past the Table Storage limit). */
          readonly omitted?: number;
      })
    | (PartBase & {
          readonly action: 'remove-vnet-rule';
          /** Exactly as they were read (the flag included), so that an undo restores exactly them. */
          readonly virtualNetworkRules: readonly VirtualNetworkRule[];
          /** Removed rules not kept (the record would have grown past the Table Storage limit). */
          readonly omitted?: number;
      })
    | (PartBase & { readonly action: 'disable-public-network-access'; readonly publicNetworkAccess: string })
    | (PartBase & { readonly action: 'remove-access-policy'; readonly entry: VaultAccessPolicy })
    /** The deleted assignment exactly as ARM showed it (undo creates it again with the same id). */
    | (PartBase & { readonly action: 'remove-role-assignment'; readonly assignment: RoleAssignmentSnapshot })
    /** The switch as it was (false: access policies applied). */
    | (PartBase & { readonly action: 'restore-rbac-authorization'; readonly enableRbacAuthorization: boolean })
    /** The setting of that name before the restore; absent: there was none (undo deletes ours). */
    | (PartBase & {
          readonly action: 'restore-diagnostic-setting';
          readonly name: string;
          readonly previous?: DiagnosticSettingProperties;
      });

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A part before it has its id. */
export type UndoPartInput = DistributiveOmit<UndoPart, 'id'>;

/** The snapshot the remediator saves before each change (`undo|<id>` in the state store). */
export interface UndoRecord {
    readonly vaultId: string;
    readonly at: string;
    readonly rules: readonly string[];
    /** Per-change parts (records written since scoped undo). */
    readonly parts?: readonly UndoPart[];
    /** Changes of the remediation not kept for undo (size bound). */
    readonly omittedParts?: number;
    /** Legacy records (before parts): the vault before and the plan. Read, never written. */
    readonly before?: {
        readonly networkAcls: VaultNetworkAcls | null;
        readonly publicNetworkAccess: string | null;
        readonly accessPolicies: readonly VaultAccessPolicy[];
    };
    readonly plan?: {
        readonly patch: RemediationPlan['patch'] | null;
        readonly accessPolicyRemovals: readonly VaultAccessPolicy[];
    };
    /** Legacy: the whole record was undone. */
    readonly undoneAt?: string;
}

/** What an incident's undo may restore: the parts of its rules, and of access policies only its principals. */
export interface UndoScope {
    readonly rules: readonly string[];
    /** Object ids the incident names as grantees; empty or absent: every access-policy part of its rules. */
    readonly grantees?: readonly string[];
}

export interface VirtualNetworkRule {
    readonly id: string;
    readonly ignoreMissingVnetServiceEndpoint: boolean;
}

/** Changes people approved through undo, per vault, as the policy sees them (no expiry: already filtered). */
export interface VaultApprovals {
    readonly ipRanges: readonly string[];
    /** Subnet ids (lower-case) of restored virtual network rules; absent on grants written before. */
    readonly virtualNetworkRules?: readonly string[];
    readonly principals: readonly { readonly objectId: string; readonly permissions: AccessPolicyPermissions }[];
    readonly networkDefaultAction?: 'Allow' | 'Deny';
    readonly publicNetworkAccess?: 'Enabled' | 'Disabled';
    /**
     * Role assignments undone: the principal may hold that role (role definition GUID, lower-case) at that scope
     * (lower-case; absent on grants written before: at any scope that reaches the vault).
     */
    readonly roles?: readonly {
        readonly objectId: string;
        readonly roleDefinitionId: string;
        readonly scope?: string;
    }[];
    /** Azure RBAC switched off again by undo: the vault's `authorization: rbac` is not enforced meanwhile. */
    readonly authorization?: 'access-policies';
    /** A restored diagnostic setting undone: the vault's setting is not restored again meanwhile. */
    readonly auditSetting?: 'exempt';
}

/** What one undo approved, until when (epoch ms): one grant per undo. */
export interface ApprovalGrant extends VaultApprovals {
    readonly undoId: string;
    readonly until: number;
}

/** The stored approvals of a vault (state key `approvals`). */
export interface StoredApprovals {
    readonly v: 2;
    readonly grants: readonly ApprovalGrant[];
}

/**
 * A step of an undo that the responder leaves to the person who undoes, to run with their own rights: its role holds
 * no right to re-create a role assignment (`roleAssignments/write` would let it assign any role, Owner included, at
 * the protected scope) nor to delete a diagnostic setting (docs/remediation.md, "Re-granting access is a human act").
 */
export interface ManualUndoStep {
    /** What to restore, for people. */
    readonly what: string;
    /** The Azure CLI command that restores it (values single-quoted for a POSIX shell). */
    readonly command: string;
}

export interface RestorePlan {
    readonly patch?: NonNullable<RemediationPlan['patch']>;
    readonly accessPolicyAdds: readonly VaultAccessPolicy[];
    /** Diagnostic settings to put back as they were (the responder's role may write them). */
    readonly diagnosticSettings?: readonly { readonly name: string; readonly previous: DiagnosticSettingProperties }[];
    /** What the person who undoes restores with their own rights (role assignments, a setting we created). */
    readonly manual?: readonly ManualUndoStep[];
    /** One line per item the responder restored, for people. */
    readonly restored: readonly string[];
    /** What to approve (without expiry: the undoer stamps it). */
    readonly approvals: VaultApprovals;
    /** Ids of the parts this restore covers (to mark them used). */
    readonly parts: readonly string[];
}

const lower = (l: readonly string[] | undefined): string[] => (l ?? []).map((s) => s.toLowerCase());

function permissionsText(p: VaultAccessPolicy['permissions']): string {
    const parts: string[] = [];
    for (const k of ['keys', 'secrets', 'certificates', 'storage'] as const) {
        const l = p[k];
        if (l !== undefined && l.length > 0) parts.push(`${k}: ${l.join(', ')}`);
    }
    return parts.join('; ') || 'no permissions';
}

/** Two spellings of one range (ARM stores a single address as /32) compare equal. */
function rangeKey(value: string): string {
    const r = parseRange(value);
    return r === undefined ? value.toLowerCase() : `${r.family}:${r.first.toString(16)}-${r.last.toString(16)}`;
}

/** A value single-quoted for a POSIX shell. */
function shellQuote(v: string): string {
    return /^[A-Za-z0-9_./:@=-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

/**
 * The Azure CLI command that creates a deleted role assignment again: same principal (and type), role definition,
 * scope, description and condition. `az role assignment create` takes a role definition id for `--role`, and
 * `--assignee-object-id` with `--assignee-principal-type` avoids a Microsoft Graph lookup (Azure CLI reference,
 * az role assignment create).
 */
export function roleAssignmentCreateCommand(a: RoleAssignmentSnapshot): string {
    const args = [
        'az role assignment create',
        `--assignee-object-id ${shellQuote(a.principalId)}`,
        ...(a.principalType === undefined ? [] : [`--assignee-principal-type ${shellQuote(a.principalType)}`]),
        `--role ${shellQuote(a.roleDefinitionId)}`,
        `--scope ${shellQuote(a.scope)}`,
        ...(a.description === undefined || a.description === '' ? [] : [`--description ${shellQuote(a.description)}`]),
        ...(a.condition === undefined || a.condition === ''
            ? []
            : [
                  `--condition ${shellQuote(a.condition)}`,
                  ...(a.conditionVersion === undefined
                      ? []
                      : [`--condition-version ${shellQuote(a.conditionVersion)}`]),
              ]),
    ];
    return args.join(' ');
}

/** The Azure CLI command that deletes a diagnostic setting of a resource (Azure CLI reference, az monitor). */
export function diagnosticSettingDeleteCommand(resourceId: string, name: string): string {
    return `az monitor diagnostic-settings delete --name ${shellQuote(name)} --resource ${shellQuote(resourceId)}`;
}

/** The manual step that undoes a part the responder's role cannot undo itself; undefined for every other part. */
export function manualStepOf(part: UndoPart, vaultId: string): ManualUndoStep | undefined {
    if (part.action === 'remove-role-assignment') {
        const a = part.assignment;
        return {
            what: `role assignment of ${a.principalType ?? 'principal'} ${a.principalId} (role ${a.roleDefinitionId} at ${a.scope})`,
            command: roleAssignmentCreateCommand(a),
        };
    }
    if (part.action === 'restore-diagnostic-setting' && part.previous === undefined)
        return {
            what: `diagnostic setting ${part.name} (there was none before: delete it)`,
            command: diagnosticSettingDeleteCommand(vaultId, part.name),
        };
    return undefined;
}

const stringList = (v: unknown): string[] | undefined =>
    Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;

/**
 * The undo record of a remediation about to be applied: one part per planned action, tagged with its rule, bounded to
 * {@link MAX_STATE_CHARS} (IP rules beyond the bound, then whole parts, are counted as omitted instead of kept).
 */
export function undoRecordOf(
    vaultId: string,
    at: string,
    rules: readonly string[],
    before: VaultSnapshot,
    plan: RemediationPlan,
): UndoRecord {
    const p = before.properties;
    const wanted: UndoPart[] = [];
    const removals = [...plan.accessPolicyRemovals];
    plan.actions.forEach((a, i) => {
        const id = `p${i}`;
        if (a.action === 'restore-firewall-default')
            wanted.push({ id, rule: a.rule, action: a.action, defaultAction: p.networkAcls?.defaultAction ?? 'Allow' });
        else if (a.action === 'remove-ip-rule') {
            const kept = new Set((plan.patch?.networkAcls?.ipRules ?? []).map((r) => rangeKey(r.value)));
            const removed =
                stringList(a.detail.removed) ??
                (p.networkAcls?.ipRules ?? []).map((r) => r.value).filter((v) => !kept.has(rangeKey(v)));
            wanted.push({ id, rule: a.rule, action: a.action, ipRules: removed });
        } else if (a.action === 'remove-vnet-rule') {
            const removed = new Set((stringList(a.detail.removed) ?? []).map((id) => id.toLowerCase()));
            // From the vault as read: exactly the removed rules, each with its flag as it was.
            const rules = (p.networkAcls?.virtualNetworkRules ?? [])
                .filter((r) => removed.has(r.id.toLowerCase()))
                .map((r) => ({
                    id: r.id,
                    ignoreMissingVnetServiceEndpoint: r.ignoreMissingVnetServiceEndpoint ?? false,
                }));
            wanted.push({ id, rule: a.rule, action: a.action, virtualNetworkRules: rules });
        } else if (a.action === 'disable-public-network-access')
            wanted.push({
                id,
                rule: a.rule,
                action: a.action,
                publicNetworkAccess: p.publicNetworkAccess ?? 'Enabled',
            });
        else if (a.action === 'restore-rbac-authorization')
            wanted.push({
                id,
                rule: a.rule,
                action: a.action,
                enableRbacAuthorization: p.enableRbacAuthorization ?? false,
            });
        else if (a.action === 'remove-access-policy') {
            const oid = typeof a.detail.objectId === 'string' ? a.detail.objectId.toLowerCase() : undefined;
            const found = removals.findIndex((e) => oid === undefined || e.objectId.toLowerCase() === oid);
            if (found < 0) return;
            const [entry] = removals.splice(found, 1) as [VaultAccessPolicy];
            wanted.push({ id, rule: a.rule, action: a.action, entry });
        }
    });
    const head = { vaultId, at, rules: rules.slice(0, 20) };
    const parts: UndoPart[] = [];
    let size = JSON.stringify(head).length + 64;
    let omitted = 0;
    for (const part of wanted) {
        let fitted: UndoPart | undefined = part;
        let cost = JSON.stringify(part).length + 1;
        if (size + cost > MAX_STATE_CHARS && part.action === 'remove-vnet-rule') {
            const room =
                MAX_STATE_CHARS - size - JSON.stringify({ ...part, virtualNetworkRules: [], omitted: 99999 }).length;
            const keep: VirtualNetworkRule[] = [];
            let used = 0;
            for (const r of part.virtualNetworkRules) {
                const n = JSON.stringify(r).length + 1;
                if (used + n > room) break;
                keep.push(r);
                used += n;
            }
            fitted =
                keep.length === 0
                    ? undefined
                    : { ...part, virtualNetworkRules: keep, omitted: part.virtualNetworkRules.length - keep.length };
            cost = fitted === undefined ? 0 : JSON.stringify(fitted).length + 1;
        }
        if (size + cost > MAX_STATE_CHARS && part.action === 'remove-ip-rule') {
            // Keep as many removed rules as fit; say how many were not kept.
            const room = MAX_STATE_CHARS - size - JSON.stringify({ ...part, ipRules: [], omitted: 99999 }).length;
            const keep: string[] = [];
            let used = 0;
            for (const r of part.ipRules) {
                if (used + r.length + 3 > room) break;
                keep.push(r);
                used += r.length + 3;
            }
            fitted =
                keep.length === 0 ? undefined : { ...part, ipRules: keep, omitted: part.ipRules.length - keep.length };
            cost = fitted === undefined ? 0 : JSON.stringify(fitted).length + 1;
        }
        if (fitted === undefined || size + cost > MAX_STATE_CHARS) {
            omitted++;
            continue;
        }
        parts.push(fitted);
        size += cost;
    }
    return { ...head, parts, ...(omitted === 0 ? {} : { omittedParts: omitted }) };
}

/**
 * The undo record of a change made outside the vault resource (a deleted role assignment, a restored diagnostic
 * setting): one part, tagged with its rule.
 */
export function undoRecordOfPart(
    vaultId: string,
    at: string,
    rules: readonly string[],
    part: UndoPartInput,
): UndoRecord {
    const kept = { ...part, id: 'p0' } as UndoPart;
    const head = { vaultId, at, rules: rules.slice(0, 20) };
    return JSON.stringify(kept).length + JSON.stringify(head).length > MAX_STATE_CHARS
        ? { ...head, parts: [], omittedParts: 1 }
        : { ...head, parts: [kept] };
}

/** The parts of a record; a legacy record's are derived from its saved state and plan (rule: the first that fits). */
export function partsOf(record: UndoRecord): readonly UndoPart[] {
    if (record.parts !== undefined) return record.parts;
    const ruleFor = (action: ActionId): string =>
        record.rules.find((r) => ACTIONS_BY_RULE[r] === action) ?? record.rules[0] ?? 'unknown';
    const out: UndoPart[] = [];
    const before = record.before;
    const patch = record.plan?.patch ?? undefined;
    const undoneAt = record.undoneAt === undefined ? {} : { undoneAt: record.undoneAt };
    if (before !== undefined && patch?.networkAcls !== undefined) {
        const was = before.networkAcls ?? { defaultAction: 'Allow', ipRules: [] };
        const sent = patch.networkAcls;
        if (was.defaultAction !== sent.defaultAction && was.defaultAction !== undefined) {
            const action = 'restore-firewall-default';
            out.push({
                id: 'legacy-acl',
                rule: ruleFor(action),
                action,
                defaultAction: was.defaultAction,
                ...undoneAt,
            });
        }
        const kept = new Set((sent.ipRules ?? []).map((r) => rangeKey(r.value)));
        const removed = (was.ipRules ?? []).map((r) => r.value).filter((v) => !kept.has(rangeKey(v)));
        if (removed.length > 0) {
            const action = 'remove-ip-rule';
            out.push({ id: 'legacy-ip', rule: ruleFor(action), action, ipRules: removed, ...undoneAt });
        }
    }
    if (before !== undefined && patch?.publicNetworkAccess !== undefined && before.publicNetworkAccess !== null) {
        const action = 'disable-public-network-access';
        out.push({
            id: 'legacy-pna',
            rule: ruleFor(action),
            action,
            publicNetworkAccess: before.publicNetworkAccess,
            ...undoneAt,
        });
    }
    (record.plan?.accessPolicyRemovals ?? []).forEach((entry, i) => {
        const action = 'remove-access-policy';
        out.push({ id: `legacy-ap${i}`, rule: ruleFor(action), action, entry, ...undoneAt });
    });
    return out;
}

/** The parts of `record` an undo in `scope` covers (all of them without a scope). */
export function partsInScope(record: UndoRecord, scope: UndoScope | undefined): readonly UndoPart[] {
    const parts = partsOf(record);
    if (scope === undefined) return parts;
    const rules = new Set(scope.rules);
    const grantees = new Set(lower(scope.grantees));
    return parts.filter(
        (p) =>
            rules.has(p.rule) &&
            (grantees.size === 0 ||
                (p.action === 'remove-access-policy'
                    ? grantees.has(p.entry.objectId.toLowerCase())
                    : p.action === 'remove-role-assignment'
                      ? grantees.has(p.assignment.principalId.toLowerCase())
                      : true)),
    );
}

/**
 * What to change on `current` to restore what the remediation of `record` changed, limited to the parts in `scope`
 * that were not undone yet (every part when no scope is given).
 */
export function planRestore(record: UndoRecord, current: VaultSnapshot, scope?: UndoScope): RestorePlan {
    const restored: string[] = [];
    const parts = partsInScope(record, scope).filter((p) => p.undoneAt === undefined);
    const now = current.properties.networkAcls ?? {};
    const acl: { -readonly [K in keyof VaultNetworkAcls]: VaultNetworkAcls[K] } = { ...now };
    let aclChanged = false;
    let publicNetworkAccessOut: string | undefined;
    const ipRanges: string[] = [];
    const subnets: string[] = [];
    let networkDefaultAction: VaultApprovals['networkDefaultAction'];
    let publicNetworkAccess: VaultApprovals['publicNetworkAccess'];
    const accessPolicyAdds: VaultAccessPolicy[] = [];
    const manual: ManualUndoStep[] = [];
    const diagnosticSettings: { name: string; previous: DiagnosticSettingProperties }[] = [];
    const roles: { objectId: string; roleDefinitionId: string; scope: string }[] = [];
    let enableRbacAuthorization: boolean | undefined;
    let authorization: VaultApprovals['authorization'];
    let auditSetting: VaultApprovals['auditSetting'];
    const notKept: string[] = [];
    // IP rules first, then the default action: the order people read in the result.
    for (const part of parts) {
        if (part.action !== 'remove-ip-rule') continue;
        const present = new Set((acl.ipRules ?? []).map((r) => rangeKey(r.value)));
        const readd = part.ipRules.filter((v) => !present.has(rangeKey(v)));
        if (readd.length > 0) {
            acl.ipRules = [...(acl.ipRules ?? []), ...readd.map((value) => ({ value }))];
            aclChanged = true;
            for (const v of readd) restored.push(`IP rule ${v} restored`);
        }
        ipRanges.push(...part.ipRules);
        if ((part.omitted ?? 0) > 0) notKept.push(`${part.omitted} more removed IP rule(s) were not kept for undo`);
    }
    for (const part of parts) {
        if (part.action !== 'remove-vnet-rule') continue;
        const present = new Set((acl.virtualNetworkRules ?? []).map((r) => r.id.toLowerCase()));
        // Exactly the removed rules, each as it was read (its ignoreMissingVnetServiceEndpoint flag included).
        const readd = part.virtualNetworkRules.filter((r) => !present.has(r.id.toLowerCase()));
        if (readd.length > 0) {
            acl.virtualNetworkRules = [...(acl.virtualNetworkRules ?? []), ...readd.map((r) => ({ ...r }))];
            aclChanged = true;
            for (const r of readd) restored.push(`virtual network rule ${r.id} restored`);
        }
        subnets.push(...part.virtualNetworkRules.map((r) => r.id.toLowerCase()));
        if ((part.omitted ?? 0) > 0)
            notKept.push(`${part.omitted} more removed virtual network rule(s) were not kept for undo`);
    }
    for (const part of parts) {
        if (part.action === 'restore-firewall-default') {
            networkDefaultAction = part.defaultAction.toLowerCase() === 'allow' ? 'Allow' : 'Deny';
            if ((now.defaultAction ?? '').toLowerCase() !== part.defaultAction.toLowerCase()) {
                acl.defaultAction = part.defaultAction;
                aclChanged = true;
                restored.push(`firewall default action back to ${part.defaultAction}`);
            }
        } else if (part.action === 'disable-public-network-access') {
            publicNetworkAccess = part.publicNetworkAccess.toLowerCase() === 'enabled' ? 'Enabled' : 'Disabled';
            const have = (current.properties.publicNetworkAccess ?? '').toLowerCase();
            if (have !== part.publicNetworkAccess.toLowerCase()) {
                publicNetworkAccessOut = part.publicNetworkAccess;
                restored.push(`public network access back to ${part.publicNetworkAccess}`);
            }
        } else if (part.action === 'remove-access-policy') {
            accessPolicyAdds.push(part.entry);
            restored.push(
                `access policy of ${part.entry.objectId} restored (${permissionsText(part.entry.permissions)})`,
            );
        } else if (part.action === 'remove-role-assignment') {
            // Manual: re-granting data access is a human act with the human's own rights. The approval still
            // keeps the reconciler from deleting that principal's role at that scope again while it lasts.
            const a = part.assignment;
            const step = manualStepOf(part, record.vaultId);
            if (step !== undefined) manual.push(step);
            roles.push({
                objectId: a.principalId.toLowerCase(),
                roleDefinitionId: a.roleDefinitionId.toLowerCase().split('/').pop() ?? '',
                scope: scopeKey(a.scope),
            });
        } else if (part.action === 'restore-rbac-authorization') {
            if (!part.enableRbacAuthorization) authorization = 'access-policies';
            if (current.properties.enableRbacAuthorization !== part.enableRbacAuthorization) {
                enableRbacAuthorization = part.enableRbacAuthorization;
                restored.push(`Azure RBAC authorization back to ${part.enableRbacAuthorization ? 'on' : 'off'}`);
            }
        } else if (part.action === 'restore-diagnostic-setting') {
            auditSetting = 'exempt';
            if (part.previous === undefined) {
                // Deleting a setting is left to the person (the role holds no diagnosticSettings/delete).
                const step = manualStepOf(part, record.vaultId);
                if (step !== undefined) manual.push(step);
            } else {
                diagnosticSettings.push({ name: part.name, previous: part.previous });
                restored.push(`diagnostic setting ${part.name} back as it was`);
            }
        }
    }
    if (restored.length === 0 && manual.length === 0)
        restored.push('nothing to restore: the vault already has the saved state');
    restored.push(...notKept);
    const out: { networkAcls?: VaultNetworkAcls; publicNetworkAccess?: string; enableRbacAuthorization?: boolean } = {};
    if (enableRbacAuthorization !== undefined) out.enableRbacAuthorization = enableRbacAuthorization;
    if (aclChanged)
        out.networkAcls = {
            bypass: acl.bypass ?? 'AzureServices',
            defaultAction: acl.defaultAction ?? 'Allow',
            ipRules: acl.ipRules ?? [],
            virtualNetworkRules: acl.virtualNetworkRules ?? [],
        };
    if (publicNetworkAccessOut !== undefined) out.publicNetworkAccess = publicNetworkAccessOut;
    return {
        ...(out.networkAcls === undefined &&
        out.publicNetworkAccess === undefined &&
        out.enableRbacAuthorization === undefined
            ? {}
            : { patch: out }),
        accessPolicyAdds,
        ...(diagnosticSettings.length === 0 ? {} : { diagnosticSettings }),
        ...(manual.length === 0 ? {} : { manual }),
        restored,
        parts: parts.map((p) => p.id),
        approvals: {
            ipRanges: [...new Set(ipRanges)],
            ...(subnets.length === 0 ? {} : { virtualNetworkRules: [...new Set(subnets)] }),
            principals: accessPolicyAdds.map((e) => ({
                objectId: e.objectId.toLowerCase(),
                permissions: {
                    keys: lower(e.permissions.keys),
                    secrets: lower(e.permissions.secrets),
                    certificates: lower(e.permissions.certificates),
                    storage: lower(e.permissions.storage),
                },
            })),
            ...(networkDefaultAction === undefined ? {} : { networkDefaultAction }),
            ...(publicNetworkAccess === undefined ? {} : { publicNetworkAccess }),
            ...(roles.length === 0 ? {} : { roles }),
            ...(authorization === undefined ? {} : { authorization }),
            ...(auditSetting === undefined ? {} : { auditSetting }),
        },
    };
}

/** The record with `partIds` marked undone at `at` (a legacy record is rewritten in parts). */
export function markPartsUndone(record: UndoRecord, partIds: readonly string[], at: string): UndoRecord {
    const ids = new Set(partIds);
    const parts = partsOf(record).map((p) => (ids.has(p.id) ? { ...p, undoneAt: at } : p));
    const { before: _b, plan: _p, undoneAt: _u, ...rest } = record;
    return { ...rest, parts };
}

function unionPermissions(a: AccessPolicyPermissions | undefined, b: AccessPolicyPermissions): AccessPolicyPermissions {
    if (a === undefined) return b;
    const u = (x: readonly string[], y: readonly string[]): string[] => [...new Set([...x, ...y])];
    return {
        keys: u(a.keys, b.keys),
        secrets: u(a.secrets, b.secrets),
        certificates: u(a.certificates, b.certificates),
        storage: u(a.storage, b.storage),
    };
}

/** Accumulates approvals (a vault may be undone several times). */
export function mergeApprovals(a: VaultApprovals | undefined, b: VaultApprovals): VaultApprovals {
    if (a === undefined) return b;
    const principals = new Map(a.principals.map((p) => [p.objectId, p.permissions]));
    for (const p of b.principals)
        principals.set(p.objectId, unionPermissions(principals.get(p.objectId), p.permissions));
    const networkDefaultAction = b.networkDefaultAction ?? a.networkDefaultAction;
    const publicNetworkAccess = b.publicNetworkAccess ?? a.publicNetworkAccess;
    const subnets = [...new Set([...(a.virtualNetworkRules ?? []), ...(b.virtualNetworkRules ?? [])])];
    const roleKey = (r: { objectId: string; roleDefinitionId: string; scope?: string }) =>
        `${r.objectId}|${r.roleDefinitionId}|${r.scope ?? '*'}`;
    const roles = [...new Map([...(a.roles ?? []), ...(b.roles ?? [])].map((r) => [roleKey(r), r])).values()];
    const authorization = b.authorization ?? a.authorization;
    const auditSetting = b.auditSetting ?? a.auditSetting;
    return {
        ipRanges: [...new Set([...a.ipRanges, ...b.ipRanges])],
        ...(subnets.length === 0 ? {} : { virtualNetworkRules: subnets }),
        principals: [...principals].map(([objectId, permissions]) => ({ objectId, permissions })),
        ...(networkDefaultAction === undefined ? {} : { networkDefaultAction }),
        ...(publicNetworkAccess === undefined ? {} : { publicNetworkAccess }),
        ...(roles.length === 0 ? {} : { roles }),
        ...(authorization === undefined ? {} : { authorization }),
        ...(auditSetting === undefined ? {} : { auditSetting }),
    };
}

function isStored(v: unknown): v is StoredApprovals {
    return (
        typeof v === 'object' &&
        v !== null &&
        (v as { v?: unknown }).v === 2 &&
        Array.isArray((v as StoredApprovals).grants)
    );
}

/**
 * The approvals in force at `now`, from the stored value. Grants past their expiry are dropped; approvals stored before
 * approvals expired (no expiry at all) are not honoured any more.
 */
export function activeApprovals(stored: unknown, now: number): VaultApprovals | undefined {
    if (!isStored(stored)) return undefined;
    let out: VaultApprovals | undefined;
    for (const g of stored.grants) {
        if (g.until <= now) continue;
        const { undoId: _u, until: _t, ...a } = g;
        out = mergeApprovals(out, a);
    }
    return out;
}

/** Items of an approval: ranges, principals and the two settings. */
export function approvalItems(a: VaultApprovals): number {
    return (
        a.ipRanges.length +
        (a.virtualNetworkRules ?? []).length +
        a.principals.length +
        (a.roles?.length ?? 0) +
        (a.networkDefaultAction === undefined ? 0 : 1) +
        (a.publicNetworkAccess === undefined ? 0 : 1) +
        (a.authorization === undefined ? 0 : 1) +
        (a.auditSetting === undefined ? 0 : 1)
    );
}

/** Whether one grant of these approvals fits the bounds on its own. */
export function approvalFits(a: VaultApprovals): boolean {
    const probe: StoredApprovals = { v: 2, grants: [{ ...a, undoId: 'x'.repeat(40), until: Number.MAX_SAFE_INTEGER }] };
    return approvalItems(a) <= MAX_APPROVED_ITEMS && JSON.stringify(probe).length <= MAX_STATE_CHARS;
}

/** One line per approved item, for people. */
export function describeApprovals(a: VaultApprovals): string[] {
    return [
        ...(a.networkDefaultAction === undefined ? [] : [`firewall default action ${a.networkDefaultAction}`]),
        ...(a.publicNetworkAccess === undefined ? [] : [`public network access ${a.publicNetworkAccess}`]),
        ...a.ipRanges.map((r) => `IP rule ${r}`),
        ...(a.virtualNetworkRules ?? []).map((r) => `virtual network rule ${r}`),
        ...a.principals.map((p) => `access policy of ${p.objectId} (${permissionsText(p.permissions)})`),
        ...(a.roles ?? []).map(
            (r) => `role ${r.roleDefinitionId} for ${r.objectId}${r.scope === undefined ? '' : ` at ${r.scope}`}`,
        ),
        ...(a.authorization === undefined ? [] : ['access policies instead of Azure RBAC']),
        ...(a.auditSetting === undefined ? [] : ['the diagnostic setting as it is now']),
    ];
}

/**
 * Adds one undo's grant to the stored approvals: expired grants are dropped, and while the vault holds more than
 * {@link MAX_APPROVED_ITEMS} items or {@link MAX_STATE_CHARS} characters, the other grants that expire first are
 * dropped (they are exemptions: dropping one means the policy is enforced again). Check {@link approvalFits} first:
 * the new grant itself is always kept. Returns the new value and the grants dropped to stay bounded.
 */
export function addApprovals(
    stored: unknown,
    grant: ApprovalGrant,
    now: number,
): { readonly value: StoredApprovals; readonly dropped: readonly ApprovalGrant[] } {
    const others = (isStored(stored) ? stored.grants : []).filter((g) => g.until > now && g.undoId !== grant.undoId);
    const dropped: ApprovalGrant[] = [];
    // The grants that expire first (for equal expiry, the older ones) go first.
    const order = others.map((g, n) => ({ g, n })).sort((a, b) => a.g.until - b.g.until || a.n - b.n);
    const keep = new Set(others);
    const size = (): number => JSON.stringify({ v: 2, grants: [...keep, grant] }).length;
    const items = (): number => [...keep, grant].reduce((n, g) => n + approvalItems(g), 0);
    for (const { g } of order) {
        if (items() <= MAX_APPROVED_ITEMS && size() <= MAX_STATE_CHARS) break;
        keep.delete(g);
        dropped.push(g);
    }
    return { value: { v: 2, grants: [...others.filter((g) => keep.has(g)), grant] }, dropped };
}

/**
 * The configured policy with what people approved through undo. Stored approvals are filtered by `now` first (pass
 * it whenever the value comes from the store); a plain {@link VaultApprovals} is taken as already in force.
 */
export function withApprovals(
    policy: VaultPolicy,
    approvals: VaultApprovals | StoredApprovals | undefined,
    now?: number,
): VaultPolicy {
    const a = isStored(approvals) ? activeApprovals(approvals, now ?? Number.NEGATIVE_INFINITY) : approvals;
    if (a === undefined) return policy;
    const approvedPrincipals = new Map(policy.approvedPrincipals);
    for (const p of a.principals) {
        if (approvedPrincipals.has(p.objectId) && approvedPrincipals.get(p.objectId) === undefined) continue; // any
        approvedPrincipals.set(p.objectId, unionPermissions(approvedPrincipals.get(p.objectId), p.permissions));
    }
    const ranges = a.ipRanges.map((r) => parseRange(r)).filter((r): r is IpRange => r !== undefined);
    let approvedRoles = policy.approvedRoles;
    let approvedRoleScopes = policy.approvedRoleScopes;
    for (const r of a.roles ?? []) {
        if (r.scope !== undefined) {
            // Exactly that principal, role and scope (the assignment a person re-creates after a manual undo).
            const next = new Map(approvedRoleScopes ?? []);
            const key = `${r.objectId.toLowerCase()}|${r.roleDefinitionId.toLowerCase()}`;
            next.set(key, new Set([...(next.get(key) ?? []), scopeKey(r.scope)]));
            approvedRoleScopes = next;
            continue;
        }
        // A principal approved with any role stays so; otherwise the restored role joins its list.
        if (approvedPrincipals.has(r.objectId) && approvedRoles?.get(r.objectId) === undefined) continue;
        if (!approvedPrincipals.has(r.objectId))
            approvedPrincipals.set(r.objectId, { keys: [], secrets: [], certificates: [], storage: [] });
        const next = new Map(approvedRoles ?? []);
        next.set(r.objectId, new Set([...(next.get(r.objectId) ?? []), r.roleDefinitionId]));
        approvedRoles = next;
    }
    // Undo switched RBAC off: the policy's wish for RBAC rests while the approval lasts.
    const { authorization: wantedAuthorization, ...base } = policy;
    const authorization =
        a.authorization !== undefined && wantedAuthorization === 'rbac' ? undefined : wantedAuthorization;
    return {
        ...base,
        ...(authorization === undefined ? {} : { authorization }),
        ...(approvedRoles === undefined ? {} : { approvedRoles }),
        ...(approvedRoleScopes === undefined ? {} : { approvedRoleScopes }),
        ...(a.auditSetting === 'exempt' ? { auditSettingExempt: true } : {}),
        networkDefaultAction:
            a.networkDefaultAction !== undefined && a.networkDefaultAction !== policy.networkDefaultAction
                ? undefined
                : policy.networkDefaultAction,
        publicNetworkAccess:
            a.publicNetworkAccess !== undefined && a.publicNetworkAccess !== policy.publicNetworkAccess
                ? undefined
                : policy.publicNetworkAccess,
        approvedIpRanges: [...policy.approvedIpRanges, ...ranges],
        ...(policy.approvedVirtualNetworkRules === undefined
            ? {}
            : {
                  approvedVirtualNetworkRules: new Set([
                      ...policy.approvedVirtualNetworkRules,
                      ...(a.virtualNetworkRules ?? []).map((r) => r.toLowerCase()),
                  ]),
              }),
        approvedPrincipals,
    };
}
