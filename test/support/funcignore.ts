import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * gitignore-style matching of a `.funcignore`, as `azd deploy` applies it when it zips a Functions service: every
 * line is a gitignore pattern, and when the file exists azd applies no default exclusion of its own, not even
 * `node_modules` (learn.microsoft.com/azure/developer/azure-developer-cli/service-packaging-ignore-files; source
 * MicrosoftDocs/azure-dev-docs, articles/azure-developer-cli/service-packaging-ignore-files.md;
 * deployment-contracts.md, "azd packaging"). The gitignore rules implemented here (git-scm.com/docs/gitignore):
 * `#` comments and blank lines; `!` negates; a trailing `/` matches directories only; a `/` at the start or in the
 * middle anchors the pattern to the root, otherwise it matches a name at any depth; `*` and `?` do not cross `/`;
 * `**` spans directories; `[...]` classes; the last matching pattern wins; nothing under an excluded directory is
 * included again (the walk does not enter it).
 */
export interface IgnoreRule {
    readonly source: string;
    readonly negate: boolean;
    readonly dirOnly: boolean;
    readonly regex: RegExp;
}

function globToRegex(glob: string, anchored: boolean): RegExp {
    let re = '';
    for (let i = 0; i < glob.length; i++) {
        const c = glob[i] as string;
        if (c === '*') {
            if (glob[i + 1] === '*') {
                const atStart = i === 0 || glob[i - 1] === '/';
                const atEnd = i + 2 === glob.length || glob[i + 2] === '/';
                if (atStart && atEnd) {
                    // `**/` spans zero or more directories; a trailing `/**` everything below.
                    if (i + 2 === glob.length) re += '.*';
                    else {
                        re += '(?:.*/)?';
                        i++; // the slash
                    }
                    i++;
                    continue;
                }
            }
            re += '[^/]*';
        } else if (c === '?') re += '[^/]';
        else if (c === '[') {
            const end = glob.indexOf(']', i + 2);
            if (end === -1) re += '\\[';
            else {
                let cls = glob.slice(i + 1, end);
                if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
                re += `[${cls.replace(/\\/g, '\\\\')}]`;
                i = end;
            }
        } else if (c === '\\' && i + 1 < glob.length) {
            re += `\\${glob[++i] as string}`;
        } else re += /[.+^${}()|\\]/.test(c) ? `\\${c}` : c;
    }
    return new RegExp(`^${anchored ? '' : '(?:.*/)?'}${re}$`);
}

export function parseIgnore(text: string): IgnoreRule[] {
    const rules: IgnoreRule[] = [];
    for (const raw of text.split(/\r?\n/)) {
        let line = raw.replace(/(?<!\\)\s+$/, '');
        if (line.length === 0 || line.startsWith('#')) continue;
        const negate = line.startsWith('!');
        if (negate) line = line.slice(1);
        const dirOnly = line.endsWith('/');
        if (dirOnly) line = line.slice(0, -1);
        const anchored = line.includes('/');
        if (line.startsWith('/')) line = line.slice(1);
        rules.push({ source: raw, negate, dirOnly, regex: globToRegex(line, anchored) });
    }
    return rules;
}

/** Whether `path` (relative, `/`-separated) is excluded by the rules; the last matching rule decides. */
export function isIgnored(rules: readonly IgnoreRule[], path: string, isDir: boolean): boolean {
    let ignored = false;
    for (const r of rules) {
        if (r.dirOnly && !isDir) continue;
        if (r.regex.test(path)) ignored = !r.negate;
    }
    return ignored;
}

/**
 * The files azd would put in the zip of the service rooted at `root`: a walk that does not enter excluded directories.
 * azd itself never packages its `.azure` folder.
 */
export function packageFiles(root: string): string[] {
    const rules = parseIgnore(readFileSync(join(root, '.funcignore'), 'utf8'));
    const out: string[] = [];
    const walk = (rel: string): void => {
        for (const name of readdirSync(join(root, rel)).sort()) {
            const path = rel === '' ? name : `${rel}/${name}`;
            const st = lstatSync(join(root, path));
            const isDir = st.isDirectory();
            if (isIgnored(rules, path, isDir) || (isDir && rel === '' && name === '.azure')) continue;
            if (isDir) walk(path);
            else if (st.isFile()) out.push(path);
        }
    };
    walk('');
    return out;
}
