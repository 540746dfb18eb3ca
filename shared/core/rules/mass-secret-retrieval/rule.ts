import { NO_CHANGE, type StatefulRule } from '../../engine/rule';
import { lowerCased } from '../../events/stringMemo';
import { KeyMemo } from '../../state/store';
import { principalOf } from '../../events/identity';
import { windowStep } from '../common';
import { describeCaller } from '../text';

/** Distinct secret names read by one caller on one vault, with the last read time. */
interface Reads {
    readonly items: readonly (readonly [string, number])[];
}

const MASS_KEYS = new KeyMemo('mass|');

export const massSecretRetrieval: StatefulRule<Reads> = {
    kind: 'stateful',
    meta: {
        id: 'mass-secret-retrieval',
        title: 'Mass secret retrieval from a Key Vault',
        severity: 'high',
        mitre: ['T1555.006'],
        description:
            'One caller reads more than N distinct secrets (10 by default) within the window (60 minutes by default) on one vault: a dump of the vault rather than an application reading its own few secrets.',
        falsePositives: ['Secret-sync tools (CSI driver, External Secrets) on first start; migration scripts.'],
        references: ['https://learn.microsoft.com/azure/defender-for-cloud/alerts-azure-key-vault'],
        runbook: [
            'Identify the caller and whether a sync tool or migration explains the volume.',
            'If not: treat every secret read as disclosed; rotate them and disable the caller.',
        ],
    },
    operations: ['SecretGet'],
    stateKey(event) {
        const who = principalOf(event);
        if (event.outcome !== 'success' || who === undefined || event.target?.name === undefined) return undefined;
        return MASS_KEYS.get(event.vault.name, who);
    },
    stateTtlMs: (settings) => settings.massSecretRetrieval.windowMs,
    evaluate(event, ctx, state) {
        const { count, windowMs } = ctx.settings.massSecretRetrieval;
        const name = lowerCased(event.target?.name ?? '');
        const { next, inWindow } = windowStep(state?.items, name, event.timeMs, windowMs, count);
        if (inWindow <= count) return next === undefined ? NO_CHANGE : { state: { items: next } };
        const findings = [
            {
                summary: `${describeCaller(event)} read more than ${count} distinct secrets of ${event.vault.name} within ${windowMs / 60_000} min`,
                details: { distinctSecrets: inWindow },
            },
        ];
        return next === undefined ? { findings } : { findings, state: { items: next } };
    },
};
