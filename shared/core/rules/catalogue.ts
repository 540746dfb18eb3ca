import { rules } from './index';

/** The rule catalogue as Markdown (docs/rules.md): metadata and runbook of every rule, in registry order. */
export function ruleCatalogue(): string {
    const out: string[] = [
        '# Detection rules',
        '',
        "Generated from the rules' metadata (`shared/core/rules/*/rule.ts`) by `node dist/scripts/generateRuleDocs.js`;",
        'a test keeps it in step. Thresholds and lists are set in the config file (see the README).',
        '',
        '| rule id | title | severity | MITRE ATT&CK |',
        '|---|---|---|---|',
    ];
    for (const r of rules)
        out.push(
            `| [\`${r.meta.id}\`](#${r.meta.id}) | ${r.meta.title} | ${r.meta.severity} | ${r.meta.mitre.join(', ')} |`,
        );
    for (const r of rules) {
        const m = r.meta;
        out.push(
            '',
            `## ${m.id}`,
            '',
            `**${m.title}** — severity ${m.severity}; ${r.kind === 'stateful' ? 'stateful' : 'stateless'}; MITRE ATT&CK ${m.mitre.join(', ')}.`,
            '',
            m.description,
            '',
        );
        out.push('Known false positives:', '', ...m.falsePositives.map((f) => `- ${f}`), '');
        out.push('Runbook:', '', ...m.runbook.map((s, i) => `${i + 1}. ${s}`), '');
        out.push('References:', '', ...m.references.map((x) => `- <${x}>`));
    }
    return `${out.join('\n')}\n`;
}
