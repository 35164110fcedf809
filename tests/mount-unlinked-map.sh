#!/bin/sh
# mount-unlinked-map.sh: the map of a file that lost its last link is removed, never
# saved, whoever removed the link (issue 12 §3): a rename over a file that is open
# through another mount, or made directly in the store, leaves no orphan sidecar,
# when the file is closed, synced, or its daemon is killed afterwards.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || skip "no /usr/bin/python3"
vmb_setup
mount_store
MNT2=$T/mnt2
mkdir "$MNT2"
( sh -c 'echo $$ >"$0"; exec "$@"' "$T/daemon2.pid" "$VMB_BIN" mount -f --log="$T/log2" "$STORE" "$MNT2"
  echo $? >"$T/daemon2.rc" ) </dev/null >>"$T/daemon2.out" 2>&1 &
on_exit 'grep -q " $MNT2 fuse" /proc/mounts && fusermount3 -uz "$MNT2"; [ -s "$T/daemon2.pid" ] && kill -9 "$(cat "$T/daemon2.pid")" 2>/dev/null; for _ in $(seq 1 50); do [ -e "$T/daemon2.rc" ] && break; sleep 0.1; done'
for _ in $(seq 1 100); do mountpoint -q "$MNT2" && break; sleep 0.1; done
mountpoint -q "$MNT2" || fail "the second mount did not appear"
mkdir "$MNT/b" || fail "mkdir"

# hold FILE RENAME_CMD AFTER: open FILE read-write, write, run RENAME_CMD, write
# again, then AFTER (close | sync | sync-hold); prints the inode of the open file.
cat >"$T/hold.py" <<'EOF2'
import os, subprocess, sys, time
path, cmd, after = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(path, os.O_RDWR)
os.pwrite(fd, b"A" * 65536, 0)
print(os.fstat(fd).st_ino, flush=True)
subprocess.run(cmd, shell=True, check=True)
os.pwrite(fd, b"B" * 65536, 1 << 20)
if after.startswith("sync"):
    os.fsync(fd)
if after == "sync-hold":
    time.sleep(600)   # killed with its daemon
os.close(fd)
EOF2

sidecar() { printf '%016x.map' "$1"; }
# no_sidecar INO: the sidecar of INO is gone (waiting up to 10 s for a RELEASE).
no_sidecar() {
    for _ in $(seq 1 100); do
        [ -e "$STORE/.vmbundlefs/maps/$(sidecar "$1")" ] || return 0
        sleep 0.1
    done
    return 1
}
new_pair() {
    rm -f "$MNT/b/f" "$MNT/b/g"
    head -c 1M /dev/urandom >"$MNT/b/f"; echo new >"$MNT/b/g"
    for _ in $(seq 1 100); do   # the close of each is in
        [ -e "$STORE/.vmbundlefs/maps/$(sidecar "$(stat -c %i "$STORE/b/f")")" ] && return 0
        sleep 0.1
    done
    fail "no sidecar for a written file"
}

new_pair
ino=$("$PY" "$T/hold.py" "$MNT/b/f" "mv '$MNT2/b/g' '$MNT2/b/f'" close)
check "a rename through another mount over an open file, then its close: no sidecar left" \
    no_sidecar "$ino"

new_pair
ino=$("$PY" "$T/hold.py" "$MNT/b/f" "mv '$STORE/b/g' '$STORE/b/f'" close)
check "a rename in the store over an open file, then its close: no sidecar left" \
    no_sidecar "$ino"

new_pair
ino=$("$PY" "$T/hold.py" "$MNT/b/f" "mv '$STORE/b/g' '$STORE/b/f'" sync)
check "a rename in the store over an open file, then fsync and close: no sidecar left" \
    no_sidecar "$ino"

# The file stays open and synced while its daemon is killed: nothing saved its map.
new_pair
"$PY" "$T/hold.py" "$MNT/b/f" "mv '$STORE/b/g' '$STORE/b/f'" sync-hold >"$T/ino" &
hpid=$!
for _ in $(seq 1 100); do [ -s "$T/ino" ] && grep -q new "$STORE/b/f" && break; sleep 0.1; done
sleep 1
ino=$(cat "$T/ino")
kill_daemon
kill -9 $hpid 2>/dev/null; wait $hpid 2>/dev/null
check "a rename in the store over an open file, fsync, daemon killed: no orphan sidecar" \
    sh -c "! ls '$STORE/.vmbundlefs/maps' | grep -q $(sidecar "$ino")"

how=u
fusermount3 -u "$MNT2" || { how=uz; fusermount3 -uz "$MNT2"; }
t0=$(date +%s)
if ! wait_for 30 test -e "$T/daemon2.rc"; then   # seen once in CI: say what was going on
    say "# no exit 30 s after fusermount3 -$how: daemon $(cat "$T/daemon2.pid") $(
        kill -0 "$(cat "$T/daemon2.pid")" 2>/dev/null && echo alive || echo gone), $(
        grep -c " $MNT2 fuse" /proc/mounts) mount(s) left; its log:"
    tail -n 20 "$T/log2" "$T/daemon2.out" 2>/dev/null | sed 's/^/#   /'
    [ -s "$T/daemon2.pid" ] && sed 's/^/#   /' "/proc/$(cat "$T/daemon2.pid")/stack" 2>/dev/null
fi
assert_eq "the second daemon exits with status 0 (within 30 s of its unmount, $(( $(date +%s) - t0 )) s)" \
    0 "$(cat "$T/daemon2.rc" 2>/dev/null)"
out=$("$VMB_BIN" fsck -n "$STORE" 2>&1)
check "fsck -n finds no map of a file that no longer exists" sh -c "! printf '%s' '$out' | grep -q 'no longer exists'"
finish
