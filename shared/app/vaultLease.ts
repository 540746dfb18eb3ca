import type { VaultRef } from '../core/events/types';
import type { Clock } from '../core/ports';
import { type StateStore, stateKey } from '../core/state/store';
import { LastWritten } from '../core/state/lastWritten';

interface Lease {
    readonly owner: string;
    readonly until: number;
}

export const LEASE_MS = 120_000;

/** Vaults whose released lease's ETag an instance keeps (see `VaultLeases.released`). */
const MAX_RELEASED = 1_000;

/** A lease write of ours: until when it holds, and its ETag. */
interface Written {
    readonly until: number;
    readonly etag: string;
}

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
    /**
     * The ETag of each vault's lease as this instance last released it (value null: free), so that the next take of
     * the same vault tries its compare-and-set on it without reading the lease first. A stale ETag (another processor
     * wrote the lease since) fails the compare-and-set, and the take reads the lease then. Bounded.
     */
    private readonly released = new LastWritten<string>(MAX_RELEASED);

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
        const taken = await this.take(vault, this.owner);
        if (taken !== undefined) this.mine.set(vault.name, taken);
        return taken !== undefined;
    }

    /** The ETag of the lease as {@link acquire} or {@link renew} last wrote it (the public, single-owner calls). */
    private readonly mine = new Map<string, Written>();

    /**
     * Acquires the lease; until when it is ours and the ETag of our write (undefined when another owner holds it).
     * Tries one write first, with no read: on the lease as this instance released it, or, for a vault whose lease this
     * instance does not know, an insert (a lease that was never written, or that the maintenance sweep deleted once
     * it expired: the usual case, a vault is reconciled rarely). Either is a compare-and-set: if anyone wrote the
     * lease since, or it exists, the write fails, and the lease is read and decided on as before (one request more
     * than reading first, only for a vault another instance took or released lately).
     */
    private async take(vault: VaultRef, owner: string): Promise<Written | undefined> {
        const key = this.key(vault);
        const free = this.released.take(vault.name);
        const untilFirst = this.clock.now() + this.leaseMs;
        const first = await this.store.put(key, { owner, until: untilFirst } satisfies Lease, free, untilFirst);
        if (first.ok) return { until: untilFirst, etag: first.etag };
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
        return r.ok ? { until, etag: r.etag } : undefined;
    }

    /** Extends a lease this processor holds ({@link acquire}); false when it is no longer ours. */
    async renew(vault: VaultRef): Promise<boolean> {
        const renewed = await this.extend(vault, this.owner, this.mine.get(vault.name));
        if (renewed === undefined) this.mine.delete(vault.name);
        else this.mine.set(vault.name, renewed);
        return renewed !== undefined;
    }

    /**
     * Extends the lease of `owner`. With `held` (the lease as that owner last wrote it) the compare-and-set is tried on
     * it first, unread; when it fails, the lease is read as without it.
     */
    private async extend(vault: VaultRef, owner: string, held?: Written): Promise<Written | undefined> {
        const key = this.key(vault);
        if (held !== undefined) {
            const now = this.clock.now();
            // Unchanged since our write, it is ours until then; past it, it is lost, as a read would find it.
            if (held.until <= now) return undefined;
            const until = now + this.leaseMs;
            const r = await this.store.put(key, { owner, until } satisfies Lease, held.etag, until);
            if (r.ok) return { until, etag: r.etag };
        }
        const [s] = await this.store.getMany([key]);
        const now = this.clock.now();
        const current = s?.value as Lease | null | undefined;
        if (current === undefined || current === null || current.owner !== owner || current.until <= now)
            return undefined;
        const until = now + this.leaseMs;
        const r = await this.store.put(key, { owner, until } satisfies Lease, s?.etag, until);
        return r.ok ? { until, etag: r.etag } : undefined;
    }

    /** Releases a lease taken with {@link acquire}. */
    async release(vault: VaultRef): Promise<void> {
        const held = this.mine.get(vault.name);
        this.mine.delete(vault.name);
        await this.releaseAs(vault, this.owner, held?.etag);
    }

    /**
     * Frees the lease if `owner` still holds it. With `etag` (the lease as that owner last wrote it) the write is tried
     * on it first, unread; when that fails, the lease is read and freed only if it is still the owner's.
     */
    private async releaseAs(vault: VaultRef, owner: string, etag?: string): Promise<void> {
        const key = this.key(vault);
        if (etag !== undefined) {
            const r = await this.store.put(key, null, etag, this.clock.now());
            if (r.ok) {
                this.released.set(vault.name, r.etag);
                return;
            }
        }
        const [s] = await this.store.getMany([key]);
        if ((s?.value as Lease | null | undefined)?.owner !== owner) return;
        const r = await this.store.put(key, null, s?.etag, this.clock.now());
        if (r.ok) this.released.set(vault.name, r.etag);
    }

    /**
     * Acquires the lease and keeps renewing it until `release()`; undefined when another processor holds it.
     * `release()` stops the renewal first and never throws (an unreleased lease lapses by itself).
     */
    async hold(vault: VaultRef, onError?: (err: unknown) => void): Promise<HeldLease | undefined> {
        const owner = `${this.owner}~${(this.holds++).toString(36)}`;
        const taken = await this.take(vault, owner);
        if (taken === undefined) return undefined;
        // The lease as we last wrote it: renewals and the release try their compare-and-set on it, unread.
        let written: Written = taken;
        // Until when the lease is ours for sure: a renewal that runs late (a busy process) must not leave the holder
        // believing it still holds a lease that lapsed and that another processor may have taken.
        let until = taken.until;
        let lost = false;
        const clock = this.clock;
        let renewing: Promise<void> = Promise.resolve();
        const timer = setInterval(
            () => {
                renewing = renewing.then(async () => {
                    if (lost) return;
                    try {
                        const renewed = await this.extend(vault, owner, written);
                        if (renewed === undefined) lost = true;
                        else {
                            written = renewed;
                            until = renewed.until;
                        }
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
                    await this.releaseAs(vault, owner, written.etag);
                } catch (err) {
                    onError?.(err);
                }
            },
        };
    }
}
