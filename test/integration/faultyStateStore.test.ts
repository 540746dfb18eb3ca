// FaultyStateStore injects Table Storage failures exactly as the production adapter surfaces them through the port:
// checked against the real TableStateStore + @azure/data-tables talking to an endpoint that answers each failure,
// and run over both MemoryStateStore and TableStateStore on Azurite.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TableClient } from '@azure/data-tables';
import { MemoryStateStore } from '../../shared/adapters/memoryStateStore';
import { TableStateStore } from '../../shared/adapters/tableStateStore';
import { type StateStore, stateKey } from '../../shared/core/state/store';
import {
    FaultyStateStore,
    type StateStoreOperation,
    type TableFaultKind,
    tableSdkError,
} from '../../shared/simulation/faultyStateStore';
import { stateStoresUnderTest } from '../support/stateStores';

// Azurite's published well-known development key (not a secret).
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const KEY = stateKey('kv-prod', 'fw|rule');

/** What a caller of the port can observe about a failure. */
interface Observed {
    result?: unknown;
    name?: string;
    code?: unknown;
    retryable?: unknown;
    message?: string | undefined;
    cause?: {
        name: string;
        statusCode: number | undefined;
        code: string | undefined;
        errorCode: unknown;
        odataCode: unknown;
    };
}

async function observe(call: Promise<unknown>): Promise<Observed> {
    try {
        return { result: await call };
    } catch (e) {
        const err = e as Error & { code?: unknown; retryable?: unknown };
        const cause = err.cause as
            (Error & { statusCode?: number; code?: string; details?: { errorCode?: unknown } }) | undefined;
        let odataCode: unknown;
        try {
            odataCode = (JSON.parse(cause?.message ?? '') as { 'odata.error'?: { code?: unknown } })['odata.error']
                ?.code;
        } catch {
            odataCode = undefined;
        }
        return {
            name: err.name,
            code: err.code,
            retryable: err.retryable,
            message: err.message.split(' failed: ')[0],
            ...(cause === undefined
                ? {}
                : {
                      cause: {
                          name: cause.name,
                          statusCode: cause.statusCode,
                          code: cause.code,
                          errorCode: cause.details?.errorCode,
                          odataCode,
                      },
                  }),
        };
    }
}

const calls: [StateStoreOperation, (s: StateStore) => Promise<unknown>][] = [
    ['getMany', (s) => s.getMany([KEY])],
    ['put', (s) => s.put(KEY, { n: 1 }, undefined, 0)],
    ['scan', (s) => s.scan('fw|', 10)],
];

