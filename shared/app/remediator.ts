import type { ActionDecision, Decision, FindingDecision, Severity } from '../core/decisions';
import { ResponderError } from '../core/errors';
import type { VaultRef } from '../core/events/types';
import { isCovered } from '../core/net/cidr';
import type { AccessAdmin, Clock, VaultAdmin } from '../core/ports';
import {
    type Guard,
    planDiagnosticRestore,
    planRemediation,
    planRoleAssignmentRemoval,
    sendsAuditTo,
    verifyRemediation,
} from '../core/remediation/plan';
import {
    ACTIONS_BY_RULE,
    type RemediationPlan,
    type VaultAccessPolicy,
    type VaultNetworkAcls,
    type VaultSnapshot,
} from '../core/remediation/types';
import {
    type UndoPartInput,
    type UndoRecord,
    undoRecordOf,
    undoRecordOfPart,
    type VaultApprovals,
    withApprovals,
} from '../core/remediation/undo';
import { type FirewallState, firewallStateKey, isFirewallOpen } from '../core/rules/firewall-opened/rule';
import { type DetectionSettings, modeFor, type VaultPolicy } from '../core/rules/settings';
import { type StateStore, stateKey } from '../core/state/store';
import type { RemediationSettings } from '../config/responderConfig';
import { describeError, statusOfErrorOrCause, withRetry } from './armCalls';
import type { ConcurrentChange, ReconcileIntent } from './reconcileIntents';
import { readApprovals, UNDO_TTL_MS } from './undoer';
import type { HeldLease } from './vaultLease';

export interface RemediatorOptions {
    /** ARM access; undefined when nothing may be read or changed (replay without a simulation). */
    readonly admin: VaultAdmin | undefined;
    /** Role assignments and diagnostic settings in ARM; undefined: those actions are skipped as `not-connected`. */
    readonly access?: AccessAdmin;
    readonly settings: DetectionSettings;
    readonly remediation: RemediationSettings;
    readonly guard: Guard;
    readonly store: StateStore;
    readonly clock: Clock;
    /** Identifies this processor in undo ids. */
    readonly owner: string;
    /** Severity of a rule's findings (drift found in ARM is reported under the rule it breaks). */
    readonly severityOf?: (rule: string) => Severity | undefined;
}

/** What one reconcile of a vault produced. */
export interface VaultOutcome {
    readonly decisions: Decision[];
    /** Remediations applied (for the per-invocation cap). */
    readonly applied: number;
    /** The lease was lost before a write: nothing more was written; the work must be tried again. */
    readonly leaseLost?: boolean;
}

/** One write of ours: what we read, when, and what we sent (lost-update detection from the audit stream). */
export interface WriteWindow {
    readonly readAt: number;
    readonly writeAt: number;
    readonly beforeIpRules: readonly string[];
    readonly beforeVirtualNetworkRules: readonly string[];
    readonly sentIpRules: readonly string[];
}

interface Counter {
    readonly times: readonly number[];
}

/**
 * An open suspension of a vault's remediation (blast-radius cap): one `remediation-suspended` finding when it opens,
 * later capped attempts only counted in it, until it ends (the cap lifts: `until`, or a later reconcile is not capped).
 */
interface Suspension {
    readonly cap: 'invocation' | 'vault-hour';
    /** Event time the suspension opened and the time it lifts at the latest (event time, like the counter). */
    readonly since: number;
    readonly until: number;
    /** Capped reconciles of the vault within this suspension, the first included. */
    readonly attempts: number;
}

type Capped = { readonly cap: Suspension['cap']; readonly until: number };

interface Work {
    readonly vault: VaultRef;
    readonly triggered: ReadonlySet<string>;
    readonly intent: ReconcileIntent;
    readonly time: string;
}

const HOUR_MS = 3_600_000;
const MAX_ROUNDS = 3;
const MAX_WINDOWS = 3;
/** Per list; with the cut per item, three windows stay well under a table property's 32,000 characters. */
const MAX_WINDOW_IPS = 40;
const MAX_WINDOW_VNETS = 10;
const WINDOW_TTL_MS = 24 * HOUR_MS;

/** One rule per action: the drift the reconciler checks on every vault, whatever triggered it. */
export const DRIFT_RULES: readonly string[] = [
    'firewall-opened',
    'firewall-ip-rule-added',
    'firewall-vnet-rule-added',
    'public-network-access-enabled',
    'access-policy-granted',
    // Acts only on vaults whose policy says `authorization: rbac`.
    'rbac-authorization-disabled',
];

/** The vault as the last reconcile saw it (bounded): drift since then is reported once, not on every sweep. */
interface VaultMemo {
    readonly at: string;
    /** Keys of the out-of-policy items seen (monitor mode reports each once). */
    readonly drift: readonly string[];
    readonly enableRbacAuthorization: boolean;
}

const MAX_MEMO_DRIFT = 50;

export function snapshotKey(vaultName: string) {
    return stateKey(vaultName, 'reconcile|snapshot');
}

function driftKeyOf(a: RemediationPlan['actions'][number]): string {
    return `${a.action}|${JSON.stringify(a.detail).slice(0, 300)}`;
}

export function suspensionKey(vaultName: string) {
    return stateKey(vaultName, 'remediation|suspended');
}

export function windowsKey(vaultName: string) {
    return stateKey(vaultName, 'reconcile|windows');
}

const lower = (s: string | undefined): string => (s ?? '').toLowerCase();

/** Read each time: the renewal timer may have lost the lease meanwhile. */
const isLost = (lease: HeldLease | undefined): boolean => lease?.lost === true;

