import { JsonSplitter, type SplitItem } from '../../shared/adapters/jsonSplitter';

/** Feeds the text in chunks of `size` characters, to prove items survive any chunk boundary. */
function split(text: string, size = text.length): SplitItem[] {
    const s = new JsonSplitter(1000);
    const out: SplitItem[] = [];
    for (let i = 0; i < text.length; i += size) out.push(...s.push(text.slice(i, i + size)));
    out.push(...s.end());
    return out;
}

describe('JsonSplitter', () => {
    const body = '{\n  "records": [\n    {"a": "x}\\"{", "b": [1, {"c": 2}]}\n  ]\n}\n';

    it.each([1, 2, 3, 7, 1000])('keeps a pretty-printed body whole in chunks of %i', (size) => {
        const items = split(body, size);
        expect(items).toEqual([{ text: body.trimEnd(), line: 1 }]);
        expect(JSON.parse((items[0] as SplitItem).text)).toEqual({ records: [{ a: 'x}"{', b: [1, { c: 2 }] }] });
    });

    it.each([1, 2, 3, 5, 8, 13, 4096])(
        'skips string content whole: braces, escaped quotes and backslashes, non-ASCII, in chunks of %i',
        (size) => {
            const lines = [
                '{"p": "ends with a backslash \\\\", "q": "{[\\"quoted\\"]}", "r": "é🔑}"}',
                '{"records": [{"s": "a \\\\\\" b", "t": "}}}]]]"}]}',
            ];
            const items = split(`${lines.join('\n')}\n`, size);
            expect(items).toEqual([
                { text: lines[0], line: 1 },
                { text: lines[1], line: 2 },
            ]);
            expect(JSON.parse(lines[0] as string)).toEqual({
                p: 'ends with a backslash \\',
                q: '{["quoted"]}',
                r: 'é🔑}',
            });
            expect(JSON.parse(lines[1] as string)).toEqual({ records: [{ s: 'a \\" b', t: '}}}]]]' }] });
        },
    );

    it('splits JSON Lines and reports line numbers', () => {
        const items = split('{"a":1}\n\n{"b":2}\r\n{"c":3}', 4);
        expect(items.map((i) => [i.text, i.line])).toEqual([
            ['{"a":1}', 1],
            ['{"b":2}', 3],
            ['{"c":3}', 4],
        ]);
    });

    it('splits the elements of a top-level array, strings included', () => {
        const items = split('[ {"records":[]},\n "{\\"records\\":[]}" , {"x":[1,2]} ]', 5);
        expect(items.map((i) => i.text)).toEqual(['{"records":[]}', '"{\\"records\\":[]}"', '{"x":[1,2]}']);
    });

    it('resynchronises on the next line after a truncated JSON line', () => {
        const items = split('{"a": [1, 2\n{"b": 1}\n', 3);
        expect(items).toEqual([
            { text: '{"a": [1, 2\n', line: 1, problem: 'unterminated JSON value' },
            { text: '{"b": 1}', line: 2 },
        ]);
    });

    it('reports an unterminated string and carries on', () => {
        const items = split('{"a": "never closed\n{"b": 1}');
        expect(items[0]?.problem).toBe('unterminated string');
        expect(items[1]).toEqual({ text: '{"b": 1}', line: 2 });
    });

    it('reports input that ends inside a value', () => {
        expect(split('{"records": [ {"t": 1}')).toEqual([
            { text: '{"records": [ {"t": 1}', line: 1, problem: 'unexpected end of input inside a JSON value' },
        ]);
    });

    it('passes a garbage line on as one item for the parser to reject', () => {
        expect(split('not json at all\n{"a":1}').map((i) => i.text)).toEqual(['not json at all', '{"a":1}']);
    });

    it('keeps only the head of an oversized item and flags it', () => {
        const big = `{"a":"${'x'.repeat(5000)}"}`;
        const items = split(`${big}\n{"b":1}`, 64);
        expect(items[0]?.problem).toBe('item larger than 1000 characters');
        expect(items[0]?.text.length).toBeLessThanOrEqual(4096);
        expect(items[1]?.text).toBe('{"b":1}');
    });
});
