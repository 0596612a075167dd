#!/usr/bin/env bash
# Builds go-gzip and writes Go-compressed fixtures of a tar of Go's own sources into OUT.
#   make-fixtures.sh OUT small   the committed fixtures (store/tests/fixtures/go/)
#   make-fixtures.sh OUT large   CI's larger ones (GO_GZIP_FIXTURES), and OUT/go-gzip
# Needs Debian's golang-go and golang-github-klauspost-pgzip-dev.
set -euo pipefail
out=$1 size=$2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${TMPDIR:-/tmp}/go-gzip-cache" GOFLAGS=
(cd "$here" && go build -o "$out/go-gzip" .)
src=$(go env GOROOT)/src
tarball() { tar cf - --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -C "$src" "$@"; }
if [ "$size" = small ]; then
  tarball compress/flate > "$out/full.tar"
  head -c 150000 "$out/full.tar" > "$out/input.tar"
  levels="1 2 3 4 5 6 7 8 9 -1"
  pgzip="-1:0 -1:65536 1:65536 9:65536"
else
  tarball compress encoding net/http > "$out/full.tar"
  head -c 12000000 "$out/full.tar" > "$out/input.tar"
  levels="1 2 3 4 5 6 7 8 9"
  pgzip="-1:0 -1:262144 -1:524288 1:0 6:0 9:0"
fi
for l in $levels; do "$out/go-gzip" gzip "$l" < "$out/input.tar" > "$out/gzip_$l.gz"; done
# Flushes every 10,000 bytes (sync points mid-stream).
for l in 1 2 6; do
  "$out/go-gzip" gzip "$l" 10000 < "$out/input.tar" > "$out/gzip_${l}_flush10000.gz"
done
for p in $pgzip; do
  "$out/go-gzip" pgzip "${p%:*}" "${p#*:}" < "$out/input.tar" > "$out/pgzip_${p%:*}_${p#*:}.gz"
done
rm -f "$out/input.tar" "$out/full.tar"
if [ "$size" = small ]; then rm -f "$out/go-gzip"; fi
