import type { Clock } from '../core/ports';

/** The wall clock, for leases, rate caps and retry waits. */
export const systemClock: Clock = {
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};
