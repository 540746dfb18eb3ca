// Headless Chromium for page tests: Debian's `chromium` package driven by playwright-core, never a browser download.
// Getting it is a step of the test command: jest's global setup (globalSetup.js) calls chromiumSetup() once, which
// installs the package with apt-get where it may (root or passwordless sudo; KVR_TEST_INSTALL_CHROMIUM=0 forbids it)
// and hands the outcome to the test workers (KVR_TEST_CHROMIUM). Where Chromium cannot be had, the browser tests are
// registered as skipped with titles that name it, and the run ends with one warning saying why (plainSummaryReporter).
import { spawnSync } from 'node:child_process';
import {
    accessSync,
    closeSync,
    constants,
    openSync,
    readFileSync,
    statSync,
    unlinkSync,
    writeFileSync,
    writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export type ChromiumStatus =
    | { readonly ok: true; readonly executablePath: string; readonly version: string }
    | { readonly ok: false; readonly reason: string };

const APT_GET = '/usr/bin/apt-get';
const INSTALL_COMMAND = 'apt-get update && apt-get install -y --no-install-recommends chromium';
const UPDATE_TIMEOUT_MS = 5 * 60_000;
const INSTALL_TIMEOUT_MS = 15 * 60_000;
/** How long apt waits for another apt/dpkg run on the machine to let go of dpkg's own lock. */
const DPKG_LOCK_WAIT_S = 300;
/** Longest a lock holder can legitimately keep our lock: both apt runs, each possibly waiting on dpkg's lock. */
const LOCK_MAX_AGE_MS = UPDATE_TIMEOUT_MS + INSTALL_TIMEOUT_MS + 60_000;
const LOCK_FILE = join(tmpdir(), 'kv-responder-chromium-install.lock');
const APT_LOG = join(tmpdir(), 'kv-responder-chromium-apt.log');

/** The outcome of the global setup's chromiumSetup(), as JSON, for the workers (set it to force an outcome). */
export const CHROMIUM_STATUS_ENV = 'KVR_TEST_CHROMIUM';
/** `0`: never install Chromium (the browser tests are then skipped where it is missing). */
export const INSTALL_CHROMIUM_ENV = 'KVR_TEST_INSTALL_CHROMIUM';

let cached: ChromiumStatus | undefined;

/**
 * The outcome the global setup decided, if any. Malformed: a failed status that says so (never a silent pass).
 */
function statusFromSetup(): ChromiumStatus | undefined {
    const text = process.env[CHROMIUM_STATUS_ENV];
    if (text === undefined || text === '') return undefined;
    try {
        const v = JSON.parse(text) as Partial<{ ok: boolean; executablePath: string; version: string; reason: string }>;
        if (v.ok === true && typeof v.executablePath === 'string' && typeof v.version === 'string')
            return { ok: true, executablePath: v.executablePath, version: v.version };
        if (v.ok === false && typeof v.reason === 'string') return { ok: false, reason: v.reason };
    } catch {
        // falls through
    }
    return { ok: false, reason: `${CHROMIUM_STATUS_ENV} holds no Chromium status: ${text.slice(0, 200)}` };
}

/**
 * The test command's Chromium step, run once by jest's global setup: finds or installs Chromium (see
 * {@link chromiumStatus}), prints one line saying which, and passes the outcome on to the test workers.
 */
export function chromiumSetup(): ChromiumStatus {
    const status = chromiumStatus();
    process.env[CHROMIUM_STATUS_ENV] = JSON.stringify(status);
    process.stderr.write(
        status.ok
            ? `test setup: Chromium ${status.version} at ${status.executablePath}: the browser tests run\n`
            : 'test setup: no Chromium: the browser tests will be SKIPPED (the reason is printed at the end)\n',
    );
    return status;
}

/**
 * Makes sure Debian's Chromium is at /usr/bin/chromium and runs (`chromium --version`), installing it with apt-get
 * (`apt-get update` once, then `apt-get install -y --no-install-recommends chromium`, non-interactive, output captured)
 * when it is missing and this process is root or has passwordless sudo. A lock file in os.tmpdir() keeps parallel jest
 * workers from running apt at the same time; the one that waited finds Chromium installed. Otherwise it says why not.
 *
 * Synchronous, because jest must know while it registers the tests whether to skip them (a describe callback cannot
 * await); the result is cached for the test file.
 */
export function chromiumStatus(): ChromiumStatus {
    cached ??= statusFromSetup() ?? findOrInstallChromium();
    return cached;
}

/** {@link chromiumStatus} for async callers (a beforeAll, a global setup). */
export function ensureChromium(): Promise<ChromiumStatus> {
    return Promise.resolve().then(chromiumStatus);
}

/** True when this process runs as root, where Chromium refuses to start with its sandbox on. */
export function isRoot(): boolean {
    return process.getuid?.() === 0;
}

/**
 * Launches Debian's Chromium headless through playwright-core. Flags for a container: no /dev/shm (it may be small),
 * and the sandbox off only as root (Chromium will not run sandboxed as root; playwright-core would otherwise turn the
 * sandbox off for every user). Throws with the reason when Chromium is not available.
 */
export async function launchBrowser(): Promise<Browser> {
    const status = await ensureChromium();
    if (!status.ok) throw new Error(`Chromium is not available: ${status.reason}`);
    return chromium.launch({
        executablePath: status.executablePath,
        headless: true,
        chromiumSandbox: !isRoot(),
        args: ['--disable-dev-shm-usage'],
        timeout: 60_000,
    });
}

/** The title of a browser test block registered as skipped: it names what is missing. */
export function skippedTitle(name: string): string {
    return `${name} [SKIPPED: needs Chromium (${CHROMIUM_PATH}), which is not available]`;
}

/**
 * A describe block whose tests get one headless Chromium, launched before them and closed after them. `fn` registers
 * the tests and reads the browser through `browser()` inside them. Where Chromium is unavailable the block is
 * registered as skipped (its tests count as skipped, its title names Chromium) and the run ends with one warning
 * saying why (plainSummaryReporter.js): never a silent pass.
 */
export function describeWithBrowser(name: string, fn: (browser: () => Browser) => void): void {
    const status = chromiumStatus();
    if (!status.ok) {
        describe.skip(skippedTitle(name), () =>
            fn(() => {
                throw new Error('Chromium is not available');
            }),
        );
        return;
    }
    describe(name, () => {
        let launched: Browser | undefined;
        beforeAll(async () => {
            launched = await launchBrowser();
        }, 90_000);
        afterAll(async () => {
            await launched?.close();
        });
        fn(() => {
            if (launched === undefined) throw new Error('the browser is used before beforeAll launched it');
            return launched;
        });
    });
}

interface RunResult {
    readonly ok: boolean;
    /** How it ended, for a message: `exited with 0`, `timed out after 300 s`, `could not start: …`. */
    readonly outcome: string;
    readonly stdout: string;
    readonly output: string;
}

function run(command: string, args: readonly string[], timeoutMs: number): RunResult {
    const result = spawnSync(command, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        encoding: 'utf8',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
    });
    const stdout = result.stdout ?? '';
    const output = stdout + (result.stderr ?? '');
    const error = result.error as NodeJS.ErrnoException | undefined;
    let outcome: string;
    if (error?.code === 'ETIMEDOUT') outcome = `timed out after ${Math.round(timeoutMs / 1000)} s`;
    else if (error !== undefined) outcome = `could not start: ${error.message}`;
    else if (result.signal !== null) outcome = `was killed by ${result.signal}`;
    else outcome = `exited with ${result.status}`;
    return { ok: error === undefined && result.status === 0, outcome, stdout, output };
}

