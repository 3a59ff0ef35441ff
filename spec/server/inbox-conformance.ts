/** The conformance suite every InboxStore passes (memory, SQLite, Redis). */
import { InboxMessage, InboxQuota, InboxStore } from '../../lib/server';

const Q: InboxQuota = { maxPerInbox: 3, maxPerSender: 4 };
const NOW = 1_000_000;

/** A frame for the suite. */
export function msg(recipient: string, id: string, sender = 'did:mesh:s', expiresAt = NOW + 1000): InboxMessage {
  return { recipient, id, sender, frame: JSON.stringify({ type: 'message', to: recipient, id, from: sender }), storedAt: NOW, expiresAt };
}

export { Q, NOW };

/** Defines the suite for stores made by `make` (each test gets a fresh, empty store). */
export function inboxConformance(name: string, make: () => InboxStore | Promise<InboxStore>): void {
  describe(name, () => {
    let s: InboxStore;
    beforeEach(async () => {
      s = await make();
    });
    afterEach(() => s.close());

    it('stores, lists oldest first, acks', async () => {
      expect(await s.commit([msg('r', 'a'), msg('r', 'b'), msg('x', 'c')], [], Q)).toEqual(['stored', 'stored', 'stored']);
      const p = await s.pending('r', NOW, 10);
      expect(p.map((m) => m.id)).toEqual(['a', 'b']);
      expect(p[0]).toMatchObject(msg('r', 'a'));
      expect(p[0]!.seq).toBeLessThan(p[1]!.seq);
      expect(await s.count('r')).toBe(2);
      expect(await s.size()).toBe(3);
      await s.commit(
        [],
        [
          { recipient: 'r', id: 'a' },
          { recipient: 'r', id: 'nope' },
          { recipient: 'x', id: 'b' },
        ],
        Q,
      );
      expect((await s.pending('r', NOW, 10)).map((m) => m.id)).toEqual(['b']);
      expect(await s.size()).toBe(2);
    });

    it('commitDecided (where offered): the outcomes are reported before the group returns, and are the same', async () => {
      if (!s.commitDecided) return;
      let seen: readonly string[] = [];
      const out = await s.commitDecided([msg('r', 'a'), msg('r', 'a')], [], Q, (o) => {
        seen = [...o];
      });
      expect(seen).toEqual(['stored', 'duplicate']);
      expect(out).toEqual(seen);
      expect((await s.pending('r', NOW, 10)).map((m) => m.id)).toEqual(['a']);
    });

    it('paging with limit and afterSeq', async () => {
      await s.commit([msg('r', '1'), msg('r', '2'), msg('r', '3')], [], { maxPerInbox: 10, maxPerSender: 10 });
      const first = await s.pending('r', NOW, 2);
      expect(first.map((m) => m.id)).toEqual(['1', '2']);
      expect((await s.pending('r', NOW, 2, first[1]!.seq)).map((m) => m.id)).toEqual(['3']);
    });

    it('dedup per (recipient, id): duplicate for the same sender, id_conflict for another, independent per recipient', async () => {
      expect(await s.commit([msg('r', 'a'), msg('r', 'a'), msg('r', 'a', 'did:mesh:other'), msg('q', 'a')], [], Q)).toEqual([
        'stored',
        'duplicate',
        'id_conflict',
        'stored',
      ]);
      // Acked ids may be stored again.
      await s.commit([], [{ recipient: 'r', id: 'a' }], Q);
      expect(await s.commit([msg('r', 'a')], [], Q)).toEqual(['stored']);
    });

    it('quotas: inbox_full, then sender_quota; acks in the same group free room first', async () => {
      expect(await s.commit([msg('r', '1'), msg('r', '2'), msg('r', '3'), msg('r', '4')], [], Q)).toEqual([
        'stored',
        'stored',
        'stored',
        'inbox_full',
      ]);
      expect(await s.commit([msg('x', '5'), msg('y', '6')], [], Q)).toEqual(['stored', 'sender_quota']);
      expect(await s.commit([msg('r', '4')], [{ recipient: 'r', id: '1' }], Q)).toEqual(['stored']);
    });

    it('per-(sender, recipient) cap: one sender cannot fill an inbox for the others (pair_quota)', async () => {
      const q: InboxQuota = { maxPerInbox: 10, maxPerSender: 10, maxPerPair: 2 };
      expect(await s.commit([msg('r', '1', 'did:mesh:a'), msg('r', '2', 'did:mesh:a'), msg('r', '3', 'did:mesh:a')], [], q)).toEqual([
        'stored',
        'stored',
        'pair_quota',
      ]);
      expect(await s.commit([msg('r', '4', 'did:mesh:b'), msg('x', '5', 'did:mesh:a')], [], q)).toEqual(['stored', 'stored']);
      expect(await s.commit([msg('r', '3', 'did:mesh:a')], [{ recipient: 'r', id: '1' }], q)).toEqual(['stored']);
    });

    it('byte quotas per inbox, per sender and per pair; acks and purges give the bytes back', async () => {
      const n = Buffer.byteLength(msg('r', '1').frame); // every test frame id is one character: same size
      const big = (recipient: string, id: string, sender: string) => msg(recipient, id, sender);
      expect(
        await s.commit([big('r', '1', 'did:mesh:a'), big('r', '2', 'did:mesh:b'), big('r', '3', 'did:mesh:c')], [], {
          maxPerInbox: 10,
          maxPerSender: 10,
          maxBytesPerInbox: 2 * n + 1,
        }),
      ).toEqual(['stored', 'stored', 'inbox_bytes']);
      expect(
        await s.commit([big('x', '4', 'did:mesh:a'), big('y', '5', 'did:mesh:a')], [], {
          maxPerInbox: 10,
          maxPerSender: 10,
          maxBytesPerSender: 2 * n,
        }),
      ).toEqual(['stored', 'sender_bytes']);
      expect(await s.commit([big('x', '6', 'did:mesh:a')], [], { maxPerInbox: 10, maxPerSender: 10, maxBytesPerPair: n })).toEqual([
        'pair_quota',
      ]);
      expect(
        await s.commit([big('x', '6', 'did:mesh:a')], [{ recipient: 'x', id: '4' }], {
          maxPerInbox: 10,
          maxPerSender: 10,
          maxBytesPerPair: n,
        }),
      ).toEqual(['stored']);
      await s.commit([msg('z', '7', 'did:mesh:e', NOW + 10)], [], Q);
      await s.purgeExpired(NOW + 10);
      expect(
        await s.commit([msg('z', '8', 'did:mesh:e')], [], {
          maxPerInbox: 10,
          maxPerSender: 10,
          maxBytesPerInbox: n,
          maxBytesPerSender: n,
          maxBytesPerPair: n,
        }),
      ).toEqual(['stored']);
    });

    it('expiry: expired frames are not listed; purge deletes them and frees quota', async () => {
      await s.commit([msg('r', 'old', 'did:mesh:s', NOW + 10), msg('r', 'new', 'did:mesh:s', NOW + 1000)], [], Q);
      expect((await s.pending('r', NOW + 10, 10)).map((m) => m.id)).toEqual(['new']);
      expect(await s.purgeExpired(NOW + 10)).toBe(1);
      expect(await s.count('r')).toBe(1);
      expect(await s.size()).toBe(1);
    });
  });
}
