#!/bin/sh
# Layered images through the mount (issue 10): `vmbundlefs clone` given the mount
# point or the store while it is mounted is carried out by the daemon (an offline
# clone beside a mount would be refused: the store is busy); a descriptor open on
# the source across the clone keeps writing to the source only; writes to the
# clone never show in the source nor the source's in the clone, across chains of
# several layers (clone of a clone, snapshots in between), partial-block writes
# over the base, punched holes and truncation, and after a remount (cmp against
# native copies that had the same operations); SEEK_DATA/SEEK_HOLE and st_blocks
# are exact through the chain (the same data extents as the native copy, st_blocks
# = its data bytes) and cp out of the mount stays sparse; the clone of a 16 GiB
# image with VMB_TEST_LAYERS_DATA_MB (default 256; the bench uses 8 GiB) of data
# takes under 100 ms beyond starting the command (500 ms in the sanitizer build),
# best of 3 (of up to 6 on a busy machine); clones with a bad
# destination or source fail with a message and change nothing.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
M=$((1024 * 1024))
DATA_MB=${VMB_TEST_LAYERS_DATA_MB:-256}
LIMIT_MS=100
[ -n "${VMB_SAN_CFLAGS:-}" ] && LIMIT_MS=500
REF=$T/ref
mkdir "$REF"
run() { timeout 120 "$@" >"$T/o" 2>"$T/e"; RC=$?; }
ms_of() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%d", (b - a) * 1000}'; }

# fill FILE SIZE_MB DATA_MB: DATA_MB of 1 MiB runs spread evenly over SIZE_MB.
fill() {
    python3 - "$1" "$2" "$3" <<'EOF'
import os, struct, sys
path, size_mb, data_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
M = 1 << 20
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size_mb * M)
buf = bytearray(os.urandom(M))
stride = size_mb // data_mb
for i in range(data_mb):
    struct.pack_into("<Q", buf, 0, i + 1)
    os.pwrite(fd, buf, i * stride * M)
os.fsync(fd)
os.close(fd)
EOF
}

# same_map WHAT MOUNTFILE REFFILE: data extents and st_blocks through the mount
# are exactly those of the native file with the same history.
same_map() {
    local b
    assert_eq "$1: SEEK_DATA/SEEK_HOLE extents as on the native copy" \
        "$(vmbio map "$3")" "$(vmbio map "$2")"
    b=$(vmbio blocks "$2")
    case $b in ''|*[!0-9]*) notok "$1: st_blocks" "stat failed: $b"; return ;; esac
    assert_eq "$1: st_blocks = the data bytes" "$(vmbio mapsum "$3")" "$((b * 512))"
}
# same_bytes WHAT MOUNTFILE REFFILE
same_bytes() { check "$1: reads as the native copy (cmp)" cmp "$3" "$2"; }

# ---- the bundles, made in the store before it is mounted ----
mkdir "$STORE/big" "$STORE/vm"
fill "$STORE/big/disk.img" 16384 "$DATA_MB"
fill "$STORE/vm/disk.img" 64 16              # 16 runs of 1 MiB, every 4 MiB
head -c 300000 /dev/urandom >"$STORE/vm/nvram.bin"   # small: copied by clone
head -c $((3 * M)) /dev/urandom >"$STORE/vm/aux.bin"  # large: shared
printf 'cpus 2\n' >"$STORE/vm/config"
chmod 0600 "$STORE/vm/nvram.bin"
cp --sparse=always "$STORE/vm/disk.img" "$REF/vm.img"
cp "$STORE/vm/nvram.bin" "$STORE/vm/aux.bin" "$STORE/vm/config" "$REF/"
mount_store

# ---- clone through the daemon, with a writer open on the source ----
exec 7<>"$MNT/vm/disk.img"
vmbio pwrite "$MNT/vm/disk.img" $((2 * M)) 8192 p3 >/dev/null   # into a hole, before
"$VMBIO" pwrite "$REF/vm.img" $((2 * M)) 8192 p3 >/dev/null
run "$VMB_BIN" clone "$MNT" vm vc
assert_eq "clone MNT vm vc: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
check "the clone is in the mount at once" test -f "$MNT/vc/disk.img"
cp --sparse=always "$REF/vm.img" "$REF/vc.img"
# The open descriptor still writes the source (the daemon moved it to the new delta).
python3 -c 'import os, sys; os.pwrite(7, b"AFTER-CLONE-THROUGH-AN-OPEN-FD", int(sys.argv[1])); os.fsync(7)' $((2 * M + 100)) ||
    fail "write through the descriptor opened before the clone"
