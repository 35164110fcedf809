#!/bin/sh
# layers-nonroot.sh - a store made and used by a user who is not root (outside
# report G10/X-nonroot), uid 65534 here: its layered files are marked with
# user.vmbundlefs.* xattrs (trusted.* needs CAP_SYS_ADMIN), recorded in
# STORE/.vmbundlefs/xattr-ns at init (vmbundlefs(5), STORE LAYOUT). As that user:
# init, import, clone, snapshot, both read right (export), gc, flatten, fsck clean,
# pull from a file:// published directory with -o cache=, a mount (when
# fusermount3 works for that user here) that reads both and refuses
# user.vmbundlefs.base. What keeps the guarantee the trusted namespace gave: a
# user.vmbundlefs.base on a file the store's owner does not own is not believed
# (the file reads as itself); root may not change a user's such store (a refusal
# naming why); a trusted store never reads user.vmbundlefs.base; and no mount lets
# a client read or set user.vmbundlefs.base (a root mount here). An older user
# store (no xattr-ns) is given "user" by its owner's first change; a bad xattr-ns
# is named.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
# Where uid 65534 cannot open /dev/fuse (mode 0600 in some containers: libfuse
# then never reaches fusermount3), the test runs in a mount namespace of its own
# with a 0666 /dev/fuse, as a usual system has; nothing outside it changes.
if [ -z "$VMB_NONROOT_NS" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null &&
   ! setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'exec 9<>/dev/fuse' 2>/dev/null &&
   unshare -m --propagation private true 2>/dev/null; then
    VMB_NONROOT_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

vmb_setup
need_mkpub
[ "$(id -u)" = 0 ] || skip "needs root (runs commands as uid 65534)"
command -v setpriv >/dev/null || skip "no setpriv"
command -v getfattr >/dev/null && command -v setfattr >/dev/null || skip "no getfattr/setfattr (attr)"
chmod 755 "$T"
if [ -n "$VMB_NONROOT_NS" ]; then
    mknod "$T/fuse" c 10 229 && chmod 666 "$T/fuse" && mount --bind "$T/fuse" /dev/fuse ||
        hard_error "cannot give this mount namespace a 0666 /dev/fuse"
fi
U=$T/u; mkdir "$U"; chown 65534:65534 "$U"
NOB="setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=$U"
nob() { $NOB "$@"; }
US=$U/store
run_cmd() { local out=$1; shift; timeout 60 "$@" >"$out" 2>"$out.err"; RC=$?; }
# as uid 65534
nob_cmd() { local out=$1; shift; run_cmd "$out" $NOB "$@"; }
xattr_of() { getfattr --only-values -n "$1" "$2" 2>/dev/null; }

# the content: 4 MiB image with data in two places, a small file
mkdir -p "$T/src/vm"
truncate -s 4M "$T/src/vm/disk.img"
vmbio pwrite "$T/src/vm/disk.img" 65536 131072 p1 >/dev/null
vmbio pwrite "$T/src/vm/disk.img" 3145728 8192 p2 >/dev/null
printf '{"cpu": 2}\n' >"$T/src/vm/config.json"
tar -C "$T/src/vm" --sparse -cf "$T/vm.tar" . || hard_error "tar failed"
chmod 644 "$T/vm.tar"

# same_as_src BUNDLE [STORE]: exported as uid 65534, it holds the source's bytes
same_as_src() {
    local d=$U/x.$1
    rm -rf "$d"; nob mkdir "$d" || return 1
    nob "$VMB_BIN" export --format=tar "${2:-$US}" "$1" "$d.tar" || return 1
    nob tar -C "$d" --strip-components=1 -xf "$d.tar" || return 1
    cmp "$T/src/vm/disk.img" "$d/disk.img" && cmp "$T/src/vm/config.json" "$d/config.json"
}

# ---- init, import, clone, snapshot as uid 65534 ----
check "init as uid 65534" nob "$VMB_BIN" init "$US"
assert_eq "its xattr-ns is user" "user" "$(cat "$US/.vmbundlefs/xattr-ns")"
assert_eq "xattr-ns 600, owned by uid 65534" "600 65534" "$(stat -c '%a %u' "$US/.vmbundlefs/xattr-ns")"
check "import as uid 65534" nob "$VMB_BIN" import "$US" "$T/vm.tar" vm
check "clone as uid 65534" nob "$VMB_BIN" clone "$US" vm vm2
check "the clone's image has a user.vmbundlefs.base" test -n "$(xattr_of user.vmbundlefs.base "$US/vm2/disk.img")"
check "... and no trusted one" test -z "$(xattr_of trusted.vmbundlefs.base "$US/vm2/disk.img")"
check "snapshot as uid 65534" nob "$VMB_BIN" snapshot "$US" vm s1
check "the clone reads as the source (export)" same_as_src vm2
check "the source reads as itself (export)" same_as_src vm
check "the snapshot reads as the source (export)" same_as_src vm@s1
nob_cmd "$T/o" "$VMB_BIN" deps "$US" vm2
assert_eq "deps as uid 65534: exit 0" 0 $RC

# a user's store made before xattr-ns: given "user" by its owner's first change
# while it has no layer
nob "$VMB_BIN" init "$U/old" && rm "$U/old/.vmbundlefs/xattr-ns"
nob "$VMB_BIN" import "$U/old" "$T/vm.tar" vm >/dev/null
check "an older user store: clone as its owner" nob "$VMB_BIN" clone "$U/old" vm vm2
assert_eq "... which recorded user" "user" "$(cat "$U/old/.vmbundlefs/xattr-ns" 2>/dev/null)"
printf 'users\n' >"$U/old/.vmbundlefs/xattr-ns"
nob_cmd "$T/o" "$VMB_BIN" ls "$U/old"
assert_eq "a bad xattr-ns: ls fails" 1 $RC
assert_match "... naming what it holds" "xattr-ns' holds 'users" "$(cat "$T/o.err")"
assert_match "... and what it should" "expected 'trusted' or 'user'" "$(cat "$T/o.err")"

# ---- the guarantee: a base is believed on the owner's files only ----
mkdir "$US/forged"
truncate -s 4M "$US/forged/disk.img"
setfattr -n user.vmbundlefs.base -v "$(xattr_of user.vmbundlefs.base "$US/vm2/disk.img")" \
    "$US/forged/disk.img"
chown -R 65533:65533 "$US/forged"; chmod -R a+rwX "$US/forged"
d=$U/x.forged; nob mkdir "$d"
check "export of a file of another uid with a copied user base, as uid 65534" \
    nob "$VMB_BIN" export --format=tar "$US" forged "$d.tar"
nob tar -C "$d" --strip-components=1 -xf "$d.tar"
check "... reads as itself (zeros), not the layer it names" cmp "$d/disk.img" <(head -c 4M /dev/zero)
rm -rf "$US/forged"

# root may look at the store, not change it
run_cmd "$T/o" "$VMB_BIN" fsck "$US"
assert_eq "fsck of uid 65534's store by root: refused (exit 8)" 8 $RC
assert_match "... saying why" "belongs to uid 65534 and marks its layered files with user.vmbundlefs.* xattrs" "$(cat "$T/o.err")"
run_cmd "$T/o" "$VMB_BIN" ls "$US"
assert_eq "ls of uid 65534's store by root works" 0 $RC

# ---- pull from a file:// published store, as uid 65534 ----
"$MKPUB" -c 65536 "$T/pub" "$T/src/vm" || hard_error "mkpub failed"
chmod -R a+rX "$T/pub"
check "pull -o cache= as uid 65534" nob "$VMB_BIN" pull -o cache="$U/cache" "$US" "file://$T/pub#vm" pv
check "the pulled bundle's image has a user.vmbundlefs.base" test -n "$(xattr_of user.vmbundlefs.base "$US/pv/disk.img")"
VMBUNDLEFS_CACHE=$U/cache check "the pulled bundle reads as the source (export)" same_as_src pv

# ---- a mount by uid 65534: reads, snapshot and clone through it, the marks hidden ----
if nob sh -c 'exec 9<>/dev/fuse' 2>/dev/null; then
    UM=$U/mnt; nob mkdir "$UM"
    nob "$VMB_BIN" mount -f --log="$U/log" "$US" "$UM" </dev/null >>"$T/daemon.out" 2>&1 &
    on_exit "is_mounted '$UM' && fusermount3 -u '$UM'"
    wait_for 30 is_mounted "$UM" || { cat "$U/log"; fail "uid 65534 could not mount its store"; }
    check "uid 65534's mount: the clone reads right" nob cmp "$T/src/vm/disk.img" "$UM/vm2/disk.img"
    check "... the source too" nob cmp "$T/src/vm/disk.img" "$UM/vm/disk.img"
    check "... the pulled bundle too" nob cmp "$T/src/vm/disk.img" "$UM/pv/disk.img"
    check_fails "... user.vmbundlefs.base cannot be read" nob getfattr -n user.vmbundlefs.base "$UM/vm2/disk.img"
    assert_eq "... nor is it listed" "" "$(nob getfattr -d -m 'user\.vmbundlefs\.base' "$UM/vm2/disk.img" 2>/dev/null)"
    check_fails "... nor set" nob setfattr -n user.vmbundlefs.base \
        -v "$(xattr_of user.vmbundlefs.base "$US/vm2/disk.img")" "$UM/vm/config.json"
    check_fails "... nor removed" nob setfattr -x user.vmbundlefs.base "$UM/vm2/disk.img"
    check "... the base is still on the backing file" test -n "$(xattr_of user.vmbundlefs.base "$US/vm2/disk.img")"
    check "a write through it" nob sh -c "printf X | dd of='$UM/vm/disk.img' bs=1 seek=4096 conv=notrunc status=none"
    check "snapshot through the mount, as uid 65534" nob "$VMB_BIN" snapshot "$UM" vm s2
    check "clone through the mount, as uid 65534" nob "$VMB_BIN" clone "$UM" vm vm3
    check "the clone has the write" test "$(nob dd if="$UM/vm3/disk.img" bs=1 skip=4096 count=1 status=none)" = X
    check "the snapshot too" test "$(nob dd if="$UM/.snapshots/vm@s2/disk.img" bs=1 skip=4096 count=1 status=none)" = X
    check "the first snapshot does not" nob cmp "$T/src/vm/disk.img" "$UM/.snapshots/vm@s1/disk.img"
    check "unmount as uid 65534" nob fusermount3 -u "$UM"
    wait_store_free "$US"
    check "the daemon's log has no error" test -z "$(grep -i 'error\|cannot' "$U/log")"

    # mount URL as uid 65534, its shadow store under a cache of its own
    UC=$U/ucache
    nob "$VMB_BIN" mount -f -o cache="$UC" "file://$T/pub" "$UM" </dev/null >>"$T/daemon.out" 2>&1 &
    wait_for 30 is_mounted "$UM" || { cat "$T/daemon.out"; fail "uid 65534 could not mount a URL"; }
    check "mount URL as uid 65534: the image reads right" nob cmp "$T/src/vm/disk.img" "$UM/vm/disk.img"
    check "... its shadow store is a user store" test "$(cat "$UC"/mnt/*/.vmbundlefs/xattr-ns)" = user
    check "... the file is layered" test -n "$(xattr_of user.vmbundlefs.base "$UC"/mnt/*/vm/disk.img)"
    check "... its small file too" nob cmp "$T/src/vm/config.json" "$UM/vm/config.json"
    check "unmount the URL as uid 65534" nob fusermount3 -u "$UM"
else
    say "# part skipped: uid 65534 cannot use /dev/fuse here, so cannot mount"
fi

# ---- gc, flatten, fsck as uid 65534 ----
check "snapshot --delete as uid 65534" nob "$VMB_BIN" snapshot --delete "$US" vm@s1
check "gc as uid 65534" nob "$VMB_BIN" gc "$US"
check "flatten as uid 65534" nob "$VMB_BIN" flatten -o cache="$U/cache" "$US" vm2
check "the flattened clone has no base" test -z "$(xattr_of user.vmbundlefs.base "$US/vm2/disk.img")"
check "... and reads as the source" same_as_src vm2
VMBUNDLEFS_CACHE=$U/cache nob_cmd "$T/o" "$VMB_BIN" fsck -n "$US"
assert_eq "fsck -n as uid 65534: clean (exit 0)" 0 $RC || cat "$T/o" "$T/o.err"

# ---- a trusted store (root's) never believes user.vmbundlefs.base ----
"$VMB_BIN" import "$STORE" "$T/vm.tar" vm >/dev/null || fail "import as root"
"$VMB_BIN" clone "$STORE" vm vm2 >/dev/null || fail "clone as root"
assert_eq "a root store's xattr-ns is trusted" "trusted" "$(cat "$STORE/.vmbundlefs/xattr-ns")"
mkdir "$STORE/forged"; truncate -s 4M "$STORE/forged/disk.img"
setfattr -n user.vmbundlefs.base -v "$(xattr_of trusted.vmbundlefs.base "$STORE/vm2/disk.img")" \
    "$STORE/forged/disk.img"
mount_store
check "a root mount: a user.vmbundlefs.base on a root store's file is not believed" \
    cmp "$MNT/forged/disk.img" <(head -c 4M /dev/zero)
check_fails "... nor shown" getfattr -n user.vmbundlefs.base "$MNT/forged/disk.img"
assert_eq "... nor listed" "" "$(getfattr -d -m 'user\.vmbundlefs\.base' "$MNT/forged/disk.img" 2>/dev/null)"
check_fails "setting user.vmbundlefs.base through a mount fails" \
    setfattr -n user.vmbundlefs.base -v "$(xattr_of trusted.vmbundlefs.base "$STORE/vm2/disk.img")" "$MNT/vm/config.json"
check_fails "... and user.vmbundlefs.reserved" setfattr -n user.vmbundlefs.reserved -v 1 "$MNT/vm/config.json"
check "another user.* xattr is still set" setfattr -n user.other -v 1 "$MNT/vm/config.json"
check "the clone reads right" cmp "$T/src/vm/disk.img" "$MNT/vm2/disk.img"
unmount_store
check "... user.vmbundlefs.base did not reach the backing file" test -z "$(xattr_of user.vmbundlefs.base "$STORE/vm/config.json")"
finish
