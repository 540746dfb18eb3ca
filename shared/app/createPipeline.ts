import type { ResponderConfig } from '../config/responderConfig';
import { RuleSet } from '../core/engine/evaluate';
import type { DecisionSink, QuarantineSink } from '../core/ports';
import { rules } from '../core/rules';
import { DEFAULT_DETECTION_SETTINGS, type DetectionSettings } from '../core/rules/settings';
import { AuditPipeline } from './pipeline';

export interface PipelineSinks {
    readonly decisions: DecisionSink;
    readonly quarantine: QuarantineSink;
}

/** Resolves rule settings from the validated config. */
export function detectionSettingsOf(_config: ResponderConfig): DetectionSettings {
    return DEFAULT_DETECTION_SETTINGS;
}

/** Builds the one pipeline used by the Event Hubs trigger, `kvr replay` and the benchmark. */
export function createPipeline(
    config: ResponderConfig,
    sinks: PipelineSinks,
    options: { readonly acceptBareRecords: boolean },
): AuditPipeline<DetectionSettings> {
    return new AuditPipeline({
        ruleSet: new RuleSet(rules, config.ruleToggles),
        settings: detectionSettingsOf(config),
        decisions: sinks.decisions,
        quarantine: sinks.quarantine,
        acceptBareRecords: options.acceptBareRecords,
    });
}
