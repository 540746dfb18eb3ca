import { z } from 'zod';
import { isMailAddress } from '../core/alerts/mime';
import { type AlertSettings, atLeast, type Roster } from '../core/alerts/settings';
import { SEVERITIES, type Severity } from '../core/decisions';
import type { RuleToggle } from '../core/engine/rule';
import { ConfigError } from '../core/errors';
import type { AccessPolicyPermissions, VaultRef } from '../core/events/types';
import { type IpRange, parseRange } from '../core/net/cidr';
import { MAX_WINDOW_THRESHOLD } from '../core/rules/common';
import { parseScope } from '../core/events/activity';
import { KEY_VAULT_ROLES, roleIdOf } from '../core/rules/roles';
import {
    DAY_MS,
    DEFAULT_QUIET_PERIOD_MS,
    DEFAULT_READ_OPERATIONS,
    DEFAULT_SENSITIVE_OPERATIONS,
    type Decoy,
    type DetectionSettings,
    type RemediationMode,
    MINUTE_MS,
    PLATFORM_SCANNERS,
    type VaultPolicy,
} from '../core/rules/settings';

/**
 * The responder config file (JSON): detections and guardrail policy. Validated once at start with every problem
 * listed; the JSON Schema generated from this definition is published as `config.schema.json`.
 */
const guid = z
    .string()
    .regex(
        /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
        'expected a GUID (object id or app id)',
    );

const cidr = z.string().refine((s) => parseRange(s) !== undefined, 'expected an IPv4 or IPv6 address or CIDR range');

/** A subnet resource id, as a vault's virtual network rule names it (ARM ids compare case-insensitively). */
const SUBNET_ID =
    /^\/subscriptions\/[^/]+\/resourcegroups\/[^/]+\/providers\/microsoft\.network\/virtualnetworks\/[^/]+\/subnets\/[^/]+\/?$/i;
// A refinement, not a pattern: a JSON Schema pattern has no case-insensitive flag, and ARM ids are case-insensitive.
const subnetId = z
    .string()
    .refine(
        (s) => SUBNET_ID.test(s),
        'expected a subnet resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>',
    );

const permissionList = z.array(z.string().min(1)).optional();
const permissions = z
    .strictObject({
        keys: permissionList,
        secrets: permissionList,
        certificates: permissionList,
        storage: permissionList,
    })
    .describe('Allowed access-policy permissions by object type; an omitted type allows none.');

const roleName = z
    .string()
    .refine(
        (r) => roleIdOf(r) !== undefined,
        `expected a role definition GUID or a built-in role name (${KEY_VAULT_ROLES.map((r) => r.name).join(', ')})`,
    );

const approvedPrincipal = z.strictObject({
    objectId: guid.describe('Object id of the user, group or service principal.'),
    permissions: permissions.optional().describe('Omit to allow any permissions.'),
    roles: z
        .array(roleName)
        .optional()
        .describe(
            'Azure roles this principal may be assigned on the vault or above it (built-in role names or role definition GUIDs); omit to allow any role (role-assignment-granted).',
        ),
    note: z.string().optional().describe('Who or what this is, for the humans reading the config.'),
});

const policyFields = {
    networkDefaultAction: z
        .enum(['Deny', 'Allow', 'any'])
        .optional()
        .describe('Wanted network ACL default action (firewall-opened fires on Allow when Deny is wanted).'),
    publicNetworkAccess: z
        .enum(['Disabled', 'Enabled', 'any'])
        .optional()
        .describe(
            'Wanted publicNetworkAccess (public-network-access-enabled fires on Enabled when Disabled is wanted).',
        ),
    approvedIpRanges: z
        .array(cidr)
        .optional()
        .describe('IP rules inside these ranges are approved (IPv4 and IPv6 CIDR).'),
    approvedVirtualNetworkRules: z
        .array(subnetId)
        .optional()
        .describe(
            'Subnets (resource ids, case-insensitive) whose virtual network rules are approved. Once any matching policy sets this list (even empty), every other virtual network rule of the vault is unapproved (firewall-vnet-rule-added, remove-vnet-rule); without it virtual network rules are not judged.',
        ),
    approvedPrincipals: z
        .array(approvedPrincipal)
        .optional()
        .describe('Principals approved in access policies and, with their roles, in role assignments.'),
    authorization: z
        .enum(['rbac', 'access-policies', 'any'])
        .optional()
        .describe(
            'Wanted authorization model: rbac makes restore-rbac-authorization turn enableRbacAuthorization back on in enforce mode (default any: the switch is only reported).',
        ),
    quietPeriodHours: z
        .number()
        .min(0.25)
        .max(24 * 366)
        .optional()
        .describe(
            'audit-log-silent: a vault that sent AuditEvent records and then sends none for longer than this is reported (default 6).',
        ),
    mode: z
        .enum(['enforce', 'monitor'])
        .optional()
        .describe('enforce: remediate drift; monitor: plan and report only (default monitor).'),
    ruleModes: z
        .record(z.string(), z.enum(['enforce', 'monitor']))
        .optional()
        .describe(
            'Per-rule modes, keyed by rule id: a rule in monitor mode is only planned, even on an enforced vault.',
        ),
};

