/**
 * The store's own entity-group transaction request (shared/adapters/tableTransaction.ts) against Azurite with a plain
 * TableClient (no test policy rewrites its bodies): ETags of each operation, the failed operation's status and index,
 * non-ASCII values sent as ASCII JSON, the client's pipeline (policies, retries) and the abort signal.
 */
import { TableClient } from '@azure/data-tables';
import { TABLE_RETRY_OPTIONS } from '../../shared/adapters/tableStateStore';
import { sendOperation, submitTransaction, type TableOp } from '../../shared/adapters/tableTransaction';
import { useAzuriteTables } from '../support/azurite';
import { busyEndpoint, hangingEndpoint, tableConnectionStringAt } from '../support/tableEndpoints';

const azurite = useAzuriteTables('kvrtx');

/** A client of a new table whose request bodies are recorded (as they go over the wire, after every policy). */
async function newTable(): Promise<{ client: TableClient; bodies: string[] }> {
    const client = TableClient.fromConnectionString(azurite.connectionString, azurite.newName(), {
        allowInsecureConnection: true,
    });
    const bodies: string[] = [];
    client.pipeline.addPolicy(
        {
            name: 'recordBodies',
            sendRequest: (request, next) => {
                if (typeof request.body === 'string') bodies.push(request.body);
                return next(request);
            },
        },
        { afterPhase: 'Retry' },
    );
    await client.createTable();
    return { client, bodies };
}

const signal = (): AbortSignal => AbortSignal.timeout(10_000);

/** What a failed transaction threw: its status and the message that names the failed operation. */
async function failure(
    p: Promise<unknown>,
): Promise<{ statusCode: number | undefined; message: string; index: number | undefined }> {
    const err = (await p.then(
        () => undefined,
        (e: unknown) => e,
    )) as { statusCode?: number; message: string; details?: { odataError?: { message?: { value?: string } } } };
    expect(err).toBeInstanceOf(Error);
    const m = /^(\d+):/.exec(err.details?.odataError?.message?.value ?? '');
    return { statusCode: err.statusCode, message: err.message, index: m ? Number(m[1]) : undefined };
}

