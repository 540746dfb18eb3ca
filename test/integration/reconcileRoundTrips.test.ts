/**
 * The state requests of a batch with findings, on the in-process reconcile path (replay, serve, the benchmark): the
 * write windows of all the vaults a batch writes are read in one call, and without ARM access (nothing applied, no
 * blast-radius budget to share) the reconciles of different vaults run side by side, not one vault after another. The
 * decisions stay those of the plain store.
 */
import { MemoryDecisionSink, MemoryQuarantineSink } from '../../shared/adapters/memorySinks';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { createPipeline } from '../../shared/app/createPipeline';
import type { PutResult, StateKey, StateStore } from '../../shared/core/state/store';
import { decisionsOf, demoConfig, sampleDayBatches } from '../support/decisionRun';

/** Counts calls by the kind of state they touch; each call waits a millisecond, so that calls can overlap. */
class TracingStore implements StateStore {
    /** Per batch: `getMany` calls that read a `reconcile|windows` key. */
    windowReads = 0;
    maxWindowReadsPerBatch = 0;
    /** Lease calls in flight now, and at most at once. */
    private leaseInFlight = 0;
    maxLeaseInFlight = 0;
    leaseCalls = 0;
    /** Leases taken (a lease written with a value), and `reconcile|intent` keys read. */
    leasesTaken = 0;
    intentReads = 0;
    /** Write-window reads in flight now; intent reads sent while one was (side by side, not after it). */
    private windowsInFlight = 0;
    intentReadsBesideWindows = 0;
    /** Intent writes and calls on finding groups in flight now; how often one of each was in flight at once. */
    private intentWrites = 0;
    private groupCalls = 0;
    intentBesideGroupCalls = 0;

    constructor(private readonly inner: StateStore = new MemoryStateStore()) {}

    batchDone(): void {
        this.maxWindowReadsPerBatch = Math.max(this.maxWindowReadsPerBatch, this.windowReads);
        this.windowReads = 0;
    }

    private async traced<T>(keys: readonly StateKey[], fn: () => Promise<T>): Promise<T> {
        const lease = keys.some((k) => k.row === 'remediation|lease');
        const windows = keys.some((k) => k.row === 'reconcile|windows');
        if (windows) {
            this.windowReads++;
            this.windowsInFlight++;
        }
        if (lease) {
            this.leaseCalls++;
            this.leaseInFlight++;
            this.maxLeaseInFlight = Math.max(this.maxLeaseInFlight, this.leaseInFlight);
        }
        try {
            await new Promise((resolve) => setTimeout(resolve, 1));
            return await fn();
        } finally {
            if (lease) this.leaseInFlight--;
            if (windows) this.windowsInFlight--;
        }
    }

    async getMany(keys: readonly StateKey[]) {
        const intents = keys.filter((k) => k.row === 'reconcile|intent').length;
        this.intentReads += intents;
        if (intents > 0 && this.windowsInFlight > 0) this.intentReadsBesideWindows++;
        const group = keys.some((k) => k.row.startsWith('group|'));
        if (group) this.groupCalls++;
        if (group && this.intentWrites > 0) this.intentBesideGroupCalls++;
        try {
            return await this.traced(keys, () => this.inner.getMany(keys));
        } finally {
            if (group) this.groupCalls--;
        }
    }

    async put(key: StateKey, value: unknown, etag: string | undefined, exp: number): Promise<PutResult> {
        if (key.row === 'remediation|lease' && value !== null) this.leasesTaken++;
        const intent = key.row === 'reconcile|intent';
        const group = key.row.startsWith('group|');
        if (intent) this.intentWrites++;
        if (group) this.groupCalls++;
        if (this.intentWrites > 0 && this.groupCalls > 0 && (intent || group)) this.intentBesideGroupCalls++;
        try {
            return await this.traced([key], () => this.inner.put(key, value, etag, exp));
        } finally {
            if (intent) this.intentWrites--;
            if (group) this.groupCalls--;
        }
    }

    scan(prefix: string, limit: number) {
        return this.inner.scan(prefix, limit);
    }
}

describe('round trips of a batch with findings (in-process reconcile)', () => {
    it('reads the write windows of a batch’s vaults in one call, beside its intents, and reconciles vaults side by side, reading each intent twice, and commits beside the confirmation; same decisions', async () => {
        const batches = sampleDayBatches(400).slice(0, 4);
        const store = new TracingStore();
        const config = demoConfig();
        const sink = new MemoryDecisionSink();
        const pipeline = createPipeline(
            config,
            { decisions: sink, quarantine: new MemoryQuarantineSink() },
            { acceptBareRecords: true, store },
        );
        for (const batch of batches) {
            await pipeline.processBatch(batch.map((body) => ({ body })));
            store.batchDone();
        }
        const decisions = sink.decisions;
        expect(store.leaseCalls).toBeGreaterThan(0); // the sample day's findings are reconciled
        expect(store.maxWindowReadsPerBatch).toBe(1);
        expect(store.maxLeaseInFlight).toBeGreaterThan(1);
        // Per reconciled vault and batch, the intent is read twice: when the batch records it, and under the lease
        // (there was a third read, before the lease, of the intent the batch had just written).
        expect(store.intentReads).toBe(2 * store.leasesTaken);
        // The batch's intents are read side by side with its write windows (they were read after them).
        expect(store.intentReadsBesideWindows).toBeGreaterThan(0);
        // The intents' commit and the findings' confirmation go side by side (the confirmation waited for the commit).
        expect(store.intentBesideGroupCalls).toBeGreaterThan(0);
        // The decisions are those of the plain in-memory store, batch for batch.
        expect(decisions).toEqual(await decisionsOf(config, new MemoryStateStore(), batches));
    }, 120_000);
});
