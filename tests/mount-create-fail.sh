#!/bin/sh
# mount-create-fail.sh: a create that fails once the file is made (EMFILE, ENOSPC,
# EIO while opening its image) leaves nothing behind: no empty backing file, no map
# (issue 12 §3). The failure is injected with VMB_TEST_CREATE_FAIL=<errno>.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
# (ENOSPC is an ordinary answer and not logged.)
mkdir "$STORE/b" || fail "mkdir"
for e in 24:'Too many open files' 28:'No space left on device' 5:'Input/output error'; do
    VMB_TEST_CREATE_FAIL=${e%%:*} mount_store
    out=$(: 2>&1 >"$MNT/b/new.img")
    assert_match "a create that fails late reports the error (${e#*:})" "${e#*:}" "$out"
    out=$(/usr/bin/env python3 -c 'import os,sys
try:
    os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
except OSError as x:
    print(x.strerror)' "$MNT/b/excl.img" 2>&1)
    assert_eq "an O_EXCL create that fails late reports it too" "${e#*:}" "$out"
    assert_eq "nothing is left in the bundle" "" "$(ls -A "$STORE/b")"
    check "the name does not exist through the mount" sh -c "[ ! -e '$MNT/b/new.img' ]"
    check "mkdir still works" mkdir "$MNT/b/d"
    rmdir "$MNT/b/d"
    unmount_store
    assert_eq "no map is left in the store" "" "$(ls -A "$STORE/.vmbundlefs/maps")"
    [ "${e%%:*}" = 28 ] || check "the log names the failure" grep -q "cannot create 'new.img'" "$T/log"
    : >"$T/log"
done
mount_store
check "without the fault a create works" sh -c ": >'$MNT/b/new.img'"
finish
