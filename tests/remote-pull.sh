#!/bin/sh
# remote-pull.sh - a bundle pulled from a published store (file:// URL, no server)
# and run through the mount (issue 11 §3): the pulled tree (small files whole,
# modes, times, xattrs, symlinks; images as deltas over .remote layers), deps
# naming the URL, SEEK_DATA/SEEK_HOLE and st_blocks exact before any chunk is
# fetched, reads byte-equal to the source, writes going to the delta and kept
# across a remount, the status xattr, prefetch then offline (the published
# directory moved away: everything reads), a bundle never read then offline (EIO
# and a log line naming file, offset, URL and error; a store still mounts), pull
# through the daemon, kill -9 of the daemon in the middle of fetching (the cache
# stays consistent, a remount reads right), a pulled bundle published again
# (offline, from the cache), gc keeping the .remote layers in use, flatten reading
# through, bad input.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
need_mkpub
export VMB_TEST_MOUNT_OPTS="cache=$T/cache"
export VMBUNDLEFS_CACHE=$T/cache    # for the commands given no -o cache=

SRC=$T/src/vm1
mkdir -p "$SRC/sub"
truncate -s 48M "$SRC/disk.img"
vmbio pwrite "$SRC/disk.img" 196608 1048576 p3 >/dev/null
vmbio pwrite "$SRC/disk.img" 20480000 12288 p4 >/dev/null
vmbio pwrite "$SRC/disk.img" 50327552 4096 p5 >/dev/null    # the last block
printf '{"cpu": 4}\n' >"$SRC/config.json"
setfattr -n user.vm -v macos "$SRC/config.json"
chmod 640 "$SRC/config.json"
touch -d '2024-01-02 03:04:05.5' "$SRC/config.json"
ln -s disk.img "$SRC/link"
head -c 5000 /dev/urandom >"$SRC/sub/nvram"
chmod 750 "$SRC/sub"
cp -a --sparse=always "$SRC" "$T/vm2src"
vmbio pwrite "$T/vm2src/disk.img" 0 65536 p9 >/dev/null
mv "$T/vm2src" "$T/src/vm2"
PUB=$T/pub
"$MKPUB" -c 65536 "$PUB" "$SRC" "$T/src/vm2" || hard_error "mkpub failed"
URL="file://$PUB"
chunks() { find "$T/cache/chunks" -type f 2>/dev/null | wc -l; }

# ---- a store with no remote layer never touches a cache ----
VMB_TEST_MOUNT_OPTS= VMBUNDLEFS_CACHE=$T/nocache mount_store
mkdir "$MNT/local" && vmbio pwrite "$MNT/local/disk.img" 0 65536 p1 >/dev/null
check "a local bundle reads" vmbio verify "$MNT/local/disk.img" 0 65536 p1
unmount_store
check_fails "no cache directory was made for a store without remote layers" test -e "$T/nocache"

# ---- pull, offline (the store is not mounted) ----
check "pull URL#vm1 into a store" "$VMB_BIN" pull -o cache="$T/cache" "$STORE" "$URL#vm1"
assert_eq "small file written whole" "$(cat "$SRC/config.json")" "$(cat "$STORE/vm1/config.json")"
assert_eq "its mode" "640" "$(stat -c %a "$STORE/vm1/config.json")"
assert_eq "its mtime" "$(stat -c %Y.%y "$SRC/config.json")" "$(stat -c %Y.%y "$STORE/vm1/config.json")"
assert_eq "its xattr" "macos" "$(getfattr --only-values -n user.vm "$STORE/vm1/config.json" 2>/dev/null)"
assert_eq "symlink" "disk.img" "$(readlink "$STORE/vm1/link")"
assert_eq "dir mode" "750" "$(stat -c %a "$STORE/vm1/sub")"
assert_eq "the image is an empty delta" "0" "$(stat -c %b "$STORE/vm1/disk.img")"
assert_eq "one .remote layer" "1" "$(ls "$STORE/.vmbundlefs/layers/" | grep -c '\.remote$')"
assert_eq "no image chunk fetched by pull" "2" "$(chunks)"
assert_match "deps names the URL" "^remote [0-9a-f]{32} $URL\$" "$("$VMB_BIN" deps "$STORE" vm1)"
out=$("$VMB_BIN" pull -o cache="$T/cache" "$STORE" "$URL#vm1" 2>&1)
assert_match "pull onto an existing bundle: EEXIST" "exists" "$out"
# set-ID bits as published are not made (a published store must not plant set-ID
# programs owned by whoever pulls it); the sticky bit and the rest are
mkdir -p "$T/suid/vms/sgdir"
printf '#!/bin/sh\n' >"$T/suid/vms/prog"
truncate -s 1M "$T/suid/vms/disk.img"
chmod 6755 "$T/suid/vms/prog"
chmod 3775 "$T/suid/vms/sgdir"
chmod 4644 "$T/suid/vms/disk.img"
"$MKPUB" -c 65536 "$T/suidpub" "$T/suid/vms" || hard_error "mkpub failed"
check "pull of a bundle published with set-ID modes" \
    "$VMB_BIN" pull -o cache="$T/cache-suid" "$STORE" "file://$T/suidpub#vms"
