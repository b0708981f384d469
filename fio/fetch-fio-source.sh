#!/usr/bin/env bash
# Fetch the source of the fio that is installed (Debian's fio has no -dev package) into a
# cache dir, once, without touching /etc/apt: a private deb-src list derived from the
# machine's own Debian sources, private lists and cache dirs.
# Usage: fetch-fio-source.sh CACHE_DIR   → prints the path of the unpacked source tree.
set -euo pipefail
cache=${1:?usage: fetch-fio-source.sh CACHE_DIR}
version=$(dpkg-query -W -f='${Version}' fio 2>/dev/null) || { echo "fio is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
upstream=${version%%-*}
tree="$cache/fio-$upstream"
if [ -f "$tree/ioengines.h" ]; then echo "$tree"; exit 0; fi
mkdir -p "$cache/apt/lists/partial" "$cache/apt/cache/archives/partial" "$cache/apt/parts"
# Derive deb-src entries from the deb822 and one-line sources the machine already has.
src="$cache/apt/parts/fio-src.sources"
: > "$src"
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  awk 'BEGIN{RS=""; ORS="\n\n"} /URIs:[^\n]*debian/ && /Types:[^\n]*deb/ { sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >> "$src"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  grep -E '^deb .*debian' "$f" | sed 's/^deb /deb-src /' >> "$cache/apt/parts/fio-src.list" || true
done
opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$cache/apt/parts"
      -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache"
      -o APT::Sandbox::User=root -o DPkg::Lock::Timeout=600)
apt-get "${opts[@]}" -qq update >&2
( cd "$cache" && apt-get "${opts[@]}" -qq source --download-only "fio=$version" >&2 )
rm -rf "$tree"
dpkg-source --no-check -x "$cache/fio_${version}.dsc" "$tree" >&2
echo "$tree"
