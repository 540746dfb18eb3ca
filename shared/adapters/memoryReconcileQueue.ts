import type { Clock, ReconcileMessage, ReconcileQueue } from '../core/ports';

interface Queued {
    readonly message: ReconcileMessage;
    readonly visibleAt: number;
    readonly seq: number;
}

/**
 * The reconcile queue in process (`kvr replay`, `kvr serve`, `kvr consume`, tests): the pipeline drains it after each
 * batch with the same worker the queue trigger runs. FIFO among visible messages; delayed messages wait their turn.
 */
export class MemoryReconcileQueue implements ReconcileQueue {
    private items: Queued[] = [];
    private seq = 0;

    constructor(private readonly clock: Clock) {}

    send(message: ReconcileMessage, options?: { readonly visibilityDelayMs?: number }): Promise<void> {
        this.items.push({
            message: { vaultId: message.vaultId, version: message.version },
            visibleAt: this.clock.now() + Math.max(0, options?.visibilityDelayMs ?? 0),
            seq: this.seq++,
        });
        return Promise.resolve();
    }

    get size(): number {
        return this.items.length;
    }

    /** The next visible message (removed), or the time the next hidden one becomes visible. */
    take(): { message: ReconcileMessage } | { waitMs: number } | undefined {
        if (this.items.length === 0) return undefined;
        const now = this.clock.now();
        let best: Queued | undefined;
        let soonest = Number.POSITIVE_INFINITY;
        for (const q of this.items) {
            if (q.visibleAt <= now) {
                if (best === undefined || q.seq < best.seq) best = q;
            } else soonest = Math.min(soonest, q.visibleAt);
        }
        if (best === undefined) return { waitMs: soonest - now };
        const chosen = best;
        this.items = this.items.filter((q) => q !== chosen);
        return { message: chosen.message };
    }
}
