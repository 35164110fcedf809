#!/bin/sh
# remote-mount-scratch.sh - `mount URL` builds its private shadow store without
# an fsync (base/fdio.h, vmb_sync_scratch): the shadow store is removed at
# unmount, rebuilt by every mount and swept after a crash, so syncing it only
# cost time before the mount appeared (two fsyncs a file, about ten a bundle:
# on a slow disk, seconds per hundred bundles; report F6). The objects the
# mount fetches into the host's cache are still synced (the cache is shared and
# a chunk counts only once durable), and the bundles read right. And it does not
# fill the cache's file system: the mount fetches no bundle before its first
# lookup, and a bundle whose small files would leave less free there than half
# of what was free at the mount (at most the cache's 1 GiB) is refused.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/remote-lib.sh"

vmb_setup
command -v strace >/dev/null 2>&1 || skip "strace is not installed (contrib/setup.sh installs it)"
need_mkpub

# 12 bundles: an image each, and a config and NVRAM of their own
for i in $(seq 1 12); do
    d=$T/src/vm$i
    mkdir -p "$d"
    truncate -s 4M "$d/disk.img"
    vmbio pwrite "$d/disk.img" $((i * 65536)) 65536 "p$i" >/dev/null || fail "vmbio pwrite"
    printf '{"vm": %d}\n' "$i" >"$d/config.json"
    vmbio pwrite "$d/nvram.bin" 0 20000 "p$((i + 20))" >/dev/null || fail "vmbio pwrite"
done
"$MKPUB" -c 65536 "$T/pub" $(for i in $(seq 1 12); do echo "$T/src/vm$i"; done) >"$T/mkpub.out" 2>&1 ||
    { cat "$T/mkpub.out"; fail "mkpub failed"; }
C=$T/cache

# the daemon runs under strace -f (LeakSanitizer cannot run under ptrace: leaks
# are checked where the same mount runs untraced, remote-mount.sh)
REAL=$VMB_BIN
cat >"$T/traced" <<EOS
#!/bin/sh
ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0" exec strace -f -y -qq -o "$T/st" -e trace=fsync,fdatasync "$REAL" "\$@"
EOS
chmod +x "$T/traced"
VMB_BIN=$T/traced rmount m "file://$T/pub" -o "cache=$C"
VMB_BIN=$REAL
assert_eq "the 12 bundles" 12 "$(ls "$T/m" | wc -l)"
assert_eq "nothing pulled before a lookup" 0 "$(ls "$C/mnt/"*/ | wc -l)"
assert_num "the root's links count every bundle, pulled or not (find's leaf optimization)" \
    "$(stat -c %h "$T/m")" -ge 14
assert_eq "find walks every bundle, each pulled at its first lookup" 12 \
    "$(find "$T/m" -name config.json | wc -l)"
check "ls -l of each" ls -l $(for i in $(seq 1 12); do echo "$T/m/vm$i"; done)
for i in 1 7 12; do
    check "vm$i's image" cmp "$T/src/vm$i/disk.img" "$T/m/vm$i/disk.img"
    check "vm$i's config" cmp "$T/src/vm$i/config.json" "$T/m/vm$i/config.json"
    check "vm$i's NVRAM" cmp "$T/src/vm$i/nvram.bin" "$T/m/vm$i/nvram.bin"
done
shadow=$(ls "$C/mnt")
assert_match "a shadow store under CACHE/mnt" "^[0-9a-f]{16}$" "$shadow"
check "unmount" rumount m
check "the shadow store is gone" test -z "$(ls "$C/mnt")"

