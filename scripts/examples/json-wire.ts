/**
 * Example: everything that travels, in its JSON form: the pre-key bundle (as a registry publishes
 * it), the establishment and the messages. Only public data: no key that could decrypt.
 * Run: npx tsx scripts/examples/json-wire.ts
 */
import {
  ready,
  X3DHKeyManager,
  ed25519KeyPair,
  SecureChannel,
  ChannelEstablishment,
  EncryptedMessage,
  bundleToJSON,
  bundleFromJSON,
  utf8,
  fromUtf8,
} from 'agentmesh-e2e';

async function main(): Promise<void> {
  await ready();
  const a = ed25519KeyPair();
  const b = ed25519KeyPair();
  const alice = X3DHKeyManager.fromEd25519Keys(a.secretKey, a.publicKey);
  const bob = X3DHKeyManager.fromEd25519Keys(b.secretKey, b.publicKey);
  bob.generateSignedPreKey();
  const [otk] = bob.generateOneTimePreKeys(1);

  // Bob's bundle, as the registry stores it: snake_case, unpadded base64url.
  const published = JSON.stringify(bundleToJSON(bob.getPublicBundle({ otkId: otk!.keyId })));
  console.log(`bundle: ${published}`);

  // Alice fetches it; bundleFromJSON checks its shape, initiate (in createSender) its signature.
  const { channel, establishment } = SecureChannel.createSender(alice, bundleFromJSON(published));
  const establishmentJson = JSON.stringify(establishment.toJSON());
  console.log(`establishment: ${establishmentJson}`);

  const messageJson = JSON.stringify(channel.send(utf8('hello over JSON')));
  console.log(`message: ${messageJson}`);

  const bobCh = SecureChannel.createReceiver(bob, ChannelEstablishment.fromJSON(establishmentJson));
  console.log(`bob read: ${fromUtf8(bobCh.receive(EncryptedMessage.fromJSON(messageJson)))}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
