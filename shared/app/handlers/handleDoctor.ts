import type { HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { InvocationLogger } from '../../adapters/invocationLogger';
import { doctorExitCode, formatDoctorTable } from '../../core/doctor/report';
import { type ComposedDoctor, composeDoctor } from '../composeDoctor';
import { runDoctor } from '../doctor';

export interface DoctorHttpDeps {
    /** Composes the doctor for one request (default: from `process.env`). */
    readonly compose: () => ComposedDoctor;
    readonly timeoutMs?: number;
}

export const defaultDoctorHttpDeps: DoctorHttpDeps = { compose: () => composeDoctor(process.env) };

function badRequest(message: string): HttpResponseInit {
    return {
        status: 400,
        headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' },
        body: `${message}\n`,
    };
}

/**
 * `GET /api/doctor[?format=table][&sendTestNotice=true]` (function key): the preflight report of the deployed app,
 * JSON by default. The status is 200 whenever the checks ran; `ok` (and the table's last line) say whether all passed.
 */
export async function handleDoctor(
    request: HttpRequest,
    context: InvocationContext,
    deps: DoctorHttpDeps = defaultDoctorHttpDeps,
): Promise<HttpResponseInit> {
    const format = request.query.get('format') ?? 'json';
    if (format !== 'json' && format !== 'table') return badRequest(`format must be json or table, not '${format}'`);
    const send = request.query.get('sendTestNotice') ?? 'false';
    if (send !== 'true' && send !== 'false') return badRequest(`sendTestNotice must be true or false, not '${send}'`);
    const doctor = deps.compose();
    try {
        const report = await runDoctor(doctor, {
            sendTestNotice: send === 'true',
            ...(deps.timeoutMs === undefined ? {} : { timeoutMs: deps.timeoutMs }),
        });
        const log = new InvocationLogger(context);
        const failed = report.checks.filter((c) => c.status === 'fail').map((c) => `${c.check}:${c.target}`);
        if (doctorExitCode(report) === 0) log.info('kvr.doctor', { ...report.counts });
        else log.warn('kvr.doctor', { ...report.counts, failed });
        if (format === 'table')
            return {
                status: 200,
                headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' },
                body: formatDoctorTable(report),
            };
        return { status: 200, headers: { 'Cache-Control': 'no-store' }, jsonBody: report };
    } finally {
        await doctor.close();
    }
}
