#!/bin/sh
# The control channel of a mount (vfs/ctl.h): found from the store, the mount point
# or a path inside the mount; who may ask what (SO_PEERCRED, another user refused);
# bad requests; clients that say nothing hold up no other; a killed daemon's socket
# is stale and swept by the next mount; the socket goes at unmount; a store with two
# mounts is refused (by the command, and by the daemon asked directly); snapshot
# --list given the mount or a path inside it.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

vmb_setup
command -v setpriv >/dev/null || skip "setpriv is not installed (util-linux)"
command -v python3 >/dev/null || skip "python3 is not installed"
chmod 755 "$T" "$STORE"
mount_store -o allow_other
RUN=$STORE/.vmbundlefs/run
pid=$(daemon_pid)

out=$("$VMB_BIN" ping "$STORE" 2>&1)
assert_match "ping STORE: the daemon answers with its pid" "^daemon $pid of '$MNT'" "$out"
mkdir -p "$MNT/b1/sub"
check "ping MNT" "$VMB_BIN" ping "$MNT"
check "ping a path deep inside the mount" "$VMB_BIN" ping "$MNT/b1/sub"
dev=$(awk -v m="$MNT" '$5 == m { print $3 }' /proc/self/mountinfo)
assert_eq "one socket, named by the mount's device" "ctl.$dev" "$(ls "$RUN")"
assert_eq "the socket is 0666, run/ and .vmbundlefs 0711" "666 711 711" \
    "$(stat -c %a "$RUN/ctl.$dev" "$RUN" "$STORE/.vmbundlefs" | tr '\n' ' ' | sed 's/ $//')"
assert_eq "the metadata stays the owner's (maps/ 0700, layout 0600)" "700 600" \
    "$(stat -c %a "$STORE/.vmbundlefs/maps" "$STORE/.vmbundlefs/layout" | tr '\n' ' ' | sed 's/ $//')"

# Who may ask: root, or the bundle's owner.
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
check "another user may ping" $NOBODY "$VMB_BIN" ping "$MNT"
check "... but cannot list run/" test "$($NOBODY ls "$RUN" 2>&1 | grep -c 'Permission denied')" = 1
out=$($NOBODY "$VMB_BIN" ping "$STORE/.vmbundlefs/maps" 2>&1)
rc=$?
assert_eq "(another user still cannot enter maps/)" 1 "$rc"
req() { python3 - "$RUN/ctl.$dev" "$@" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(b"\0".join(a.encode() for a in sys.argv[2:]))
print(s.recv(65536).decode())
EOF
}
out=$($NOBODY bash -c "$(declare -f req); RUN=$RUN dev=$dev; req snapshot b1" 2>&1)
assert_match "snapshot of root's bundle by another user: EACCES, naming the owner" \
    "^13 cannot snapshot bundle 'b1': only root or its owner \(uid 0\) may, not uid 65534" "$out"
out=$($NOBODY bash -c "$(declare -f req); RUN=$RUN dev=$dev; req flatten b1" 2>&1)
assert_match "flatten of root's bundle by another user: EACCES" "^13 cannot flatten bundle 'b1'" "$out"
out=$($NOBODY bash -c "$(declare -f req); RUN=$RUN dev=$dev; req snapshot-delete b1@x" 2>&1)
assert_match "snapshot --delete by another user: EACCES" "^13 cannot delete a snapshot of bundle 'b1'" "$out"
out=$($NOBODY bash -c "$(declare -f req); RUN=$RUN dev=$dev; req gc" 2>&1)
assert_match "gc by another user: EACCES" "^13 cannot gc: only root or the store's owner" "$out"
out=$($NOBODY bash -c "$(declare -f req); RUN=$RUN dev=$dev; req clone b1 b2" 2>&1)
assert_match "clone into root's store by another user: EACCES" "^13 cannot clone into 'b2'" "$out"
chmod 1777 "$STORE"
chmod 700 "$MNT/b1/sub"
out=$($NOBODY bash -c "$(declare -f req); RUN=$RUN dev=$dev; req clone b1 b2" 2>&1)
assert_match "clone of a bundle with an unreadable directory: EACCES naming it" \
    "^13 cannot clone 'b1': 'b1/sub' is not readable by uid 65534" "$out"
chmod 755 "$STORE"
mkdir "$MNT/nb" && chown 65534:65534 "$MNT/nb"
out=$($NOBODY bash -c "$(declare -f req); RUN=$RUN dev=$dev; req snapshot nb" 2>&1)
check "the owner of a bundle passes the check ($out)" test "${out#13 }" = "$out"
check "... as does root" test "$(req snapshot b1 | cut -c1-3)" != "13 "

# Bad requests: a clear error each, and the daemon goes on.
assert_match "an unknown request" "^95 unknown request 'frobnicate'" "$(req frobnicate)"
assert_match "ping with arguments" "^22 ping takes no arguments" "$(req ping x)"
assert_match "a bundle name with a slash" "^22 " "$(req snapshot ../etc)"
assert_match "the metadata directory is no bundle" "^22 '.vmbundlefs' is not a bundle" "$(req snapshot .vmbundlefs)"
assert_match "snapshot-delete without @" "^22 snapshot-delete takes BUNDLE@NAME" "$(req snapshot-delete b1)"
assert_match "a missing bundle: ENOENT" "^2 cannot snapshot bundle 'nosuch'" "$(req snapshot nosuch)"
out=$(python3 - "$RUN/ctl.$dev" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(b"snapshot\0" + b"x" * 100000)
print(s.recv(65536).decode())
EOF
)
assert_match "a request too long: EMSGSIZE" "^90 request too long" "$out"
out=$(python3 - "$RUN/ctl.$dev" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.send(b"ping\0" + b"\0".join([b"a"] * 50))
print(s.recv(65536).decode())
EOF
)
assert_match "too many arguments: E2BIG" "^7 too many arguments" "$out"
# Clients that connect and say nothing hold up no other request: one, then more
# than the daemon keeps waiting at once (it drops the oldest).
for n in 1 100; do
	python3 - "$RUN/ctl.$dev" $n "$T/silent" <<'EOF' &
