import type { ActionDecision, Decision, FindingDecision } from '../core/decisions';
import { ResponderError } from '../core/errors';
import type { AuditEvent, VaultRef } from '../core/events/types';
import type { Clock, VaultAdmin } from '../core/ports';
import { type Guard, planRemediation, verifyRemediation } from '../core/remediation/plan';
import { ACTIONS_BY_RULE, type RemediationPlan, type VaultSnapshot } from '../core/remediation/types';
import { type DetectionSettings, modeFor } from '../core/rules/settings';
import { type StateStore, stateKey } from '../core/state/store';
import {
    mergeApprovals,
    planRestore,
    type UndoRecord,
    type VaultApprovals,
    withApprovals,
} from '../core/remediation/undo';
import type { RemediationSettings } from '../config/responderConfig';
import type { Trigger } from './detectionEngine';

export interface RemediatorOptions {
    /** ARM access; undefined when nothing may be read or changed (replay without a simulation). */
    readonly admin: VaultAdmin | undefined;
    readonly settings: DetectionSettings;
    readonly remediation: RemediationSettings;
    readonly guard: Guard;
    readonly store: StateStore;
    readonly clock: Clock;
    /** Identifies this processor in leases. */
    readonly owner: string;
}

interface VaultWork {
    readonly vault: VaultRef;
    readonly rules: Set<string>;
    readonly events: AuditEvent[];
}

interface Lease {
    readonly owner: string;
    readonly until: number;
}

interface Counter {
    readonly times: readonly number[];
}

const HOUR_MS = 3_600_000;
const LEASE_MS = 120_000;
const UNDO_TTL_MS = 30 * 24 * HOUR_MS;

function statusOf(err: unknown): number | undefined {
    const s = (err as { statusCode?: unknown }).statusCode;
    return typeof s === 'number' ? s : undefined;
}