const match = z
    .strictObject({
        vaultName: z.string().min(3).optional(),
        resourceId: z.string().min(1).optional(),
        subscriptionId: guid.optional(),
        tag: z.strictObject({ name: z.string().min(1), value: z.string() }).optional(),
    })
    .refine((m) => Object.keys(m).length > 0, 'an override needs at least one match criterion');

const guardrails = z.strictObject({
    default: z.strictObject(policyFields).optional().describe('The policy of every vault.'),
    overrides: z
        .array(z.strictObject({ match, ...policyFields }))
        .optional()
        .describe('Per-vault changes, applied in order when every match criterion holds; lists add to the defaults.'),
});

const ruleOverride = z.strictObject({
    enabled: z.boolean().optional().describe('Turn the rule off with false.'),
    severity: z.enum(SEVERITIES).optional().describe('Override the rule default severity.'),
});

const threshold = (count: number, minutes: number) =>
    z.strictObject({
        count: z
            .number()
            .int()
            .min(1)
            // The window state keeps about twice this many items: 1,000 keeps it within one Table Storage entity.
            .max(MAX_WINDOW_THRESHOLD)
            .optional()
            .describe(`Fires above this count (default ${count}, at most ${MAX_WINDOW_THRESHOLD}).`),
        windowMinutes: z.number().min(1).optional().describe(`Window in minutes of event time (default ${minutes}).`),
    });

const email = z.string().refine(isMailAddress, 'expected a plain email address (name@domain.tld)');

const alerting = z.strictObject({
    minSeverity: z
        .enum(SEVERITIES)
        .optional()
        .describe('Findings below this severity are recorded as incidents but notify nobody (default low).'),
    incidentWindowMinutes: z
        .number()
        .min(1)
        .optional()
        .describe('Findings of one vault, rule and principal within this window update one incident (default 60).'),
    escalation: z
        .strictObject({
            afterMinutes: z
                .number()
                .min(1)
                .optional()
                .describe('An unacknowledged incident moves to the next tier after this long (default 15).'),
            minSeverity: z.enum(SEVERITIES).optional().describe('Only incidents this severe escalate (default high).'),
            maxReminders: z
                .number()
                .int()
                .min(0)
                .optional()
                .describe('Reminders to the last tier once every tier was notified (default 2).'),
        })
        .optional(),
    linkTtlHours: z.number().min(1).optional().describe('Lifetime of acknowledge and undo links (default 72).'),
    maxDeliveryAttempts: z
        .number()
        .int()
        .min(1)
        .optional()
        .describe('Attempts per notification before its channel is reported failing on the other one (default 6).'),
    rosters: z
        .record(
            z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'roster names are letters, digits, _ . -'),
            z.strictObject({
                tiers: z
                    .array(
                        z.strictObject({
                            name: z.string().min(1),
                            email: z.array(email).optional().describe('Recipients of this tier.'),
                            teams: z.boolean().optional().describe('Post to the Teams channel too (default true).'),
                        }),
                    )
                    .min(1),
            }),
        )
        .optional()
        .describe('On-call rosters by name; "default" receives what no route matches.'),
    routes: z
        .array(
            z.strictObject({
                match: match.optional(),
                minSeverity: z.enum(SEVERITIES).optional().describe('Route only incidents this severe.'),
                roster: z.string().min(1),
            }),
        )
        .optional()
        .describe('First matching route picks the roster of an incident.'),
});

