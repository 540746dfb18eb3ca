// Builds dist/ once, so that the tests that run the real `kvr` binary exercise what `npm run kvr` runs.
const { execFileSync } = require('node:child_process');

module.exports = async () => {
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: `${__dirname}/../..`, stdio: 'inherit' });
};
