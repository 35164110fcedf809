#!/bin/sh
# vmbundlefs(5) "Limits per user": files held open through the mount do not each
# cost the daemon descriptors. With the daemon's descriptor limit lowered to 512,
# one unprivileged user holds 10 times that many files open, while another user
# creates, writes and reads files and root saves maps (fsync); files of the first
# user are removed and replaced through the mount while parked; then all of them
# read back through their descriptors (parked ones are reopened, removed ones were
# kept), and once everything is closed the daemon is back near its base count.
# Lock owners' descriptors, which cannot be parked, are capped per user: one user
# locking many files is refused (ENOLCK, logged) while another user and root lock.
# Also the scenario of issue 12: 10,000 open files under a
# limit of 20,000 (on by default; VMB_TEST_FDS_FULL=0 leaves it out).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
command -v prlimit >/dev/null || skip "prlimit (util-linux) is not installed"
HOG=$VMB_TESTBIN/helpers/fdhog
[ -x "$HOG" ] || hard_error "helper '$HOG' is not built"
ulimit -n 32768 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 12000 ] || skip "this shell may open only $(ulimit -n) files"

vmb_setup
chmod 755 "$T"
mkdir "$T/f" && chmod 1777 "$T/f"   # the holder's ready and go flags
mount_store -o allow_other
PID=$(daemon_pid)
fdcount() { ls "/proc/$PID/fd" | wc -l; }
as_hog() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_other() { setpriv --reuid=4242 --regid=4242 --clear-groups "$@"; }

mkdir "$MNT/hog" "$MNT/other" "$MNT/root"
chown 65534:65534 "$MNT/hog"
chown 4242:4242 "$MNT/other"

