// Writes docs/rules.md, the rule catalogue with a runbook per rule, from the rules' own metadata.
import { mkdirSync, writeFileSync } from 'node:fs';
import { ruleCatalogue } from '../shared/core/rules/catalogue';

mkdirSync('docs', { recursive: true });
writeFileSync('docs/rules.md', ruleCatalogue());
