import type { Rule } from '../engine/rule';
import { sensitiveOperation } from './sensitive-operation/rule';
import type { DetectionSettings } from './settings';

/** Every detection, in catalogue order. A test checks that each rule directory is listed here. */
export const rules: readonly Rule<DetectionSettings>[] = [sensitiveOperation];

export const ruleIds: readonly string[] = rules.map((r) => r.meta.id);