function exists(path: string, mode = constants.F_OK): boolean {
    try {
        accessSync(path, mode);
        return true;
    } catch {
        return false;
    }
}

function tail(text: string, lines = 15): string {
    return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Chromium at CHROMIUM_PATH if it runs, `missing` if there is none, or why the one there does not run. */
function probe(): ChromiumStatus | 'missing' {
    if (!exists(CHROMIUM_PATH)) return 'missing';
    const result = run(CHROMIUM_PATH, ['--version'], 30_000);
    const version = /Chromium\s+([\d.]+)/.exec(result.stdout)?.[1];
    if (result.ok && version !== undefined) return { ok: true, executablePath: CHROMIUM_PATH, version };
    return {
        ok: false,
        reason: `${CHROMIUM_PATH} is there but \`chromium --version\` ${result.outcome}:\n${tail(result.output)}`,
    };
}

/** The command prefix that runs apt-get with root rights, or undefined when this process has none to use. */
function privilege(): { readonly prefix: readonly string[]; readonly as: string } | undefined {
    if (isRoot()) return { prefix: [], as: 'as root' };
    // sudo resets the environment, so DEBIAN_FRONTEND goes through env(1).
    if (run('sudo', ['-n', 'true'], 10_000).ok) {
        return { prefix: ['sudo', '-n', 'env', 'DEBIAN_FRONTEND=noninteractive'], as: 'with passwordless sudo' };
    }
    return undefined;
}

function findOrInstallChromium(): ChromiumStatus {
    const found = probe();
    if (found !== 'missing') return found;
    if (process.env[INSTALL_CHROMIUM_ENV] === '0')
        return {
            ok: false,
            reason: `${CHROMIUM_PATH} is missing and ${INSTALL_CHROMIUM_ENV}=0 says not to install it. Install it: ${INSTALL_COMMAND}`,
        };
    const uid = process.getuid?.() ?? 'unknown';
    if (!exists(APT_GET, constants.X_OK)) {
        return {
            ok: false,
            reason: `${CHROMIUM_PATH} is missing and there is no ${APT_GET} to install Debian's chromium package with.`,
        };
    }
    const rights = privilege();
    if (rights === undefined) {
        return {
            ok: false,
            reason:
                `${CHROMIUM_PATH} is missing and this user (uid ${uid}) is neither root nor allowed passwordless ` +
                `sudo, so the tests cannot install it. Install it once as root: ${INSTALL_COMMAND}`,
        };
    }
    if (!acquireLock(Date.now() + LOCK_MAX_AGE_MS)) {
        return {
            ok: false,
            reason: `another process held ${LOCK_FILE} (installing Chromium) for over ${LOCK_MAX_AGE_MS / 60_000} min`,
        };
    }
    try {
        // A worker that held the lock before us may have installed it meanwhile.
        const again = probe();
        if (again !== 'missing') return again;
        return install(rights);
    } finally {
        releaseLock();
    }
}

function install(rights: { readonly prefix: readonly string[]; readonly as: string }): ChromiumStatus {
    process.stderr.write(`\n${CHROMIUM_PATH} is missing: installing Debian's chromium with apt-get ${rights.as}...\n`);
    const started = Date.now();
    const lockWait = ['-o', `DPkg::Lock::Timeout=${DPKG_LOCK_WAIT_S}`];
    const steps = [
        { args: ['update', ...lockWait], timeoutMs: UPDATE_TIMEOUT_MS },
        {
            args: ['install', '-y', '--no-install-recommends', ...lockWait, 'chromium'],
            timeoutMs: INSTALL_TIMEOUT_MS,
        },
    ];
    let log = '';
    for (const step of steps) {
        const [command, ...args] = [...rights.prefix, APT_GET, ...step.args];
        const result = run(command ?? APT_GET, args, step.timeoutMs);
        log += `$ ${[command, ...args].join(' ')}\n${result.output}\n(${result.outcome})\n`;
        writeLog(log);
        if (!result.ok) {
            return {
                ok: false,
                reason:
                    `installing Chromium failed: \`apt-get ${step.args.join(' ')}\` ${rights.as} ${result.outcome}. ` +
                    `Last lines of its output (all of it in ${APT_LOG}):\n${tail(result.output)}`,
            };
        }
    }
    const status = probe();
    if (status === 'missing') {
        return { ok: false, reason: `apt-get installed chromium but there is no ${CHROMIUM_PATH}; see ${APT_LOG}` };
    }
    if (status.ok) {
        const seconds = Math.round((Date.now() - started) / 1000);
        process.stderr.write(`Installed Chromium ${status.version} in ${seconds} s (apt log: ${APT_LOG}).\n\n`);
    }
    return status;
}

function writeLog(text: string): void {
    try {
        writeFileSync(APT_LOG, text);
    } catch {
        // The log is a convenience; the reason carries the tail of the output anyway.
    }
}

/** Blocks this thread (a jest worker that has nothing else to do meanwhile) for `ms`. */
function sleep(ms: number): void {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes the install lock (a file created exclusively, holding our pid), waiting for another holder until `deadline`.
 * A lock whose holder has died or that is older than any install can take is stale and taken over. Should two waiters
 * take over the same stale lock at once, apt's own dpkg lock still keeps their runs apart.
 */
function acquireLock(deadline: number): boolean {
    for (;;) {
        try {
            const fd = openSync(LOCK_FILE, 'wx');
            writeSync(fd, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
            closeSync(fd);
            return true;
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        if (lockIsStale()) {
            releaseLock();
            continue;
        }
        if (Date.now() >= deadline) return false;
        sleep(1000);
    }
}

function lockIsStale(): boolean {
    try {
        if (Date.now() - statSync(LOCK_FILE).mtimeMs > LOCK_MAX_AGE_MS) return true;
        let pid: unknown;
        try {
            ({ pid } = JSON.parse(readFileSync(LOCK_FILE, 'utf8')) as { pid?: unknown });
        } catch (err) {
            if (!(err instanceof SyntaxError)) throw err;
        }
        // No pid yet: its holder is writing it, or died right after creating the file.
        if (typeof pid !== 'number') return Date.now() - statSync(LOCK_FILE).mtimeMs > 10_000;
        process.kill(pid, 0);
        return false;
    } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ESRCH') return true; // its holder died
        return false; // ENOENT: released meanwhile, try again; EPERM: alive, another user's
    }
}

function releaseLock(): void {
    try {
        unlinkSync(LOCK_FILE);
    } catch {
        // Already gone.
    }
}
