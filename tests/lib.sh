# tests/lib.sh: harness for the vmbundlefs integration tests (sourced by bash).
#
# A test does:
#     [ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
#     . "$(dirname "$0")/lib.sh"
#     vmb_setup            # temp dir $T, store $STORE (initialised), mount point $MNT
#     mount_store          # vmbundlefs mount -f --log=$T/log $STORE $MNT &
#     check "desc" cmd...  # one line per check
#     finish               # exit 0 if every check passed, else 1
#
# Exit status: 0 pass, 1 fail, 77 skip (with the reason printed), 99 hard error.
# On exit, always: unmount (fusermount3 -u, then -uz), kill a leftover daemon,
# check the daemon's exit status and its log for sanitizer reports, remove $T.
#
# All mount state lives in files under $T, so a separate script (see
# write_remount_script) can unmount and remount the same store.

set -u
umask 022
export LC_ALL=C

VMB_BIN=${VMB_BIN:-}
VMB_TESTBIN=${VMB_TESTBIN:-}
VMB_SRCDIR=${VMB_SRCDIR:-}
VMBIO=${VMB_TESTBIN:+$VMB_TESTBIN/helpers/vmbio}
FAILS=0
NCHECK=0
T=
STORE=
MNT=
_VMB_CLEANUPS=
_VMB_DAEMON_STATE=none     # none | running | stopped | killed
_VMB_DONE=0

# Messages that make a daemon log (or its stderr) a failure.
_VMB_BAD_LOG='runtime error|AddressSanitizer|LeakSanitizer|ThreadSanitizer|ERROR: '

say() { printf '%s\n' "$*"; }

skip() {
    say "SKIP: $*"
    exit 77
}

hard_error() {
    say "ERROR: $*"
    exit 99
}

show_log() {
    local f
    for f in "$T/log" "$T/daemon.out"; do
        if [ -n "$T" ] && [ -s "$f" ]; then
            say "--- last lines of $f:"
            tail -n 40 "$f" | sed 's/^/    /'
        fi
    done
}

# fail MSG: print and stop the test now (cleanup still runs).
fail() {
    say "FAIL: $*"
    FAILS=$((FAILS + 1))
    exit 1
}

ok() {
    NCHECK=$((NCHECK + 1))
    say "ok $NCHECK - $*"
}

notok() {
    NCHECK=$((NCHECK + 1))
    FAILS=$((FAILS + 1))
    say "FAIL $NCHECK - $1"
    shift
    local l
    for l in "$@"; do say "    $l"; done
}

# check DESC CMD...: run CMD; passes if it exits 0.  Shows its output on failure.
check() {
    local desc=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        ok "$desc"
    else
        notok "$desc" "command: $*" "exit status $rc, output:" "$(printf '%s\n' "$out" | head -n 20 | sed 's/^/      /')"
    fi
    return $rc
}

# check_fails DESC CMD...: passes if CMD exits non-zero.
check_fails() {
    local desc=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ]; then
        ok "$desc"
        return 0
    fi
    notok "$desc" "command: $*" "succeeded but should have failed; output:" "$(printf '%s\n' "$out" | head -n 20 | sed 's/^/      /')"
    return 1
}

# assert_eq DESC EXPECTED ACTUAL
assert_eq() {
    if [ "$2" = "$3" ]; then
        ok "$1"
        return 0
    fi
    case "$2$3" in
    *"
"*)
        notok "$1" "expected (-) vs actual (+):" \
            "$(diff -u <(printf '%s\n' "$2") <(printf '%s\n' "$3") | tail -n +3 | head -n 40 | sed 's/^/      /')"
        ;;
    *)
        notok "$1" "expected: $(printf '%s' "$2" | head -c 2000)" "actual:   $(printf '%s' "$3" | head -c 2000)"
        ;;
    esac
    return 1
}

# assert_match DESC ERE TEXT
assert_match() {
    if printf '%s\n' "$3" | grep -Eq -- "$2"; then
        ok "$1"
        return 0
    fi
    notok "$1" "expected to match: $2" "actual: $(printf '%s' "$3" | head -c 2000)"
    return 1
}

# assert_num DESC A OP B  (OP: -eq -le -ge -lt -gt -ne)
assert_num() {
    if [ "$2" "$3" "$4" ] 2>/dev/null; then
        ok "$1"
        return 0
    fi
    notok "$1" "expected: $2 $3 $4"
    return 1
}

# assert_near DESC A B SLACK: |A - B| <= SLACK
assert_near() {
    local d=$(($2 - $3))
    [ $d -lt 0 ] && d=$((-d))
    if [ $d -le "$4" ]; then
        ok "$1 ($2 vs $3)"
        return 0
    fi
    notok "$1" "expected $2 and $3 to differ by at most $4 (they differ by $d)"
    return 1
}

