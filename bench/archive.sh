#!/bin/bash
# bench/archive.sh - export and import of a sparse bundle vs GNU tar --sparse on the
# native directory. On demand, not in CI:
#     bench/archive.sh [BUILDDIR] [LOGICAL_GIB] [ALLOC_MIB]      (defaults: . 16 256)
# Prints a markdown table: times (best of 3), ratios to GNU tar, archive sizes vs
# the allocated size. Needs about 3 x ALLOC_MIB of free space in $TMPDIR.
set -eu
B=$(cd "${1:-.}" && pwd)
GIB=${2:-16}
MIB=${3:-256}
VMB=$B/vmbundlefs
[ -x "$VMB" ] || { echo "no vmbundlefs in $B (give the build directory)" >&2; exit 2; }
W=$(mktemp -d "${TMPDIR:-/tmp}/vmb-bench-archive.XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"

# A bundle: GIB GiB logical, MIB MiB of data in 64 extents of MIB/64 MiB, spread out.
mkdir -p src/vm
truncate -s $((GIB << 30)) src/vm/disk.img
step=$(((GIB << 30) / 64))
for i in $(seq 0 63); do
    dd if=/dev/urandom of=src/vm/disk.img bs=1M count=$((MIB / 64)) seek=$((i * step / 1048576)) \
        conv=notrunc status=none
done
echo '{"cpu": 4}' >src/vm/config.json
truncate -s 128K src/vm/nvram.bin
sync

best() {   # best of 3 wall-clock seconds of "$@" (after a prep command in $PREP)
    local i t b=
    for i in 1 2 3; do
        eval "${PREP:-:}"
        sync
        t=$( { TIMEFORMAT=%R; time "$@" >/dev/null 2>/dev/null; } 2>&1 | tail -n 1)
        if [ -z "$b" ] || awk "BEGIN { exit !($t < $b) }"; then b=$t; fi
    done
    echo "$b"
}

"$VMB" init store >/dev/null
tar -C src --sparse -cf seed.tar vm
"$VMB" import --no-sync store seed.tar >/dev/null
ALLOC=$(($(stat -c %b store/vm/disk.img) * 512))

T_GTAR_C=$(PREP='rm -f g.tar' best tar -C src --sparse -cf g.tar vm)
T_EXP=$(PREP='rm -f v.tar' best "$VMB" export --no-sync store vm v.tar)
T_EXP_ZST=$(PREP='rm -f v.tar.zst' best "$VMB" export --no-sync store vm v.tar.zst)
T_GTAR_X=$(PREP='rm -rf x && mkdir x' best tar -C x -x --sparse -f g.tar)
T_IMP=$(PREP='rm -rf store2 && "$VMB" init store2 >/dev/null' best "$VMB" import --no-sync store2 v.tar)
T_IMP_SYNC=$(PREP='rm -rf store2 && "$VMB" init store2 >/dev/null' best "$VMB" import store2 v.tar)
S_G=$(stat -c %s g.tar) S_V=$(stat -c %s v.tar) S_Z=$(stat -c %s v.tar.zst)

r() { awk "BEGIN { printf \"%.2f\", $1 / ($2 > 0 ? $2 : 0.001) }"; }
mb() { awk "BEGIN { printf \"%.1f\", $1 / 1048576 }"; }
echo "bundle: ${GIB} GiB logical, $(mb "$ALLOC") MiB allocated (disk.img)"
echo
echo "| operation | vmbundlefs (s) | GNU tar --sparse (s) | ratio |"
echo "|---|---|---|---|"
echo "| export .tar (pax sparse) vs tar -c --sparse | $T_EXP | $T_GTAR_C | $(r "$T_EXP" "$T_GTAR_C") |"
echo "| export .tar.zst vs tar -c --sparse | $T_EXP_ZST | $T_GTAR_C | $(r "$T_EXP_ZST" "$T_GTAR_C") |"
echo "| import .tar (--no-sync) vs tar -x --sparse | $T_IMP | $T_GTAR_X | $(r "$T_IMP" "$T_GTAR_X") |"
echo "| import .tar (synced, default) vs tar -x --sparse | $T_IMP_SYNC | $T_GTAR_X | $(r "$T_IMP_SYNC" "$T_GTAR_X") |"
echo
echo "| archive | size (MiB) | size / allocated |"
echo "|---|---|---|"
echo "| vmbundlefs export .tar | $(mb "$S_V") | $(r "$S_V" "$ALLOC") |"
echo "| vmbundlefs export .tar.zst (random data) | $(mb "$S_Z") | $(r "$S_Z" "$ALLOC") |"
echo "| GNU tar --sparse | $(mb "$S_G") | $(r "$S_G" "$ALLOC") |"
