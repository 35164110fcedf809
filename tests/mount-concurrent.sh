#!/bin/sh
# Concurrency: several processes writing disjoint parts of one file, punching
# holes, reading and seeking at the same time; parallel creates and renames in
# one directory.  Everything must add up afterwards (and after a remount).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
K=4096
C=262144       # chunk
W=6            # writers
N=12           # chunks per writer
mkdir "$MNT/c" || fail mkdir
F=$MNT/c/shared.img
truncate -s $((C * W * N * 2)) "$F"

# Writer w writes chunk k at ((k * W + w) * 2) * C, pattern p(w+1); the chunk
# after each is punched by the same writer after writing it full of data.
pids=
for w in $(seq 0 $((W - 1))); do
    (
        for k in $(seq 0 $((N - 1))); do
            off=$(( (k * W + w) * 2 * C ))
            "$VMBIO" pwrite "$F" $off $C p$((w + 1)) >/dev/null || exit 1
            "$VMBIO" pwrite "$F" $((off + C)) $C p9 >/dev/null || exit 1
            "$VMBIO" falloc "$F" punch $((off + C)) $C >/dev/null || exit 1
        done
    ) &
    pids="$pids $!"
done
(
    for i in $(seq 1 30); do
        "$VMBIO" map "$F" >/dev/null || exit 1
        "$VMBIO" read "$F" >/dev/null || exit 1
    done
) &
reader=$!
bad=0
for p in $pids; do wait "$p" || bad=$((bad + 1)); done
assert_eq "all $W writers finished without errors" 0 $bad
wait $reader
assert_eq "the concurrent reader saw no errors" 0 $?

bad=
for w in $(seq 0 $((W - 1))); do
    for k in $(seq 0 $((N - 1))); do
        off=$(( (k * W + w) * 2 * C ))
        "$VMBIO" verify "$F" $off $C p$((w + 1)) >/dev/null || bad="$bad $off"
        "$VMBIO" verify "$F" $((off + C)) $C 0 >/dev/null || bad="$bad $((off + C))(punched)"
    done
done
assert_eq "every chunk has its writer's data, every punched chunk is zero" "" "$bad"
EXP=$(for i in $(seq 0 $((W * N - 1))); do echo "$((i * 2 * C)) $C"; done)
assert_eq "map: exactly the written chunks" "$EXP" "$("$VMBIO" map "$F")"
assert_eq "st_blocks" $((W * N * C / 512)) "$(st_blocks "$F")"

# Parallel creates, writes and renames in one directory.
pids=
for w in 1 2 3 4; do
    (
        for i in $(seq 1 40); do
            "$VMBIO" pwrite "$MNT/c/f$w-$i" 0 $((i * 1000)) p$w >/dev/null || exit 1
            mv "$MNT/c/f$w-$i" "$MNT/c/g$w-$i" || exit 1
        done
    ) &
    pids="$pids $!"
done
bad=0
for p in $pids; do wait "$p" || bad=$((bad + 1)); done
assert_eq "parallel create/write/rename: no errors" 0 $bad
assert_eq "160 renamed files" 160 "$(ls "$MNT/c" | grep -c '^g')"
assert_eq "no leftovers under the old names" 0 "$(ls "$MNT/c" | grep -c '^f')"
bad=
for w in 1 2 3 4; do
    for i in $(seq 1 40); do
        "$VMBIO" verify "$MNT/c/g$w-$i" 0 $((i * 1000)) p$w >/dev/null || bad="$bad g$w-$i"
    done
done
assert_eq "every renamed file has its content" "" "$bad"

remount
assert_eq "after remount: map" "$EXP" "$("$VMBIO" map "$F")"
check "after remount: a chunk of the last writer" vmbio verify "$F" $(( ((N - 1) * W + W - 1) * 2 * C )) $C p$W
assert_eq "after remount: 160 files" 160 "$(ls "$MNT/c" | grep -c '^g')"
unmount_store
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
rc=$?
assert_eq "fsck -n is clean: $(head -c 300 "$T/fsck.out")" 0 $rc
finish
