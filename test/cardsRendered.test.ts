// Every Teams card of the demo (`npm start`: samples/sample-day.jsonl.gz with samples/demo-config.json), and a card
// made of hostile strings, rendered by Microsoft's own Adaptive Cards renderer (npm `adaptivecards`) in Chromium, the
// way a person sees them. Markdown is processed the way Teams does it (markdown-it, with bare URLs linkified, wired
// into the renderer's onProcessMarkdown hook): a value that Markdown could turn into a link or an emphasis shows up in
// the DOM, and so does an escape character that is shown literally.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { applyFinding, type Incident } from '../shared/core/alerts/incident';
import { renderTeamsCard } from '../shared/core/alerts/render';
import { describeWithBrowser } from './support/browser';
import { REPO, runKvr } from './support/cli';

const ADAPTIVECARDS_JS = require.resolve('adaptivecards/dist/adaptivecards.min.js');
const MARKDOWN_IT_JS = join(require.resolve('markdown-it/package.json'), '..', 'dist', 'markdown-it.min.js');

interface Rendered {
    /** The visible text of the card, element by element. */
    readonly texts: string[];
    /** Every link (`<a href>`) in the rendered card. */
    readonly links: string[];
    /** Elements the Markdown processor produced (emphasis, lists). */
    readonly markup: number;
    /** Buttons of the card's actions. */
    readonly buttons: string[];
}

async function openRenderer(page: Page): Promise<void> {
    await page.setContent('<!DOCTYPE html><html><body><div id="host"></div></body></html>');
    await page.addScriptTag({ path: MARKDOWN_IT_JS });
    await page.addScriptTag({ path: ADAPTIVECARDS_JS });
}

/** The little of the DOM the page-side code uses (the project compiles without the DOM library). */
interface El {
    textContent: string | null;
    querySelectorAll(selector: string): ArrayLike<El> & Iterable<El>;
    getAttribute(name: string): string | null;
    replaceChildren(...nodes: El[]): void;
}

/** Renders one card with the adaptivecards renderer and reads back its DOM. */
function render(page: Page, card: unknown, markdown: boolean): Promise<Rendered> {
    return page.evaluate(
        ([json, withMarkdown]) => {
            const w = globalThis as unknown as {
                document: { getElementById(id: string): El };
                AdaptiveCards: {
                    AdaptiveCard: (new () => { parse(c: unknown): void; render(): El | undefined }) & {
                        onProcessMarkdown?: (
                            text: string,
                            result: { outputHtml?: string | undefined; didProcess: boolean },
                        ) => void;
                    };
                };
                markdownit: (o: unknown) => { render(s: string): string };
            };
            const md = w.markdownit({ linkify: true });
            // With Markdown: as Teams shows TextBlocks and facts. Without: as a host that shows text as it is.
            w.AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {
                result.outputHtml = withMarkdown ? md.render(text) : undefined;
                result.didProcess = withMarkdown;
            };
            const ac = new w.AdaptiveCards.AdaptiveCard();
            ac.parse(json);
            const el = ac.render();
            if (el === undefined) throw new Error('the renderer returned nothing');
            w.document.getElementById('host').replaceChildren(el);
            const texts = [...el.querySelectorAll('.ac-textBlock, .ac-richTextBlock')].map((e) => e.textContent ?? '');
            return {
                texts,
                links: [...el.querySelectorAll('a')].map((a) => a.getAttribute('href') ?? ''),
                markup: el.querySelectorAll('em, strong, ul, ol, li, code, h1, h2, h3, img, blockquote').length,
                buttons: [...el.querySelectorAll('button')].map((b) => b.textContent ?? ''),
            };
        },
        [card, markdown] as const,
    );
}

