import { isResponder, type StatefulRule } from '../../engine/rule';
import { type StateKey, stateKey } from '../../state/store';
import { isVaultWrite, sameText, VAULT_WRITES } from '../common';
import { describeCaller } from '../text';

/**
 * The last known state of a vault's firewall and the event time it was learned: from the recorded after-state of a
 * VaultPatch/VaultPut, or from the vault as the reconciler read it from Azure Resource Manager (which also writes it
 * after closing the firewall, whose own record may arrive much later or, in a replay, never).
 */
export interface FirewallState {
    readonly open: boolean;
    readonly t: number;
    /** Written by the reconciler from ARM at the event time of the records it acted on (those are covered). */
    readonly arm?: true;
    /** The correlation id of the record that opened it: that record, delivered again, is reported again. */
    readonly cid?: string;
}

/** The state key of a vault's firewall: shared by this rule and the reconciler (shared/app/remediator.ts). */
export function firewallStateKey(vaultName: string): StateKey {
    return stateKey(vaultName, 'firewall');
}

/** True when network ACLs as ARM or a record show them leave the data plane open (no ACL at all, or Allow). */
export function isFirewallOpen(acls: { readonly defaultAction?: string | undefined } | null | undefined): boolean {
    return acls === null || acls === undefined || sameText(acls.defaultAction, 'Allow');
}

function stale(state: FirewallState, timeMs: number): boolean {
    return state.t > timeMs || (state.arm === true && state.t === timeMs);
}

export const firewallOpened: StatefulRule<FirewallState> = {
    kind: 'stateful',
    meta: {
        id: 'firewall-opened',
        title: 'Key Vault firewall opened',
        severity: 'high',
        mitre: ['T1562.007'],
        description:
            "A VaultPatch or VaultPut leaves the vault's network ACL default action at Allow (or the vault with no network ACL at all) while its guardrail policy wants Deny, and the vault's last known firewall was closed or unknown: the data plane is now reachable from any network that has credentials. A later change of a vault that is already open does not fire again; the next opening after it was closed (by anyone, kv-responder included) does.",
        falsePositives: [
            'A vault whose policy was never set to Deny (set networkDefaultAction in its guardrail override).',
            'A short, approved troubleshooting window.',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/network-security',
            'https://attack.mitre.org/techniques/T1562/007/',
        ],
        runbook: [
            'Check who changed the firewall and whether a change request covers it.',
            'If not approved: set the default action back to Deny (kv-responder does this in enforce mode) and keep bypass and rules as they were.',
            'Review data-plane access from new IP addresses since the change.',
        ],
    },
    operations: VAULT_WRITES,
    stateKey(event) {
        // The responder's own writes count too: they are how the vault's firewall gets closed again.
        if (!isVaultWrite(event) || event.vaultChange?.networkAcls === undefined) return undefined;
        return firewallStateKey(event.vault.name);
    },
    stateTtlMs: () => Number.MAX_SAFE_INTEGER / 2,
    evaluate(event, ctx, state) {
        const acls = event.vaultChange?.networkAcls;
        // An older record than what is known already says nothing about the firewall now.
        if (acls === undefined || (state !== undefined && stale(state, event.timeMs))) return {};
        const open = isFirewallOpen(acls);
        const next: FirewallState | undefined =
            state?.open === open
                ? undefined
                : { open, t: event.timeMs, ...(event.correlationId === undefined ? {} : { cid: event.correlationId }) };
        // The record that opened it, delivered again (its batch failed after the state was written), fires again: the
        // engine's finding groups drop it as a repeat, or emit it again when its first emission never reached a sink.
        const again =
            state?.open === true && state.arm !== true && state.t === event.timeMs && state.cid === event.correlationId;
        const opened =
            open &&
            (state?.open !== true || again) &&
            ctx.policy.networkDefaultAction === 'Deny' &&
            !isResponder(event, ctx.settings);
        const what = acls === null ? 'has no network ACL' : 'network ACL default action is Allow';
        return {
            findings: opened
                ? [
                      {
                          summary: `${event.vault.name} ${what} after ${event.operation} by ${describeCaller(event)}`,
                          details: { defaultAction: acls?.defaultAction ?? null },
                      },
                  ]
                : [],
            ...(next === undefined ? {} : { state: next }),
        };
    },
};
