#!/bin/sh
# The in-use rule since issue 9 §3 and 12 §2: by default a bundle is in use while any
# of its files holds a lock (a legacy-BIOS VM locks only its disk image), and `ls`,
# the xattr and the EBUSY message name the holder; a store may choose the narrower
# aux-storage rule ("rule aux" in .vmbundlefs/in-use, or -o in_use=aux). A lock that
# its taker could not have used to write (a read-only descriptor of someone else's
# file) is an ordinary advisory lock and pins nothing. A path near PATH_MAX in a
# bundle breaks nothing else in it (issue 9 §2: the check used to walk by path).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
XA=user.vmbundlefs.lock

busy() {   # busy DESC CMD...: CMD fails and says "Device or resource busy"
    local desc=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q 'Device or resource busy'; then
        ok "$desc"
    else
        notok "$desc" "command: $*" "exit status $rc (want non-zero with EBUSY), output:" "$(printf '%s\n' "$out" | head -n 5)"
    fi
}

make_legacy() {   # a legacy-BIOS VM: a config and a disk image, no NVRAM
    mkdir -p "$1/logs" || fail "mkdir $1"
    echo '{"firmware": "bios"}' >"$1/config.json"
    truncate -s 64M "$1/disk.img"
    echo log >"$1/logs/serial.log"
}

mount_store -o allow_other

# ---- a legacy-BIOS VM: a plain OFD lock on disk.img ----
make_legacy "$MNT/bios"
lh_bg H "$MNT/bios/disk.img" 'ofd w 100 2' 'hold'
wait_out H '^holding' || fail "holder did not start"
HP=$(pid_of H)
busy "a lock on disk.img only (no NVRAM): rm -rf of the bundle is refused" rm -rf "$MNT/bios"
check "... every file is still there" test -f "$MNT/bios/disk.img" -a -f "$MNT/bios/config.json" -a -f "$MNT/bios/logs/serial.log"
assert_match "... the EBUSY message names the holder and the locked file" \
    "refused to remove 'bios/.*': bundle 'bios' is in use: pid $HP \(lockhelper\) holds a lock on 'bios/disk.img'" \
    "$(grep refused "$T/log" | tail -n 1)"
busy "... mv of the bundle is refused" mv "$MNT/bios" "$MNT/bios2"
busy "... truncate of its disk is refused" truncate -s 0 "$MNT/bios/disk.img"
assert_match "vmbundlefs ls: in use, naming the holder" "^bios .*in use by pid $HP \(lockhelper\)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
assert_eq "the xattr names the holder" "pid $HP (lockhelper) holds a write lock" "$(vmbio getxattr "$MNT/bios/disk.img" $XA 2>&1)"
check "export of the bundle in use works" "$VMB_BIN" export "$STORE" bios "$T/bios.tar"
out=$("$VMB_BIN" import --replace "$STORE" "$T/bios.tar" bios 2>&1)
assert_match "import --replace is refused, naming the holder" "bundle 'bios' is in use \(pid $HP \(lockhelper\) holds a lock on 'bios/disk.img'\)" "$out"
lh_kill H
check "after the holder's SIGKILL: rm -rf works" rm -rf "$MNT/bios"

# the same with QEMU's own locks (qemu-io on a raw image, as a BIOS VM's disk)
if command -v qemu-io >/dev/null 2>&1; then
    make_legacy "$MNT/qbios"
    qemu-io -f raw -c 'sleep 60000' "$MNT/qbios/disk.img" </dev/null >"$T/qemu-io.out" 2>&1 &
    QP=$!
    n=500
    until [ $n -eq 0 ] || "$VMB_BIN" ls "$STORE" 2>/dev/null | grep -q '^qbios .*in use'; do sleep 0.02; n=$((n - 1)); done
    assert_match "qemu-io holds disk.img: ls names qemu-io" "^qbios .*in use by pid $QP \(qemu-io\)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
    busy "... rm -rf of the bundle is refused" rm -rf "$MNT/qbios"
    assert_match "... the message names qemu-io" "bundle 'qbios' is in use: pid $QP \(qemu-io\) holds a lock on 'qbios/disk.img'" "$(grep refused "$T/log" | tail -n 1)"
    kill -9 $QP; wait $QP 2>/dev/null
    check "after qemu-io is killed: rm -rf works" rm -rf "$MNT/qbios"