# expect_errno DESC ENAME CMD...: CMD is a vmbio call that prints "ok" or an errno name.
expect_errno() {
    local desc=$1 want=$2 out
    shift 2
    out=$("$@" 2>/dev/null | tail -n 1)
    assert_eq "$desc" "$want" "$out"
}

# wait_for SECONDS CMD...: until CMD succeeds (0), or 1 after SECONDS. For what the
# daemon does after a read has returned (the cache's flusher makes a fetched chunk
# present in chunks/ moments after the read that fetched it, see vmbundlefs(5)).
wait_for() {
    local n=$(($1 * 10))
    shift
    while ! "$@"; do
        [ $n -gt 0 ] || return 1
        sleep 0.1
        n=$((n - 1))
    done
}

vmbio() { "$VMBIO" "$@"; }

# need_mkpub: MKPUB, the helper that publishes plain directories (make check
# builds it; a test that needs it cannot run without it: an error, not a skip)
need_mkpub() {
    MKPUB=$VMB_TESTBIN/helpers/mkpub
    [ -x "$MKPUB" ] || hard_error "no $MKPUB (make check builds it)"
}

# deep_at DIR NAME LEVELS FILE WHAT: FILE at the bottom of a chain of LEVELS
# directories NAME under DIR, walked one directory at a time (no path longer than
# PATH_MAX): its text (WHAT=text), the 4 bytes at 4096*1000 (data), its st_size
# (size) or its st_blocks (blocks).
deep_at() {
    python3 - "$@" <<'PY'
import os, sys
d, name, n, fname, what = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
for _ in range(n):
    nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    os.close(fd)
    fd = nfd
f = os.open(fname, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
if what == "text":
    sys.stdout.write(os.read(f, 4096).decode())
elif what == "data":
    sys.stdout.write(os.pread(f, 4, 4096 * 1000).decode())
elif what == "size":
    print(os.fstat(f).st_size)
else:
    print(os.fstat(f).st_blocks)
PY
}

st_ino() { stat -c %i "$1"; }
st_size() { stat -c %s "$1"; }
st_blocks() { stat -c %b "$1"; }
sidecar_of() { printf '%s/.vmbundlefs/maps/%016x.map' "$STORE" "$(stat -c %i "$1")"; }

# Run at exit (LIFO order is not guaranteed; keep them independent).
on_exit() { _VMB_CLEANUPS="$_VMB_CLEANUPS
$*"; }

_vmb_prereqs() {
    [ -n "$VMB_BIN" ] || hard_error "VMB_BIN is not set (run through make check, or set VMB_BIN, VMB_TESTBIN, VMB_SRCDIR)"
    [ -x "$VMB_BIN" ] || hard_error "VMB_BIN '$VMB_BIN' is not an executable"
    [ -n "$VMB_TESTBIN" ] || hard_error "VMB_TESTBIN is not set"
    [ -x "$VMBIO" ] || hard_error "helper '$VMBIO' is not built"
    [ -c /dev/fuse ] || skip "/dev/fuse is missing: FUSE is not available here"
    command -v fusermount3 >/dev/null 2>&1 || skip "fusermount3 is not installed (package fuse3)"
    command -v mountpoint >/dev/null 2>&1 || skip "mountpoint is not installed (util-linux)"
    if ! { exec 9<>/dev/fuse; } 2>/dev/null; then
        skip "/dev/fuse cannot be opened by uid $(id -u)"
    fi
    exec 9>&-
}

# vmb_setup [noinit] [nofuse]: make the temp dir, store and mount point; install
# the exit trap.  noinit: do not create the store; nofuse: FUSE is not needed.
vmb_setup() {
    local a init=1 fuse=1
    for a in "$@"; do
        case $a in
        noinit) init=0 ;;
        nofuse) fuse=0 ;;
        *) hard_error "vmb_setup: unknown argument $a" ;;
        esac
    done
    if [ $fuse = 1 ]; then
        _vmb_prereqs
    else
        [ -n "$VMB_BIN" ] && [ -x "$VMB_BIN" ] || hard_error "VMB_BIN '$VMB_BIN' is not an executable"
    fi
    T=$(mktemp -d /tmp/vmbtest.XXXXXX) || hard_error "mktemp failed"
    STORE=$T/store
    MNT=$T/mnt
    mkdir "$MNT"
    trap _vmb_cleanup EXIT
    trap 'say "interrupted"; exit 1' INT TERM HUP
    say "# test $(basename "$0") in $T"
    if [ $init = 1 ]; then
        "$VMB_BIN" init "$STORE" >"$T/init.out" 2>&1 || { cat "$T/init.out"; fail "vmbundlefs init $STORE failed"; }
    fi
}

