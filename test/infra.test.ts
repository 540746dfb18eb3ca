// Static checks of our own invariants in the infrastructure templates (infra/**/*.bicep, azure.yaml): least privilege,
// identity-only settings, setting names in step with the app. A small reader (comment stripping, balanced brackets,
// regexes) reads the real files as text. Compiling and linting with the real Bicep compiler is test/bicep.test.ts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { SettingNames } from '../shared/config/settingNames';
import { ACTION_PERMISSIONS, EXCLUDED_PERMISSIONS } from '../shared/core/remediation/types';

const ROOT = resolve(__dirname, '..');
const INFRA = join(ROOT, 'infra');

/** Built-in role definition ids, checked against the Azure built-in roles reference. Same keys as infra/modules/roles.bicep. */
const DOCUMENTED_ROLE_IDS: Readonly<Record<string, string>> = {
    eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde', // Azure Event Hubs Data Receiver
    storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3', // Storage Table Data Contributor
    storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe', // Storage Blob Data Contributor
    storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b', // Storage Blob Data Owner
    storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88', // Storage Queue Data Contributor
    keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424', // Key Vault Crypto User
    keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6', // Key Vault Secrets User
    keyVaultReader: '21090545-7ca7-4776-b22c-e363652d74d2', // Key Vault Reader
    reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7', // Reader
    monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb', // Monitoring Metrics Publisher
    contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c', // Contributor
};
const POLICY_ID = 'ed7c8c13-51e7-49d1-8a43-8490431a0da2';
const POLICY_PARAMETERS = ['profileName', 'eventHubRuleId', 'eventHubLocation', 'metricsEnabled', 'logsEnabled'];
/** Local-only alternatives (Azurite, a config file in the package): production must not set them. */
const LOCAL_ONLY = [
    SettingNames.quarantineConnectionString,
    SettingNames.quarantineContainer,
    SettingNames.configPath,
    SettingNames.possessionOnlyLinks,
] as const;
/** App settings read by the Functions host, @azure/identity or Application Insights, not by our settings loader. */
const PLATFORM_SETTINGS = ['AzureWebJobsStorage', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'];

// ---- a tiny Bicep reader -------------------------------------------------------------------------------------------

/** Blanks comments (keeping line breaks and string literals), so regexes see only code. */
function stripComments(src: string): string {
    let out = '';
    let i = 0;
    while (i < src.length) {
        if (src.startsWith("'''", i)) {
            const end = src.indexOf("'''", i + 3);
            const stop = end < 0 ? src.length : end + 3;
            out += src.slice(i, stop);
            i = stop;
        } else if (src[i] === "'") {
            let j = i + 1;
            while (j < src.length && src[j] !== "'") j += src[j] === '\\' ? 2 : 1;
            out += src.slice(i, j + 1);
            i = j + 1;
        } else if (src.startsWith('//', i)) {
            while (i < src.length && src[i] !== '\n') i++;
        } else if (src.startsWith('/*', i)) {
            const end = src.indexOf('*/', i + 2);
            const stop = end < 0 ? src.length : end + 2;
            out += src.slice(i, stop).replace(/[^\n]/g, ' ');
            i = stop;
        } else {
            out += src[i++];
        }
    }
    return out;
}

/** The text between the bracket at `open` and its match (strings skipped), without the brackets. */
function balanced(code: string, open: number): string {
    const pairs: Record<string, string> = { '[': ']', '{': '}', '(': ')' };
    const first = pairs[code[open] ?? ''];
    if (!first) throw new Error(`no bracket at ${open}`);
    const stack = [first];
    let i = open + 1;
    while (i < code.length && stack.length > 0) {
        const c = code[i] ?? '';
        const close = pairs[c];
        if (c === "'") {
            i++;
            while (i < code.length && code[i] !== "'") i += code[i] === '\\' ? 2 : 1;
        } else if (close) {
            stack.push(close);
        } else if (c === stack[stack.length - 1]) {
            stack.pop();
        }
        i++;
    }
    if (stack.length > 0) throw new Error(`unbalanced bracket at ${open}`);
    return code.slice(open + 1, i - 1);
}

/** The body after `<prefix>` up to the matching bracket, e.g. `after(code, /appSettings:\s*\[/)`. */
function blockAfter(code: string, prefix: RegExp): string | undefined {
    const m = prefix.exec(code);
    return m ? balanced(code, m.index + m[0].length - 1) : undefined;
}

function stringsIn(text: string): string[] {
    return [...text.matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((m) => m[1] ?? '');
}

interface BicepFile {
    readonly path: string;
    readonly rel: string;
    readonly code: string;
}

function listBicep(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? listBicep(join(dir, e.name)) : e.name.endsWith('.bicep') ? [join(dir, e.name)] : [],
    );
}

function readBicep(path: string): BicepFile {
    return { path, rel: relative(ROOT, path), code: stripComments(readFileSync(path, 'utf8')) };
}

const files = listBicep(INFRA).map(readBicep);
const byRel = (rel: string): BicepFile => {
    const f = files.find((x) => x.rel === rel);
    if (!f) throw new Error(`${rel} is missing`);
    return f;
};

/** Relative paths a file references: modules (local, not registry) and compile-time imports. */
function referencedPaths(f: BicepFile): string[] {
    const modules = [...f.code.matchAll(/^\s*module\s+\w+\s+'([^']+)'/gm)].map((m) => m[1] ?? '');
    const imports = [...f.code.matchAll(/^\s*import\s+(?:\{[^}]*\}|\*\s+as\s+\w+)\s+from\s+'([^']+)'/gm)].map(
        (m) => m[1] ?? '',
    );
    return [...modules, ...imports].filter((p) => !/^(br|ts)[:/]/.test(p));
}

