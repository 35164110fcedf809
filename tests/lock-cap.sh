#!/bin/sh
# One process cannot take what all share (issue 12 §2): a lock change costs O(1)
# registry I/O (it used to rewrite the file's whole holder record, ~2 MB per fcntl
# with 82,000 locks), and one process holds at most lock_cap locks (default 10,000;
# ENOLCK beyond, logged once naming the process). While one process makes 100,000
# lock attempts, another's lock/unlock latency stays within 2x of an idle mount (4x
# with 2 CPUs or fewer, or in the sanitizer build, where the hog, the daemon and the
# tests run beside this one compete for too little CPU).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
. "$(dirname "$0")/lock-lib.sh"
LM=$VMB_TESTBIN/helpers/lockmany
[ -x "$LM" ] || hard_error "helper '$LM' is not built"
mount_store
mkdir "$MNT/hog" "$MNT/calm" || fail "mkdir"
truncate -s 1M "$MNT/hog/data.bin" "$MNT/calm/data.bin"

# lat: another process's median lock+unlock in us (fails, saying why, when the
# helper does: an empty figure must not pass the comparison below)
lat() {
    local out v
    out=$("$LM" lat "$MNT/calm/data.bin" 7 300 2>&1) || { say "lockmany lat failed: $out"; return 1; }
    v=$(printf '%s\n' "$out" | sed -n 's/^lat median_us //p')
    [ -n "$v" ] || { say "lockmany lat printed no median: $out"; return 1; }
    echo "$v"
}

# ---- latency: idle, then beside 100,000 lock attempts (and more) ----
# A round measures an idle mount, then starts a hog and measures during its first
# attempts and again once it holds its locks (it goes on hammering). A noisy machine
# gets up to 3 rounds (a new hog each: the first attempts are the costly part); one
# round within the bound passes.
X=2
if [ -n "${VMB_SAN_CFLAGS:-}" ] || [ "$(nproc 2>/dev/null || echo 1)" -le 2 ]; then X=4; fi
good=0
for r in 1 2 3; do
    if [ $r -gt 1 ]; then
        kill -9 $HOG; wait $HOG 2>/dev/null
        sleep 0.5   # its locks go with it
    fi
    idle=$(lat) || fail "idle latency"
    "$LM" hog "$MNT/hog/data.bin" 100000 hammer >"$T/hog.out" 2>&1 &
    HOG=$!
    _LH_PIDS="$_LH_PIDS $HOG"
    during=$(lat) || fail "latency beside the hog"
    deadline=$(( $(date +%s) + 120 ))   # wall clock: the machine may be slow
    until grep -q '^holding' "$T/hog.out"; do
        [ "$(date +%s)" -lt $deadline ] ||
            fail "the hog did not finish its 100,000 attempts in 120 s: $(cat "$T/hog.out")"
        sleep 0.2
    done
    busy=$(lat) || fail "latency beside the hog"
    say "# round $r: other's median lock+unlock: idle ${idle} us, during the hog's first attempts ${during} us, beside it after ${busy} us"
    if awk -v i="$idle" -v b="$busy" -v d="$during" -v x=$X 'BEGIN { exit !(b <= x * i && d <= x * i) }'; then
        good=1
        break
    fi
done
check "another process's lock latency beside 100,000+ attempts by one process stays within ${X}x of idle (idle ${idle} us, during ${during} us, after ${busy} us)" test $good = 1
assert_eq "the default cap: 10,000 locks granted, 90,000 refused with ENOLCK" \
    "hog ok 10000 enolck 90000 other 0 first_error No locks available" "$(head -n 1 "$T/hog.out")"
assert_eq "the refusal is logged once, naming the process" 1 \
    "$(grep -c "refused a lock: pid $HOG (lockmany) holds 10000 locks through this mount" "$T/log")"
check "the capped process's locks are real: another process cannot take one of its bytes" \
    sh -c "[ \"\$('$LH' '$MNT/hog/data.bin' 'posix w 19998 1' | sed 's/ t=.*//')\" = EAGAIN ]"
check "another process may still lock (the cap is per process)" \
    sh -c "[ \"\$('$LH' '$MNT/hog/data.bin' 'posix w 20001 1' | sed 's/ t=.*//')\" = locked ]"
n=$(ls "$STORE/.vmbundlefs/holders" | grep -c '^[0-9a-f]\{16\}\.')
assert_eq "the registry holds one small entry for the hog's file" 1 "$n"
check "... of one line" test "$(cat "$STORE"/.vmbundlefs/holders/*.* 2>/dev/null | wc -l)" -le 2
kill -9 $HOG; wait $HOG 2>/dev/null
sleep 0.2
assert_eq "after the hog is killed its locks are gone" locked "$("$LH" "$MNT/hog/data.bin" 'posix w 19998 1' | sed 's/ t=.*//')"

# ---- -o lock_cap ----
unmount_store
mount_store -o lock_cap=100
assert_eq "-o lock_cap=100: 100 granted, the rest ENOLCK" \
    "hog ok 100 enolck 900 other 0 first_error No locks available" "$("$LM" hog "$MNT/hog/data.bin" 1000)"
assert_eq "... and after that process exits, a new one gets its 100 again" \
    "hog ok 100 enolck 0 other 0 first_error none" "$("$LM" hog "$MNT/hog/data.bin" 100)"
unmount_store
out=$("$VMB_BIN" mount -o lock_cap=lots "$STORE" "$MNT" 2>&1)
assert_match "-o lock_cap=lots is refused, naming the option" "lock_cap=lots" "$out"
mount_store -o lock_cap=0
assert_eq "-o lock_cap=0: no cap" "hog ok 20000 enolck 0 other 0 first_error none" "$("$LM" hog "$MNT/hog/data.bin" 20000)"
lh_cleanup
finish
