#!/bin/bash
# bench/layers.sh -- layered images (issue 10), measured side by side in one run:
#
#  1. clone time of an image (16 GiB with 8 GiB of data; quick: 4 GiB with 1 GiB)
#     with 'vmbundlefs clone' through the mounted store (done by its daemon) and on
#     the store unmounted, against 'cp --reflink=auto' (cp's default since
#     coreutils 9) and 'cp --reflink=never' (a plain copy) of the same file on the
#     native filesystem, each followed by an fsync of the copy;
#  2. space used by 10 clones (du of the store before and after) against 10 such
#     copies (one copy measured, times 10: the disk may not hold ten);
#  3. sequential read (dd bs=1M) and fio 4 KiB random read (psync, QD1) through the
#     mount of a file on a 1-layer and on an 8-layer chain (the file written in 8
#     slices, a snapshot after each: every layer holds one slice) against the same
#     bytes in a single-layer file (target: within 10%), and natively;
#  4. snapshot time of a bundle idle and under a running writer (fio 4 KiB random
#     writes, psync, to the bundle's image through the mount), and the writer's
#     longest write while the snapshots were taken.
#
# Run on demand (not in CI), as root:
#
#   bench/layers.sh [--quick] [--reps N] [--out FILE] [--keep]
#
#   --quick    smaller sizes (4 GiB image with 1 GiB of data, 512 MiB read files,
#              3 s fio runs, 2 repetitions); a few minutes. The full run needs
#              about 30 GiB free and takes 15-30 minutes.
#   --reps N   repetitions (default 3, quick 2); the median is used.
#   --out FILE also write the report (markdown) to FILE.
#   --keep     keep the work directory.
#
# Environment: VMB_BIN (default ./build/vmbundlefs), BENCH_DIR (default /var/tmp,
# must be a disk, not tmpfs), VMB_MOUNT_OPTS (extra arguments for the mount).
#
# Ratios are vmbundlefs / baseline of the measured quantity: for times lower is
# better, for MiB/s and IOPS higher is better. Absolute figures on a shared machine
# are noise; the ratios, measured in the same minutes, are the result. Rows whose
# command this build lacks say "n/a".
set -u -o pipefail
export LC_ALL=C

PROG=layers
die() { echo "$PROG: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

QUICK=0 REPS='' OUT='' KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; shift ;;
	--reps=*) REPS=${1#--reps=} ;;
	--out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift ;;
	--out=*) OUT=${1#--out=} ;;
	--keep) KEEP=1 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
	shift
done
[ -n "$REPS" ] || REPS=$([ $QUICK = 1 ] && echo 2 || echo 3)
case $REPS in *[!0-9]*|0) die "--reps needs a positive number" ;; esac

MiB=$((1024 * 1024))
if [ $QUICK = 1 ]; then
	IMG_MB=4096 DATA_MB=1024 READ_MB=512 FIO_T=3 CLONES=10 SNAPS=3
else
	IMG_MB=16384 DATA_MB=8192 READ_MB=2048 FIO_T=10 CLONES=10 SNAPS=5
fi
LAYERS=8