assert_eq "no fsync of the shadow store's files and directories" "" \
    "$(grep -E "fsync\([0-9]+<$C/mnt/" "$T/st" | head -n 5)"
assert_num "the objects the mount fetched into the cache were synced (chunks/, tmp/)" \
    "$(grep -cE "fsync\([0-9]+<$C/(chunks|tmp)/" "$T/st")" -ge 12

# the same mount of a local store still syncs what it makes (a pull: its bundle
# is the user's)
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -y -qq -o "$T/st.pull" -e trace=fsync,fdatasync \
    "$VMB_BIN" pull -o "cache=$C" "$STORE" "file://$T/pub#vm3" >"$T/pull.out" 2>&1 ||
    { cat "$T/pull.out"; fail "pull"; }
assert_num "a pull into a store syncs the bundle it makes" \
    "$(grep -cE "fsync\([0-9]+<$STORE/" "$T/st.pull")" -ge 4
check "the pulled bundle's NVRAM" cmp "$T/src/vm3/nvram.bin" "$STORE/vm3/nvram.bin"

# a tmpfs of 48 MiB for the cache: 30 bundles of a 1000 KiB NVRAM each (29 MiB
# of copies). The mount fetches nothing but the top index; each bundle is copied
# at its first lookup while that leaves at least half of what was free at the
# mount; past that, lookups fail with ENOSPC and a log line with the sizes, and
# the file system never fills
mkdir -p "$T/small"
mount -t tmpfs -o size=48M vmbtest "$T/small" || skip "cannot mount a tmpfs"
on_exit "umount -l '$T/small'"
for i in $(seq 1 30); do
    d=$T/big/b$i
    mkdir -p "$d"
    vmbio pwrite "$d/nvram.bin" 0 1024000 "p$((i + 40))" >/dev/null || fail "vmbio pwrite"
done
"$MKPUB" -c 65536 "$T/pubbig" $(for i in $(seq 1 30); do echo "$T/big/b$i"; done) >"$T/mkpub.out" 2>&1 ||
    { cat "$T/mkpub.out"; fail "mkpub failed"; }
avail() { df -k --output=avail "$T/small" | tail -n 1; }
free0=$(avail)
rmount mbig "file://$T/pubbig" -o "cache=$T/small/c"
assert_eq "the mount lists the 30 bundles" 30 "$(ls "$T/mbig" | wc -l)"
assert_eq "... having fetched no manifest nor small file" 0 \
    "$(find "$T/small/c/chunks" "$T/small/c/meta" -type f 2>/dev/null | wc -l)"
good=0 nospc=0 other=0 wrong=0 minfree=$free0
for i in $(seq 1 30); do
    if out=$(cat "$T/mbig/b$i/nvram.bin" 2>&1 >"$T/nv"); then
        cmp -s "$T/nv" "$T/big/b$i/nvram.bin" && good=$((good + 1)) || wrong=$((wrong + 1))
    elif [[ $out == *"No space left on device"* ]]; then
        nospc=$((nospc + 1))
    else
        other=$((other + 1)); echo "# b$i: $out"
    fi
    f=$(avail); [ "$f" -lt "$minfree" ] && minfree=$f
done
assert_num "the first bundles are copied at their lookups ($good)" "$good" -ge 10
assert_eq "... and read right" 0 "$wrong"
assert_num "past half of the free space, lookups fail with ENOSPC ($nospc)" "$nospc" -ge 1
assert_eq "... and with nothing else" 0 "$other"
assert_num "the file system keeps about half of what was free ($minfree of $free0 KiB)" \
    "$((minfree * 100 / free0))" -ge 45
assert_match "the log says why, with the sizes" \
    "cannot pull bundle 'b[0-9]+' of 'file://$T/pubbig' into the mount: bundle 'b[0-9]+' has 1\.0 MiB of small files, copied into '$T/small/c/mnt/[0-9a-f]+', where [0-9]+\.[0-9] MiB are free and [0-9]+\.[0-9] MiB must stay free" \
    "$(cat "$T/mbig.log")"
check "unmount" rumount mbig
assert_eq "the shadow store is gone" "" "$(ls "$T/small/c/mnt")"
# the 12-bundle store fits there
rmount m2 "file://$T/pub" -o "cache=$T/small/c"
check "a store that fits mounts on the same file system" cmp "$T/src/vm5/nvram.bin" "$T/m2/vm5/nvram.bin"
check "unmount" rumount m2

finish
