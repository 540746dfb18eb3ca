import type { PartitionOwnership } from '@azure/event-hubs';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { BlobCheckpointStore, blobName } from '../../shared/adapters/blobCheckpointStore';
import { type AzuriteService, startAzurite } from '../support/azurite';

const NS = 'KVR-NS.servicebus.windows.net';
const HUB = 'Insights-Logs-AuditEvent';
const GROUP = 'KV-Responder';
const scope = { fullyQualifiedNamespace: NS, eventHubName: HUB, consumerGroup: GROUP };

let azurite: AzuriteService;
let containers = 0;
beforeAll(async () => {
    azurite = await startAzurite('blob');
});
afterAll(async () => {
    await azurite.stop();
});

function newContainer(): ContainerClient {
    return BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
        `checkpoints${++containers}`,
    );
}

function claim(ownerId: string, partitionId: string, etag?: string): PartitionOwnership {
    return { ...scope, ownerId, partitionId, ...(etag === undefined ? {} : { etag }) };
}

describe('BlobCheckpointStore on Azurite', () => {
    it('claims a new partition once: a second claim without the ETag loses', async () => {
        const store = new BlobCheckpointStore(newContainer());
        const [won] = await store.claimOwnership([claim('a', '0')]);
        expect(won).toMatchObject({ ownerId: 'a', partitionId: '0' });
        expect(won?.etag).toEqual(expect.any(String));
        expect(won?.lastModifiedTimeInMs).toEqual(expect.any(Number));
        expect(await store.claimOwnership([claim('b', '0')])).toEqual([]);
        const [listed] = await store.listOwnership(NS, HUB, GROUP);
        // A listing gives the ETag without the quotes of the response header; both name the same version.
        expect(listed).toMatchObject({ ownerId: 'a', partitionId: '0' });
        expect(listed?.etag?.replace(/"/g, '')).toBe(won?.etag?.replace(/"/g, ''));
    });

    it('takes over with the ETag of a listing, as the event processor does', async () => {
        const store = new BlobCheckpointStore(newContainer());
        await store.claimOwnership([claim('a', '0')]);
        const [listed] = await store.listOwnership(NS, HUB, GROUP);
        const [taken] = await store.claimOwnership([{ ...(listed as PartitionOwnership), ownerId: 'b' }]);
        expect(taken?.ownerId).toBe('b');
        // The listing is now stale: a claim with it loses.
        expect(await store.claimOwnership([{ ...(listed as PartitionOwnership), ownerId: 'c' }])).toEqual([]);
        expect((await store.listOwnership(NS, HUB, GROUP))[0]?.ownerId).toBe('b');
    });

    it('takes over with the current ETag and refuses a stale one (412), claiming the rest of the list', async () => {
        const store = new BlobCheckpointStore(newContainer());
        const [first] = await store.claimOwnership([claim('a', '0')]);
        const stale = first?.etag as string;
        const [second] = await store.claimOwnership([claim('b', '0', stale)]);
        expect(second?.ownerId).toBe('b');
        expect(second?.etag).not.toBe(stale);
        const result = await store.claimOwnership([claim('c', '0', stale), claim('c', '1')]);
        expect(result.map((o) => [o.ownerId, o.partitionId])).toEqual([['c', '1']]);
        const owners = (await store.listOwnership(NS, HUB, GROUP)).map((o) => [o.partitionId, o.ownerId]).sort();
        expect(owners).toEqual([
            ['0', 'b'],
            ['1', 'c'],
        ]);
    });

    it('lets a processor abandon its partitions (empty owner id) with its ETag', async () => {
        const store = new BlobCheckpointStore(newContainer());
        const [mine] = await store.claimOwnership([claim('a', '3')]);
        const [abandoned] = await store.claimOwnership([{ ...(mine as PartitionOwnership), ownerId: '' }]);
        expect(abandoned?.ownerId).toBe('');
        expect((await store.listOwnership(NS, HUB, GROUP))[0]?.ownerId).toBe('');
    });

    it('writes, overwrites and lists checkpoints per partition', async () => {
        const store = new BlobCheckpointStore(newContainer());
        expect(await store.listCheckpoints(NS, HUB, GROUP)).toEqual([]);
        await store.updateCheckpoint({ ...scope, partitionId: '0', sequenceNumber: 41, offset: '4100' });
        await store.updateCheckpoint({ ...scope, partitionId: '1', sequenceNumber: 7, offset: '700' });
        await store.updateCheckpoint({ ...scope, partitionId: '0', sequenceNumber: 42, offset: '4200' });
        const list = await store.listCheckpoints(NS, HUB, GROUP);
        expect(list.map((c) => [c.partitionId, c.sequenceNumber, c.offset]).sort()).toEqual([
            ['0', 42, '4200'],
            ['1', 7, '700'],
        ]);
        expect(list[0]).toMatchObject(scope);
        await expect(
            store.updateCheckpoint({ ...scope, partitionId: '0', sequenceNumber: 43, offset: '' }),
        ).rejects.toThrow(/offset/);
    });

    it('keeps ownership and checkpoints apart per consumer group, case-insensitively', async () => {
        const store = new BlobCheckpointStore(newContainer());
        await store.updateCheckpoint({ ...scope, partitionId: '0', sequenceNumber: 1, offset: '1' });
        await store.claimOwnership([claim('a', '0')]);
        expect(await store.listCheckpoints(NS, HUB, '$Default')).toEqual([]);
        expect(await store.listOwnership(NS, HUB, '$Default')).toEqual([]);
        expect(await store.listCheckpoints(NS.toUpperCase(), HUB.toLowerCase(), GROUP)).toHaveLength(1);
    });

    it('uses the blob layout and metadata names of @azure/eventhubs-checkpointstore-blob', async () => {
        const container = newContainer();
        const store = new BlobCheckpointStore(container);
        await store.claimOwnership([claim('owner-1', '2')]);
        await store.updateCheckpoint({ ...scope, partitionId: '2', sequenceNumber: 5, offset: '500' });
        const names: string[] = [];
        for await (const b of container.listBlobsFlat({ includeMetadata: true })) {
            names.push(b.name);
            if (b.name.includes('/ownership/')) expect(b.metadata).toEqual({ ownerid: 'owner-1' });
            else expect(b.metadata).toEqual({ sequencenumber: '5', offset: '500' });
        }
        expect(names.sort()).toEqual([
            'kvr-ns.servicebus.windows.net/insights-logs-auditevent/kv-responder/checkpoint/2',
            'kvr-ns.servicebus.windows.net/insights-logs-auditevent/kv-responder/ownership/2',
        ]);
        expect(blobName('checkpoint', scope, '2')).toBe(names.sort()[0]);
    });
});