# vmb_attach T STORE MNT: adopt an existing test's state (for remount scripts).
vmb_attach() {
    T=$1 STORE=$2 MNT=$3
    _VMB_DAEMON_STATE=$(cat "$T/daemon.state" 2>/dev/null || echo none)
}

_vmb_load_state() {
    [ -n "$T" ] && [ -e "$T/daemon.state" ] && _VMB_DAEMON_STATE=$(cat "$T/daemon.state")
    return 0
}

_vmb_set_state() {
    _VMB_DAEMON_STATE=$1
    printf '%s\n' "$1" >"$T/daemon.state"
}

# is_mounted DIR: DIR is a mount point in /proc/self/mounts (true for a FUSE
# mount whose daemon died, where mountpoint(1) fails with ENOTCONN).
is_mounted() {
    local d
    d=$(printf '%s' "$1" | sed 's/\\/\\134/g; s/ /\\040/g; s/	/\\011/g')
    awk -v d="$d" '$2 == d { f = 1 } END { exit !f }' /proc/self/mounts
}

daemon_pid() { cat "$T/daemon.pid" 2>/dev/null; }
# wait_store_free STORE: wait (up to 20 s) until no daemon uses STORE: fusermount3 -u
# returns before the daemon has saved its maps and written its last log line.
wait_store_free() { flock -x -w 20 "$1/.vmbundlefs/lock" true; }

daemon_alive() {
    local p
    p=$(daemon_pid) || return 1
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && [ ! -e "$T/daemon.rc" ]
}

# mount_store [extra mount args...]: start the daemon in the foreground, in the
# background of this shell; wait up to 30 s for the mount (a sanitizer build on a
# loaded machine can take more than 10 s). VMB_TEST_MOUNT_OPTS adds
# -o options to every mount (tests/mount-parked.sh runs other tests that way).
mount_store() {
    local i
    rm -f "$T/daemon.pid" "$T/daemon.rc"
    is_mounted "$MNT" && fail "mount_store: $MNT is already a mount point"
    say "# mount $STORE on $MNT"
    (
        sh -c 'echo $$ >"$0"; exec "$@"' "$T/daemon.pid" \
            "$VMB_BIN" mount -f --log="$T/log" \
            ${VMB_TEST_MOUNT_OPTS:+-o "$VMB_TEST_MOUNT_OPTS"} "$@" "$STORE" "$MNT"
        echo $? >"$T/daemon.rc.tmp"
        mv "$T/daemon.rc.tmp" "$T/daemon.rc"
    ) </dev/null >>"$T/daemon.out" 2>&1 &
    _vmb_set_state running
    for i in $(seq 1 300); do
        if mountpoint -q "$MNT"; then
            for i in $(seq 1 50); do [ -s "$T/daemon.pid" ] && break; sleep 0.1; done
            return 0
        fi
        if [ -e "$T/daemon.rc" ]; then
            _vmb_set_state stopped
            show_log
            fail "the daemon exited with status $(cat "$T/daemon.rc") before mounting"
        fi
        sleep 0.1
    done
    show_log
    fail "mount of $STORE on $MNT did not appear within 30 s"
}

