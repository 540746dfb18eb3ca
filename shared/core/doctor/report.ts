/**
 * `kvr doctor`: the pure part. One row per check and target, the exit status, the table, and the judgements that need
 * no I/O (RBAC action matching, which actions remediation needs on a vault, whether a vault's diagnostic settings
 * send AuditEvent to our hub, whether an app setting is an unresolved Key Vault reference).
 */
import { ACTION_PERMISSIONS, ACTIONS_BY_RULE, type ActionId, EXCLUDED_PERMISSIONS } from '../remediation/types';
import type { VaultPolicy } from '../rules/settings';

/** `warn`: works, but something is worth fixing (e.g. more rights than needed); it does not fail the run. */
export type CheckStatus = 'pass' | 'fail' | 'skip' | 'warn';

/** One row of the doctor's report. */
export interface CheckResult {
    /** The check's id, e.g. `vault-read`. */
    readonly check: string;
    /** What was checked: a vault name, a table, a channel. */
    readonly target: string;
    readonly status: CheckStatus;
    readonly detail: string;
    /** What to do about a failure (always present on `fail`). */
    readonly fix?: string;
}

export interface DoctorReport {
    readonly ok: boolean;
    readonly counts: Readonly<Record<CheckStatus, number>>;
    readonly checks: readonly CheckResult[];
}

export function doctorReport(checks: readonly CheckResult[]): DoctorReport {
    const counts = { pass: 0, fail: 0, skip: 0, warn: 0 };
    for (const c of checks) counts[c.status]++;
    return { ok: counts.fail === 0, counts, checks };
}

/** 0 when every check passed, warned or was skipped, 1 when any failed. */
export function doctorExitCode(report: DoctorReport): 0 | 1 {
    return report.ok ? 0 : 1;
}

const MAX_CELL = 400;

function cell(s: string | undefined): string {
    const one = (s ?? '').replace(/\s+/g, ' ').trim();
    return one.length > MAX_CELL ? `${one.slice(0, MAX_CELL - 3)}...` : one;
}

/** The report as a plain-text table (check, target, status, detail, fix), one line per row, and a summary line. */
export function formatDoctorTable(report: DoctorReport): string {
    const header = ['CHECK', 'TARGET', 'STATUS', 'DETAIL', 'FIX'];
    const rows = report.checks.map((c) => [c.check, c.target, c.status.toUpperCase(), cell(c.detail), cell(c.fix)]);
    // The last column is not padded; the first four are padded to their widths (detail capped to keep lines readable).
    const widths = header.map((h, i) =>
        i === 4 ? 0 : Math.min(i === 3 ? 80 : 60, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))),
    );
    const line = (r: readonly string[]) =>
        r
            .map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
            .join('  ')
            .trimEnd();
    const { pass, fail, skip, warn } = report.counts;
    return [
        line(header),
        ...rows.map(line),
        '',
        `${pass} passed, ${fail} failed, ${skip} skipped${warn > 0 ? `, ${warn} warned` : ''}: ${report.ok ? 'OK' : 'FAILED'}`,
        '',
    ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// RBAC: `GET {scope}/providers/Microsoft.Authorization/permissions` (api-version 2022-04-01) answers
// `{ value: Permission[] }`, one entry per role the caller holds at or above the scope, each with `actions`,
// `notActions`, `dataActions`, `notDataActions` (Authorization REST API, "Permissions - List For Resource"). Patterns
// may hold `*` wildcards and compare case-insensitively; `notActions` subtract from the `actions` of the same entry
// only (a role's NotActions are not a deny: another role can grant the action back).

export interface RbacPermission {
    readonly actions?: readonly string[];
    readonly notActions?: readonly string[];
    readonly dataActions?: readonly string[];
    readonly notDataActions?: readonly string[];
}

/** Whether an RBAC action pattern (`*` wildcards, case-insensitive) matches an action. */
export function actionMatches(pattern: string, action: string): boolean {
    const re = new RegExp(
        `^${pattern
            .split('*')
            .map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
            .join('.*')}$`,
        'i',
    );
    return re.test(action);
}

/** Whether any one permission entry grants `action` (a control-plane action). */
export function actionGranted(permissions: readonly RbacPermission[], action: string): boolean {
    return permissions.some(
        (p) =>
            (p.actions ?? []).some((a) => actionMatches(a, action)) &&
            !(p.notActions ?? []).some((a) => actionMatches(a, action)),
    );
}

/**
 * Least privilege: the rights the responder deliberately does without (`EXCLUDED_PERMISSIONS`: granting roles,
 * deleting diagnostic settings) that these permissions grant all the same, through any role.
 */
export function excessActions(permissions: readonly RbacPermission[]): string[] {
    return EXCLUDED_PERMISSIONS.filter((a) => actionGranted(permissions, a));
}

/** The actions of `required` that no permission entry grants. */
export function missingActions(permissions: readonly RbacPermission[], required: readonly string[]): string[] {
    return required.filter((a) => !actionGranted(permissions, a));
}

/**
 * The remediation actions that can run on a vault under its policy: those of the rules in enforce mode there (the
 * vault's mode, or the rule's own mode on it), enabled, and applicable (no access-policy removal on an RBAC vault, no
 * virtual network rule removal without a list of approved subnets, no RBAC switch where the policy has no
 * authorization model).
 */
export function enforcedActions(
    policy: VaultPolicy,
    ruleEnabled: (rule: string) => boolean,
    rbacVault: boolean,
): ActionId[] {
    const out = new Set<ActionId>();
    for (const [rule, action] of Object.entries(ACTIONS_BY_RULE)) {
        if (!ruleEnabled(rule)) continue;
        if ((policy.ruleModes.get(rule) ?? policy.mode) !== 'enforce') continue;
        if (rbacVault && action === 'remove-access-policy') continue;
        // Virtual network rules are judged only where a policy lists the approved subnets.
        if (action === 'remove-vnet-rule' && policy.approvedVirtualNetworkRules === undefined) continue;
        // The RBAC switch is restored only where the policy wants Azure RBAC.
        if (action === 'restore-rbac-authorization' && policy.authorization !== 'rbac') continue;
        out.add(action);
    }
    return [...out].sort();
}

/** The RBAC actions those remediation actions need (ACTION_PERMISSIONS), without duplicates, sorted. */
export function actionsNeeded(actions: readonly ActionId[]): string[] {
    return [...new Set(actions.flatMap((a) => ACTION_PERMISSIONS[a]))].sort();
}

// ---------------------------------------------------------------------------------------------------------------
// Diagnostic settings: `GET {vaultId}/providers/Microsoft.Insights/diagnosticSettings?api-version=2021-05-01-preview`
// answers `{ value: DiagnosticSettingsResource[] }`. `properties.logs[]` entries name a `category` or a
// `categoryGroup` (Key Vault: `audit` and `allLogs` both hold AuditEvent) and `enabled`. `eventHubName` is optional:
// without it Azure Monitor writes each category to `insights-logs-<category>` in the namespace of
// `eventHubAuthorizationRuleId` (Monitor REST API, "Diagnostic Settings - Create Or Update"; infra/modules/eventHubs.bicep).

export interface DiagnosticSettingWire {
    readonly id?: string;
    readonly name?: string;
    readonly properties?: {
        readonly eventHubAuthorizationRuleId?: string | null;
        readonly eventHubName?: string | null;
        readonly logs?: readonly {
            readonly category?: string | null;
            readonly categoryGroup?: string | null;
            readonly enabled?: boolean;
        }[];
    };
}

/** Where our log hub is. `namespaceId` (ARM resource id) when known, else only the namespace name. */
export interface HubTarget {
    readonly namespaceName: string;
    readonly namespaceId?: string;
    readonly hubName: string;
}

export const DEFAULT_AUDIT_HUB = 'insights-logs-auditevent';

function namespaceOfRule(ruleId: string): { id: string; name: string } | undefined {
    const m =
        /^(\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/microsoft\.eventhub\/namespaces\/([^/]+))\//i.exec(
            ruleId,
        );
    return m === null ? undefined : { id: (m[1] as string).toLowerCase(), name: (m[2] as string).toLowerCase() };
}

