#!/bin/sh
# kill -9 of the daemon during a clone or a snapshot carried out by it (issue 10
# §7): afterwards `vmbundlefs fsck` finds the store clean or repairs it (exit 0 or
# 1), a second fsck -n finds nothing, and after a remount the source reads as
# before, the new bundle is absent or whole (every file equal to the source's)
# and the snapshot is absent or whole. The kill lands at spread points of the
# operation (its time measured first, with a bundle of many files so that it
# lasts); VMB_LAYERS_CRASH_ROUNDS rounds per operation (default 4), and right
# after every step of each operation (the VMB_OP_KILL_AT hook of store/ops.h
# makes the daemon kill itself there).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
M=$((1024 * 1024))
ROUNDS=${VMB_LAYERS_CRASH_ROUNDS:-4}
FILES=60
run() { timeout 120 "$@" >"$T/o" 2>"$T/e"; RC=$?; }

mkdir "$STORE/vm" "$STORE/vm/Data"
truncate -s $((1024 * M)) "$STORE/vm/disk.img"
head -c $((4 * M)) /dev/urandom | dd of="$STORE/vm/disk.img" bs=1M seek=100 conv=notrunc status=none
head -c 50000 /dev/urandom >"$STORE/vm/nvram.bin"
for i in $(seq "$FILES"); do   # larger than a clone copies: each one is frozen
    truncate -s $((2 * M)) "$STORE/vm/Data/f$i"
    printf 'file %d\n' "$i" | dd of="$STORE/vm/Data/f$i" bs=4096 seek=$((i % 300)) conv=notrunc status=none
done
sums() { (cd "$1" && find . -type f -exec sha256sum {} + | sort -k 2); }
SRC_SUMS=$(sums "$STORE/vm")
mount_store

# How long each operation takes here (the kills are spread over it).
t0=$EPOCHREALTIME
run "$VMB_BIN" clone "$MNT" vm probe
t1=$EPOCHREALTIME
assert_eq "clone (timing probe): exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
CLONE_US=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%d", (b - a) * 1e6}')
t0=$EPOCHREALTIME
run "$VMB_BIN" snapshot "$MNT" vm probe
t1=$EPOCHREALTIME
assert_eq "snapshot (timing probe): exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
SNAP_US=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%d", (b - a) * 1e6}')
say "# clone of vm takes ${CLONE_US} us, a snapshot ${SNAP_US} us"

# after_crash OP ROUND: fsck, remount, check the state.
after_crash() {
    local op=$1 r=$2 rc
    run "$VMB_BIN" fsck "$STORE"
    rc=$RC
    assert_num "$op round $r: fsck after the kill: clean or repaired (exit $rc: $(grep -v 'files checked' "$T/o" | head -n 3 | tr '\n' ' '))" "$rc" -le 1
    run "$VMB_BIN" fsck -n "$STORE"
    assert_eq "$op round $r: a second fsck -n finds nothing ($(head -n 3 "$T/o" | tr '\n' ' '))" 0 $RC
    mount_store
    assert_eq "$op round $r: the source reads as before" "$SRC_SUMS" "$(sums "$MNT/vm")"
}

# check_clone NAME LABEL / check_snap NAME LABEL: absent (the old state) or whole.
check_clone() {
    if [ -e "$MNT/$1" ]; then
        assert_eq "$2: the new bundle is whole" "$SRC_SUMS" "$(sums "$MNT/$1")"
    else
        ok "$2: the new bundle is absent (the old state)"
    fi
    assert_eq "$2: no other bundle appeared" "" "$(ls "$MNT" | grep -vxE 'vm|probe|c[a-z0-9]+')"
}
check_snap() {
    if [ -e "$MNT/.snapshots/vm@$1" ]; then
        assert_eq "$2: the snapshot is whole" "$SRC_SUMS" "$(sums "$MNT/.snapshots/vm@$1")"
    else
        ok "$2: the snapshot is absent (the old state)"
    fi
}

# ---- the daemon killed right after each step of the operation (VMB_OP_KILL_AT,
# store/ops.h: the operation raises SIGKILL in the daemon), until it has no more ----
for op in clone snapshot; do
    for step in $(seq 1 9); do
        unmount_store
        export VMB_OP_KILL_AT=$op:$step
        mount_store
        unset VMB_OP_KILL_AT
        name=k$step
        [ $op = clone ] && name=ck$step
        run "$VMB_BIN" $op "$MNT" vm $name
        if ! _vmb_wait_daemon 5; then
            say "# $op has no step $step: it finished (exit $RC)"
            assert_eq "$op with no kill at step $step: exit 0 (errors: $(head -c 300 "$T/e"))" 0 $RC
            break
        fi
        say "# $op: the daemon killed itself after step $step; the command said: $(head -c 200 "$T/e")"
        assert_num "$op killed after step $step: the command fails" $RC -ne 0
        fusermount3 -uz "$MNT" 2>/dev/null
        for i in $(seq 1 50); do is_mounted "$MNT" || break; sleep 0.1; done
        _vmb_set_state killed
        after_crash "$op step $step" 1
        if [ $op = clone ]; then check_clone $name "clone killed after step $step"
        else check_snap $name "snapshot killed after step $step"; fi
    done
    assert_num "$op: at least 2 steps were killed" "$step" -ge 3
