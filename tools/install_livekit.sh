#!/usr/bin/env bash
# Installs the real livekit-server that tests/integration/livekit_real.test.ts compares the LiveKit
# emulator with: version 1.13.5, pinned, built from its Go module (`go install`, about 4 minutes,
# needs the Go module proxy). Idempotent: a binary of that version already in the cache dir is
# kept. Never committed: it lives outside the checkout.
#
#   tools/install_livekit.sh     # -> ~/.cache/voice-lines/livekit-server-v1.13.5/server
#
# The test finds it there (or at LIVEKIT_SERVER_BIN). Redis comes from apt:
# apt-get install -y redis-server. livekit-sip is not installed: its module is not on the Go
# proxy, so no call can be placed through the real server.
set -euo pipefail

VERSION=1.13.5
MODULE=github.com/livekit/livekit-server/cmd/server
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/voice-lines/livekit-server-v$VERSION"
BIN="$DIR/server"

installed() {
  [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "livekit-server version $VERSION" ]
}

if installed "$BIN"; then
  echo "livekit-server $VERSION already installed: $BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install_livekit.sh: go is missing, so livekit-server $VERSION cannot be built." >&2
  echo "  Install Go 1.21 or newer (https://go.dev/dl/; livekit-server $VERSION asks for Go 1.26," >&2
  echo "  which Go >= 1.21 downloads by itself), then run $0 again." >&2
  echo "  Until then tests/integration/livekit_real.test.ts fails." >&2
  exit 1
fi
GOVERSION="$(go env GOVERSION)" # go1.26.8
minor="$(echo "$GOVERSION" | sed -E 's/^go1\.([0-9]+).*/\1/')"
if ! [ "$minor" -ge 21 ] 2>/dev/null; then
  echo "install_livekit.sh: $GOVERSION is too old to build livekit-server $VERSION (it asks for" >&2
  echo "  Go 1.26; Go >= 1.21 fetches that toolchain itself). Install a newer Go (https://go.dev/dl/)." >&2
  exit 1
fi

mkdir -p "$DIR"
BUILD="$(mktemp -d "$DIR/.build.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT
echo "building livekit-server $VERSION with $GOVERSION: go install $MODULE@v$VERSION (about 4 minutes)"
start=$SECONDS
# From an empty dir, so no go.mod around decides anything; the binary is named `server`.
(cd "$BUILD" && GOBIN="$BUILD/bin" GOFLAGS= go install "$MODULE@v$VERSION")
if ! installed "$BUILD/bin/server"; then
  echo "install_livekit.sh: the built binary does not report livekit-server version $VERSION" >&2
  exit 1
fi
mv -f "$BUILD/bin/server" "$BIN"
echo "livekit-server $VERSION installed in $((SECONDS - start)) s: $BIN"
