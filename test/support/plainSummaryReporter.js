// Prints the plain closing line 'tests: N passed, N failed, N skipped' as the very last line of the run (after jest's
// own summary), so that any CI reader can count the tests without knowing jest's format.
class PlainSummaryReporter {
    onRunComplete(_contexts, results) {
        const skipped = results.numPendingTests + results.numTodoTests;
        const line = `tests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped} skipped\n`;
        process.once('exit', () => process.stderr.write(line));
    }
}
module.exports = PlainSummaryReporter;