describe('FaultyStateStore mirrors what TableStateStore surfaces for real Table Storage failures', () => {
    /** A Table endpoint that answers every entity request with one failure (table creation succeeds). */
    let server: Server;
    let answer: { status: number; code: string } | 'reset';

    beforeAll(async () => {
        server = createServer((req, res) => {
            req.resume();
            req.on('end', () => {
                if (req.method === 'POST' && /\/Tables$/.test(req.url ?? '')) {
                    res.writeHead(409, { 'content-type': 'application/json', 'x-ms-error-code': 'TableAlreadyExists' });
                    return void res.end(
                        JSON.stringify({ 'odata.error': { code: 'TableAlreadyExists', message: { value: 'exists' } } }),
                    );
                }
                if (answer === 'reset') return void req.socket.destroy();
                res.writeHead(answer.status, {
                    'content-type': 'application/json;odata=minimalmetadata;streaming=true;charset=utf-8',
                    'x-ms-error-code': answer.code,
                });
                res.end(
                    JSON.stringify({
                        'odata.error': { code: answer.code, message: { lang: 'en-US', value: 'from the endpoint' } },
                    }),
                );
            });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    afterAll(async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    function realStore(): TableStateStore {
        const port = (server.address() as AddressInfo).port;
        const connection = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${DEV_KEY};TableEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`;
        return new TableStateStore(
            TableClient.fromConnectionString(connection, 'kvrstate', {
                allowInsecureConnection: true,
                retryOptions: { maxRetries: 0 },
            }),
        );
    }

    it.each<[TableFaultKind, { status: number; code: string } | 'reset']>([
        ['server-busy', { status: 503, code: 'ServerBusy' }],
        ['internal-error', { status: 500, code: 'InternalError' }],
        ['operation-timed-out', { status: 500, code: 'OperationTimedOut' }],
        ['conflict', { status: 409, code: 'EntityAlreadyExists' }],
        ['precondition-failed', { status: 412, code: 'UpdateConditionNotSatisfied' }],
        ['connection-reset', 'reset'],
    ])('%s: same outcome through the port for getMany, put and scan', async (kind, endpointAnswer) => {
        answer = endpointAnswer;
        for (const [op, call] of calls) {
            const real = await observe(call(realStore()));
            const faulty = new FaultyStateStore(new MemoryStateStore());
            faulty.inject({ kind, ops: [op] });
            const injected = await observe(call(faulty));
            expect({ op, ...injected }).toEqual({ op, ...real });
            expect(faulty.injected).toEqual([expect.objectContaining({ op, kind })]);
        }
    });

    it('put conflicts are a compare-and-set miss ({ ok: false }), not an error, as in the adapter', async () => {
        for (const kind of ['conflict', 'precondition-failed'] as const) {
            const faulty = new FaultyStateStore(new MemoryStateStore());
            faulty.inject({ kind });
            await expect(faulty.put(KEY, 1, undefined, 0)).resolves.toEqual({ ok: false });
        }
    });

    it('the SDK-level errors have the shape @azure/data-tables gives them', () => {
        const busy = tableSdkError('server-busy') as Error & { statusCode?: number; code?: string; details?: unknown };
        expect(busy).toMatchObject({ name: 'RestError', statusCode: 503 });
        expect(busy.code).toBeUndefined();
        expect(busy.details).toMatchObject({ errorCode: 'ServerBusy', odataError: { code: 'ServerBusy' } });
        expect(tableSdkError('connection-reset')).toMatchObject({ name: 'RestError', code: 'ECONNRESET' });
        expect(tableSdkError('timeout').name).toBe('AbortError');
    });
});

const inners = stateStoresUnderTest('kvrfaulty');

describe.each(inners)('FaultyStateStore over %s', (_name, make) => {
    it('passes every call through when no fault is pending', async () => {
        const store = new FaultyStateStore(make());
        const created = await store.put(KEY, { n: 1 }, undefined, 0);
        expect(created.ok).toBe(true);
        const [read] = await store.getMany([KEY]);
        expect(read?.value).toEqual({ n: 1 });
        expect((await store.scan('fw|', 10)).map((e) => e.value)).toEqual([{ n: 1 }]);
        expect(store.injected).toEqual([]);
    });

    it('fails only the operations and keys it matches, the given number of times', async () => {
        const store = new FaultyStateStore(make());
        await store.put(stateKey('kv-prod', 'lease|x'), 1, undefined, 0);
        store.inject({ kind: 'server-busy', ops: ['put'], key: /^kv-prod\/incident\|/, times: 2 });
        // Other keys and other operations are untouched.
        await expect(store.put(stateKey('kv-prod', 'lease|y'), 1, undefined, 0)).resolves.toMatchObject({ ok: true });
        await expect(store.getMany([stateKey('kv-prod', 'incident|1')])).resolves.toEqual([undefined]);
        for (let i = 0; i < 2; i++) {
            await expect(store.put(stateKey('kv-prod', 'incident|1'), 1, undefined, 0)).rejects.toMatchObject({
                code: 'STATE.UNAVAILABLE',
                retryable: true,
            });
        }
        expect(store.pendingFaults()).toBe(0);
        await expect(store.put(stateKey('kv-prod', 'incident|1'), 1, undefined, 0)).resolves.toMatchObject({
            ok: true,
        });
        expect(store.injected.map((f) => [f.op, f.kind, f.target, f.applied])).toEqual([
            ['put', 'server-busy', 'kv-prod/incident|1', false],
            ['put', 'server-busy', 'kv-prod/incident|1', false],
        ]);
    });

    it('a put that was applied before the failure: the caller sees the error, the entity is there', async () => {
        const store = new FaultyStateStore(make());
        store.inject({ kind: 'connection-reset', ops: ['put'], applied: true });
        await expect(store.put(KEY, { n: 7 }, undefined, 0)).rejects.toMatchObject({
            code: 'STATE.UNAVAILABLE',
            cause: { code: 'ECONNRESET' },
        });
        expect(store.injected).toEqual([
            { op: 'put', kind: 'connection-reset', target: 'kv-prod/fw|rule', applied: true },
        ]);
        const [read] = await store.inner.getMany([KEY]);
        expect(read?.value).toEqual({ n: 7 });
        // A blind retry of the same create now meets the entity it wrote itself: a compare-and-set miss.
        await expect(store.put(KEY, { n: 7 }, undefined, 0)).resolves.toEqual({ ok: false });
    });

    it('a getMany fails when any key of the batch matches; scans match on the row prefix', async () => {
        const store = new FaultyStateStore(make());
        store.inject({ kind: 'timeout', ops: ['getMany'], key: 'principal|' });
        await expect(store.getMany([KEY])).resolves.toEqual([undefined]);
        await expect(store.getMany([KEY, stateKey('p1', 'principal|a')])).rejects.toMatchObject({
            code: 'STATE.UNAVAILABLE',
            cause: { name: 'AbortError' },
        });
        store.inject({ kind: 'internal-error', ops: ['scan'], key: 'inventory|' });
        await expect(store.scan('fw|', 5)).resolves.toEqual([]);
        await expect(store.scan('inventory|', 5)).rejects.toMatchObject({
            message: /^state store scanning inventory\|\*/,
        });
    });
});