[ "$(id -u)" = 0 ] || die "must run as root (drop_caches, mounts)"
VMB_BIN=${VMB_BIN:-./build/vmbundlefs}
case $VMB_BIN in /*) ;; *) VMB_BIN=$PWD/$VMB_BIN ;; esac
[ -x "$VMB_BIN" ] || die "no vmbundlefs binary at '$VMB_BIN' (set VMB_BIN)"
for t in fio jq python3 cp dd du fusermount3 mountpoint timeout awk; do
	command -v $t >/dev/null || die "'$t' is not installed"
done
[ -w /proc/sys/vm/drop_caches ] || die "cannot write /proc/sys/vm/drop_caches"
has_cmd() { "$VMB_BIN" "$1" --help >/dev/null 2>&1; }
HAS_CLONE=0 HAS_SNAP=0
has_cmd clone && HAS_CLONE=1
has_cmd snapshot && HAS_SNAP=1

W='' SHM='' MNT='' VMB_PID='' FIO_PID=''
umount_vmb() {
	[ -n "$MNT" ] && mountpoint -q "$MNT" 2>/dev/null || return 0
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
	[ -n "$VMB_PID" ] && wait "$VMB_PID" 2>/dev/null
	VMB_PID=''
}
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$FIO_PID" ] && kill "$FIO_PID" 2>/dev/null && wait "$FIO_PID" 2>/dev/null
	umount_vmb
	[ -n "$SHM" ] && rm -rf -- "$SHM"
	if [ -n "$W" ]; then
		if [ $KEEP = 1 ] || mountpoint -q "$MNT" 2>/dev/null; then
			log "work directory kept: $W"
		else
			rm -rf --one-file-system -- "$W"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BASE=${BENCH_DIR:-/var/tmp}
W=$(mktemp -d "$BASE/vmblayers.XXXXXX") || die "cannot make a work dir under '$BASE'"
SHM=$(mktemp -d /dev/shm/vmblayers.XXXXXX) || die "cannot make a dir in /dev/shm"
STORE=$W/store MNT=$W/mnt NAT=$W/native
mkdir -p "$MNT" "$NAT"
[ "$(stat -f -c %T "$W")" != tmpfs ] || die "BENCH_DIR '$BASE' is tmpfs; use a disk"
need_mb=$((DATA_MB * 2 + READ_MB * 5 + 2048))
free_mb=$(df -Pm "$W" | awk 'NR==2{print $4}')
[ "$free_mb" -ge "$need_mb" ] || die "need about $need_mb MiB free in '$BASE', have $free_mb"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

drop3() { sync; echo 3 >/proc/sys/vm/drop_caches; }
drop1() { sync; echo 1 >/proc/sys/vm/drop_caches; }
declare -A S
add() { S[$1]="${S[$1]:-} $2"; }
med() {
	printf '%s\n' ${S[$1]:-} | awk 'NF' | sort -g | awk '{a[NR]=$1}
		END { if (NR == 0) exit; if (NR % 2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
maxof() { printf '%s\n' ${S[$1]:-} | awk 'NF' | sort -g | tail -n 1; }
ELAPSED=0
timed() { # CAP CMD...: wall seconds in ELAPSED
	local cap=$1 t0 rc
	shift
	t0=$EPOCHREALTIME
	timeout -k 10 "$cap" "$@"
	rc=$?
	ELAPSED=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.4f", b-a}')
	return $rc
}
FAILS=
fail_note() { FAILS="$FAILS$1"$'\n'; log "WARNING: $1"; }

mount_vmb() {
	# shellcheck disable=SC2086
	"$VMB_BIN" mount -f ${VMB_MOUNT_OPTS:-} "$STORE" "$MNT" >>"$W/vmbundlefs.log" 2>&1 &
	VMB_PID=$!
	local i
	for i in $(seq 200); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$VMB_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -20 "$W/vmbundlefs.log" >&2
	die "vmbundlefs did not mount"
}
alive() {
	kill -0 "$VMB_PID" 2>/dev/null && mountpoint -q "$MNT" ||
		{ tail -20 "$W/vmbundlefs.log" >&2; die "the vmbundlefs daemon died (log above)"; }
}
vmb() { "$VMB_BIN" "$@" >>"$W/cmd.out" 2>"$W/cmd.err"; }

# fill FILE SIZE_MB DATA_MB: a sparse file of SIZE_MB with DATA_MB of random-looking
# data in 1 MiB runs spread evenly over it, fsynced.
fill() {
	python3 - "$1" "$2" "$3" <<'EOF' || die "cannot write $1"
import os, struct, sys
path, size_mb, data_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
M = 1 << 20
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, size_mb * M)
buf = bytearray(os.urandom(M))
stride = size_mb // data_mb
for i in range(data_mb):
    for k in range(0, M, 4096):   # no two blocks alike
        struct.pack_into("<QQ", buf, k, i, k)
    os.pwrite(fd, buf, i * stride * M)
os.fsync(fd)
os.close(fd)
EOF
}

log "work dir $W; mode $([ $QUICK = 1 ] && echo quick || echo full), $REPS reps; load $LOAD0"
"$VMB_BIN" init "$STORE" >>"$W/vmbundlefs.log" 2>&1 || die "vmbundlefs init failed"
mkdir "$STORE/src"
log "writing src/disk.img ($IMG_MB MiB, $DATA_MB MiB of data) in the store"
fill "$STORE/src/disk.img" "$IMG_MB" "$DATA_MB"
head -c $((64 * 1024)) /dev/urandom >"$STORE/src/nvram.bin"
printf 'cpus 4\nmemory 8G\n' >"$STORE/src/config"
SRCIMG=$STORE/src/disk.img
H=$(awk -v m=$IMG_MB 'BEGIN{printf "%g GiB", m / 1024}')
D=$(awk -v m=$DATA_MB 'BEGIN{printf "%g GiB", m / 1024}')

# ---------------------------------------------------------------- 1: clone vs cp
log "cp of src/disk.img on the native filesystem"
for r in $(seq "$REPS"); do
	for how in auto never; do
		rm -f -- "$NAT/copy.img"
		drop3
		timed 3600 sh -c 'cp --reflink="$1" -- "$2" "$3" && sync "$3"' _ "$how" "$SRCIMG" "$NAT/copy.img" ||
			fail_note "cp --reflink=$how failed"
		add "cp-$how" "$ELAPSED"
		log "  cp --reflink=$how: ${ELAPSED}s"
	done
done
COPY_B=$(du -s -B1 "$NAT/copy.img" | cut -f1)
rm -f -- "$NAT/copy.img"
sync

mount_vmb
stat "$MNT/src/disk.img" >/dev/null || die "cannot stat src/disk.img through the mount"
if [ $HAS_CLONE = 1 ]; then
	log "$CLONES clones of src through the mount (by the daemon)"
	sync
	DU0=$(du -s -B1 "$STORE" | cut -f1)
	for i in $(seq "$CLONES"); do
		drop3
		alive
		if timed 600 "$VMB_BIN" clone "$MNT" src "c$i" >>"$W/cmd.out" 2>"$W/cmd.err"; then
			if [ "$i" = 1 ]; then add clone-first "$ELAPSED"; else add clone-next "$ELAPSED"; fi
			log "  clone $i: ${ELAPSED}s"
		else
			fail_note "clone $i failed: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
		fi
	done
	sync
	DU1=$(du -s -B1 "$STORE" | cut -f1)
	add space-clones $((DU1 - DU0))
	add space-copies $((COPY_B * CLONES))
	cmp -s -n $((64 * MiB)) -- "$MNT/src/disk.img" "$MNT/c1/disk.img" ||
		fail_note "the clone's first 64 MiB differ from the source's"
	[ "$(stat -c %s "$MNT/c$CLONES/disk.img")" = "$(stat -c %s "$SRCIMG")" ] ||
		fail_note "the last clone's size differs from the source's"
	# the same without a mount: the command works on the store itself
	umount_vmb
	drop3
	if timed 600 "$VMB_BIN" clone "$STORE" src offline >>"$W/cmd.out" 2>"$W/cmd.err"; then
		add clone-offline "$ELAPSED"
		log "  clone without a mount: ${ELAPSED}s"
	else
		fail_note "clone without a mount failed: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
	fi
	mount_vmb
else
	log "no 'clone' command in $VMB_BIN: clone rows are n/a"
fi

# ---------------------------------------------------------------- 3: reads through chains
SRC=$SHM/random.bin
head -c $((READ_MB * MiB)) /dev/urandom >"$SRC" || die "cannot fill $SRC"
layer_files() { ls "$STORE/.vmbundlefs/layers/"*.data 2>/dev/null | sort; }
log "writing r0, r1, r8 ($READ_MB MiB each) through the mount"
mkdir "$MNT/r0" "$MNT/r1" "$MNT/r8" || die "cannot make the read bundles"
dd if="$SRC" of="$MNT/r0/disk.img" bs=1M conv=fsync status=none || die "writing r0 failed"
dd if="$SRC" of="$MNT/r1/disk.img" bs=1M conv=fsync status=none || die "writing r1 failed"
DEPTH1=0 DEPTH8=0 L1='' L8=''
if [ $HAS_SNAP = 1 ]; then
	before=$(layer_files)
	vmb snapshot "$MNT" r1 one || fail_note "snapshot of r1 failed: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
	L1=$(comm -13 <(echo "$before") <(layer_files))
	DEPTH1=$(echo "$L1" | awk 'NF' | wc -l)
	before=$(layer_files)
	slice=$((READ_MB / LAYERS))
	for k in $(seq 0 $((LAYERS - 1))); do
		dd if="$SRC" of="$MNT/r8/disk.img" bs=1M seek=$((k * slice)) skip=$((k * slice)) \
			count=$slice conv=notrunc,fsync status=none || die "writing r8 slice $k failed"
		vmb snapshot "$MNT" r8 "s$k" || fail_note "snapshot $k of r8 failed: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
	done
	L8=$(comm -13 <(echo "$before") <(layer_files))
	DEPTH8=$(echo "$L8" | awk 'NF' | wc -l)
	[ "$DEPTH1" = 1 ] || fail_note "r1's snapshot made $DEPTH1 layers, not 1"
	[ "$DEPTH8" = $LAYERS ] || fail_note "r8's snapshots made $DEPTH8 layers, not $LAYERS"
else
	log "no 'snapshot' command: r1 and r8 are single-layer files too (rows n/a)"
	dd if="$SRC" of="$MNT/r8/disk.img" bs=1M conv=fsync status=none || die "writing r8 failed"
fi
for b in r0 r1 r8; do
	cmp -s -- "$SRC" "$MNT/$b/disk.img" || fail_note "$b/disk.img does not read back as written"
done
# warm TARGET: the backing bytes of the target in the page cache, the mount's cold
warm() {
	drop1
	case $1 in
	native|r0) cat "$STORE/r0/disk.img" >/dev/null ;;
	r1) cat "$STORE/r1/disk.img" $L1 >/dev/null ;;
	r8) cat "$STORE/r8/disk.img" $L8 >/dev/null ;;
	esac
}
path_of() { case $1 in native) echo "$STORE/r0/disk.img" ;; *) echo "$MNT/$1/disk.img" ;; esac; }
order() {
	case $((($1 - 1) % 4)) in
	0) echo "native r0 r1 r8" ;; 1) echo "r8 native r0 r1" ;;
	2) echo "r1 r8 native r0" ;; 3) echo "r0 r1 r8 native" ;;
	esac
}
log "sequential read and 4 KiB random read"
for r in $(seq "$REPS"); do
	for tg in $(order "$r"); do
		f=$(path_of "$tg")
		warm "$tg"; alive
		timed 600 dd if="$f" of=/dev/null bs=1M 2>"$W/dd.err" || fail_note "dd of $f failed"
		add "seq.$tg" "$(awk -v s="$ELAPSED" -v m=$READ_MB 'BEGIN{printf "%.1f", m / s}')"
		warm "$tg"; alive
		timed $((FIO_T * 4 + 60)) fio --name=randread --filename="$f" --rw=randread --bs=4k \
			--ioengine=psync --iodepth=1 --numjobs=1 --size=$((READ_MB * MiB)) \
			--runtime="$FIO_T" --time_based=1 --direct=0 --invalidate=0 \
			--output-format=json --output="$W/fio.json" >"$W/fio.err" 2>&1 ||
			fail_note "fio randread on $tg failed: $(tail -3 "$W/fio.err" | tr '\n' ' ')"
		add "rand.$tg" "$(jq -r '.jobs[0].read.iops' "$W/fio.json" 2>/dev/null | awk '{printf "%.0f", $1}')"
		log "  $tg: seq $(echo "${S[seq.$tg]}" | awk '{print $NF}') MiB/s, randread $(echo "${S[rand.$tg]}" | awk '{print $NF}') IOPS"
	done
done

# ---------------------------------------------------------------- 4: snapshot under a writer
WMAX=''
if [ $HAS_SNAP = 1 ]; then
	log "snapshots of bundle w, idle and under fio randwrite"
	mkdir "$MNT/w"
	dd if="$SRC" of="$MNT/w/disk.img" bs=1M count=$((READ_MB / 2)) conv=fsync status=none || die "writing w failed"
	for i in $(seq "$SNAPS"); do
		alive
		if timed 600 "$VMB_BIN" snapshot "$MNT" w "idle$i" >>"$W/cmd.out" 2>"$W/cmd.err"; then
			add snap-idle "$ELAPSED"
		else
			fail_note "idle snapshot $i failed: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
		fi
		sleep 1
	done
	fio --name=writer --filename="$MNT/w/disk.img" --rw=randwrite --bs=4k --ioengine=psync \
		--iodepth=1 --size=$((READ_MB / 2 * MiB)) --runtime=$((SNAPS * 3 + 30)) --time_based=1 \
		--output-format=json --output="$W/fiow.json" >"$W/fiow.err" 2>&1 &
	FIO_PID=$!
	sleep 3
	for i in $(seq "$SNAPS"); do
		alive
		if timed 600 "$VMB_BIN" snapshot "$MNT" w "busy$i" >>"$W/cmd.out" 2>"$W/cmd.err"; then
			add snap-busy "$ELAPSED"
			log "  snapshot under the writer: ${ELAPSED}s"
		else
			fail_note "snapshot $i under the writer failed: $(tail -2 "$W/cmd.err" | tr '\n' ' ')"
		fi
		sleep 1
	done
	kill -INT "$FIO_PID" 2>/dev/null
	wait "$FIO_PID" 2>/dev/null
	FIO_PID=''
	WMAX=$(jq -r '.jobs[0].write.clat_ns.max' "$W/fiow.json" 2>/dev/null | awk '{printf "%.3f", $1 / 1e9}')
	WIOPS=$(jq -r '.jobs[0].write.iops' "$W/fiow.json" 2>/dev/null | awk '{printf "%.0f", $1}')
fi
alive
umount_vmb

# ---------------------------------------------------------------- the report
fmt() { # value kind
	[ -n "$1" ] || { echo "n/a"; return; }
	case $2 in
	time) awk -v x="$1" 'BEGIN{ if (x < 1) printf "%.1f ms", x * 1000; else printf "%.2f s", x}' ;;
	rate) awk -v x="$1" 'BEGIN{printf "%.0f MiB/s", x}' ;;
	iops) awk -v x="$1" 'BEGIN{printf "%.0f IOPS", x}' ;;
	bytes) awk -v x="$1" 'BEGIN{ if (x >= 1073741824) printf "%.2f GiB", x / 1073741824; else printf "%.1f MiB", x / 1048576}' ;;
	esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "" && b > 0) printf "%.4g", a / b; else print "" }'; }
fmt_ratio() { [ -n "$1" ] && awk -v r="$1" 'BEGIN{ if (r < 0.01) printf "%.2gx", r; else printf "%.3gx", r}' || echo n/a; }
verdict() { # value op limit
	[ -n "$1" ] || { echo n/a; return; }
	awk -v r="$1" -v op="$2" -v l="$3" 'BEGIN{ok = (op == "<=" && r <= l) || (op == ">=" && r >= l); print ok ? "PASS" : "MISS"}'
}
TABLE=$W/table.md
{
	echo "| benchmark | baseline | baseline value | vmbundlefs | ratio | target | result |"
	echo "|---|---|---|---|---|---|---|"
} >"$TABLE"
row() { # name baseline-name baseline-value value kind target-text verdict-input op limit
	local rt
	rt=$(ratio "$4" "$3")
	local v
	if [ "$6" = information ]; then v=-; else v=$(verdict "${7:-$rt}" "$8" "$9"); fi
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(fmt "$3" "$5")" "$(fmt "$4" "$5")" \
		"$(fmt_ratio "$rt")" "$6" "$v" >>"$TABLE"
}
ca=$(med cp-auto) cn=$(med cp-never) c1=$(med clone-first) cx=$(med clone-next) co=$(med clone-offline)
row "clone of a $H image ($D data), first (freezes the source), mounted" "cp --reflink=auto + fsync" "$ca" "$c1" time "≤100 ms (O(1))" "$c1" "<=" 0.1
row "same, against a plain copy" "cp --reflink=never + fsync" "$cn" "$c1" time "≤100 ms (O(1))" "$c1" "<=" 0.1
row "clone of the same source again (median of $((CLONES - 1)))" "cp --reflink=auto + fsync" "$ca" "$cx" time "≤100 ms" "$cx" "<=" 0.1
row "clone without a mount (the store itself)" "cp --reflink=auto + fsync" "$ca" "$co" time "≤100 ms" "$co" "<=" 0.1
sc=$(med space-clones) sp=$(med space-copies)
row "space used by $CLONES clones (du of the store, after - before)" "$CLONES copies (du of one x $CLONES)" "$sp" "$sc" bytes "≤1% of the copies" "$(ratio "$sc" "$sp")" "<=" 0.01
for k in seq rand; do
	kind=rate; [ $k = rand ] && kind=iops
	what="sequential read $READ_MB MiB, dd bs=1M (mount cold, backing warm)"
	[ $k = rand ] && what="fio 4 KiB randread, psync, QD1, $READ_MB MiB file, ${FIO_T}s"
	b=$(med "$k.r0")
	row "$what: single-layer file through the mount" "native (backing file)" "$(med "$k.native")" "$b" $kind "information" "" ">=" 0
	v1=$(med "$k.r1") v8=$(med "$k.r8")
	[ "$DEPTH1" = 1 ] || v1=''
	[ "$DEPTH8" = $LAYERS ] || v8=''
	row "same, 1-layer chain (the file frozen once, empty delta)" "single-layer file, mount" "$b" "$v1" $kind "≥0.9x (within 10%)" "" ">=" 0.9
	row "same, 8-layer chain (one slice per layer)" "single-layer file, mount" "$b" "$v8" $kind "≥0.9x (within 10%)" "" ">=" 0.9
done
si=$(med snap-idle) sb=$(med snap-busy) sm=$(maxof snap-busy)
row "snapshot of a bundle (one $((READ_MB / 2)) MiB image), median of $SNAPS, under fio randwrite" "same, idle" "$si" "$sb" time "information" "" ">=" 0
row "same, slowest of $SNAPS under the writer" "same, idle" "$si" "$sm" time "information" "" ">=" 0
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
{
	echo "## vmbundlefs layers benchmark ($([ $QUICK = 1 ] && echo quick || echo full), median of $REPS; $(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "host: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM;" \
		"work dir on $(df -P "$W" | awk 'NR==2{print $1}') ($(stat -f -c %T "$W")); $("$VMB_BIN" --version | head -1);" \
		"$(cp --version | head -1); $(fio --version); load average at the start $LOAD0, at the end $LOAD1"
	echo
	cat "$TABLE"
	echo
	echo "Ratios are vmbundlefs / baseline (time: lower is better; MiB/s, IOPS: higher is better)." \
		"Clones and copies start with cold caches (sync + drop_caches 3); a copy's time includes its fsync." \
		"Reads: drop_caches 1, then the target's backing bytes (its file and its layers' .data files) read natively, so the mount's cache is cold and the disk is not measured." \
		"Chains: r1 = the file after one snapshot (depth $DEPTH1), r8 = written in $LAYERS slices with a snapshot after each (depth $DEPTH8)."
	[ -n "$WMAX" ] && echo "Writer under the snapshots: $WIOPS IOPS overall, its longest 4 KiB write took $WMAX s."
	if [ -n "$FAILS" ]; then
		echo
		echo "Problems seen:"
		printf '%s' "$FAILS" | sed 's/^/- /'
	fi
} >"$W/report.md"
cat "$W/report.md"
if [ -n "$OUT" ]; then cp -- "$W/report.md" "$OUT" || die "cannot write '$OUT'"; fi
exit 0
