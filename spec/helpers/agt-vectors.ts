/** Reads the AGT reference's interop vectors (spec/vectors/agt) and replays its deterministic random source. */
import { readFileSync } from 'fs';
import { join } from 'path';
import { concatBytes, sha256, utf8 } from '../../lib/crypto';

/** Every `### title` section of conversation-1.txt with its JSON body, by title. */
export function loadConversation(): Map<string, unknown> {
  const text = readFileSync(join(__dirname, '..', 'vectors', 'agt', 'conversation-1.txt'), 'utf8');
  const sections = new Map<string, unknown>();
  const re = /^### (.+)\n([{[][\s\S]*?\n[}\]])$/gm;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) sections.set(m[1], JSON.parse(m[2]));
  return sections;
}

/**
 * The reference run's generator: block i = SHA-256("agt-probe-drbg" ‖ u64be(i)); each draw takes
 * the first n bytes of as many fresh blocks as it needs. Records every draw for comparison.
 */
export function agtDrbg(): { source: (out: Uint8Array) => void; draws: Array<[number, Uint8Array]> } {
  let counter = 0;
  const label = utf8('agt-probe-drbg');
  const draws: Array<[number, Uint8Array]> = [];
  const source = (out: Uint8Array): void => {
    const blocks: Uint8Array[] = [];
    let have = 0;
    while (have < out.length) {
      const ctr = new Uint8Array(8);
      new DataView(ctr.buffer).setBigUint64(0, BigInt(counter++));
      const block = sha256(concatBytes(label, ctr));
      blocks.push(block);
      have += block.length;
    }
    out.set(concatBytes(...blocks).subarray(0, out.length));
    draws.push([out.length, Uint8Array.from(out)]);
  };
  return { source, draws };
}
