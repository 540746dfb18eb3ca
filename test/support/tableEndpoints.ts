/**
 * Table endpoints that fail on purpose, for the deadline and retry tests of the Table adapters: one that accepts
 * connections and never answers, one that answers every request with 503 ServerBusy (the service's throttling answer).
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';

export interface FailingEndpoint {
    readonly port: number;
    /** Requests (HTTP) or connections (TCP) received so far. */
    requests(): number;
    close(): Promise<void>;
}

/** A TCP server that accepts connections and never answers. */
export async function hangingEndpoint(): Promise<FailingEndpoint> {
    const sockets: Socket[] = [];
    const server = createTcpServer((s) => {
        s.on('error', () => undefined);
        sockets.push(s);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
        port: (server.address() as { port: number }).port,
        requests: () => sockets.length,
        close: () =>
            new Promise<void>((resolve) => {
                for (const s of sockets) s.destroy();
                server.close(() => resolve());
            }),
    };
}

/** An HTTP server that answers every request 503 ServerBusy, with the service's OData error body. */
export async function busyEndpoint(): Promise<FailingEndpoint> {
    let requests = 0;
    const server = createHttpServer((_req, res) => {
        requests++;
        res.writeHead(503, { 'content-type': 'application/json', 'x-ms-error-code': 'ServerBusy' });
        res.end(JSON.stringify({ 'odata.error': { code: 'ServerBusy', message: { value: 'busy' } } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
        port: (server.address() as { port: number }).port,
        requests: () => requests,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
}

/** An Azurite connection string with its Table endpoint moved to `port` on this machine. */
export function tableConnectionStringAt(connectionString: string, port: number): string {
    return connectionString.replace(/TableEndpoint=http:\/\/[\d.]+:\d+/, `TableEndpoint=http://127.0.0.1:${port}`);
}