function retryAfterMs(err: unknown): number | undefined {
    const headers = (err as { response?: { headers?: { get?: (name: string) => string | undefined } } }).response
        ?.headers;
    const value = headers?.get?.('retry-after');
    if (value === undefined) return undefined;
    const seconds = Number(value);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const date = Date.parse(value);
    return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function isTransient(err: unknown): boolean {
    const status = statusOf(err);
    if (status !== undefined) return status === 429 || status === 408 || status >= 500;
    const { code, name } = err as { code?: unknown; name?: unknown };
    if (name === 'AbortError' || name === 'TimeoutError') return true; // our per-call time limit
    return ['ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED', 'ESOCKETTIMEDOUT', 'REQUEST_SEND_ERROR', 'ABORT_ERR'].includes(
        String(code),
    );
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

function describeError(err: unknown): string {
    const status = statusOf(err);
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : String(err);
    return `${status === undefined ? '' : `HTTP ${status} `}${typeof code === 'string' ? `${code}: ` : ''}${message}`.slice(
        0,
        500,
    );
}

/**
 * Reconciles vaults to their guardrail policy after rule hits: reads the vault from ARM, plans the smallest change,
 * applies it (enforce mode) or only reports it (monitor mode), and reads back to verify. Safety rails: protected
 * principals, RBAC vaults, blast-radius caps, a lease per vault against concurrent processors, an undo snapshot before
 * every change, and loud failures (a failed or unverified change is a critical finding).
 */
export class Remediator {
    constructor(private readonly o: RemediatorOptions) {}

    async reconcile(triggers: readonly Trigger[]): Promise<Decision[]> {
        const work = new Map<string, VaultWork>();
        for (const t of triggers) {
            if (ACTIONS_BY_RULE[t.rule] === undefined) continue;
            let w = work.get(t.event.vault.resourceId);
            if (w === undefined) {
                w = { vault: t.event.vault, rules: new Set(), events: [] };
                work.set(t.event.vault.resourceId, w);
            }
            w.rules.add(t.rule);
            w.events.push(t.event);
        }
        const out: Decision[] = [];
        let applied = 0;
        for (const w of work.values()) {
            const budget = this.o.remediation.maxPerInvocation - applied;
            const result = await this.reconcileVault(w, budget);
            applied += result.applied;
            out.push(...result.decisions);
        }
        return out;
    }

    private action(
        w: VaultWork,
        action: string,
        rule: string,
        status: ActionDecision['status'],
        detail: Record<string, unknown>,
    ): ActionDecision {
        const correlationIds = [
            ...new Set(w.events.map((e) => e.correlationId).filter((c): c is string => c !== undefined)),
        ];
        return {
            type: 'action',
            action,
            vault: w.vault.name,
            vaultId: w.vault.resourceId,
            rule,
            status,
            time: (w.events[w.events.length - 1] as AuditEvent).time,
            detail: { ...detail, correlationIds },
        };
    }

    private critical(
        w: VaultWork,
        rule: 'remediation-failed' | 'remediation-suspended',
        summary: string,
        details: Record<string, unknown>,
    ): FindingDecision {
        const last = w.events[w.events.length - 1] as AuditEvent;
        return {
            type: 'finding',
            rule,
            severity: 'critical',
            vault: w.vault.name,
            vaultId: w.vault.resourceId,
            time: last.time,
            operations: [...new Set(w.events.map((e) => e.operation))],
            correlationIds: [
                ...new Set(w.events.map((e) => e.correlationId).filter((c): c is string => c !== undefined)),
            ],
            count: 1,
            summary,
            ...details,
        };
    }

    /** Runs an ARM call, retrying 429 (honouring Retry-After) and transient failures with backoff, within the budget. */
    private async withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
        const deadline = this.o.clock.now() + this.o.remediation.retryBudgetMs;
        for (let attempt = 0; ; attempt++) {
            try {
                return await fn();
            } catch (err) {
                if (!isTransient(err)) throw err;
                const wait = retryAfterMs(err) ?? Math.min(10_000, 250 * 2 ** attempt);
                if (this.o.clock.now() + wait > deadline) {
                    throw new ResponderError(
                        'ARM.UNAVAILABLE',
                        `${what}: gave up retrying after ${attempt + 1} attempt(s): ${describeError(err)}`,
                        true,
                        { cause: err },
                    );
                }
                await this.o.clock.sleep(wait);
            }
        }
    }

    private async reconcileVault(w: VaultWork, budget: number): Promise<{ applied: number; decisions: Decision[] }> {
        const admin = this.o.admin;
        const decisions: Decision[] = [];
        if (admin === undefined) {
            const policy = this.o.settings.policyFor(w.vault);
            for (const rule of w.rules) {
                decisions.push(
                    this.action(w, ACTIONS_BY_RULE[rule] as string, rule, 'planned', {
                        mode: modeFor(policy, rule),
                        note: 'not connected to Azure Resource Manager: nothing was read or changed',
                    }),
                );
            }
            return { applied: 0, decisions };
        }
        let vault: VaultSnapshot;
        try {
            vault = await this.withRetry(`reading ${w.vault.name}`, () => admin.get(w.vault));
        } catch (err) {
            return this.failed(w, [...w.rules], 'read', err);
        }
        // The vault's own tags, as ARM returns them, decide tag-matched overrides (enforce scope by env=prod ...).
        const policy = withApprovals(this.o.settings.policyFor(w.vault, vault.tags), await this.approvals(w.vault));
        const enforceRules = [...w.rules].filter((r) => modeFor(policy, r) === 'enforce');
        const monitorRules = [...w.rules].filter((r) => modeFor(policy, r) === 'monitor');
        if (monitorRules.length > 0) {
            const plan = planRemediation(vault, monitorRules, policy, this.o.guard);
            for (const a of plan.actions)
                decisions.push(
                    this.action(w, a.action, a.rule, 'planned', { mode: 'monitor', summary: a.summary, ...a.detail }),
                );
            for (const s of plan.skipped)
                decisions.push(this.action(w, s.action, s.rule, 'skipped', { reason: s.reason, ...s.detail }));
        }
        if (enforceRules.length === 0) return { applied: 0, decisions };

        let plan = planRemediation(vault, enforceRules, policy, this.o.guard);
        const eventTime = Math.max(...w.events.map((e) => e.timeMs));
        for (const s of plan.skipped)
            decisions.push(this.action(w, s.action, s.rule, 'skipped', { reason: s.reason, ...s.detail }));
        if (plan.actions.length === 0) return { applied: 0, decisions };

        // Blast radius: per invocation, then per vault and hour (durable, so a tug of war shows up).
        const capped =
            budget <= 0
                ? 'invocation'
                : (await this.vaultHourCount(w.vault, eventTime)) >= this.o.remediation.maxPerVaultPerHour
                  ? 'vault-hour'
                  : undefined;
        if (capped !== undefined) {
            for (const a of plan.actions)
                decisions.push(
                    this.action(w, a.action, a.rule, 'skipped', {
                        reason: 'blast-radius',
                        cap: capped,
                        summary: a.summary,
                    }),
                );
            decisions.push(
                this.critical(
                    w,
                    'remediation-suspended',
                    capped === 'invocation'
                        ? `remediation of ${w.vault.name} suspended: more than ${this.o.remediation.maxPerInvocation} remediations in one batch`
                        : `remediation of ${w.vault.name} suspended: more than ${this.o.remediation.maxPerVaultPerHour} remediations within an hour (a tug of war with a policy or pipeline?)`,
                    { cap: capped, pendingActions: plan.actions.map((a) => a.action) },
                ),
            );
            return { applied: 0, decisions };
        }

        const lease = await this.acquireLease(w.vault);
        if (!lease) {
            for (const a of plan.actions)
                decisions.push(
                    this.action(w, a.action, a.rule, 'skipped', {
                        reason: 'concurrent-remediation',
                        summary: a.summary,
                    }),
                );
            return { applied: 0, decisions };
        }
        try {
            // Under the lease, read again: another processor may have fixed the vault meanwhile.
            vault = await this.withRetry(`reading ${w.vault.name}`, () => admin.get(w.vault));
            // ... and what people approved meanwhile (an undo that finished while we waited for the lease).
            const approved = withApprovals(
                this.o.settings.policyFor(w.vault, vault.tags),
                await this.approvals(w.vault),
            );
            plan = planRemediation(vault, enforceRules, approved, this.o.guard);
            for (const s of plan.skipped) {
                if (!decisions.some((d) => d.type === 'action' && d.action === s.action && d.status === 'skipped')) {
                    decisions.push(this.action(w, s.action, s.rule, 'skipped', { reason: s.reason, ...s.detail }));
                }
            }
            if (plan.actions.length === 0) return { applied: 0, decisions };
            const undoId = await this.saveUndo(w, vault, plan);
            try {
                if (plan.patch !== undefined) {
                    const patch = plan.patch;
                    await this.withRetry(`patching ${w.vault.name}`, () => admin.patch(w.vault, patch));
                }
                for (const entry of plan.accessPolicyRemovals) {
                    await this.withRetry(`removing an access policy of ${entry.objectId} from ${w.vault.name}`, () =>
                        admin.removeAccessPolicy(w.vault, entry),
                    );
                }
            } catch (err) {
                return {
                    applied: 0,
                    decisions: [
                        ...decisions,
                        ...this.failed(
                            w,
                            plan.actions.map((a) => a.rule),
                            'apply',
                            err,
                            plan,
                        ).decisions,
                    ],
                };
            }
            const after = await this.withRetry(`reading back ${w.vault.name}`, () => admin.get(w.vault));
            const problems = verifyRemediation(after, plan);
            await this.countRemediation(w.vault, eventTime);
            if (problems.length > 0) {
                for (const a of plan.actions)
                    decisions.push(
                        this.action(w, a.action, a.rule, 'failed', {
                            reason: 'not-verified',
                            problems,
                            undoId,
                            summary: a.summary,
                            ...a.detail,
                        }),
                    );
                decisions.push(
                    this.critical(
                        w,
                        'remediation-failed',
                        `remediation of ${w.vault.name} did not take: ${problems.join('; ')}`,
                        { problems, undoId },
                    ),
                );
                return { applied: 0, decisions };
            }
            for (const a of plan.actions)
                decisions.push(
                    this.action(w, a.action, a.rule, 'applied', {
                        summary: a.summary,
                        undoId,
                        verified: true,
                        ...a.detail,
                    }),
                );
            return { applied: plan.actions.length, decisions };
        } catch (err) {
            return {
                applied: 0,
                decisions: [...decisions, ...this.failed(w, enforceRules, 'verify', err, plan).decisions],
            };
        } finally {
            await this.releaseLease(w.vault);
        }
    }

    private failed(
        w: VaultWork,
        rules: readonly string[],
        stage: string,
        err: unknown,
        plan?: RemediationPlan,
    ): { applied: number; decisions: Decision[] } {
        const error = describeError(err);
        const forbidden = statusOf(err) === 403 || statusOf((err as { cause?: unknown }).cause) === 403;
        const decisions: Decision[] = [];
        const seen = new Set<string>();
        for (const rule of rules) {
            const action = ACTIONS_BY_RULE[rule] as string;
            if (seen.has(action)) continue;
            seen.add(action);
            decisions.push(
                this.action(w, action, rule, 'failed', {
                    stage,
                    error,
                    ...(forbidden ? { missingPermission: true } : {}),
                }),
            );
        }
        decisions.push(
            this.critical(w, 'remediation-failed', `remediation of ${w.vault.name} failed at ${stage}: ${error}`, {
                stage,
                error,
                ...(plan === undefined ? {} : { pendingActions: plan.actions.map((a) => a.action) }),
            }),
        );
        return { applied: 0, decisions };
    }

    /** Remediations of the vault in the hour before `now` (event time: a replay counts as live would). */
    private async vaultHourCount(vault: VaultRef, now: number): Promise<number> {
        const [s] = await this.o.store.getMany([stateKey(vault.name, 'remediation|count')]);
        return ((s?.value as Counter | undefined)?.times ?? []).filter((t) => t > now - HOUR_MS).length;
    }

    private async countRemediation(vault: VaultRef, now: number): Promise<void> {
        const key = stateKey(vault.name, 'remediation|count');
        for (let attempt = 0; attempt < 8; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const times = ((s?.value as Counter | undefined)?.times ?? []).filter((t) => t > now - HOUR_MS);
            const r = await this.o.store.put(key, { times: [...times, now] } satisfies Counter, s?.etag, now + HOUR_MS);
            if (r.ok) return;
        }
        throw new ResponderError('STATE.CONFLICT', `could not count a remediation of ${vault.name}`, true);
    }

    private async acquireLease(vault: VaultRef): Promise<boolean> {
        const key = stateKey(vault.name, 'remediation|lease');
        const [s] = await this.o.store.getMany([key]);
        const now = this.o.clock.now();
        const current = s?.value as Lease | null | undefined;
        if (current !== undefined && current !== null && current.owner !== this.o.owner && current.until > now)
            return false;
        const r = await this.o.store.put(
            key,
            { owner: this.o.owner, until: now + LEASE_MS } satisfies Lease,
            s?.etag,
            now + LEASE_MS,
        );
        return r.ok;
    }

    private async releaseLease(vault: VaultRef): Promise<void> {
        const key = stateKey(vault.name, 'remediation|lease');
        const [s] = await this.o.store.getMany([key]);
        if ((s?.value as Lease | null | undefined)?.owner !== this.o.owner) return;
        await this.o.store.put(key, null, s?.etag, this.o.clock.now());
    }

    /** Saves the vault's prior state before a change, for undo from the alert; returns the undo id. */
    private async saveUndo(w: VaultWork, before: VaultSnapshot, plan: RemediationPlan): Promise<string> {
        const now = this.o.clock.now();
        const undoId = `${now.toString(36)}-${this.o.owner}`;
        const p = before.properties;
        const record: UndoRecord = {
            vaultId: w.vault.resourceId,
            at: new Date(now).toISOString(),
            rules: [...w.rules],
            before: {
                networkAcls: p.networkAcls ?? null,
                publicNetworkAccess: p.publicNetworkAccess ?? null,
                accessPolicies: p.accessPolicies ?? [],
            },
            plan: { patch: plan.patch ?? null, accessPolicyRemovals: plan.accessPolicyRemovals },
        };
        const r = await this.o.store.put(
            stateKey(w.vault.name, `undo|${undoId}`),
            record,
            undefined,
            now + UNDO_TTL_MS,
        );
        if (!r.ok) throw new ResponderError('STATE.CONFLICT', `undo snapshot ${undoId} exists already`, true);
        return undoId;
    }

    /** What people approved through undo on this vault (merged into its configured policy). */
    private async approvals(vault: VaultRef): Promise<VaultApprovals | undefined> {
        const [s] = await this.o.store.getMany([stateKey(vault.name, 'approvals')]);
        return (s?.value ?? undefined) as VaultApprovals | undefined;
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
        if (!(await this.acquireLease(vault)))
            throw new ResponderError('STATE.CONFLICT', `${vault.name} is being remediated right now: try again`, true);
        try {
            const current = await this.withRetry(`reading ${vault.name}`, () => admin.get(vault));
            const restore = planRestore(record, current);
            const patch = restore.patch;
            if (patch !== undefined) await this.withRetry(`restoring ${vault.name}`, () => admin.patch(vault, patch));
            for (const entry of restore.accessPolicyAdds)
                await this.withRetry(`restoring the access policy of ${entry.objectId}`, () =>
                    admin.addAccessPolicy(vault, entry),
                );
            const after = await this.withRetry(`reading back ${vault.name}`, () => admin.get(vault));
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
            await this.releaseLease(vault);
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
