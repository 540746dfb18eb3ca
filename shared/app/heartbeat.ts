// The ingest heartbeat: evidence for `kvr doctor` that the app receives from its event hub. After a handled batch the
// handler calls `beat()`; at most once per interval per worker it records the time in the state table, in the
// background (the batch never waits for it, and a failed write is only logged: it must never fail a batch).
import type { Logger } from '../core/ports';
import { type StateKey, type StateStore, stateKey } from '../core/state/store';

/** Where the heartbeat lives in the state table. */
export const HEARTBEAT_KEY: StateKey = stateKey('kvr-health', 'ingest');

/** What the heartbeat entity holds. */
export interface HeartbeatValue {
    /** ISO time of the last handled batch (at most `intervalMs` old when the app is receiving). */
    readonly at: string;
    readonly bodies: number;
}

const KEEP_MS = 30 * 86_400_000;

export class IngestHeartbeat {
    private last = Number.NEGATIVE_INFINITY;
    private pending: Promise<void> | undefined;

    constructor(
        private readonly store: StateStore,
        private readonly log: Logger,
        private readonly intervalMs = 60_000,
    ) {}

    /** Records a handled batch (throttled, in the background). */
    beat(nowMs: number, bodies: number): void {
        if (nowMs - this.last < this.intervalMs || this.pending !== undefined) return;
        this.last = nowMs;
        this.pending = this.write(nowMs, bodies).finally(() => {
            this.pending = undefined;
        });
    }

    /** Waits for a write in progress (tests, shutdown). */
    async flush(): Promise<void> {
        await this.pending;
    }

    private async write(nowMs: number, bodies: number): Promise<void> {
        const value: HeartbeatValue = { at: new Date(nowMs).toISOString(), bodies };
        try {
            const [current] = await this.store.getMany([HEARTBEAT_KEY]);
            const before = current?.value as Partial<HeartbeatValue> | undefined;
            // Another worker wrote a newer beat: nothing to do.
            if (typeof before?.at === 'string' && before.at >= value.at) return;
            await this.store.put(HEARTBEAT_KEY, value, current?.etag, nowMs + KEEP_MS);
        } catch (err) {
            this.log.warn('kvr.heartbeat-failed', { error: err instanceof Error ? err.message : String(err) });
        }
    }
}

/** Reads the heartbeat; undefined when none was ever written. */
export async function readHeartbeat(store: StateStore): Promise<HeartbeatValue | undefined> {
    const [s] = await store.getMany([HEARTBEAT_KEY]);
    const v = s?.value as Partial<HeartbeatValue> | undefined;
    return typeof v?.at === 'string' ? { at: v.at, bodies: typeof v.bodies === 'number' ? v.bodies : 0 } : undefined;
}
