#!/usr/bin/env bash
# Runs AGT's own Python relay and registry locally (127.0.0.1 only), builds AGT's current TypeScript
# MeshClient, and runs spec/interop/agt-mesh-live.spec.ts against them (issue 12). Nothing of AGT is copied
# into this repository: AGT's source is cloned (or taken from AGT_SRC) into a scratch folder outside it.
#
# Usage (from the repository root):
#   scripts/agt-local.sh            # set up, start both servers, run the live spec, stop the servers
#   scripts/agt-local.sh serve      # set up and start them, print the env vars, run until Ctrl-C
#
# Environment (all optional):
#   AGT_SRC        an existing checkout of microsoft/agent-governance-toolkit (else it is cloned)
#   AGT_GIT        where to clone it from (default https://github.com/microsoft/agent-governance-toolkit)
#   AGT_REF        commit or branch to check out in the clone (default: its default branch)
#   AGT_WORK       scratch folder (default /tmp/agt-local); must be outside this repository
#   AGT_RELAY_PORT / AGT_REGISTRY_PORT   default 18083 / 18082
#   AGT_SKIP_MESHCLIENT=1   do not build AGT's TypeScript MeshClient (its tests are then skipped)
#   AGT_LIVE_SLOW=1         also run the 100 s heartbeat test (passed through to jest)
#
# Needs: git, Node ≥ 20 with npm (npm registry for AGT's TypeScript dependencies), and Debian's Python 3.11
# with these packages (no PyPI needed; the script installs them with apt-get when run as root):
#   python3-fastapi python3-uvicorn python3-websockets python3-httpx python3-pydantic python3-starlette python3-nacl
# Two Debian-specific adjustments are made to the scratch copy only (see /work/shared/AGT-WIRE.md §5):
#   - agentmesh/__init__.py is emptied: it imports modules that need pydantic v2 (Debian 12 has 1.10);
#   - the registry's DELETE route gets response_model=None: FastAPI 0.92 refuses the 204 route otherwise.
set -euo pipefail

MODE="${1:-test}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${AGT_WORK:-/tmp/agt-local}"
RELAY_PORT="${AGT_RELAY_PORT:-18083}"
REGISTRY_PORT="${AGT_REGISTRY_PORT:-18082}"
PY=/usr/bin/python3   # Debian's interpreter, not another python3 earlier on PATH
PKGS=(python3-fastapi python3-uvicorn python3-websockets python3-httpx python3-pydantic python3-starlette python3-nacl)

log() { printf '[agt-local] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$MODE" in test|serve) ;; *) die "usage: $0 [test|serve]";; esac
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
case "$WORK/" in "$REPO"/*) die "AGT_WORK ($WORK) must be outside the repository";; esac

# 1. Debian packages.
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
  else
    die "missing Debian packages; run: sudo apt-get install -y ${missing[*]}"
  fi
fi
[ -x "$PY" ] || die "$PY not found"

# 2. AGT's source.
if [ -n "${AGT_SRC:-}" ]; then
  SRC="$(cd "$AGT_SRC" && pwd)"
else
  SRC="$WORK/agent-governance-toolkit"
  if [ ! -d "$SRC/.git" ]; then
    log "cloning ${AGT_GIT:-https://github.com/microsoft/agent-governance-toolkit} into $SRC"
    git clone -q "${AGT_GIT:-https://github.com/microsoft/agent-governance-toolkit}" "$SRC"
  fi
  if [ -n "${AGT_REF:-}" ]; then git -C "$SRC" checkout -q "$AGT_REF"; fi
fi
case "$SRC/" in "$REPO"/*) die "AGT_SRC ($SRC) must be outside the repository";; esac
PYSRC="$SRC/agent-governance-python/agent-mesh/src/agentmesh"
TSSRC="$SRC/agent-governance-typescript"
[ -d "$PYSRC/relay" ] && [ -d "$PYSRC/registry" ] || die "no relay/registry under $PYSRC"
COMMIT="$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)"
log "AGT commit $COMMIT"

# 3. A scratch copy of the Python package, adjusted for Debian's FastAPI/pydantic.
RUN="$WORK/run"
rm -rf "$RUN"
mkdir -p "$RUN"
cp -r "$PYSRC" "$RUN/agentmesh"
: > "$RUN/agentmesh/__init__.py"
sed -i 's|@app.delete("/v1/agents/{did}", status_code=204)|@app.delete("/v1/agents/{did}", status_code=204, response_model=None)|' \
  "$RUN/agentmesh/registry/app.py"

# 4. AGT's current TypeScript MeshClient, built in the scratch checkout.
MESHCLIENT=""
if [ "${AGT_SKIP_MESHCLIENT:-0}" != 1 ] && [ -f "$TSSRC/package.json" ]; then
  if [ ! -f "$TSSRC/dist/encryption/index.js" ] || [ "$(cat "$TSSRC/dist/.agt-local-commit" 2>/dev/null)" != "$COMMIT" ]; then
    log "building AGT's TypeScript SDK (npm ci + tsc) in $TSSRC"
    (cd "$TSSRC" && timeout 600 npm ci --ignore-scripts --no-audit --no-fund >"$WORK/npm.log" 2>&1) || die "npm ci failed, see $WORK/npm.log"
    (cd "$TSSRC" && timeout 600 npx tsc >"$WORK/tsc.log" 2>&1) || die "tsc failed, see $WORK/tsc.log"
    echo "$COMMIT" > "$TSSRC/dist/.agt-local-commit"
  fi
  MESHCLIENT="$TSSRC/dist/encryption/index.js"
fi

# 5. Start relay and registry on loopback; stop them on exit.
for port in "$RELAY_PORT" "$REGISTRY_PORT"; do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then die "127.0.0.1:$port is already in use"; fi
done
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
(cd "$RUN" && exec "$PY" -m agentmesh.relay --host 127.0.0.1 --port "$RELAY_PORT") >"$WORK/relay.log" 2>&1 &
PIDS+=("$!")
(cd "$RUN" && exec "$PY" -m agentmesh.registry --host 127.0.0.1 --port "$REGISTRY_PORT") >"$WORK/registry.log" 2>&1 &
PIDS+=("$!")
for svc in "relay:$RELAY_PORT:agentmesh-relay" "registry:$REGISTRY_PORT:agentmesh-registry"; do
  IFS=: read -r name port service <<<"$svc"
  ok=0
  for _ in $(seq 1 100); do
    if curl -s --max-time 1 "http://127.0.0.1:$port/health" | grep -q "\"$service\""; then ok=1; break; fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { tail -20 "$WORK/$name.log" >&2; die "AGT $name did not come up on 127.0.0.1:$port"; }
  log "AGT $name up on 127.0.0.1:$port (log: $WORK/$name.log)"
done

export AGT_RELAY_URL="http://127.0.0.1:$RELAY_PORT"
export AGT_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
[ -n "$MESHCLIENT" ] && export AGT_MESHCLIENT="$MESHCLIENT"

if [ "$MODE" = serve ]; then
  echo "export AGT_RELAY_URL=$AGT_RELAY_URL AGT_REGISTRY_URL=$AGT_REGISTRY_URL${MESHCLIENT:+ AGT_MESHCLIENT=$MESHCLIENT}"
  echo "then: npx jest spec/interop/agt-mesh-live.spec.ts   (Ctrl-C here stops the servers)"
  wait
else
  cd "$REPO"
  set +e
  timeout 600 npx jest spec/interop/agt-mesh-live.spec.ts --verbose
  rc=$?
  set -e
  log "AGT commit $COMMIT; jest exit $rc"
  exit "$rc"
fi
