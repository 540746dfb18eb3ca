// Smoke test of the browser path end to end: Debian's Chromium, driven by playwright-core, loads a page with a form
// from a local HTTP server, submits it with a click, and the server sees exactly that one POST.
import { once } from 'node:events';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeWithBrowser } from './support/browser';

interface Received {
    readonly method: string;
    readonly path: string;
    readonly body: string;
}

const FORM_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Incident INC-42</title></head>
<body>
<h1>Incident INC-42</h1>
<form method="POST" action="/ack">
<input type="hidden" name="incident" value="INC-42">
<button type="submit">Acknowledge</button>
</form>
</body>
</html>`;

const ACK_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Acknowledged</title></head>
<body><p id="result">Incident INC-42 acknowledged</p></body>
</html>`;

/** A loopback server with the form at / and its target at POST /ack; it records every request it answers. */
async function startServer(): Promise<{ server: Server; url: string; received: Received[]; posted: Promise<void> }> {
    const received: Received[] = [];
    let onPost = (): void => undefined;
    const posted = new Promise<void>((resolve) => (onPost = resolve));
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => {
            const path = req.url ?? '';
            received.push({ method: req.method ?? '', path, body });
            const html = { 'Content-Type': 'text/html; charset=utf-8' };
            if (req.method === 'GET' && path === '/') {
                res.writeHead(200, html).end(FORM_PAGE);
            } else if (req.method === 'POST' && path === '/ack') {
                res.writeHead(200, html).end(ACK_PAGE);
                onPost();
            } else {
                res.writeHead(404).end();
            }
        });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    return { server, url: `http://127.0.0.1:${port}/`, received, posted };
}

describeWithBrowser('browser support (headless Chromium via playwright-core)', (browser) => {
    let server: Server | undefined;

    afterAll(async () => {
        if (server === undefined) return;
        server.closeAllConnections();
        await new Promise<void>((resolve) => server?.close(() => resolve()));
    });

    test('loads a page, submits its form with a click, and the server receives exactly that POST', async () => {
        const started = await startServer();
        server = started.server;
        const { url, received, posted } = started;
        const page = await browser().newPage();
        try {
            await page.goto(url);
            await page.getByRole('heading', { name: 'Incident INC-42' }).waitFor();
            const posts = (): Received[] => received.filter((r) => r.method === 'POST');
            expect(received.some((r) => r.method === 'GET' && r.path === '/')).toBe(true);
            expect(posts()).toEqual([]); // loading the page did not count as the acknowledgement

            await page.getByRole('button', { name: 'Acknowledge' }).click();
            await posted;
            await page.locator('#result').waitFor();

            expect(await page.locator('#result').textContent()).toBe('Incident INC-42 acknowledged');
            expect(await page.title()).toBe('Acknowledged');
            expect(posts()).toEqual([{ method: 'POST', path: '/ack', body: 'incident=INC-42' }]);
        } finally {
            await page.close();
        }
    });
});
