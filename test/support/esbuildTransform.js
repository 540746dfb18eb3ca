// Jest transform: TypeScript to CommonJS with esbuild (type checking is `npm run typecheck`'s job).
const { transformSync } = require('esbuild');

module.exports = {
    process(source, path) {
        const { code, map } = transformSync(source, {
            loader: 'ts',
            format: 'cjs',
            target: 'node20',
            sourcemap: 'external',
            sourcefile: path,
            // `await import('./x.js')` (the CLI loads each command's module when it runs) as a require: jest's
            // CommonJS runtime has no dynamic import without --experimental-vm-modules. The app's bundle (esbuild,
            // scripts/build.mjs) keeps real lazy imports.
            supported: { 'dynamic-import': false },
        });
        return { code, map };
    },
};
