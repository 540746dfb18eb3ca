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
