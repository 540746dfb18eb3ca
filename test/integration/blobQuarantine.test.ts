import { type BlobItem, BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { BlobQuarantineSink } from '../../shared/adapters/blobQuarantineSink';
import { MemoryDecisionSink } from '../../shared/adapters/memorySinks';
import { createPipeline } from '../../shared/app/createPipeline';
import { handleAuditBatch } from '../../shared/app/handlers/handleAuditBatch';
import { DEFAULT_CONFIG } from '../../shared/config/responderConfig';
import { type AzuriteService, startAzurite } from '../support/azurite';
import { makeContext } from '../support/context';
import { fixtureText } from '../support/fixtures';

interface Line {
    readonly reason: string;
    readonly source: string | null;
    readonly excerpt: string;
    readonly raw: unknown;
    readonly rawEncoding?: string;
}

async function linesOf(container: ContainerClient, name: string): Promise<Line[]> {
    const buf = await container.getBlobClient(name).downloadToBuffer();
    return buf
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Line);
}

async function listAll(container: ContainerClient): Promise<BlobItem[]> {
    const blobs: BlobItem[] = [];
    for await (const b of container.listBlobsFlat({ includeMetadata: true })) blobs.push(b);
    return blobs;
}

describe('BlobQuarantineSink against Azurite', () => {
    let azurite: AzuriteService;
    beforeAll(async () => {
        azurite = await startAzurite('blob');
    });
    afterAll(async () => {
        await azurite.stop();
    });

    it('keeps every rejected item of a batch whole, with its reason and source, in one JSON Lines blob under an hourly prefix', async () => {
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

        const blobs = await listAll(container);
        // One blob for the batch's rejects, named after their content, under the hour's prefix.
        expect(blobs).toHaveLength(1);
        expect(blobs[0]?.name).toMatch(/^2026\/10\/05\/10\/[0-9a-f]{64}\.jsonl$/);
        expect(blobs[0]?.metadata?.items).toBe('2');
        const lines = await linesOf(container, blobs[0]?.name ?? '');
        expect(lines).toHaveLength(2);
        const bySource = new Map(lines.map((l) => [l.source, l]));
        const notJson = bySource.get('partition 0 sequence 7');
        expect(notJson?.reason).toMatch(/^body is not JSON/);
        expect(notJson?.raw).toBe(fixtureText('malformed/not-json.json'));
        expect(typeof notJson?.excerpt).toBe('string');
        // A record rejected inside a body is kept as the parsed record.
        const bigRecord = bySource.get('partition 0 sequence 8')?.raw as { properties: { clientInfo: string } };
        expect(bigRecord.properties.clientInfo).toHaveLength(200_000);
    });

    it('writes 20,000 rejected records of one body as one blob; the batch succeeds and a redelivery overwrites it', async () => {
        const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
            'kvr-quarantine-nulls',
        );
        const sink = new BlobQuarantineSink(container, () => new Date('2026-10-05T11:00:00Z'));
        const decisions = new MemoryDecisionSink();
        const pipeline = createPipeline(DEFAULT_CONFIG, { decisions, quarantine: sink }, { acceptBareRecords: false });
        const body = JSON.stringify({ records: new Array<null>(20_000).fill(null) });
        for (const attempt of [1, 2]) {
            const { context } = makeContext({ partitionContext: { partitionId: '3' }, sequenceNumberArray: [41] });
            const result = await handleAuditBatch([body], context, { pipeline });
            expect({ attempt, rejected: result.summary.rejected }).toEqual({ attempt, rejected: 20_000 });
        }
        // The decision log still names every record (twice: the batch was delivered twice).
        expect(decisions.decisions.filter((d) => d.type === 'rejected')).toHaveLength(40_000);
        const blobs = await listAll(container);
        expect(blobs).toHaveLength(1);
        expect(blobs[0]?.metadata?.items).toBe('20000');
        const lines = await linesOf(container, blobs[0]?.name ?? '');
        expect(lines).toHaveLength(20_000);
        expect(lines[0]).toEqual({
            reason: 'invalid record: record is not an object',
            source: 'partition 3 sequence 41 record 1 of 20000',
            excerpt: 'null',
            raw: null,
        });
        expect(lines[19_999]?.source).toBe('partition 3 sequence 41 record 20000 of 20000');
    });

    it('splits a batch over the size cap into a bounded number of blobs that together hold every item once', async () => {
        const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
            'kvr-quarantine-parts',
        );
        const sink = new BlobQuarantineSink(container, () => new Date('2026-10-05T12:00:00Z'), 64 * 1024);
        const items = Array.from({ length: 300 }, (_, i) => ({
            reason: 'invalid record: record is not an object',
            source: `s${i}`,
            excerpt: 'x',
            raw: Buffer.from(`${i}:${'x'.repeat(1000)}`),
        }));
        items.push({ reason: 'not UTF-8', source: 'bin', excerpt: '?', raw: Buffer.from([0xff, 0xfe, 0x00]) });
        await sink.put(items);
        const blobs = await listAll(container);
        // About 330 KB of lines in parts of at most 64 KiB.
        expect(blobs.length).toBe(6);
        for (const b of blobs) expect(b.name).toMatch(/^2026\/10\/05\/12\/[0-9a-f]{64}\.[1-6]-of-6\.jsonl$/);
        const lines = (await Promise.all(blobs.map((b) => linesOf(container, b.name)))).flat();
        expect(lines.map((l) => l.source).sort()).toEqual(items.map((i) => i.source).sort());
        expect(lines.find((l) => l.source === 'bin')).toMatchObject({ raw: '//4A', rawEncoding: 'base64' });
        expect(lines.find((l) => l.source === 's7')?.raw).toBe(`7:${'x'.repeat(1000)}`);
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
