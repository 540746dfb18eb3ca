// Test doubles shared by the alerting tests: a clock under the test's control and a recording delivery channel.
import type { ChannelName, DeliveryChannel, OutgoingNotification } from '../../shared/core/alerts/types';
import type { Clock } from '../../shared/core/ports';

/** Wall-clock time under the test's control: sleeping advances it, nothing waits. */
export class TestClock implements Clock {
    constructor(public t: number) {}
    now(): number {
        return this.t;
    }
    sleep(ms: number): Promise<void> {
        this.t += ms;
        return Promise.resolve();
    }
    advance(ms: number): void {
        this.t += ms;
    }
}

/** Lets `n` turns of the event loop pass, so that concurrent instances really interleave. */
export function yieldTurns(n = 5): Promise<void> {
    let p = Promise.resolve();
    for (let i = 0; i < n; i++) p = p.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    return p;
}

/** A delivery channel that records every attempt; `fail` decides per attempt whether it throws. */
export class RecordingChannel implements DeliveryChannel {
    readonly attempts: OutgoingNotification[] = [];
    readonly sent: OutgoingNotification[] = [];
    fail: (n: OutgoingNotification, attempt: number) => Error | undefined = () => undefined;
    /** Resolved before the send completes (default: yield a few turns to let a concurrent instance interleave). */
    hold: () => Promise<void> = () => yieldTurns();

    constructor(readonly name: ChannelName) {}

    async send(n: OutgoingNotification): Promise<void> {
        this.attempts.push(n);
        await this.hold();
        const err = this.fail(n, this.attempts.length);
        if (err !== undefined) throw err;
        this.sent.push(n);
    }
}
