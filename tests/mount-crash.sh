#!/bin/sh
# Crash: a writer fsyncs distinct chunks and logs "fsynced N" after each fsync
# returns; kill -9 the daemon mid-way, detach, remount.  Every chunk logged as
# fsynced must read back exactly, no map may claim data never written, and
# every bundle is present.  Repeated VMB_CRASH_ROUNDS times (default 3).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
mount_store
ROUNDS=${VMB_CRASH_ROUNDS:-3}
CHUNK=65536
STRIDE=196608   # 192 KiB: a 128 KiB hole after every chunk
N=100000        # more than can finish before the kill
WRITER_PID=
on_exit '[ -n "$WRITER_PID" ] && kill -9 $WRITER_PID 2>/dev/null'

count_synced() {   # LOG -> number of "fsynced" lines
    local n
    n=$(grep -c '^fsynced' "$1" 2>/dev/null)
    echo "${n:-0}"
}

files_of() {   # ROUND -> the round's files
    echo "$MNT/r$1-a/disk.img $MNT/r$1-a/nvram.bin $MNT/r$1-b/disk.img"
}

# Metadata made before the crashes must survive them.
mkdir "$MNT/keep" "$MNT/keep/Data"
vmbio pwrite "$MNT/keep/config" 0 1000 p40 >/dev/null
mv "$MNT/keep/config" "$MNT/keep/config.json"
ln -s config.json "$MNT/keep/link"
vmbio fsync "$MNT/keep/config.json" >/dev/null

bundles=keep
for r in $(seq 1 "$ROUNDS"); do
    mkdir "$MNT/r$r-a" "$MNT/r$r-b" || fail "mkdir round $r bundles"
    bundles="$bundles r$r-a r$r-b"
    log=$T/crash$r.log
    # shellcheck disable=SC2046
    "$VMBIO" crashwrite "$log" $CHUNK $STRIDE $N $(files_of $r) >"$T/writer$r.out" 2>&1 &
    WRITER_PID=$!
    # Wait until some chunks are durable, then a little more (varies by round).
    for i in $(seq 1 400); do
        [ "$(count_synced "$log")" -ge 30 ] && break
        kill -0 $WRITER_PID 2>/dev/null || break
        sleep 0.05
    done
    sleep "0.$((r * 3 % 10))"
    synced=$(count_synced "$log")
    say "# round $r: killing the daemon after $synced fsynced chunks"
    assert_num "round $r: the writer made progress" "$synced" -ge 30
    kill_daemon
    wait $WRITER_PID 2>/dev/null
    WRITER_PID=
    assert_match "round $r: the writer saw an error when the daemon died" \
        'E[A-Z]+|Transport endpoint|Software caused' "$(cat "$T/writer$r.out")"
    mount_store
    assert_eq "round $r: every bundle is present" "$(printf '%s\n' $bundles | sort)" "$(ls "$MNT" | sort)"
    for p in $(seq 1 "$r"); do
        # shellcheck disable=SC2046
        check "round $r: chunks of round $p: fsynced ones read back, nothing claimed that was not written" \
            "$VMBIO" crashcheck "$T/crash$p.log" $CHUNK $STRIDE $(files_of $p)
    done
    check "round $r: files made before the crashes" vmbio verify "$MNT/keep/config.json" 0 1000 p40
    assert_eq "round $r: symlink made before the crashes" config.json "$(readlink "$MNT/keep/link")"
done

