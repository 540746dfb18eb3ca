// `kvr posture`: the daily CMK posture checks, run locally against simulated vaults. Each vault of the key inventory
// gets its own local Key Vault keys fake seeded with its keys; the keys are read back through the real KeyClient
// (the same adapter as the timer function) and checked with the same pure checks.
import { KeyClient } from '@azure/keyvault-keys';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { z } from 'zod';
import { readVaultKeys } from '../adapters/keyVaultKeys';
import { JsonLinesDecisionSink } from '../adapters/streamSinks';
import { checkVaultPosture, type KeyFacts, type PostureDecision, POSTURE_CHECKS } from '../core/cmk/posture';
import { ResponderError } from '../core/errors';
import type { Vault } from '../simulation/armSimulator';
import { type KeySeed, keysClientOptionsFor, startKeyVaultKeysFake } from '../simulation/keyVaultKeysFake';
import { startSimulation } from '../simulation/simulation';
import { type CliIo, loadConfigFile, parseCommandArgs, readJsonFile, UsageError } from './common';
import { vaultUrlOf as defaultVaultUrl } from '../app/cmk';

const DATE_TIME = 'expected epoch seconds or an ISO date-time such as 2030-01-01T00:00:00Z';
const epochOrIso = z.union([z.number().int().min(0, DATE_TIME), z.iso.datetime({ offset: true, error: DATE_TIME })], {
    error: DATE_TIME,
});

const lifetimeAction = z.strictObject({
    trigger: z
        .strictObject({ timeAfterCreate: z.string().min(1).optional(), timeBeforeExpiry: z.string().min(1).optional() })
        .refine(
            (t) => (t.timeAfterCreate === undefined) !== (t.timeBeforeExpiry === undefined),
            'a trigger needs exactly one of timeAfterCreate and timeBeforeExpiry',
        ),
    action: z.strictObject({ type: z.enum(['Rotate', 'Notify']) }),
});

/** One key of the key inventory: the fields of the fake's KeySeed that matter to the posture checks. */
const keyEntry = z
    .strictObject({
        name: z.string().regex(/^[0-9a-zA-Z-]{1,127}$/, 'expected 1-127 letters, digits and -'),
        kty: z.enum(['RSA', 'RSA-HSM', 'EC', 'EC-HSM']).optional(),
        keySize: z
            .union([z.literal(2048), z.literal(3072), z.literal(4096)], { error: 'expected 2048, 3072 or 4096' })
            .optional(),
        curve: z.enum(['P-256', 'P-384', 'P-521']).optional(),
        enabled: z.boolean().optional(),
        nbf: epochOrIso.optional(),
        exp: epochOrIso.optional(),
        tags: z.record(z.string(), z.string()).optional(),
        keyOps: z.array(z.string().min(1)).optional(),
        managed: z.boolean().optional(),
        rotationPolicy: z
            .strictObject({ lifetimeActions: z.array(lifetimeAction), expiryTime: z.string().min(1).optional() })
            .optional(),
    })
    .superRefine((k, ctx) => {
        const ec = k.kty === 'EC' || k.kty === 'EC-HSM';
        if (ec && k.keySize !== undefined)
            ctx.addIssue({ code: 'custom', path: ['keySize'], message: 'keySize is for RSA keys' });
        if (!ec && k.curve !== undefined)
            ctx.addIssue({ code: 'custom', path: ['curve'], message: 'curve is for EC keys (set kty EC or EC-HSM)' });
    });

type KeyEntry = z.infer<typeof keyEntry>;

const keyInventorySchema = z.record(z.string(), z.array(keyEntry));

function pathText(path: readonly PropertyKey[]): string {
    return path
        .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
        .join('')
        .replace(/^$/, '(root)');
}

function epochSeconds(v: number | string): number {
    return typeof v === 'number' ? v : Math.floor(Date.parse(v) / 1000);
}

