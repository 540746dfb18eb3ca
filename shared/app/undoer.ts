import { ResponderError } from '../core/errors';
import type { VaultRef } from '../core/events/types';
import type { AccessAdmin, Clock, VaultAdmin } from '../core/ports';
import type { VaultSnapshot } from '../core/remediation/types';
import {
    activeApprovals,
    addApprovals,
    type ApprovalGrant,
    approvalFits,
    describeApprovals,
    type ManualUndoStep,
    markPartsUndone,
    partsInScope,
    planRestore,
    type UndoRecord,
    type UndoScope,
    type VaultApprovals,
} from '../core/remediation/undo';
import { type StateStore, stateKey } from '../core/state/store';
import { withRetry } from './armCalls';
import type { VaultLeases } from './vaultLease';

export const UNDO_TTL_MS = 30 * 24 * 3_600_000;
/** How long what an undo restored stays approved, unless configured (`remediation.undoApprovalHours`). */
export const DEFAULT_UNDO_APPROVAL_MS = 24 * 3_600_000;

export interface UndoerOptions {
    /** ARM access; undefined when nothing may be changed (then undo refuses). */
    readonly admin: VaultAdmin | undefined;
    /** Diagnostic settings (undo of restore-diagnostic-setting when there was a setting of that name before). */
    readonly access?: AccessAdmin;
    readonly store: StateStore;
    readonly clock: Clock;
    /** The remediator's leases: undo and remediation never change one vault at the same time. */
    readonly leases: VaultLeases;
    readonly retryBudgetMs: number;
    /** How long an undo's approval lasts (default 24 h). */
    readonly approvalMs?: number;
}

/** What one undo did. */
export interface UndoResult {
    /** One line per restored item. */
    readonly restored: readonly string[];
    /** One line per approved item. */
    readonly approved: readonly string[];
    /** When those approvals expire (ISO). */
    readonly approvedUntil: string;
    /**
     * What is left to the person who undid, to run with their own rights (a deleted role assignment, a diagnostic
     * setting the responder created): the responder's role holds neither right. Approved like the rest meanwhile.
     */
    readonly manual: readonly ManualUndoStep[];
}

/**
 * What people approved through undo on this vault and is still in force at `now` (merged into its configured policy).
 * Items past their expiry are left out. `now` defaults to the wall clock: pass the responder's clock.
 */
export async function readApprovals(
    store: StateStore,
    vault: VaultRef,
    now: number = Date.now(),
): Promise<VaultApprovals | undefined> {
    const [s] = await store.getMany([stateKey(vault.name, 'approvals')]);
    return activeApprovals(s?.value, now);
}

/** What a restore should have put back but the vault does not show. */
function verifyRestore(after: VaultSnapshot, restore: ReturnType<typeof planRestore>): string[] {
    const problems: string[] = [];
    const acl = after.properties.networkAcls;
    const wanted = restore.patch?.networkAcls;
    if (wanted !== undefined) {
        if (wanted.defaultAction !== undefined && acl?.defaultAction !== wanted.defaultAction)
            problems.push(`default action is ${acl?.defaultAction ?? 'unset'}`);
        const have = new Set((acl?.ipRules ?? []).map((r) => r.value));
        for (const r of wanted.ipRules ?? []) if (!have.has(r.value)) problems.push(`IP rule ${r.value} missing`);
        const vnets = new Set((acl?.virtualNetworkRules ?? []).map((r) => r.id.toLowerCase()));
        for (const r of wanted.virtualNetworkRules ?? [])
            if (!vnets.has(r.id.toLowerCase())) problems.push(`virtual network rule ${r.id} missing`);
    }
    const rbac = restore.patch?.enableRbacAuthorization;
    if (rbac !== undefined && (after.properties.enableRbacAuthorization ?? false) !== rbac)
        problems.push(`enableRbacAuthorization is ${String(after.properties.enableRbacAuthorization ?? false)}`);
    const pna = restore.patch?.publicNetworkAccess;
    if (pna !== undefined && (after.properties.publicNetworkAccess ?? '').toLowerCase() !== pna.toLowerCase())
        problems.push(`publicNetworkAccess is ${after.properties.publicNetworkAccess ?? 'unset'}`);
    for (const e of restore.accessPolicyAdds) {
        const entry = (after.properties.accessPolicies ?? []).find(
            (p) => p.objectId.toLowerCase() === e.objectId.toLowerCase(),
        );
        if (entry === undefined) problems.push(`access policy of ${e.objectId} missing`);
    }
    return problems;
}

/** Undoes remediations from the incident links. */
export class Undoer {
    constructor(private readonly o: UndoerOptions) {}

