/**
 * What people see: the Teams Adaptive Card, the email (HTML and plain text) and the acknowledge/undo pages. Every
 * string that came from a log record (UPNs, IPs, object names, user agents, summaries) is attacker-controlled and
 * is escaped for the medium it lands in: Adaptive Card Markdown, HTML, or a MIME header.
 */
import type { Severity } from '../decisions';
import { ACTIONS_BY_RULE } from '../remediation/types';
import type { Incident, IncidentAction, PersonAction } from './incident';
import type { IncidentPageContext } from './incidentPage';
import type { LinkAction } from './token';
import type { NoticeKind, TeamsWebhookMessage } from './types';

export interface IncidentLinks {
    readonly ack?: string;
    readonly undo?: string;
    readonly reenable?: string;
    readonly portal: string;
}

/** The notice being rendered and its context. */
export interface NoticeView {
    readonly incident: Incident;
    readonly kind: NoticeKind;
    readonly tier: number;
    readonly tierName: string;
    readonly links: IncidentLinks;
    /** For `channel-failing`: which channel fails and its last error. */
    readonly failing?: { readonly channel: string; readonly error: string };
    /**
     * For `remediation`: what the applied remediation changed, before and after (from its saved undo record, in the
     * incident's scope), when it is known.
     */
    readonly changes?: readonly { readonly what: string; readonly before: string; readonly after: string }[];
}

/**
 * The largest Teams Workflows webhook body we send, in UTF-8 bytes of its JSON. The Workflows webhook answers 202
 * before its "post card" step runs, and a card above about 28 KB then fails there, silently (Teams connector known
 * issues; deployment-contracts.md, "Graph and Teams"). The margin leaves room for what the flow adds around it.
 */
export const TEAMS_MESSAGE_MAX_BYTES = 27_000;

/** The size that counts against {@link TEAMS_MESSAGE_MAX_BYTES}. */
export function teamsMessageBytes(message: TeamsWebhookMessage): number {
    return new TextEncoder().encode(JSON.stringify(message)).length;
}

const TRIMMED_NOTE = 'This card was trimmed to fit the Teams size limit (about 28 KB): some details are left out.';

