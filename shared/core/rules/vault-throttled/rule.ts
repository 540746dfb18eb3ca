import type { StatefulRule } from '../../engine/rule';
import { stateKey } from '../../state/store';
import { recordIdOf } from '../../events/identity';
import { windowStep } from '../common';

/** Identities and times of the recent 429 answers of one vault. */
interface Throttles {
    readonly items: readonly (readonly [string, number])[];
}

export const vaultThrottled: StatefulRule<Throttles> = {
    kind: 'stateful',
    meta: {
        id: 'vault-throttled',
        title: 'Key Vault throttling requests',
        severity: 'medium',
        mitre: ['T1499'],
        description:
            'The vault answers 429 (Too Many Requests) more than N times (50 by default) within the window (5 minutes by default). The vault is saturated: workloads that depend on it fail, whether the cause is a runaway client or a deliberate flood.',
        falsePositives: ['A workload without secret caching after a deployment; a load test.'],
        references: ['https://learn.microsoft.com/azure/key-vault/general/service-limits'],
        runbook: [
            'Find the callers behind the 429s (callerIpAddress, appid) and whether one dominates.',
            'Ask the owner to cache secrets; throttle or block a caller that is not expected.',
        ],
    },
    operations: undefined,
    stateKey(event) {
        return event.outcome === 'throttled' && event.activity === undefined
            ? stateKey(event.vault.name, 'throttle')
            : undefined;
    },
    stateTtlMs: (settings) => settings.vaultThrottled.windowMs,
    evaluate(event, ctx, state) {
        const { count, windowMs } = ctx.settings.vaultThrottled;
        const { next, inWindow } = windowStep(state?.items, recordIdOf(event), event.timeMs, windowMs, count);
        const findings =
            inWindow > count
                ? [
                      {
                          summary: `${event.vault.name} answered 429 more than ${count} times within ${windowMs / 60_000} min`,
                          principal: '',
                      },
                  ]
                : [];
        return next === undefined ? { findings } : { findings, state: { items: next } };
    },
};