# _vmb_wait_daemon SECONDS: wait for the daemon's exit status file.
_vmb_wait_daemon() {
    local n=$(($1 * 10))
    while [ $n -gt 0 ]; do
        [ -e "$T/daemon.rc" ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# log_clean: the daemon's log and stderr hold no sanitizer report.
log_clean() {
    local f
    for f in "$T/log" "$T/daemon.out"; do
        if [ -e "$f" ] && grep -Eq "$_VMB_BAD_LOG" "$f"; then
            say "sanitizer or runtime error in $f:"
            grep -En -A 30 "$_VMB_BAD_LOG" "$f" | head -n 60 | sed 's/^/    /'
            return 1
        fi
    done
    return 0
}

# _vmb_unmount: unmount and stop the daemon; returns non-zero (with a message)
# if the daemon exits badly or its log has a sanitizer report.
_vmb_unmount() {
    local i rc
    _vmb_load_state
    case $PWD in "$MNT" | "$MNT"/*) cd / || true ;; esac
    if is_mounted "$MNT"; then
        for i in 1 2 3 4 5 6 7 8 9 10; do
            fusermount3 -u "$MNT" 2>"$T/umount.err" && break
            sleep 0.3
        done
        if is_mounted "$MNT"; then
            say "fusermount3 -u $MNT failed: $(cat "$T/umount.err"); using -uz"
            fusermount3 -uz "$MNT"
        fi
    fi
    if [ "$_VMB_DAEMON_STATE" = running ]; then
        if ! _vmb_wait_daemon 30; then
            say "the daemon (pid $(daemon_pid)) did not exit within 30 s of the unmount; killing it"
            kill -9 "$(daemon_pid)" 2>/dev/null
            _vmb_wait_daemon 5
            _vmb_set_state stopped
            show_log
            return 1
        fi
        _vmb_set_state stopped
        rc=$(cat "$T/daemon.rc")
        if [ "$rc" != 0 ]; then
            say "the daemon exited with status $rc"
            show_log
            return 1
        fi
    fi
    log_clean || return 1
    return 0
}

unmount_store() {
    say "# unmount $MNT"
    _vmb_unmount || fail "unmount/daemon exit was not clean"
}

remount() {
    unmount_store
    mount_store "$@"
}

# kill_daemon: kill -9 the daemon, detach the mount, wait for it to be gone.
kill_daemon() {
    local p
    p=$(daemon_pid)
    [ -n "$p" ] || fail "kill_daemon: no daemon pid"
    say "# kill -9 daemon $p"
    kill -9 "$p" 2>/dev/null
    _vmb_wait_daemon 30 || fail "the daemon did not die after kill -9"
    fusermount3 -uz "$MNT" 2>/dev/null
    for i in $(seq 1 50); do is_mounted "$MNT" || break; sleep 0.1; done
    is_mounted "$MNT" && fail "$MNT still mounted after fusermount3 -uz"
    _vmb_set_state killed
}

# model_report RC OUT: the output OUT of a modeltest run (tests/helpers/modeltest),
# and the remount script's when the run failed (RC not 0).
model_report() {
    sed 's/^/    /' "$2" | tail -n 60
    if [ -s "$T/remount.out" ] && [ "$1" -ne 0 ]; then
        say "--- remount output:"
        sed 's/^/    /' "$T/remount.out" | tail -n 20
    fi
}

# write_remount_script PATH [extra mount args]: a script that unmounts and
# remounts this test's store (for helpers that need to remount).
write_remount_script() {
    local path=$1 lib
    shift
    lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh
    {
        echo '#!/bin/bash'
        # Redirect the whole script: the daemon it starts must not inherit
        # the caller's stdout (a pipe would never see EOF).
        printf 'exec </dev/null >>%q 2>&1\n' "$T/remount.out"
        printf 'VMB_BIN=%q VMB_TESTBIN=%q VMB_SRCDIR=%q\n' "$VMB_BIN" "$VMB_TESTBIN" "$VMB_SRCDIR"
        printf '. %q\n' "$lib"
        printf 'vmb_attach %q %q %q\n' "$T" "$STORE" "$MNT"
        printf 'remount'
        [ $# -gt 0 ] && printf ' %q' "$@"
        printf '\n'
    } >"$path"
    chmod +x "$path"
}

_vmb_cleanup() {
    local rc=$? cmd
    set +e
    trap - EXIT INT TERM HUP
    cd / || true
    if [ -n "$T" ] && [ -d "$T" ]; then
        _vmb_load_state
        if [ "$_VMB_DAEMON_STATE" = running ] || is_mounted "$MNT"; then
            if ! _vmb_unmount; then
                [ $rc -eq 0 ] || [ $rc -eq 77 ] && rc=1
                say "FAIL: the daemon did not shut down cleanly"
            fi
        elif ! log_clean; then
            rc=1
        fi
        is_mounted "$MNT" && fusermount3 -uz "$MNT"
        if daemon_alive; then
            kill -9 "$(daemon_pid)" 2>/dev/null
        fi
        printf '%s\n' "$_VMB_CLEANUPS" | while IFS= read -r cmd; do
            [ -n "$cmd" ] && eval "$cmd"
        done
        if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
            show_log
        fi
        if [ -n "${VMB_KEEP_TMP:-}" ]; then
            say "# keeping $T"
        else
            rm -rf --one-file-system "$T"
        fi
    fi
    exit $rc
}

# finish: end of a test.  Unmounts (checking the daemon) and exits.
finish() {
    _vmb_load_state
    if [ "$_VMB_DAEMON_STATE" = running ]; then
        unmount_store
    fi
    if [ $FAILS -gt 0 ]; then
        say "# $FAILS of $NCHECK checks failed"
        exit 1
    fi
    say "# all $NCHECK checks passed"
    exit 0
}