function seedOf(k: KeyEntry): KeySeed {
    const seed: KeySeed = { name: k.name };
    if (k.kty !== undefined) seed.kty = k.kty;
    if (k.keySize !== undefined) seed.keySize = k.keySize;
    if (k.curve !== undefined) seed.curve = k.curve;
    if (k.enabled !== undefined) seed.enabled = k.enabled;
    if (k.nbf !== undefined) seed.nbf = epochSeconds(k.nbf);
    if (k.exp !== undefined) seed.exp = epochSeconds(k.exp);
    if (k.tags !== undefined) seed.tags = k.tags;
    if (k.keyOps !== undefined) seed.keyOps = k.keyOps;
    if (k.managed !== undefined) seed.managed = k.managed;
    if (k.rotationPolicy !== undefined) {
        seed.rotationPolicy = {
            lifetimeActions: k.rotationPolicy.lifetimeActions.map((a) => ({
                trigger: {
                    ...(a.trigger.timeAfterCreate === undefined ? {} : { timeAfterCreate: a.trigger.timeAfterCreate }),
                    ...(a.trigger.timeBeforeExpiry === undefined
                        ? {}
                        : { timeBeforeExpiry: a.trigger.timeBeforeExpiry }),
                },
                action: { type: a.action.type },
            })),
            ...(k.rotationPolicy.expiryTime === undefined ? {} : { expiryTime: k.rotationPolicy.expiryTime }),
        };
    }
    return seed;
}

export interface VaultKeySeeds {
    readonly vault: Vault;
    readonly seeds: readonly KeySeed[];
}

/**
 * Validates a key inventory (`{ "<vault name>": [keys] }`) against the vault inventory, listing every problem: each
 * vault it names must be in the vault inventory, each key valid and named once per vault (names are
 * case-insensitive in Key Vault).
 */
export function parseKeyInventory(value: unknown, source: string, vaults: readonly Vault[]): VaultKeySeeds[] {
    const problems: string[] = [];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new ResponderError('INPUT.UNREADABLE', `${source}: expected a JSON object { "<vault name>": [keys] }`);
    }
    const parsed = keyInventorySchema.safeParse(value);
    if (!parsed.success) for (const i of parsed.error.issues) problems.push(`${pathText(i.path)}: ${i.message}`);
    const byName = new Map(vaults.map((v) => [v.name.toLowerCase(), v]));
    const out: VaultKeySeeds[] = [];
    const vaultsSeen = new Set<string>();
    for (const [name, keys] of Object.entries(value as Record<string, unknown>)) {
        const vault = byName.get(name.toLowerCase());
        if (vault === undefined) {
            problems.push(`${name}: not a vault of the vault inventory (known: ${[...byName.keys()].join(', ')})`);
            continue;
        }
        if (vaultsSeen.has(vault.name.toLowerCase())) problems.push(`${name}: vault listed twice`);
        vaultsSeen.add(vault.name.toLowerCase());
        if (!Array.isArray(keys)) continue; // reported by the schema
        const seen = new Set<string>();
        keys.forEach((k: unknown, i) => {
            const n = typeof k === 'object' && k !== null ? (k as { name?: unknown }).name : undefined;
            if (typeof n !== 'string') return;
            if (seen.has(n.toLowerCase())) problems.push(`${name}[${i}].name: key '${n}' is listed twice`);
            seen.add(n.toLowerCase());
        });
        if (parsed.success) out.push({ vault, seeds: (parsed.data[name] ?? []).map(seedOf) });
    }
    if (problems.length > 0) throw new ResponderError('INPUT.UNREADABLE', `${source}: ${problems.join('; ')}`);
    return out;
}

