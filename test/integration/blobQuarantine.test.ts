import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { BlobQuarantineSink } from '../../shared/adapters/blobQuarantineSink';
import { MemoryDecisionSink } from '../../shared/adapters/memorySinks';
import { createPipeline } from '../../shared/app/createPipeline';
import { handleAuditBatch } from '../../shared/app/handlers/handleAuditBatch';
import { DEFAULT_CONFIG } from '../../shared/config/responderConfig';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { makeContext } from '../support/context';
import { fixtureText } from '../support/fixtures';

async function streamText(container: ContainerClient, name: string): Promise<string> {
    const buf = await container.getBlobClient(name).downloadToBuffer();
    return buf.toString('utf8');
}

describe('BlobQuarantineSink against Azurite', () => {
    let azurite: AzuriteService;
    beforeAll(async () => {
        azurite = await startAzurite('blob');
    });
    afterAll(async () => {
        await azurite.stop();
    });

    it('keeps every rejected item whole, with its reason and source, under an hourly prefix', async () => {
        const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
            'kvr-quarantine',
        );
        const sink = new BlobQuarantineSink(container, () => new Date('2026-10-05T10:42:00Z'));
        const pipeline = createPipeline(
            DEFAULT_CONFIG,
            { decisions: new MemoryDecisionSink(), quarantine: sink },
            { acceptBareRecords: false },
        );
        const { context } = makeContext({ partitionContext: { partitionId: '0' }, sequenceNumberArray: [7, 8] });
        const huge = fixtureText('malformed/huge-string-field.json');
        const result = await handleAuditBatch([fixtureText('malformed/not-json.json'), Buffer.from(huge)], context, {
            pipeline,
        });
        expect(result.summary.rejected).toBe(2);

        const blobs = [];
        for await (const b of container.listBlobsFlat({ includeMetadata: true })) blobs.push(b);
        expect(blobs).toHaveLength(2);
        for (const b of blobs) expect(b.name).toMatch(/^2026\/10\/05\/10\/[0-9a-f-]{36}\.json$/);
        const bySource = new Map(blobs.map((b) => [decodeURIComponent(b.metadata?.source ?? ''), b]));
        const notJson = bySource.get('partition 0 sequence 7');
        expect(decodeURIComponent(notJson?.metadata?.reason ?? '')).toMatch(/^body is not JSON/);
        expect(await streamText(container, notJson?.name ?? '')).toBe(fixtureText('malformed/not-json.json'));
        const bigRecord = JSON.parse(
            await streamText(container, bySource.get('partition 0 sequence 8')?.name ?? ''),
        ) as {
            properties: { clientInfo: string };
        };
        expect(bigRecord.properties.clientInfo).toHaveLength(200_000);
    });

    it('throws a retryable error when storage is unreachable', async () => {
        const container = BlobServiceClient.fromConnectionString(
            azurite.connectionString.replace(/BlobEndpoint=http:\/\/[\d.]+:\d+/, 'BlobEndpoint=http://127.0.0.1:9'),
            { retryOptions: { maxTries: 1 } },
        ).getContainerClient('kvr-quarantine');
        const sink = new BlobQuarantineSink(container);
        await expect(sink.put([{ reason: 'r', source: undefined, excerpt: 'x', raw: 'x' }])).rejects.toMatchObject({
            code: 'SINK.WRITE_FAILED',
            retryable: true,
        });
    });
});
