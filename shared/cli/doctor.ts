// `kvr doctor`: the preflight of a deployed installation, from the same app settings the Function app reads.
import { type ComposeDoctorOptions, type ComposedDoctor, composeDoctor } from '../app/composeDoctor';
import { runDoctor } from '../app/doctor';
import { doctorExitCode, formatDoctorTable } from '../core/doctor/report';
import { type CliIo, parseCommandArgs, UsageError } from './common';

export const DOCTOR_USAGE = `Usage:
  kvr doctor [--json] [--send-test-notice] [--vault <vault resource id>]... [--timeout-seconds <n>]
      Checks a deployed installation with the app settings in the environment (as the Function app reads them:
      KVR_*, KV_LOGS_*, AZURE_CLIENT_ID; the responder config from KVR_CONFIG or KVR_CONFIG_PATH) and the identity
      of DefaultAzureCredential: ARM read and (in enforce scope) write permissions on each protected vault, its
      data plane, its diagnostic setting to our event hub, the state table, quarantine container and queue, the
      event hub and consumer group, the Teams and mail settings, and the link-signing key. The vaults are those the
      config names by resource id (guardrails.overrides[].match.resourceId, cmk.posture.vaults) and --vault.
      Prints one table (check, target, status, detail, fix); --json prints the report as JSON.
      --send-test-notice sends one test notice through each configured channel (default: not sent, skipped).
      --timeout-seconds is the time limit of each check (default 20). See docs/doctor.md.
Exit status: 0 when every check passed or was skipped, 1 when any check failed, 2 for bad usage.`;

export interface DoctorHooks {
    readonly env?: Readonly<Record<string, string | undefined>>;
    readonly compose?: (
        env: Readonly<Record<string, string | undefined>>,
        options: ComposeDoctorOptions,
    ) => ComposedDoctor;
}

export async function runDoctorCommand(args: readonly string[], io: CliIo, hooks: DoctorHooks = {}): Promise<number> {
    const { values } = parseCommandArgs(
        args,
        {
            json: { type: 'boolean' },
            'send-test-notice': { type: 'boolean' },
            vault: { type: 'string', multiple: true },
            'timeout-seconds': { type: 'string' },
            help: { type: 'boolean', short: 'h' },
        },
        false,
    );
    if (values.help === true) {
        io.stdout.write(`${DOCTOR_USAGE}\n`);
        return 0;
    }
    let timeoutMs: number | undefined;
    if (values['timeout-seconds'] !== undefined) {
        const s = Number(values['timeout-seconds']);
        if (!Number.isFinite(s) || s <= 0 || s > 600)
            throw new UsageError('--timeout-seconds must be a number of seconds between 0 and 600');
        timeoutMs = Math.round(s * 1000);
    }
    const doctor = (hooks.compose ?? composeDoctor)(hooks.env ?? process.env, { vaults: values.vault ?? [] });
    try {
        const report = await runDoctor(doctor, {
            sendTestNotice: values['send-test-notice'] === true,
            ...(timeoutMs === undefined ? {} : { timeoutMs }),
        });
        io.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorTable(report));
        return doctorExitCode(report);
    } finally {
        await doctor.close();
    }
}