import socket, sys, time
socks = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    socks.append(s)
open(sys.argv[3], "w").close()
time.sleep(30)
EOF
	silent=$!
	for i in $(seq 1 100); do [ -e "$T/silent" ] && break; sleep 0.1; done
	t0=$EPOCHREALTIME
	check "$n silent client(s) connected: ping answers" timeout 15 "$VMB_BIN" ping "$MNT"
	ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%d", (b - a) * 1000}')
	assert_num "... at once, not after their 5 s (answered after $ms ms)" "$ms" -lt 2500
	kill "$silent" 2>/dev/null; wait "$silent" 2>/dev/null
	rm -f "$T/silent"
done
check "a request after them is answered" "$VMB_BIN" ping "$MNT"

# Not mounted, killed, remounted.
unmount_store
assert_eq "unmount removes the socket" "" "$(ls "$RUN")"
out=$("$VMB_BIN" ping "$STORE" 2>&1)
rc=$?
assert_eq "ping of a store not mounted fails (exit 1)" 1 "$rc"
assert_match "... saying so" "store '.*' is not mounted" "$out"
"$VMB_BIN" fsck -n "$STORE" >"$T/fsck" 2>&1
assert_eq "fsck -n: the modes a mount gave (.vmbundlefs, run/ 0711) are no problem" 0 $? || cat "$T/fsck"
mount_store
dev=$(awk -v m="$MNT" '$5 == m { print $3 }' /proc/self/mountinfo)
kill_daemon
check "a killed daemon leaves its socket behind" test -S "$RUN/ctl.$dev"
mount_store
out=$("$VMB_BIN" ping "$STORE" 2>&1)
assert_match "the next mount answers" "^daemon $(daemon_pid) " "$out"
ndev=$(awk -v m="$MNT" '$5 == m { print $3 }' /proc/self/mountinfo)
assert_eq "... and swept the stale socket (one left: its own)" "ctl.$ndev" "$(ls "$RUN")"
assert_match "... saying so in the log" "removed the stale control socket|^$" \
    "$([ "$dev" = "$ndev" ] || grep -o 'removed the stale control socket' "$T/log" | head -n 1)"

# Two mounts of one store: structural commands are refused. The second mount
# point has a space (\040 in /proc/self/mountinfo, decoded where it is named).
MNT2="$T/mnt two"
mkdir "$MNT2"
"$VMB_BIN" mount --log="$T/log2" "$STORE" "$MNT2" || fail "second mount"
on_exit "fusermount3 -u '$MNT2' 2>/dev/null"
out=$("$VMB_BIN" ping "$STORE" 2>&1)
rc=$?
assert_eq "two mounts: ping STORE fails (exit 1)" 1 "$rc"
assert_match "... naming both mounts" \
    "structural commands need a store with at most one mount; '.*' is mounted at '$MNT' and '$MNT2'" "$out"
out=$("$VMB_BIN" ping "$MNT2/b1" 2>&1)
assert_match "... also through a path inside the second mount" "at most one mount" "$out"
# The daemon refuses them too when asked directly (a client that did not look, or a
# mount made after the command looked): a freeze would hand the other mount's
# descriptors to the layers (outside report r27 X-cfr2).
dev=$ndev
snaps=$(ls "$STORE/.vmbundlefs/snapshots")
out=$(req snapshot b1)
assert_match "... a snapshot asked of the first daemon directly: EBUSY, naming the other mount" \
    "^16 structural commands need a store with at most one mount; '.*' is mounted at '$MNT' and also at '$MNT2'" "$out"
assert_eq "... no snapshot taken" "$snaps" "$(ls "$STORE/.vmbundlefs/snapshots")"
out=$(req clone b1 b1c)
assert_match "... a clone too" "^16 structural commands need a store with at most one mount" "$out"
check_fails "... no clone made" test -e "$STORE/b1c"
fusermount3 -u "$MNT2"
one_socket() { [ "$(ls "$RUN" | wc -l)" = 1 ]; }
wait_for 30 one_socket   # the second daemon removes its socket as it exits
check "after the second unmount, ping works again" "$VMB_BIN" ping "$STORE"
assert_eq "... and the second daemon removed its socket" 1 "$(ls "$RUN" | wc -l)"

# snapshot --list takes a mount point or a path inside the mount like the others
want=$("$VMB_BIN" snapshot --list "$STORE" 2>&1)
assert_match "snapshot --list STORE lists b1's snapshot" "^b1@" "$(echo "$want" | tail -n +2)"
assert_eq "snapshot --list MNT: the same" "$want" "$("$VMB_BIN" snapshot --list "$MNT" 2>&1)"
assert_eq "snapshot --list MNT/b1 (a path inside the mount): the same" "$want" \
    "$("$VMB_BIN" snapshot --list "$MNT/b1" 2>&1)"
assert_eq "snapshot --list MNT b1: b1's" "$("$VMB_BIN" snapshot --list "$STORE" b1 2>&1)" \
    "$("$VMB_BIN" snapshot --list "$MNT" b1 2>&1)"
finish
