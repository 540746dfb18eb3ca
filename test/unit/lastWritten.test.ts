import { LastWritten } from '../../shared/core/state/lastWritten';

describe('LastWritten', () => {
    it('gives an entry once, then nothing', () => {
        const w = new LastWritten<string>(4);
        w.set('a', 'etag-1');
        expect(w.take('a')).toBe('etag-1');
        expect(w.take('a')).toBeUndefined();
    });

    it('keeps the newest entry of a key', () => {
        const w = new LastWritten<string>(4);
        w.set('a', 'etag-1');
        w.set('a', 'etag-2');
        expect(w.take('a')).toBe('etag-2');
    });

    it('drops the oldest key when full, counting a rewritten key as new', () => {
        const w = new LastWritten<number>(2);
        w.set('a', 1);
        w.set('b', 2);
        w.set('a', 3); // a is now newer than b
        w.set('c', 4); // full: b goes
        expect(w.take('b')).toBeUndefined();
        expect(w.take('a')).toBe(3);
        expect(w.take('c')).toBe(4);
    });
});