# Unsynced mixed workload (writes, zero writes, punches, truncates, renames),
# killed mid-way: afterwards every file reads without error, its map covers
# every non-zero byte, st_blocks agrees with the map, nothing is lost that
# was fsync'ed before the workload started.
mkdir "$MNT/mixed"
for i in 1 2 3; do vmbio pwrite "$MNT/mixed/f$i" 0 $((4 * 1048576)) p$((30 + i)) sync >/dev/null; done
mixed() {
    local n=0 f off len
    while :; do
        n=$((n + 1))
        f=$MNT/mixed/f$((RANDOM % 3 + 1))
        off=$(( (RANDOM * 32768 + RANDOM) % (48 * 1048576) + 4 * 1048576 ))
        len=$(( RANDOM * 8 + 1 ))
        case $((RANDOM % 6)) in
        0|1) "$VMBIO" pwrite "$f" $off $len p$((RANDOM % 200 + 1)) ;;
        2) "$VMBIO" pwrite "$f" $((off & ~4095)) $(( (len + 4095) & ~4095 )) 0 ;;
        3) "$VMBIO" falloc "$f" punch $off $len ;;
        4) "$VMBIO" truncate "$f" $((off + len)) ;;
        5) mv "$MNT/mixed/r$n" "$MNT/mixed/r$((n + 1))" 2>/dev/null || : >"$MNT/mixed/r$((n + 1))" ;;
        esac >/dev/null 2>&1 || return 0
    done
}
mixed &
WRITER_PID=$!
# Kill it mid-way, once it has surely run a while: a rename/create step (one in
# six) has made an r* file (under the sanitizers only a few steps run a second),
# and then 1.5 s more of mixed steps.
mixed_made_r() { compgen -G "$MNT/mixed/r*" >/dev/null || ! kill -0 "$WRITER_PID" 2>/dev/null; }
wait_for 30 mixed_made_r
sleep 1.5
kill_daemon
wait $WRITER_PID 2>/dev/null
WRITER_PID=
mount_store
assert_num "mixed workload: it ran (files made by its rename/create steps)" "$(ls "$MNT/mixed" | grep -c '^r')" -ge 1
for i in 1 2 3; do
    f=$MNT/mixed/f$i
    check "mixed workload: f$i reads without error" vmbio read "$f"
    check "mixed workload: f$i's map covers every non-zero byte" vmbio mapcheck "$f"
    assert_eq "mixed workload: f$i's st_blocks agrees with its map" "$(vmbio mapsum "$f")" "$(( $(st_blocks "$f") * 512 ))"
    check "mixed workload: f$i's fsync'ed first 4 MiB intact" vmbio verify "$f" 0 $((4 * 1048576)) p$((30 + i))
done

# After a clean unmount and remount, everything is still there.
remount
for p in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2046
    check "after a clean remount: round $p" "$VMBIO" crashcheck "$T/crash$p.log" $CHUNK $STRIDE $(files_of $p)
done
unmount_store
# A file that was being changed when the daemon was killed has no saved map (the
# daemon removes it before the first change, by design): it is rebuilt from the
# backing file when the file is next opened, or by fsck. A kill -9 during an atomic
# map update may also leave a temporary map behind (the next mount removes those).
# fsck may report these (and only these) and must then repair them.
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
rc=$?
sed 's/^/    | /' "$T/fsck.out"
other=$(grep -v -e 'leftover temporary map' -e '(it had no map)' "$T/fsck.out" |
        grep -v -e 'files checked' -e "^the daemons' messages about them: ")
if [ $rc -eq 0 ] || { [ $rc -eq 4 ] && [ -z "$other" ]; }; then
    ok "fsck -n after the crashes: clean, or only maps lost while files changed (exit $rc)"
else
    notok "fsck -n after the crashes: clean, or only maps lost while files changed" "exit $rc" "$other"
fi
"$VMB_BIN" fsck "$STORE" >"$T/fsck.out" 2>&1
rc=$?
assert_match "fsck repairs (exit 0 or 1): $(head -c 300 "$T/fsck.out")" '^[01]$' "$rc"
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck.out" 2>&1
rc=$?
assert_eq "fsck -n after fsck: clean: $(head -c 300 "$T/fsck.out")" 0 $rc
check "no temporary maps left" test -z "$(ls -A "$STORE/.vmbundlefs/maps" | grep -v '^[0-9a-f]\{16\}\.\(map\|jnl\)$')"
finish
