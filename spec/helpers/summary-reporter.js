/**
 * Jest reporter that ends the run with one plain line, `tests: N passed, N failed[, N skipped]`,
 * which CI reads as the closing count (Jest's own summary is not in a form it parses).
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const tail = skipped > 0 ? `, ${skipped} skipped` : '';
    process.stdout.write(
      `\ntests: ${results.numPassedTests} passed, ${results.numFailedTests + results.numRuntimeErrorTestSuites} failed${tail}\n`,
    );
  }
}
module.exports = SummaryReporter;
