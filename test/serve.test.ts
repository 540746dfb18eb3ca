// The local runtime end to end: `kvr replay --outbox` writes one card and one email per incident with working links,
// and `kvr serve` (the built binary) ingests a body, writes the notices, and acknowledges through the page in a real
// browser.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type AzuriteService, startAzurite } from './support/azurite';
import { validateTeamsWebhookMessage } from './support/adaptiveCard';
import { describeWithBrowser } from './support/browser';
import { REPO, runKvr } from './support/cli';
import { FIXTURES, fixtureText } from './support/fixtures';

const CONFIG = {
    alerting: {
        rosters: {
            default: {
                tiers: [
                    { name: 'primary', email: ['oncall@contoso.example'] },
                    { name: 'lead', email: ['lead@contoso.example'] },
                ],
            },
        },
    },
};

interface Outbox {
    readonly teams: Map<string, Record<string, unknown>>;
    readonly email: Map<string, { body: string; readable: { to: string[]; subject: string; text: string } }>;
}

function readOutbox(dir: string): Outbox {
    const teams = new Map<string, Record<string, unknown>>();
    const email = new Map<string, { body: string; readable: { to: string[]; subject: string; text: string } }>();
    for (const f of readdirSync(dir)) {
        const incident = f.split('.')[0] as string;
        const content = JSON.parse(readFileSync(join(dir, f), 'utf8'));
        if (f.endsWith('-teams.json')) {
            expect(teams.has(incident)).toBe(false);
            teams.set(incident, content);
        } else if (f.endsWith('-email.json')) {
            expect(email.has(incident)).toBe(false);
            email.set(incident, content);
        } else throw new Error(`unexpected outbox file ${f}`);
    }
    return { teams, email };
}

function buttonUrl(card: Record<string, unknown>, title: string): string | undefined {
    const content = (card.attachments as { content: { actions: { title: string; url: string }[] } }[])[0]?.content;
    return content?.actions.find((a) => a.title === title)?.url;
}

function tokenOf(url: string): string {
    return new URL(url).searchParams.get('t') ?? '';
}

interface Served {
    readonly child: ChildProcess;
    readonly base: string;
    readonly lines: string[];
    stop(): Promise<number | null>;
}

/** Starts the built `kvr serve` and waits for the line with its port. */
async function serve(args: readonly string[]): Promise<Served> {
    const child = spawn(process.execPath, [join(REPO, 'dist/shared/cli/kvr.js'), 'serve', '--port', '0', ...args], {
        cwd: REPO,
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const base = await new Promise<string>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
        rl.on('line', (line) => {
            lines.push(line);
            const m = /listening on (http:\/\/[^ ]+)/.exec(line);
            if (m !== null) resolve(m[1] as string);
        });
        child.once('exit', (code) => reject(new Error(`kvr serve exited (${String(code)}): ${stderr}`)));
    });
    return {
        child,
        base,
        lines,
        stop: () =>
            new Promise((resolve) => {
                child.once('exit', (code) => resolve(code));
                child.kill('SIGTERM');
            }),
    };
}

let work: string;

/**
 * A server with the test config, its own outbox and development key in the work directory; links act on their token
 * alone (the local opt-in) unless `possessionOnly` is false.
 */
function serveLocal(possessionOnly = true): Promise<Served> {
    return serve([
        '--config',
        join(work, 'config.json'),
        '--outbox',
        join(work, 'outbox'),
        '--signing-key',
        join(work, 'k.pem'),
        ...(possessionOnly ? ['--possession-only-links'] : []),
    ]);
}

/** POSTs the confirmation form of a link, as the page would (from `origin`). */
function confirm(link: string, origin = new URL(link).origin): Promise<Response> {
    return fetch(link, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: origin },
        body: new URLSearchParams({ t: tokenOf(link) }).toString(),
    });
}
beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'kvr-serve-'));
    writeFileSync(join(work, 'config.json'), JSON.stringify(CONFIG));
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

