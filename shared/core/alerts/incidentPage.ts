/**
 * What the incident page shows besides the incident itself: every change of its remediations (before and after), exactly
 * what an undo would restore (the incident's own parts only, as the undoer scopes it), and the rule's runbook. Computed
 * from the stored undo records, never from ARM: the preview says what the saved state holds, and the undo itself still
 * restores relative to the vault as it is then.
 */
import { keyVaultRole } from '../rules/roles';
import type { AccessPolicyPermissions } from '../events/types';
import { manualStepOf, partsInScope, partsOf, type UndoPart, type UndoRecord } from '../remediation/undo';
import { rules, timerChecks } from '../rules/index';
import { type Incident, undoableAction, undoScopeOf } from './incident';

/** One change a remediation made, for people. */
export interface ChangeView {
    /** What changed, e.g. "Firewall default action". */
    readonly what: string;
    /** Before the remediation (as the responder found it). */
    readonly before: string;
    /** After the remediation (what the responder set). */
    readonly after: string;
    /** The rule whose finding asked for the change. */
    readonly rule: string;
    /** Whether the undo of this incident restores it; otherwise why not. */
    readonly undo: { readonly restores: true } | { readonly restores: false; readonly why: string };
}

export interface UndoPreview {
    readonly undoId: string;
    readonly at: string;
    readonly changes: readonly ChangeView[];
    /** One line per item the undo of this incident would put back. */
    readonly restores: readonly string[];
    /** Changes of the remediation not kept for undo (size bound). */
    readonly omitted: number;
}

/** The extra sections of an incident page. */
export interface IncidentPageContext {
    readonly ruleTitle?: string;
    readonly runbook: readonly string[];
    /** One per applied remediation with a saved undo record, oldest first. */
    readonly remediations: readonly UndoPreview[];
    /** Whether the incident has a remediation an undo link would act on. */
    readonly undoable: boolean;
}

function permissionsText(p: AccessPolicyPermissions | Partial<AccessPolicyPermissions>): string {
    const parts: string[] = [];
    for (const k of ['keys', 'secrets', 'certificates', 'storage'] as const) {
        const l = p[k];
        if (l !== undefined && l.length > 0) parts.push(`${k}: ${l.join(', ')}`);
    }
    return parts.join('; ') || 'no permissions';
}

function opposite(value: string, a: string, b: string): string {
    return value.toLowerCase() === a.toLowerCase() ? b : a;
}

