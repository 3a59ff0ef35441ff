/** One conformance suite for every InboxStore, plus SQLite's durability across reopen. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryInboxStore, SqliteInboxStore } from '../../lib/server';
import { NOW, Q, inboxConformance, msg } from './inbox-conformance';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'inbox-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
inboxConformance('MemoryInboxStore', () => new MemoryInboxStore());
inboxConformance('SqliteInboxStore', () => new SqliteInboxStore(join(dir, `c${n++}.sqlite`)));

describe('SqliteInboxStore durability', () => {
  it('keeps unacked frames, order and quota counters across close and reopen', () => {
    const path = join(dir, 'reopen.sqlite');
    const a = new SqliteInboxStore(path);
    a.commit([msg('r', '1'), msg('r', '2'), msg('r', '3')], [], Q);
    a.commit([], [{ recipient: 'r', id: '2' }], Q);
    a.close();
    const b = new SqliteInboxStore(path);
    expect(b.pending('r', NOW, 10).map((m) => m.id)).toEqual(['1', '3']);
    expect(b.count('r')).toBe(2);
    expect(b.commit([msg('r', '4'), msg('r', '5')], [], Q)).toEqual(['stored', 'inbox_full']);
    b.close();
  });
});
