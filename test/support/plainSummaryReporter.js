// Prints the plain closing line 'N passed, N failed, N skipped' after jest's own summary, so that any CI reader can
// count the tests without knowing jest's format.
class PlainSummaryReporter {
    onRunComplete(_contexts, results) {
        const skipped = results.numPendingTests + results.numTodoTests;
        process.stdout.write(
            `\ntests: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${skipped} skipped\n`,
        );
    }
}
module.exports = PlainSummaryReporter;
