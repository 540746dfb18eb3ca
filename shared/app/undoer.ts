import { ResponderError } from '../core/errors';
import type { VaultRef } from '../core/events/types';
import type { Clock, VaultAdmin } from '../core/ports';
import type { VaultSnapshot } from '../core/remediation/types';
import { mergeApprovals, planRestore, type UndoRecord, type VaultApprovals } from '../core/remediation/undo';
import { type StateStore, stateKey } from '../core/state/store';
import { withRetry } from './armCalls';
import type { VaultLeases } from './vaultLease';

export const UNDO_TTL_MS = 30 * 24 * 3_600_000;

export interface UndoerOptions {
    /** ARM access; undefined when nothing may be changed (then undo refuses). */
    readonly admin: VaultAdmin | undefined;
    readonly store: StateStore;
    readonly clock: Clock;
    /** The remediator's leases: undo and remediation never change one vault at the same time. */
    readonly leases: VaultLeases;
    readonly retryBudgetMs: number;
}

/** What people approved through undo on this vault (merged into its configured policy). */
export async function readApprovals(store: StateStore, vault: VaultRef): Promise<VaultApprovals | undefined> {
    const [s] = await store.getMany([stateKey(vault.name, 'approvals')]);
    return (s?.value ?? undefined) as VaultApprovals | undefined;
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
    }
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
     * Undoes one remediation: under the vault's lease, restores what it removed (relative to the vault as it is now),
     * reads back, records the restored state as approved for the vault so that it is not reverted again, and marks
     * the snapshot used. Throws a ResponderError when it cannot (unknown or used snapshot, busy vault, ARM failure).
     */
    async undo(vault: VaultRef, undoId: string): Promise<{ restored: readonly string[] }> {
        const admin = this.o.admin;
        if (admin === undefined)
            throw new ResponderError('ARM.UNAVAILABLE', 'not connected to Azure Resource Manager: cannot undo');
        const key = stateKey(vault.name, `undo|${undoId}`);
        const [saved] = await this.o.store.getMany([key]);
        const record = saved?.value as UndoRecord | undefined;
        if (saved === undefined || record === undefined || record === null)
            throw new ResponderError('INPUT.UNREADABLE', `no saved state ${undoId} for ${vault.name} (expired?)`);
        if (record.undoneAt !== undefined) throw new ResponderError('UNDO.ALREADY_DONE', record.undoneAt);
        if (!(await this.o.leases.acquire(vault)))
            throw new ResponderError('STATE.CONFLICT', `${vault.name} is being remediated right now: try again`, true);
        try {
            const current = await this.retry(`reading ${vault.name}`, () => admin.get(vault));
            const restore = planRestore(record, current);
            const patch = restore.patch;
            if (patch !== undefined) await this.retry(`restoring ${vault.name}`, () => admin.patch(vault, patch));
            for (const entry of restore.accessPolicyAdds)
                await this.retry(`restoring the access policy of ${entry.objectId}`, () =>
                    admin.addAccessPolicy(vault, entry),
                );
            const after = await this.retry(`reading back ${vault.name}`, () => admin.get(vault));
            const missing = verifyRestore(after, restore);
            if (missing.length > 0)
                throw new ResponderError(
                    'ARM.UNAVAILABLE',
                    `undo of ${vault.name} did not take: ${missing.join('; ')}`,
                );
            // Approve only what was restored (still under the lease): a failed undo must not approve anything.
            await this.approve(vault, restore.approvals);
            const now = this.o.clock.now();
            const done = await this.o.store.put(
                key,
                { ...record, undoneAt: new Date(now).toISOString() } satisfies UndoRecord,
                saved.etag,
                now + UNDO_TTL_MS,
            );
            if (!done.ok) throw new ResponderError('STATE.CONFLICT', `remediation ${undoId} was undone concurrently`);
            return { restored: restore.restored };
        } finally {
            await this.o.leases.release(vault);
        }
    }

    private async approve(vault: VaultRef, add: VaultApprovals): Promise<void> {
        const key = stateKey(vault.name, 'approvals');
        for (let attempt = 0; attempt < 8; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const merged = mergeApprovals((s?.value ?? undefined) as VaultApprovals | undefined, add);
            // Approvals do not expire with event time: far future.
            const r = await this.o.store.put(key, merged, s?.etag, Number.MAX_SAFE_INTEGER);
            if (r.ok) return;
        }
        throw new ResponderError('STATE.CONFLICT', `could not record the approvals of ${vault.name}`, true);
    }
}
