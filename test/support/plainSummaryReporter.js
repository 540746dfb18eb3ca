// Prints the plain closing line 'tests: N passed, N failed, N skipped' as the very last line of the run (after jest's
// own summary), so that any CI reader can count the tests without knowing jest's format.
/**
 * The warning of a run whose browser tests were skipped: the global setup found no Chromium and said why in
 * KVR_TEST_CHROMIUM (browser.ts, chromiumSetup). Undefined when they ran.
 */
function chromiumWarning() {
    let status;
    try {
        status = JSON.parse(process.env.KVR_TEST_CHROMIUM ?? 'null');
    } catch {
        status = { ok: false, reason: `KVR_TEST_CHROMIUM holds no Chromium status: ${process.env.KVR_TEST_CHROMIUM}` };
    }
    if (status === null || status.ok === true) return undefined;
    return (
        `WARNING: the browser tests were SKIPPED: Chromium is not available.\n${String(status.reason)}\n` +
        "(The test command installs Debian's chromium itself where it may: as root or with passwordless sudo, " +
        'unless KVR_TEST_INSTALL_CHROMIUM=0.)\n'
    );
}

const { writeSync } = require('node:fs');

class PlainSummaryReporter {
    onRunComplete(_contexts, results) {
        const skipped = results.numPendingTests + results.numTodoTests;
        // A test file that could not run (a module that does not load) has no failed test but fails the run: say so.
        const broken = results.numRuntimeErrorTestSuites;
        const line =
            `tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped} skipped` +
            `${broken > 0 ? `; ${broken} test file(s) failed to run` : ''}\n`;
        // The one warning of a run whose browser tests were skipped (no Chromium), right above the closing line.
        const warning = chromiumWarning();
        // Written synchronously to fd 2: at 'exit' after jest's forced exit, process.stderr.write no longer reaches the
        // pipe (the line went missing from every run).
        const text = warning === undefined ? line : `\n${warning}\n${line}`;
        process.once('exit', () => writeSync(2, text));
    }
}
module.exports = PlainSummaryReporter;