/** `var <name> = <object or array>` of a file, as the bracketed body. */
function varBody(f: BicepFile, name: string): string | undefined {
    return blockAfter(f.code, new RegExp(`^\\s*var\\s+${name}\\s*=\\s*[[{]`, 'm'));
}

/** An exported object var of string values, e.g. builtInRoles. */
function objectVar(f: BicepFile, name: string): Record<string, string> {
    const body = varBody(f, name);
    if (body === undefined) throw new Error(`${f.rel}: no var ${name}`);
    return Object.fromEntries(
        [...body.matchAll(/^\s*'?([\w-]+)'?\s*:\s*'([^']*)'/gm)].map((m) => [m[1] ?? '', m[2] ?? '']),
    );
}

/** Resolves an identifier used in `file` to a var declared in it or imported from another file. */
function resolveVar(f: BicepFile, name: string): { file: BicepFile; body: string } | undefined {
    const own = varBody(f, name);
    if (own !== undefined) return { file: f, body: own };
    for (const m of f.code.matchAll(/^\s*import\s+\{([^}]*)\}\s+from\s+'([^']+)'/gm)) {
        if ((m[1] ?? '').split(',').some((n) => n.trim() === name)) {
            const other = readBicep(resolve(dirname(f.path), m[2] ?? ''));
            const body = varBody(other, name);
            if (body !== undefined) return { file: other, body };
        }
    }
    return undefined;
}

/** Resource declarations of a type (any API version), not `existing` ones, with their bodies. */
function resources(f: BicepFile, type: string): string[] {
    const re = new RegExp(`^\\s*resource\\s+\\w+\\s+'${type.replace(/\//g, '\\/')}@[^']+'\\s*(existing\\s*)?=`, 'gm');
    const out: string[] = [];
    for (const m of f.code.matchAll(re)) {
        if (m[1]) continue;
        const open = f.code.indexOf('{', m.index + m[0].length);
        out.push(balanced(f.code, open));
    }
    return out;
}

/** The one resource of a type in a file. */
function resource(f: BicepFile, type: string): string {
    const [body, ...more] = resources(f, type);
    if (body === undefined || more.length > 0) throw new Error(`${f.rel}: expected one ${type}`);
    return body;
}