/** What a part changed, its before and after, and what restoring it puts back. */
function describePart(
    p: UndoPart,
    vaultId: string,
): { what: string; before: string; after: string; restore: string[] } {
    // What the responder's role cannot undo (it holds no roleAssignments/write, no diagnosticSettings/delete) is
    // left to the person who undoes: the page shows the command to run with their own rights.
    const manual = manualStepOf(p, vaultId);
    const leftToYou =
        manual === undefined ? undefined : [`left to you, with your own rights: ${manual.what}: ${manual.command}`];
    switch (p.action) {
        case 'restore-firewall-default':
            return {
                what: 'Firewall default action',
                before: p.defaultAction,
                after: opposite(p.defaultAction, 'Deny', 'Allow'),
                restore: [`firewall default action back to ${p.defaultAction}`],
            };
        case 'remove-ip-rule':
            return {
                what: `IP rules (${p.ipRules.length + (p.omitted ?? 0)})`,
                before: `present: ${p.ipRules.join(', ')}${(p.omitted ?? 0) > 0 ? ` and ${p.omitted} more not kept` : ''}`,
                after: 'removed',
                restore: p.ipRules.map((r) => `IP rule ${r} added back`),
            };
        case 'remove-vnet-rule':
            return {
                what: `Virtual network rules (${p.virtualNetworkRules.length + (p.omitted ?? 0)})`,
                before: `present: ${p.virtualNetworkRules.map((r) => r.id).join(', ')}${(p.omitted ?? 0) > 0 ? ` and ${p.omitted} more not kept` : ''}`,
                after: 'removed',
                restore: p.virtualNetworkRules.map((r) => `virtual network rule ${r.id} added back`),
            };
        case 'disable-public-network-access':
            return {
                what: 'Public network access',
                before: p.publicNetworkAccess,
                after: opposite(p.publicNetworkAccess, 'Disabled', 'Enabled'),
                restore: [`public network access back to ${p.publicNetworkAccess}`],
            };
        case 'remove-access-policy':
            return {
                what: `Access policy of ${p.entry.objectId}`,
                before: permissionsText(p.entry.permissions),
                after: 'removed',
                restore: [`access policy of ${p.entry.objectId} added back (${permissionsText(p.entry.permissions)})`],
            };
        case 'remove-role-assignment':
            return {
                what: `Role assignment of ${p.assignment.principalId}`,
                before: `${keyVaultRole(p.assignment.roleDefinitionId.split('/').pop())?.name ?? p.assignment.roleDefinitionId} at ${p.assignment.scope}`,
                after: 'deleted',
                restore: leftToYou ?? [],
            };
        case 'restore-rbac-authorization':
            return {
                what: 'Azure RBAC authorization',
                before: p.enableRbacAuthorization ? 'on' : 'off',
                after: p.enableRbacAuthorization ? 'off' : 'on',
                restore: [`Azure RBAC authorization back to ${p.enableRbacAuthorization ? 'on' : 'off'}`],
            };
        case 'restore-diagnostic-setting':
            return {
                what: `Diagnostic setting ${p.name}`,
                before: p.previous === undefined ? 'none' : 'not sending AuditEvent to the responder hub',
                after: 'sending AuditEvent to the responder hub',
                restore: leftToYou ?? [`diagnostic setting ${p.name} as it was`],
            };
    }
}

/** The changes of one saved remediation and what this incident's undo would restore of it. */
export function undoPreviewOf(inc: Incident, undoId: string, record: UndoRecord, actsOn = true): UndoPreview {
    const mine = new Set(partsInScope(record, undoScopeOf(inc)).map((p) => p.id));
    const changes: ChangeView[] = [];
    const restores: string[] = [];
    for (const p of partsOf(record)) {
        const d = describePart(p, record.vaultId);
        let undo: ChangeView['undo'];
        if (inc.undone !== undefined && inc.undone.undoId === undoId && mine.has(p.id))
            undo = { restores: false, why: `restored at ${inc.undone.at}` };
        else if (!mine.has(p.id))
            undo = {
                restores: false,
                why:
                    p.rule === inc.rule
                        ? 'another principal of this rule: its own incident'
                        : `asked for by ${p.rule}: undo it from that incident`,
            };
        else if (p.undoneAt !== undefined) undo = { restores: false, why: `already restored at ${p.undoneAt}` };
        else if (!actsOn)
            undo = { restores: false, why: 'an earlier remediation: the undo link acts on the latest one' };
        else {
            undo = { restores: true };
            restores.push(...d.restore);
        }
        changes.push({ what: d.what, before: d.before, after: d.after, rule: p.rule, undo });
    }
    return { undoId, at: record.at, changes, restores, omitted: record.omittedParts ?? 0 };
}

/** The page context of an incident, from its saved undo records. */
export function incidentPageContext(
    inc: Incident,
    records: readonly { readonly undoId: string; readonly record: UndoRecord }[],
): IncidentPageContext {
    const meta = [...rules.map((r) => r.meta), ...timerChecks].find((m) => m.id === inc.rule);
    const undoable = undoableAction(inc);
    return {
        ...(meta === undefined ? {} : { ruleTitle: meta.title }),
        runbook: meta?.runbook ?? [],
        // The remediation an undo acts on first (the latest applied one), then the others.
        remediations: [...records]
            .sort((a, b) => Number(b.undoId === undoable?.undoId) - Number(a.undoId === undoable?.undoId))
            .map((r) => undoPreviewOf(inc, r.undoId, r.record, r.undoId === undoable?.undoId)),
        undoable: undoable !== undefined,
    };
}
