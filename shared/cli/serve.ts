// `kvr serve`: the app's HTTP functions and a local ingest endpoint on one local HTTP server, with the same handlers
// the Functions host runs.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { MemoryStateStore } from '../adapters/memoryStateStore';
import type { OutboxDirectory } from '../adapters/outboxDirectory';
import { createResponder, type Responder } from '../app/createPipeline';
import { handleAuditBatch } from '../app/handlers/handleAuditBatch';
import { handleCmkReport } from '../app/handlers/handleCmkReport';
import { handleIncidentLink } from '../app/handlers/handleIncidentLink';
import { replay } from '../app/replay';
import type { Incident } from '../core/alerts/incident';
import { plain } from '../core/alerts/render';
import type { OutgoingNotification } from '../core/alerts/types';
import type { QuarantineSink } from '../core/ports';
import type { StateStore } from '../core/state/store';
import { type Simulation, startSimulation } from '../simulation/simulation';
import { type CliIo, loadConfigFile, parseCommandArgs, readJsonFile, tableStateOption, UsageError } from './common';
import { DEFAULT_SIGNING_KEY, errorsOnly, localAlerting } from './localAlerting';
import { closingSummary, incidentLines, type ListedIncident } from './summary';

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

/**
 * `kvr replay --outbox`: one line per written Teams card (its headline and file; the signed links are in the card and
 * the email, too long for a terminal). The card's zero-width spaces (they keep Teams from linking addresses) are taken
 * out, so `grep user@domain` works on the output.
 */
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
        const headline = (card?.fallbackText ?? n.incidentId).replace(/\u200b/g, '');
        lines.push(`  ${n.kind === 'opened' ? 'ALERT' : n.kind.toUpperCase()} ${plain(headline, 160)}`);
        lines.push(`    card: ${w.path}`);
    }
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/**
 * Short local links (`/i/<n>` and `/i/<n>/undo`) for the terminal: each redirects to the signed link it stands for, so
 * the signed token stays the authority. Served by `kvr serve` to local clients only (the numbers are guessable).
 */
export class ShortLinks {
    private readonly byIncident = new Map<string, number>();
    private readonly targets = new Map<string, string>();

    constructor(private readonly base: string) {}

    /** The short link for `target` (a signed link of incident `incidentId`), `suffix` '' for the page or '/undo'. */
    add(incidentId: string, suffix: '' | '/undo', target: string): string {
        let n = this.byIncident.get(incidentId);
        if (n === undefined) {
            n = this.byIncident.size + 1;
            this.byIncident.set(incidentId, n);
        }
        const path = `/i/${n}${suffix}`;
        if (!this.targets.has(path)) this.targets.set(path, target);
        return `${this.base}${path}`;
    }

    /** The signed link a short path stands for. */
    resolve(path: string): string | undefined {
        return this.targets.get(path.replace(/\/+$/, ''));
    }
}

/** The buttons of a written Teams card: title to URL. */
function cardLinks(n: OutgoingNotification): Map<string, string> {
    if (n.channel !== 'teams') return new Map();
    const content = n.teams.attachments[0]?.content as { actions?: { title?: string; url?: string }[] } | undefined;
    return new Map(
        (content?.actions ?? []).flatMap((a) =>
            typeof a.title === 'string' && typeof a.url === 'string' ? [[a.title, a.url] as const] : [],
        ),
    );
}

/** The incidents of newly written notifications, one entry per incident and kind, with their short links. */
export async function listedIncidents(
    written: readonly { readonly notification: OutgoingNotification }[],
    get: (id: string) => Promise<Incident | undefined>,
    links: ShortLinks,
): Promise<ListedIncident[]> {
    const out: ListedIncident[] = [];
    const seen = new Set<string>();
    for (const { notification: n } of written) {
        if (n.channel !== 'teams' || seen.has(`${n.incidentId}|${n.kind}`)) continue;
        seen.add(`${n.incidentId}|${n.kind}`);
        const inc = await get(n.incidentId);
        if (inc === undefined) continue;
        const buttons = cardLinks(n);
        const page =
            buttons.get('Acknowledge') ?? buttons.get('Undo remediation') ?? buttons.get('Re-enable key version');
        const undo = buttons.get('Undo remediation');
        out.push({
            incident: inc,
            kind: n.kind,
            link: page === undefined ? undefined : links.add(inc.id, '', page),
            undoLink: undo === undefined ? undefined : links.add(inc.id, '/undo', undo),
        });
    }
    return out;
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
    const store: StateStore = (await tableStateOption(values.state, values['state-table'])) ?? new MemoryStateStore();
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
                    : {
                          admin: simulation.admin,
                          access: simulation.access,
                          beforeDetection: (events) => simulation.applyRecorded(events),
                      }),
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
        const shortLinks = new ShortLinks(publicUrl);
        let printed = 0;
        /** Lists the incidents of the notifications written since the last call; returns them. */
        const listNew = async (): Promise<ListedIncident[]> => {
            if (local.outbox === undefined) return [];
            const written = local.outbox.written.slice(printed);
            printed = local.outbox.written.length;
            const listed = await listedIncidents(written, (id) => alerting.get(id), shortLinks);
            if (listed.length > 0) io.stdout.write(`${incidentLines(listed).join('\n')}\n`);
            return listed;
        };
        const printNew = (): void => {
            listNew().catch((err: unknown) =>
                io.stderr.write(`kvr serve: listing failed: ${err instanceof Error ? err.message : String(err)}\n`),
            );
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
                const short = /^\/i\/\d+(\/undo)?\/?$/.test(url.pathname)
                    ? shortLinks.resolve(url.pathname)
                    : undefined;
                if (short !== undefined || url.pathname.startsWith('/i/')) {
                    if (!isLoopback(req.socket.remoteAddress))
                        return send(res, 403, 'text/plain', 'short links are for local clients only\n');
                    if (short === undefined) return send(res, 404, 'text/plain', 'no such short link\n');
                    res.writeHead(302, {
                        Location: short,
                        'Cache-Control': 'no-store',
                        'Referrer-Policy': 'no-referrer',
                    });
                    res.end();
                    return undefined;
                }
                if (url.pathname === '/api/cmk/report') {
                    // The app's cmkReport function (function key in Azure): here, for local clients only.
                    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'GET the report\n');
                    if (!isLoopback(req.socket.remoteAddress))
                        return send(res, 403, 'text/plain', '/api/cmk/report is for local clients only\n');
                    const request = new HttpRequest({
                        method: 'GET',
                        url: url.toString(),
                        query: Object.fromEntries(url.searchParams),
                    });
                    const r = await handleCmkReport(request, context, { store, settings: config.cmk, alerting });
                    const headers = { ...(r.headers as Record<string, string>) };
                    if (r.jsonBody !== undefined) headers['Content-Type'] = 'application/json';
                    res.writeHead(r.status ?? 200, headers);
                    res.end(
                        r.jsonBody !== undefined
                            ? `${JSON.stringify(r.jsonBody)}\n`
                            : typeof r.body === 'string'
                              ? r.body
                              : '',
                    );
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
            io.stdout.write(
                `kvr serve: replayed ${values.replay.join(', ')}; open a link to see an incident, acknowledge it or undo its remediation:\n`,
            );
            const listed = await listNew();
            io.stdout.write(
                closingSummary(
                    {
                        records: result.stats.records,
                        findings: result.stats.findings,
                        incidents: listed.filter((l) => l.kind === 'opened').map((l) => l.incident),
                        minSeverity: config.alerting.minSeverity,
                    },
                    publicUrl,
                ),
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
