import type { VaultRef } from '../core/events/types';
import type { Clock } from '../core/ports';
import { type StateStore, stateKey } from '../core/state/store';

interface Lease {
    readonly owner: string;
    readonly until: number;
}

export const LEASE_MS = 120_000;

/** A lease being held: renewed in the background until released; `lost` once a renewal found it taken or failed. */
export interface HeldLease {
    /** True when the lease can no longer be trusted: stop before the next write. */
    readonly lost: boolean;
    release(): Promise<void>;
}

/**
 * A lease per vault in the state store (compare-and-set): at most one processor changes a vault at a time. A held
 * lease is renewed every third of its duration, so a slow remediation keeps it; a renewal that finds another owner
 * (or cannot write) marks it lost, and the holder stops before its next write.
 *
 * Each {@link hold} is its own owner (`<processor>~<n>`): one process runs several queue messages at once (the queue
 * trigger's `batchSize`), and two of them for the same vault, or an undo next to a reconcile, must exclude each other
 * as two processors do.
 */
export class VaultLeases {
    private holds = 0;

    constructor(
        private readonly store: StateStore,
        private readonly clock: Clock,
        private readonly owner: string,
        readonly leaseMs = LEASE_MS,
        /**
         * How long after an unreleased lease of another owner expired it still cannot be taken: the longest one ARM call
         * of the previous holder may still be in flight (its per-call time limit). ARM has no conditional writes on
         * vaults, so a write sent just before the lease lapsed would otherwise race the new holder's identical write.
         */
        readonly takeoverGraceMs = 0,
    ) {}

    private key(vault: VaultRef) {
        return stateKey(vault.name, 'remediation|lease');
    }

    /** Takes the lease as this processor (no renewal; tests and tools). Prefer {@link hold}. */
    async acquire(vault: VaultRef): Promise<boolean> {
        return (await this.take(vault, this.owner)) !== undefined;
    }

    /** Acquires the lease; returns until when it is ours (undefined when another owner holds it). */
    private async take(vault: VaultRef, owner: string): Promise<number | undefined> {
        const key = this.key(vault);
        const [s] = await this.store.getMany([key]);
        const now = this.clock.now();
        const current = s?.value as Lease | null | undefined;
        if (
            current !== undefined &&
            current !== null &&
            current.owner !== owner &&
            current.until + this.takeoverGraceMs > now
        )
            return undefined;
        const until = now + this.leaseMs;
        const r = await this.store.put(key, { owner, until } satisfies Lease, s?.etag, until);
        return r.ok ? until : undefined;
    }

    /** Extends a lease this processor holds ({@link acquire}); false when it is no longer ours. */
    async renew(vault: VaultRef): Promise<boolean> {
        return (await this.extend(vault, this.owner)) !== undefined;
    }

    private async extend(vault: VaultRef, owner: string): Promise<number | undefined> {
        const key = this.key(vault);
        const [s] = await this.store.getMany([key]);
        const now = this.clock.now();
        const current = s?.value as Lease | null | undefined;
        if (current === undefined || current === null || current.owner !== owner || current.until <= now)
            return undefined;
        const until = now + this.leaseMs;
        const r = await this.store.put(key, { owner, until } satisfies Lease, s?.etag, until);
        return r.ok ? until : undefined;
    }

    /** Releases a lease taken with {@link acquire}. */
    async release(vault: VaultRef): Promise<void> {
        await this.releaseAs(vault, this.owner);
    }

    private async releaseAs(vault: VaultRef, owner: string): Promise<void> {
        const key = this.key(vault);
        const [s] = await this.store.getMany([key]);
        if ((s?.value as Lease | null | undefined)?.owner !== owner) return;
        await this.store.put(key, null, s?.etag, this.clock.now());
    }

    /**
     * Acquires the lease and keeps renewing it until `release()`; undefined when another processor holds it.
     * `release()` stops the renewal first and never throws (an unreleased lease lapses by itself).
     */
    async hold(vault: VaultRef, onError?: (err: unknown) => void): Promise<HeldLease | undefined> {
        const owner = `${this.owner}~${(this.holds++).toString(36)}`;
        const taken = await this.take(vault, owner);
        if (taken === undefined) return undefined;
        // Until when the lease is ours for sure: a renewal that runs late (a busy process) must not leave the holder
        // believing it still holds a lease that lapsed and that another processor may have taken.
        let until = taken;
        let lost = false;
        const clock = this.clock;
        let renewing: Promise<void> = Promise.resolve();
        const timer = setInterval(
            () => {
                renewing = renewing.then(async () => {
                    if (lost) return;
                    try {
                        const renewed = await this.extend(vault, owner);
                        if (renewed === undefined) lost = true;
                        else until = renewed;
                    } catch (err) {
                        lost = true; // cannot prove we still hold it: stop writing
                        onError?.(err);
                    }
                });
            },
            Math.max(10, Math.floor(this.leaseMs / 3)),
        );
        timer.unref?.();
        return {
            get lost() {
                if (!lost && clock.now() >= until) lost = true;
                return lost;
            },
            release: async () => {
                clearInterval(timer);
                await renewing;
                if (lost) return;
                try {
                    await this.releaseAs(vault, owner);
                } catch (err) {
                    onError?.(err);
                }
            },
        };
    }
}
