import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { sampleText } from '../scripts/generateSample';
import { attackEpisodes, generateBatches, SAMPLE_DAY } from '../shared/sample/trafficGenerator';
import { decisionsOf, REPO, runKvr } from './support/cli';

describe('the bundled sample capture', () => {
    it('is exactly what the seeded generator produces', () => {
        const committed = gunzipSync(readFileSync(join(REPO, 'samples/sample-day.jsonl.gz'))).toString('utf8');
        expect(committed === sampleText()).toBe(true);
    });

    it('is deterministic for a seed and differs between seeds', () => {
        const first = (seed: number): string[] => {
            const out: string[] = [];
            for (const b of generateBatches({ ...SAMPLE_DAY, seed, hours: 1 })) out.push(b.body);
            return out;
        };
        expect(first(7)).toEqual(first(7));
        expect(first(7)).not.toEqual(first(8));
    });

    it('holds its attack episodes inside the day', () => {
        const episodes = attackEpisodes(SAMPLE_DAY);
        expect(episodes.length).toBeGreaterThanOrEqual(5);
        const start = Date.parse(SAMPLE_DAY.start);
        for (const e of episodes) {
            expect(Date.parse(e.time) - start).toBeGreaterThanOrEqual(0);
            expect(Date.parse(e.time) - start).toBeLessThan(SAMPLE_DAY.hours * 3600_000);
        }
    });

    it('replays (npm start) with no rejected record and the attacks found', async () => {
        const run = await runKvr(
            'replay',
            join(REPO, 'samples/sample-day.jsonl.gz'),
            '--config',
            join(REPO, 'samples/demo-config.json'),
        );
        expect(run.code).toBe(0);
        const decisions = decisionsOf(run.stdout);
        expect(decisions.filter((d) => d.type === 'rejected')).toEqual([]);
        const fired = new Set(decisions.filter((d) => d.type === 'finding').map((d) => d.rule));
        // Every attack episode of the generator is found.
        for (const rule of [
            'cmk-access-denied',
            'denied-access-burst',
            'firewall-opened',
            'firewall-ip-rule-added',
            'self-granted-access',
            'mass-secret-retrieval',
            'sensitive-operation',
            'access-policy-granted-then-revoked',
            'public-network-access-enabled',
            'rbac-authorization-disabled',
            'honeytoken-accessed',
        ]) {
            expect(fired).toContain(rule);
        }
        expect(run.stderr).toMatch(/processed \d+ Key Vault audit events/);
    });
});