describe('kvr replay --outbox', () => {
    it('writes one Teams card and one email per incident, not per record, with signed links to the server', async () => {
        const outbox = join(work, 'outbox');
        const r = await runKvr(
            'replay',
            FIXTURES,
            '--config',
            join(work, 'config.json'),
            '--outbox',
            outbox,
            '--signing-key',
            join(work, 'key.pem'),
            '--public-url',
            'https://kvr.example.net',
            '--decisions',
            join(work, 'decisions.jsonl'),
        );
        // 3: processed with problems (the malformed fixtures are rejected).
        expect(r.code).toBe(3);
        const findings = readFileSync(join(work, 'decisions.jsonl'), 'utf8')
            .split('\n')
            .filter((l) => l.includes('"type":"finding"'));
        const { teams, email } = readOutbox(outbox);
        expect(teams.size).toBeGreaterThan(3);
        expect([...email.keys()].sort()).toEqual([...teams.keys()].sort());
        // Grouped: never more incidents than findings; the summary counts what was written.
        expect(teams.size).toBeLessThanOrEqual(findings.length);
        expect(r.stderr).toContain(`outbox: ${teams.size * 2} notification(s) for ${teams.size} incident(s)`);
        // One short line per card; no zero-width space in terminal output (grep user@domain finds the caller).
        expect(r.stderr).toMatch(/ALERT [A-Z]+ · [a-z-]+ · [a-z0-9-]+: .*@contoso\.example/);
        expect(r.stderr).not.toMatch(/[\u200b]|acknowledge: /);
        for (const [incident, card] of teams) {
            expect(validateTeamsWebhookMessage(card)).toEqual([]);
            const ack = buttonUrl(card, 'Acknowledge') as string;
            expect(ack.startsWith(`https://kvr.example.net/api/incidents/${incident}/ack?t=`)).toBe(true);
            expect(tokenOf(ack).split('.')).toHaveLength(3);
            const mail = email.get(incident);
            expect(mail?.readable.to).toEqual(['oncall@contoso.example']);
            const mime = Buffer.from(mail?.body ?? '', 'base64').toString('ascii');
            expect(mime).toMatch(/Content-Type: multipart\/alternative/);
            expect(mime).toContain('To: oncall@contoso.example');
            expect(mail?.readable.text).toContain(`https://kvr.example.net/api/incidents/${incident}/ack?t=`);
        }
    });

    it('needs --outbox for the link options', async () => {
        const r = await runKvr('replay', FIXTURES, '--public-url', 'https://x.example');
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('--public-url and --signing-key need --outbox');
    });
});

describe('links from a replay work on kvr serve (shared Table state and signing key)', () => {
    let azurite: AzuriteService;
    beforeAll(async () => {
        azurite = await startAzurite('table');
    });
    afterAll(async () => {
        await azurite.stop();
    });

    it('a replayed incident is acknowledged through the server, once', async () => {
        const key = join(work, 'key.pem');
        const table = `serve${Date.now().toString(36)}`;
        const outbox = join(work, 'outbox');
        const common = ['--config', join(work, 'config.json'), '--signing-key', key];
        const state = ['--state', azurite.connectionString, '--state-table', table];
        const server = await serve([
            ...common,
            ...state,
            '--outbox',
            join(work, 'serve-outbox'),
            '--possession-only-links',
        ]);
        try {
            const r = await runKvr(
                'replay',
                join(FIXTURES, 'vault-patch-firewall-allow.json'),
                ...common,
                ...state,
                '--outbox',
                outbox,
                '--public-url',
                server.base,
            );
            expect(r.code).toBe(0);
            const { teams } = readOutbox(outbox);
            expect(teams.size).toBe(1);
            const ack = buttonUrl([...teams.values()][0] as Record<string, unknown>, 'Acknowledge') as string;
            const page = await fetch(ack);
            expect(page.status).toBe(200);
            expect(await page.text()).toContain('<form method="post">');
            const posted = await confirm(ack);
            expect(posted.status).toBe(200);
            expect(await posted.text()).toMatch(/Acknowledged at \d{4}-/);
            const again = await confirm(ack);
            expect(again.status).toBe(409);
            expect(await again.text()).toContain('Already acknowledged');
        } finally {
            expect(await server.stop()).toBe(0);
        }
    });
});