/** What the vault should look like after `plan` was applied to `before`. */
function expectedAfter(before: VaultSnapshot, plan: RemediationPlan): VaultSnapshot['properties'] {
    const p = before.properties;
    const accessPolicies = (p.accessPolicies ?? [])
        .map((e) => {
            const removal = plan.accessPolicyRemovals.find((r) => lower(r.objectId) === lower(e.objectId));
            if (removal === undefined) return e;
            const permissions: Record<string, string[]> = {};
            for (const [kind, list] of Object.entries(e.permissions)) {
                const gone = new Set(((removal.permissions as Record<string, string[]>)[kind] ?? []).map(lower));
                permissions[kind] = (list ?? []).filter((x: string) => !gone.has(lower(x)));
            }
            return { ...e, permissions };
        })
        .filter((e) => Object.values(e.permissions).some((l) => (l ?? []).length > 0));
    return {
        ...p,
        ...(plan.patch?.enableRbacAuthorization === undefined
            ? {}
            : { enableRbacAuthorization: plan.patch.enableRbacAuthorization }),
        ...(plan.patch?.networkAcls === undefined ? {} : { networkAcls: plan.patch.networkAcls }),
        ...(plan.patch?.publicNetworkAccess === undefined
            ? {}
            : { publicNetworkAccess: plan.patch.publicNetworkAccess }),
        accessPolicies,
    };
}

function ipSet(acls: VaultNetworkAcls | undefined): Set<string> {
    return new Set((acls?.ipRules ?? []).map((r) => lower(r.value).replace(/\/32$/, '')));
}

function vnetSet(acls: VaultNetworkAcls | undefined): Set<string> {
    return new Set((acls?.virtualNetworkRules ?? []).map((r) => lower(r.id)));
}

function permsOf(entries: readonly VaultAccessPolicy[] | undefined): Map<string, string> {
    const out = new Map<string, string>();
    for (const e of entries ?? []) {
        const parts = Object.entries(e.permissions)
            .map(([k, l]) => `${k}:${[...(l ?? [])].map(lower).sort().join(',')}`)
            .filter((x) => !x.endsWith(':'))
            .sort();
        out.set(lower(e.objectId), parts.join(';'));
    }
    return out;
}

/**
 * What differs between the vault as read back and the vault as it should be after our change alone: someone else
 * wrote in the read→write window (vault resources have no ETag, so ARM cannot refuse a stale write for us).
 */
export function changesByOthers(before: VaultSnapshot, plan: RemediationPlan, after: VaultSnapshot): string[] {
    const want = expectedAfter(before, plan);
    const got = after.properties;
    const out: string[] = [];
    if (lower(want.networkAcls?.defaultAction) !== lower(got.networkAcls?.defaultAction))
        out.push(`networkAcls.defaultAction is now ${got.networkAcls?.defaultAction ?? 'unset'}`);
    if (lower(want.networkAcls?.bypass) !== lower(got.networkAcls?.bypass))
        out.push(`networkAcls.bypass is now ${got.networkAcls?.bypass ?? 'unset'}`);
    const [wi, gi] = [ipSet(want.networkAcls), ipSet(got.networkAcls)];
    for (const r of gi) if (!wi.has(r)) out.push(`IP rule ${r} appeared`);
    for (const r of wi) if (!gi.has(r)) out.push(`IP rule ${r} disappeared`);
    const [wv, gv] = [vnetSet(want.networkAcls), vnetSet(got.networkAcls)];
    for (const r of gv) if (!wv.has(r)) out.push(`virtual network rule ${r} appeared`);
    for (const r of wv) if (!gv.has(r)) out.push(`virtual network rule ${r} disappeared`);
    if (lower(want.publicNetworkAccess) !== lower(got.publicNetworkAccess))
        out.push(`publicNetworkAccess is now ${got.publicNetworkAccess ?? 'unset'}`);
    if ((want.enableRbacAuthorization ?? false) !== (got.enableRbacAuthorization ?? false))
        out.push(`enableRbacAuthorization is now ${String(got.enableRbacAuthorization ?? false)}`);
    const [wp, gp] = [permsOf(want.accessPolicies), permsOf(got.accessPolicies)];
    for (const [id, p] of gp) if (wp.get(id) !== p) out.push(`access policy of ${id} changed`);
    for (const id of wp.keys()) if (!gp.has(id)) out.push(`access policy of ${id} disappeared`);
    return out;
}

/** What of the concurrent writers' changes policy approves and the vault no longer has. */
function restorable(
    changes: readonly ConcurrentChange[],
    vault: VaultSnapshot,
    policy: VaultPolicy,
): { ipRules: string[]; virtualNetworkRules: string[]; refused: string[] } {
    const haveIp = ipSet(vault.properties.networkAcls);
    const haveVnet = vnetSet(vault.properties.networkAcls);
    const ipRules: string[] = [];
    const virtualNetworkRules: string[] = [];
    const refused: string[] = [];
    for (const c of changes) {
        for (const ip of c.ipRules ?? []) {
            const id = lower(ip).replace(/\/32$/, '');
            if (haveIp.has(id) || ipRules.some((x) => lower(x).replace(/\/32$/, '') === id)) continue;
            if (isCovered(ip, policy.approvedIpRanges)) ipRules.push(ip);
            else refused.push(`IP rule ${ip} (not approved by policy)`);
        }
        // What another writer added and we wiped goes back, unless policy names approved subnets and this is not one.
        const approvedVnets = policy.approvedVirtualNetworkRules;
        for (const id of c.virtualNetworkRules ?? []) {
            if (haveVnet.has(lower(id)) || virtualNetworkRules.some((x) => lower(x) === lower(id))) continue;
            if (approvedVnets === undefined || approvedVnets.has(lower(id).replace(/\/+$/, '')))
                virtualNetworkRules.push(id);
            else refused.push(`virtual network rule ${id} (not an approved subnet)`);
        }
    }
    return { ipRules, virtualNetworkRules, refused };
}

