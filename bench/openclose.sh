#!/bin/bash
# bench/openclose.sh -- open / 4 KiB write / close cycles on a file with a fragmented
# map (65,000 extents) and on one with a 1-extent map, native and through vmbundlefs,
# side by side (issue 9: a restic restore paid O(map) at every close).
#
# Run on demand (not in CI), as root:
#
#   bench/openclose.sh [--cycles N] [--extents N] [--reps N] [--out FILE]
#
#   --cycles N   open/write/close cycles per run (default 300)
#   --extents N  extents of the fragmented map (default 65000: N/2 data extents
#                and the holes between them)
#   --reps N     repetitions, the median is used (default 3)
#   --out FILE   also write the table (markdown) to FILE
#
# Environment: VMB_BIN (default ./build/vmbundlefs), BENCH_DIR (default /var/tmp).
#
# Set-up: frag.img holds 4 KiB of data every 8 KiB (N/2 data extents and the
# holes between them: N map extents), one.img is as large and holds a single data
# extent; both are made in the store directly and get their maps at the first
# open through the mount (then saved at its close). Every cycle opens the file
# O_WRONLY, writes 4 KiB of non-zero bytes into a hole (so the map changes) and
# closes it; the next cycle opens it again (the last close saved the map). The
# native runs do the same on copies in a plain directory of the same filesystem.
set -u -o pipefail
export LC_ALL=C
die() { echo "openclose: $*" >&2; exit 1; }

CYCLES=300 EXTENTS=65000 REPS=3 OUT=''
while [ $# -gt 0 ]; do
	case $1 in
	--cycles) CYCLES=$2; shift ;;
	--extents) EXTENTS=$2; shift ;;
	--reps) REPS=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "must run as root (mounts)"
VMB_BIN=${VMB_BIN:-./build/vmbundlefs}
case $VMB_BIN in /*) ;; *) VMB_BIN=$PWD/$VMB_BIN ;; esac
[ -x "$VMB_BIN" ] || die "no vmbundlefs binary at '$VMB_BIN' (set VMB_BIN)"
command -v python3 >/dev/null || die "python3 is needed"

W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/vmb-openclose.XXXXXX") || die "mktemp failed"
STORE=$W/store MNT=$W/mnt NAT=$W/native PID=''
cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
	fi
	[ -n "$PID" ] && wait "$PID" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$MNT" "$NAT"

# make FILE DATA_EXTENTS: 4 KiB of data every 8 KiB, or (1) one data block
make_file() {
	python3 - "$1" "$2" "$EXTENTS" <<'EOF'
import os, sys
path, n, size_ext = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size_ext * 8192)
blk = b'\x5a' * 4096
for i in range(n):
    os.pwrite(fd, blk, i * 8192)
os.close(fd)
EOF
}

# cycles FILE START: seconds for CYCLES open/4 KiB write/close, each into a new
# hole: frag.img at 8 KiB * i + 4 KiB (joining two data extents), one.img at
# 4 KiB * (i + 1) (growing its one data extent), i from START
cycles() {
	python3 - "$1" "$CYCLES" "$2" <<'EOF'
import os, sys, time
path, n, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blk = b'\xa5' * 4096
frag = path.endswith('frag.img')
t = time.monotonic()
for i in range(start, start + n):
    fd = os.open(path, os.O_WRONLY)
    os.pwrite(fd, blk, i * 8192 + 4096 if frag else (i + 1) * 4096)
    os.close(fd)
print("%.4f" % (time.monotonic() - t))
EOF
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

"$VMB_BIN" init "$STORE" >/dev/null || die "init failed"
mkdir "$STORE/b"
make_file "$STORE/b/frag.img" $((EXTENTS / 2))
make_file "$STORE/b/one.img" 1
cp --sparse=always "$STORE/b/frag.img" "$NAT/frag.img"
cp --sparse=always "$STORE/b/one.img" "$NAT/one.img"
"$VMB_BIN" mount -f "$STORE" "$MNT" 2>"$W/daemon.log" &
PID=$!
for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
mountpoint -q "$MNT" || die "mount failed: $(cat "$W/daemon.log")"
# first opens: the maps are built from the holes and saved whole at the close
python3 -c 'import os, sys
for p in sys.argv[1:]: os.close(os.open(p, os.O_WRONLY))' "$MNT/b/frag.img" "$MNT/b/one.img"

# CPU seconds (user + system, all threads) the daemon has used so far
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$PID/stat"; }

declare -A T
for rep in $(seq "$REPS"); do
	start=$((rep * CYCLES))
	for f in frag one; do
		T[nat-$f]+="$(cycles "$NAT/$f.img" "$start") "
		c0=$(cpu)
		T[vmb-$f]+="$(cycles "$MNT/b/$f.img" "$start") "
		T[cpu-$f]+="$(awk -v a="$c0" -v b="$(cpu)" 'BEGIN {print b - a}') "
	done
done
declare -A M
for k in nat-frag nat-one vmb-frag vmb-one cpu-frag cpu-one; do
	M[$k]=$(printf '%s\n' ${T[$k]} | median)
done
mapsz=$(stat -c %s "$STORE"/.vmbundlefs/maps/*.map 2>/dev/null | sort -n | tail -1)
{
	echo "### open/4 KiB write/close, $CYCLES cycles (median of $REPS; $(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "host: $(uname -r), $(nproc) CPUs; $("$VMB_BIN" --version 2>/dev/null | head -1); fragmented map: $EXTENTS extents, sidecar $((mapsz / 1024)) KiB"
	echo
	echo "| benchmark | native | vmbundlefs | ratio vs native | daemon CPU |"
	echo "|---|---|---|---|---|"
	for f in frag one; do
		what=$([ $f = frag ] && echo "fragmented map ($EXTENTS extents)" || echo "1-extent map")
		awk -v w="$what" -v n="${M[nat-$f]}" -v v="${M[vmb-$f]}" -v c="$CYCLES" -v u="${M[cpu-$f]}" \
			'BEGIN {printf "| %d open/4 KiB write/close, %s | %.3f s | %.3f s | %.2fx | %.2f s |\n", c, w, n, v, v / n, u}'
	done
	awk -v a="${M[vmb-frag]}" -v b="${M[vmb-one]}" -v c="${M[nat-frag]}" -v d="${M[nat-one]}" \
		'BEGIN {r = a / b; printf "\nfragmented / 1-extent through vmbundlefs: %.2fx (target <= 2x: %s); natively: %.2fx\n", r, r <= 2 ? "PASS" : "MISS", c / d}'
	echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee ${OUT:+"$OUT"}