describe('submitTransaction (Azurite)', () => {
    it("applies every operation and answers with each operation's ETag (the entity's own)", async () => {
        const { client } = await newTable();
        await client.createEntity({ partitionKey: 's00', rowKey: 'merge', a: 'x', keep: 1 });
        await client.createEntity({ partitionKey: 's00', rowKey: 'gone', a: 'x' });
        const before = await client.getEntity('s00', 'merge');
        const actions: TableOp[] = [
            {
                kind: 'insert',
                partitionKey: 's00',
                rowKey: "it's|new%2F",
                props: [
                    ['v', 'one'],
                    ['exp', 1_767_225_600_000],
                    ['full', true],
                ],
            },
            { kind: 'upsert', partitionKey: 's00', rowKey: 'upserted', props: [['v', 'two']] },
            { kind: 'merge', partitionKey: 's00', rowKey: 'merge', props: [['a', 'y']], etag: before.etag },
            { kind: 'delete', partitionKey: 's00', rowKey: 'gone' },
        ];
        const r = await submitTransaction(client, actions, signal());
        const created = await client.getEntity<Record<string, unknown>>('s00', "it's|new%2F");
        const upserted = await client.getEntity('s00', 'upserted');
        const merged = await client.getEntity<Record<string, unknown>>('s00', 'merge');
        expect(r.etags).toEqual([created.etag, upserted.etag, merged.etag, undefined]);
        expect(created).toMatchObject({ v: 'one', exp: 1_767_225_600_000, full: true });
        expect(merged).toMatchObject({ a: 'y', keep: 1 });
        await expect(client.getEntity('s00', 'gone')).rejects.toMatchObject({ statusCode: 404 });
    });

    it('a stale ETag on the k-th operation: 412 naming k, and nothing of the transaction applied', async () => {
        const { client } = await newTable();
        await client.createEntity({ partitionKey: 's00', rowKey: 'b', v: '1' });
        const stale = (await client.getEntity('s00', 'b')).etag;
        await client.updateEntity({ partitionKey: 's00', rowKey: 'b', v: '2' }, 'Replace');
        const f = await failure(
            submitTransaction(
                client,
                [
                    { kind: 'insert', partitionKey: 's00', rowKey: 'a', props: [['v', 'x']] },
                    { kind: 'insert', partitionKey: 's00', rowKey: 'c', props: [['v', 'x']] },
                    { kind: 'replace', partitionKey: 's00', rowKey: 'b', props: [['v', '3']], etag: stale },
                ],
                signal(),
            ),
        );
        expect(f).toMatchObject({ statusCode: 412, index: 2 });
        await expect(client.getEntity('s00', 'a')).rejects.toMatchObject({ statusCode: 404 });
        expect((await client.getEntity<{ v: string }>('s00', 'b')).v).toBe('2');
    });

    it('an insert of an existing entity: 409 naming it', async () => {
        const { client } = await newTable();
        await client.createEntity({ partitionKey: 's00', rowKey: 'there', v: '1' });
        const f = await failure(
            submitTransaction(
                client,
                [
                    { kind: 'insert', partitionKey: 's00', rowKey: 'a', props: [['v', 'x']] },
                    { kind: 'insert', partitionKey: 's00', rowKey: 'there', props: [['v', 'x']] },
                ],
                signal(),
            ),
        );
        expect(f).toMatchObject({ statusCode: 409, index: 1 });
    });

    it('an update or a delete of a missing entity: 404 naming it', async () => {
        const { client } = await newTable();
        const update = await failure(
            submitTransaction(
                client,
                [
                    { kind: 'replace', partitionKey: 's00', rowKey: 'missing', props: [['v', 'x']] },
                    { kind: 'insert', partitionKey: 's00', rowKey: 'a', props: [['v', 'x']] },
                ],
                signal(),
            ),
        );
        expect(update).toMatchObject({ statusCode: 404, index: 0 });
        const del = await failure(
            submitTransaction(
                client,
                [
                    { kind: 'insert', partitionKey: 's00', rowKey: 'a', props: [['v', 'x']] },
                    { kind: 'delete', partitionKey: 's00', rowKey: 'missing' },
                ],
                signal(),
            ),
        );
        expect(del).toMatchObject({ statusCode: 404, index: 1 });
    });

    it('sends non-ASCII values as ASCII JSON, and they come back as written', async () => {
        const { client, bodies } = await newTable();
        // Long values of multi-byte characters: any one of them could fall between two chunks of the request body.
        const values = [`${'é'.repeat(31_997)}😀`, '漢字かな 🔑 ü', 'x\u0000\u001f"\\'];
        for (let round = 0; round < 5; round++) {
            const actions: TableOp[] = values.map((v, i) => ({
                kind: 'upsert',
                partitionKey: 's00',
                rowKey: `r${i}`,
                props: [
                    ['v', v],
                    [`p${round}`, 'é'],
                ],
            }));
            await submitTransaction(client, actions, signal());
            for (const [i, v] of values.entries())
                expect((await client.getEntity<{ v: string }>('s00', `r${i}`)).v).toBe(v);
        }
        const batches = bodies.filter((b) => b.includes('multipart/mixed'));
        expect(batches).toHaveLength(5);
        for (const b of batches) expect([...b].every((c) => c.charCodeAt(0) < 0x80)).toBe(true);
    });

    it('one operation alone: its ETag, and its status when it fails', async () => {
        const { client, bodies } = await newTable();
        const etag = await sendOperation(
            client,
            { kind: 'insert', partitionKey: 's00', rowKey: "o'ne|é", props: [['v', 'é😀']] },
            signal(),
        );
        const read = await client.getEntity<{ v: string }>('s00', "o'ne|é");
        expect([etag, read.v]).toEqual([read.etag, 'é😀']);
        const insertAgain = sendOperation(client, { kind: 'insert', partitionKey: 's00', rowKey: "o'ne|é" }, signal());
        await expect(insertAgain).rejects.toMatchObject({ statusCode: 409 });
        const stale = sendOperation(
            client,
            {
                kind: 'merge',
                partitionKey: 's00',
                rowKey: "o'ne|é",
                props: [['w', 1]],
                etag: 'W/"datetime\'2020-01-01T00%3A00%3A00Z\'"',
            },
            signal(),
        );
        await expect(stale).rejects.toMatchObject({ statusCode: 412 });
        const merged = await sendOperation(
            client,
            { kind: 'merge', partitionKey: 's00', rowKey: "o'ne|é", props: [['w', 1]], etag: read.etag },
            signal(),
        );
        expect((await client.getEntity('s00', "o'ne|é")).etag).toBe(merged);
        await sendOperation(
            client,
            { kind: 'delete', partitionKey: 's00', rowKey: "o'ne|é", etag: merged as string },
            signal(),
        );
        const gone = sendOperation(client, { kind: 'delete', partitionKey: 's00', rowKey: "o'ne|é" }, signal());
        await expect(gone).rejects.toMatchObject({ statusCode: 404 });
        for (const b of bodies) expect([...b].every((c) => c.charCodeAt(0) < 0x80)).toBe(true);
    });

    it('goes through the client pipeline: its retry policy retries a 503, then the status is thrown', async () => {
        const busy = await busyEndpoint();
        try {
            const client = TableClient.fromConnectionString(
                tableConnectionStringAt(azurite.connectionString, busy.port),
                'kvrbusy',
                { allowInsecureConnection: true, retryOptions: TABLE_RETRY_OPTIONS },
            );
            const f = await failure(
                submitTransaction(
                    client,
                    [{ kind: 'insert', partitionKey: 's00', rowKey: 'a', props: [['v', 'x']] }],
                    signal(),
                ),
            );
            expect(f.statusCode).toBe(503);
            expect(busy.requests()).toBe(1 + TABLE_RETRY_OPTIONS.maxRetries);
        } finally {
            await busy.close();
        }
    });

    it('gives up when its abort signal fires (an endpoint that never answers)', async () => {
        const hung = await hangingEndpoint();
        try {
            const client = TableClient.fromConnectionString(
                tableConnectionStringAt(azurite.connectionString, hung.port),
                'kvrhung',
                { allowInsecureConnection: true },
            );
            const err = (await submitTransaction(
                client,
                [{ kind: 'insert', partitionKey: 's00', rowKey: 'a', props: [['v', 'x']] }],
                AbortSignal.timeout(300),
            ).then(
                () => undefined,
                (e: unknown) => e,
            )) as { name?: string } | undefined;
            expect(err?.name).toBe('AbortError');
        } finally {
            await hung.close();
        }
    });
});