else
    say "# qemu-io not installed: the QEMU variant is skipped"
fi

# ---- renames keep the count right: the holder moves its locked disk, then its bundle ----
make_legacy "$MNT/ra"
make_legacy "$MNT/rb"
lh_bg H "$MNT/ra/disk.img" 'ofd w 100 2' 'hold' "rename $MNT/ra/disk.img $MNT/rb/moved.img" 'hold' \
    "rename $MNT/rb $MNT/rc" 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "before the move: ra is in use" rm "$MNT/ra/config.json"
check "... rb is not" rm "$MNT/rb/config.json"
kill -USR1 "$(pid_of H)"
wait_lines H 4 5
check "the holder moved its locked disk to rb" test -f "$MNT/rb/moved.img"
check "after the move: ra is no longer in use" rm "$MNT/ra/logs/serial.log"
busy "... rb is" rm "$MNT/rb/logs/serial.log"
assert_match "... and the message names the file where it is now" "bundle 'rb' is in use: pid $(pid_of H) \(lockhelper\) holds a lock on 'rb/moved.img'" "$(grep refused "$T/log" | tail -n 1)"
assert_match "... ls agrees" "^rb .*in use by pid $(pid_of H)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
kill -USR1 "$(pid_of H)"
wait_lines H 6 5
check "the holder renamed its bundle rb to rc" test -d "$MNT/rc" -a ! -e "$MNT/rb"
busy "the renamed bundle is still in use" rm -rf "$MNT/rc"
assert_match "... ls shows it under its new name" "^rc .*in use by pid $(pid_of H)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
lh_kill H
check "released: rm -rf of both" rm -rf "$MNT/ra" "$MNT/rc"

# ---- a direct locker (bypassing the mount) of an aux-storage file ----
make_legacy "$MNT/direct"
head -c 4096 /dev/zero >"$MNT/direct/nvram.bin"
lh_bg H "$STORE/direct/nvram.bin" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "a direct OFD lock on the backing nvram.bin: rm refused" rm "$MNT/direct/config.json"
assert_match "... the message names the file" "bundle 'direct' is in use: 'direct/nvram.bin' is locked" "$(grep refused "$T/log" | tail -n 1)"
lh_kill H

# ---- read-only locks of another user pin nothing (as nobody) ----
if command -v setpriv >/dev/null 2>&1; then
    NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
    chmod 755 "$T" "$MNT"   # let nobody reach the mount
    mkdir "$MNT/shared" && chmod 755 "$MNT/shared"
    head -c 4096 /dev/urandom >"$MNT/shared/nvram.bin"
    truncate -s 1M "$MNT/shared/disk.img"
    echo x >"$MNT/shared/spare.txt"
    chmod 644 "$MNT/shared/nvram.bin" "$MNT/shared/disk.img"
    for spec in 'posix r 0 0' 'ofd r 0 0' 'flock sh'; do
        : >"$T/N.out"
        $NOBODY "$LH" -r "$MNT/shared/nvram.bin" "$spec" hold >"$T/N.out" 2>&1 &
        NP=$!
        _LH_PIDS="$_LH_PIDS $NP"
        wait_out N '^holding' || { notok "nobody takes '$spec' (read-only)" "$(cat "$T/N.out")"; kill -9 $NP; continue; }
        check "nobody's read-only '$spec' on root's nvram.bin: root may still rename in the bundle" mv "$MNT/shared/spare.txt" "$MNT/shared/spare2.txt"
        check "... and truncate its disk" truncate -s 2M "$MNT/shared/disk.img"
        check "... ls does not call it in use" sh -c "! '$VMB_BIN' ls '$STORE' | grep '^shared ' | grep -q 'in use'"
        assert_match "... it is still an advisory lock (the xattr shows it)" "pid $NP \(lockhelper\) holds a (read|flock) lock" "$(vmbio getxattr "$MNT/shared/nvram.bin" $XA 2>&1)"
        kill -9 $NP; wait $NP 2>/dev/null
        mv "$MNT/shared/spare2.txt" "$MNT/shared/spare.txt"
    done
    # nobody's own file, or one nobody may write: those locks count
    mkdir "$MNT/mine" && chown 65534:65534 "$MNT/mine"
    $NOBODY sh -c "head -c 4096 /dev/zero >'$MNT/mine/nvram.bin' && chmod 444 '$MNT/mine/nvram.bin' && echo x >'$MNT/mine/spare.txt'"
    : >"$T/N.out"
    $NOBODY "$LH" -r "$MNT/mine/nvram.bin" 'posix r 0 0' hold >"$T/N.out" 2>&1 &
    NP=$!; _LH_PIDS="$_LH_PIDS $NP"
    wait_out N '^holding' || fail "nobody could not lock its own file"
    busy "a read lock by the file's owner (read-only descriptor) makes the bundle in use" rm "$MNT/mine/spare.txt"
    kill -9 $NP; wait $NP 2>/dev/null
    chmod 666 "$MNT/shared/nvram.bin"
    : >"$T/N.out"
    $NOBODY "$LH" "$MNT/shared/nvram.bin" 'posix r 0 0' hold >"$T/N.out" 2>&1 &
    NP=$!; _LH_PIDS="$_LH_PIDS $NP"
    wait_out N '^holding' || fail "nobody could not lock a writable file"
    busy "a read lock through a descriptor open for writing makes the bundle in use" rm "$MNT/shared/spare.txt"
    kill -9 $NP; wait $NP 2>/dev/null
