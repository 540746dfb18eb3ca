import type { VaultRef } from '../core/events/types';
import type { Clock } from '../core/ports';
import { type StateStore, stateKey } from '../core/state/store';

interface Lease {
    readonly owner: string;
    readonly until: number;
}

export const LEASE_MS = 120_000;

/** A lease per vault in the state store (compare-and-set): at most one processor changes a vault at a time. */
export class VaultLeases {
    constructor(
        private readonly store: StateStore,
        private readonly clock: Clock,
        private readonly owner: string,
        private readonly leaseMs = LEASE_MS,
    ) {}

    async acquire(vault: VaultRef): Promise<boolean> {
        const key = stateKey(vault.name, 'remediation|lease');
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

    async release(vault: VaultRef): Promise<void> {
        const key = stateKey(vault.name, 'remediation|lease');
        const [s] = await this.store.getMany([key]);
        if ((s?.value as Lease | null | undefined)?.owner !== this.owner) return;
        await this.store.put(key, null, s?.etag, this.clock.now());
    }
}
