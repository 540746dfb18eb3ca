// Writes config.schema.json, the published JSON Schema of the responder config (editors complete and check it).
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../shared/config/responderConfig';
import { configurableRuleIds } from '../shared/core/rules';

writeFileSync('config.schema.json', `${JSON.stringify(configJsonSchema(configurableRuleIds), null, 2)}\n`);
