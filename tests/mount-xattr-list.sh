#!/bin/sh
# The virtual xattrs are listed where they have a value, as ext4 lists only the
# attributes that exist (issue #9 §5): user.vmbundlefs.stats on the mount's root,
# user.vmbundlefs.lock on a file while someone holds a lock on it; getfattr -d -m -
# prints both with their values.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
command -v getfattr >/dev/null 2>&1 || skip "getfattr is not installed (package attr)"
mount_store

names() { getfattr -d -m - -- "$1" 2>/dev/null | sed -n 's/=.*//p' | sort | tr '\n' ' ' | sed 's/ $//'; }
value() { getfattr -d -m - -- "$1" 2>/dev/null | sed -n "s/^$2=//p"; }

mkdir "$MNT/vm"
echo data >"$MNT/vm/nvram.bin"
echo cfg >"$MNT/vm/config.json"

# ---- the root: user.vmbundlefs.stats ----
assert_eq "getfattr -d -m - on the root lists user.vmbundlefs.stats" \
    "user.vmbundlefs.stats" "$(names "$MNT")"
assert_match "getfattr -d prints its value" '^"backing_read_bytes [0-9]+\\012"$' "$(value "$MNT" user.vmbundlefs.stats)"
assert_eq "listxattr(2) of the root" "user.vmbundlefs.stats" "$(vmbio listxattr "$MNT")"
check "setfattr on the root" setfattr -n user.note -v hello "$MNT"
assert_eq "the root's own attributes are listed beside it" \
    "user.note user.vmbundlefs.stats" "$(names "$MNT")"
assert_eq "... with their values" '"hello"' "$(value "$MNT" user.note)"
assert_eq "a bundle does not list user.vmbundlefs.stats" "" "$(names "$MNT/vm")"
assert_eq "a file does not list it" "" "$(names "$MNT/vm/config.json")"

# ---- a file: user.vmbundlefs.lock only while it is locked ----
assert_eq "an unlocked file lists no user.vmbundlefs.lock" "" "$(names "$MNT/vm/nvram.bin")"
lh_bg H "$MNT/vm/nvram.bin" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
HP=$(pid_of H)
assert_eq "a locked file lists user.vmbundlefs.lock" "user.vmbundlefs.lock" "$(names "$MNT/vm/nvram.bin")"
assert_eq "getfattr -d prints who holds the lock" "\"pid $HP (lockhelper) holds a write lock\"" \
    "$(value "$MNT/vm/nvram.bin" user.vmbundlefs.lock)"
assert_eq "the other file of the bundle lists nothing" "" "$(names "$MNT/vm/config.json")"
setfattr -n user.a -v 1 "$MNT/vm/nvram.bin"
assert_eq "its own attributes are listed beside it" "user.a user.vmbundlefs.lock" "$(names "$MNT/vm/nvram.bin")"
# A lock taken directly on the backing file is listed too.
lh_bg D "$STORE/vm/config.json" 'ofd w 0 0' 'hold'
wait_out D '^holding' || fail "direct holder did not start"
assert_eq "a lock taken in the store is listed" "user.vmbundlefs.lock" "$(names "$MNT/vm/config.json")"
lh_kill H
lh_kill D
# the daemon lets the OFD lock go when it handles the RELEASE the kernel sends after
# the holder died, a moment later
names_are() { [ "$(names "$1")" = "$2" ]; }
wait_for 10 names_are "$MNT/vm/nvram.bin" "user.a"
assert_eq "after the holder died, user.vmbundlefs.lock is no longer listed" "user.a" "$(names "$MNT/vm/nvram.bin")"
assert_eq "... nor for the lock taken in the store" "" "$(names "$MNT/vm/config.json")"

# A value stored on the backing file under a virtual name is never listed twice.
setfattr -n user.vmbundlefs.stats -v stale "$STORE" 2>/dev/null
setfattr -n user.vmbundlefs.lock -v stale "$STORE/vm/config.json" 2>/dev/null
assert_eq "a stored user.vmbundlefs.stats is not listed beside the virtual one" \
    "user.note user.vmbundlefs.stats" "$(names "$MNT")"
assert_eq "a stored user.vmbundlefs.lock is not listed for an unlocked file" "" "$(names "$MNT/vm/config.json")"
finish