# other_user_works TAG: user 4242 creates, writes and reads back 20 files, and root
# writes a file and saves its map with fsync.
other_user_works() {
    local tag=$1 out
    out=$(as_other sh -c '
        cd "$1" || exit 1
        for i in $(seq 1 20); do
            echo "$2 $i" >"$2.$i" || exit 1
            [ "$(cat "$2.$i")" = "$2 $i" ] || { echo "$2.$i reads back wrong"; exit 1; }
        done
        echo done' sh "$MNT/other" "$tag" 2>&1)
    assert_eq "$tag: another user creates, writes and reads 20 files" done "$out"
    check "$tag: root writes a file and saves its map (fsync)" \
        dd if=/dev/urandom of="$MNT/root/$tag" bs=64k count=4 conv=fsync status=none
    check "$tag: the map of root's file is on disk" test -s "$(sidecar_of "$MNT/root/$tag")"
}

# hog_run TAG N LIMIT: with the daemon's descriptor limit at LIMIT, user 65534 holds N
# files open while the others work; then they all read back.
hog_run() {
    local tag=$1 n=$2 limit=$3 base during i hogpid out loglines
    prlimit --pid "$PID" --nofile="$limit:" || fail "prlimit"
    base=$(fdcount)
    loglines=$(wc -l <"$T/log")
    say "# $tag: the daemon has $base descriptors; user 65534 opens $n files"
    as_hog mkdir "$MNT/hog/$tag" || fail "mkdir as 65534"
    rm -f "$T/f/ready.$tag" "$T/f/go.$tag"
    as_hog "$HOG" "$MNT/hog/$tag" "$n" "$T/f/ready.$tag" "$T/f/go.$tag" >"$T/hog.$tag" 2>&1 &
    hogpid=$!
    for i in $(seq 1 1200); do
        [ -e "$T/f/ready.$tag" ] && break
        kill -0 $hogpid 2>/dev/null || break
        sleep 0.1
    done
    if ! kill -0 $hogpid 2>/dev/null || grep -q . "$T/hog.$tag"; then
        notok "$tag: user 65534 opens $n files" "$(cat "$T/hog.$tag")"
        other_user_works "$tag"
        touch "$T/f/go.$tag"; wait $hogpid
        return
    fi
    ok "$tag: user 65534 holds $n files open"
    during=$(fdcount)
    assert_num "$tag: the daemon stays below its limit ($during of $limit descriptors)" \
        "$during" -lt "$limit"
    other_user_works "$tag"
    # The oldest files' descriptors are parked by now: remove one and replace
    # another; the holder still reads and writes both through its descriptors.
    check "$tag: root removes a file held open (and parked)" rm "$MNT/hog/$tag/f00000"
    check "$tag: root renames a held file over another" \
        mv "$MNT/hog/$tag/f00002" "$MNT/hog/$tag/f00001"
    touch "$T/f/go.$tag"
    wait $hogpid
    out=$(cat "$T/hog.$tag")
    assert_eq "$tag: every one of user 65534's files reads back and takes a write" \
        "verified $n" "$out"
    if tail -n +$((loglines + 1)) "$T/log" | grep -q "Too many open files"; then
        notok "$tag: the daemon's log shows no 'Too many open files'" \
            "$(tail -n +$((loglines + 1)) "$T/log" | grep -m3 'Too many')"
    else
        ok "$tag: the daemon's log shows no 'Too many open files'"
    fi
    # Idle nodes keep up to a quarter of the limit (vmbundlefs(1), idle_fds). The
    # kernel sends the RELEASEs of the holder's files after it exits, and the daemon
    # handles them as they come: give it up to 20 s under load.
    for i in $(seq 1 200); do
        [ "$(fdcount)" -le $((base + limit / 4 + 16)) ] && break
        sleep 0.1
    done
    assert_num "$tag: closed, the daemon is back near its base ($(fdcount) vs $base)" \
        "$(fdcount)" -le $((base + limit / 4 + 16))
    check "$tag: root's file still reads" cmp -s "$MNT/root/$tag" "$STORE/root/$tag"
}

hog_run small 5120 512

# Locks: a lock owner's descriptor carries its locks and is never parked, so each
# user but root may lock at most L/16 files at once (32 of a limit of 512); more
# are refused with ENOLCK for that user only, who is named in the log.
prlimit --pid "$PID" --nofile=512: || fail "prlimit"
as_hog mkdir "$MNT/hog/locks" || fail "mkdir as 65534"
loglines=$(wc -l <"$T/log")
as_hog "$HOG" "$MNT/hog/locks" 100 "$T/f/ready.locks" "$T/f/go.locks" flock >"$T/hog.locks" 2>&1 &
hogpid=$!
for i in $(seq 1 600); do
    [ -e "$T/f/ready.locks" ] && break
    kill -0 $hogpid 2>/dev/null || break
    sleep 0.1
done
[ -e "$T/f/ready.locks" ] || fail "the lock holder did not start: $(cat "$T/hog.locks")"
out=$(as_other sh -c '
    for i in $(seq 1 10); do
        : >"$1/l.$i" && flock -n -x "$1/l.$i" true || { echo "flock $i failed"; exit 1; }
    done; echo done' sh "$MNT/other" 2>&1)
assert_eq "locks: another user locks 10 files while user 65534 is at its cap" done "$out"
check "locks: root locks a file" flock -n -x "$MNT/root/small" true
check "locks: root saves a map (fsync)" \
    dd if=/dev/zero of="$MNT/root/locks" bs=64k count=2 conv=fsync status=none
touch "$T/f/go.locks"
wait $hogpid
assert_eq "locks: user 65534 locks 32 files and is refused the rest (ENOLCK)" \
    "verified 100, locked 32, refused 68" "$(cat "$T/hog.locks")"
assert_match "locks: the log names the user refused" \
    "user 65534 holds locks on 32 files through this mount, the most one user may" \
    "$(tail -n +$((loglines + 1)) "$T/log")"
rm -f "$T/f/ready.locks" "$T/f/go.locks"
# Its locks (and their charge against the cap) go as the daemon handles the RELEASEs
# the kernel sends after the holder exited: wait until the store's holder registry
# names no lock any more (every process that locked has exited).
wait_for 30 sh -c "[ -z \"\$(ls -A '$STORE/.vmbundlefs/holders' 2>/dev/null)\" ]" ||
    say "# the holder registry still has entries after 30 s: $(ls "$STORE/.vmbundlefs/holders" | head -n 5 | tr '\n' ' ')"
as_hog "$HOG" "$MNT/hog/locks" 32 "$T/f/ready.locks" "$T/f/go.locks" flock >"$T/hog.locks" 2>&1 &
hogpid=$!
for i in $(seq 1 600); do [ -e "$T/f/ready.locks" ] && break; sleep 0.1; done
touch "$T/f/go.locks"
wait $hogpid
assert_eq "locks: once closed, user 65534 may lock 32 files again" \
    "verified 32, locked 32, refused 0" "$(cat "$T/hog.locks")"
if [ "${VMB_TEST_FDS_FULL:-1}" = 1 ]; then
    hog_run issue 10000 20000
fi

finish
