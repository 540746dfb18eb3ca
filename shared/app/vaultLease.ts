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
 */
export class VaultLeases {
    constructor(
        private readonly store: StateStore,
        private readonly clock: Clock,
        private readonly owner: string,
        readonly leaseMs = LEASE_MS,
    ) {}

    private key(vault: VaultRef) {
        return stateKey(vault.name, 'remediation|lease');
    }

    async acquire(vault: VaultRef): Promise<boolean> {
        const key = this.key(vault);
        const [s] = await this.store.getMany([key]);
        const now = this.clock.now();
        const current = s?.value as Lease | null | undefined;
        if (current !== undefined && current !== null && current.owner !== this.owner && current.until > now)
            return false;
        const r = await this.store.put(
            key,
            { owner: this.owner, until: now + this.leaseMs } satisfies Lease,
            s?.etag,
            now + this.leaseMs,
        );
        return r.ok;
    }

    /** Extends a lease this processor holds; false when it is no longer ours. */
    async renew(vault: VaultRef): Promise<boolean> {
        const key = this.key(vault);
        const [s] = await this.store.getMany([key]);
        const now = this.clock.now();
        const current = s?.value as Lease | null | undefined;
        if (current === undefined || current === null || current.owner !== this.owner || current.until <= now)
            return false;
        const r = await this.store.put(
            key,
            { owner: this.owner, until: now + this.leaseMs } satisfies Lease,
            s?.etag,
            now + this.leaseMs,
        );
        return r.ok;
    }

    async release(vault: VaultRef): Promise<void> {
        const key = this.key(vault);
        const [s] = await this.store.getMany([key]);
        if ((s?.value as Lease | null | undefined)?.owner !== this.owner) return;
        await this.store.put(key, null, s?.etag, this.clock.now());
    }

    /**
     * Acquires the lease and keeps renewing it until `release()`; undefined when another processor holds it.
     * `release()` stops the renewal first and never throws (an unreleased lease lapses by itself).
     */
    async hold(vault: VaultRef, onError?: (err: unknown) => void): Promise<HeldLease | undefined> {
        if (!(await this.acquire(vault))) return undefined;
        let lost = false;
        let renewing: Promise<void> = Promise.resolve();
        const timer = setInterval(
            () => {
                renewing = renewing.then(async () => {
                    if (lost) return;
                    try {
                        if (!(await this.renew(vault))) lost = true;
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
                return lost;
            },
            release: async () => {
                clearInterval(timer);
                await renewing;
                if (lost) return;
                try {
                    await this.release(vault);
                } catch (err) {
                    onError?.(err);
                }
            },
        };
    }
}
