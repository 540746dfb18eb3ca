import { z } from 'zod';
import { SEVERITIES } from '../core/decisions';
import type { RuleToggle } from '../core/engine/evaluate';
import { ConfigError } from '../core/errors';

/**
 * The responder config file (JSON): detections, guardrail policy and alerting settings. Validated once at start
 * with every problem listed; a JSON Schema generated from this definition is published at `config.schema.json`.
 */
const ruleOverride = z.strictObject({
    enabled: z.boolean().optional().describe('Turn the rule off with false.'),
    severity: z.enum(SEVERITIES).optional().describe('Override the rule default severity.'),
});

export const responderConfigSchema = z.strictObject({
    $schema: z.string().optional(),
    rules: z.record(z.string(), ruleOverride).optional().describe('Per-rule switches, keyed by rule id.'),
});

export type ResponderConfigInput = z.infer<typeof responderConfigSchema>;

/** The validated, frozen configuration the pipeline runs with. */
export interface ResponderConfig {
    readonly ruleToggles: ReadonlyMap<string, RuleToggle>;
}

function pathOf(path: readonly PropertyKey[]): string {
    return path.length === 0 ? '(root)' : path.map((p) => String(p)).join('.');
}

/**
 * Validates a parsed config object against the schema and the known rule ids, collecting every problem.
 * @param source - Where the config came from, for the error message.
 */
export function parseResponderConfig(value: unknown, knownRuleIds: readonly string[], source: string): ResponderConfig {
    const parsed = responderConfigSchema.safeParse(value);
    const problems: string[] = [];
    if (!parsed.success) {
        for (const issue of parsed.error.issues) problems.push(`${pathOf(issue.path)}: ${issue.message}`);
    }
    // Rule ids are checked on the raw input too, so that a schema error elsewhere does not hide an unknown id.
    const rawRules = typeof value === 'object' && value !== null ? (value as { rules?: unknown }).rules : undefined;
    const known = new Set(knownRuleIds);
    if (typeof rawRules === 'object' && rawRules !== null) {
        for (const id of Object.keys(rawRules)) {
            if (!known.has(id))
                problems.push(`rules.${id}: unknown rule id (known: ${knownRuleIds.join(', ') || 'none'})`);
        }
    }
    const data: ResponderConfigInput = parsed.success ? parsed.data : {};
    const toggles = new Map<string, RuleToggle>();
    for (const [id, o] of Object.entries(data.rules ?? {}))
        toggles.set(id, { enabled: o.enabled ?? true, severity: o.severity });
    if (problems.length > 0) throw new ConfigError(source, problems);
    return Object.freeze({ ruleToggles: toggles });
}

/** Parses config JSON text; a syntax error is reported like any other problem. */
export function parseResponderConfigText(
    text: string,
    knownRuleIds: readonly string[],
    source: string,
): ResponderConfig {
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch (err) {
        throw new ConfigError(source, [`not valid JSON: ${err instanceof Error ? err.message : String(err)}`]);
    }
    return parseResponderConfig(value, knownRuleIds, source);
}

export const DEFAULT_CONFIG: ResponderConfig = Object.freeze({ ruleToggles: new Map() });

/** The JSON Schema of the config file, published as `config.schema.json`; rule ids are enumerated for completion. */
export function configJsonSchema(knownRuleIds: readonly string[]): Record<string, unknown> {
    const schema = z.toJSONSchema(responderConfigSchema, { io: 'input' }) as unknown as {
        properties: { rules: Record<string, unknown> };
    };
    schema.properties.rules.propertyNames = { enum: [...knownRuleIds] };
    return { ...schema, title: 'kv-responder configuration' };
}