exec 7>&-
printf 'AFTER-CLONE-THROUGH-AN-OPEN-FD' | dd of="$REF/vm.img" bs=1 seek=$((2 * M + 100)) conv=notrunc status=none
same_bytes "source after a write through a descriptor opened before the clone" "$MNT/vm/disk.img" "$REF/vm.img"
same_bytes "clone: the write through the old descriptor is not in it" "$MNT/vc/disk.img" "$REF/vc.img"
for f in nvram.bin aux.bin config; do
    same_bytes "clone's $f" "$MNT/vc/$f" "$REF/$f"
done
assert_eq "clone's files: same modes and sizes" \
    "$(cd "$MNT/vm" && stat -c '%n %a %s %u' * | sort)" "$(cd "$MNT/vc" && stat -c '%n %a %s %u' * | sort)"
same_map "clone, untouched" "$MNT/vc/disk.img" "$REF/vc.img"
same_map "source after the clone" "$MNT/vm/disk.img" "$REF/vm.img"

# The store named while it is mounted: also the daemon's (an offline clone would be
# refused with EBUSY beside the mount).
run "$VMB_BIN" clone "$STORE" vm vs
assert_eq "clone STORE vm vs while mounted: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
check "... and the clone is in the mount at once" test -f "$MNT/vs/disk.img"
same_bytes "clone made through the store's path" "$MNT/vs/disk.img" "$REF/vm.img"
cp --sparse=always "$REF/vm.img" "$REF/vs.img"

# ---- isolation: changes on either side, partial blocks over the base ----
# apply OP FILE...: the same operation on the mount's file and its native copy
apply() {
    local op=$1 mf=$2 rf=$3
    shift 3
    case $op in
    write) vmbio pwrite "$mf" "$@" >/dev/null; "$VMBIO" pwrite "$rf" "$@" >/dev/null ;;
    punch) vmbio falloc "$mf" punch "$@" >/dev/null; "$VMBIO" falloc "$rf" punch "$@" >/dev/null ;;
    trunc) truncate -s "$1" "$mf"; truncate -s "$1" "$rf" ;;
    esac
}
apply write "$MNT/vc/disk.img" "$REF/vc.img" 100 5000 p11               # partial blocks over base data
apply write "$MNT/vc/disk.img" "$REF/vc.img" $((4 * M + 4000)) 200 p12   # partial block, base data
apply write "$MNT/vc/disk.img" "$REF/vc.img" $((6 * M + 10)) 20 p13      # partial block in a base hole
apply punch "$MNT/vc/disk.img" "$REF/vc.img" $((8 * M)) $((256 * 1024))  # hide base data
apply write "$MNT/vc/disk.img" "$REF/vc.img" $((70 * M)) 4096 p14       # extend past the end
apply write "$MNT/vm/disk.img" "$REF/vm.img" 0 65536 p15                 # the source changes too
apply punch "$MNT/vm/disk.img" "$REF/vm.img" $((12 * M)) $M
for b in vm vc vs; do
    same_bytes "$b after changes on both sides" "$MNT/$b/disk.img" "$REF/$b.img"
    same_map "$b after changes on both sides" "$MNT/$b/disk.img" "$REF/$b.img"
done

# ---- deeper chains: a clone of the clone, a snapshot, more changes ----
run "$VMB_BIN" clone "$MNT" vc vcc
assert_eq "clone of a clone: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
cp --sparse=always "$REF/vc.img" "$REF/vcc.img"
run "$VMB_BIN" snapshot "$MNT" vcc s1
assert_eq "snapshot of the clone of a clone: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
apply trunc "$MNT/vcc/disk.img" "$REF/vcc.img" $((16 * M + 1000))        # shrink into base data
apply trunc "$MNT/vcc/disk.img" "$REF/vcc.img" $((40 * M))               # extend: zeros, not the base
apply write "$MNT/vcc/disk.img" "$REF/vcc.img" $((20 * M + 7)) 9000 p16
apply write "$MNT/vc/disk.img" "$REF/vc.img" $((16 * M)) 8192 p17
for b in vm vc vs vcc; do
    same_bytes "$b, chain of several layers" "$MNT/$b/disk.img" "$REF/$b.img"
    same_map "$b, chain of several layers" "$MNT/$b/disk.img" "$REF/$b.img"
