// Restores the real Bicep compiler into .tools/bicep/ (git-ignored) and prints the path of the binary.
//
// The compiler comes from NuGet, package Azure.Bicep.CommandLine.linux-x64 (the self-contained `bicep` executable
// lives under its tools/ folder). `dotnet restore` of a throw-away project with a PackageDownload item fetches exactly
// that package and nothing else (no build, no target framework assets). A second run finds the binary and returns at
// once, without calling dotnet.
//
//   node scripts/bicep.mjs            prints the binary path (restores first when needed)
//
// Exit codes: 0 ok, 3 `dotnet` not found, 1 restore failed.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The version NuGet serves here (pinned: a compiler upgrade changes lint results and must be a reviewed change). */
export const BICEP_VERSION = '0.49.2';
const PACKAGE = 'Azure.Bicep.CommandLine.linux-x64';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// KVR_BICEP_TOOLS_DIR moves the folder (the tests use it to show what happens without dotnet).
const TOOLS = process.env.KVR_BICEP_TOOLS_DIR
    ? resolve(process.env.KVR_BICEP_TOOLS_DIR)
    : join(ROOT, '.tools', 'bicep');
const PACKAGES = join(TOOLS, 'packages');

/** Where the binary sits once restored (NuGet lower-cases the package folder). */
function findBinary() {
    const base = join(PACKAGES, PACKAGE.toLowerCase(), BICEP_VERSION);
    if (!existsSync(base)) return undefined;
    const stack = [base];
    while (stack.length > 0) {
        const dir = stack.pop();
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
            const path = join(dir, entry.name);
            if (entry.isDirectory()) stack.push(path);
            else if (entry.name === 'bicep' && statSync(path).size > 0) return path;
        }
    }
    return undefined;
}

function hasDotnet() {
    const r = spawnSync('dotnet', ['--version'], { encoding: 'utf8' });
    return r.status === 0;
}

function restore() {
    mkdirSync(TOOLS, { recursive: true });
    const project = join(TOOLS, 'restore.csproj');
    // netstandard2.0 needs no workload; PackageDownload fetches the package as is, without resolving its assets.
    writeFileSync(
        project,
        [
            '<Project Sdk="Microsoft.NET.Sdk">',
            '  <PropertyGroup>',
            '    <TargetFramework>netstandard2.0</TargetFramework>',
            '    <DisableImplicitNuGetFallbackFolder>true</DisableImplicitNuGetFallbackFolder>',
            '  </PropertyGroup>',
            '  <ItemGroup>',
            `    <PackageDownload Include="${PACKAGE}" Version="[${BICEP_VERSION}]" />`,
            '  </ItemGroup>',
            '</Project>',
            '',
        ].join('\n'),
    );
    const r = spawnSync('dotnet', ['restore', project, '--packages', PACKAGES, '--nologo', '--verbosity', 'quiet'], {
        cwd: TOOLS,
        encoding: 'utf8',
        env: { ...process.env, DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1' },
    });
    if (r.status !== 0) {
        process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
        throw new Error(`dotnet restore of ${PACKAGE} ${BICEP_VERSION} failed (exit ${r.status})`);
    }
}

/** The path of the bicep binary, restoring it first when needed. Throws when dotnet is absent or restore fails. */
export function ensureBicep() {
    let binary = findBinary();
    if (!binary) {
        if (!hasDotnet()) {
            const err = new Error(`dotnet not found: install the .NET SDK to restore the Bicep compiler (${PACKAGE})`);
            err.code = 'NO_DOTNET';
            throw err;
        }
        restore();
        binary = findBinary();
        if (!binary) throw new Error(`${PACKAGE} ${BICEP_VERSION} restored, but no bicep binary in ${PACKAGES}`);
    }
    // NuGet extraction does not keep the executable bit.
    if ((statSync(binary).mode & 0o111) === 0) chmodSync(binary, 0o755);
    return binary;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    try {
        process.stdout.write(`${ensureBicep()}\n`);
    } catch (err) {
        process.stderr.write(`scripts/bicep.mjs: ${err.message}\n`);
        process.exit(err.code === 'NO_DOTNET' ? 3 : 1);
    }
}
