import type { InvocationContext, Timer } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import type { DecisionSink, KeyStateReader } from '../../core/ports';
import type { StateStore } from '../../core/state/store';
import type { CmkSettings } from '../../config/responderConfig';
import { checkExpiringKeys } from '../cmk';

export interface CmkExpiryDeps {
    readonly store: StateStore;
    readonly keys: KeyStateReader;
    readonly settings: CmkSettings;
    /** Where findings go: alerting (incidents and notices) in the Function app. */
    readonly sink: DecisionSink;
    readonly now?: () => number;
}

/** Daily: key versions in use that expire soon (cmk-expiring-in-use), from the inventory and Key Vault. */
export async function handleCmkExpiry(_timer: Timer, context: InvocationContext, deps: CmkExpiryDeps): Promise<void> {
    const log = new InvocationLogger(context);
    const r = await checkExpiringKeys({
        store: deps.store,
        keys: deps.keys,
        settings: deps.settings,
        nowMs: (deps.now ?? Date.now)(),
        log,
    });
    for (const f of r.findings)
        log.warn('kvr.finding', { rule: f.rule, severity: f.severity, vault: f.vault, summary: f.summary });
    if (r.findings.length > 0) await deps.sink.write(r.findings);
    log.info('kvr.cmk-expiry', { checked: r.checked, expiring: r.findings.length, unreadable: r.unreadable });
}
