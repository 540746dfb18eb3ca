import type { RuleMeta } from '../engine/rule';
import { ACTIONS_BY_RULE } from '../remediation/types';
import { rules, timerChecks } from './index';

/** The rule catalogue as Markdown (docs/rules.md): metadata and runbook of every rule, in registry order. */
export function ruleCatalogue(): string {
    const out: string[] = [
        '# Detection rules',
        '',
        "Generated from the rules' metadata (`shared/core/rules/*/rule.ts`) by `node dist/scripts/generateRuleDocs.js`;",
        'a test keeps it in step. Thresholds and lists are set in the config file (see docs/configuration.md).',
        '',
        '| rule id | title | severity | MITRE ATT&CK |',
        '|---|---|---|---|',
    ];
    for (const r of rules)
        out.push(
            `| [\`${r.meta.id}\`](#${r.meta.id}) | ${r.meta.title} | ${r.meta.severity} | ${r.meta.mitre.join(', ')} |`,
        );
    for (const r of rules) {
        out.push(...entry(r.meta, r.kind === 'stateful' ? 'stateful' : 'stateless', r.meta.mitre.join(', ')));
    }
    out.push(...postureSection());
    return `${out.join('\n')}\n`;
}

/** The checks that run on timers (CMK expiry and posture), after the detection rules: same metadata. */
function postureSection(): string[] {
    const mitre = (m: RuleMeta) => (m.mitre.length === 0 ? '—' : m.mitre.join(', '));
    const out: string[] = [
        '',
        '# CMK timer checks',
        '',
        'Generated from `timerChecks` (`shared/core/rules/index.ts`). These do not fire on audit events: the daily `cmkExpiry` timer reads the key versions the live inventory shows in use (`cmk-expiring-in-use`), and the daily `cmkPosture` timer and `kvr posture` read the keys of the configured vaults (`cmk.posture` in the config). See docs/cmk-posture.md.',
        '',
        '| check id | title | severity | MITRE ATT&CK |',
        '|---|---|---|---|',
    ];
    for (const m of timerChecks) out.push(`| [\`${m.id}\`](#${m.id}) | ${m.title} | ${m.severity} | ${mitre(m)} |`);
    for (const m of timerChecks) {
        out.push(...entry(m, 'timer check (daily)', mitre(m)));
    }
    return out;
}

/** One rule's section: title line, description, false positives, runbook, references. */
function entry(m: RuleMeta, kind: string, mitre: string): string[] {
    return [
        '',
        `## ${m.id}`,
        '',
        `**${m.title}** — severity ${m.severity}; ${kind}; MITRE ATT&CK ${mitre}.`,
        '',
        m.description,
        '',
        ...(ACTIONS_BY_RULE[m.id] === undefined
            ? []
            : [`Remediation action (enforce mode): \`${ACTIONS_BY_RULE[m.id]}\` (see docs/remediation.md).`, '']),
        'Known false positives:',
        '',
        ...m.falsePositives.map((f) => `- ${f}`),
        '',
        'Runbook:',
        '',
        ...m.runbook.map((s, i) => `${i + 1}. ${s}`),
        '',
        'References:',
        '',
        ...m.references.map((x) => `- <${x}>`),
    ];
}
