// The infrastructure templates through the real Bicep compiler (NuGet package Azure.Bicep.CommandLine.linux-x64,
// restored by scripts/bicep.mjs into .tools/bicep/). `bicep build` compiles every deployable entry point and
// `bicep lint` checks every .bicep file with the committed bicepconfig.json; any diagnostic, warning or error, fails.
// Where `dotnet` is absent the compiler cannot be restored: the tests are skipped, loudly, naming the missing tool.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

// The compiler needs seconds per run (a .NET start-up), more on a loaded machine.
jest.setTimeout(300_000);

const ROOT = resolve(__dirname, '..');
const INFRA = join(ROOT, 'infra');
/**
 * Deployable entry points: `azd up` deploys main.bicep; the management-group modules are deployed on their own
 * (infra/README.md).
 */
const ENTRY_POINTS = [
    'infra/main.bicep',
    'infra/modules/remediationRoleMg.bicep',
    'infra/modules/activityLogDiagnosticsMg.bicep',
];

function listBicep(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? listBicep(join(dir, e.name)) : e.name.endsWith('.bicep') ? [join(dir, e.name)] : [],
    );
}
const FILES = listBicep(INFRA).map((f) => relative(ROOT, f));

// ---- the compiler --------------------------------------------------------------------------------------------------

/** Restores the compiler (fast when already there). Exit 3: no dotnet. Anything else non-zero is a real failure. */
const restore = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bicep.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 540_000,
});
const NO_DOTNET = restore.status === 3;
const BICEP = restore.status === 0 ? restore.stdout.trim() : '';
if (NO_DOTNET) {
    // Visible in every run's output, next to the skipped tests it explains.
    process.stderr.write(
        '\nSKIPPED: the Bicep compiler tests need `dotnet` (the .NET SDK) to restore Azure.Bicep.CommandLine.linux-x64; ' +
            'dotnet was not found. Install the .NET SDK to compile and lint infra/**/*.bicep.\n\n',
    );
}

interface Run {
    readonly status: number | null;
    readonly out: string;
}

function bicep(args: readonly string[], cwd = ROOT): Run {
    const r = spawnSync(BICEP, args, {
        cwd,
        encoding: 'utf8',
        timeout: 240_000,
        env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: '1' },
    });
    if (r.error) throw r.error;
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Diagnostic {
    readonly file: string;
    readonly level: string;
    readonly code: string;
    readonly line: string;
}

/** Diagnostics in the compiler's default format: `<path>(line,col) : <Level> <code>: <message>`. */
function diagnostics(out: string, base = ROOT): Diagnostic[] {
    return [...out.matchAll(/^(.+?)\(\d+,\d+\) : (Error|Warning|Info) ([\w-]+): .*$/gm)].map((m) => ({
        file: relative(base, m[1] ?? ''),
        level: m[2] ?? '',
        code: m[3] ?? '',
        line: m[0],
    }));
}

const builds = new Map<string, Run>();
/** `bicep build <rel> --stdout`, once per file per run (the compiler takes seconds to start). */
function buildRun(rel: string): Run {
    let r = builds.get(rel);
    if (!r) {
        r = bicep(['build', rel, '--stdout']);
        builds.set(rel, r);
    }
    return r;
}

/** Compiles one file to its ARM JSON (throws with the diagnostics when there are any). */
function build(rel: string): ArmTemplate {
    const r = buildRun(rel);
    if (r.status !== 0 || diagnostics(r.out).length > 0) throw new Error(`bicep build ${rel} failed:\n${r.out}`);
    return JSON.parse(r.out) as ArmTemplate;
}

// ---- the compiled ARM JSON ------------------------------------------------------------------------------------------

interface ArmResource {
    readonly type: string;
    readonly apiVersion: string;
    readonly name?: string;
    readonly condition?: unknown;
    readonly identity?: unknown;
    readonly properties?: Record<string, unknown>;
}
interface ArmTemplate {
    readonly variables?: Record<string, unknown>;
    readonly resources: Record<string, ArmResource> | ArmResource[];
}