done

# ---- the daemon killed inside the freeze of a file it serves: with its layer
# made, before the rename (freeze:1), and right after the rename (freeze:2). The
# file keeps its mode (the layer is made read-only only once the name has moved;
# fsck does it when a crash came first). ----
for step in 1 2; do
    unmount_store
    export VMB_OP_KILL_AT=freeze:$step
    mount_store
    unset VMB_OP_KILL_AT
    # the same bytes written back: a delta to freeze, the content unchanged
    dd if="$MNT/vm/disk.img" bs=4096 skip=$((100 * 256)) count=1 status=none |
        dd of="$MNT/vm/disk.img" bs=4096 seek=$((100 * 256)) conv=notrunc,fsync status=none
    mode0=$(stat -c %a "$STORE/vm/disk.img")
    run "$VMB_BIN" snapshot "$MNT" vm f$step
    _vmb_wait_daemon 5 || fail "freeze:$step: the daemon did not kill itself (exit $RC: $(head -c 200 "$T/e"))"
    fusermount3 -uz "$MNT" 2>/dev/null
    for i in $(seq 1 50); do is_mounted "$MNT" || break; sleep 0.1; done
    _vmb_set_state killed
    assert_eq "freeze killed at step $step: the image keeps its mode" "$mode0" \
        "$(stat -c %a "$STORE/vm/disk.img")"
    after_crash "freeze step $step" 1
    check_snap f$step "snapshot killed in a freeze at step $step"
done

# ---- kill -9 from outside at spread points of the operation ----
for r in $(seq "$ROUNDS"); do
    delay=$(awk -v u="$CLONE_US" -v r="$r" -v n="$ROUNDS" 'BEGIN{printf "%.6f", u * (r - 0.5) / n / 1e6}')
    "$VMB_BIN" clone "$MNT" vm "c$r" >"$T/op.out" 2>&1 &
    op=$!
    sleep "$delay"
    say "# clone round $r: kill -9 after ${delay}s"
    kill_daemon
    wait $op
    say "# clone exited with $? ($(head -c 200 "$T/op.out"))"
    after_crash clone "$r"
    check_clone "c$r" "clone round $r"

    delay=$(awk -v u="$SNAP_US" -v r="$r" -v n="$ROUNDS" 'BEGIN{printf "%.6f", u * (r - 0.5) / n / 1e6}')
    "$VMB_BIN" snapshot "$MNT" vm "s$r" >"$T/op.out" 2>&1 &
    op=$!
    sleep "$delay"
    say "# snapshot round $r: kill -9 after ${delay}s"
    kill_daemon
    wait $op
    say "# snapshot exited with $? ($(head -c 200 "$T/op.out"))"
    after_crash snapshot "$r"
    check_snap "s$r" "snapshot round $r"
done
assert_eq "the probe snapshot survived every crash" "$SRC_SUMS" "$(sums "$MNT/.snapshots/vm@probe")"
assert_eq "the probe clone survived every crash" "$SRC_SUMS" "$(sums "$MNT/probe")"

# ---- a delta's journal cut after a commit: said, not silent ----
# A crash that cuts a commit short looks the same: the map is rebuilt from the last
# whole commit, and blocks zeroed since then read their base again; the log (on
# open) and fsck say so, naming the file.
run "$VMB_BIN" clone "$MNT" vm jv
assert_eq "clone vm jv: exit 0" 0 $RC
check "zero 2 MiB of the base's data in the clone" \
    dd if=/dev/zero of="$MNT/jv/disk.img" bs=1M count=2 seek=101 conv=notrunc,fsync status=none
unmount_store
J=$STORE/.vmbundlefs/maps/$(printf '%016x' "$(stat -c %i "$STORE/jv/disk.img")").jnl
check "the clone's image has a journal" test -s "$J"
truncate -s 100 "$J"
run "$VMB_BIN" fsck -n "$STORE"
assert_match "fsck -n names the file and what its map lost" \
    "jv/disk.img.*older than the file.*zeroed since its last commit read their base again" "$(cat "$T/o")"
mount_store
check "the clone reads (from its last whole commit)" cat "$MNT/jv/disk.img" >/dev/null
assert_match "the log says so" \
    "the map of 'jv/disk.img' \\(a file over layer '[0-9a-f]+'\\) was older than the file" "$(cat "$T/log")"
finish
