#!/bin/sh
# Leftovers of interrupted operations that nobody holds any more: the temporary of
# a remote layer (STORE/.vmbundlefs/layers/.<ID>.<8 hex>.rtmp, locked by its writer
# until its rename) and a staging directory made but not yet named
# (STORE/.vmbundlefs/staging/new.*, locked by its maker). fsck -n reports the dead
# ones, fsck and gc (offline and through a mount) remove them; ones a running
# process holds (the test shell takes the same flock(2) locks) are neither reported
# nor removed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
L=$STORE/.vmbundlefs/layers
S=$STORE/.vmbundlefs/staging
ID=0123456789abcdef0123456789abcdef
mkdir -p "$L" "$S"
chmod 700 "$L" "$S"

make_leftovers() {
    printf 'dead' >"$L/.$ID.0badcafe.rtmp"
    printf 'held' >"$L/.$ID.00c0ffee.rtmp"
    mkdir -p "$S/new.123.abc/tree" "$S/new.124.def"
    echo x >"$S/new.123.abc/tree/f"
    chmod 600 "$L"/.*.rtmp
    chmod 700 "$S"/new.*
}
hold() {   # the running writer and maker: this shell holds their locks
    exec {h1}<"$L/.$ID.00c0ffee.rtmp" {h2}<"$S/new.124.def"
    flock -x -n $h1 && flock -x -n $h2
}
release() { exec {h1}<&- {h2}<&-; }
make_leftovers
hold
assert_eq "the test holds the locks of a running writer and maker" 0 $?

"$VMB_BIN" fsck -n "$STORE" >"$T/o" 2>&1
assert_eq "fsck -n: problems left (exit 4)" 4 $?
assert_match "... the dead remote layer temporary needs removing" \
    "^\.vmbundlefs/layers/\.$ID\.0badcafe\.rtmp: needs removing \(the temporary of a remote layer whose writer died\)" "$(cat "$T/o")"
assert_match "... the dead new.* staging directory needs removing" \
    "^\.vmbundlefs/staging/new\.123\.abc: needs removing" "$(cat "$T/o")"
assert_eq "... nothing about the held ones" "" "$(grep -e 00c0ffee -e new.124 "$T/o")"
check "... removes nothing" test -e "$L/.$ID.0badcafe.rtmp" -a -e "$S/new.123.abc/tree/f"

"$VMB_BIN" fsck "$STORE" >"$T/o" 2>&1
assert_eq "fsck repairs (exit 1)" 1 $?
assert_match "... removed the dead temporary" "0badcafe\.rtmp: removed" "$(cat "$T/o")"
assert_match "... removed the dead staging directory" "new\.123\.abc: removed" "$(cat "$T/o")"
check "... they are gone" test ! -e "$L/.$ID.0badcafe.rtmp" -a ! -e "$S/new.123.abc"
check "... the held ones stay" test -e "$L/.$ID.00c0ffee.rtmp" -a -d "$S/new.124.def"
"$VMB_BIN" fsck -n "$STORE" >"$T/o" 2>&1
assert_eq "... a second fsck -n finds nothing (exit 0)" "0" "$?"

"$VMB_BIN" gc "$STORE" >"$T/o" 2>&1
check "gc beside the holders keeps the held ones" test -e "$L/.$ID.00c0ffee.rtmp" -a -d "$S/new.124.def"
release
"$VMB_BIN" gc "$STORE" >"$T/o" 2>&1
assert_match "gc once they are let go removes them" ", 2 leftovers removed$" "$(cat "$T/o")"
check "... they are gone" test ! -e "$L/.$ID.00c0ffee.rtmp" -a ! -e "$S/new.124.def"

# through a mount: the daemon's gc
make_leftovers
mount_store
hold   # after the mount: the daemon must not inherit the locks
check "gc through the daemon" "$VMB_BIN" gc "$MNT"
check "... removed the dead ones" test ! -e "$L/.$ID.0badcafe.rtmp" -a ! -e "$S/new.123.abc"
check "... kept the held ones" test -e "$L/.$ID.00c0ffee.rtmp" -a -d "$S/new.124.def"
release
check "gc through the daemon once they are let go" "$VMB_BIN" gc "$MNT"
check "... removed them" test ! -e "$L/.$ID.00c0ffee.rtmp" -a ! -e "$S/new.124.def"
unmount_store
check "fsck -n afterwards finds nothing" "$VMB_BIN" fsck -n "$STORE"
finish