const SEVERITY_LABEL: Readonly<Record<Severity, string>> = {
    critical: 'CRITICAL',
    high: 'HIGH',
    medium: 'MEDIUM',
    low: 'LOW',
};

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** One line of untrusted text: control characters and bidi overrides removed, length bounded. */
export function plain(text: string, max = 300): string {
    const s = text.replace(CONTROL, ' ');
    return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * Untrusted text for an Adaptive Card `TextRun`. Teams interprets Markdown in TextBlock text and in FactSet titles and
 * values, but not in a TextRun ("Text to display. Markdown is not supported": Adaptive Cards schema, TextRun; Teams
 * "Text formatting in cards"). So every value taken from a log record goes into a TextRun and needs no Markdown
 * escaping at all: a backslash escape would show literally there ("From \20.86.120.33"). What is left is what a
 * client may do to any text: turn a URL, a `www.` host or an e-mail address into a link, or evaluate a `{{DATE()}}`
 * function. Those are broken with a zero-width space inside the token only (after `://`, `www`, the `@` of an address,
 * between two `{`), invisible on the card and never added to terminal output, email or pages.
 */
export function cardText(text: string, max = 300): string {
    return plain(text, max)
        .replace(/:\/\//g, ':\u200b//')
        .replace(/\bwww\./gi, (w) => `${w.slice(0, 3)}\u200b.`)
        .replace(/([^\s@])@(?=[^\s@]+\.[^\s@])/g, '$1@\u200b')
        .replace(/\{(?=\{)/g, '{\u200b');
}

/** A block of untrusted text: one TextRun (no Markdown) in a RichTextBlock. */
function textRuns(
    runs: readonly (string | (Readonly<Record<string, string | boolean>> & { readonly text: string }))[],
    block: Record<string, unknown> = {},
): Record<string, unknown> {
    return {
        type: 'RichTextBlock',
        inlines: runs.map((r) => (typeof r === 'string' ? { type: 'TextRun', text: r } : { type: 'TextRun', ...r })),
        ...block,
    };
}

/** Untrusted text for HTML element content or a quoted attribute. */
export function html(text: string, max = 300): string {
    return plain(text, max).replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function portalUrlOf(vaultId: string): string {
    return `https://portal.azure.com/#resource${vaultId}/overview`;
}

/** Who the records name as the caller, in one line (untrusted: escape for the medium). */
export function whoOf(inc: Incident): string {
    const a = inc.actor;
    const parts: string[] = [];
    if (a.upn !== undefined) parts.push(a.upn);
    else if (a.managedIdentity !== undefined)
        parts.push(`managed identity ${a.managedIdentity.split('/').pop() ?? ''}`);
    else if (a.appId !== undefined) parts.push(`app ${a.appId}`);
    if (a.principal !== undefined && a.upn === undefined) parts.push(`object ${a.principal}`);
    return parts.length === 0 ? 'unknown caller' : parts.join(', ');
}

function actionLine(a: IncidentAction): string {
    const why = a.reason === undefined || a.error !== undefined ? '' : ` (${a.reason})`;
    return `${a.status}: ${a.summary ?? a.action}${why}${a.error === undefined ? '' : ` (${a.error})`}`;
}

/** What to do about a failed remediation, in one sentence. */
export function fixOf(a: IncidentAction): string {
    if (a.missingPermission === true)
        return (
            "Give the responder's identity the remediation role on the vault (Microsoft.KeyVault/vaults/write, " +
            '.../accessPolicies/write, and Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action on ' +
            'the subnets of its virtual network rules: see docs/remediation.md), then change the vault back by hand; ' +
            'the next drift sweep checks it again.'
        );
    if (a.reason === 'not-verified')
        return (
            'ARM did not keep the change: look for an Azure Policy, a deployment pipeline or a person writing the ' +
            'vault back, then change it back by hand.'
        );
    return (
        'The vault may still be out of policy: check it in the portal now and change it back by hand; the next drift ' +
        'sweep (hourly) tries again.'
    );
}

/** The outcome a `remediation` follow-up reports: the strongest status among the incident's actions. */
function outcomeOf(inc: Incident): 'applied' | 'failed' | 'skipped' | 'planned' {
    for (const s of ['failed', 'applied', 'skipped'] as const) if (inc.actions.some((a) => a.status === s)) return s;
    return 'planned';
}

/** The paragraph of a `remediation` follow-up: what changed (before → after), or the failure and its fix. */
export function outcomeLines(v: NoticeView): string[] {
    const inc = v.incident;
    const lines: string[] = [];
    const applied = inc.actions.filter((a) => a.status === 'applied');
    if (applied.length > 0) {
        const changes = v.changes ?? [];
        if (changes.length > 0)
            lines.push(`Changed: ${changes.map((c) => `${c.what}: ${c.before} → ${c.after}`).join('; ')}.`);
        else lines.push(`Changed: ${applied.map((a) => a.summary ?? a.action).join('; ')}.`);
        lines.push(
            inc.undone === undefined
                ? 'Read back from ARM and verified. If the change was legitimate, Undo remediation restores what this incident changed (and approves it for a limited time).'
                : 'This remediation was undone since.',
        );
    }
    for (const a of inc.actions.filter((x) => x.status === 'failed')) {
        lines.push(`Failed: ${a.summary ?? a.action}${a.error === undefined ? '' : `: ${a.error}`}.`);
        lines.push(`Fix: ${fixOf(a)}`);
    }
    for (const a of inc.actions.filter((x) => x.status === 'skipped'))
        lines.push(`Skipped: ${a.summary ?? a.action}${a.reason === undefined ? '' : ` (${a.reason})`}.`);
    const planned = inc.actions.filter((a) => a.status === 'planned');
    if (planned.length > 0)
        lines.push(
            `Monitor mode, nothing changed. Would have: ${planned.map((a) => a.summary ?? a.action).join('; ')}.`,
        );
    return lines;
}

/** What kv-responder did, one line per action, or what it does not do for this rule. */
function responseLines(inc: Incident): string[] {
    if (inc.actions.length === 0)
        return ACTIONS_BY_RULE[inc.rule] === undefined
            ? ['No automatic remediation for this rule: detection and notification only.']
            : [
                  // The queue worker acts after the first notice (docs/remediation.md): say so, never "no remediation".
                  'Remediation pending: the reconcile worker checks the vault against Azure Resource Manager; its outcome is added to this incident and sent as a follow-up.',
              ];
    return inc.actions.map(actionLine);
}

function headline(v: NoticeView): string {
    const inc = v.incident;
    const base = `${SEVERITY_LABEL[inc.severity]} · ${inc.rule} · ${inc.vault}`;
    switch (v.kind) {
        case 'opened':
            return base;
        case 'escalated':
            return `Escalated to ${v.tierName} (unacknowledged) · ${base}`;
        case 'undone':
            return `Remediation undone · ${base}`;
        case 'channel-failing':
            return `Notifications failing on ${v.failing?.channel ?? 'a channel'} · ${base}`;
        case 'remediation':
            return `Remediation ${outcomeOf(inc)} · ${base}`;
    }
}

/** The facts kept on the most trimmed card. */
const ESSENTIAL_FACTS = new Set(['Vault', 'Rule', 'Severity', 'Who', 'When', 'Status', 'Incident']);

function facts(v: NoticeView): [string, string][] {
    const inc = v.incident;
    const out: [string, string][] = [
        ['Vault', inc.vault],
        ['Rule', inc.rule],
        ['Severity', inc.severity],
        ['Who', whoOf(inc)],
    ];
    if (inc.actor.ip !== undefined) out.push(['From', inc.actor.ip]);
    if (inc.actor.userAgent !== undefined) out.push(['Client', inc.actor.userAgent]);
    out.push(['What', inc.operations.join(', ')]);
    if (inc.keyId !== undefined) out.push(['Key', inc.keyId]);
    out.push(['When', inc.openedAt === inc.lastSeenAt ? inc.openedAt : `${inc.openedAt} to ${inc.lastSeenAt}`]);
    out.push(['Records', `${inc.records} in ${inc.findings} finding(s)`]);
    out.push(['Status', statusLine(inc)]);
    out.push(['Incident', inc.id]);
    return out;
}

/** What an undo restored and what it approved until when (one paragraph). */
export function undoneNote(inc: Incident): string | undefined {
    const u = inc.undone;
    if (u === undefined) return undefined;
    const approved =
        u.approvedUntil === undefined
            ? 'The restored state is approved for this vault.'
            : (u.approved ?? []).length === 0
              ? 'Nothing was approved.'
              : `Approved for this vault until ${u.approvedUntil}: ${(u.approved ?? []).join('; ')}. After that the policy is enforced again.`;
    // The commands first: they are what the person must act on (the card shortens long notes at the end).
    const manual =
        (u.manual ?? []).length === 0
            ? ''
            : ` Left to the person who undid, to run with their own rights: ${(u.manual ?? []).join(' ; ')} (kv-responder holds no right to re-grant access or delete a diagnostic setting).`;
    return `Restored: ${u.restored.length === 0 ? 'nothing by kv-responder' : u.restored.join('; ')}.${manual} ${approved}`;
}

export function statusLine(inc: Incident): string {
    const parts: string[] = [inc.status];
    if (inc.acknowledged !== undefined)
        parts.push(
            `acknowledged ${inc.acknowledged.at}${inc.acknowledged.by === undefined ? '' : ` by ${inc.acknowledged.by}`}`,
        );
    if (inc.undone !== undefined)
        parts.push(
            `remediation undone ${inc.undone.at}${inc.undone.by === undefined ? '' : ` by ${inc.undone.by}`}` +
                (inc.undone.approvedUntil === undefined ? '' : `, approved until ${inc.undone.approvedUntil}`),
        );
    return parts.join('; ');
}

/** How much of an incident a Teams card shows; the renderer steps down until the card fits. */
interface CardDetail {
    /** Action lines shown before "... N more" (undefined: all). */
    readonly actionLines: number | undefined;
    readonly summary: number;
    readonly fact: number;
    readonly extra: number;
    readonly essentialFactsOnly: boolean;
}

const CARD_DETAIL: readonly CardDetail[] = [
    { actionLines: undefined, summary: 600, fact: 300, extra: 800, essentialFactsOnly: false },
    { actionLines: 10, summary: 600, fact: 300, extra: 500, essentialFactsOnly: false },
    { actionLines: 3, summary: 300, fact: 120, extra: 300, essentialFactsOnly: false },
    { actionLines: 0, summary: 200, fact: 80, extra: 150, essentialFactsOnly: true },
];

/**
 * The Teams Workflows webhook body: one Adaptive Card (version 1.4, Action.OpenUrl buttons only), at most
 * {@link TEAMS_MESSAGE_MAX_BYTES}. A card that would be larger (many actions, long attacker-supplied strings) is
 * trimmed step by step: fewer action lines, shorter texts, then the essential facts only; the headline and every
 * button stay, and the card says that it was trimmed.
 */
export function renderTeamsCard(v: NoticeView): TeamsWebhookMessage {
    let message: TeamsWebhookMessage | undefined;
    for (let i = 0; i < CARD_DETAIL.length; i++) {
        message = teamsCardAt(v, CARD_DETAIL[i] as CardDetail, i > 0);
        if (teamsMessageBytes(message) <= TEAMS_MESSAGE_MAX_BYTES) return message;
    }
    return message as TeamsWebhookMessage;
}

function responseBlock(inc: Incident, d: CardDetail): string[] {
    const lines = responseLines(inc);
    if (d.actionLines === undefined || lines.length <= d.actionLines) return lines;
    const more = lines.length - d.actionLines;
    return [
        ...lines.slice(0, d.actionLines),
        d.actionLines === 0
            ? `${lines.length} action(s): not shown here (card size limit).`
            : `... and ${more} more action(s), not shown here (card size limit).`,
    ];
}

function teamsCardAt(v: NoticeView, d: CardDetail, trimmed: boolean): TeamsWebhookMessage {
    const inc = v.incident;
    const style = inc.severity === 'critical' || inc.severity === 'high' ? 'attention' : 'warning';
    const extra: Record<string, unknown>[] = [];
    if (v.kind === 'channel-failing' && v.failing !== undefined) {
        extra.push(
            textRuns([
                {
                    text: cardText(
                        `Delivery by ${v.failing.channel} keeps failing: ${v.failing.error}`,
                        Math.min(500, d.extra),
                    ),
                    color: 'attention',
                },
            ]),
        );
    }
    const note = v.kind === 'undone' ? undoneNote(inc) : undefined;
    if (note !== undefined) extra.push(textRuns([cardText(note, Math.min(1200, d.extra))]));
    if (v.kind === 'remediation')
        for (const line of outcomeLines(v)) extra.push(textRuns([cardText(line, Math.min(1200, d.extra))]));
    if (trimmed) extra.push({ type: 'TextBlock', text: TRIMMED_NOTE, wrap: true, isSubtle: true, size: 'small' });
    const actions: Record<string, unknown>[] = [];
    if (v.links.ack !== undefined && inc.acknowledged === undefined)
        actions.push({ type: 'Action.OpenUrl', title: 'Acknowledge', url: v.links.ack, style: 'positive' });
    if (v.links.undo !== undefined)
        actions.push({ type: 'Action.OpenUrl', title: 'Undo remediation', url: v.links.undo, style: 'destructive' });
    if (v.links.reenable !== undefined)
        actions.push({ type: 'Action.OpenUrl', title: 'Re-enable key version', url: v.links.reenable });
    actions.push({ type: 'Action.OpenUrl', title: 'Open vault in the Azure portal', url: v.links.portal });
    const shownFacts = facts(v).filter(([title]) => !d.essentialFactsOnly || ESSENTIAL_FACTS.has(title));
    const card = {
        $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
        type: 'AdaptiveCard',
        version: '1.4',
        msteams: { width: 'Full' },
        fallbackText: cardText(`${headline(v)}: ${inc.summary}`, 400),
        body: [
            {
                type: 'Container',
                style,
                bleed: true,
                items: [
                    textRuns([{ text: cardText(headline(v), 200), weight: 'bolder', size: 'medium' }]),
                    textRuns([cardText(inc.summary, d.summary)]),
                ],
            },
            ...extra,
            // Not a FactSet: Teams reads Markdown in fact values. One "Title: value" line per fact, value in a TextRun.
            {
                type: 'Container',
                items: shownFacts.map(([title, value], i) =>
                    textRuns([{ text: `${title}: `, weight: 'bolder' }, cardText(value, d.fact)], {
                        spacing: i === 0 ? 'default' : 'none',
                    }),
                ),
            },
            {
                type: 'Container',
                items: [
                    { type: 'TextBlock', text: 'What kv-responder did', weight: 'bolder', wrap: true },
                    ...responseBlock(inc, d).map((line) => textRuns([cardText(line, 400)], { spacing: 'small' })),
                ],
            },
        ],
        actions,
    };
    return {
        type: 'message',
        attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, content: card }],
    };
}

export interface RenderedEmail {
    readonly subject: string;
    readonly text: string;
    readonly html: string;
}

/** The email: the same facts and links, as HTML and as plain text. */
export function renderEmail(v: NoticeView): RenderedEmail {
    const inc = v.incident;
    const subject = plain(`[kv-responder] ${headline(v)}: ${inc.summary}`, 180);
    const rows = facts(v);
    const links: [string, string][] = [];
    if (v.links.ack !== undefined && inc.acknowledged === undefined) links.push(['Acknowledge', v.links.ack]);
    if (v.links.undo !== undefined) links.push(['Undo remediation', v.links.undo]);
    if (v.links.reenable !== undefined) links.push(['Re-enable key version', v.links.reenable]);
    links.push(['Open vault in the Azure portal', v.links.portal]);
    const notes: string[] = [];
    if (v.kind === 'channel-failing' && v.failing !== undefined)
        notes.push(`Delivery by ${v.failing.channel} keeps failing: ${v.failing.error}`);
    const undone = v.kind === 'undone' ? undoneNote(inc) : undefined;
    if (undone !== undefined) notes.push(undone);
    if (v.kind === 'remediation') notes.push(...outcomeLines(v));

    const text = [
        headline(v),
        '',
        plain(inc.summary, 600),
        ...notes.map((n) => `\n${plain(n, 1200)}`),
        '',
        ...rows.map(([k, value]) => `${k}: ${plain(value)}`),
        '',
        'What kv-responder did:',
        ...responseLines(inc).map((l) => `- ${plain(l, 400)}`),
        '',
        ...links.map(([k, url]) => `${k}: ${url}`),
        '',
        'Links open a confirmation page; nothing changes until you confirm there.',
    ].join('\n');

    const body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${html(subject)}</title></head>
<body style="font-family:Segoe UI,Arial,sans-serif;font-size:14px;color:#222">
<h2 style="margin:0 0 8px 0;color:${inc.severity === 'critical' || inc.severity === 'high' ? '#a4262c' : '#8a6d00'}">${html(headline(v), 200)}</h2>
<p>${html(inc.summary, 600)}</p>
${notes.map((n) => `<p><strong>${html(n, 1200)}</strong></p>`).join('\n')}
<table cellpadding="4" style="border-collapse:collapse">
${rows.map(([k, value]) => `<tr><th align="left" style="vertical-align:top">${html(k)}</th><td>${html(value)}</td></tr>`).join('\n')}
</table>
<h3>What kv-responder did</h3>
<ul>
${responseLines(inc)
    .map((l) => `<li>${html(l, 400)}</li>`)
    .join('\n')}
</ul>
<p>${links.map(([k, url]) => `<a href="${html(url, 4000)}" style="margin-right:16px">${html(k)}</a>`).join(' ')}</p>
<p style="color:#666">Links open a confirmation page; nothing changes until you confirm there.</p>
</body></html>`;
    return { subject, text, html: body };
}

// ---------------------------------------------------------------------------------------------------------------
// Summaries (the weekly CMK report): a title and a fixed-width text table

const SUMMARY_LINES = 40;

function clipLines(text: string, max: number = SUMMARY_LINES): string[] {
    const lines = text.replace(/\n$/, '').split('\n');
    return lines.length <= max
        ? lines
        : [...lines.slice(0, max), `... ${lines.length - max} more line(s) in the full report`];
}

/** A summary card of at most {@link TEAMS_MESSAGE_MAX_BYTES}: fewer table lines until it fits. */
export function renderSummaryCard(title: string, table: string): TeamsWebhookMessage {
    let message: TeamsWebhookMessage | undefined;
    for (const lines of [SUMMARY_LINES, 20, 10, 0]) {
        message = summaryCardOf(title, table, lines);
        if (teamsMessageBytes(message) <= TEAMS_MESSAGE_MAX_BYTES) return message;
    }
    return message as TeamsWebhookMessage;
}

function summaryCardOf(title: string, table: string, maxLines: number): TeamsWebhookMessage {
    const card = {
        $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
        type: 'AdaptiveCard',
        version: '1.4',
        msteams: { width: 'Full' },
        fallbackText: cardText(title, 300),
        body: [
            textRuns([{ text: cardText(title, 300), weight: 'bolder', size: 'medium' }]),
            ...clipLines(table, maxLines).map((line) =>
                textRuns([{ text: cardText(line, 400), fontType: 'monospace', size: 'small' }], { spacing: 'none' }),
            ),
        ],
    };
    return {
        type: 'message',
        attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, content: card }],
    };
}

export function renderSummaryEmail(title: string, table: string): RenderedEmail {
    const subject = plain(`[kv-responder] ${title}`, 180);
    const lines = clipLines(table);
    return {
        subject,
        text: `${title}\n\n${lines.join('\n')}\n`,
        html: `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${html(subject)}</title></head>
<body style="font-family:Segoe UI,Arial,sans-serif;font-size:14px;color:#222">
<h2>${html(title, 300)}</h2>
<pre style="font-size:12px">${lines.map((l) => html(l, 400)).join('\n')}</pre>
</body></html>`,
    };
}

// ---------------------------------------------------------------------------------------------------------------
// Pages

const PAGE_STYLE =
    'body{font-family:Segoe UI,Arial,sans-serif;max-width:760px;margin:24px auto;padding:0 16px;color:#222;' +
    'line-height:1.4;overflow-wrap:anywhere}' +
    'h1{font-size:1.5em;margin:0 0 12px}h2{font-size:1.15em;margin:24px 0 8px;border-bottom:1px solid #ddd}' +
    'table{border-collapse:collapse;width:100%}th{text-align:left;vertical-align:top;padding:4px 12px 4px 0;width:8em}' +
    'td{padding:4px 0}ol,ul{padding-left:1.4em}li{margin:4px 0}' +
    '.change{border:1px solid #ddd;border-radius:4px;padding:8px;margin:8px 0;list-style:none}' +
    '.restores{border-color:#a4262c}.tag{font-size:.85em;color:#555}' +
    'button{font-size:16px;padding:10px 20px;cursor:pointer;max-width:100%}.note{color:#555}.error{color:#a4262c}' +
    '#state{font-weight:600}';

export function page(title: string, bodyHtml: string): string {
    return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><meta name="robots" content="noindex">
<title>${html(title)}</title><style>${PAGE_STYLE}</style></head>
<body>
${bodyHtml}
</body></html>`;
}

/**
 * Who acted and when. Without a signed-in user (possession-only links, `kvr serve --possession-only-links`) the link
 * itself was the only credential: the page says so instead of leaving "by" out.
 */
export function personText(p: PersonAction, withAddress = false): string {
    const by = p.by ?? 'whoever held the link (possession-only link, no sign-in)';
    return `${p.at} by ${by}${!withAddress || p.from === undefined ? '' : ` from ${p.from}`}`;
}

function incidentTable(inc: Incident, ruleTitle?: string): string {
    const rows: [string, string][] = [
        ['Summary', inc.summary],
        ['Vault', inc.vault],
        ['Rule', ruleTitle === undefined ? inc.rule : `${inc.rule}: ${ruleTitle}`],
        ['Severity', inc.severity],
        ['Who', whoOf(inc)],
        ...(inc.actor.ip === undefined ? [] : [['From', inc.actor.ip] as [string, string]]),
        ['When', inc.openedAt === inc.lastSeenAt ? inc.openedAt : `${inc.openedAt} to ${inc.lastSeenAt}`],
        ['Findings', `${inc.findings} (${inc.records} record(s))`],
        ['Remediation', responseLines(inc).join('; ')],
        ...(inc.acknowledged === undefined
            ? []
            : [['Acknowledged', personText(inc.acknowledged, true)] as [string, string]]),
        ...(inc.undone === undefined
            ? []
            : [
                  ['Undone', personText(inc.undone, true)] as [string, string],
                  ['Undo', undoneNote(inc) ?? ''] as [string, string],
              ]),
        ['Status', inc.status],
        ['Incident', inc.id],
    ];
    return `<table id="incident">${rows.map(([k, v]) => `<tr><th>${html(k)}</th><td>${html(v, 800)}</td></tr>`).join('')}</table>`;
}

/** Every change of the incident's remediations (before and after), and exactly what its undo would restore. */
function changesSection(inc: Incident, ctx: IncidentPageContext): string {
    const out: string[] = ['<h2 id="changes">What changed</h2>'];
    if (ctx.remediations.length === 0) {
        const planned = inc.actions.filter((a) => a.status !== 'applied');
        out.push(
            `<p class="note">${html(
                inc.actions.length === 0
                    ? 'Nothing: this rule detects and notifies only.'
                    : planned.length === inc.actions.length
                      ? 'Nothing was changed on the vault (monitor mode, or the remediation did not apply): see Remediation above.'
                      : 'No saved state of the remediation is left (it expired): the undo cannot be previewed.',
                400,
            )}</p>`,
        );
    }
    for (const r of ctx.remediations) {
        out.push(
            `<p class="note">Remediation ${html(r.undoId, 80)} at ${html(r.at, 40)}: ${r.changes.length} change(s)` +
                `${r.omitted > 0 ? `, ${r.omitted} more not kept for undo` : ''}.</p>`,
            '<ul>',
            ...r.changes.map(
                (c) =>
                    `<li class="change${c.undo.restores ? ' restores' : ''}"><strong>${html(c.what, 200)}</strong> ` +
                    `<span class="tag">(${html(c.rule, 80)})</span><br>Before: ${html(c.before, 800)}<br>` +
                    `After: ${html(c.after, 200)}<br>Undo: ${
                        c.undo.restores ? '<strong>restores this</strong>' : `not restored (${html(c.undo.why, 200)})`
                    }</li>`,
            ),
            '</ul>',
        );
    }
    const live = ctx.remediations.find((r) => r.restores.length > 0);
    out.push('<h2 id="undo-scope">What an undo restores</h2>');
    if (!ctx.undoable || live === undefined)
        out.push(
            `<p class="note">${html(
                inc.undone !== undefined
                    ? `Already undone: ${undoneNote(inc) ?? ''}`
                    : 'Nothing: this incident has no applied remediation of its own to undo.',
                1200,
            )}</p>`,
        );
    else
        out.push(
            `<p>Only this incident's own changes, relative to the vault as it is when you confirm (ARM is read again then):</p>`,
            `<ul id="undo-restores">${live.restores.map((l) => `<li>${html(l, 400)}</li>`).join('')}</ul>`,
            '<p class="note">What is restored is then approved for this vault for a limited time, so that it is not reverted again.</p>',
        );
    return out.join('\n');
}

function timelineSection(inc: Incident): string {
    const events: { at: string; what: string }[] = [
        { at: inc.openedAt, what: 'first finding' },
        ...(inc.lastSeenAt === inc.openedAt ? [] : [{ at: inc.lastSeenAt, what: 'latest finding' }]),
        ...inc.history,
        ...inc.notifications.flatMap((n) =>
            n.sentAt === undefined
                ? []
                : [{ at: n.sentAt, what: `${n.kind} notice sent by ${n.channel} (tier ${n.tier + 1})` }],
        ),
    ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    return `<h2 id="timeline">Timeline</h2>\n<ol id="timeline-list">${events
        .map((e) => `<li><span class="tag">${html(e.at, 40)}</span> ${html(e.what, 400)}</li>`)
        .join('')}</ol>`;
}

function runbookSection(ctx: IncidentPageContext): string {
    if (ctx.runbook.length === 0) return '';
    return `<h2 id="runbook">Runbook</h2>\n<ol>${ctx.runbook.map((s) => `<li>${html(s, 600)}</li>`).join('')}</ol>`;
}

/** The incident in full: facts, changes and undo scope, timeline, runbook, the vault in the portal. */
function incidentDetails(inc: Incident, ctx: IncidentPageContext | undefined): string {
    const portal = `<p><a id="portal" href="${html(portalUrlOf(inc.vaultId), 4096)}" rel="noopener noreferrer">Open ${html(inc.vault)} in the Azure portal</a></p>`;
    if (ctx === undefined) return `${incidentTable(inc)}\n${portal}`;
    return [
        incidentTable(inc, ctx.ruleTitle),
        portal,
        changesSection(inc, ctx),
        timelineSection(inc),
        runbookSection(ctx),
    ].join('\n');
}

const ACTION_TEXT = {
    ack: {
        title: 'Acknowledge incident',
        button: 'Acknowledge',
        done: 'Acknowledged',
        effect: 'acknowledges the incident',
    },
    undo: {
        title: 'Undo remediation',
        button: 'Undo remediation',
        done: 'Remediation undone',
        effect: 'restores what is listed under "What an undo restores"',
    },
    reenable: {
        title: 'Re-enable key version',
        button: 'Re-enable key version',
        done: 'Key version re-enabled',
        effect: 're-enables the key version named above',
    },
} as const;

/** The state line of a link whose action was taken already: who did it, also without sign-in. */
function alreadyText(inc: Incident, action: LinkAction, fallback: string): string {
    if (action === 'ack' && inc.acknowledged !== undefined)
        return `Already acknowledged at ${personText(inc.acknowledged)}`;
    if (action === 'undo' && inc.undone !== undefined) return `Remediation already undone at ${personText(inc.undone)}`;
    return fallback;
}

/**
 * The page a link opens (GET): the incident and a button that POSTs; a GET never changes anything. `signedInAs` names
 * the signed-in user the action will be recorded under. Static HTML, no script.
 */
export function confirmationPage(
    inc: Incident,
    action: LinkAction,
    token: string,
    blocked?: string,
    signedInAs?: string,
    ctx?: IncidentPageContext,
): string {
    const t = ACTION_TEXT[action];
    const who =
        signedInAs === undefined ? '' : `\n<p class="note" id="actor">Signed in as ${html(signedInAs, 200)}.</p>`;
    const form =
        blocked === undefined
            ? `<form method="post"><input type="hidden" name="t" value="${html(token, 4096)}"><button type="submit" id="confirm">${html(t.button)}</button></form>
<p class="note">Nothing has changed yet: only this button ${t.effect}.</p>${who}`
            : `<p id="state">${html(alreadyText(inc, action, blocked), 400)}</p>`;
    return page(t.title, `<h1>${html(t.title)}</h1>\n${form}\n${incidentDetails(inc, ctx)}`);
}

/** Sign-in required (App Service Authentication): the reason and a link to sign in and come back. */
export function signInPage(message: string, loginUrl: string): string {
    return page(
        'Sign-in required',
        `<h1 class="error">Sign-in required</h1><p id="state">${html(message, 400)}</p><p><a id="sign-in" href="${html(loginUrl, 4096)}">Sign in with Microsoft Entra ID</a></p>`,
    );
}

/** The page after a POST: what was done, or why nothing was. */
export function resultPage(inc: Incident, action: LinkAction, message: string, ctx?: IncidentPageContext): string {
    const text =
        action === 'ack' && inc.acknowledged !== undefined && message.startsWith('Acknowledged at ')
            ? `Acknowledged at ${personText(inc.acknowledged)}`
            : alreadyText(inc, action, message);
    return page(
        ACTION_TEXT[action].done,
        `<h1 id="state">${html(action === 'undo' && !message.startsWith('Remediation already') ? message : text, 400)}</h1>\n${incidentDetails(inc, ctx)}`,
    );
}

export function errorPage(title: string, message: string): string {
    return page(title, `<h1 class="error">${html(title)}</h1><p id="state">${html(message, 400)}</p>`);
}
