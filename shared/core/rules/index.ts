import { CMK_EXPIRING_IN_USE } from '../cmk/expiry';
import { POSTURE_CHECKS } from '../cmk/posture';
import type { Rule, RuleMeta } from '../engine/rule';
import { accessPolicyGranted } from './access-policy-granted/rule';
import { accessPolicyGrantedThenRevoked } from './access-policy-granted-then-revoked/rule';
import { auditLogSilent } from './audit-log-silent/rule';
import { cmkAccessDenied } from './cmk-access-denied/rule';
import { cmkDisabledInUse } from './cmk-disabled-in-use/rule';
import { deniedAccessBurst } from './denied-access-burst/rule';
import { destructiveOperationDenied } from './destructive-operation-denied/rule';
import { diagnosticSettingRemoved } from './diagnostic-setting-removed/rule';
import { firewallIpRuleAdded } from './firewall-ip-rule-added/rule';
import { firewallOpened } from './firewall-opened/rule';
import { firewallVnetRuleAdded } from './firewall-vnet-rule-added/rule';
import { honeytokenAccessed } from './honeytoken-accessed/rule';
import { massSecretRetrieval } from './mass-secret-retrieval/rule';
import { newAppAccess } from './new-app-access/rule';
import { newUserAccess } from './new-user-access/rule';
import { publicNetworkAccessEnabled } from './public-network-access-enabled/rule';
import { rbacAuthorizationDisabled } from './rbac-authorization-disabled/rule';
import { roleAssignmentGranted } from './role-assignment-granted/rule';
import { selfGrantedAccess } from './self-granted-access/rule';
import { sensitiveOperation } from './sensitive-operation/rule';
import { vaultEnumeration } from './vault-enumeration/rule';
import { vaultThrottled } from './vault-throttled/rule';

/** Every detection, in catalogue order. A test checks that each rule directory is listed here. */
export const rules: readonly Rule[] = [
    firewallOpened,
    firewallIpRuleAdded,
    firewallVnetRuleAdded,
    publicNetworkAccessEnabled,
    accessPolicyGranted,
    accessPolicyGrantedThenRevoked,
    selfGrantedAccess,
    rbacAuthorizationDisabled,
    roleAssignmentGranted,
    diagnosticSettingRemoved,
    auditLogSilent,
    newUserAccess,
    newAppAccess,
    sensitiveOperation,
    massSecretRetrieval,
    honeytokenAccessed,
    cmkDisabledInUse,
    cmkAccessDenied,
    vaultThrottled,
    deniedAccessBurst,
    destructiveOperationDenied,
    vaultEnumeration,
];

export const ruleIds: readonly string[] = rules.map((r) => r.meta.id);

/** Checks that run on timers instead of on events: the daily CMK expiry check and the key posture checks. */
export const timerChecks: readonly RuleMeta[] = [CMK_EXPIRING_IN_USE, ...POSTURE_CHECKS];

/** Every id `rules.<id>` in the config may name: the event rules and the timer checks. */
export const configurableRuleIds: readonly string[] = [...ruleIds, ...timerChecks.map((m) => m.id)];