/** The fake accepts one token; the real KeyClient gets it through the usual challenge flow. */
function fixedToken(token: string): TokenCredential {
    return {
        getToken: (): Promise<AccessToken> => Promise.resolve({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
    };
}

function vaultUrlOf(v: Vault): string {
    return (v.properties.vaultUri ?? defaultVaultUrl(v.name)).replace(/\/+$/, '');
}

export interface PostureRun {
    readonly vaults: number;
    readonly keys: number;
    readonly decisions: readonly PostureDecision[];
}

function summaryText(run: PostureRun, appTierChecked: boolean): string {
    const findings = run.decisions.filter((d) => d.type === 'finding');
    const errors = run.decisions.filter((d) => d.type === 'error');
    const lines = [
        `posture: ${run.vaults} vault(s), ${run.keys} key(s) read; ${findings.length} finding(s), ${errors.length} fact(s) unknown`,
    ];
    for (const c of POSTURE_CHECKS) {
        const own = findings.filter((f) => f.rule === c.id);
        // The severity the findings carry: `rules.<check id>.severity` overrides the check's own.
        if (own.length > 0) lines.push(`  ${c.id} (${own[0]?.severity ?? c.severity}): ${own.length}`);
    }
    for (const f of findings) lines.push(`  [${f.severity}] ${f.rule}: ${f.summary}`);
    for (const e of errors) lines.push(`  [unknown] ${e.rule ?? ''}: ${e.message}`);
    if (!appTierChecked)
        lines.push('  cmk-app-tier-missing not checked: set cmk.posture.appTierTag in the config to check it');
    return `${lines.join('\n')}\n`;
}

function summaryJson(run: PostureRun, appTierChecked: boolean): string {
    const byRule: Record<string, number> = {};
    for (const d of run.decisions) if (d.type === 'finding') byRule[d.rule] = (byRule[d.rule] ?? 0) + 1;
    return `${JSON.stringify({
        vaults: run.vaults,
        keys: run.keys,
        findings: byRule,
        unknown: run.decisions.filter((d) => d.type === 'error').length,
        appTierChecked,
    })}\n`;
}

/**
 * `kvr posture --vaults <inventory.json> --keys <key-inventory.json> [--config <file>] [--json]`: decisions as JSON
 * Lines on stdout (findings, and `error` lines for facts that could not be read), a summary on stderr (one JSON
 * object with --json). Only the vaults the key inventory names are checked. Exit 0 when the checks ran.
 */
export async function runPosture(args: readonly string[], io: CliIo): Promise<number> {
    const { values } = parseCommandArgs(
        args,
        {
            vaults: { type: 'string' },
            keys: { type: 'string' },
            config: { type: 'string' },
            json: { type: 'boolean' },
        },
        false,
    );
    if (values.vaults === undefined) throw new UsageError('posture needs --vaults <inventory.json>');
    if (values.keys === undefined) throw new UsageError('posture needs --keys <key-inventory.json>');
    const inventory = await readJsonFile(values.vaults, 'vault inventory');
    const keyInventory = await readJsonFile(values.keys, 'key inventory');
    // The same validation (ARM OpenAPI) and vault tags as `replay --vaults`; no ARM call is made.
    const simulation = await startSimulation(inventory, values.vaults);
    await simulation.close();
    const config = await loadConfigFile(values.config, simulation.tags);
    const targets = parseKeyInventory(keyInventory, values.keys, inventory as Vault[]);

    const now = Date.now();
    const sink = new JsonLinesDecisionSink(io.stdout);
    const decisions: PostureDecision[] = [];
    let keys = 0;
    for (const { vault, seeds } of targets) {
        const fake = await startKeyVaultKeysFake({ keys: [...seeds] });
        let facts: KeyFacts[];
        try {
            const client = new KeyClient(fake.vaultUrl, fixedToken(fake.token), keysClientOptionsFor(fake));
            facts = await readVaultKeys(client, vault.name);
        } finally {
            await fake.close();
        }
        keys += facts.length;
        const found = checkVaultPosture(
            {
                vaultUrl: vaultUrlOf(vault),
                vaultName: vault.name,
                vaultId: vault.id,
                enabledForDiskEncryption: vault.properties.enabledForDiskEncryption ?? false,
                keys: facts,
            },
            config.cmk.posture,
            now,
            config.ruleToggles,
        );
        await sink.write(found);
        decisions.push(...found);
    }
    const run: PostureRun = { vaults: targets.length, keys, decisions };
    const appTierChecked = config.cmk.posture.appTierTag !== undefined;
    io.stderr.write(values.json === true ? summaryJson(run, appTierChecked) : summaryText(run, appTierChecked));
    return 0;
}
