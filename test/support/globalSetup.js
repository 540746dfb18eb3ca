// The test command's setup, once per run: builds dist/ (the tests that run the real `kvr` binary exercise what
// `npx kvr` runs), then gets Chromium for the browser tests (Debian's chromium, installed with apt-get where it is
// missing and this user may: see ./browser.ts).
const { execFileSync } = require('node:child_process');
// Required at load time, while jest's transform is hooked in: browser.ts is TypeScript.
const { chromiumSetup } = require('./browser.ts');

module.exports = async () => {
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: `${__dirname}/../..`, stdio: 'inherit' });
    chromiumSetup();
};