done
cp --sparse=auto "$MNT/vcc/disk.img" "$T/out.img"
check "cp out of the mount: the same bytes" cmp "$REF/vcc.img" "$T/out.img"
assert_num "cp out of the mount: sparse (allocated $(du -B1 "$T/out.img" | cut -f1) for $(vmbio mapsum "$REF/vcc.img") data)" \
    "$(du -B1 "$T/out.img" | cut -f1)" -le $(($(vmbio mapsum "$REF/vcc.img") + 256 * 1024))
rm -f "$T/out.img"

# ---- after a remount, everything still reads the same ----
remount
for b in vm vc vs vcc; do
    same_bytes "$b after a remount" "$MNT/$b/disk.img" "$REF/$b.img"
    same_map "$b after a remount" "$MNT/$b/disk.img" "$REF/$b.img"
done
same_bytes "vc's nvram.bin after a remount" "$MNT/vc/nvram.bin" "$REF/nvram.bin"

# ---- O(1): the clone of a 16 GiB image with DATA_MB of data ----
# The fastest of 3 whole commands, less the fastest of as many runs of a command
# that does nothing ('--version'): starting a process on a shared machine can take
# tens of milliseconds (as tests/layers-cli.sh measures the offline clone). While
# the best is over a limit, up to 3 more rounds: a clone syncs what it freezes, and
# a sync on a shared disk can take a second now and then.
best=999999 base=999999 i=0
while [ $i -lt 3 ] || { [ $i -lt 6 ] && { [ $((best - base)) -ge "$LIMIT_MS" ] || [ "$best" -ge 1000 ]; }; }; do
    i=$((i + 1))
    t0=$EPOCHREALTIME; "$VMB_BIN" --version >/dev/null; t1=$EPOCHREALTIME
    ms=$(ms_of "$t0" "$t1"); [ "$ms" -lt "$base" ] && base=$ms
    # a new block in the source each time, so each clone freezes a new layer
    vmbio pwrite "$MNT/big/disk.img" $((i * 4096)) 4096 p2$i >/dev/null
    t0=$EPOCHREALTIME
    run "$VMB_BIN" clone "$MNT" big "big$i"
    t1=$EPOCHREALTIME
    assert_eq "clone $i of the 16 GiB image: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
    ms=$(ms_of "$t0" "$t1")
    say "# clone $i of big (16 GiB, $DATA_MB MiB of data) through the daemon: $ms ms"
    [ "$ms" -lt "$best" ] && best=$ms
done
say "# fastest clone $best ms; fastest 'vmbundlefs --version' $base ms ($i rounds)"
assert_num "clone of a 16 GiB image with $DATA_MB MiB of data through the mount: $((best - base)) ms beyond starting the command (limit $LIMIT_MS)" \
    $((best - base)) -lt "$LIMIT_MS"
assert_num "... and under a second in all ($best ms)" "$best" -lt 1000
assert_eq "the clone's size" "$(stat -c %s "$MNT/big/disk.img")" "$(stat -c %s "$MNT/big$i/disk.img")"
assert_eq "the clone's st_blocks are the source's" "$(vmbio blocks "$MNT/big/disk.img")" "$(vmbio blocks "$MNT/big$i/disk.img")"
check "the clone's first 32 MiB read as the source's" cmp -n $((32 * M)) "$MNT/big/disk.img" "$MNT/big$i/disk.img"
off=$(((DATA_MB - 1) * (16384 / DATA_MB) * M))
check "the clone's last data run reads as the source's" cmp -i "$off:$off" -n $M "$MNT/big/disk.img" "$MNT/big$i/disk.img"

# ---- bad input: a message, nothing changed ----
ls "$MNT" | sort >"$T/before"
run "$VMB_BIN" clone "$MNT" vm vc
assert_num "clone onto an existing bundle fails" $RC -ne 0
assert_match "... naming it" "vc" "$(cat "$T/e")"
run "$VMB_BIN" clone "$MNT" nosuch x1
assert_num "clone of a missing bundle fails" $RC -ne 0
assert_match "... naming it" "nosuch" "$(cat "$T/e")"
for bad in ../x .vmbundlefs "a/b" ""; do
    run "$VMB_BIN" clone "$MNT" vm "$bad"
    assert_num "clone to the bad name '$bad' fails" $RC -ne 0
done
run "$VMB_BIN" clone "$MNT" vm
assert_eq "clone without DST: usage error (exit 2)" 2 $RC
assert_eq "no bundle came or went" "$(cat "$T/before")" "$(ls "$MNT" | sort)"
same_bytes "vc unchanged by the refused clone" "$MNT/vc/disk.img" "$REF/vc.img"
finish
