import type { StatefulRule } from '../../engine/rule';
import { stateKey } from '../../state/store';
import { principalOf } from '../../events/identity';
import { windowStep } from '../common';
import { describeCaller } from '../text';

/** Distinct vaults and objects one caller was denied on, across vaults. */
interface Denials {
    readonly items: readonly (readonly [string, number])[];
}

export const deniedAccessBurst: StatefulRule<Denials> = {
    kind: 'stateful',
    meta: {
        id: 'denied-access-burst',
        title: 'Burst of denied Key Vault requests by one caller',
        severity: 'medium',
        mitre: ['T1580', 'T1555.006'],
        description:
            'One caller is denied (403) on more than N distinct objects or vaults (10 by default) within the window (15 minutes by default): someone is trying what a stolen credential can reach. Counted across vaults.',
        falsePositives: [
            'A misconfigured application after a permission change (usually one object, many times: not counted).',
        ],
        references: ['https://learn.microsoft.com/azure/key-vault/general/logging'],
        runbook: [
            'Identify the caller and where it signed in from.',
            'If unexpected: disable it; check whether any request of the burst succeeded elsewhere.',
        ],
    },
    operations: undefined,
    stateKey(event) {
        const who = principalOf(event);
        if (event.outcome !== 'forbidden' || who === undefined || event.activity !== undefined) return undefined;
        return stateKey(`principal~${who.replace(/[/\\#?]/g, '_')}`, 'denied');
    },
    stateTtlMs: (settings) => settings.deniedAccessBurst.windowMs,
    evaluate(event, ctx, state) {
        const { count, windowMs } = ctx.settings.deniedAccessBurst;
        const t = event.target;
        const item = t?.name === undefined ? event.vault.name : `${event.vault.name}/${t.kind}/${t.name.toLowerCase()}`;
        const { next, inWindow } = windowStep(state?.items, item, event.timeMs, windowMs, count);
        const findings =
            inWindow > count
                ? [
                      {
                          summary: `${describeCaller(event)} was denied on more than ${count} distinct objects or vaults within ${windowMs / 60_000} min`,
                      },
                  ]
                : [];
        return next === undefined ? { findings } : { findings, state: { items: next } };
    },
};
