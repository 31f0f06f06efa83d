#!/usr/bin/env bash
# Installs code-server 4.100.3 (the newest whose engines accept Node 20) into
# .test-artifacts/code-server, outside the project's node_modules. Reuses an existing install.
# Needs: apt packages libkrb5-dev and ripgrep (.ci/run installs them). @vscode/ripgrep would
# download rg from GitHub, so its cache is pre-seeded with Debian's rg; npm_config_yes=true lets
# node-pty's postinstall run `npx node-gyp` (this machine's npm config says yes=false).
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=4.100.3
DEST=.test-artifacts/code-server
BIN="$DEST/node_modules/.bin/code-server"

if [ -x "$BIN" ] && [ "$(cat "$DEST/.version" 2>/dev/null)" = "$VERSION" ]; then
  echo "code-server $VERSION already installed in $DEST"
  exit 0
fi
command -v rg >/dev/null || { echo "ripgrep (rg) is missing: apt-get install -y ripgrep" >&2; exit 1; }

mkdir -p "$DEST"
CACHE_TMP=$(mktemp -d)
trap 'rm -rf "$CACHE_TMP"' EXIT
mkdir -p "$CACHE_TMP/vscode-ripgrep-cache-1.15.11" "$CACHE_TMP/rg"
cp "$(command -v rg)" "$CACHE_TMP/rg/rg"
tar -czf "$CACHE_TMP/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$CACHE_TMP/rg" rg

[ -f "$DEST/package.json" ] || echo '{ "private": true }' > "$DEST/package.json"
(cd "$DEST" && TMPDIR="$CACHE_TMP" npm_config_yes=true npm install --no-audit --no-fund --unsafe-perm --foreground-scripts "code-server@$VERSION" >install.log 2>&1) || {
  echo "code-server install failed; the end of $DEST/install.log:" >&2
  tail -30 "$DEST/install.log" >&2
  exit 1
}
echo "$VERSION" > "$DEST/.version"
echo "code-server $VERSION installed in $DEST"