assert_eq "... made without setuid and setgid" "755 1775 644" \
    "$(stat -c %a "$STORE/vms/prog" "$STORE/vms/sgdir" "$STORE/vms/disk.img" | tr '\n' ' ' | sed 's/ $//')"
rm -rf "$STORE/vms"
"$VMB_BIN" fsck "$STORE" >/dev/null   # its map goes too
out=$("$VMB_BIN" pull -o cache="$T/cache" "$STORE" "$URL#nosuch" 2>&1)
assert_match "pull of a bundle that is not published" "no bundle 'nosuch'" "$out"
out=$("$VMB_BIN" pull -o cache="$T/cache" "$STORE" "$URL" 2>&1); rc=$?
assert_eq "pull without #BUNDLE: usage" "2" "$rc"
for bad in 'a/b' '.x' '..'; do
    out=$("$VMB_BIN" pull -o cache="$T/cache" "$STORE" "$URL#vm1" "$bad" 2>&1); rc=$?
    assert_eq "pull to the bad name '$bad': usage (exit 2)" "2" "$rc"
    assert_match "... naming it" "bad bundle name '$bad'" "$out"
done
out=$("$VMB_BIN" pull -o cache="$T/cache" "$STORE" "file://$T/nothere#vm1" vm9 2>&1)
assert_match "pull from a missing directory names it" "nothere" "$out"
out=$("$VMB_BIN" pull -o cach="$T/typo" "$STORE" "$URL#vm2" vm2t 2>&1); rc=$?
assert_eq "pull -o with a misspelt option: usage, no bundle, no cache" "2 no no" \
    "$rc $(test -e "$STORE/vm2t" && echo bundle || echo no) $(test -e "$T/typo" && echo cache || echo no)"
assert_match "... naming it" "unknown option 'cach=$T/typo'" "$out"
out=$("$VMB_BIN" prefetch -o hard,nosuch "$STORE/vm1/disk.img" 2>&1); rc=$?
assert_match "prefetch -o with an unknown option: usage, naming it" "^2 .*unknown option 'nosuch'" "$rc $out"
check_fails "nothing was left by the failed pulls" test -e "$STORE/nosuch"