function sendsAudit(s: DiagnosticSettingWire): boolean {
    return (s.properties?.logs ?? []).some(
        (l) =>
            l.enabled === true &&
            ((l.category ?? '').toLowerCase() === 'auditevent' ||
                ['audit', 'alllogs'].includes((l.categoryGroup ?? '').toLowerCase())),
    );
}

export type AuditRouting =
    | { readonly ok: true; readonly setting: string }
    | { readonly ok: false; readonly detail: string; readonly fix: string };

/** Whether one of a vault's diagnostic settings sends enabled AuditEvent logs to our namespace and hub. */
export function auditRoutingOf(settings: readonly DiagnosticSettingWire[], target: HubTarget): AuditRouting {
    const fixNew = `create a diagnostic setting on the vault with the 'audit' category group enabled, to event hub '${target.hubName}' of namespace '${target.namespaceName}' (infra/modules/vaultDiagnostics.bicep, or the diagnostics policy)`;
    if (settings.length === 0) return { ok: false, detail: 'the vault has no diagnostic setting', fix: fixNew };
    const problems: string[] = [];
    for (const s of settings) {
        const name = s.name ?? s.id ?? '(unnamed)';
        const ruleId = s.properties?.eventHubAuthorizationRuleId ?? undefined;
        const ns = ruleId === undefined ? undefined : namespaceOfRule(ruleId);
        if (ns === undefined) {
            problems.push(`'${name}' sends to no event hub`);
            continue;
        }
        const nsOk =
            target.namespaceId === undefined
                ? ns.name === target.namespaceName.toLowerCase()
                : ns.id === target.namespaceId.toLowerCase().replace(/\/+$/, '');
        if (!nsOk) {
            problems.push(`'${name}' sends to namespace '${ns.name}'`);
            continue;
        }
        const hub = s.properties?.eventHubName ?? DEFAULT_AUDIT_HUB;
        if (hub.toLowerCase() !== target.hubName.toLowerCase()) {
            problems.push(`'${name}' sends to hub '${hub}'`);
            continue;
        }
        if (!sendsAudit(s)) {
            problems.push(`'${name}' does not have AuditEvent (category, or the audit/allLogs group) enabled`);
            continue;
        }
        return { ok: true, setting: name };
    }
    const wrongDestinationOnly = problems.every((p) => !p.includes('AuditEvent'));
    return {
        ok: false,
        detail: `no diagnostic setting sends AuditEvent to ${target.namespaceName}/${target.hubName}: ${problems.join('; ')}`,
        fix: wrongDestinationOnly
            ? fixNew
            : "enable the 'audit' category group (or AuditEvent) in the vault's diagnostic setting to our hub",
    };
}

// ---------------------------------------------------------------------------------------------------------------
// App settings

/**
 * Whether a setting value is a Key Vault reference the platform could not resolve: App Service passes it to the app
 * as the literal `@Microsoft.KeyVault(...)` text (App Service docs, "Use Key Vault references").
 */
export function isUnresolvedKeyVaultReference(value: string | undefined): boolean {
    return value !== undefined && /^\s*@Microsoft\.KeyVault\s*\(/i.test(value);
}
