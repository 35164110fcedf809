#!/bin/sh
# mount-modes.sh: new files, directories, FIFOs and sockets get exactly the modes,
# owners and groups ext4 gives them, for every umask, as root and as an unprivileged
# user, in a plain and in a set-group-ID directory (issue 9 §2). The same calls run
# side by side in a directory of the mount and in a native directory of the same
# filesystem, and their results are compared.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$(dirname "$0")/lib.sh"

command -v setpriv >/dev/null || skip "no setpriv"
PY=/usr/bin/python3
[ -x "$PY" ] || skip "no /usr/bin/python3"
vmb_setup
chmod 755 "$T" "$STORE"
mount_store -o allow_other
mkdir "$MNT/b" "$T/native" || fail "mkdir"
chmod 755 "$MNT/b" "$T/native"

cat >"$T/make.py" <<'EOF'
import os, socket, stat, sys
os.chdir(sys.argv[1])
os.umask(int(sys.argv[2], 8))
def create(name, mode):
    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
create("f666", 0o666)
create("f620", 0o620)
create("f4777", 0o4777)
create("f2755", 0o2755)
create("f6777", 0o6777)
os.mkdir("d777", 0o777)
os.mkdir("d2755", 0o2755)
os.mkdir("d1777", 0o1777)
os.mkfifo("p666", 0o666)
os.mknod("p640", stat.S_IFIFO | 0o640)
s = socket.socket(socket.AF_UNIX)
s.bind("sock")
s.close()
for n in sorted(os.listdir(".")):
    st = os.lstat(n)
    print("%s %o %s %d %d" % (n, st.st_mode, stat.filemode(st.st_mode), st.st_uid, st.st_gid))
EOF

# run USER UMASK KIND: the listing of the calls in the mount and natively.
run() {
    local who=$1 um=$2 kind=$3 d out
    for d in "$MNT/b" "$T/native"; do
        rm -rf "$d/$who-$um-$kind"
        mkdir "$d/$who-$um-$kind"
        case $kind in
        plain) chmod 777 "$d/$who-$um-$kind" ;;
        sgid) chgrp 4242 "$d/$who-$um-$kind"; chmod 2777 "$d/$who-$um-$kind" ;;
        esac
        if [ "$who" = root ]; then
            out=$("$PY" "$T/make.py" "$d/$who-$um-$kind" "$um" 2>&1)
        else
            out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
                "$PY" "$T/make.py" "$d/$who-$um-$kind" "$um" 2>&1)
        fi
        printf '%s\n' "$out" >"$T/out.$kind.$(basename "$d")"
    done
    assert_eq "$who, umask $um, $kind directory: the same modes, owners and groups as natively" \
        "$(cat "$T/out.$kind.native")" "$(cat "$T/out.$kind.b")"
}

for who in root nobody; do
    for um in 000 002 022 077 027; do
        run $who $um plain
        run $who $um sgid
    done
done
# The cases of the issue, spelled out.
assert_eq "umask 002: touch gives 0664, mkdir 0775" "664 775" \
    "$(stat -c %a "$MNT/b/nobody-002-plain/f666" "$MNT/b/nobody-002-plain/d777" | tr '\n' ' ' | sed 's/ $//')"
assert_eq "umask 000: open(O_CREAT, 0620) gives 0620 and 04777 stays 04777" "620 4777" \
    "$(stat -c %a "$MNT/b/root-000-plain/f620" "$MNT/b/root-000-plain/f4777" | tr '\n' ' ' | sed 's/ $//')"
assert_eq "an unprivileged creator outside the group loses S_ISGID on a new file in a set-group-ID directory" \
    "755 4242" "$(stat -c '%a %g' "$MNT/b/nobody-000-sgid/f2755")"
assert_eq "a new directory in a set-group-ID directory is set-group-ID, of its group" \
    "2755 4242" "$(stat -c '%a %g' "$MNT/b/nobody-000-sgid/d2755")"
finish
