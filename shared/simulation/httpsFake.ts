// The HTTPS listener every local fake shares: the test CA's server certificate, 127.0.0.1 on a free port, the body
// read whole before the handler runs, and a handler failure answered as a 500 (or a dropped connection).
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getTestCa } from './selfSignedCa';

export async function listenHttps(
    handler: (req: IncomingMessage, res: ServerResponse, rawBody: Buffer) => Promise<void>,
): Promise<{ server: Server; port: number; caPem: string }> {
    const { caPem, certPem, keyPem } = await getTestCa();
    const server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
            handler(req, res, Buffer.concat(chunks)).catch((e: unknown) => {
                if (res.headersSent || res.destroyed || req.socket.destroyed) return void res.destroy();
                res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
                res.end(JSON.stringify({ error: { code: 'FakeFailure', message: String(e) } }));
            });
        });
    });
    await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
        });
    });
    return { server, port: (server.address() as AddressInfo).port, caPem };
}
