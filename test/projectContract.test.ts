import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configJsonSchema, parseResponderConfigText } from '../shared/config/responderConfig';
import { SettingNames } from '../shared/config/settingNames';
import { configurableRuleIds, ruleIds, rules } from '../shared/core/rules';
import { ruleCatalogue } from '../shared/core/rules/catalogue';
import { REPO } from './support/cli';

const read = (p: string): string => readFileSync(join(REPO, p), 'utf8');

describe('project contract', () => {
    it('publishes the JSON Schema generated from the config definition', () => {
        expect(JSON.parse(read('config.schema.json'))).toEqual(configJsonSchema(configurableRuleIds));
    });

    it('ships a demo config that validates', () => {
        expect(() => parseResponderConfigText(read('samples/demo-config.json'), ruleIds, 'demo')).not.toThrow();
    });

    it('documents every app setting in local.settings.example.json', () => {
        const values = Object.keys(
            (JSON.parse(read('local.settings.example.json')) as { Values: Record<string, string> }).Values,
        );
        for (const name of Object.values(SettingNames)) {
            expect(values.some((v) => v === name || v.startsWith(`${name}__`))).toBe(true);
        }
    });

    it('lists every rule directory in the registry, with ids equal to directory names', () => {
        const dirs = readdirSync(join(REPO, 'shared/core/rules'), { withFileTypes: true })
            .filter((d) => d.isDirectory())
            .map((d) => d.name)
            .sort();
        expect([...ruleIds].sort()).toEqual(dirs);
        expect(new Set(ruleIds).size).toBe(rules.length);
    });

    it('keeps functions/ to registrations only', () => {
        for (const f of readdirSync(join(REPO, 'functions'))) {
            const text = read(join('functions', f));
            expect(text).toMatch(/app\.\w+\('/);
            expect(text.split('\n').length).toBeLessThan(30);
        }
    });
});

describe('the bundled Functions entry point (package.json main)', () => {
    const load = (env: Record<string, string>) =>
        spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(REPO, 'dist/functions/index.js'))})`], {
            env: { PATH: process.env.PATH ?? '', ...env },
            encoding: 'utf8',
        });

    it('is the file package.json names', () => {
        expect((JSON.parse(read('package.json')) as { main: string }).main).toBe('dist/functions/index.js');
    });

    it('loads when the settings are valid', () => {
        const r = load({
            KVR_QUARANTINE_CONTAINER_URL: 'https://acct.blob.core.windows.net/kvr-quarantine',
            KVR_STATE: 'https://acct.table.core.windows.net',
            KVR_PUBLIC_URL: 'https://kvr.example.net',
            KVR_SIGNING_KEY_ID: 'https://kv-kvr.vault.azure.net/keys/ack-signing',
        });
        expect(r.stderr).not.toMatch(/Error/);
        expect(r.status).toBe(0);
    });

    it('refuses to load, naming every problem, when misconfigured', () => {
        const r = load({ KVR_CONFIG: '{"rules":{"x":{}}}' });
        expect(r.status).not.toBe(0);
        expect(r.stderr).toContain('ConfigError: invalid config app settings: KVR_CONFIG: rules.x: unknown rule id');
        expect(r.stderr).toContain('KVR_QUARANTINE_CONTAINER_URL is required');
    });
});

describe('rule documentation', () => {
    it('docs/rules.md is generated from the current rule metadata', () => {
        expect(read('docs/rules.md')).toBe(ruleCatalogue());
    });

    it('every rule has complete metadata', () => {
        for (const r of rules) {
            const m = r.meta;
            expect({ id: m.id, ok: m.title.length > 0 && m.description.length > 40 && m.mitre.length > 0 }).toEqual({
                id: m.id,
                ok: true,
            });
            expect(m.runbook.length).toBeGreaterThanOrEqual(2);
            expect(m.falsePositives.length).toBeGreaterThanOrEqual(1);
            expect(m.references.every((x) => x.startsWith('https://'))).toBe(true);
            expect(m.mitre.every((t) => /^T\d{4}(\.\d{3})?$/.test(t))).toBe(true);
        }
    });
});
