#!/bin/sh
# remote-names.sh - bundle names that hold the characters pull and snapshots
# parse (outside report r27 G16, X-at): a published bundle named 'a#b' is pulled
# (URL ends at the first '#') and reads; a bundle name holding '@' (BUNDLE@NAME
# names a snapshot) is refused by mkdir in a mount's root, clone and pull, and a
# store that has one (made behind vmbundlefs' back) says so in fsck, while clone
# of the snapshot of the same spelling still takes the snapshot.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
need_mkpub
export VMB_TEST_MOUNT_OPTS="cache=$T/cache"
export VMBUNDLEFS_CACHE=$T/cache

# ---- G16: a published bundle whose name holds '#' ----
mkdir -p "$T/src/a#b" "$T/src/vm"
printf 'hash in the name\n' >"$T/src/a#b/config.json"
truncate -s 1M "$T/src/a#b/disk.img"
vmbio pwrite "$T/src/a#b/disk.img" 65536 65536 p7 >/dev/null
printf 'plain\n' >"$T/src/vm/config.json"
PUB=$T/pub
"$MKPUB" -c 65536 "$PUB" "$T/src/a#b" "$T/src/vm" || hard_error "mkpub failed"
URL="file://$PUB"
check "pull URL#a#b (split at the first '#')" "$VMB_BIN" pull "$STORE" "$URL#a#b"
assert_eq "its small file" "hash in the name" "$(cat "$STORE/a#b/config.json" 2>/dev/null)"
check "pull URL#a#b as 'c#d'" "$VMB_BIN" pull "$STORE" "$URL#a#b" "c#d"
mount_store
check "its image reads through the mount" vmbio verify "$MNT/a#b/disk.img" 65536 65536 p7
check "... and the copy's" vmbio verify "$MNT/c#d/disk.img" 65536 65536 p7
unmount_store
out=$("$VMB_BIN" pull "$STORE" "$URL#nosuch#x" 2>&1); rc=$?
assert_eq "an unpublished 'nosuch#x': refused (exit 1)" 1 $rc
assert_match "... naming the whole bundle name" "no bundle 'nosuch#x'" "$out"

# ---- X-at: '@' in a bundle's name ----
mount_store
mkdir "$MNT/vm" && printf 'v1\n' >"$MNT/vm/config.json"
out=$(mkdir "$MNT/vm@s1" 2>&1); rc=$?
assert_eq "mkdir B@S in the mount's root: refused" 1 $rc
assert_match "... with EINVAL" "Invalid argument" "$out"
check_fails "... nothing made" test -e "$STORE/vm@s1"
mkdir "$MNT/other"
out=$(mv "$MNT/other" "$MNT/other@x" 2>&1); rc=$?
assert_num "rename to B@S in the mount's root: refused" $rc -ne 0
check "... other stays" test -d "$MNT/other"
check "a directory inside a bundle may hold '@'" mkdir "$MNT/vm/a@b"
rmdir "$MNT/vm/a@b"
unmount_store
check "snapshot vm@s1" "$VMB_BIN" snapshot "$STORE" vm s1
out=$("$VMB_BIN" clone "$STORE" vm "x@y" 2>&1); rc=$?
assert_eq "clone to a name holding '@': usage or error" 1 $([ $rc -ne 0 ] && echo 1 || echo 0)
assert_match "... saying why" "may not hold '@'" "$out"
check_fails "... nothing made" test -e "$STORE/x@y"
out=$("$VMB_BIN" pull "$STORE" "$URL#vm" "p@q" 2>&1); rc=$?
assert_eq "pull to a name holding '@': usage error" 2 $rc
assert_match "... saying why" "may not hold '@'" "$out"
check_fails "... nothing made" test -e "$STORE/p@q"
# a bundle named like the snapshot, made behind vmbundlefs' back
mkdir "$STORE/vm@s1" && printf 'impostor\n' >"$STORE/vm@s1/config.json"
out=$("$VMB_BIN" fsck -n "$STORE" 2>&1); rc=$?
assert_match "fsck names the bundle holding '@'" "vm@s1: a bundle's name may not hold '@'" "$out"
assert_num "... and is not clean" $rc -ne 0
check "clone vm@s1 (the snapshot, not the bundle of that name)" \
    "$VMB_BIN" clone "$STORE" vm@s1 fromsnap
assert_eq "... the snapshot's file" "v1" "$(cat "$STORE/fromsnap/config.json" 2>/dev/null)"
mount_store
assert_eq "the snapshot view shows the snapshot" "v1" \
    "$(cat "$MNT/.snapshots/vm@s1/config.json" 2>/dev/null)"
unmount_store
rm -rf "$STORE/vm@s1"

finish
