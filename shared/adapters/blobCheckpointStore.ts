import type { Checkpoint, CheckpointStore, OperationOptions, PartitionOwnership } from '@azure/event-hubs';
import type { ContainerClient, Metadata } from '@azure/storage-blob';

/**
 * An Event Hubs {@link CheckpointStore} on Azure Blob Storage, with the blob layout of the official
 * `@azure/eventhubs-checkpointstore-blob` (not installed here), so that either can take over the other's state:
 *
 * - `<namespace>/<event hub>/<consumer group>/ownership/<partition id>`: an empty blob whose metadata `ownerid` names the
 *   owning processor; its ETag and Last-Modified time are the ownership's `etag` and `lastModifiedTimeInMs`;
 * - `<namespace>/<event hub>/<consumer group>/checkpoint/<partition id>`: an empty blob with metadata `sequencenumber`
 *   and `offset`.
 *
 * The namespace, event hub and consumer group are lower-cased (none of them is case-sensitive in Event Hubs).
 *
 * A claim with an ETag is a conditional metadata write (`If-Match`): a 412 means another processor claimed the
 * partition first, and the partition is left out of the result. A claim without an ETag (a partition never owned, as
 * far as the claimant's listing knew) creates the blob only if it does not exist (`If-None-Match: *`), so that two
 * processors starting together cannot both win it; the official store overwrites in that case.
 */
export class BlobCheckpointStore implements CheckpointStore {
    private ready: Promise<void> | undefined;

    constructor(private readonly container: ContainerClient) {}

    /** Creates the container when it does not exist (once per instance). */
    private ensureContainer(): Promise<void> {
        this.ready ??= this.container.createIfNotExists().then(
            () => undefined,
            (err: unknown) => {
                this.ready = undefined;
                throw new Error(
                    `checkpoint container ${this.container.containerName} is not available: ${(err as Error).message}`,
                    { cause: err },
                );
            },
        );
        return this.ready;
    }

    async listOwnership(
        fullyQualifiedNamespace: string,
        eventHubName: string,
        consumerGroup: string,
        options: OperationOptions = {},
    ): Promise<PartitionOwnership[]> {
        await this.ensureContainer();
        const out: PartitionOwnership[] = [];
        const prefix = blobPrefix('ownership', fullyQualifiedNamespace, eventHubName, consumerGroup);
        for await (const blob of this.container.listBlobsFlat({
            ...requestOptions(options),
            prefix,
            includeMetadata: true,
        })) {
            const ownerId = blob.metadata?.ownerid;
            if (ownerId === undefined) throw new Error(`missing metadata 'ownerid' on blob '${blob.name}'`);
            out.push({
                fullyQualifiedNamespace,
                eventHubName,
                consumerGroup,
                partitionId: partitionOf(blob.name),
                ownerId,
                lastModifiedTimeInMs: blob.properties.lastModified.getTime(),
                ...(blob.properties.etag === undefined ? {} : { etag: blob.properties.etag }),
            });
        }
        return out;
    }

    async claimOwnership(
        partitionOwnership: PartitionOwnership[],
        options: OperationOptions = {},
    ): Promise<PartitionOwnership[]> {
        await this.ensureContainer();
        const claimed: PartitionOwnership[] = [];
        for (const ownership of partitionOwnership) {
            const blob = this.container.getBlockBlobClient(blobName('ownership', ownership, ownership.partitionId));
            const metadata: Metadata = { ownerid: ownership.ownerId };
            try {
                const r =
                    ownership.etag === undefined
                        ? await blob.upload('', 0, {
                              ...requestOptions(options),
                              metadata,
                              conditions: { ifNoneMatch: '*' },
                          })
                        : await blob.setMetadata(metadata, {
                              ...requestOptions(options),
                              conditions: { ifMatch: ownership.etag },
                          });
                claimed.push({
                    ...ownership,
                    ...(r.etag === undefined ? {} : { etag: r.etag }),
                    ...(r.lastModified === undefined ? {} : { lastModifiedTimeInMs: r.lastModified.getTime() }),
                });
            } catch (err) {
                // 412: the ETag moved on (another processor claimed it); 409: someone created it first; 404: the
                // blob we held an ETag for is gone. Each means another processor won: not an error.
                const status = statusOf(err);
                if (status === 412 || status === 409 || (status === 404 && ownership.etag !== undefined)) continue;
                throw err;
            }
        }
        return claimed;
    }