/** Every resource of a template and of the templates of its nested deployments (modules), depth first. */
function allResources(t: ArmTemplate): ArmResource[] {
    const list = Array.isArray(t.resources) ? t.resources : Object.values(t.resources);
    return list.flatMap((r) => {
        const nested = (r.properties?.template as ArmTemplate | undefined) ?? undefined;
        return r.type === 'Microsoft.Resources/deployments' && nested ? [r, ...allResources(nested)] : [r];
    });
}

/** The template of the module deployed under `name` in main.bicep. */
function moduleTemplate(t: ArmTemplate, name: string): ArmTemplate & { parameters?: Record<string, unknown> } {
    const r = allResources(t).find((x) => x.type === 'Microsoft.Resources/deployments' && x.name === name);
    if (!r?.properties?.template) throw new Error(`module ${name} not found in the compiled template`);
    return r.properties.template as ArmTemplate;
}

function moduleParameters(t: ArmTemplate, name: string): Record<string, { value?: unknown }> {
    const r = allResources(t).find((x) => x.type === 'Microsoft.Resources/deployments' && x.name === name);
    return (r?.properties?.parameters ?? {}) as Record<string, { value?: unknown }>;
}

// ---- tests ---------------------------------------------------------------------------------------------------------

const describeCompiler = NO_DOTNET ? describe.skip : describe;

if (NO_DOTNET) {
    describe('Bicep compiler (dotnet not found)', () => {
        it.skip('SKIPPED: `dotnet` (the .NET SDK) is not installed, so infra/**/*.bicep was not compiled or linted', () => {
            // Skipped on purpose: see the warning printed above.
        });
    });
}

