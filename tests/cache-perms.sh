#!/bin/sh
# cache-perms.sh - who may decide what a root mount of a URL serves from its cache
# (vmbundlefs(5) CACHE, Modes and sharing; outside report r27 G1, G2, G11, G19),
# with uid 65534 as the other local user: a chunk it rewrote (0666) is fetched
# again, not served; a world-writable chunks/<aa>, a chunks/<aa> it owns, a cache
# directory it made, a symbolic link at chunks/<aa>: the mount is refused, naming
# the path; lock/ and its files are closed to it (a read lock it took on an older
# cache's lock/objects stopped every cold read), and an older cache's are narrowed.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup noinit
need_mkpub
[ "$(id -u)" = 0 ] || skip "needs root (a root mount's cache, and uid 65534 as another user)"
command -v setpriv >/dev/null || skip "no setpriv"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no /usr/bin/python3 (takes an OFD read lock as uid 65534)"
chmod 755 "$T"   # uid 65534 reaches the cache, as it would /var/cache
W=$T/w; mkdir -m 1777 "$W"   # and writes here, as in /tmp
nob() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

mkdir -p "$T/src/vm"
truncate -s 1M "$T/src/vm/disk.img"
vmbio pwrite "$T/src/vm/disk.img" 0 524288 p2 >/dev/null
"$MKPUB" -c 65536 "$T/pub" "$T/src/vm" || hard_error "mkpub failed"
STORE=file://$T/pub
C=$T/cache
export VMB_TEST_MOUNT_OPTS="cache=$C"
h0=$(head -c 65536 "$T/src/vm/disk.img" | sha256sum | cut -c1-64)
chunk0=$C/chunks/${h0:0:2}/$h0

# try_mount NAME: mount_store, but a refusal is a result, not a failure: RC, and
# the daemon's message in OUT
try_mount() {
    rc=0
    timeout 60 "$VMB_BIN" mount -o "$VMB_TEST_MOUNT_OPTS" "$STORE" "$MNT" >"$T/o" 2>&1 || rc=$?
    OUT=$(cat "$T/o")
    if mountpoint -q "$MNT"; then fusermount3 -u "$MNT"; fi
}

mount_store
check "the image reads" cmp "$T/src/vm/disk.img" "$MNT/vm/disk.img"
unmount_store
check "chunk 0 is in the cache" test -f "$chunk0"

# G19: lock/ and its files give others nothing
assert_eq "lock/ 700, lock/objects 600" "700 600" "$(stat -c %a "$C/lock" "$C/lock/objects" | tr '\n' ' ' | sed 's/ $//')"
check_fails "uid 65534 cannot open lock/objects" nob sh -c "exec 3<'$C/lock/objects'"
# an older cache's (0755, 0644): narrowed by the next mount
chmod 755 "$C/lock"; chmod 644 "$C/lock/objects"
[ -e "$C/lock/evict" ] && chmod 644 "$C/lock/evict"
cat >"$T/rdlock.py" <<'EOF'
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0))
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
EOF
nob "$PY" "$T/rdlock.py" "$C/lock/objects" "$W/locked" 1 2>/dev/null
check "(an older cache's lock/objects: uid 65534 could take a read lock on it)" test -e "$W/locked"
rm -f "$W/locked"
rm -f "$C"/chunks/*/*        # every read is cold
mount_store
check "the mount narrowed lock/ and lock/objects" test "$(stat -c %a "$C/lock" "$C/lock/objects" | tr '\n' ' ')" = "700 600 "
nob "$PY" "$T/rdlock.py" "$C/lock/objects" "$W/locked" 30 2>/dev/null &
holder=$!
sleep 0.5
check "uid 65534 can no longer take a read lock on lock/objects" test ! -e "$W/locked"
check "a cold read does not wait for anyone (10 s)" timeout 10 cmp "$T/src/vm/disk.img" "$MNT/vm/disk.img"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
unmount_store

# G1: a chunk that others can write is not served: fetched again, with a log line
chmod 666 "$chunk0"
nob sh -c "head -c 65536 /dev/zero | tr '\\0' P >'$chunk0'" || fail "uid 65534 could not write a 0666 chunk"
mount_store
check "a chunk rewritten by uid 65534 is not served (the image's bytes)" cmp "$T/src/vm/disk.img" "$MNT/vm/disk.img"
unmount_store
assert_match "... the log says why" "chunks/${h0:0:2}/$h0 is owned by uid 0, group 0, mode 0666: others could have changed its bytes; removed, it is fetched again" "$(cat "$T/log")"
assert_eq "... and it is fetched again, 0644" "644" "$(stat -c %a "$chunk0")"
check "... with its own bytes" test "$(sha256sum <"$chunk0" | cut -c1-64)" = "$h0"
chown 65534:65534 "$chunk0"
nob sh -c "head -c 65536 /dev/zero | tr '\\0' P >'$chunk0'"
mount_store
check "a chunk that uid 65534 owns (0644) is not served either" cmp "$T/src/vm/disk.img" "$MNT/vm/disk.img"
unmount_store
assert_eq "... it is root's again" "0" "$(stat -c %u "$chunk0")"

# G1: a directory of the layout that others can write: the mount is refused
chmod 777 "$C/chunks/${h0:0:2}"
try_mount
check "a world-writable chunks/<aa>: the mount is refused" test "$rc" != 0
assert_match "... naming it" "writable by everyone \\(chunks/${h0:0:2}/: mode 0777\\)" "$OUT"
chmod 755 "$C/chunks/${h0:0:2}"
mkdir -p "$C/meta"; chmod 1777 "$C/meta"
try_mount
assert_match "a world-writable meta/ (sticky): refused" "writable by everyone \\(meta/: mode 1777\\)" "$OUT"
chmod 755 "$C/meta"

# G11: a directory of it owned by another user, or the cache itself
chown 65534:65534 "$C/chunks/${h0:0:2}"
try_mount
assert_match "chunks/<aa> owned by uid 65534 (0755): refused" "chunks/${h0:0:2}/ is owned by uid 65534 \\(mode 0755\\)" "$OUT"
chown 0:0 "$C/chunks/${h0:0:2}"
C2=$W/nobody-cache
nob mkdir -m 755 "$C2"
VMB_TEST_MOUNT_OPTS="cache=$C2" try_mount
check "a cache directory made by uid 65534: root's mount is refused" test "$rc" != 0
assert_match "... naming its owner" "cache '$C2' is owned by uid 65534 \\(mode 0755\\), not by this process \\(uid 0\\) or root" "$OUT"
check "... and root wrote nothing in it" test -z "$(ls -A "$C2")"

# G2: a symbolic link at chunks/<aa>
mkdir "$T/elsewhere"
rmdir "$C/chunks/00" && ln -s "$T/elsewhere" "$C/chunks/00"
try_mount
check "a symbolic link at chunks/00: refused" test "$rc" != 0
assert_match "... naming it, and what to do" "chunks/00/ is not a directory \\(a symbolic link\\).*remove it \\(fsck --cache=DIR does\\)" "$OUT"
rm "$C/chunks/00" && mkdir -m 755 "$C/chunks/00"

mount_store
check "put back, the cache serves again" cmp "$T/src/vm/disk.img" "$MNT/vm/disk.img"
unmount_store
finish
