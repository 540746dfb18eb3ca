import type { HttpRequest, HttpResponseInit, InvocationContext, Timer } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import type { KeyInventory } from '../../core/cmk/inventory';
import { type ReportRow, reportRows, reportTable } from '../../core/cmk/report';
import type { StateStore } from '../../core/state/store';
import type { CmkSettings } from '../../config/responderConfig';
import type { Alerting } from '../alerting';

export interface CmkReportDeps {
    readonly store: StateStore;
    readonly settings: CmkSettings;
    readonly alerting: Alerting;
    readonly now?: () => number;
}

const MAX_KEYS = 10_000;

async function rowsOf(deps: CmkReportDeps): Promise<{ asOf: string; keys: number; rows: ReportRow[] }> {
    const states = (await deps.store.scan('cmk|', MAX_KEYS)).map((s) => s.value as KeyInventory);
    const now = (deps.now ?? Date.now)();
    return {
        asOf: new Date(now).toISOString(),
        keys: states.length,
        rows: reportRows(states, now, deps.settings.inUseMs),
    };
}

/** `GET /api/cmk/report[?format=table]` (function key): the live CMK dependency report. */
export async function handleCmkReport(
    request: HttpRequest,
    context: InvocationContext,
    deps: CmkReportDeps,
): Promise<HttpResponseInit> {
    const report = await rowsOf(deps);
    new InvocationLogger(context).info('kvr.cmk-report', { keys: report.keys, rows: report.rows.length });
    if (request.query.get('format') === 'table')
        return {
            status: 200,
            headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' },
            body: reportTable(report.rows),
        };
    return { status: 200, headers: { 'Cache-Control': 'no-store' }, jsonBody: report };
}

/** Weekly: the CMK dependency report as a summary notice (Teams and the default roster's first tier by email). */
export async function handleCmkWeekly(_timer: Timer, context: InvocationContext, deps: CmkReportDeps): Promise<void> {
    const report = await rowsOf(deps);
    const failing = report.rows.filter((r) => r.status === 'failing').length;
    const inUse = report.rows.filter((r) => r.status === 'in use').length;
    const sent = await deps.alerting.sendSummary(
        `Customer-managed keys: ${inUse} dependency(ies) in use, ${failing} failing`,
        reportTable(report.rows),
    );
    new InvocationLogger(context).info('kvr.cmk-weekly', { rows: report.rows.length, failing, sent });
}
