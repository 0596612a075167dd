#!/usr/bin/env bash
# Writes the golden fixtures: a store and two bundles (full and delta) made by the airlock
# binary given, from the OCI layout of make_layout.py (committed gzip fixtures as layers).
#   make.sh AIRLOCK_BINARY OUT
# The fixtures committed under tests/golden/ were written by the airlock of the commit named
# in their README; later versions must open, import and rebuild them exactly (issue 13).
set -euo pipefail
airlock=$1 out=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$root/tools/golden/make_layout.py" "$root" "$tmp/layout"
mkdir -p "$out"
store="$out/store"
rm -rf "$store" "$out/bundles"
"$airlock" --data "$store" -q add "oci:$tmp/layout" --as golden/app
# Since issue 17 an export puts the program beside volume 1 unless --no-binary; the fixtures
# hold volumes only.
no_binary=()
if "$airlock" export --help | grep -q -- --no-binary; then
  no_binary=(--no-binary)
fi
"$airlock" --data "$store" -q export golden/app:1.0 --out "$out/bundles" --name golden-1.0 --volume-size 120K "${no_binary[@]}"
"$airlock" --data "$store" -q export golden/app:1.1 --out "$out/bundles" --name golden-1.1 \
  --since "$out/bundles/golden-1.0.index.airlock" --volume-size 120K "${no_binary[@]}"
"$airlock" --data "$store" --json ls > "$out/ls.json"
"$airlock" --data "$store" --json du > "$out/du.json"
# Every blob of the store with its bytes' sha256, for the tests to compare against.
(cd "$tmp/layout/blobs/sha256" && sha256sum * | sort -k2) > "$out/blobs.sha256"