/** Adds restored rules to a plan's PATCH (complete networkAcls, as always). */
function withRestore(
    plan: RemediationPlan,
    vault: VaultSnapshot,
    add: { ipRules: readonly string[]; virtualNetworkRules: readonly string[] },
): RemediationPlan {
    if (add.ipRules.length === 0 && add.virtualNetworkRules.length === 0) return plan;
    const base = plan.patch?.networkAcls ?? vault.properties.networkAcls ?? {};
    const networkAcls: VaultNetworkAcls = {
        bypass: base.bypass ?? 'AzureServices',
        defaultAction: base.defaultAction ?? 'Deny',
        ipRules: [...(base.ipRules ?? []), ...add.ipRules.map((value) => ({ value }))],
        virtualNetworkRules: [
            ...(base.virtualNetworkRules ?? []),
            ...add.virtualNetworkRules.map((id) => ({ id, ignoreMissingVnetServiceEndpoint: false })),
        ],
    };
    return { ...plan, patch: { ...(plan.patch ?? {}), networkAcls } };
}

/**
 * Reconciles one vault to its guardrail policy, under the vault's lease held by the caller: reads the vault from ARM,
 * plans the smallest change for every drift rule (not only the rules that fired), applies it (enforce) or reports it
 * (monitor), reads back and verifies. Safety rails: protected principals, RBAC vaults, blast-radius caps, an undo
 * snapshot before every change. Every ARM failure ends in a decision (retried within the budget, then `failed` with a
 * critical finding, or `skipped` with a reason); only state-store failures throw (the queue retries them).
 */
export class Remediator {
    private undoSeq = 0;

    constructor(private readonly o: RemediatorOptions) {}

    private action(
        w: Work,
        action: string,
        rule: string,
        status: ActionDecision['status'],
        detail: Record<string, unknown>,
    ): ActionDecision {
        return {
            type: 'action',
            action,
            vault: w.vault.name,
            vaultId: w.vault.resourceId,
            rule,
            status,
            time: w.time,
            detail: { ...detail, correlationIds: [...w.intent.correlationIds] },
            ...(w.intent.incidentKeys.length === 0 ? {} : { incidentKeys: [...w.intent.incidentKeys] }),
        };
    }

    private finding(
        w: Work,
        rule: string,
        severity: Severity,
        summary: string,
        details: Record<string, unknown>,
    ): FindingDecision {
        return {
            type: 'finding',
            rule,
            severity,
            vault: w.vault.name,
            vaultId: w.vault.resourceId,
            time: w.time,
            operations: [],
            correlationIds: [...w.intent.correlationIds],
            count: 1,
            summary,
            ...details,
        };
    }

    private critical(
        w: Work,
        rule: 'remediation-failed' | 'remediation-suspended',
        summary: string,
        details: Record<string, unknown>,
    ): FindingDecision {
        return this.finding(w, rule, 'critical', summary, details);
    }