    private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
        return withRetry(this.o.clock, this.o.retryBudgetMs, what, fn);
    }

    /**
     * Undoes the parts of one remediation that `scope` covers (the incident's own rule and principals; every part
     * without a scope): under the vault's lease, restores what they changed (relative to the vault as it is now),
     * reads back, approves the restored state for a limited time so that it is not reverted again, and marks those
     * parts used (the other parts stay undoable by their own incidents). Throws a ResponderError when it cannot
     * (unknown snapshot, parts already undone, busy vault, ARM failure).
     */
    async undo(vault: VaultRef, undoId: string, scope?: UndoScope): Promise<UndoResult> {
        const admin = this.o.admin;
        if (admin === undefined)
            throw new ResponderError('ARM.UNAVAILABLE', 'not connected to Azure Resource Manager: cannot undo');
        const key = stateKey(vault.name, `undo|${undoId}`);
        const [saved] = await this.o.store.getMany([key]);
        const record = saved?.value as UndoRecord | undefined;
        if (saved === undefined || record === undefined || record === null)
            throw new ResponderError('INPUT.UNREADABLE', `no saved state ${undoId} for ${vault.name} (expired?)`);
        const mine = partsInScope(record, scope);
        if (mine.length === 0)
            throw new ResponderError(
                'INPUT.UNREADABLE',
                `remediation ${undoId} changed nothing that belongs to this incident (${(scope?.rules ?? []).join(', ')})`,
            );
        const open = mine.filter((p) => p.undoneAt === undefined);
        if (open.length === 0)
            throw new ResponderError(
                'UNDO.ALREADY_DONE',
                mine
                    .map((p) => p.undoneAt as string)
                    .sort()
                    .at(-1) ?? '',
            );
        // Held (renewed) like a reconcile's: an undo excludes a reconcile of the vault, in this process or another.
        const lease = await this.o.leases.hold(vault);
        if (lease === undefined)
            throw new ResponderError('STATE.CONFLICT', `${vault.name} is being remediated right now: try again`, true);
        try {
            const current = await this.retry(`reading ${vault.name}`, () => admin.get(vault));
            const restore = planRestore(record, current, scope);
            // Checked before anything changes: a restore whose approval cannot be stored would be reverted again.
            if (!approvalFits(restore.approvals))
                throw new ResponderError(
                    'INPUT.UNREADABLE',
                    `this undo would approve more than the state store holds for one vault: change the configured policy of ${vault.name} instead`,
                );
            const access = this.o.access;
            if ((restore.diagnosticSettings?.length ?? 0) > 0 && access === undefined)
                throw new ResponderError(
                    'ARM.UNAVAILABLE',
                    'not connected to the diagnostic-settings API: cannot undo this remediation',
                );
            const patch = restore.patch;
            if (patch !== undefined) await this.retry(`restoring ${vault.name}`, () => admin.patch(vault, patch));
            for (const entry of restore.accessPolicyAdds)
                await this.retry(`restoring the access policy of ${entry.objectId}`, () =>
                    admin.addAccessPolicy(vault, entry),
                );
            const missing: string[] = [];
            if (access !== undefined) missing.push(...(await this.restoreOutside(access, vault, restore)));
            const after = await this.retry(`reading back ${vault.name}`, () => admin.get(vault));
            missing.push(...verifyRestore(after, restore));
            if (missing.length > 0)
                throw new ResponderError(
                    'ARM.UNAVAILABLE',
                    `undo of ${vault.name} did not take: ${missing.join('; ')}`,
                );
            // Approve only what was restored (still under the lease): a failed undo must not approve anything.
            const now = this.o.clock.now();
            const until = now + (this.o.approvalMs ?? DEFAULT_UNDO_APPROVAL_MS);
            const dropped = await this.approve(vault, { ...restore.approvals, undoId, until }, now);
            const done = await this.o.store.put(
                key,
                markPartsUndone(record, restore.parts, new Date(now).toISOString()),
                saved.etag,
                now + UNDO_TTL_MS,
            );
            if (!done.ok) throw new ResponderError('STATE.CONFLICT', `remediation ${undoId} was undone concurrently`);
            return {
                restored: [
                    ...restore.restored,
                    ...(dropped.length === 0
                        ? []
                        : [
                              `${dropped.length} earlier undo approval(s) of this vault dropped to stay within the limit (${dropped.map((g) => g.undoId).join(', ')})`,
                          ]),
                ],
                approved: describeApprovals(restore.approvals),
                approvedUntil: new Date(until).toISOString(),
                manual: restore.manual ?? [],
            };
        } finally {
            await lease.release();
        }
    }

    /**
     * Puts the diagnostic settings back as they were, then reads each back. Returns what did not take. Nothing here
     * creates a role assignment or deletes a setting: those undos are manual (`restore.manual`).
     */
    private async restoreOutside(
        access: AccessAdmin,
        vault: VaultRef,
        restore: ReturnType<typeof planRestore>,
    ): Promise<string[]> {
        const problems: string[] = [];
        for (const d of restore.diagnosticSettings ?? []) {
            await this.retry(`restoring diagnostic setting ${d.name}`, () =>
                access.putDiagnosticSetting(vault.resourceId, d.name, d.previous),
            );
            const list = await this.retry(`reading back the diagnostic settings of ${vault.name}`, () =>
                access.listDiagnosticSettings(vault.resourceId),
            );
            if (!list.some((x) => x.name.toLowerCase() === d.name.toLowerCase()))
                problems.push(`diagnostic setting ${d.name} missing`);
        }
        return problems;
    }

    /** Adds the grant to the vault's approvals (bounded); returns the grants that had to be dropped. */
    private async approve(vault: VaultRef, grant: ApprovalGrant, now: number): Promise<ApprovalGrant[]> {
        const key = stateKey(vault.name, 'approvals');
        for (let attempt = 0; attempt < 8; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const { value, dropped } = addApprovals(s?.value, grant, now);
            const expires = Math.max(now, ...value.grants.map((g) => g.until));
            const r = await this.o.store.put(key, value, s?.etag, expires);
            if (r.ok) return [...dropped];
        }
        throw new ResponderError('STATE.CONFLICT', `could not record the approvals of ${vault.name}`, true);
    }
}