# ---- through the mount ----
mount_store
F=$MNT/vm1/disk.img
assert_eq "st_blocks exact before any chunk is fetched" "$(stat -c %b "$SRC/disk.img")" "$(stat -c %b "$F")"
assert_eq "SEEK_DATA/SEEK_HOLE exact before any chunk is fetched" "$(vmbio map "$SRC/disk.img")" "$(vmbio map "$F")"
assert_eq "still no image chunk fetched" "2" "$(chunks)"
assert_match "status xattr: url, nothing cached" "url $URL.*cached_bytes 0 " "$(getfattr --only-values -n user.vmbundlefs.remote "$F" 2>/dev/null | tr '\n' ' ')"
check "reads equal the source" cmp "$SRC/disk.img" "$F"
assert_match "status xattr: all cached" "cached_bytes [1-9][0-9]* remote_bytes 0 " "$(getfattr --only-values -n user.vmbundlefs.remote "$F" 2>/dev/null | tr '\n' ' ')"
check_fails "the status xattr is read-only" setfattr -n user.vmbundlefs.remote -v x "$F"
cp --sparse=always "$SRC/disk.img" "$T/expect.img"
vmbio pwrite "$F" 200000 5000 p7 >/dev/null
vmbio pwrite "$T/expect.img" 200000 5000 p7 >/dev/null
vmbio pwrite "$F" 40000000 8192 p8 >/dev/null
vmbio pwrite "$T/expect.img" 40000000 8192 p8 >/dev/null
check "writes go to the delta and read back" cmp "$T/expect.img" "$F"
assert_match "status shows the cache" "remote: cache $T/cache" "$("$VMB_BIN" status -n 0 "$MNT")"
for i in $(seq 1 100); do
    "$VMB_BIN" status -n 0 "$MNT" | grep -q " 0 in flight, 0 queued for readahead; 0 bytes not yet durable;" && break
    sleep 0.1
done
assert_match "status: once idle, nothing in flight, queued or not yet durable" \
    " 0 in flight, 0 queued for readahead; 0 bytes not yet durable; 0 errors" "$("$VMB_BIN" status -n 0 "$MNT")"
assert_match "... the mount root's counters say the same" "remote_queued 0 cache_pending_bytes 0 " \
    "$(getfattr --only-values -n user.vmbundlefs.remote "$MNT" 2>/dev/null | tr '\n' ' ')"

# pull through the daemon
check "pull through the mount" "$VMB_BIN" pull "$MNT" "$URL#vm2" vm2
assert_eq "vm2 seen in the mount" "$(cat "$T/src/vm2/config.json")" "$(cat "$MNT/vm2/config.json")"
remount
check "the writes survive a remount" cmp "$T/expect.img" "$F"

# kill -9 in the middle of fetching vm2's image, then a remount reads right
( cat "$MNT/vm2/disk.img" >/dev/null 2>&1 ) &
sleep 0.05
kill_daemon
wait
mount_store
check "after kill -9 mid-fetch, the image reads right" cmp "$T/src/vm2/disk.img" "$MNT/vm2/disk.img"
unmount_store

# ---- offline ----
mv "$PUB" "$PUB.away"
mount_store
check "offline: the store mounts, cached parts read" cmp "$T/expect.img" "$F"
unmount_store
mv "$PUB.away" "$PUB"
mkdir -p "$T/src3/vm3" && truncate -s 8M "$T/src3/vm3/disk.img" &&
    vmbio pwrite "$T/src3/vm3/disk.img" 4194304 65536 p11 >/dev/null
"$MKPUB" -c 65536 "$PUB" "$T/src3/vm3" >/dev/null
check "pull vm3 (never read)" "$VMB_BIN" pull -o cache="$T/cache" "$STORE" "$URL#vm3"
mv "$PUB" "$PUB.away"
mount_store
out=$(vmbio read "$MNT/vm3/disk.img")
assert_eq "offline: an uncached chunk fails with EIO" "EIO" "$out"
sleep 0.2
assert_match "a log line names file, offset, URL and error" "disk.img.*offset 4194304.*$URL.*" "$(grep -a 'vm3\|disk.img' "$T/log" | tail -n 3)"
check "offline: holes still read" vmbio verify "$MNT/vm3/disk.img" 0 65536 0
unmount_store
mv "$PUB.away" "$PUB"

# ---- a clone and a snapshot of a pulled bundle: local layers over a remote one ----
check "clone a pulled bundle" "$VMB_BIN" clone "$STORE" vm1 vm1c
check "snapshot a pulled bundle" "$VMB_BIN" snapshot "$STORE" vm1 s1
mount_store
check "the clone reads as the bundle did" cmp "$T/expect.img" "$MNT/vm1c/disk.img"
vmbio pwrite "$MNT/vm1c/disk.img" 0 4096 p12 >/dev/null
check "the bundle is not changed by a write to its clone" cmp "$T/expect.img" "$F"
check "the snapshot reads as the bundle did" cmp "$T/expect.img" "$MNT/.snapshots/vm1@s1/disk.img"
assert_match "deps of the clone ends in the remote layer" "^remote [0-9a-f]{32} $URL\$" "$("$VMB_BIN" deps "$STORE" vm1c 2>&1)"
unmount_store