    private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
        return withRetry(this.o.clock, this.o.remediation.retryBudgetMs, what, fn);
    }

    /** Reconciles the vault of `intent`; the caller holds the vault's lease. */
    async remediate(intent: ReconcileIntent, lease: HeldLease | undefined, budget: number): Promise<VaultOutcome> {
        const w: Work = {
            vault: intent.vault,
            triggered: new Set(intent.rules.filter((r) => ACTIONS_BY_RULE[r] !== undefined)),
            intent,
            time: new Date(intent.latestMs).toISOString(),
        };
        const seen: { vault?: VaultSnapshot } = {};
        const outcome = await this.remediateVault(w, lease, budget, seen);
        if (outcome.leaseLost === true || seen.vault === undefined || this.o.admin === undefined) return outcome;
        const more = await this.remediateAccess(w, seen.vault, lease, budget - outcome.applied);
        return {
            applied: outcome.applied + more.applied,
            decisions: [...outcome.decisions, ...more.decisions],
            ...(more.leaseLost === true ? { leaseLost: true } : {}),
        };
    }

    /** The vault resource itself: firewall, public network access, access policies, the RBAC switch. */
    private async remediateVault(
        w: Work,
        lease: HeldLease | undefined,
        budget: number,
        seen: { vault?: VaultSnapshot },
    ): Promise<VaultOutcome> {
        const intent = w.intent;
        const admin = this.o.admin;
        const decisions: Decision[] = [];
        if (admin === undefined) {
            const policy = this.o.settings.policyFor(w.vault);
            for (const rule of w.triggered)
                decisions.push(
                    this.action(w, ACTIONS_BY_RULE[rule] as string, rule, 'planned', {
                        mode: modeFor(policy, rule),
                        note: 'not connected to Azure Resource Manager: nothing was read or changed',
                    }),
                );
            return { applied: 0, decisions };
        }
        const reported = new Set<string>();
        const report = (d: ActionDecision): void => {
            const k = `${d.action}|${d.status}|${JSON.stringify(d.detail.objectId ?? '')}|${String(d.detail.reason)}`;
            if (reported.has(k)) return;
            reported.add(k);
            decisions.push(d);
        };
        let applied = 0;
        const memo = await this.memo(w.vault);
        // firewall-opened reports a transition to open: ARM drift on a vault already known to be open is not news.
        const wasOpen = (await this.firewall(w.vault))?.value?.open === true;
        const news = (a: RemediationPlan['actions'][number]): boolean => !(wasOpen && a.rule === 'firewall-opened');
        let read: VaultSnapshot | undefined;
        let concurrent = [...intent.concurrent];
        for (let round = 0; round < MAX_ROUNDS; round++) {
            // Read under the lease immediately before the write: the read→write window is as small as we can make it.
            let vault: VaultSnapshot;
            const readAt = this.o.clock.now();
            if (read !== undefined) vault = read;
            else {
                try {
                    vault = await this.retry(`reading ${w.vault.name}`, () => admin.get(w.vault));
                    seen.vault ??= vault;
                } catch (err) {
                    return { applied, decisions: [...decisions, ...this.failed(w, 'read', err)] };
                }
            }
            read = undefined;
            // The vault's own tags, as ARM returns them, decide tag-matched overrides (enforce scope by env=prod ...).
            const policy = withApprovals(this.o.settings.policyFor(w.vault, vault.tags), await this.approvals(w.vault));
            const rules = [...new Set([...w.triggered, ...DRIFT_RULES])];
            const enforceRules = rules.filter((r) => modeFor(policy, r) === 'enforce');
            const monitorRules = rules.filter((r) => modeFor(policy, r) === 'monitor');
            if (round === 0) await this.remember(w, vault, policy, memo, decisions);
            if (round === 0 && monitorRules.length > 0) {
                const plan = planRemediation(vault, monitorRules, policy, this.o.guard);
                for (const a of plan.actions)
                    report(
                        this.action(w, a.action, a.rule, 'planned', {
                            mode: 'monitor',
                            summary: a.summary,
                            ...a.detail,
                        }),
                    );
                for (const s of plan.skipped)
                    if (w.triggered.has(s.rule))
                        report(this.action(w, s.action, s.rule, 'skipped', { reason: s.reason, ...s.detail }));
                this.reportDrift(
                    w,
                    plan.actions.filter((a) => news(a) && !(memo?.drift ?? []).includes(driftKeyOf(a))),
                    decisions,
                    'monitor',
                );
            }
            let plan = planRemediation(vault, enforceRules, policy, this.o.guard);
            for (const s of plan.skipped)
                if (round === 0 && w.triggered.has(s.rule))
                    report(this.action(w, s.action, s.rule, 'skipped', { reason: s.reason, ...s.detail }));
            const restore =
                concurrent.length > 0 && enforceRules.length > 0
                    ? restorable(concurrent, vault, policy)
                    : { ipRules: [], virtualNetworkRules: [], refused: [] };
            if (restore.refused.length > 0 && round === 0)
                report(
                    this.action(w, 'concurrent-change-restored', 'concurrent-change', 'skipped', {
                        reason: 'policy-refuses',
                        refused: restore.refused,
                    }),
                );
            plan = withRestore(plan, vault, restore);
            const restoring = restore.ipRules.length + restore.virtualNetworkRules.length > 0;
            if (round === 0) this.reportDrift(w, plan.actions.filter(news), decisions, 'enforce');
            if (plan.actions.length === 0 && !restoring) break;

            if (
                await this.capped(
                    w,
                    budget - applied,
                    plan.actions.map((a) => ({ action: a.action, rule: a.rule, summary: a.summary })),
                    decisions,
                    report,
                )
            )
                return { applied, decisions };
            if (isLost(lease)) return { applied, decisions, leaseLost: true };

            const undoId = await this.saveUndo(w, vault, plan);
            try {
                if (plan.patch !== undefined) {
                    const patch = plan.patch;
                    await this.retry(`patching ${w.vault.name}`, () => admin.patch(w.vault, patch));
                    await this.recordWindow(w.vault, vault, readAt, patch.networkAcls);
                }
                for (const entry of plan.accessPolicyRemovals) {
                    if (isLost(lease)) return { applied, decisions, leaseLost: true };
                    await this.retry(`removing an access policy of ${entry.objectId} from ${w.vault.name}`, () =>
                        admin.removeAccessPolicy(w.vault, entry),
                    );
                }
            } catch (err) {
                if (err instanceof ResponderError && err.code.startsWith('STATE.')) throw err;
                return { applied, decisions: [...decisions, ...this.failed(w, 'apply', err, plan)] };
            }
            let after: VaultSnapshot;
            try {
                after = await this.retry(`reading back ${w.vault.name}`, () => admin.get(w.vault));
            } catch (err) {
                return { applied, decisions: [...decisions, ...this.failed(w, 'verify', err, plan)] };
            }
            await this.countRemediation(w);
            const problems = verifyRemediation(after, plan);
            const others = changesByOthers(vault, plan, after);
            await this.noteFirewall(w, after);
            if (problems.length === 0) {
                applied += plan.actions.length;
                for (const a of plan.actions)
                    decisions.push(
                        this.action(w, a.action, a.rule, 'applied', {
                            summary: a.summary,
                            undoId,
                            verified: true,
                            ...a.detail,
                        }),
                    );
                if (restoring) {
                    const what = [
                        ...restore.ipRules.map((r) => `IP rule ${r}`),
                        ...restore.virtualNetworkRules.map((r) => `virtual network rule ${r}`),
                    ];
                    decisions.push(
                        this.action(w, 'concurrent-change-restored', 'concurrent-change', 'applied', {
                            summary: `restored ${what.join(', ')} on ${w.vault.name}: another writer added it while we changed the vault, and our write had removed it`,
                            restored: what,
                            undoId,
                            by: concurrent.map((c) => c.by),
                        }),
                    );
                    decisions.push(
                        this.finding(
                            w,
                            'concurrent-change-restored',
                            'high',
                            `restored ${what.join(', ')} on ${w.vault.name} after a concurrent change`,
                            {
                                restored: what,
                                by: concurrent.map((c) => c.by),
                            },
                        ),
                    );
                    concurrent = [];
                }
                if (others.length === 0) return { applied, decisions };
                // Someone else wrote while we did: plan again from what ARM shows now.
                decisions.push(
                    this.action(w, 'reconcile', 'concurrent-change', 'planned', {
                        reason: 'concurrent-change',
                        changes: others.slice(0, 20),
                        round: round + 1,
                    }),
                );
                read = after;
                continue;
            }
            if (round + 1 < MAX_ROUNDS && others.length > 0) {
                read = after;
                continue;
            }
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
                    {
                        stage: 'verify',
                        problems,
                        undoId,
                        ...(others.length === 0 ? {} : { concurrentChanges: others.slice(0, 20) }),
                    },
                ),
            );
            return { applied, decisions };
        }
        if (read !== undefined) {
            // Still changing under us after every round: say so loudly.
            const still = planRemediation(
                read,
                DRIFT_RULES,
                withApprovals(this.o.settings.policyFor(w.vault, read.tags), await this.approvals(w.vault)),
                this.o.guard,
            );
            if (still.actions.length > 0)
                decisions.push(
                    this.critical(
                        w,
                        'remediation-failed',
                        `remediation of ${w.vault.name} did not settle: the vault kept changing under concurrent writes`,
                        {
                            stage: 'verify',
                            pendingActions: still.actions.map((a) => a.action),
                        },
                    ),
                );
        }
        return { applied, decisions };
    }

    /**
     * Role assignments and the diagnostic setting: changes outside the vault resource, each re-read from ARM before
     * it is made, under the vault's lease (held by the caller), with the same rails as the vault changes (modes,
     * protected principals, blast-radius caps, an undo record first, a read-back after). Every ARM failure ends in a
     * decision; only state-store failures throw.
     */
    private async remediateAccess(
        w: Work,
        vault: VaultSnapshot,
        lease: HeldLease | undefined,
        budget: number,
    ): Promise<VaultOutcome> {
        const decisions: Decision[] = [];
        let applied = 0;
        const wantsRoles = w.triggered.has('role-assignment-granted');
        const wantsAudit = w.triggered.has('diagnostic-setting-removed');
        if (!wantsRoles && !wantsAudit) return { applied, decisions };
        const access = this.o.access;
        if (access === undefined) {
            for (const [rule, action] of [
                ['role-assignment-granted', 'remove-role-assignment'],
                ['diagnostic-setting-removed', 'restore-diagnostic-setting'],
            ] as const)
                if (w.triggered.has(rule))
                    decisions.push(
                        this.action(w, action, rule, 'skipped', {
                            reason: 'not-connected',
                            note: 'no role-assignment / diagnostic-settings client configured: nothing was read or changed',
                        }),
                    );
            return { applied, decisions };
        }
        const policy = withApprovals(this.o.settings.policyFor(w.vault, vault.tags), await this.approvals(w.vault));

        if (wantsRoles) {
            const rule = 'role-assignment-granted';
            const action = 'remove-role-assignment';
            const mode = modeFor(policy, rule);
            for (const id of w.intent.roleAssignmentIds ?? []) {
                const ref = { roleAssignmentId: id };
                let before;
                try {
                    before = await this.retry(`reading role assignment ${id}`, () => access.getRoleAssignment(id));
                } catch (err) {
                    decisions.push(...this.accessFailed(w, action, rule, 'read', err, ref));
                    continue;
                }
                if (before === undefined) {
                    decisions.push(this.action(w, action, rule, 'skipped', { reason: 'already-compliant', ...ref }));
                    continue;
                }
                const verdict = planRoleAssignmentRemoval(before, vault, policy, this.o.guard);
                const what = {
                    ...ref,
                    principalId: before.principalId,
                    ...(before.principalType === undefined ? {} : { principalType: before.principalType }),
                    roleDefinitionId: before.roleDefinitionId,
                    scope: before.scope,
                };
                if (!verdict.remove) {
                    decisions.push(
                        this.action(w, action, rule, 'skipped', { reason: verdict.reason, ...what, ...verdict.detail }),
                    );
                    continue;
                }
                if (mode === 'monitor') {
                    decisions.push(
                        this.action(w, action, rule, 'planned', {
                            mode,
                            summary: verdict.summary,
                            role: verdict.role,
                            ...what,
                        }),
                    );
                    continue;
                }
                if (await this.capped(w, budget - applied, [{ action, rule, summary: verdict.summary }], decisions))
                    break;
                if (isLost(lease)) return { applied, decisions, leaseLost: true };
                const undoId = await this.saveUndoPart(w, { rule, action, assignment: before });
                try {
                    await this.retry(`deleting role assignment ${id}`, () => access.deleteRoleAssignment(id));
                } catch (err) {
                    // 404: the scope or the assignment went away meanwhile; the read-back below says which.
                    if (statusOfErrorOrCause(err) !== 404) {
                        decisions.push(...this.accessFailed(w, action, rule, 'apply', err, { ...what, undoId }));
                        continue;
                    }
                }
                let after;
                try {
                    after = await this.retry(`reading back role assignment ${id}`, () => access.getRoleAssignment(id));
                } catch (err) {
                    decisions.push(...this.accessFailed(w, action, rule, 'verify', err, { ...what, undoId }));
                    continue;
                }
                await this.countRemediation(w);
                if (after === undefined) {
                    applied++;
                    decisions.push(
                        this.action(w, action, rule, 'applied', {
                            summary: verdict.summary,
                            role: verdict.role,
                            undoId,
                            verified: true,
                            ...what,
                        }),
                    );
                } else {
                    decisions.push(
                        this.action(w, action, rule, 'failed', { reason: 'not-verified', undoId, ...what }),
                        this.critical(
                            w,
                            'remediation-failed',
                            `role assignment ${id} is still there after it was deleted`,
                            { stage: 'verify', undoId, ...what },
                        ),
                    );
                }
            }
        }

        if (wantsAudit) {
            const rule = 'diagnostic-setting-removed';
            const action = 'restore-diagnostic-setting';
            const resourceId = vault.id === '' ? w.vault.resourceId : vault.id;
            let settings;
            try {
                settings = await this.retry(`reading the diagnostic settings of ${w.vault.name}`, () =>
                    access.listDiagnosticSettings(resourceId),
                );
            } catch (err) {
                decisions.push(...this.accessFailed(w, action, rule, 'read', err, {}));
                return { applied, decisions };
            }
            const want = this.o.settings.auditDestination;
            const verdict = planDiagnosticRestore(settings, want, policy);
            if (!verdict.restore) {
                decisions.push(this.action(w, action, rule, 'skipped', { reason: verdict.reason, ...verdict.detail }));
                return { applied, decisions };
            }
            const summary = `${verdict.previous === undefined ? 'create' : 'rewrite'} diagnostic setting ${verdict.name} of ${w.vault.name} so that AuditEvent reaches the responder hub`;
            const what = {
                diagnosticSetting: verdict.name,
                eventHubAuthorizationRuleId: verdict.properties.eventHubAuthorizationRuleId,
                ...(verdict.properties.eventHubName === undefined
                    ? {}
                    : { eventHubName: verdict.properties.eventHubName }),
                replaced: verdict.previous !== undefined,
            };
            if (modeFor(policy, rule) === 'monitor') {
                decisions.push(this.action(w, action, rule, 'planned', { mode: 'monitor', summary, ...what }));
                return { applied, decisions };
            }
            if (await this.capped(w, budget - applied, [{ action, rule, summary }], decisions))
                return { applied, decisions };
            if (isLost(lease)) return { applied, decisions, leaseLost: true };
            const undoId = await this.saveUndoPart(w, {
                rule,
                action,
                name: verdict.name,
                ...(verdict.previous === undefined ? {} : { previous: verdict.previous }),
            });
            try {
                await this.retry(`writing diagnostic setting ${verdict.name} of ${w.vault.name}`, () =>
                    access.putDiagnosticSetting(resourceId, verdict.name, verdict.properties),
                );
            } catch (err) {
                decisions.push(...this.accessFailed(w, action, rule, 'apply', err, { ...what, undoId }));
                return { applied, decisions };
            }
            let after;
            try {
                after = await this.retry(`reading back the diagnostic settings of ${w.vault.name}`, () =>
                    access.listDiagnosticSettings(resourceId),
                );
            } catch (err) {
                decisions.push(...this.accessFailed(w, action, rule, 'verify', err, { ...what, undoId }));
                return { applied, decisions };
            }
            await this.countRemediation(w);
            const ours = after.find((x) => x.name.toLowerCase() === verdict.name.toLowerCase());
            if (ours !== undefined && sendsAuditTo(ours.properties, want)) {
                applied++;
                decisions.push(this.action(w, action, rule, 'applied', { summary, undoId, verified: true, ...what }));
            } else
                decisions.push(
                    this.action(w, action, rule, 'failed', { reason: 'not-verified', undoId, ...what }),
                    this.critical(
                        w,
                        'remediation-failed',
                        `diagnostic setting ${verdict.name} of ${w.vault.name} does not send AuditEvent to the responder hub after it was written`,
                        { stage: 'verify', undoId, ...what },
                    ),
                );
        }
        return { applied, decisions };
    }

    /**
     * Blast-radius caps for the pending changes: true when they may not run. Then each is reported skipped (with the
     * suspension it falls in), and the suspension raises one critical `remediation-suspended` when it opens; later
     * capped attempts are counted in it (and in their skipped actions).
     */
    private async capped(
        w: Work,
        budget: number,
        pending: readonly { readonly action: string; readonly rule: string; readonly summary: string }[],
        decisions: Decision[],
        report: (d: ActionDecision) => void = (d) => decisions.push(d),
    ): Promise<boolean> {
        const capped = await this.cap(budget, w);
        if (capped === undefined) return false;
        const suspension = await this.suspend(w, capped);
        const since = new Date(suspension.since).toISOString();
        const until = new Date(suspension.until).toISOString();
        for (const a of pending)
            report(
                this.action(w, a.action, a.rule, 'skipped', {
                    reason: 'blast-radius',
                    cap: capped.cap,
                    summary: a.summary,
                    suspension: { since, until, attempts: suspension.attempts },
                }),
            );
        if (suspension.attempts === 1)
            decisions.push(
                this.critical(
                    w,
                    'remediation-suspended',
                    capped.cap === 'invocation'
                        ? `remediation of ${w.vault.name} suspended: more than ${this.o.remediation.maxPerInvocation} remediations in one invocation`
                        : `remediation of ${w.vault.name} suspended until ${until}: more than ${this.o.remediation.maxPerVaultPerHour} remediations within an hour (a tug of war with a policy or pipeline?)`,
                    {
                        cap: capped.cap,
                        pendingActions: pending.map((a) => a.action),
                        suspendedSince: since,
                        suspendedUntil: until,
                    },
                ),
            );
        return true;
    }

    /** An ARM failure of a change outside the vault resource: the action failed, and a critical finding says why. */
    private accessFailed(
        w: Work,
        action: string,
        rule: string,
        stage: string,
        err: unknown,
        detail: Record<string, unknown>,
    ): Decision[] {
        const error = describeError(err);
        const status = statusOfErrorOrCause(err);
        const forbidden = status === 403;
        return [
            this.action(w, action, rule, 'failed', {
                stage,
                error,
                ...(forbidden ? { missingPermission: true } : {}),
                ...detail,
            }),
            this.critical(w, 'remediation-failed', `${action} on ${w.vault.name} failed at ${stage}: ${error}`, {
                stage,
                error,
                ...(status === undefined ? {} : { status }),
                ...(forbidden ? { missingPermission: true } : {}),
                pendingActions: [action],
                ...detail,
            }),
        ];
    }

    /** Saves the undo record of one change outside the vault resource; returns the undo id. */
    private saveUndoPart(w: Work, part: UndoPartInput): Promise<string> {
        return this.storeUndo(w, (at) => undoRecordOfPart(w.vault.resourceId, at, [part.rule], part));
    }

    /** Drift ARM shows for rules that did not fire: reported as findings of the rule it breaks. */
    private reportDrift(
        w: Work,
        actions: RemediationPlan['actions'],
        decisions: Decision[],
        mode: 'monitor' | 'enforce',
    ): void {
        const seen = new Set<string>();
        for (const a of actions) {
            if (w.triggered.has(a.rule) || [...w.triggered].some((r) => ACTIONS_BY_RULE[r] === a.action)) continue;
            if (seen.has(a.rule)) continue;
            seen.add(a.rule);
            decisions.push(
                this.finding(
                    w,
                    a.rule,
                    this.o.severityOf?.(a.rule) ?? 'high',
                    `ARM shows drift on ${w.vault.name}: ${a.summary}`,
                    {
                        source: 'arm-drift',
                        mode,
                    },
                ),
            );
        }
    }

    private async memo(vault: VaultRef): Promise<VaultMemo | undefined> {
        const [s] = await this.o.store.getMany([snapshotKey(vault.name)]);
        return (s?.value ?? undefined) as VaultMemo | undefined;
    }

    /**
     * Compares the vault with what the last reconcile saw (the RBAC switch turned off shows up even when no record
     * said so), and keeps what it sees now.
     */
    private async remember(
        w: Work,
        vault: VaultSnapshot,
        policy: VaultPolicy,
        memo: VaultMemo | undefined,
        decisions: Decision[],
    ): Promise<void> {
        const rbac = vault.properties.enableRbacAuthorization === true;
        // A policy that wants RBAC reports (and in enforce mode restores) the switch as drift of its own.
        if (
            memo?.enableRbacAuthorization === true &&
            !rbac &&
            policy.authorization !== 'rbac' &&
            !w.intent.rules.includes('rbac-authorization-disabled')
        )
            decisions.push(
                this.finding(
                    w,
                    'rbac-authorization-disabled',
                    this.o.severityOf?.('rbac-authorization-disabled') ?? 'high',
                    `ARM shows Azure RBAC authorization turned off on ${w.vault.name} since ${memo.at}: access policies apply again`,
                    { source: 'arm-drift' },
                ),
            );
        const drift = planRemediation(vault, DRIFT_RULES, policy, this.o.guard)
            .actions.map(driftKeyOf)
            .slice(0, MAX_MEMO_DRIFT);
        const next: VaultMemo = {
            at: new Date(this.o.clock.now()).toISOString(),
            drift,
            enableRbacAuthorization: rbac,
        };
        await this.noteFirewall(w, vault);
        const key = snapshotKey(w.vault.name);
        for (let attempt = 0; attempt < 4; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const r = await this.o.store.put(key, next, s?.etag, Number.MAX_SAFE_INTEGER);
            if (r.ok) return;
        }
        // Another reconcile wrote it meanwhile (we hold the lease, so an undo): its view is as good as ours.
    }

    /** The cap that stops this remediation, if any, and when it lifts; a reconcile that is not capped ends a suspension. */
    private async cap(budget: number, w: Work): Promise<Capped | undefined> {
        const now = w.intent.latestMs;
        if (budget <= 0) return { cap: 'invocation', until: now + HOUR_MS };
        const max = this.o.remediation.maxPerVaultPerHour;
        const times = [...(await this.vaultHourTimes(w))].sort((a, b) => a - b);
        // Below the cap again once all but max-1 of the hour's remediations are older than an hour.
        if (times.length >= max) return { cap: 'vault-hour', until: (times[times.length - max] ?? now) + HOUR_MS };
        await this.endSuspension(w);
        return undefined;
    }

    /** Opens a suspension of the vault's remediation, or counts one more capped attempt in the open one. */
    private async suspend(w: Work, capped: Capped): Promise<Suspension> {
        const key = suspensionKey(w.vault.name);
        const now = w.intent.latestMs;
        for (let attempt = 0; attempt < 8; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const open = s?.value as Suspension | undefined;
            const next: Suspension =
                open !== undefined && open.since <= now && now < open.until
                    ? { ...open, until: Math.max(open.until, capped.until), attempts: open.attempts + 1 }
                    : { cap: capped.cap, since: now, until: capped.until, attempts: 1 };
            const r = await this.o.store.put(key, next, s?.etag, next.until);
            if (r.ok) return next;
        }
        throw new ResponderError('STATE.CONFLICT', `could not record the suspension of ${w.vault.name}`, true);
    }

    /** The cap no longer holds: an open suspension ends here, so the next cap opens (and reports) a new one. */
    private async endSuspension(w: Work): Promise<void> {
        const key = suspensionKey(w.vault.name);
        const now = w.intent.latestMs;
        for (let attempt = 0; attempt < 4; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const open = s?.value as Suspension | undefined;
            if (s === undefined || open === undefined || now >= open.until) return;
            const r = await this.o.store.put(key, { ...open, until: now } satisfies Suspension, s.etag, now);
            if (r.ok) return;
        }
        throw new ResponderError('STATE.CONFLICT', `could not end the suspension of ${w.vault.name}`, true);
    }

    private async firewall(vault: VaultRef): Promise<{ value: FirewallState | undefined; etag: string } | undefined> {
        const [s] = await this.o.store.getMany([firewallStateKey(vault.name)]);
        return s === undefined
            ? undefined
            : { value: (s.value ?? undefined) as FirewallState | undefined, etag: s.etag };
    }

    /**
     * Keeps the firewall state firewall-opened compares with (see its rule): the vault as ARM shows it now, at the
     * intent's event time, unless a newer record was seen already. Without it a re-opening after our own fix, whose
     * audit record may come late (or, in a replay, never), would look like a change of a vault already open.
     */
    private async noteFirewall(w: Work, vault: VaultSnapshot): Promise<void> {
        const open = isFirewallOpen(vault.properties.networkAcls);
        const t = w.intent.latestMs;
        for (let attempt = 0; attempt < 4; attempt++) {
            const s = await this.firewall(w.vault);
            const known = s?.value;
            if (known !== undefined && (known.t > t || known.open === open)) return;
            const next: FirewallState = { open, t, arm: true };
            const r = await this.o.store.put(
                firewallStateKey(w.vault.name),
                next,
                s?.etag,
                Number.MAX_SAFE_INTEGER / 2,
            );
            if (r.ok) return;
        }
        // Concurrent writers of that key are the detection engine with newer records: theirs is the better view.
    }

    /**
     * The outcome of an ARM failure: a vault that is gone is skipped (nothing left to protect); anything else is a
     * failed action and a critical finding naming the stage and the error (403: the responder lacks a permission).
     */
    private failed(w: Work, stage: string, err: unknown, plan?: RemediationPlan): Decision[] {
        const error = describeError(err);
        const status = statusOfErrorOrCause(err);
        const rules = plan === undefined ? [...w.triggered] : [...new Set(plan.actions.map((a) => a.rule))];
        const actions = new Map<string, string>();
        for (const rule of rules) {
            const action = ACTIONS_BY_RULE[rule];
            if (action !== undefined && !actions.has(action)) actions.set(action, rule);
        }
        if (status === 404) {
            const out: Decision[] = [...actions].map(([action, rule]) =>
                this.action(w, action, rule, 'skipped', { reason: 'vault-gone', stage, error }),
            );
            if (out.length === 0)
                out.push(this.action(w, 'reconcile', 'vault-gone', 'skipped', { reason: 'vault-gone', stage, error }));
            return out;
        }
        const forbidden = status === 403;
        const out: Decision[] = [...actions].map(([action, rule]) =>
            this.action(w, action, rule, 'failed', { stage, error, ...(forbidden ? { missingPermission: true } : {}) }),
        );
        out.push(
            this.critical(w, 'remediation-failed', `remediation of ${w.vault.name} failed at ${stage}: ${error}`, {
                stage,
                error,
                ...(status === undefined ? {} : { status }),
                ...(forbidden ? { missingPermission: true } : {}),
                ...(plan === undefined ? {} : { pendingActions: plan.actions.map((a) => a.action) }),
            }),
        );
        return out;
    }

    /** Our write windows of the vault (recent first), for matching audit records of other writers. */
    async windows(vault: VaultRef): Promise<readonly WriteWindow[]> {
        const [s] = await this.o.store.getMany([windowsKey(vault.name)]);
        return ((s?.value ?? undefined) as { list?: WriteWindow[] } | undefined)?.list ?? [];
    }

    /** {@link windows} of several vaults in one read (one `getMany`), by vault name. */
    async windowsOf(vaults: readonly VaultRef[]): Promise<Map<string, readonly WriteWindow[]>> {
        const read = await this.o.store.getMany(vaults.map((v) => windowsKey(v.name)));
        const out = new Map<string, readonly WriteWindow[]>();
        vaults.forEach((v, i) =>
            out.set(v.name, ((read[i]?.value ?? undefined) as { list?: WriteWindow[] } | undefined)?.list ?? []),
        );
        return out;
    }

    private async recordWindow(
        vault: VaultRef,
        before: VaultSnapshot,
        readAt: number,
        sent: VaultNetworkAcls | undefined,
    ): Promise<void> {
        const key = windowsKey(vault.name);
        const acls = before.properties.networkAcls;
        const window: WriteWindow = {
            readAt,
            writeAt: this.o.clock.now(),
            beforeIpRules: (acls?.ipRules ?? []).slice(0, MAX_WINDOW_IPS).map((r) => r.value.slice(0, 45)),
            beforeVirtualNetworkRules: (acls?.virtualNetworkRules ?? [])
                .slice(0, MAX_WINDOW_VNETS)
                .map((r) => r.id.slice(0, 300)),
            sentIpRules: (sent?.ipRules ?? []).slice(0, MAX_WINDOW_IPS).map((r) => r.value.slice(0, 45)),
        };
        for (let attempt = 0; attempt < 8; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const list = ((s?.value ?? undefined) as { list?: WriteWindow[] } | undefined)?.list ?? [];
            const next = [window, ...list].slice(0, MAX_WINDOWS);
            const r = await this.o.store.put(key, { list: next }, s?.etag, window.writeAt + WINDOW_TTL_MS);
            if (r.ok) return;
        }
        throw new ResponderError('STATE.CONFLICT', `could not record a write window of ${vault.name}`, true);
    }

    /** Remediations of the vault in the hour before the intent's latest event (event time: a replay counts as live). */
    private async vaultHourTimes(w: Work): Promise<readonly number[]> {
        const now = w.intent.latestMs;
        const [s] = await this.o.store.getMany([stateKey(w.vault.name, 'remediation|count')]);
        return ((s?.value as Counter | undefined)?.times ?? []).filter((t) => t > now - HOUR_MS);
    }

    private async countRemediation(w: Work): Promise<void> {
        const vault = w.vault;
        const key = stateKey(vault.name, 'remediation|count');
        const now = w.intent.latestMs;
        for (let attempt = 0; attempt < 8; attempt++) {
            const [s] = await this.o.store.getMany([key]);
            const times = ((s?.value as Counter | undefined)?.times ?? []).filter((t) => t > now - HOUR_MS);
            const r = await this.o.store.put(key, { times: [...times, now] } satisfies Counter, s?.etag, now + HOUR_MS);
            if (r.ok) return;
        }
        throw new ResponderError('STATE.CONFLICT', `could not count a remediation of ${vault.name}`, true);
    }

    /** Saves the vault's prior state before a change, for undo from the alert; returns the undo id. */
    private saveUndo(w: Work, before: VaultSnapshot, plan: RemediationPlan): Promise<string> {
        // One part per change, tagged with its rule: an incident's undo restores only its own parts.
        const rules = [...new Set([...w.triggered, ...plan.actions.map((a) => a.rule)])];
        return this.storeUndo(w, (at) => undoRecordOf(w.vault.resourceId, at, rules, before, plan));
    }

    /** Writes a new undo record of the vault (built for the time of writing, ISO 8601); returns its undo id. */
    private async storeUndo(w: Work, recordAt: (at: string) => UndoRecord): Promise<string> {
        const now = this.o.clock.now();
        const undoId = `${now.toString(36)}-${(this.undoSeq++).toString(36)}-${this.o.owner}`;
        const key = stateKey(w.vault.name, `undo|${undoId}`);
        const r = await this.o.store.put(key, recordAt(new Date(now).toISOString()), undefined, now + UNDO_TTL_MS);
        if (!r.ok) throw new ResponderError('STATE.CONFLICT', `undo snapshot ${undoId} exists already`, true);
        return undoId;
    }

    private approvals(vault: VaultRef): Promise<VaultApprovals | undefined> {
        return readApprovals(this.o.store, vault, this.o.clock.now());
    }
}
