import { lowerCased, MAX_HELD_CHARS, slotOf, StringMemo } from '../../shared/core/events/stringMemo';

describe('StringMemo', () => {
    it('returns what the function returns, computing once per string held', () => {
        const calls: string[] = [];
        const memo = new StringMemo((s: string) => {
            calls.push(s);
            return { lower: s.toLowerCase() };
        }, 64);
        const a = memo.get('ABC-Def');
        // An equal string made afresh (as JSON.parse makes one per record) hits the same entry.
        const again = memo.get(JSON.parse('"ABC-Def"') as string);
        expect(again).toBe(a);
        expect(a).toEqual({ lower: 'abc-def' });
        expect(calls).toEqual(['ABC-Def']);
    });

    it('strings that share a slot replace each other and are recomputed, never confused', () => {
        const memo = new StringMemo((s: string) => `${s}!`, 1);
        const words = ['a', 'b', 'a', 'a', '', 'b', 'longer string with the same slot'];
        expect(words.map((w) => memo.get(w))).toEqual(words.map((w) => `${w}!`));
    });

    it('spreads strings that differ only in the middle, the end or the length', () => {
        const ids = [
            ...Array.from(
                { length: 200 },
                (_, i) => `https://kv-${String(i).padStart(4, '0')}.vault.azure.net/secrets/db`,
            ),
            ...Array.from({ length: 200 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`),
            ...Array.from({ length: 50 }, (_, i) => 'x'.repeat(i)),
        ];
        const slots = new Set(ids.map((s) => slotOf(s) & 4095));
        expect(slots.size).toBeGreaterThan(ids.length * 0.9);
        const memo = new StringMemo((s: string) => s.length, 4096);
        for (const s of ids) expect(memo.get(s)).toBe(s.length);
    });

    it('computes a string longer than MAX_HELD_CHARS every time and never holds it', () => {
        const calls: number[] = [];
        const memo = new StringMemo((s: string) => {
            calls.push(s.length);
            return s.length;
        }, 64);
        const long = 'x'.repeat(MAX_HELD_CHARS + 1);
        const limit = 'y'.repeat(MAX_HELD_CHARS);
        expect([memo.get(long), memo.get(long), memo.get(limit), memo.get(limit)]).toEqual([
            MAX_HELD_CHARS + 1,
            MAX_HELD_CHARS + 1,
            MAX_HELD_CHARS,
            MAX_HELD_CHARS,
        ]);
        // A record's megabyte-long field (rejected later as oversized) is not kept alive by the memo.
        expect(calls).toEqual([MAX_HELD_CHARS + 1, MAX_HELD_CHARS + 1, MAX_HELD_CHARS]);
    });

    it('lowerCased is toLowerCase, returning the same string when nothing changes', () => {
        for (const s of ['db-password', 'Db-Password', 'ÄPFEL-key', 'straße', 'İstanbul', '', 'x'.repeat(600), 'A'])
            expect(lowerCased(s)).toBe(s.toLowerCase());
        const lower = JSON.parse('"api-token-7"') as string;
        expect(lowerCased(lower)).toBe(lower);
    });

    it('refuses a slot count that is not a power of two', () => {
        expect(() => new StringMemo((s: string) => s, 1000)).toThrow(/power of two/);
    });
});
