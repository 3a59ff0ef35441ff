/** Fixtures shared by the trust specs. */
import { AgentIdentity, IdentityRegistration, InMemoryIdentityRegistry } from '../../lib/trust';

/** A settable clock for `now` options. */
export class FakeClock {
  constructor(public t = Date.UTC(2026, 0, 1)) {}
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A registry with one entry per identity (score 850 unless given). */
export function registryWith(
  ...entries: { id: AgentIdentity; trustScore?: number; status?: IdentityRegistration['status']; capabilities?: string[] }[]
): InMemoryIdentityRegistry {
  const registry = new InMemoryIdentityRegistry();
  for (const e of entries) {
    registry.register({
      did: e.id.did,
      publicKey: e.id.publicKey,
      trustScore: e.trustScore ?? 850,
      status: e.status,
      capabilities: e.capabilities,
    });
  }
  return registry;
}
