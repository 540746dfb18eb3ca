import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import type { StateStore } from '../../shared/core/state/store';
import { useAzuriteTables } from './azurite';

/**
 * The two real state stores, for `describe.each`: in memory, and Table Storage on an Azurite that this call starts in
 * the calling file's `beforeAll` (and stops in its `afterAll`). Each factory call gives a fresh store (a new table).
 */
export function stateStoresUnderTest(tablePrefix: string): [string, () => StateStore][] {
    const azurite = useAzuriteTables(tablePrefix);
    return [
        ['memory', () => new MemoryStateStore()],
        ['Table Storage (Azurite)', () => new TableStateStore(azurite.client(azurite.newName()))],
    ];
}
