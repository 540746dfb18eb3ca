import type { FindingDraft, RuleContext, StatefulRule } from '../../engine/rule';
import { ACTIVITY_OPERATIONS, scopeCovers } from '../../events/activity';
import { principalOf } from '../../events/identity';
import type { AuditEvent, ScopeLevel } from '../../events/types';
import { stateKey } from '../../state/store';
import { keyVaultRole } from '../roles';
import type { VaultPolicy } from '../settings';
import { describeCaller } from '../text';

/**
 * One role assignment write, joined across its Activity Log records: the `Start` record carries the body (assignee,
 * role, scope), the `Success` or `Failure` record the outcome; either may arrive first, in separate batches.
 */
interface AssignmentState {
    readonly corr: string | undefined;
    readonly principalId?: string;
    readonly principalType?: string;
    readonly role?: string;
    readonly scope?: string;
    readonly level?: ScopeLevel;
    /** The outcome record said success (true) or failure (false); absent until it arrives. */
    readonly ok?: boolean;
    readonly fired?: boolean;
    readonly t: number;
}

/** True when `policy` approves `principal` holding `role`. */
function approves(policy: VaultPolicy, principal: string, role: string): boolean {
    if (!policy.approvedPrincipals.has(principal)) return false;
    const roles = policy.approvedRoles?.get(principal);
    return roles === undefined || roles.has(role);
}

function draftOf(event: AuditEvent, ctx: RuleContext, s: AssignmentState): FindingDraft | undefined {
    const ra = event.activity?.roleAssignment;
    const role = keyVaultRole(s.role);
    if (ra === undefined || role === undefined || s.principalId === undefined) return undefined;
    const principal = s.principalId;
    const covered = ra.scope.level === 'vault' ? [] : ctx.settings.knownVaults.filter((v) => scopeCovers(ra.scope, v));
    const unapprovedBy = [ctx.policy, ...covered.map((v) => ctx.settings.policyFor(v))].some(
        (p) => !approves(p, principal, role.id),
    );
    if (!unapprovedBy) return undefined;
    const where = ra.scope.level === 'vault' ? `vault ${event.vault.name}` : `${ra.scope.level} ${ra.scope.id}`;
    return {
        summary: `${role.name} assigned to ${s.principalType ?? 'principal'} ${principal} at ${where} by ${describeCaller(event)}`,
        principal,
        ...(role.reach === 'grant' ? { severity: 'critical' as const } : {}),
        groupKey: ra.name,
        details: {
            role: role.name,
            roleDefinitionId: role.id,
            roleReach: role.reach,
            scope: s.scope ?? ra.scope.id,
            scopeLevel: ra.scope.level,
            roleAssignmentId: ra.id,
            ...(s.principalType === undefined ? {} : { principalType: s.principalType }),
            ...(covered.length === 0 ? {} : { coveredVaults: covered.map((v) => v.resourceId) }),
            ...(principalOf(event) === undefined ? {} : { actorId: principalOf(event) }),
        },
    };
}

export const roleAssignmentGranted: StatefulRule<AssignmentState> = {
    kind: 'stateful',
    meta: {
        id: 'role-assignment-granted',
        title: 'Role granting Key Vault data access assigned to an unapproved principal',
        severity: 'high',
        mitre: ['T1098.003', 'T1078.004'],
        description:
            "An Azure Activity Log role assignment write (MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE) succeeds and gives a principal the vault policy does not approve (approvedPrincipals, with their optional roles list) a role that reaches Key Vault data: a Key Vault data role (Administrator, Secrets Officer/User, Crypto Officer/User, Crypto Service Encryption/Release User, Certificates Officer, Certificate User), a role that can grant one (Key Vault Data Access Administrator, Owner, User Access Administrator, Role Based Access Control Administrator: critical), or a role that writes access policies (Contributor, Key Vault Contributor). The scope may be the vault (or an object in it) or any scope above it: a resource group, subscription or management group assignment is checked against the policy of that scope (defaults and subscription overrides) and of every known vault it covers (vaults named by resource id in the config or the inventory). The assignee, role and scope come from the request body of the Start record and the outcome from the HTTP status of the Success or Failure record, joined by the assignment's id whatever their order. The finding's principal is the assignee; details carry the role, scope and the actor.",
        falsePositives: [
            'A planned grant by the platform team to a principal not yet listed in approvedPrincipals.',
            'Privileged Identity Management activations of an eligible assignment, when the principal is not listed.',
            'Owner or Contributor assigned at a subscription for reasons unrelated to Key Vault (the role still reaches its vaults).',
        ],
        references: [
            'https://learn.microsoft.com/azure/role-based-access-control/built-in-roles',
            'https://learn.microsoft.com/azure/key-vault/general/rbac-guide',
            'https://learn.microsoft.com/azure/azure-monitor/essentials/activity-log-schema',
            'https://learn.microsoft.com/azure/role-based-access-control/change-history-report',
        ],
        runbook: [
            'Identify the assignee (principal) and the actor: is the grant part of an approved change?',
            'If approved: add the principal (and its roles) to approvedPrincipals of the vault or scope.',
            'If not: delete the role assignment (its id is in roleAssignmentId), and review what the assignee read since (AuditEvent records of the covered vaults).',
            'For a role that can grant access (Owner, User Access Administrator, Data Access Administrator): check for further assignments the assignee made.',
            'Check how the actor obtained the right to write role assignments.',
        ],
    },
    operations: [ACTIVITY_OPERATIONS.roleAssignmentWrite],
    stateKey(event) {
        const ra = event.activity?.roleAssignment;
        if (ra === undefined) return undefined;
        return stateKey(event.vault.name, `ra|${ra.name.replace(/[/\\#?]/g, '_')}`);
    },
    stateTtlMs: (settings) => Math.max(settings.groupWindowMs, 24 * 3_600_000),
    evaluate(event, ctx, prev) {
        const ra = event.activity?.roleAssignment;
        if (ra === undefined) return {};
        const corr = event.correlationId;
        // A new write of the same assignment id (another correlation) starts over.
        const base: AssignmentState =
            prev === undefined || (corr !== undefined && prev.corr !== undefined && prev.corr !== corr)
                ? { corr, t: event.timeMs }
                : prev;
        let next: AssignmentState = base;
        if (ra.principalId !== undefined && base.principalId === undefined)
            next = {
                ...next,
                principalId: ra.principalId,
                ...(ra.principalType === undefined ? {} : { principalType: ra.principalType }),
                ...(ra.roleDefinitionId === undefined ? {} : { role: ra.roleDefinitionId }),
                scope: ra.scope.id,
                level: ra.scope.level,
            };
        if (event.outcome === 'success' && next.ok === undefined) next = { ...next, ok: true };
        else if (event.outcome !== 'success' && event.outcome !== 'unknown' && next.ok === undefined)
            next = { ...next, ok: false };
        const findings: FindingDraft[] = [];
        if (next.ok === true && next.principalId !== undefined && next.fired !== true) {
            const draft = draftOf(event, ctx, next);
            if (draft !== undefined) findings.push(draft);
            next = { ...next, fired: true };
        }
        return next === prev ? { findings } : { findings, state: next };
    },
};
