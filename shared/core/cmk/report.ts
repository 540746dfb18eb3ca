/**
 * The CMK dependency report: which services depend on which key versions, and which of them failed lately. Pure: the
 * inventory states and the time of the report in, rows and their renderings out.
 */
import { dependencyOf, describeDependency, type KeyInventory } from './inventory';

export type DependencyStatus = 'in use' | 'failing' | 'idle';

export interface ReportRow {
    readonly vault: string;
    readonly key: string;
    readonly version: string;
    readonly service: string;
    readonly serviceId: string;
    readonly kind: string;
    readonly status: DependencyStatus;
    readonly lastSuccess?: string;
    readonly lastFailure?: string;
    readonly lastFailureStatus?: number;
    readonly lastFailureReason?: string;
    readonly successMinutes: number;
    readonly failureMinutes: number;
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

/**
 * One row per (vault, key, version, service). `failing`: the last failure is newer than the last success; `in use`:
 * a success within `inUseMs` before `nowMs`; `idle` otherwise. Failing rows first, then by vault, key, version.
 */
export function reportRows(states: readonly KeyInventory[], nowMs: number, inUseMs: number): ReportRow[] {
    const rows: ReportRow[] = [];
    for (const s of states) {
        for (const { version, services } of s.versions) {
            for (const u of services) {
                const d = dependencyOf(version, u);
                const failing = u.lastFailure !== undefined && u.lastFailure.timeMs > (u.lastSuccessMs ?? 0);
                const status: DependencyStatus = failing
                    ? 'failing'
                    : (u.lastSuccessMs ?? 0) >= nowMs - inUseMs
                      ? 'in use'
                      : 'idle';
                const lastSuccess = iso(u.lastSuccessMs);
                const lastFailure = iso(u.lastFailure?.timeMs);
                rows.push({
                    vault: s.vault,
                    key: s.key,
                    version: version === '' ? '(unversioned)' : version,
                    service: describeDependency(d),
                    serviceId: d.id,
                    kind: d.kind,
                    status,
                    ...(lastSuccess === undefined ? {} : { lastSuccess }),
                    ...(lastFailure === undefined ? {} : { lastFailure }),
                    ...(u.lastFailure?.status === undefined ? {} : { lastFailureStatus: u.lastFailure.status }),
                    ...(u.lastFailure?.description === undefined
                        ? {}
                        : { lastFailureReason: u.lastFailure.description }),
                    successMinutes: u.successMinutes,
                    failureMinutes: u.failureMinutes,
                });
            }
        }
    }
    const rank: Record<DependencyStatus, number> = { failing: 0, 'in use': 1, idle: 2 };
    return rows.sort(
        (a, b) =>
            rank[a.status] - rank[b.status] ||
            a.vault.localeCompare(b.vault) ||
            a.key.localeCompare(b.key) ||
            a.version.localeCompare(b.version) ||
            a.service.localeCompare(b.service),
    );
}

/** A plain-text table (fixed-width columns), for terminals and email. */
export function reportTable(rows: readonly ReportRow[]): string {
    if (rows.length === 0) return 'No customer-managed key use seen.\n';
    const header = [
        'STATUS',
        'VAULT',
        'KEY',
        'VERSION',
        'SERVICE',
        'LAST SUCCESS',
        'LAST FAILURE',
        'OK MIN',
        'FAILED MIN',
    ];
    const cells = rows.map((r) => [
        r.status,
        r.vault,
        r.key,
        r.version.length > 12 ? `${r.version.slice(0, 12)}…` : r.version,
        r.service,
        r.lastSuccess ?? '-',
        r.lastFailure === undefined
            ? '-'
            : `${r.lastFailure} (${r.lastFailureStatus ?? '?'}${r.lastFailureReason === undefined ? '' : `: ${r.lastFailureReason}`})`,
        String(r.successMinutes),
        String(r.failureMinutes),
    ]);
    const widths = header.map((h, i) => Math.min(80, Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length))));
    const line = (c: readonly string[]): string =>
        c
            .map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
            .join('  ')
            .trimEnd();
    return `${[line(header), ...cells.map(line)].join('\n')}\n`;
}
