#!/bin/sh
# The store's metadata is its owner's alone (issue 12): init makes .vmbundlefs and
# its directories 0700 and its files 0600 whatever the umask, files made later
# (maps, holder records) too, the store root stays traversable; another user can
# neither take the store lock (which would make fsck say "in use") nor read the
# holder records; fsck reports (-n) and fixes the modes of an older store.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup noinit
command -v setpriv >/dev/null 2>&1 || skip "setpriv is not installed (util-linux)"
command -v flock >/dev/null 2>&1 || skip "flock is not installed (util-linux)"
[ "$(id -u)" = 0 ] || skip "needs root (to act as another user with setpriv)"
chmod 755 "$T"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
mode() { stat -c %a "$1"; }
M=$STORE/.vmbundlefs

(umask 000; "$VMB_BIN" init "$STORE") || fail "init"
assert_eq "init under umask 000: .vmbundlefs is 0700" 700 "$(mode "$M")"
assert_eq "... maps/ 0700" 700 "$(mode "$M/maps")"
assert_eq "... lock 0600" 600 "$(mode "$M/lock")"
assert_eq "... layout 0600" 600 "$(mode "$M/layout")"
assert_eq "... the store root stays traversable (0777 less the umask of 000 is 0755: mkdir's mode)" 755 "$(mode "$STORE")"
rm -rf "$STORE"
(umask 077; "$VMB_BIN" init "$STORE") || fail "init"
assert_eq "init under umask 077: lock still 0600" 600 "$(mode "$M/lock")"
assert_eq "... layout still 0600" 600 "$(mode "$M/layout")"
chmod 755 "$STORE"
mkdir "$STORE/vm" && chmod 755 "$STORE/vm"

check_fails "another user cannot open the store lock" as_nobody flock -n "$M/lock" -c true
check_fails "... nor list the metadata" as_nobody ls "$M"
check "... but can list the store's bundles" as_nobody ls "$STORE/vm"
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck of the new store: clean (exit 0)" 0 $? || cat "$T/fsck"

# Files made later, by a mount: maps and holder records.
mount_store
printf 'data' >"$MNT/vm/disk.img" || fail "write"
"$VMB_TESTBIN/helpers/lockhelper" "$MNT/vm/disk.img" "ofd w 0 0" "hold 60" >"$T/holder.out" 2>&1 &
HOLDER=$!
on_exit "kill $HOLDER 2>/dev/null"
for _ in $(seq 100); do [ -n "$(ls -A "$M/holders" 2>/dev/null)" ] && break; sleep 0.05; done
h=$(ls "$M/holders" | head -n 1)
assert_eq "holders/ made by the mount is 0700" 700 "$(mode "$M/holders")"
assert_eq "... a holder record 0600" 600 "$(mode "$M/holders/$h")"
check_fails "... which another user cannot read" as_nobody cat "$M/holders/$h"
kill $HOLDER; wait $HOLDER 2>/dev/null
unmount_store
for f in "$M"/maps/*.map; do
    assert_eq "a map written by the mount is 0600 ($(basename "$f"))" 600 "$(mode "$f")"
done

# A store made by an older init: 0755 and 0644. Another user can take its lock.
chmod 755 "$M" "$M/maps" "$M/holders" 2>/dev/null
chmod 644 "$M/lock" "$M/layout" "$M"/maps/*.map
setpriv --reuid=65534 --regid=65534 --clear-groups flock -n -o "$M/lock" sleep 60 &
TAKER=$!
on_exit "kill $TAKER 2>/dev/null"
# flock(1) runs its command once it holds the lock: wait for that child (a probe
# taking the lock could make flock -n fail)
wait_for 20 sh -c "pgrep -P $TAKER >/dev/null || ! kill -0 $TAKER 2>/dev/null"
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck" 2>&1
assert_eq "(old modes: another user's lock makes fsck fail 'in use')" 8 $?
kill $TAKER; wait $TAKER 2>/dev/null
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck -n reports the old modes (exit 4)" 4 $? || cat "$T/fsck"
assert_match "... .vmbundlefs itself" '^\.vmbundlefs: mode needs fixing \(mode 0755 lets other users in' "$(cat "$T/fsck")"
assert_match "... the lock" '^\.vmbundlefs/lock: mode needs fixing \(mode 0644' "$(cat "$T/fsck")"
assert_match "... a map" '^\.vmbundlefs/maps/[0-9a-f]{16}\.map: mode needs fixing' "$(cat "$T/fsck")"
assert_eq "... and changes nothing" "755 644" "$(mode "$M") $(mode "$M/lock")"
"$VMB_BIN" fsck "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck fixes them (exit 1)" 1 $? || cat "$T/fsck"
assert_match "... and says so" '^\.vmbundlefs/lock: set mode 0600' "$(cat "$T/fsck")"
assert_eq "... .vmbundlefs, maps/, lock, layout" "700 700 600 600" "$(mode "$M") $(mode "$M/maps") $(mode "$M/lock") $(mode "$M/layout")"
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck -n afterwards: clean" 0 $? || cat "$T/fsck"
check_fails "another user cannot open the lock any more" as_nobody flock -n "$M/lock" -c true
mount_store
check "the store mounts" test -f "$MNT/vm/disk.img"
assert_eq "... and reads" data "$(cat "$MNT/vm/disk.img")"
unmount_store

finish
