// Writes config.schema.json, the published JSON Schema of the responder config (editors complete and check it),
// formatted as the repository's Prettier config wants it, so that `npm run lint` (prettier --check) accepts the file
// as written. Run from the repository root: `node dist/scripts/generateSchema.js [output path]`.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { configJsonSchema } from '../shared/config/responderConfig';
import { configurableRuleIds } from '../shared/core/rules';

async function main(): Promise<void> {
    const target = resolve(process.argv[2] ?? 'config.schema.json');
    // The options the committed file is checked with (.prettierrc at the root), wherever the output goes.
    const options = (await resolveConfig(resolve('config.schema.json'))) ?? {};
    const json = JSON.stringify(configJsonSchema(configurableRuleIds), null, 2);
    writeFileSync(target, await format(json, { ...options, filepath: target }));
}

main().catch((err: unknown) => {
    process.stderr.write(`generateSchema: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
});
