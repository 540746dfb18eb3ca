import { NO_CHANGE, type StatefulRule } from '../../engine/rule';
import { principalOf } from '../../events/identity';
import { KeyMemo } from '../../state/store';
import { describeCaller } from '../text';

type Kind = 'key' | 'secret' | 'certificate';

/** Keyed by the principal; its row escapes the characters a Table key may not hold (once per key, not per event). */
const ENUM_KEYS = new KeyMemo('enum|', undefined, (who) => who.replace(/[/\\#?]/g, '_'));

const NONE: Partial<Record<Kind, number>> = Object.freeze({});

const LISTS: ReadonlyMap<string, Kind> = new Map<string, Kind>([
    ['KeyList', 'key'],
    ['KeyListVersions', 'key'],
    ['SecretList', 'secret'],
    ['SecretListVersions', 'secret'],
    ['CertificateList', 'certificate'],
    ['CertificateListVersions', 'certificate'],
]);
const READS: ReadonlyMap<string, Kind> = new Map<string, Kind>([
    ['KeyGet', 'key'],
    ['SecretGet', 'secret'],
    ['CertificateGet', 'certificate'],
]);

/**
 * Per kind: when the caller first listed it within the window, and when it last read an object of it. Three kinds at
 * most: bounded whatever the traffic.
 */
interface EnumerationState {
    readonly list: Partial<Record<Kind, number>>;
    readonly read: Partial<Record<Kind, number>>;
    /** Event time of the last finding: no second one until the window has passed. */
    readonly fired?: number;
}

/** 1 when a kind was listed within the window (`from`, `now`] and read after that list, else 0. */
function coveredKind(l: number | undefined, r: number | undefined, from: number, now: number): number {
    return l !== undefined && r !== undefined && l > from && l <= now && r >= l && r <= now ? 1 : 0;
}

export const vaultEnumeration: StatefulRule<EnumerationState> = {
    kind: 'stateful',
    meta: {
        id: 'vault-enumeration',
        title: 'Key Vault enumeration: list then read across object kinds',
        severity: 'high',
        mitre: ['T1555.006', 'T1580'],
        description:
            'One caller lists and then reads objects of several kinds (keys, secrets and certificates: 3 kinds by default) on one vault within the window (30 minutes by default): the pattern of someone harvesting a vault with a credential, rather than an application reading the few objects it knows by name. Successful requests only (by HTTP status), by principals the vault policy does not approve (approvedPrincipals). The state is three timestamps per kind and caller.',
        falsePositives: [
            'Backup or migration tools that copy a whole vault.',
            'An administrator browsing the vault in the portal (lists and opens objects of each kind).',
        ],
        references: [
            'https://learn.microsoft.com/azure/key-vault/general/logging',
            'https://learn.microsoft.com/azure/defender-for-cloud/defender-for-key-vault-introduction',
        ],
        runbook: [
            'Identify the caller, its sign-in and its user agent; is it a known tool or person?',
            'If unexpected: disable the credential and rotate every secret, key and certificate it read (the AuditEvent records of the window list them).',
            'Narrow the data-plane roles or access policies of the caller to the objects it needs.',
        ],
    },
    operations: [...LISTS.keys(), ...READS.keys()],
    stateKey(event, ctx) {
        const who = principalOf(event);
        if (event.outcome !== 'success' || who === undefined || event.activity !== undefined) return undefined;
        // Principals the vault policy approves for data access are entitled to list and read (backup tools, apps).
        if (ctx.policy.approvedPrincipals.has(who)) return undefined;
        return ENUM_KEYS.get(event.vault.name, who);
    },
    stateTtlMs: (settings) => settings.vaultEnumeration.windowMs,
    evaluate(event, ctx, prev) {
        const { kinds, windowMs } = ctx.settings.vaultEnumeration;
        const now = event.timeMs;
        const from = now - windowMs;
        const listed = LISTS.get(event.operation);
        const readKind = READS.get(event.operation);
        const prevList = prev?.list ?? NONE;
        const prevRead = prev?.read ?? NONE;
        // The kind whose time this event sets, if any; the state is copied only when something changes.
        let setList: Kind | undefined;
        let setRead: Kind | undefined;
        if (listed !== undefined) {
            const t = prevList[listed];
            // Keep the first list in the window: a read after it counts however many lists follow.
            if (t === undefined || t <= from || t > now) setList = listed;
        } else if (readKind !== undefined) {
            const t = prevRead[readKind];
            if (t === undefined || t < now - windowMs / 20 || t > now) setRead = readKind;
        }
        // The three kinds by name (a read by a variable name was a slow lookup on every event).
        const covered =
            coveredKind(setList === 'key' ? now : prevList.key, setRead === 'key' ? now : prevRead.key, from, now) +
            coveredKind(
                setList === 'secret' ? now : prevList.secret,
                setRead === 'secret' ? now : prevRead.secret,
                from,
                now,
            ) +
            coveredKind(
                setList === 'certificate' ? now : prevList.certificate,
                setRead === 'certificate' ? now : prevRead.certificate,
                from,
                now,
            );
        const fire = covered >= kinds && (prev?.fired === undefined || prev.fired <= from || prev.fired > now);
        if (!fire && setList === undefined && setRead === undefined) return NO_CHANGE;
        const list = { ...prevList };
        const read = { ...prevRead };
        if (setList !== undefined) list[setList] = now;
        if (setRead !== undefined) read[setRead] = now;
        const state: EnumerationState = {
            list,
            read,
            ...(fire ? { fired: now } : prev?.fired === undefined ? {} : { fired: prev.fired }),
        };
        return {
            findings: fire
                ? [
                      {
                          summary: `${describeCaller(event)} listed then read ${covered} kinds of objects in ${event.vault.name} within ${windowMs / 60_000} min`,
                          details: { kinds: covered },
                      },
                  ]
                : [],
            state,
        };
    },
};
