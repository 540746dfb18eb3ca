import { isResponder } from '../core/engine/rule';
import { scopeCovers } from '../core/events/activity';
import type { AuditEvent, VaultRef } from '../core/events/types';
import { ACTIONS_BY_RULE } from '../core/remediation/types';
import type { DetectionSettings } from '../core/rules/settings';
import type { Trigger } from './detectionEngine';
import type { ConcurrentChange, IntentInput } from './reconcileIntents';
import type { WriteWindow } from './remediator';

/**
 * Control-plane operations that change a vault's configuration or access (Key Vault AuditEvent operation names,
 * keyvault-audit-events.md): any of them on a vault is a reason to reconcile it against ARM, whatever the record's
 * (often inferred, often missing) change fields say.
 */
export const VAULT_CONTROL_WRITES: ReadonlySet<string> = new Set([
    'VaultPatch',
    'VaultPut',
    'VaultRecover',
    'VaultAccessPolicyChangedEventGridNotification',
]);

/**
 * Azure Activity Log operations (Event Hubs schema spelling, upper-case) that change a vault through ARM: a vault PUT or
 * PATCH (`vaults/write`) and an access-policy update (`vaults/accessPolicies/write`, ARM path
 * `vaults/{name}/accessPolicies/{add|replace|remove}`). A successful one on a known vault is a reason to reconcile it
 * against ARM, even when no AuditEvent carried the change (the vault's diagnostic setting may be gone, or the record
 * late). `vaults/delete` is left out: a deleted vault has no configuration to reconcile (its deletion is reported by
 * the AuditEvent rules, and a reconcile would only find it gone).
 */
export const ACTIVITY_VAULT_WRITES: ReadonlySet<string> = new Set([
    'MICROSOFT.KEYVAULT/VAULTS/WRITE',
    'MICROSOFT.KEYVAULT/VAULTS/ACCESSPOLICIES/WRITE',
]);

/** True for a finished, successful Activity Log vault write (its `Start`/`Accept` records say nothing yet). */
function isActivityVaultWrite(e: AuditEvent): boolean {
    return (
        e.activity !== undefined &&
        ACTIVITY_VAULT_WRITES.has(e.operation.toUpperCase()) &&
        (e.activity.resultType ?? '').toLowerCase() === 'success' &&
        e.outcome === 'success'
    );
}

/**
 * Tolerance around a recorded write window when matching audit record times (record time is the service's clock,
 * the window is ours). A wider window only costs a look: restoring needs the item to be approved, missing now and
 * absent from what we read.
 */
export const WINDOW_SLACK_MS = 5_000;

const lower = (s: string): string => s.toLowerCase();

/** Vaults one role assignment above vault scope is reconciled on, at most (the finding lists them all). */
const MAX_COVERED_VAULTS = 50;
/** Longer role assignment ids are not kept in an intent (see reconcileIntents.ts). */
const MAX_ASSIGNMENT_ID_CHARS = 400;

function concurrentChangeOf(e: AuditEvent, w: WriteWindow): ConcurrentChange | undefined {
    const c = e.vaultChange;
    if (c === undefined) return undefined;
    const beforeIp = new Set(w.beforeIpRules.map((r) => lower(r).replace(/\/32$/, '')));
    const beforeVnet = new Set(w.beforeVirtualNetworkRules.map(lower));
    const ips = [...(c.networkAcls?.ipRules ?? []), ...c.addedIpRules].filter(
        (r, i, all) => !beforeIp.has(lower(r).replace(/\/32$/, '')) && all.indexOf(r) === i,
    );
    const vnets = [...(c.networkAcls?.virtualNetworkRules ?? []), ...c.addedVirtualNetworkRules].filter(
        (r, i, all) => !beforeVnet.has(lower(r)) && all.indexOf(r) === i,
    );
    if (ips.length === 0 && vnets.length === 0) return undefined;
    const who = e.caller.upn ?? e.caller.objectId ?? e.caller.appId ?? 'unknown caller';
    return {
        at: e.time,
        by: who,
        ...(e.correlationId === undefined ? {} : { correlationId: e.correlationId }),
        ...(ips.length === 0 ? {} : { ipRules: ips }),
        ...(vnets.length === 0 ? {} : { virtualNetworkRules: vnets }),
    };
}

/**
 * What a batch asks of the reconciler: every vault a rule with an action implicates (redelivered records too),
 * every control-plane write on a vault by someone other than the responder, and every such write whose time falls
 * inside one of our own read→write windows (a concurrent change our write may have wiped).
 */