# ---- a pulled bundle published again (its delta and the remote base's chunks) ----
mv "$PUB" "$PUB.away"   # vm1 is all cached: publish reads the cache, offline
# (-o cache= alone names the cache: no VMBUNDLEFS_CACHE, a HOME of its own; the
# snapshot publish takes first reads the remote image's index from that cache too)
check "publish a pulled bundle (-o cache=), offline" \
    env -u VMBUNDLEFS_CACHE HOME="$T/home" "$VMB_BIN" publish -q -o cache="$T/cache" "$STORE" vm1 "$T/repub"
check_fails "... no default cache made" test -e "$T/home/.cache"
mv "$PUB.away" "$PUB"
check "pull it from there" "$VMB_BIN" pull -o cache="$T/cache2" "$STORE" "file://$T/repub#vm1" vm1r
check "... flatten it from a cache of its own" env VMBUNDLEFS_CACHE="$T/cache2" "$VMB_BIN" flatten "$STORE" vm1r
check "... its image is the pulled bundle's, writes included" cmp "$T/expect.img" "$STORE/vm1r/disk.img"
assert_eq "... and its small file" "$(cat "$SRC/config.json")" "$(cat "$STORE/vm1r/config.json")"
out=$("$VMB_BIN" publish -q -o cache= "$STORE" vm1 "$T/repub2" 2>&1); rc=$?
assert_eq "publish -o cache= (empty): usage, nothing made" "2 no" "$rc $(test -e "$T/repub2" && echo made || echo no)"
assert_match "... naming the option" "bad value in option 'cache='" "$out"

# ---- prefetch, gc, flatten ----
mkfifo "$STORE/vm3/fifo"
check "prefetch of a bundle directory on the store (not mounted; a FIFO in it)" \
    "$VMB_BIN" prefetch "$STORE/vm3"
out=$("$VMB_BIN" prefetch "$STORE/vm3/fifo" 2>&1); rc=$?
assert_eq "prefetch of a FIFO named on its own: refused (exit 1)" 1 $rc
assert_match "... saying what it is not" "neither a regular file nor a directory" "$out"
rm -f "$STORE/vm3/fifo"
check "pull URL#vm2 as vm5, not read yet" "$VMB_BIN" pull "$STORE" "$URL#vm2" vm5
mount_store
check "prefetch of a bundle directory through the mount" "$VMB_BIN" prefetch "$MNT/vm5"
mv "$PUB" "$PUB.away"
check "after prefetch, offline reads" cmp "$T/src3/vm3/disk.img" "$MNT/vm3/disk.img"
check "... and those of the bundle prefetched through the mount" \
    cmp "$T/src/vm2/disk.img" "$MNT/vm5/disk.img"
unmount_store
mv "$PUB.away" "$PUB"
check "vm5 goes" rm -rf "$STORE/vm5"
"$VMB_BIN" fsck "$STORE" >/dev/null   # its maps go too
out=$("$VMB_BIN" gc "$STORE")
assert_eq "gc keeps every .remote layer in use" "3" "$(ls "$STORE/.vmbundlefs/layers/" | grep -c '\.remote$')"
check "flatten a pulled bundle (reads through)" "$VMB_BIN" flatten "$STORE" vm3
check "flattened: plain and equal" cmp "$T/src3/vm3/disk.img" "$STORE/vm3/disk.img"
out=$("$VMB_BIN" gc "$STORE")
assert_eq "gc removes the .remote layer nothing uses" "2" "$(ls "$STORE/.vmbundlefs/layers/" | grep -c '\.remote$')"
check "fsck is clean" "$VMB_BIN" fsck -n "$STORE"

finish
