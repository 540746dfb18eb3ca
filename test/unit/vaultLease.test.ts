import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { systemClock } from '../../shared/adapters/systemClock';
import { TestClock } from '../support/alertingDoubles';
import { VaultLeases } from '../../shared/app/vaultLease';
import type { VaultRef } from '../../shared/core/events/types';
import type { PutResult, StateKey, StateStore } from '../../shared/core/state/store';

const VAULT: VaultRef = {
    subscriptionId: 's',
    resourceGroup: 'rg',
    name: 'kv-one',
    resourceId: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-one',
};

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('VaultLeases.hold', () => {
    it('renews a held lease while work runs, so another processor cannot take it; releases it at the end', async () => {
        const store = new MemoryStateStore();
        const a = new VaultLeases(store, systemClock, 'a', 300);
        const b = new VaultLeases(store, systemClock, 'b', 300);
        const held = await a.hold(VAULT);
        expect(held).toBeDefined();
        await wait(800); // well past one lease duration
        expect(await b.acquire(VAULT)).toBe(false);
        expect(held?.lost).toBe(false);
        await held?.release();
        expect(await b.acquire(VAULT)).toBe(true);
    });

    it('marks the lease lost when a renewal cannot write, and does not release what it no longer holds', async () => {
        const inner = new MemoryStateStore();
        let failWrites = false;
        const store: StateStore = {
            getMany: (keys: readonly StateKey[]) => inner.getMany(keys),
            put: (key: StateKey, value: unknown, etag: string | undefined, exp: number): Promise<PutResult> =>
                failWrites ? Promise.reject(new Error('503 (injected)')) : inner.put(key, value, etag, exp),
            scan: (p: string, l: number) => inner.scan(p, l),
        };
        const errors: unknown[] = [];
        const held = await new VaultLeases(store, systemClock, 'a', 300).hold(VAULT, (e) => errors.push(e));
        failWrites = true;
        await wait(250);
        expect(held?.lost).toBe(true);
        expect(errors.length).toBeGreaterThan(0);
        await held?.release(); // never throws
        failWrites = false;
        await wait(350); // the unreleased lease lapses by itself
        expect(await new VaultLeases(store, systemClock, 'b', 300).acquire(VAULT)).toBe(true);
    });
});

describe('VaultLeases under a starved renewal (fault-injection suite, remediation outliving the lease)', () => {
    it('the holder sees its lease lost once its time has passed, even before a renewal ran', async () => {
        const clock = new TestClock(1_000_000);
        const held = await new VaultLeases(new MemoryStateStore(), clock, 'a', 300).hold(VAULT);
        expect(held?.lost).toBe(false);
        clock.advance(301); // the renewal timer has not run (a busy process)
        expect(held?.lost).toBe(true);
        await held?.release();
    });

    it('an unreleased lease that lapsed is taken over only after the previous holder’s ARM call limit', async () => {
        const clock = new TestClock(1_000_000);
        const store = new MemoryStateStore();
        const held = await new VaultLeases(store, clock, 'a', 300, 1000).hold(VAULT);
        const b = new VaultLeases(store, clock, 'b', 300, 1000);
        clock.advance(800); // lapsed, but a PATCH of `a` sent just before may still be in flight
        expect(await b.acquire(VAULT)).toBe(false);
        clock.advance(600);
        expect(await b.acquire(VAULT)).toBe(true);
        await held?.release();
    });
});

/** A store that counts reads and writes of the lease (and can slow each call down, to let calls overlap). */
function countingStore(inner: StateStore = new MemoryStateStore()) {
    const counts = { reads: 0, writes: 0 };
    const store: StateStore = {
        getMany: (keys: readonly StateKey[]) => {
            counts.reads++;
            return inner.getMany(keys);
        },
        put: (key: StateKey, value: unknown, etag: string | undefined, exp: number): Promise<PutResult> => {
            counts.writes++;
            return inner.put(key, value, etag, exp);
        },
        scan: (p: string, l: number) => inner.scan(p, l),
    };
    return { store, counts };
}

