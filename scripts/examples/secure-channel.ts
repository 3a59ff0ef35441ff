/**
 * Example: two agents, one SecureChannel, every message crossing the "wire" as bytes.
 * Run: npx tsx scripts/examples/secure-channel.ts
 */
import { ready, AgentIdentity, SecureChannel, ChannelEstablishment, utf8, fromUtf8 } from 'agentmesh-e2e';

async function main(): Promise<void> {
  await ready();

  // Each agent has an Ed25519 identity; Bob publishes a signed pre-key and one-time pre-keys.
  const alice = AgentIdentity.generate().createKeyManager();
  const bobId = AgentIdentity.generate();
  const bob = bobId.createKeyManager();
  bob.generateSignedPreKey();
  const [otk] = bob.generateOneTimePreKeys(5);
  const bundle = bob.getPublicBundle({ otkId: otk!.keyId }); // what a directory would hand to Alice

  // The associated data names both ends; both sides must use the same bytes.
  const ad = utf8(`alice|${bobId.did}`);
  const { channel: toBob, establishment } = SecureChannel.createSender(alice, bundle, ad);

  // Alice sends the establishment and her first message; Bob accepts and reads.
  const wireEstablishment = establishment.serialize();
  const wireMessage = toBob.send(utf8('hello bob')).serialize();
  const fromAlice = SecureChannel.createReceiver(bob, ChannelEstablishment.deserialize(wireEstablishment), ad);
  console.log(`bob read: ${fromUtf8(fromAlice.receive(wireMessage))}`);

  // Replies flow the other way on the same channel pair.
  const reply = fromAlice.send(utf8('hello alice')).serialize();
  console.log(`alice read: ${fromUtf8(toBob.receive(reply))}`);
  console.log(`envelope of 11 plaintext bytes: ${reply.length} bytes on the wire`);

  toBob.close();
  fromAlice.close();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
