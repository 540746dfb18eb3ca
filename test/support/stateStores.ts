import { TableClient } from '@azure/data-tables';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import type { StateStore } from '../../shared/core/state/store';
import { type AzuriteService, startAzurite } from './azurite';

/**
 * The two real state stores, for `describe.each`: in memory, and Table Storage on an Azurite that this call starts in
 * the calling file's `beforeAll` (and stops in its `afterAll`). Each factory call gives a fresh store (a new table).
 */
export function stateStoresUnderTest(tablePrefix: string): [string, () => StateStore][] {
    let azurite: AzuriteService | undefined;
    let tables = 0;
    beforeAll(async () => {
        azurite = await startAzurite('table');
    });
    afterAll(async () => {
        await azurite?.stop();
    });
    return [
        ['memory', () => new MemoryStateStore()],
        [
            'Table Storage (Azurite)',
            () => {
                if (azurite === undefined) throw new Error('Azurite is not started yet (call from a test or hook)');
                return new TableStateStore(
                    TableClient.fromConnectionString(azurite.connectionString, `${tablePrefix}${++tables}`, {
                        allowInsecureConnection: true,
                    }),
                );
            },
        ],
    ];
}
