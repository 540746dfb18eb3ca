import type { ActionDecision, Decision, FindingDecision } from '../core/decisions';
import { ResponderError } from '../core/errors';
import type { AuditEvent, VaultRef } from '../core/events/types';
import type { Clock, VaultAdmin } from '../core/ports';
import { type Guard, planRemediation, verifyRemediation } from '../core/remediation/plan';
import { ACTIONS_BY_RULE, type RemediationPlan, type VaultSnapshot } from '../core/remediation/types';
import { type DetectionSettings, modeFor } from '../core/rules/settings';
import { type StateStore, stateKey } from '../core/state/store';
import { undoRecordOf, type VaultApprovals, withApprovals } from '../core/remediation/undo';
import type { RemediationSettings } from '../config/responderConfig';
import { describeError, statusOfErrorOrCause, withRetry } from './armCalls';
import type { Trigger } from './detectionEngine';
import { readApprovals, UNDO_TTL_MS } from './undoer';
import { VaultLeases } from './vaultLease';

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
    /** Shared with undo, so both take the same per-vault lease. */
    readonly leases?: VaultLeases;
}

interface VaultWork {
    readonly vault: VaultRef;
    readonly rules: Set<string>;
    readonly events: AuditEvent[];
}

interface Counter {
    readonly times: readonly number[];
}

const HOUR_MS = 3_600_000;

/**
 * Reconciles vaults to their guardrail policy after rule hits: reads the vault from ARM, plans the smallest change,
 * applies it (enforce mode) or only reports it (monitor mode), and reads back to verify. Safety rails: protected
 * principals, RBAC vaults, blast-radius caps, a lease per vault against concurrent processors, an undo snapshot before
 * every change, and loud failures (a failed or unverified change is a critical finding).
 */
export class Remediator {
    private readonly leases: VaultLeases;

    constructor(private readonly o: RemediatorOptions) {
        this.leases = o.leases ?? new VaultLeases(o.store, o.clock, o.owner);
    }

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

    private withRetry<T>(what: string, fn: () => Promise<T>): Promise<T> {
        return withRetry(this.o.clock, this.o.remediation.retryBudgetMs, what, fn);
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

        const lease = await this.leases.acquire(w.vault);
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
            await this.leases.release(w.vault);
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
        const forbidden = statusOfErrorOrCause(err) === 403;
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

    /** Saves the vault's prior state before a change, for undo from the alert; returns the undo id. */
    private async saveUndo(w: VaultWork, before: VaultSnapshot, plan: RemediationPlan): Promise<string> {
        const now = this.o.clock.now();
        const undoId = `${now.toString(36)}-${this.o.owner}`;
        // One part per change, tagged with its rule: an incident's undo restores only its own parts.
        const record = undoRecordOf(w.vault.resourceId, new Date(now).toISOString(), [...w.rules], before, plan);
        const r = await this.o.store.put(
            stateKey(w.vault.name, `undo|${undoId}`),
            record,
            undefined,
            now + UNDO_TTL_MS,
        );
        if (!r.ok) throw new ResponderError('STATE.CONFLICT', `undo snapshot ${undoId} exists already`, true);
        return undoId;
    }

    private approvals(vault: VaultRef): Promise<VaultApprovals | undefined> {
        return readApprovals(this.o.store, vault, this.o.clock.now());
    }
}