describe('VaultLeases round trips (no re-read of a lease this instance just wrote)', () => {
    it('releases on the ETag of its own last write, and takes a lease it released without reading it', async () => {
        const { store, counts } = countingStore();
        const leases = new VaultLeases(store, systemClock, 'a', 60_000);
        const first = await leases.hold(VAULT);
        expect(first).toBeDefined();
        expect(counts).toEqual({ reads: 0, writes: 1 }); // never written before: one insert, no read
        await first?.release();
        expect(counts).toEqual({ reads: 0, writes: 2 }); // the release writes on the ETag of the take: no read
        const second = await leases.hold(VAULT);
        expect(second).toBeDefined();
        expect(counts).toEqual({ reads: 0, writes: 3 }); // the take writes on the ETag of the release: no read
        // Still exclusive: another processor cannot take it while it is held.
        expect(await new VaultLeases(store, systemClock, 'b', 60_000).acquire(VAULT)).toBe(false);
        await second?.release();
        expect(await new VaultLeases(store, systemClock, 'b', 60_000).acquire(VAULT)).toBe(true);
    });

    it('a lease this instance does not know: the insert fails where it exists, then it is read and decided on', async () => {
        const { store, counts } = countingStore();
        const a = new VaultLeases(store, systemClock, 'a', 60_000);
        const b = new VaultLeases(store, systemClock, 'b', 60_000);
        const held = await a.hold(VAULT);
        expect(held).toBeDefined();
        // b never met this vault: its insert meets a's lease (a conflict), it reads it, and it is a's.
        expect(await b.hold(VAULT)).toBeUndefined();
        expect(counts).toEqual({ reads: 1, writes: 2 });
        await held?.release();
        // Free now (a's release), still unknown to a third instance: insert refused, read, taken on the ETag read.
        const c = new VaultLeases(store, systemClock, 'c', 60_000);
        const taken = await c.hold(VAULT);
        expect(taken).toBeDefined();
        expect(counts).toEqual({ reads: 2, writes: 5 });
        expect(await b.acquire(VAULT)).toBe(false);
        await taken?.release();
    });

    it('a released lease another processor took since is read, and not taken while that one holds it', async () => {
        const { store, counts } = countingStore();
        const a = new VaultLeases(store, systemClock, 'a', 60_000);
        const b = new VaultLeases(store, systemClock, 'b', 60_000);
        await (await a.hold(VAULT))?.release();
        const held = await b.hold(VAULT); // the ETag `a` kept is stale now
        expect(held).toBeDefined();
        const reads = counts.reads;
        expect(await a.hold(VAULT)).toBeUndefined(); // its compare-and-set failed: it read the lease, and it is b's
        expect(counts.reads).toBe(reads + 1);
        await held?.release();
        const again = await a.hold(VAULT);
        expect(again).toBeDefined();
        await again?.release();
    });

    it('a release after the lease lapsed and was taken over leaves the new holder’s lease alone', async () => {
        const clock = new TestClock(1_000_000);
        const { store } = countingStore();
        const held = await new VaultLeases(store, clock, 'a', 300).hold(VAULT);
        clock.advance(400);
        const b = new VaultLeases(store, clock, 'b', 300);
        expect(await b.acquire(VAULT)).toBe(true);
        await held?.release(); // lost already (its time passed): nothing written
        clock.advance(100);
        expect(await new VaultLeases(store, clock, 'c', 300).acquire(VAULT)).toBe(false); // b holds it still
        expect(await b.renew(VAULT)).toBe(true);
        await b.release(VAULT);
        expect(await new VaultLeases(store, clock, 'c', 300).acquire(VAULT)).toBe(true);
    });

    it('renews on the ETag of its last write, and a renewal after a takeover finds the lease lost', async () => {
        const clock = new TestClock(1_000_000);
        const { store, counts } = countingStore();
        const a = new VaultLeases(store, clock, 'a', 300);
        expect(await a.acquire(VAULT)).toBe(true);
        const reads = counts.reads;
        clock.advance(100);
        expect(await a.renew(VAULT)).toBe(true);
        expect(counts.reads).toBe(reads); // no read: the lease was as `a` wrote it
        clock.advance(400); // lapsed
        expect(await new VaultLeases(store, clock, 'b', 300).acquire(VAULT)).toBe(true);
        expect(await a.renew(VAULT)).toBe(false);
        await a.release(VAULT); // not its lease any more: left alone
        expect(await new VaultLeases(store, clock, 'c', 300).acquire(VAULT)).toBe(false);
    });
});