    async updateCheckpoint(checkpoint: Checkpoint, options: OperationOptions = {}): Promise<void> {
        if (!Number.isInteger(checkpoint.sequenceNumber)) throw new TypeError('checkpoint.sequenceNumber is required');
        if (typeof checkpoint.offset !== 'string' || checkpoint.offset.length === 0)
            throw new TypeError('checkpoint.offset is required');
        await this.ensureContainer();
        const blob = this.container.getBlockBlobClient(blobName('checkpoint', checkpoint, checkpoint.partitionId));
        const metadata: Metadata = { sequencenumber: String(checkpoint.sequenceNumber), offset: checkpoint.offset };
        try {
            // Setting metadata (rather than uploading) avoids a new blob version on accounts with versioning on.
            await blob.setMetadata(metadata, requestOptions(options));
        } catch (err) {
            if (statusOf(err) !== 404 || errorCodeOf(err) === 'ContainerNotFound') throw err;
            await blob.upload('', 0, { ...requestOptions(options), metadata });
        }
    }

    async listCheckpoints(
        fullyQualifiedNamespace: string,
        eventHubName: string,
        consumerGroup: string,
        options: OperationOptions = {},
    ): Promise<Checkpoint[]> {
        await this.ensureContainer();
        const out: Checkpoint[] = [];
        const prefix = blobPrefix('checkpoint', fullyQualifiedNamespace, eventHubName, consumerGroup);
        for await (const blob of this.container.listBlobsFlat({
            ...requestOptions(options),
            prefix,
            includeMetadata: true,
        })) {
            const offset = blob.metadata?.offset;
            if (offset === undefined) throw new Error(`missing metadata 'offset' on blob '${blob.name}'`);
            const seq = blob.metadata?.sequencenumber;
            const sequenceNumber = seq === undefined ? NaN : Number.parseInt(seq, 10);
            if (Number.isNaN(sequenceNumber))
                throw new Error(`missing or invalid metadata 'sequencenumber' on blob '${blob.name}'`);
            out.push({
                fullyQualifiedNamespace,
                eventHubName,
                consumerGroup,
                partitionId: partitionOf(blob.name),
                sequenceNumber,
                offset,
            });
        }
        return out;
    }
}

interface Scope {
    readonly fullyQualifiedNamespace: string;
    readonly eventHubName: string;
    readonly consumerGroup: string;
}

function blobPrefix(kind: 'ownership' | 'checkpoint', ns: string, hub: string, group: string): string {
    return `${ns.toLowerCase()}/${hub.toLowerCase()}/${group.toLowerCase()}/${kind}/`;
}

/** The blob that holds one partition's ownership or checkpoint. */
export function blobName(kind: 'ownership' | 'checkpoint', scope: Scope, partitionId: string): string {
    return `${blobPrefix(kind, scope.fullyQualifiedNamespace, scope.eventHubName, scope.consumerGroup)}${partitionId}`;
}

function partitionOf(name: string): string {
    return name.slice(name.lastIndexOf('/') + 1);
}

function requestOptions(options: OperationOptions): { abortSignal?: AbortSignalLike } {
    return options.abortSignal === undefined ? {} : { abortSignal: options.abortSignal };
}

type AbortSignalLike = NonNullable<OperationOptions['abortSignal']>;

function statusOf(err: unknown): number | undefined {
    const s = (err as { statusCode?: unknown } | null)?.statusCode;
    return typeof s === 'number' ? s : undefined;
}

function errorCodeOf(err: unknown): string | undefined {
    const e = err as { code?: unknown; details?: { errorCode?: unknown } } | null;
    const code = e?.details?.errorCode ?? e?.code;
    return typeof code === 'string' ? code : undefined;
}
