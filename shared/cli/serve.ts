// `kvr serve`: the app's HTTP functions and a local ingest endpoint on one local HTTP server, with the same handlers
// the Functions host runs.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { MemoryStateStore } from '../adapters/memoryStateStore';
import type { OutboxDirectory } from '../adapters/outboxDirectory';
import { createResponder, type Responder } from '../app/createPipeline';
import { handleAuditBatch } from '../app/handlers/handleAuditBatch';
import { handleIncidentLink } from '../app/handlers/handleIncidentLink';
import { replay } from '../app/replay';
import type { QuarantineSink } from '../core/ports';
import type { StateStore } from '../core/state/store';
import { type Simulation, startSimulation } from '../simulation/simulation';
import { type CliIo, loadConfigFile, parseCommandArgs, readJsonFile, tableStateOption, UsageError } from './common';
import { ackLinkOf, DEFAULT_SIGNING_KEY, errorsOnly, localAlerting } from './localAlerting';

const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** A public URL people can open: http(s), no query or fragment. */
export function checkedPublicUrl(value: string): string {
    let u: URL;
    try {
        u = new URL(value);
    } catch {
        throw new UsageError(`--public-url: '${value}' is not a URL`);
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.search !== '' || u.hash !== '')
        throw new UsageError(`--public-url: '${value}' must be an http(s) URL without query or fragment`);
    return u.toString().replace(/\/+$/, '');
}

/** One line per written notification, and for cards where the acknowledge link is. */
export function outboxSummary(outbox: OutboxDirectory, from = 0): string {
    const lines: string[] = [];
    const written = outbox.written.slice(from);
    const incidents = new Set(written.map((w) => w.notification.incidentId));
    if (from === 0)
        lines.push(`outbox: ${written.length} notification(s) for ${incidents.size} incident(s) in ${outbox.dir}`);
    for (const w of written) {
        const n = w.notification;
        if (n.channel !== 'teams') continue;
        const card = n.teams.attachments[0]?.content as { fallbackText?: string } | undefined;
        lines.push(`  ${n.kind === 'opened' ? 'ALERT' : n.kind.toUpperCase()} ${card?.fallbackText ?? n.incidentId}`);
        const ack = ackLinkOf(n.teams);
        if (ack !== undefined) lines.push(`    acknowledge: ${ack}`);
        lines.push(`    card: ${w.path}`);
    }
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

function parseServeArgs(args: readonly string[]) {
    return parseCommandArgs(
        args,
        {
            port: { type: 'string' },
            host: { type: 'string' },
            'public-url': { type: 'string' },
            outbox: { type: 'string' },
            config: { type: 'string' },
            vaults: { type: 'string' },
            state: { type: 'string' },
            'state-table': { type: 'string' },
            'signing-key': { type: 'string' },
            replay: { type: 'string', multiple: true },
            'tick-seconds': { type: 'string' },
            // Links act on their token alone (no sign-in): an explicit, local-only opt-in (docs/undo.md).
            'possession-only-links': { type: 'boolean' },
        },
        false,
    ).values;
}

function intOption(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
        throw new UsageError(`--${name}: expected an integer ${min}-${max}`);
    return n;
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > MAX_BODY_BYTES) return undefined;
        chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
}

