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
        });
        return { code, map };
    },
};