/** App settings of the Function app template: name -> value expression. */
function appSettings(): Map<string, string> {
    const f = byRel('infra/modules/functionApp.bicep');
    const block = blockAfter(f.code, /\bappSettings\s*:\s*\[/);
    if (block === undefined) throw new Error('functionApp.bicep: no appSettings');
    const settings = new Map<string, string>();
    for (const part of block.split(/\bname\s*:\s*'/).slice(1)) {
        const name = /^([^']+)'/.exec(part)?.[1] ?? '';
        const value = /\bvalue\s*:\s*([\s\S]*)$/.exec(part)?.[1] ?? '';
        settings.set(name, value.replace(/\}\s*\{?\s*$/, '').trim());
    }
    return settings;
}

// ---- checks --------------------------------------------------------------------------------------------------------

describe('infra templates', () => {
    it('has main.bicep and modules under infra/modules', () => {
        expect(files.map((f) => f.rel)).toEqual(expect.arrayContaining(['infra/main.bicep']));
        expect(files.filter((f) => f.rel !== 'infra/main.bicep').every((f) => f.rel.startsWith('infra/modules/'))).toBe(
            true,
        );
    });

    it.each(files.map((f) => [f.rel, f] as const))('%s: every param is used', (_rel, f) => {
        const params = [...f.code.matchAll(/^\s*param\s+(\w+)\b/gm)].map((m) => m[1] ?? '');
        // Without the declarations and their decorators, each name must still occur.
        const rest = f.code
            .split('\n')
            .filter((line) => !/^\s*(param\s|@)/.test(line))
            .join('\n');
        const unused = params.filter((p) => !new RegExp(`\\b${p}\\b`).test(rest));
        expect(unused).toEqual([]);
    });

    it.each(files.map((f) => [f.rel, f] as const))('%s: every referenced module exists', (_rel, f) => {
        const missing = referencedPaths(f).filter((p) => !existsSync(resolve(dirname(f.path), p)));
        expect(missing).toEqual([]);
    });

    it('main.bicep reaches every module (directly or through the standalone management-group variant)', () => {
        const reached = new Set<string>();
        const visit = (f: BicepFile): void => {
            for (const p of referencedPaths(f)) {
                const rel = relative(ROOT, resolve(dirname(f.path), p));
                if (!reached.has(rel)) {
                    reached.add(rel);
                    visit(byRel(rel));
                }
            }
        };
        visit(byRel('infra/main.bicep'));
        const standalone = [
            'infra/main.bicep',
            'infra/modules/remediationRoleMg.bicep',
            'infra/modules/activityLogDiagnosticsMg.bicep',
        ];
        expect(files.map((f) => f.rel).filter((r) => !reached.has(r) && !standalone.includes(r))).toEqual([]);
    });
});

describe('Function app settings', () => {
    const settings = appSettings();
    const names = [...settings.keys()];
    const isSet = (setting: string): boolean => names.some((n) => n === setting || n.startsWith(`${setting}__`));

    it('sets every setting production needs', () => {
        const needed = Object.values(SettingNames).filter((n) => !(LOCAL_ONLY as readonly string[]).includes(n));
        expect(needed.filter((n) => !isSet(n))).toEqual([]);
        expect(names).toEqual(
            expect.arrayContaining([
                `${SettingNames.eventHubConnection}__fullyQualifiedNamespace`,
                `${SettingNames.eventHubConnection}__credential`,
                `${SettingNames.eventHubConnection}__clientId`,
                'AzureWebJobsStorage__accountName',
                'AzureWebJobsStorage__credential',
                'AzureWebJobsStorage__clientId',
                'APPLICATIONINSIGHTS_CONNECTION_STRING',
            ]),
        );
        expect(settings.get(`${SettingNames.eventHubConnection}__credential`)).toBe("'managedidentity'");
        expect(settings.get('AzureWebJobsStorage__credential')).toBe("'managedidentity'");
    });

    it('sets only settings the app, the host or the SDKs read', () => {
        const known = [...Object.values(SettingNames), ...PLATFORM_SETTINGS];
        const unknown = names.filter((n) => !known.some((k) => n === k || n.startsWith(`${k}__`)));
        expect(unknown).toEqual([]);
    });

    it("passes the identity's own principal id, so the app knows itself (KVR_RESPONDER_PRINCIPAL_ID)", () => {
        expect(settings.get('KVR_RESPONDER_PRINCIPAL_ID')).toBe('identityPrincipalId');
        expect(byRel('infra/main.bicep').code).toMatch(/\bidentityPrincipalId:\s*identity\.outputs\.principalId\b/);
        expect(byRel('infra/modules/identity.bicep').code).toMatch(
            /output\s+principalId\s+string\s*=\s*identity\.properties\.principalId\b/,
        );
    });

    it('makes the Teams webhook a Key Vault reference the app identity can resolve', () => {
        // App Service resolves a Key Vault reference with the identity in keyVaultReferenceIdentity, which needs secret
        // read on the secret (App Service docs, "Use Key Vault references as app settings").
        const site = resource(byRel('infra/modules/functionApp.bicep'), 'Microsoft.Web/sites');
        expect(site).toMatch(/\bkeyVaultReferenceIdentity:\s*identityId\b/);
        expect(site).toMatch(/type:\s*'UserAssigned'/);
        expect(settings.get(SettingNames.teamsWebhookUrl)).toMatch(
            /^empty\(teamsWebhookSecretUri\)\s*\?\s*''\s*:\s*'@Microsoft\.KeyVault\(SecretUri=\$\{teamsWebhookSecretUri\}\)'$/,
        );
        const kv = byRel('infra/modules/keyVault.bicep');
        const secret = resource(kv, 'Microsoft.KeyVault/vaults/secrets');
        expect(secret).toMatch(/\bvalue:\s*teamsWebhookUrl\b/);
        expect(kv.code).toMatch(
            /@secure\(\)\s*(@description\('(?:[^'\\]|\\.)*'\)\s*)?param\s+teamsWebhookUrl\s+string/,
        );
        const grants = resources(kv, 'Microsoft.Authorization/roleAssignments').filter((g) =>
            /builtInRoles\.keyVaultSecretsUser\b/.test(g),
        );
        expect(grants).toHaveLength(1);
        expect(grants[0]).toMatch(/\bscope:\s*teamsWebhook\b/);
        expect(kv.code).toMatch(
            /output\s+teamsWebhookSecretUri\s+string\s*=\s*teamsWebhook\.\?properties\.secretUri\b/,
        );
        expect(byRel('infra/main.bicep').code).toMatch(
            /\bteamsWebhookSecretUri:\s*keyVault\.outputs\.teamsWebhookSecretUri\b/,
        );
    });

    it('does not set the local-only alternatives, nor a connection-string host storage', () => {
        expect(LOCAL_ONLY.filter((n) => isSet(n))).toEqual([]);
        expect(names).not.toContain('AzureWebJobsStorage');
        expect(names).not.toContain(`${SettingNames.eventHubConnection}`);
    });

    it('has no value that looks like a secret', () => {
        const secretish =
            /AccountKey=|SharedAccessKey=|SharedAccessSignature=|[?&]sig=|listKeys\(|listConnectionStrings/i;
        expect([...settings].filter(([, v]) => secretish.test(v)).map(([n]) => n)).toEqual([]);
        expect(files.filter((f) => /\blist(Keys|ConnectionStrings|AccountSas|ServiceSas)\s*\(/i.test(f.code))).toEqual(
            [],
        );
    });

    it('points rule state at the https table endpoint of the storage module', () => {
        expect(settings.get(SettingNames.state)).toBe('stateTableEndpoint');
        const main = byRel('infra/main.bicep').code;
        expect(main).toMatch(/\bstateTableEndpoint:\s*storage\.outputs\.tableEndpoint\b/);
        expect(byRel('infra/modules/storage.bicep').code).toMatch(
            /output\s+tableEndpoint\s+string\s*=\s*account\.properties\.primaryEndpoints\.table\b/,
        );
    });
});

describe('roles and policy', () => {
    const roles = byRel('infra/modules/roles.bicep');
    const builtIn = objectVar(roles, 'builtInRoles');

    it('keeps the built-in role ids the documented ones', () => {
        expect(builtIn).toEqual(DOCUMENTED_ROLE_IDS);
    });

    it('uses only documented role ids, by name, from roles.bicep', () => {
        const guid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
        const documented = new Set(Object.values(DOCUMENTED_ROLE_IDS));
        for (const f of files) {
            const ids = [...f.code.matchAll(guid)].map((m) => m[0].toLowerCase()).filter((g) => g !== POLICY_ID);
            expect({ file: f.rel, unknown: ids.filter((g) => !documented.has(g)) }).toEqual({
                file: f.rel,
                unknown: [],
            });
            // Only roles.bicep spells out role ids; the others name them.
            if (f !== roles) expect({ file: f.rel, ids }).toEqual({ file: f.rel, ids: [] });
            const named = [...f.code.matchAll(/\bbuiltInRoles\.(\w+)/g)].map((m) => m[1] ?? '');
            expect(named.filter((n) => !(n in DOCUMENTED_ROLE_IDS))).toEqual([]);
        }
    });

    it('assigns the roles the app needs', () => {
        const used = (rel: string): string[] =>
            [...byRel(rel).code.matchAll(/\bbuiltInRoles\.(\w+)/g)].map((m) => m[1] ?? '');
        expect(used('infra/modules/eventHubs.bicep')).toContain('eventHubsDataReceiver');
        expect(used('infra/modules/storage.bicep')).toEqual(
            expect.arrayContaining([
                'storageTableDataContributor',
                'storageBlobDataContributor',
                'storageBlobDataOwner',
            ]),
        );
        expect(used('infra/modules/keyVault.bicep')).toEqual(
            expect.arrayContaining(['keyVaultCryptoUser', 'keyVaultSecretsUser']),
        );
        expect(used('infra/modules/monitoring.bicep')).toContain('monitoringMetricsPublisher');
        expect(used('infra/modules/diagnosticsPolicy.bicep')).toContain('contributor');
    });

    it('gives the custom remediation role exactly the union of ACTION_PERMISSIONS (and the pending linked-scope action)', () => {
        const union = [...new Set(Object.values(ACTION_PERMISSIONS).flat())].sort();
        const definitions = files.flatMap((f) =>
            resources(f, 'Microsoft.Authorization/roleDefinitions').map((body) => ({ f, body })),
        );
        expect(definitions.map((d) => d.f.rel).sort()).toEqual([
            'infra/modules/remediationRole.bicep',
            'infra/modules/remediationRoleMg.bicep',
        ]);
        for (const { f, body } of definitions) {
            // Role names are unique per tenant (RoleDefinitionWithSameNameExists): each names its assignable scope.
            const roleName = /\broleName:\s*(.+)$/m.exec(body)?.[1]?.trim() ?? '';
            expect(roleName).toMatch(/^'kv-responder remediation \(.*\$\{.+\}.*\)'$/);
            expect(roleName).toMatch(
                f.rel.endsWith('Mg.bicep')
                    ? /\$\{managementGroup\(\)\.name\}/
                    : /\$\{last\(split\(protectedScope, '\/'\)\)\}/,
            );
            const actions = /\bactions\s*:\s*(\w+|\[)/.exec(body);
            if (!actions) throw new Error(`${f.rel}: role without actions`);
            let list: string[];
            if (actions[1] === '[') {
                list = stringsIn(balanced(body, actions.index + actions[0].length - 1));
            } else {
                const resolved = resolveVar(f, actions[1] ?? '');
                if (!resolved) throw new Error(`${f.rel}: cannot resolve ${actions[1]}`);
                list = stringsIn(resolved.body);
            }
            expect(list.length).toBe(new Set(list).size);
            expect([...list].sort()).toEqual(union);
            // Least privilege (issue 15): no right to grant roles or delete diagnostic settings, not even by wildcard.
            const excluded = new Set(EXCLUDED_PERMISSIONS.map((x) => x.toLowerCase()));
            expect(list.filter((x) => excluded.has(x.toLowerCase()) || x.includes('*'))).toEqual([]);
            expect(blockAfter(body, /\bnotActions\s*:\s*\[/)?.trim()).toBe('');
            expect(body).not.toMatch(/dataActions\s*:\s*\[\s*'/);
        }
        expect(byRel('infra/main.bicep').code).toMatch(/module\s+\w+\s+'modules\/remediationRole\.bicep'/);
    });

    it('the remediation role holds no roleAssignments/write and no diagnosticSettings/delete (undo of those is manual)', () => {
        const union = new Set(
            Object.values(ACTION_PERMISSIONS)
                .flat()
                .map((x) => x.toLowerCase()),
        );
        expect(union.has('microsoft.authorization/roleassignments/write')).toBe(false);
        expect(union.has('microsoft.insights/diagnosticsettings/delete')).toBe(false);
        expect(EXCLUDED_PERMISSIONS).toEqual([
            'Microsoft.Authorization/roleAssignments/write',
            'Microsoft.Insights/diagnosticSettings/delete',
        ]);
        // What each new action needs, exactly: delete at the protected scope, diagnostic settings write.
        expect(ACTION_PERMISSIONS['remove-role-assignment']).toEqual([
            'Microsoft.Authorization/roleAssignments/read',
            'Microsoft.Authorization/roleAssignments/delete',
        ]);
        expect(ACTION_PERMISSIONS['restore-diagnostic-setting']).toEqual([
            'Microsoft.Insights/diagnosticSettings/read',
            'Microsoft.Insights/diagnosticSettings/write',
        ]);
        const code = roles.code.replace(/\/\/.*$/gm, '');
        expect(code).not.toMatch(/'Microsoft\.Authorization\/roleAssignments\/write'/i);
        expect(code).not.toMatch(/'Microsoft\.Insights\/diagnosticSettings\/delete'/i);
    });

    it('assigns the built-in Key Vault diagnostic-settings policy with the namespace authorization rule', () => {
        expect(roles.code).toMatch(
            new RegExp(
                `var\\s+diagnosticsPolicyDefinitionId\\s*=\\s*'/providers/Microsoft\\.Authorization/policyDefinitions/${POLICY_ID}'`,
            ),
        );
        const policy = byRel('infra/modules/diagnosticsPolicy.bicep');
        const assignment = resource(policy, 'Microsoft.Authorization/policyAssignments');
        expect(assignment).toMatch(/policyDefinitionId:\s*diagnosticsPolicyDefinitionId\b/);
        expect(assignment).toMatch(/identity:\s*\{\s*type:\s*'SystemAssigned'\s*\}/);
        const parameters = blockAfter(assignment, /\bparameters\s*:\s*\{/) ?? '';
        const keys = [...parameters.matchAll(/^\s*(\w+)\s*:\s*\{/gm)].map((m) => m[1] ?? '');
        expect(keys.filter((k) => !POLICY_PARAMETERS.includes(k))).toEqual([]);
        expect(keys).toContain('eventHubRuleId');
        expect(byRel('infra/main.bicep').code).toMatch(/eventHubRuleId:\s*eventHubs\.outputs\.authorizationRuleId\b/);
        const eh = byRel('infra/modules/eventHubs.bicep');
        expect(eh.code).toMatch(/output\s+authorizationRuleId\s+string\s*=\s*monitorRule\.id/);
        const rule = resource(eh, 'Microsoft.EventHub/namespaces/authorizationRules');
        expect(stringsIn(blockAfter(rule, /\brights\s*:\s*\[/) ?? '').sort()).toEqual(['Listen', 'Manage', 'Send']);
    });

    it('creates the hub with the consumer group kv-responder on a Standard namespace', () => {
        const eh = byRel('infra/modules/eventHubs.bicep');
        expect(resource(eh, 'Microsoft.EventHub/namespaces')).toMatch(/sku:\s*\{\s*name:\s*'Standard'/);
        expect(resource(eh, 'Microsoft.EventHub/namespaces/eventhubs')).toMatch(/partitionCount:\s*partitionCount/);
        expect(byRel('infra/main.bicep').code).toMatch(/var\s+consumerGroupName\s*=\s*'kv-responder'/);
    });
});

describe('Key Vault and storage', () => {
    it('creates the vault with RBAC authorization and purge protection, and an RSA signing key', () => {
        const kv = byRel('infra/modules/keyVault.bicep');
        const vault = resource(kv, 'Microsoft.KeyVault/vaults');
        expect(vault).toMatch(/\benableRbacAuthorization:\s*true\b/);
        expect(vault).toMatch(/\benablePurgeProtection:\s*true\b/);
        const key = resource(kv, 'Microsoft.KeyVault/vaults/keys');
        expect(key).toMatch(/\bkty:\s*'RSA'/);
        expect(Number(/\bkeySize:\s*(\d+)/.exec(key)?.[1])).toBeGreaterThanOrEqual(2048);
        expect(byRel('infra/main.bicep').code).toMatch(/signingKeyName:\s*'ack-signing'/);
    });

    it('disables shared-key access and creates the state table and quarantine container', () => {
        const main = byRel('infra/main.bicep').code;
        const account = resource(byRel('infra/modules/storage.bicep'), 'Microsoft.Storage/storageAccounts');
        expect(account).toMatch(/\ballowSharedKeyAccess:\s*false\b/);
        expect(main).toMatch(/var\s+stateTableName\s*=\s*'kvrstate'/);
        expect(main).toMatch(/var\s+quarantineContainerName\s*=\s*'kvr-quarantine'/);
    });

    it('uses no Microsoft.KeyVault API version older than 2026-02-01, existing references included', () => {
        // Every Key Vault control-plane API version before 2026-02-01 retires on 27 February 2027
        // (learn.microsoft.com/azure/key-vault/general/migrate-api-version).
        const versions = files.flatMap((f) =>
            [...f.code.matchAll(/'Microsoft\.KeyVault\/[\w/]+@([\w-]+)'/g)].map((m) => ({
                file: f.rel,
                v: m[1] ?? '',
            })),
        );
        expect(versions.length).toBeGreaterThanOrEqual(3);
        expect(versions.filter((x) => x.v < '2026-02-01')).toEqual([]);
    });

    it('runs the app on Flex Consumption, Node 22, as the user-assigned identity', () => {
        const app = byRel('infra/modules/functionApp.bicep');
        expect(resource(app, 'Microsoft.Web/serverfarms')).toMatch(/tier:\s*'FlexConsumption'/);
        const site = resource(app, 'Microsoft.Web/sites');
        // Node 20 support on Functions ended 2026-04-30 (learn.microsoft.com/azure/azure-functions/supported-languages).
        expect(site).toMatch(/runtime:\s*\{\s*name:\s*'node',\s*version:\s*'22'\s*\}/);
        expect(site).toMatch(/type:\s*'UserAssigned'/);
        expect(site).toMatch(/'azd-service-name':\s*'kv-responder'/);
    });
});

describe('App Service Authentication and network', () => {
    const app = byRel('infra/modules/functionApp.bicep');
    const main = byRel('infra/main.bicep');

    /** HTTP routes registered in functions/*.ts, as `/api/<route>` (host.json keeps the default route prefix). */
    const routes = readdirSync(join(ROOT, 'functions'))
        .filter((f) => f.endsWith('.ts'))
        .flatMap((f) => {
            const src = readFileSync(join(ROOT, 'functions', f), 'utf8');
            return /\bapp\.http\(/.test(src)
                ? [...src.matchAll(/\broute:\s*'([^']+)'/g)].map((m) => `/api/${m[1]}`)
                : [];
        });
    const excluded = stringsIn(varBody(app, 'authExcludedPaths') ?? '');
    /** excludedPaths: exact paths, or a trailing `/*` for everything below (MicrosoftDocs/azure-docs#86514). */
    const isExcluded = (route: string): boolean =>
        excluded.some((p) => (p.endsWith('/*') ? route.startsWith(p.slice(0, -1)) : route === p));
    /** A route template with its `{params}` filled, as a request path. */
    const sample = (route: string): string => route.replace(/\{[^}]+\}/g, 'x');

    it('requires a signed-in Entra ID user on the incident links only', () => {
        const auth = resource(app, 'Microsoft.Web/sites/config');
        expect(auth).toMatch(/\bname:\s*'authsettingsV2'/);
        expect(auth).toMatch(/\brequireAuthentication:\s*true\b/);
        expect(auth).toMatch(/\bunauthenticatedClientAction:\s*'RedirectToLoginPage'/);
        expect(auth).toMatch(/\bexcludedPaths:\s*authExcludedPaths\b/);
        expect(auth).toMatch(/\bclientId:\s*authClientId\b/);
        expect(app.code).toMatch(
            /resource\s+auth\s+'Microsoft\.Web\/sites\/config@[\w-]+'\s*=\s*if\s*\(!empty\(authClientId\)\)/,
        );
        const links = routes.filter((r) => r.startsWith('/api/incidents/'));
        expect(links).toHaveLength(1);
        expect(links.filter((r) => isExcluded(sample(r)))).toEqual([]);
        // Every other HTTP function (function-key endpoints) stays reachable without a user sign-in.
        expect(routes.filter((r) => !links.includes(r) && !isExcluded(sample(r)))).toEqual([]);
        expect(routes.length).toBeGreaterThan(links.length);
        expect(main.code).toMatch(/\bauthClientId:\s*authClientId\b/);
    });

    it('tells the app to trust the Easy Auth headers exactly when authentication is configured', () => {
        expect(appSettings().get(SettingNames.trustEasyAuth)).toBe("empty(authClientId) ? 'false' : 'true'");
    });

    it('integrates with an existing subnet only when one is given', () => {
        expect(resource(app, 'Microsoft.Web/sites')).toMatch(
            /\bvirtualNetworkSubnetId:\s*empty\(virtualNetworkSubnetId\)\s*\?\s*null\s*:\s*virtualNetworkSubnetId\b/,
        );
        expect(main.code).toMatch(/\bparam\s+appSubnetId\s+string\s*=\s*''/);
        expect(main.code).toMatch(/\bvirtualNetworkSubnetId:\s*appSubnetId\b/);
    });
});

describe('main.parameters.json (azd)', () => {
    const file = JSON.parse(readFileSync(join(INFRA, 'main.parameters.json'), 'utf8')) as {
        parameters: Record<string, { value: unknown }>;
    };
    const main = byRel('infra/main.bicep').code;

    it('maps only parameters main.bicep declares', () => {
        const declared = [...main.matchAll(/^\s*param\s+(\w+)\b/gm)].map((m) => m[1]);
        expect(Object.keys(file.parameters).filter((p) => !declared.includes(p))).toEqual([]);
    });

    it('maps optional environment values only onto parameters whose default is empty (an unset variable is empty)', () => {
        for (const [name, { value }] of Object.entries(file.parameters)) {
            if (name === 'environmentName' || name === 'location') continue;
            expect({ name, value }).toEqual({ name, value: expect.stringMatching(/^\$\{[A-Z_]+\}$/) });
            expect({
                name,
                decl: new RegExp(`^\\s*param\\s+${name}\\s+string\\s*=\\s*''\\s*$`, 'm').test(main),
            }).toEqual({
                name,
                decl: true,
            });
        }
    });
});

describe('azure.yaml', () => {
    const yaml = readFileSync(join(ROOT, 'azure.yaml'), 'utf8').replace(/#.*$/gm, '');
    /** The indented lines under a top-level key. */
    const section = (key: string): string =>
        new RegExp(`^${key}:\\s*\\n((?:[ \\t]+.*\\n?|\\s*\\n)*)`, 'm').exec(yaml)?.[1] ?? '';

    it('names the infra folder', () => {
        const infra = section('infra');
        expect(infra).toMatch(/^\s+path:\s*\.?\/?infra\/?\s*$/m);
        expect(infra).toMatch(/^\s+provider:\s*bicep\s*$/m);
        expect(existsSync(join(INFRA, `${/^\s+module:\s*(\S+)/m.exec(infra)?.[1] ?? 'main'}.bicep`))).toBe(true);
    });

    it('declares the function service whose name the app is tagged with', () => {
        const services = section('services');
        const service = /^\s+([\w-]+):\s*$/m.exec(services)?.[1];
        expect(service).toBe('kv-responder');
        expect(services).toMatch(/^\s+host:\s*function\s*$/m);
        expect(services).toMatch(/^\s+language:\s*js\s*$/m);
        expect(services).toMatch(/^\s+project:\s*\.\/?\s*$/m);
    });
});