function isLoopback(address: string | undefined): boolean {
    return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

export interface ServeHooks {
    /** Stops the server (tests); SIGINT and SIGTERM stop it too. */
    readonly signal?: AbortSignal;
    readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Runs until interrupted; returns the exit status. */
export async function runServe(args: readonly string[], io: CliIo, hooks: ServeHooks = {}): Promise<number> {
    const values = parseServeArgs(args);
    const port = intOption(values.port, 'port', 7071, 0, 65535);
    const tickSeconds = intOption(values['tick-seconds'], 'tick-seconds', 30, 1, 3600);
    const host = values.host ?? '127.0.0.1';
    const store: StateStore = tableStateOption(values.state, values['state-table']) ?? new MemoryStateStore();
    const inventory = values.vaults === undefined ? undefined : await readJsonFile(values.vaults, 'vault inventory');
    const simulation: Simulation | undefined =
        inventory === undefined ? undefined : await startSimulation(inventory, values.vaults as string);
    const server = createServer();
    let timer: NodeJS.Timeout | undefined;
    try {
        const config = await loadConfigFile(values.config, simulation?.tags);
        await new Promise<void>((resolve, reject) => {
            server.once('error', (err) => reject(new UsageError(`cannot listen on ${host}:${port}: ${err.message}`)));
            server.listen(port, host, () => resolve());
        });
        const actualPort = (server.address() as AddressInfo).port;
        const linkHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
        const publicUrl = checkedPublicUrl(values['public-url'] ?? `http://${linkHost}:${actualPort}`);
        const local = await localAlerting({
            config,
            outbox: values.outbox,
            publicUrl,
            signingKeyPath: values['signing-key'] ?? DEFAULT_SIGNING_KEY,
            env: hooks.env ?? process.env,
            log: errorsOnly(io.stderr),
        });
        const quarantine: QuarantineSink = { put: () => Promise.resolve() };
        const responder: Responder = createResponder(
            config,
            { decisions: { write: () => Promise.resolve() }, quarantine },
            {
                acceptBareRecords: true,
                store,
                alerting: local.options,
                ...(simulation === undefined
                    ? {}
                    : { admin: simulation.admin, beforeDetection: (events) => simulation.applyRecorded(events) }),
            },
        );
        const alerting = responder.alerting;
        if (alerting === undefined) throw new Error('serve: alerting was not composed');
        const possessionOnlyLinks = values['possession-only-links'] === true;
        // One write: whoever waits for the "listening" line also gets the line that says what links may do.
        io.stdout.write(
            `kvr serve: listening on http://${host}:${actualPort} (links point to ${publicUrl})\n` +
                (possessionOnlyLinks
                    ? 'kvr serve: possession-only links: whoever holds a link can acknowledge and undo (local use only)\n'
                    : 'kvr serve: links show incidents but act on nothing (pass --possession-only-links to let them act)\n'),
        );
        io.stdout.write(`kvr serve: notifications go to ${local.destinations.join(' and ')}\n`);
        let printed = 0;
        const printNew = (): void => {
            if (local.outbox === undefined) return;
            const text = outboxSummary(local.outbox, printed);
            printed = local.outbox.written.length;
            if (text !== '') io.stdout.write(text);
        };

        server.on('request', (req: IncomingMessage, res: ServerResponse) => {
            void (async () => {
                const url = new URL(req.url ?? '/', `http://localhost:${actualPort}`);
                const m = /^\/api\/incidents\/([^/]+)\/([^/]+)$/.exec(url.pathname);
                const context = new InvocationContext({
                    functionName: m === null ? 'local' : 'incidentLink',
                    logHandler: (level, ...a) => io.stderr.write(`${level}: ${a.map(String).join(' ')}\n`),
                });
                if (m !== null) {
                    const body = await readBody(req);
                    if (body === undefined) return send(res, 413, 'text/plain', 'request body too large\n');
                    const headers: Record<string, string> = {};
                    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
                    // The platform front end sets X-Forwarded-For in Azure; locally the socket is the client.
                    headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
                    const request = new HttpRequest({
                        method: req.method ?? 'GET',
                        url: url.toString(),
                        headers,
                        query: Object.fromEntries(url.searchParams),
                        params: { id: decodeURIComponent(m[1] as string), action: m[2] as string },
                        body: { bytes: body },
                    });
                    const r = await handleIncidentLink(request, context, {
                        alerting,
                        trustEasyAuth: false,
                        possessionOnlyLinks,
                        publicUrl,
                    });
                    res.writeHead(r.status ?? 200, r.headers as Record<string, string>);
                    res.end(typeof r.body === 'string' ? r.body : '');
                    printNew();
                    return undefined;
                }
                if (url.pathname === '/local/events') {
                    if (req.method !== 'POST') return send(res, 405, 'text/plain', 'POST an Event Hubs body\n');
                    if (!isLoopback(req.socket.remoteAddress))
                        return send(res, 403, 'text/plain', '/local/events is for local clients only\n');
                    const body = await readBody(req);
                    if (body === undefined) return send(res, 413, 'text/plain', 'request body too large\n');
                    const before = local.outbox?.written.length ?? 0;
                    const result = await handleAuditBatch([body.toString('utf8')], context, {
                        pipeline: responder.pipeline,
                    });
                    printNew();
                    const notifications = local.outbox?.written.slice(before).map((w) => w.path) ?? [];
                    return send(
                        res,
                        200,
                        'application/json',
                        `${JSON.stringify({ ...result.summary, notifications })}\n`,
                    );
                }
                return send(res, 404, 'text/plain', 'not found\n');
            })().catch((err: unknown) => {
                io.stderr.write(`kvr serve: request failed: ${err instanceof Error ? err.message : String(err)}\n`);
                if (!res.headersSent) send(res, 500, 'text/plain', 'internal error (see the server log)\n');
                else res.destroy();
            });
        });

        if (values.replay !== undefined && values.replay.length > 0) {
            const result = await replay({
                inputs: values.replay,
                config,
                responder,
                sinks: { decisions: { write: () => Promise.resolve() }, quarantine },
            });
            printNew();
            io.stdout.write(
                `kvr serve: replayed ${result.stats.records} record(s): ${result.stats.findings} finding(s)\n`,
            );
        }
        timer = setInterval(() => {
            alerting
                .tick()
                .then(printNew, (err: unknown) =>
                    io.stderr.write(
                        `kvr serve: escalation tick failed: ${err instanceof Error ? err.message : String(err)}\n`,
                    ),
                );
        }, tickSeconds * 1000);
        io.stdout.write('kvr serve: serving until interrupted (Ctrl-C)\n');
        await new Promise<void>((resolve) => {
            const stop = (): void => {
                process.off('SIGINT', stop);
                process.off('SIGTERM', stop);
                resolve();
            };
            if (hooks.signal?.aborted === true) stop();
            hooks.signal?.addEventListener('abort', stop, { once: true });
            process.once('SIGINT', stop);
            process.once('SIGTERM', stop);
        });
        return 0;
    } finally {
        if (timer !== undefined) clearInterval(timer);
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await simulation?.close();
    }
}

function send(res: ServerResponse, status: number, type: string, body: string): undefined {
    res.writeHead(status, { 'Content-Type': `${type}; charset=utf-8`, 'Cache-Control': 'no-store' });
    res.end(body);
    return undefined;
}