/** A backslash shown in front of a character Markdown would have meant (the old escaping, shown literally). */
const STRAY_ESCAPE = /\\[\\`*_{}[\]()#+\-.!<>~|]/;

function contentOf(message: unknown): unknown {
    return (message as { attachments: { content: unknown }[] }).attachments[0]?.content;
}

let work: string;
const demoCards: { file: string; card: unknown }[] = [];

beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'kvr-cards-'));
    const outbox = join(work, 'outbox');
    const r = await runKvr(
        'replay',
        join(REPO, 'samples/sample-day.jsonl.gz'),
        '--config',
        join(REPO, 'samples/demo-config.json'),
        '--outbox',
        outbox,
        '--signing-key',
        join(work, 'k.pem'),
        '--public-url',
        'http://127.0.0.1:7071',
        '--decisions',
        join(work, 'decisions.jsonl'),
    );
    if (r.code !== 0) throw new Error(`kvr replay failed (${r.code}): ${r.stderr}`);
    for (const f of readdirSync(outbox).sort())
        if (f.endsWith('-teams.json'))
            demoCards.push({ file: f, card: contentOf(JSON.parse(readFileSync(join(outbox, f), 'utf8'))) });
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const HOSTILE = {
    link: '[click here](https://evil.example/x)',
    url: 'https://evil.example/login',
    www: 'www.evil.example',
    email: 'victim@evil.example',
    emphasis: '**urgent** _now_ x86_64',
    list: '- item',
    numbered: '1. step',
    autolink: '<https://evil.example/a>',
    date: '{{DATE(2026-10-05T09:05:00Z)}}',
};

function hostileIncident(): Incident {
    const settings = {
        minSeverity: 'low',
        escalateMinSeverity: 'high',
        escalateAfterMs: 900_000,
        maxReminders: 2,
        incidentWindowMs: 3_600_000,
        linkTtlMs: 86_400_000,
        rosterNamed: () => undefined,
    } as unknown as Parameters<typeof applyFinding>[3]['settings'];
    const inc = applyFinding(
        undefined,
        {
            type: 'finding',
            vault: 'kv-payments-prod',
            vaultId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-payments-prod',
            rule: 'firewall-opened',
            severity: 'high',
            time: '2026-10-05T09:05:00.000Z',
            count: 1,
            summary: `${HOSTILE.numbered} ${HOSTILE.link} ${HOSTILE.url}`,
            operations: ['VaultPatch', HOSTILE.autolink],
            correlationIds: ['c1'],
            principal: '00000000-0000-0000-0000-0000000000aa',
            actor: {
                upn: HOSTILE.email,
                ip: HOSTILE.list,
                userAgent: `${HOSTILE.emphasis} ${HOSTILE.www} ${HOSTILE.date}`,
            },
        } as unknown as Parameters<typeof applyFinding>[1],
        [],
        {
            nowMs: Date.parse('2026-10-05T09:06:00Z'),
            settings,
            rosterName: 'default',
            tiers: 1,
            teamsTiers: [true],
            emailTiers: [false],
        },
    );
    return {
        ...inc,
        actions: [{ action: 'restore-firewall-default', status: 'applied', summary: HOSTILE.link, undoId: 'u1' }],
    };
}

const OWN_LINKS = {
    ack: 'http://127.0.0.1:7071/api/incidents/abc/ack?t=a.b.c',
    undo: 'http://127.0.0.1:7071/api/incidents/abc/undo?t=a.b.c',
    portal: 'https://portal.azure.com/#resource/subscriptions/s/overview',
};

describeWithBrowser('Teams cards rendered by the adaptivecards renderer', (browser) => {
    let page: Page;
    beforeAll(async () => {
        page = await browser().newPage();
        await openRenderer(page);
    });
    afterAll(async () => page.close());

    it('shows every demo card without stray escape characters, links or Markdown markup', async () => {
        expect(demoCards.length).toBeGreaterThanOrEqual(20);
        let sawIp = false;
        let sawUnderscore = false;
        for (const [{ file, card }, markdown] of demoCards.flatMap((c) => [[c, true] as const, [c, false] as const])) {
            const r = await render(page, card, markdown);
            const where = `${file} (${markdown ? 'with' : 'without'} Markdown): ${r.texts.join(' | ')}`;
            expect({ where, texts: r.texts.filter((t) => STRAY_ESCAPE.test(t)) }).toEqual({ where, texts: [] });
            expect({ where, links: r.links }).toEqual({ where, links: [] });
            expect({ where, markup: r.markup }).toEqual({ where, markup: 0 });
            expect(r.buttons).toContain('Open vault in the Azure portal');
            const all = r.texts.join('\n');
            if (/From: \d+\.\d+\.\d+\.\d+/.test(all)) sawIp = true;
            if (/[a-z0-9]_[a-z0-9]/i.test(all)) sawUnderscore = true;
        }
        // The demo has the values the old escaping mangled ("From \20.86.120.33", "x86\_64"): they show as they are.
        expect(sawIp).toBe(true);
        expect(sawUnderscore).toBe(true);
    });

    it('never turns a hostile value into a link, a list or an emphasis; only our buttons lead anywhere', async () => {
        const message = renderTeamsCard({
            incident: hostileIncident(),
            kind: 'opened',
            tier: 0,
            tierName: 'primary',
            links: OWN_LINKS,
        });
        const card = contentOf(message) as { actions: { url: string }[] };
        const r = await render(page, card, true);
        const all = r.texts.join('\n');
        // The hostile values are all there, as text (so the checks below are not vacuous).
        expect(all).toContain('[click here](https:');
        expect(all).toContain('**urgent** _now_ x86_64');
        expect(all).toContain('From: - item');
        expect(all).toContain('1. step');
        expect(all.replace(/\u200b/g, '')).toContain('victim@evil.example');
        expect(r.links).toEqual([]);
        expect(r.markup).toBe(0);
        expect(r.texts.filter((t) => STRAY_ESCAPE.test(t))).toEqual([]);
        expect(all).toContain('{\u200b{DATE(2026-10-05T09:05:00Z)}}');
        expect(card.actions.map((a) => a.url)).toEqual([OWN_LINKS.ack, OWN_LINKS.undo, OWN_LINKS.portal]);
    });
});