export const responderConfigSchema = z.strictObject({
    $schema: z.string().optional(),
    rules: z.record(z.string(), ruleOverride).optional().describe('Per-rule switches, keyed by rule id.'),
    guardrails: guardrails.optional().describe('What each vault should look like.'),
    responderIdentities: z
        .array(guid)
        .optional()
        .describe("Object ids / app ids of kv-responder's own identity: its changes are never reported as drift."),
    protectedPrincipals: z
        .array(guid)
        .optional()
        .describe('Break-glass accounts and deployment pipelines: never removed by a remediation.'),
    decoys: z
        .array(
            z.strictObject({
                name: z.string().min(1),
                kind: z.enum(['secret', 'key', 'certificate']).optional(),
                vault: z.string().min(3).optional(),
            }),
        )
        .optional()
        .describe('Honeytokens: any access to these objects is critical.'),
    knownScanners: z.array(guid).optional().describe('More app ids that new-app-access never reports.'),
    sensitiveOperations: z
        .array(z.string().regex(/^[A-Za-z]+$/, 'expected an AuditEvent operation name such as SecretPurge'))
        .optional()
        .describe(
            `AuditEvent operations reported by sensitive-operation when they succeed and by destructive-operation-denied when denied; replaces the default (${DEFAULT_SENSITIVE_OPERATIONS.join(', ')}).`,
        ),
    auditDestination: z
        .strictObject({
            eventHubAuthorizationRuleId: z
                .string()
                .min(1)
                .optional()
                .describe('Resource id of the Event Hubs namespace authorization rule the vaults stream to.'),
            eventHubName: z.string().min(1).optional().describe('The event hub the vaults stream AuditEvent to.'),
            settingName: z
                .string()
                .regex(/^[^/\\#?]{1,260}$/, 'expected a diagnostic setting name')
                .optional()
                .describe(
                    "Name of the vault diagnostic setting restore-diagnostic-setting writes (default kv-responder: the templates' setting and policy profileName).",
                ),
        })
        .optional()
        .describe(
            "Where vaults' diagnostic settings must send AuditEvent: diagnostic-setting-removed fires when a setting stops sending it there (omit to accept any event hub).",
        ),
    baseline: z
        .strictObject({
            windowDays: z
                .number()
                .min(1)
                .optional()
                .describe('A principal unseen for this long is new again (default 30).'),
            learningDays: z
                .number()
                .min(0)
                .optional()
                .describe('A new vault only learns for this long (default: windowDays).'),
            readOperations: z
                .array(z.string().min(1))
                .optional()
                .describe('Reads the baselines watch (default SecretGet, KeyGet, VaultGet).'),
        })
        .optional(),
    thresholds: z
        .strictObject({
            massSecretRetrieval: threshold(10, 60).optional(),
            vaultThrottled: threshold(50, 5).optional(),
            deniedAccessBurst: threshold(10, 15).optional(),
            grantedThenRevokedMinutes: z.number().min(1).optional().describe('Default 10.'),
            vaultEnumeration: z
                .strictObject({
                    kinds: z
                        .number()
                        .int()
                        .min(1)
                        .max(3)
                        .optional()
                        .describe('Object kinds (keys, secrets, certificates) listed then read (default 3).'),
                    windowMinutes: z
                        .number()
                        .min(1)
                        .optional()
                        .describe('Window in minutes of event time (default 30).'),
                })
                .optional(),
        })
        .optional(),
    remediation: z
        .strictObject({
            maxPerVaultPerHour: z
                .number()
                .int()
                .min(1)
                .optional()
                .describe('Remediations per vault per hour before it is suspended (default 3).'),
            maxPerInvocation: z.number().int().min(1).optional().describe('Remediations per batch (default 10).'),
            retryBudgetSeconds: z
                .number()
                .min(1)
                .optional()
                .describe('How long to retry 429 and 5xx answers from ARM (default 60).'),
            undoApprovalHours: z
                .number()
                .min(1)
                .max(720)
                .optional()
                .describe(
                    'How long what an undo restored stays approved before the responder enforces the policy on it again (default 24).',
                ),
        })
        .optional()
        .describe('Blast-radius caps, retry budget and undo approvals of automatic remediation.'),
    grouping: z
        .strictObject({ windowMinutes: z.number().min(1).optional().describe('Default 60.') })
        .optional()
        .describe('Repeated findings of one rule, vault and principal within the window form one finding.'),
    alerting: alerting.optional().describe('Incidents, on-call rosters, routing and escalation.'),
    cmk: z
        .strictObject({
            inUseDays: z
                .number()
                .min(1)
                .optional()
                .describe('A key version used successfully by a service within this many days is in use (default 30).'),
            expiringWithinDays: z
                .number()
                .min(1)
                .optional()
                .describe(
                    'cmk-expiring-in-use fires for key versions in use that expire within this many days (default 30).',
                ),
            allowReenable: z
                .boolean()
                .optional()
                .describe(
                    'Offer "Re-enable key version" on CMK alerts (the app identity then needs Key Vault Crypto Officer on the vaults: off by default).',
                ),
            posture: z
                .strictObject({
                    vaults: z
                        .array(z.string().min(1))
                        .optional()
                        .describe(
                            'Vaults whose keys the daily posture check reads: ARM resource ids (recommended: alerts are routed by them and disk-encryption settings are read), or vault URLs.',
                        ),
                    appTierTag: z
                        .strictObject({ name: z.string().min(1), value: z.string() })
                        .optional()
                        .describe('cmk-app-tier-missing: a vault needs an enabled key carrying this tag.'),
                    minRsaBits: z
                        .number()
                        .int()
                        .min(1024)
                        .optional()
                        .describe('cmk-weak-key: smallest RSA size (default 2048).'),
                    allowedKeyTypes: z
                        .array(z.enum(['RSA', 'RSA-HSM', 'EC', 'EC-HSM', 'oct', 'oct-HSM']))
                        .optional()
                        .describe('cmk-weak-key: allowed key types (default RSA, RSA-HSM, EC, EC-HSM).'),
                    allowedCurves: z
                        .array(z.enum(['P-256', 'P-384', 'P-521', 'P-256K']))
                        .optional()
                        .describe('cmk-weak-key: allowed EC curves (default P-256, P-384, P-521).'),
                })
                .optional()
                .describe('The daily key posture check (kvr posture and the cmkPosture timer).'),
        })
        .optional()
        .describe('Customer-managed key assurance: live inventory, pre-outage detection, posture.'),
});

export type ResponderConfigInput = z.infer<typeof responderConfigSchema>;

/** The validated configuration the pipeline runs with. */
export interface ResponderConfig {
    readonly ruleToggles: ReadonlyMap<string, RuleToggle>;
    readonly detection: DetectionSettings;
    readonly protectedPrincipals: ReadonlySet<string>;
    readonly remediation: RemediationSettings;
    readonly alerting: AlertSettings;
    readonly cmk: CmkSettings;
}

export interface CmkPostureSettings {
    readonly vaults: readonly string[];
    readonly appTierTag: { readonly name: string; readonly value: string } | undefined;
    readonly minRsaBits: number;
    readonly allowedKeyTypes: readonly string[];
    readonly allowedCurves: readonly string[];
}

export interface CmkSettings {
    readonly inUseMs: number;
    readonly expiringWithinMs: number;
    readonly allowReenable: boolean;
    readonly posture: CmkPostureSettings;
}

export interface RemediationSettings {
    readonly maxPerVaultPerHour: number;
    readonly maxPerInvocation: number;
    readonly retryBudgetMs: number;
    /** How long an undo's approval lasts. */
    readonly undoApprovalMs: number;
    /** Vault resource ids the guardrail overrides name (lower-case): the drift sweep reconciles them. */
    readonly vaultIds: readonly string[];
}

function pathOf(path: readonly PropertyKey[]): string {
    return path.length === 0 ? '(root)' : path.map((p) => String(p)).join('.');
}

type PolicyInput = z.infer<z.ZodObject<typeof policyFields>>;
type OverrideInput = NonNullable<NonNullable<ResponderConfigInput['guardrails']>['overrides']>[number];

function permissionsOf(p: z.infer<typeof permissions> | undefined): AccessPolicyPermissions | undefined {
    if (p === undefined) return undefined;
    const lower = (l: string[] | undefined): string[] => (l ?? []).map((s) => s.toLowerCase());
    return {
        keys: lower(p.keys),
        secrets: lower(p.secrets),
        certificates: lower(p.certificates),
        storage: lower(p.storage),
    };
}

interface MutablePolicy {
    networkDefaultAction: VaultPolicy['networkDefaultAction'];
    publicNetworkAccess: VaultPolicy['publicNetworkAccess'];
    approvedIpRanges: IpRange[];
    approvedVirtualNetworkRules: Set<string> | undefined;
    approvedPrincipals: Map<string, AccessPolicyPermissions | undefined>;
    approvedRoles: Map<string, ReadonlySet<string>>;
    authorization?: 'rbac' | 'access-policies';
    quietPeriodMs: number;
    mode: RemediationMode;
    ruleModes: Map<string, RemediationMode>;
}

function applyPolicy(target: MutablePolicy, p: PolicyInput): void {
    if (p.networkDefaultAction !== undefined) {
        target.networkDefaultAction = p.networkDefaultAction === 'any' ? undefined : p.networkDefaultAction;
    }
    if (p.publicNetworkAccess !== undefined) {
        target.publicNetworkAccess = p.publicNetworkAccess === 'any' ? undefined : p.publicNetworkAccess;
    }
    for (const r of p.approvedIpRanges ?? []) target.approvedIpRanges.push(parseRange(r) as IpRange);
    if (p.approvedVirtualNetworkRules !== undefined) {
        target.approvedVirtualNetworkRules ??= new Set();
        for (const id of p.approvedVirtualNetworkRules)
            target.approvedVirtualNetworkRules.add(id.toLowerCase().replace(/\/+$/, ''));
    }
    for (const a of p.approvedPrincipals ?? []) {
        const id = a.objectId.toLowerCase();
        target.approvedPrincipals.set(id, permissionsOf(a.permissions));
        if (a.roles === undefined) target.approvedRoles.delete(id);
        else target.approvedRoles.set(id, new Set(a.roles.map((r) => roleIdOf(r) as string)));
    }
    if (p.authorization === 'any') delete target.authorization;
    else if (p.authorization !== undefined) target.authorization = p.authorization;
    if (p.quietPeriodHours !== undefined) target.quietPeriodMs = p.quietPeriodHours * 3_600_000;
    if (p.mode !== undefined) target.mode = p.mode;
    for (const [rule, mode] of Object.entries(p.ruleModes ?? {})) target.ruleModes.set(rule, mode);
}

function matches(
    m: OverrideInput['match'],
    vault: VaultRef,
    tags: Readonly<Record<string, string>> | undefined,
): boolean {
    if (m.vaultName !== undefined && m.vaultName.toLowerCase() !== vault.name) return false;
    if (m.resourceId !== undefined && m.resourceId.toLowerCase().replace(/\/+$/, '') !== vault.resourceId) return false;
    if (m.subscriptionId !== undefined && m.subscriptionId.toLowerCase() !== vault.subscriptionId) return false;
    if (m.tag !== undefined) {
        const wanted = m.tag.name.toLowerCase();
        const entry = Object.entries(tags ?? {}).find(([k]) => k.toLowerCase() === wanted);
        if (entry === undefined || entry[1] !== m.tag.value) return false;
    }
    return true;
}

/** Known vault tags by vault resource id (lower-case), from an inventory; tag overrides match against them. */
export type VaultTags = ReadonlyMap<string, Readonly<Record<string, string>>>;

/** Vaults the config names by resource id (override matches, CMK posture) and those of the tag inventory. */
function knownVaultsOf(data: ResponderConfigInput, tags: VaultTags): VaultRef[] {
    const ids = new Set<string>(tags.keys());
    for (const o of data.guardrails?.overrides ?? []) if (o.match.resourceId !== undefined) ids.add(o.match.resourceId);
    for (const v of data.cmk?.posture?.vaults ?? []) ids.add(v);
    const out = new Map<string, VaultRef>();
    for (const id of ids) {
        const vault = parseScope(id)?.vault;
        if (vault !== undefined) out.set(vault.resourceId, vault);
    }
    return [...out.values()];
}

function detectionSettingsOf(data: ResponderConfigInput, tags: VaultTags): DetectionSettings {
    const lowerSet = (l: readonly string[] | undefined): Set<string> => new Set((l ?? []).map((s) => s.toLowerCase()));
    const t = data.thresholds ?? {};
    const windowDays = data.baseline?.windowDays ?? 30;
    const overrides = data.guardrails?.overrides ?? [];
    const defaults = data.guardrails?.default ?? {};
    const decoys: Decoy[] = (data.decoys ?? []).map((d) => ({
        name: d.name.toLowerCase(),
        kind: d.kind,
        vault: d.vault?.toLowerCase(),
    }));
    /** The default guardrails with the matching overrides applied, in order. */
    const policyOf = (matched: readonly (typeof overrides)[number][]): VaultPolicy => {
        const p: MutablePolicy = {
            networkDefaultAction: 'Deny',
            publicNetworkAccess: undefined,
            approvedIpRanges: [],
            approvedVirtualNetworkRules: undefined,
            approvedPrincipals: new Map(),
            approvedRoles: new Map(),
            quietPeriodMs: DEFAULT_QUIET_PERIOD_MS,
            mode: 'monitor',
            ruleModes: new Map(),
        };
        applyPolicy(p, defaults);
        for (const o of matched) applyPolicy(p, o);
        const { approvedVirtualNetworkRules: vnets, ...rest } = p;
        return Object.freeze(vnets === undefined ? rest : { ...rest, approvedVirtualNetworkRules: vnets });
    };
    let defaultPolicy: VaultPolicy | undefined;
    return Object.freeze({
        sensitiveOperations: new Set(data.sensitiveOperations ?? DEFAULT_SENSITIVE_OPERATIONS),
        readOperations: new Set(data.baseline?.readOperations ?? DEFAULT_READ_OPERATIONS),
        knownScanners: lowerSet([...PLATFORM_SCANNERS, ...(data.knownScanners ?? [])]),
        responderIdentities: lowerSet(data.responderIdentities),
        decoys,
        baselineWindowMs: windowDays * DAY_MS,
        learningPeriodMs: (data.baseline?.learningDays ?? windowDays) * DAY_MS,
        massSecretRetrieval: {
            count: t.massSecretRetrieval?.count ?? 10,
            windowMs: (t.massSecretRetrieval?.windowMinutes ?? 60) * MINUTE_MS,
        },
        vaultThrottled: {
            count: t.vaultThrottled?.count ?? 50,
            windowMs: (t.vaultThrottled?.windowMinutes ?? 5) * MINUTE_MS,
        },
        deniedAccessBurst: {
            count: t.deniedAccessBurst?.count ?? 10,
            windowMs: (t.deniedAccessBurst?.windowMinutes ?? 15) * MINUTE_MS,
        },
        grantRevokeWindowMs: (t.grantedThenRevokedMinutes ?? 10) * MINUTE_MS,
        vaultEnumeration: {
            kinds: t.vaultEnumeration?.kinds ?? 3,
            windowMs: (t.vaultEnumeration?.windowMinutes ?? 30) * MINUTE_MS,
        },
        knownVaults: knownVaultsOf(data, tags),
        auditDestination:
            data.auditDestination === undefined
                ? undefined
                : {
                      eventHubAuthorizationRuleId: data.auditDestination.eventHubAuthorizationRuleId
                          ?.toLowerCase()
                          .replace(/\/+$/, ''),
                      eventHubName: data.auditDestination.eventHubName?.toLowerCase(),
                      ...(data.auditDestination.settingName === undefined
                          ? {}
                          : { settingName: data.auditDestination.settingName }),
                  },
        groupWindowMs: (data.grouping?.windowMinutes ?? 60) * MINUTE_MS,
        cmkInUseMs: (data.cmk?.inUseDays ?? 30) * DAY_MS,
        policyFor(vault: VaultRef, vaultTags = tags.get(vault.resourceId)): VaultPolicy {
            // A vault no override matches (most of an estate) gets the one shared default policy: it is frozen and
            // every consumer copies what it changes (withApprovals), and a policy per vault held by a cache of the
            // engine took 8 MB of heap in a 10,000-vault replay.
            const matched = overrides.filter((o) => matches(o.match, vault, vaultTags));
            if (matched.length === 0) return (defaultPolicy ??= policyOf([]));
            return policyOf(matched);
        },
    });
}

const DEFAULT_ROSTER: Roster = { name: 'default', tiers: [{ name: 'on-call', email: [], teams: true }] };

function alertSettingsOf(data: ResponderConfigInput, tags: VaultTags): AlertSettings {
    const a = data.alerting ?? {};
    const rosters = new Map<string, Roster>();
    for (const [name, r] of Object.entries(a.rosters ?? {})) {
        rosters.set(name, {
            name,
            tiers: r.tiers.map((t) => ({ name: t.name, email: t.email ?? [], teams: t.teams ?? true })),
        });
    }
    const fallback = rosters.get('default') ?? DEFAULT_ROSTER;
    const routes = a.routes ?? [];
    return Object.freeze({
        minSeverity: a.minSeverity ?? 'low',
        incidentWindowMs: (a.incidentWindowMinutes ?? 60) * MINUTE_MS,
        escalateAfterMs: (a.escalation?.afterMinutes ?? 15) * MINUTE_MS,
        escalateMinSeverity: a.escalation?.minSeverity ?? 'high',
        maxReminders: a.escalation?.maxReminders ?? 2,
        linkTtlMs: (a.linkTtlHours ?? 72) * 3_600_000,
        maxDeliveryAttempts: a.maxDeliveryAttempts ?? 6,
        routesUseTags: routes.some((r) => r.match?.tag !== undefined),
        rosterNamed: (name: string): Roster | undefined =>
            rosters.get(name) ?? (name === fallback.name ? fallback : undefined),
        rosterFor(vault: VaultRef, severity: Severity, vaultTags = tags.get(vault.resourceId)): Roster {
            for (const r of routes) {
                if (r.minSeverity !== undefined && !atLeast(severity, r.minSeverity)) continue;
                if (r.match !== undefined && !matches(r.match, vault, vaultTags)) continue;
                return rosters.get(r.roster) ?? fallback;
            }
            return fallback;
        },
    });
}

/** Routes must name rosters that exist. */
function rosterProblems(data: ResponderConfigInput): string[] {
    const names = new Set(Object.keys(data.alerting?.rosters ?? {}));
    return (data.alerting?.routes ?? []).flatMap((r, i) =>
        names.has(r.roster)
            ? []
            : [`alerting.routes.${i}.roster: unknown roster '${r.roster}' (known: ${[...names].join(', ') || 'none'})`],
    );
}

/** The `ruleModes` objects of a raw config, with where they are. */
function ruleModeMaps(value: unknown): [string, object][] {
    const g = typeof value === 'object' && value !== null ? (value as { guardrails?: unknown }).guardrails : undefined;
    if (typeof g !== 'object' || g === null) return [];
    const { default: d, overrides } = g as { default?: unknown; overrides?: unknown };
    const policies: [string, unknown][] = [['guardrails.default', d]];
    if (Array.isArray(overrides)) overrides.forEach((o, i) => policies.push([`guardrails.overrides.${i}`, o]));
    const out: [string, object][] = [];
    for (const [where, p] of policies) {
        const modes = typeof p === 'object' && p !== null ? (p as { ruleModes?: unknown }).ruleModes : undefined;
        if (typeof modes === 'object' && modes !== null) out.push([where, modes]);
    }
    return out;
}

/**
 * Validates a parsed config object against the schema and the known rule ids, collecting every problem.
 * @param source - Where the config came from, for the error message.
 * @param tags - Vault tags for tag-matched overrides, when an inventory is known.
 */
export function parseResponderConfig(
    value: unknown,
    knownRuleIds: readonly string[],
    source: string,
    tags: VaultTags = new Map(),
): ResponderConfig {
    const parsed = responderConfigSchema.safeParse(value);
    const problems: string[] = [];
    if (!parsed.success) {
        for (const issue of parsed.error.issues) problems.push(`${pathOf(issue.path)}: ${issue.message}`);
    }
    // Rule ids are checked on the raw input too, so that a schema error elsewhere does not hide an unknown id.
    const rawRules = typeof value === 'object' && value !== null ? (value as { rules?: unknown }).rules : undefined;
    const known = new Set(knownRuleIds);
    if (typeof rawRules === 'object' && rawRules !== null) {
        for (const id of Object.keys(rawRules)) {
            if (!known.has(id))
                problems.push(`rules.${id}: unknown rule id (known: ${knownRuleIds.join(', ') || 'none'})`);
        }
    }
    // Per-rule modes name rules too.
    for (const [where, modes] of ruleModeMaps(value)) {
        for (const id of Object.keys(modes))
            if (!known.has(id)) problems.push(`${where}.ruleModes.${id}: unknown rule id`);
    }
    if (parsed.success) problems.push(...rosterProblems(parsed.data));
    if (problems.length > 0 || !parsed.success) throw new ConfigError(source, problems);
    const data = parsed.data;
    const toggles = new Map<string, RuleToggle>();
    for (const [id, o] of Object.entries(data.rules ?? {}))
        toggles.set(id, { enabled: o.enabled ?? true, severity: o.severity });
    return Object.freeze({
        ruleToggles: toggles,
        detection: detectionSettingsOf(data, tags),
        protectedPrincipals: new Set((data.protectedPrincipals ?? []).map((s) => s.toLowerCase())),
        remediation: {
            maxPerVaultPerHour: data.remediation?.maxPerVaultPerHour ?? 3,
            maxPerInvocation: data.remediation?.maxPerInvocation ?? 10,
            retryBudgetMs: (data.remediation?.retryBudgetSeconds ?? 60) * 1000,
            undoApprovalMs: (data.remediation?.undoApprovalHours ?? 24) * 3_600_000,
            vaultIds: [
                ...new Set(
                    (data.guardrails?.overrides ?? [])
                        .map((o) => o.match.resourceId?.toLowerCase().replace(/\/+$/, ''))
                        .filter((id): id is string => id !== undefined),
                ),
            ],
        },
        alerting: alertSettingsOf(data, tags),
        cmk: {
            inUseMs: (data.cmk?.inUseDays ?? 30) * DAY_MS,
            expiringWithinMs: (data.cmk?.expiringWithinDays ?? 30) * DAY_MS,
            allowReenable: data.cmk?.allowReenable ?? false,
            posture: {
                vaults: data.cmk?.posture?.vaults ?? [],
                appTierTag: data.cmk?.posture?.appTierTag,
                minRsaBits: data.cmk?.posture?.minRsaBits ?? 2048,
                allowedKeyTypes: data.cmk?.posture?.allowedKeyTypes ?? ['RSA', 'RSA-HSM', 'EC', 'EC-HSM'],
                allowedCurves: data.cmk?.posture?.allowedCurves ?? ['P-256', 'P-384', 'P-521'],
            },
        },
    });
}

/** Parses config JSON text; a syntax error is reported like any other problem. */
export function parseResponderConfigText(
    text: string,
    knownRuleIds: readonly string[],
    source: string,
    tags?: VaultTags,
): ResponderConfig {
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch (err) {
        throw new ConfigError(source, [`not valid JSON: ${err instanceof Error ? err.message : String(err)}`]);
    }
    return parseResponderConfig(value, knownRuleIds, source, tags);
}

/** The embedded default: every rule on, default thresholds, firewall Deny wanted, nothing approved. */
export const DEFAULT_CONFIG: ResponderConfig = parseResponderConfig({}, [], 'default');

/** The JSON Schema of the config file, published as `config.schema.json`; rule ids are enumerated for completion. */
export function configJsonSchema(knownRuleIds: readonly string[]): Record<string, unknown> {
    const schema = z.toJSONSchema(responderConfigSchema, { io: 'input' }) as unknown as {
        properties: { rules: Record<string, unknown> };
    };
    schema.properties.rules.propertyNames = { enum: [...knownRuleIds] };
    return { ...schema, title: 'kv-responder configuration' };
}