describe('kvr serve', () => {
    it('refuses bad options with exit 2', async () => {
        const r = await runKvr('serve', '--port', 'x');
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('--port: expected an integer');
    });

    it('ingests a posted body on /local/events and refuses forged links', async () => {
        const server = await serveLocal();
        try {
            const res = await fetch(`${server.base}/local/events`, {
                method: 'POST',
                body: fixtureText('vault-patch-ip-rule-added.json'),
            });
            expect(res.status).toBe(200);
            const summary = (await res.json()) as { findings: number; notifications: string[] };
            expect(summary.findings).toBe(1);
            expect(summary.notifications).toHaveLength(2);
            const card = JSON.parse(
                readFileSync(summary.notifications.find((p) => p.endsWith('-teams.json')) as string, 'utf8'),
            );
            const ack = buttonUrl(card, 'Acknowledge') as string;
            expect(ack.startsWith(`${server.base}/api/incidents/`)).toBe(true);
            const [h, c, s] = tokenOf(ack).split('.') as [string, string, string];
            const forged = ack.replace(tokenOf(ack), `${h}.${c}.${s.slice(0, -4)}AAAA`);
            expect((await fetch(forged)).status).toBe(403);
            const otherIncident = ack.replace(/incidents\/[^/]+\//, 'incidents/0000000000000000abc/');
            expect((await fetch(otherIncident)).status).toBe(403);
            // The terminal lists the incident with a short local link to its page.
            expect(
                server.lines.some((l) => l.includes(`${server.base}/i/1 `) && l.includes('firewall-ip-rule-added')),
            ).toBe(true);
        } finally {
            expect(await server.stop()).toBe(0);
        }
    });
});

/** Waits until the server printed a line matching `re`. */
async function lineOf(server: Served, re: RegExp): Promise<string> {
    for (let i = 0; i < 600; i++) {
        const l = server.lines.find((x) => re.test(x));
        if (l !== undefined) return l;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no line matching ${re} in:\n${server.lines.join('\n')}`);
}

describe('the first screen of npm start (kvr serve --replay of the demo)', () => {
    it('lists one line per incident with a short local link, counts that add up, and what to do next', async () => {
        const server = await serve([
            '--replay',
            join(REPO, 'samples/sample-day.jsonl.gz'),
            '--config',
            join(REPO, 'samples/demo-config.json'),
            '--outbox',
            join(work, 'outbox'),
            '--signing-key',
            join(work, 'k.pem'),
            '--possession-only-links',
        ]);
        try {
            await lineOf(server, /serving until interrupted/);
            const out = server.lines;
            const incidents = out.filter((l) => l.startsWith(`  ${server.base}/i/`));
            const { teams } = readOutbox(join(work, 'outbox'));
            // One line per incident alerted on, and a bounded screen around it.
            expect(incidents).toHaveLength(teams.size);
            expect(teams.size).toBeGreaterThanOrEqual(20);
            expect(out.length).toBeLessThanOrEqual(incidents.length + 14);
            for (const l of out) expect(l.length).toBeLessThanOrEqual(240);
            // Nothing invisible: grep user@domain finds the caller.
            expect(out.join('\n')).not.toMatch(/[\u200b\u2060]/);
            expect(incidents.filter((l) => l.includes(' mallory@contoso.example ')).length).toBeGreaterThan(3);
            for (const l of incidents) expect(l).toMatch(/ (CRITICAL|HIGH|MEDIUM|LOW) +[a-z-]+ +kv-[a-z-]+ +\S/);
            // The counts add up: every finding is in a listed incident or below the alerting threshold.
            const head = /^Summary: (\d+) records replayed, (\d+) findings:$/.exec(await lineOf(server, /^Summary: /));
            const findings = Number(head?.[2]);
            const inListed = /^ {2}(\d+) findings? in the (\d+) incidents? listed above/.exec(
                await lineOf(server, /listed above/),
            );
            const below = /^ {2}(\d+) findings? below the alerting threshold/.exec(
                out.find((l) => l.includes('below the alerting threshold')) ?? '',
            );
            expect(Number(inListed?.[2])).toBe(incidents.length);
            expect(Number(inListed?.[1]) + Number(below?.[1] ?? 0)).toBe(findings);
            if (findings > incidents.length) expect(out.join('\n')).toMatch(/are one incident: .* has \d+/);
            expect(out.join('\n')).toMatch(
                /What next:\n.*open a link above.*\n.*replay your own logs: .*PT1H\.json.*\n.*deploy/,
            );
            // A short link redirects to the signed link of its incident, whose page names the incident.
            const first = incidents[0] as string;
            const short = /^ {2}(\S+)/.exec(first)?.[1] as string;
            const hop = await fetch(short, { redirect: 'manual' });
            expect(hop.status).toBe(302);
            const target = hop.headers.get('location') ?? '';
            expect(target).toMatch(
                new RegExp(`^${server.base}/api/incidents/[^/]+/ack\\?t=[\\w-]+\\.[\\w-]+\\.[\\w-]+$`),
            );
            const page = await fetch(short);
            expect(page.status).toBe(200);
            const rule = / (?:CRITICAL|HIGH|MEDIUM|LOW) +([a-z-]+) /.exec(first)?.[1] as string;
            expect(await page.text()).toContain(rule);
            expect((await fetch(`${server.base}/i/999`, { redirect: 'manual' })).status).toBe(404);
        } finally {
            expect(await server.stop()).toBe(0);
        }
    }, 120_000);
});

describe('kvr serve link actions: an explicit opt-in, from the page only', () => {
    async function ackLink(server: Served): Promise<string> {
        const res = await fetch(`${server.base}/local/events`, {
            method: 'POST',
            body: fixtureText('vault-patch-firewall-allow.json'),
        });
        const { notifications } = (await res.json()) as { notifications: string[] };
        const card = JSON.parse(readFileSync(notifications.find((p) => p.endsWith('-teams.json')) as string, 'utf8'));
        return buttonUrl(card, 'Acknowledge') as string;
    }

    it('without --possession-only-links the page shows the incident but the POST acts on nothing', async () => {
        const server = await serveLocal(false);
        try {
            await lineOf(server, /pass --possession-only-links/);
            const ack = await ackLink(server);
            const page = await fetch(ack);
            expect(page.status).toBe(200);
            const html = await page.text();
            expect(html).not.toContain('<form');
            expect(html).toContain('KVR_ALLOW_POSSESSION_ONLY_LINKS');
            const posted = await confirm(ack);
            expect(posted.status).toBe(403);
            // Still unacknowledged: opening the link again shows no "Already acknowledged".
            expect(await (await fetch(ack)).text()).not.toContain('Already acknowledged');
        } finally {
            expect(await server.stop()).toBe(0);
        }
    });

    it('with --possession-only-links, a POST from another origin is refused (403) and one from the page acts', async () => {
        const server = await serveLocal();
        try {
            await lineOf(server, /possession-only links: whoever holds a link/);
            const ack = await ackLink(server);
            expect((await confirm(ack, 'https://evil.example')).status).toBe(403);
            const noOrigin = await fetch(ack, {
                method: 'POST',
                headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
                body: new URLSearchParams({ t: tokenOf(ack) }).toString(),
            });
            expect(noOrigin.status).toBe(403);
            expect(await (await fetch(ack)).text()).not.toContain('Already acknowledged');
            expect((await confirm(ack)).status).toBe(200);
        } finally {
            expect(await server.stop()).toBe(0);
        }
    });
});

describeWithBrowser('acknowledge page in a real browser', (browser) => {
    it('opens the link, shows the confirmation, and acknowledges on the click', async () => {
        const server = await serveLocal();
        const page = await browser().newPage();
        try {
            const res = await fetch(`${server.base}/local/events`, {
                method: 'POST',
                body: fixtureText('vault-patch-firewall-allow.json'),
            });
            const { notifications } = (await res.json()) as { notifications: string[] };
            const card = JSON.parse(
                readFileSync(notifications.find((p) => p.endsWith('-teams.json')) as string, 'utf8'),
            );
            const ack = buttonUrl(card, 'Acknowledge') as string;
            await page.goto(ack);
            expect(await page.locator('h1').innerText()).toBe('Acknowledge incident');
            expect(await page.content()).toContain('firewall-opened');
            // Opening the page changed nothing: the same page again still offers the button.
            await page.reload();
            await page.locator('#confirm').click();
            await page.waitForSelector('#state');
            expect(await page.locator('#state').innerText()).toMatch(/^Acknowledged at /);
            expect(await page.content()).toContain('acknowledged');
            // The link again (GET): the incident now shows who and when instead of a button.
            await page.goto(ack);
            expect(await page.locator('#state').innerText()).toMatch(/^Already acknowledged at /);
            expect(await page.locator('#confirm').count()).toBe(0);
        } finally {
            await page.close();
            expect(await server.stop()).toBe(0);
        }
    });
});

describeWithBrowser('the incident page on a phone and a desktop (enforce mode demo)', (browser) => {
    it('shows before/after of every change and the undo scope, fits 375 px without horizontal scrolling, and names who acknowledged', async () => {
        const server = await serve([
            '--replay',
            join(REPO, 'samples/sample-day.jsonl.gz'),
            '--vaults',
            join(REPO, 'samples/vaults.json'),
            '--config',
            join(REPO, 'samples/enforce-config.json'),
            '--outbox',
            join(work, 'outbox'),
            '--signing-key',
            join(work, 'k.pem'),
            '--possession-only-links',
        ]);
        const context = await browser().newContext({ viewport: { width: 375, height: 800 } });
        const page = await context.newPage();
        try {
            await lineOf(server, /serving until interrupted/);
            // One remediation of kv-payments-prod changed two things for two rules: the firewall-opened incident's undo
            // restores its own part only.
            const line = server.lines.find(
                (l) => / firewall-opened +kv-payments-prod +mallory@contoso\.example /.test(l) && l.includes('undo: '),
            ) as string;
            expect(line).toBeDefined();
            const undoLink = /undo: (\S+)/.exec(line)?.[1] as string;
            const response = await page.goto(undoLink);
            expect(response?.status()).toBe(200);
            const csp = response?.headers()['content-security-policy'] ?? '';
            expect(csp).toContain("default-src 'none'");
            expect(csp).not.toMatch(/script-src/);
            expect(await page.locator('script').count()).toBe(0);
            expect(await page.locator('h1').innerText()).toBe('Undo remediation');

            const changes = page.locator('#changes ~ ul > li.change');
            expect(await changes.count()).toBe(2);
            const texts = await changes.allInnerTexts();
            const firewall = texts.find((t) => t.startsWith('Firewall default action')) as string;
            expect(firewall).toMatch(/Before: Allow\s+After: Deny\s+Undo: restores this/);
            const ipRules = texts.find((t) => t.startsWith('IP rules')) as string;
            expect(ipRules).toMatch(/Before: present: 203\.0\.113\.66\/32\s+After: removed\s+Undo: not restored/);
            expect(ipRules).toContain('firewall-ip-rule-added');
            expect(await page.locator('#undo-restores li').allInnerTexts()).toEqual([
                'firewall default action back to Allow',
            ]);
            expect(await page.locator('#timeline-list li').count()).toBeGreaterThanOrEqual(3);
            expect(await page.locator('#runbook ~ ol li').count()).toBeGreaterThanOrEqual(2);
            const portal = await page.locator('#portal').getAttribute('href');
            expect(portal).toMatch(
                /^https:\/\/portal\.azure\.com\/#resource\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.KeyVault\/vaults\/kv-payments-prod\/overview$/i,
            );

            for (const width of [375, 1280]) {
                await page.setViewportSize({ width, height: 800 });
                const size = await page.evaluate(() => {
                    const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } })
                        .document;
                    return {
                        scroll: d.documentElement.scrollWidth,
                        inner: (globalThis as unknown as { innerWidth: number }).innerWidth,
                    };
                });
                expect(size.inner).toBe(width);
                expect(size.scroll).toBeLessThanOrEqual(width);
                const png = await page.screenshot({ fullPage: true, path: join(work, `incident-${width}.png`) });
                expect(png.readUInt32BE(16)).toBe(width); // PNG IHDR width: nothing wider than the viewport
            }

            // Acknowledged without sign-in (possession-only): the page says who that was instead of leaving it out.
            const ackLink = /^ {2}(\S+)/.exec(line)?.[1] as string;
            await page.goto(ackLink);
            await page.locator('#confirm').click();
            await page.waitForSelector('#state');
            expect(await page.locator('#state').innerText()).toMatch(
                /^Acknowledged at \d{4}-\S+ by whoever held the link \(possession-only link, no sign-in\)$/,
            );
            await page.goto(ackLink);
            expect(await page.locator('#state').innerText()).toMatch(
                /^Already acknowledged at \d{4}-\S+ by whoever held the link \(possession-only link, no sign-in\)/,
            );
            expect(await page.locator('#incident').innerText()).toMatch(
                /Acknowledged\s+\S+ by whoever held the link \(possession-only link, no sign-in\) from 127\.0\.0\.1/,
            );
        } finally {
            await context.close();
            expect(await server.stop()).toBe(0);
        }
    }, 120_000);
});