else
    say "# no setpriv: the unprivileged checks are skipped"
fi

# ---- a path near PATH_MAX in a bundle ----
mkdir "$MNT/deep" && echo a >"$MNT/deep/a.txt" && echo b >"$MNT/deep/b.txt" && mkdir "$MNT/deep/empty"
truncate -s 1M "$MNT/deep/disk.img"
comp=d123456789abcdefghi   # 19 bytes + '/'
( cd "$MNT/deep" && for i in $(seq 1 200); do mkdir $comp && cd $comp || exit 1; done && echo leaf >leaf.txt ) ||
    fail "cannot build the deep chain"
depth_bytes=$(( ${#comp} * 200 + 200 + 5 + 9 ))
say "# the deepest file is $depth_bytes bytes below the store"
check "with a ~4000-byte path in the bundle: unlink elsewhere in it" rm "$MNT/deep/a.txt"
check "... rmdir" rmdir "$MNT/deep/empty"
check "... rename" mv "$MNT/deep/b.txt" "$MNT/deep/c.txt"
check "... truncate" truncate -s 2M "$MNT/deep/disk.img"
check "... unlink of the deepest file itself" sh -c "cd '$MNT/deep' && cd \$(printf '$comp/%.0s' \$(seq 1 200)) && rm leaf.txt"
lh_bg H "$MNT/deep/disk.img" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "... a lock on its disk still protects the deep bundle (rm -rf refused)" rm -rf "$MNT/deep"
check "... the deep chain is still there" test -d "$MNT/deep/$comp/$comp"
lh_kill H
check "... rm -rf of the deep bundle once released" rm -rf "$MNT/deep"
check "... gone from the store" test ! -e "$STORE/deep"

# ---- the narrower rule, chosen by the store ----
unmount_store
printf 'rule aux\n' >"$STORE/.vmbundlefs/in-use"
mount_store
make_legacy "$MNT/narrow"
head -c 4096 /dev/zero >"$MNT/narrow/nvram.bin"
lh_bg H "$MNT/narrow/disk.img" 'ofd w 100 2' 'hold'
wait_out H '^holding' || fail "holder did not start"
check "rule aux: a lock on disk.img alone does not make the bundle in use" rm "$MNT/narrow/config.json"
check "... ls agrees" sh -c "! '$VMB_BIN' ls '$STORE' | grep '^narrow ' | grep -q 'in use'"
lh_kill H
lh_bg H "$MNT/narrow/nvram.bin" 'ofd w 0 0' 'hold'
wait_out H '^holding' || fail "holder did not start"
busy "rule aux: a lock on nvram.bin does" rm -rf "$MNT/narrow"
assert_match "... ls names the holder" "^narrow .*in use by pid $(pid_of H) \(lockhelper\)" "$("$VMB_BIN" ls "$STORE" 2>&1)"
lh_kill H
rm -f "$STORE/.vmbundlefs/in-use"

lh_cleanup
finish
