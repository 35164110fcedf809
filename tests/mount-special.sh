#!/bin/sh
# mount-special.sh: FIFOs and Unix sockets work inside bundles (Lima keeps its
# control sockets in the instance directory; issue 9 §2): bind, connect, a FIFO
# round trip between two processes, stat, rename, unlink, as an unprivileged user;
# device nodes stay refused (EPERM); ls, fsck and export pass over them.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || skip "no setpriv"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no /usr/bin/python3"
vmb_setup
chmod 755 "$T" "$STORE"
mount_store -o allow_other
mkdir -m 777 "$MNT/lima" || fail "mkdir"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

cat >"$T/sock.py" <<'EOF'
import os, socket, sys, threading
d = sys.argv[1]
os.chdir(d)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind("ha.sock")
srv.listen(1)
def serve():
    c, _ = srv.accept()
    c.sendall(c.recv(64).upper())
    c.close()
t = threading.Thread(target=serve)
t.start()
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cli.connect(os.path.join(d, "ha.sock"))
cli.sendall(b"ping from the guest agent")
print(cli.recv(64).decode())
t.join()
# A datagram socket too (qmp/serial use stream; some agents use datagrams).
a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
a.bind("dgram.sock")
b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
b.sendto(b"dgram", os.path.join(d, "dgram.sock"))
print(a.recv(16).decode())
EOF
assert_eq "a Unix socket in a bundle: bind, listen, connect, send and receive" \
    "PING FROM THE GUEST AGENT
dgram" "$(as_nobody "$PY" "$T/sock.py" "$MNT/lima" 2>&1)"
assert_eq "the socket is a socket owned by its creator, in the mount and in the store" \
    "socket 65534 socket 65534" \
    "$(stat -c '%F %u' "$MNT/lima/ha.sock" "$STORE/lima/ha.sock" | tr '\n' ' ' | sed 's/ $//')"

assert_eq "a socket bound through the mount is not reachable through the store" \
    ECONNREFUSED "$("$PY" -c 'import errno, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c = socket.socket(socket.AF_UNIX)
try:
    c.connect(sys.argv[2]); print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])' "$MNT/lima/x.sock" "$STORE/lima/x.sock" 2>&1)"
rm -f "$MNT/lima/x.sock"

# A FIFO: made with mkfifo, opened by a writer and a reader (two processes).
check "mkfifo in a bundle" as_nobody mkfifo -m 620 "$MNT/lima/serial.fifo"
assert_eq "the FIFO's type and mode" "fifo 620" "$(stat -c '%F %a' "$MNT/lima/serial.fifo")"
as_nobody sh -c 'printf "console line 1\nconsole line 2\n" >"$1"' sh "$MNT/lima/serial.fifo" &
wpid=$!
got=$(timeout 10 cat "$MNT/lima/serial.fifo")
wait $wpid
assert_eq "a FIFO round trip between two processes" "console line 1
console line 2" "$got"
# and the other way round: the reader opens first.
timeout 10 cat "$MNT/lima/serial.fifo" >"$T/fifo.out" &
rpid=$!
sleep 0.2
printf 'back\n' >"$MNT/lima/serial.fifo"
wait $rpid
assert_eq "a FIFO round trip, reader first" back "$(cat "$T/fifo.out")"

check "rename of a FIFO" as_nobody mv "$MNT/lima/serial.fifo" "$MNT/lima/serial2.fifo"
check "rename of a socket" as_nobody mv "$MNT/lima/ha.sock" "$MNT/lima/ha2.sock"
assert_eq "renamed entries keep their types" "fifo socket" \
    "$(stat -c %F "$MNT/lima/serial2.fifo" "$MNT/lima/ha2.sock" | tr '\n' ' ' | sed 's/ $//')"
out=$(ls -l "$MNT/lima" | awk 'NR>1 {print substr($1,1,1), $NF}' | tr '\n' ' ')
assert_eq "ls -l shows the FIFO and the sockets" "s dgram.sock s ha2.sock p serial2.fifo " "$out"

# ls, fsck and export of the store pass over them.
check "vmbundlefs ls with FIFOs and sockets in a bundle" "$VMB_BIN" ls "$STORE"
: >"$MNT/lima/disk.img"
check "vmbundlefs export of a bundle with FIFOs and sockets" \
    "$VMB_BIN" export "$STORE" lima "$T/lima.tar"
assert_eq "the archive holds the bundle's files but not its FIFOs and sockets" \
    "lima/ lima/disk.img" "$(tar -tf "$T/lima.tar" | sort | tr '\n' ' ' | sed 's/ $//')"

unmount_store
check "vmbundlefs fsck -n with FIFOs and sockets in a bundle" "$VMB_BIN" fsck -n "$STORE"
check "vmbundlefs fsck with FIFOs and sockets in a bundle" "$VMB_BIN" fsck "$STORE"
mount_store -o allow_other
assert_eq "the FIFO and the sockets are still there after fsck" "fifo socket" \
    "$(stat -c %F "$MNT/lima/serial2.fifo" "$MNT/lima/ha2.sock" | tr '\n' ' ' | sed 's/ $//')"
check "unlink of a FIFO" as_nobody rm "$MNT/lima/serial2.fifo"
check "unlink of a socket" as_nobody rm "$MNT/lima/ha2.sock" "$MNT/lima/dgram.sock"
check "no FIFO or socket is left in the store" sh -c "[ -z \"\$(find '$STORE/lima' ! -type f ! -type d)\" ]"

# Device nodes stay refused, for root too.
expect_dev() {
    local out
    out=$(mknod "$MNT/lima/$1" "$2" 1 3 2>&1)
    assert_match "mknod of a $3 device is refused (EPERM)" 'Operation not permitted' "$out"
}
expect_dev null c character
expect_dev sda b block
check "nothing was made for them" sh -c "[ ! -e '$STORE/lima/null' ] && [ ! -e '$STORE/lima/sda' ]"
finish