export async function intentInputsOf(
    events: readonly AuditEvent[],
    triggers: readonly Trigger[],
    settings: DetectionSettings,
    windowsOf: ((vaults: readonly VaultRef[]) => Promise<ReadonlyMap<string, readonly WriteWindow[]>>) | undefined,
    skipRepeats = false,
    alongside?: (vaultNames: readonly string[]) => Promise<void>,
): Promise<IntentInput[]> {
    const out: IntentInput[] = [];
    for (const t of triggers) {
        if (ACTIONS_BY_RULE[t.rule] === undefined || (skipRepeats && t.repeat === true)) continue;
        const ra = t.event.activity?.roleAssignment;
        if (t.rule === 'role-assignment-granted' && ra !== undefined) {
            // An assignment above vaults is reconciled on each known vault it covers (under each vault's lease and
            // policy); one on an unknown scope has no vault to reconcile: its finding alone reports it.
            const vaults =
                ra.scope.level === 'vault'
                    ? [t.event.vault]
                    : settings.knownVaults.filter((v) => scopeCovers(ra.scope, v)).slice(0, MAX_COVERED_VAULTS);
            if (ra.id.length > MAX_ASSIGNMENT_ID_CHARS) continue;
            for (const vault of vaults)
                out.push({
                    vault,
                    reason: 'trigger',
                    rules: [t.rule],
                    incidentKeys: [`${t.rule}|${t.principal ?? '-'}`],
                    correlationIds: t.event.correlationId === undefined ? [] : [t.event.correlationId],
                    timeMs: t.event.timeMs,
                    roleAssignmentIds: [ra.id],
                });
            continue;
        }
        // A stand-in for a scope above vaults (`rg:...`, `sub:...`) is not a vault ARM can reconcile.
        if (t.event.vault.name.includes(':')) continue;
        out.push({
            vault: t.event.vault,
            reason: 'trigger',
            rules: [t.rule],
            incidentKeys: [`${t.rule}|${t.principal ?? '-'}`],
            correlationIds: t.event.correlationId === undefined ? [] : [t.event.correlationId],
            timeMs: t.event.timeMs,
        });
    }
    // The Activity Log covers every vault of the subscription: only the vaults this deployment knows (named by
    // resource id in the config or the inventory) are reconciled on its writes. AuditEvent comes only from vaults
    // whose diagnostic setting sends it here.
    const known = new Set(settings.knownVaults.map((v) => v.resourceId.toLowerCase()));
    const writes = events.filter(
        (e) =>
            e.outcome === 'success' &&
            e.vault.name !== '' &&
            (VAULT_CONTROL_WRITES.has(e.operation) ||
                (isActivityVaultWrite(e) && known.has(e.vault.resourceId.toLowerCase()))) &&
            !isResponder(e, settings),
    );
    // The write windows of every vault written in the batch, in one read (they were read one vault after another),
    // side by side with `alongside` (the intents of every vault the inputs name: the caller reads them for the merge,
    // which waited for this read before).
    let windows: ReadonlyMap<string, readonly WriteWindow[]> = new Map();
    const vaults = new Map<string, VaultRef>();
    if (windowsOf !== undefined)
        for (const e of writes)
            if (e.operation === 'VaultPatch' || e.operation === 'VaultPut') vaults.set(e.vault.name, e.vault);
    const named = new Set<string>();
    if (alongside !== undefined) {
        for (const i of out) named.add(i.vault.name);
        for (const e of writes) named.add(e.vault.name);
    }
    const [read] = await Promise.all([
        windowsOf !== undefined && vaults.size > 0 ? windowsOf([...vaults.values()]) : undefined,
        alongside !== undefined && named.size > 0 ? alongside([...named]) : undefined,
    ]);
    if (read !== undefined) windows = read;
    for (const e of writes) {
        let concurrent: ConcurrentChange | undefined;
        if (windowsOf !== undefined && (e.operation === 'VaultPatch' || e.operation === 'VaultPut')) {
            const list = windows.get(e.vault.name) ?? [];
            const w = list.find(
                (x) => e.timeMs >= x.readAt - WINDOW_SLACK_MS && e.timeMs <= x.writeAt + WINDOW_SLACK_MS,
            );
            if (w !== undefined) concurrent = concurrentChangeOf(e, w);
        }
        out.push({
            vault: e.vault,
            reason: concurrent === undefined ? 'vault-write' : 'concurrent-change',
            rules: [],
            incidentKeys: [],
            correlationIds: e.correlationId === undefined ? [] : [e.correlationId],
            timeMs: e.timeMs,
            ...(concurrent === undefined ? {} : { concurrent }),
        });
    }
    return out;
}