describe('scripts/bicep.mjs without dotnet', () => {
    it('exits 3 with a message naming the missing tool, so the compiler tests skip loudly', () => {
        const dir = mkdtempSync(join(tmpdir(), 'kvr-nodotnet-'));
        try {
            // A PATH that holds node and nothing else, and an empty tools folder: nothing to find, nothing to restore with.
            symlinkSync(process.execPath, join(dir, 'node'));
            const r = spawnSync(join(dir, 'node'), [join(ROOT, 'scripts', 'bicep.mjs')], {
                cwd: ROOT,
                encoding: 'utf8',
                env: { PATH: dir, KVR_BICEP_TOOLS_DIR: join(dir, 'tools') },
            });
            expect(r.status).toBe(3);
            expect(r.stdout).toBe('');
            expect(r.stderr).toMatch(/dotnet not found: install the \.NET SDK/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describeCompiler('Bicep compiler: restore', () => {
    it('restores the pinned compiler into .tools/bicep and runs it', () => {
        expect({ status: restore.status, stderr: restore.stderr }).toEqual({ status: 0, stderr: '' });
        expect(relative(ROOT, BICEP)).toMatch(/^\.tools\/bicep\//);
        expect(bicep(['--version']).out).toMatch(/Bicep CLI version 0\.49\.2\b/);
    });
});

describeCompiler('Bicep compiler: build and lint', () => {
    let lint: Run;
    beforeAll(() => {
        // One compiler process for every file (it starts slowly); the results are split per file below.
        lint = bicep(['lint', '--pattern', 'infra/**/*.bicep']);
    });

    it.each(ENTRY_POINTS)('bicep build %s: compiles without any diagnostic', (rel) => {
        const r = buildRun(rel);
        expect(diagnostics(r.out).map((d) => d.line)).toEqual([]);
        expect(r.status).toBe(0);
        expect(JSON.parse(r.out)).toHaveProperty('resources');
    });

    it('lints every .bicep file (the pattern reaches them all)', () => {
        expect(FILES.length).toBeGreaterThanOrEqual(12);
        expect(lint.status).toBe(0);
    });

    it.each(FILES)('bicep lint %s: no warning, no error', (rel) => {
        expect(
            diagnostics(lint.out)
                .filter((d) => d.file === rel)
                .map((d) => d.line),
        ).toEqual([]);
    });

    it('bicepconfig.json turns use-recent-api-versions on as an error', () => {
        const config = JSON.parse(readFileSync(join(ROOT, 'bicepconfig.json'), 'utf8')) as {
            analyzers: { core: { enabled: boolean; rules: Record<string, { level: string }> } };
        };
        expect(config.analyzers.core.enabled).toBe(true);
        expect(config.analyzers.core.rules['use-recent-api-versions']?.level).toBe('error');
    });

    it('suppresses use-recent-api-versions only on the diagnostic setting resource, with its reason', () => {
        const suppressions = FILES.flatMap((rel) =>
            readFileSync(join(ROOT, rel), 'utf8')
                .split('\n')
                .map((line, i, lines) => ({ rel, line, next: lines[i + 1] ?? '', before: lines[i - 1] ?? '' }))
                .filter((l) => /#disable-(next-line|diagnostics)/.test(l.line)),
        );
        expect(suppressions.map((s) => [s.rel, s.line.trim()]).sort()).toEqual([
            ['infra/modules/activityLogDiagnostics.bicep', '#disable-next-line use-recent-api-versions'],
            ['infra/modules/activityLogDiagnosticsMg.bicep', '#disable-next-line use-recent-api-versions'],
            ['infra/modules/vaultDiagnostics.bicep', '#disable-next-line use-recent-api-versions'],
        ]);
        for (const s of suppressions) {
            expect(s.next).toMatch(/^resource \w+ 'Microsoft\.Insights\/diagnosticSettings@/);
            expect(s.before).toMatch(/^\/\/ /);
        }
    });
});

describeCompiler('Bicep compiler: a broken template fails', () => {
    let dir: string;
    beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'kvr-bicep-'));
        cpSync(INFRA, join(dir, 'infra'), { recursive: true });
        cpSync(join(ROOT, 'bicepconfig.json'), join(dir, 'bicepconfig.json'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const edit = (rel: string, change: (src: string) => string): void => {
        const path = join(dir, rel);
        const before = readFileSync(path, 'utf8');
        const after = change(before);
        expect(after).not.toBe(before);
        writeFileSync(path, after);
    };

    it('an undefined symbol in main.bicep is a compile error', () => {
        edit('infra/main.bicep', (s) => s.replace('identity.outputs.principalId', 'identty.outputs.principalId'));
        const r = bicep(['build', 'infra/main.bicep', '--stdout'], dir);
        expect(r.status).not.toBe(0);
        expect(diagnostics(r.out, dir).filter((d) => d.level === 'Error' && d.file === 'infra/main.bicep')).toEqual(
            expect.arrayContaining([expect.objectContaining({ code: 'BCP057' })]),
        );
    });

    it('a module missing a required parameter is a compile error', () => {
        edit('infra/main.bicep', (s) => s.replace(/^\s*identityPrincipalId: identity\.outputs\.principalId\n/m, ''));
        const r = bicep(['build', 'infra/main.bicep', '--stdout'], dir);
        expect(r.status).not.toBe(0);
        expect(diagnostics(r.out, dir).map((d) => d.code)).toContain('BCP035');
    });

    it('an old API version is a lint error (use-recent-api-versions)', () => {
        edit('infra/modules/keyVault.bicep', (s) =>
            s.replace(/Microsoft\.KeyVault\/vaults@[\w-]+'/, "Microsoft.KeyVault/vaults@2023-07-01'"),
        );
        const r = bicep(['lint', 'infra/modules/keyVault.bicep'], dir);
        expect(r.status).not.toBe(0);
        expect(diagnostics(r.out, dir)).toEqual(
            expect.arrayContaining([expect.objectContaining({ level: 'Error', code: 'use-recent-api-versions' })]),
        );
    });

    it('a lint warning is reported, and the lint test counts it as a failure', () => {
        edit('infra/modules/identity.bicep', (s) => `${s}\nvar unusedForTheTest = 'x'\n`);
        const r = bicep(['lint', 'infra/modules/identity.bicep'], dir);
        const found = diagnostics(r.out, dir).filter((d) => d.file === 'infra/modules/identity.bicep');
        expect(found).toEqual(
            expect.arrayContaining([expect.objectContaining({ level: 'Warning', code: 'no-unused-vars' })]),
        );
    });
});

// ---- issue 12 defects, checked on what the compiler produces -------------------------------------------------------

/** The built-in policy's existence condition (Azure/azure-policy, built-in-policies/policyDefinitions/Key Vault/
 *  KeyVault_DiagnosticLog_Deploy.json, id ed7c8c13-51e7-49d1-8a43-8490431a0da2): at least one `logs[*]` entry whose
 *  `enabled` equals `logsEnabled`, and at least one `metrics[*]` entry whose `enabled` equals `metricsEnabled`
 *  (policy string comparison is case-insensitive; a boolean reads as 'True'/'False'). */
function policyCalls(setting: Record<string, unknown>, logsEnabled: string, metricsEnabled: string): boolean {
    const count = (key: string, want: string): number =>
        ((setting[key] as { enabled?: unknown }[] | undefined) ?? []).filter(
            (e) => String(e.enabled).toLowerCase() === want.toLowerCase(),
        ).length;
    return count('logs', logsEnabled) >= 1 && count('metrics', metricsEnabled) >= 1;
}

describeCompiler('compiled templates', () => {
    let main: ArmTemplate;
    beforeAll(() => {
        main = build('infra/main.bicep');
    });

    it('uses no Microsoft.KeyVault API version older than 2026-02-01 (older ones retire on 27 Feb 2027)', () => {
        // learn.microsoft.com/azure/key-vault/general/migrate-api-version
        const kv = [...allResources(main), ...allResources(build('infra/modules/vaultDiagnostics.bicep'))].filter((r) =>
            r.type.toLowerCase().startsWith('microsoft.keyvault/'),
        );
        expect(kv.length).toBeGreaterThanOrEqual(2);
        expect(kv.filter((r) => r.apiVersion < '2026-02-01').map((r) => `${r.type}@${r.apiVersion}`)).toEqual([]);
    });

    it('runs the app on Node 22', () => {
        const site = allResources(main).find((r) => r.type === 'Microsoft.Web/sites');
        expect((site?.properties?.functionAppConfig as { runtime?: unknown } | undefined)?.runtime).toEqual({
            name: 'node',
            version: '22',
        });
    });

    it('the direct diagnostic setting is one the built-in policy calls compliant (no flip-flop)', () => {
        const direct = allResources(build('infra/modules/vaultDiagnostics.bicep')).find(
            (r) => r.type === 'Microsoft.Insights/diagnosticSettings',
        );
        const policy = allResources(moduleTemplate(main, 'kvr-diagnostics-policy')).find(
            (r) => r.type === 'Microsoft.Authorization/policyAssignments',
        );
        const p = (policy?.properties?.parameters ?? {}) as Record<string, { value: string }>;
        expect(p.logsEnabled?.value).toBe('True');
        expect(p.metricsEnabled?.value).toBe('False');
        expect(policyCalls(direct?.properties ?? {}, p.logsEnabled?.value ?? '', p.metricsEnabled?.value ?? '')).toBe(
            true,
        );
        // ...and both carry the same name: the policy's profileName and the module's settingName are one variable.
        const profile = moduleParameters(main, 'kvr-diagnostics-policy').profileName?.value;
        expect(profile).toBe("[variables('diagnosticSettingName')]");
        expect(p.profileName?.value).toBe("[parameters('profileName')]");
        const vaultModule = allResources(main).find(
            (r) => r.type === 'Microsoft.Resources/deployments' && String(r.name).includes('kvr-vault-diagnostics'),
        );
        expect((vaultModule?.properties?.parameters as Record<string, { value?: unknown }>).settingName?.value).toBe(
            "[variables('diagnosticSettingName')]",
        );
        expect(main.variables?.diagnosticSettingName).toBe('kv-responder');
    });

    it('grants the app identity read on the Teams secret its Key Vault reference names, under the same condition', () => {
        const template = moduleTemplate(main, 'keyVault');
        const kv = allResources(template) as (ArmResource & { scope?: string })[];
        const secret = kv.find((r) => r.type === 'Microsoft.KeyVault/vaults/secrets');
        const grants = kv.filter(
            (r) => r.type === 'Microsoft.Authorization/roleAssignments' && String(r.scope).includes('vaults/secrets'),
        );
        expect(secret?.condition).toBe("[not(empty(parameters('teamsWebhookUrl')))]");
        expect(grants).toHaveLength(1);
        const grant = grants[0];
        expect(grant?.condition).toBe(secret?.condition);
        expect(grant?.scope).toBe(
            "[resourceId('Microsoft.KeyVault/vaults/secrets', parameters('name'), 'teams-webhook')]",
        );
        expect(grant?.properties?.principalId).toBe("[parameters('principalId')]");
        expect(grant?.properties?.roleDefinitionId).toBe(
            "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', variables('builtInRoles').keyVaultSecretsUser)]",
        );
        // Key Vault Secrets User (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
        expect((template.variables?.builtInRoles as Record<string, string>).keyVaultSecretsUser).toBe(
            '4633458b-17de-408a-b874-0445c86b69e6',
        );
        const site = allResources(main).find((r) => r.type === 'Microsoft.Web/sites');
        expect(site?.properties?.keyVaultReferenceIdentity).toBe("[parameters('identityId')]");
    });

    it('streams the Activity Log (Administrative, Policy) of the protected subscription to the responder hub', () => {
        // Role assignments and diagnostic-setting changes reach the Activity Log only (issue 15); the app reads one hub.
        const module = allResources(main).find(
            (r) => r.type === 'Microsoft.Resources/deployments' && r.name === 'kvr-activity-log-diagnostics',
        ) as (ArmResource & { subscriptionId?: string }) | undefined;
        expect(module?.condition).toBe("[and(parameters('streamActivityLog'), variables('protectedIsSubscription'))]");
        expect(module?.subscriptionId).toBe("[last(split(parameters('protectedScope'), '/'))]");
        const params = moduleParameters(main, 'kvr-activity-log-diagnostics');
        expect(String(params.eventHubName?.value)).toContain('outputs.eventHubName.value');
        expect(String(params.eventHubRuleId?.value)).toContain('outputs.authorizationRuleId.value');
        for (const template of [
            moduleTemplate(main, 'kvr-activity-log-diagnostics'),
            build('infra/modules/activityLogDiagnosticsMg.bicep'),
        ]) {
            const setting = allResources(template).find(
                (r) => r.type.toLowerCase() === 'microsoft.insights/diagnosticsettings',
            );
            const logs = (setting?.properties?.logs ?? []) as { category: string; enabled: boolean }[];
            expect(logs).toEqual([
                { category: 'Administrative', enabled: true },
                { category: 'Policy', enabled: true },
            ]);
            expect(setting?.properties?.eventHubName).toBe("[parameters('eventHubName')]");
            expect(setting?.properties?.eventHubAuthorizationRuleId).toBe("[parameters('eventHubRuleId')]");
            // Subscription and management group settings take no metrics.
            expect(setting?.properties?.metrics).toBeUndefined();
        }
    });

    it('names each custom remediation role after its assignable scope (role names are unique per tenant)', () => {
        const roleName = (t: ArmTemplate): string =>
            String(
                allResources(t).find((r) => r.type === 'Microsoft.Authorization/roleDefinitions')?.properties?.roleName,
            );
        const sub = roleName(moduleTemplate(main, 'kvr-remediation-role'));
        const mg = roleName(build('infra/modules/remediationRoleMg.bicep'));
        expect(sub).toMatch(
            /^\[format\('kv-responder remediation \(subscription \{0\}\)', .*parameters\('protectedScope'\)/,
        );
        expect(mg).toMatch(
            /^\[format\('kv-responder remediation \(management group \{0\}\)', managementGroup\(\)\.name\)\]$/,
        );
    });
});
