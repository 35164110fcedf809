#!/bin/bash
# contrib/setup.sh - set up a fresh Debian 12 machine for vmbundlefs, then run the
# demo or the whole test job.  Run as root from a checkout:
#
#   contrib/setup.sh demo    install build deps, build, run contrib/demo.sh
#   contrib/setup.sh test    install build and test deps, then
#                              (a) configure --enable-werror, make, make check
#                              (b) a second build dir with --enable-sanitizers
#                                  (ASan+UBSan, leak checking on), make check
#                              (c) make distcheck in the first build dir
#                              (d) a summary; the last line is
#                                  "N passed, N failed, N skipped"
#                            and exits 0 only when nothing failed.
#   contrib/setup.sh build   install build deps and build only.
#
# Environment:
#   BUILD_DIR        build directory (default: build/ in the checkout)
#   SAN_BUILD_DIR    sanitizer build directory (default: "$BUILD_DIR-san")
#   JOBS             parallel jobs for make (default: nproc)
#   VMB_STAGES       test stages to run (default: "werror san distcheck")
#   VMB_TEST_BUDGET  seconds the whole test job may take before stages are cut
#                    short (default: 5100, i.e. 85 minutes)
#   VMB_SKIP_APT=1   never call apt-get
set -uo pipefail

START_TIME=$(date +%s)
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$SRCDIR" || exit 1

MODE=${1:-}
case $MODE in
	demo | test | build) ;;
	-h | --help | help)
		sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"
		exit 0
		;;
	*)
		echo "usage: $0 demo|test|build" >&2
		exit 2
		;;
esac

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILD_DIR=${BUILD_DIR:-$SRCDIR/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
SAN_BUILD_DIR=${SAN_BUILD_DIR:-$BUILD_DIR-san}
case $SAN_BUILD_DIR in /*) ;; *) SAN_BUILD_DIR=$PWD/$SAN_BUILD_DIR ;; esac

BUILD_PKGS=(build-essential autoconf automake libtool pkg-config libfuse3-dev fuse3
	libarchive-dev libcurl4-openssl-dev libssl-dev)
TEST_PKGS=(clang libclang-rt-14-dev rsync bindfs fio qemu-utils qemu-system-x86 zip attr libarchive-tools e2fsprogs util-linux
	procps psmisc restic borgbackup nginx-light openssl curl strace)
# Node.js and npm for the S3 server of the tests: Debian's nodejs + npm, unless a node with
# its own npm is already installed (NodeSource's nodejs ships npm and conflicts with
# Debian's npm package: asking apt for npm there fails the whole install).
NODE_PKGS=(nodejs npm)
# npm modules of the tests (tests/fetch-s3.sh: the S3 server s3rver), in a directory of
# their own outside the checkout; the tests look there (VMB_NPM_DIR).
NPM_PKGS=(s3rver@3.7.1)
NPM_DIR=${VMB_NPM_DIR:-/var/tmp/vmbundlefs-npm}

say() { printf '\n=== %s\n' "$*"; }
die() {
	printf 'setup.sh: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------- packages

pkg_installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

install_packages() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "all ${#} packages already installed; skipping apt-get"
		return 0
	fi
	if [ "${VMB_SKIP_APT:-0}" = 1 ]; then
		echo "setup.sh: warning: VMB_SKIP_APT=1 but missing: ${missing[*]}" >&2
		return 0
	fi
	say "installing: ${missing[*]}"
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "run as root (missing packages: ${missing[*]})"
		sudo=(sudo)
	fi
	"${sudo[@]}" apt-get update || die "apt-get update failed"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
		--no-install-recommends "${missing[@]}" </dev/null || die "apt-get install failed"
}

# ---------------------------------------------------------------- building

# autoreconf once per run, in the source tree (VPATH builds need an unconfigured one).
AUTORECONF_DONE=0
bootstrap() {
	[ "$AUTORECONF_DONE" = 1 ] && return 0
	if [ -f "$SRCDIR/config.status" ]; then
		echo "setup.sh: $SRCDIR is configured in-tree; run 'make distclean' there first" >&2
		return 1
	fi
	say "autoreconf -fi"
	mkdir -p "$SRCDIR/m4" || return 1
	(cd "$SRCDIR" && autoreconf -fi) || return 1
	AUTORECONF_DONE=1
}

# configure_in DIR [configure args...]: configure a build directory (VPATH).
configure_in() {
	local dir=$1
	shift
	mkdir -p "$dir" || return 1
	say "configure $* (in $dir)"
	(cd "$dir" && "$SRCDIR/configure" "$@")
}

# ---------------------------------------------------------------- demo / build

if [ "$MODE" = demo ] || [ "$MODE" = build ]; then
	set -e
	install_packages "${BUILD_PKGS[@]}"
	bootstrap
	configure_in "$BUILD_DIR"
	say "make -j$JOBS (in $BUILD_DIR)"
	make -C "$BUILD_DIR" -j"$JOBS"
	[ -x "$BUILD_DIR/vmbundlefs" ] || die "build produced no $BUILD_DIR/vmbundlefs"
	if [ "$MODE" = demo ]; then
		say "contrib/demo.sh"
		VMB_BIN="$BUILD_DIR/vmbundlefs" exec bash "$SRCDIR/contrib/demo.sh"
	fi
	exit 0
fi

# ---------------------------------------------------------------- test job

install_packages "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	say "node $(node --version 2>/dev/null) and npm $(npm --version 2>/dev/null) already present"
else
	# optional: without npm, the tests that need the S3 server skip (exit 77) and say so
	(install_packages "${NODE_PKGS[@]}") ||
		echo "setup.sh: warning: could not install ${NODE_PKGS[*]}: the S3-server tests will skip" >&2
fi

install_npm() {
	local p missing=()
	for p in "${NPM_PKGS[@]}"; do
		[ -f "$NPM_DIR/node_modules/${p%@*}/package.json" ] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if ! command -v npm >/dev/null 2>&1; then
		echo "setup.sh: warning: no npm: tests that need ${missing[*]} will skip" >&2
		return 0
	fi
	say "npm install ${missing[*]} (in $NPM_DIR)"
	mkdir -p "$NPM_DIR" && (cd "$NPM_DIR" &&
		{ [ -f package.json ] || npm init -y >/dev/null; } &&
		npm install --no-audit --no-fund "${missing[@]}" </dev/null) ||
		echo "setup.sh: warning: npm install failed: tests that need ${missing[*]} will skip" >&2
}
install_npm
export VMB_NPM_DIR=$NPM_DIR

STAGES=${VMB_STAGES:-werror san distcheck}
BUDGET=${VMB_TEST_BUDGET:-5100}
DEADLINE=$((START_TIME + BUDGET))

# Tests get a private TMPDIR so that whatever they leave behind (mounts included)
# can be found and cleaned up, and so that parallel runs don't collide.
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmbundlefs-ci.XXXXXX") || die "mktemp failed"
export TMPDIR=$TEST_TMP
export DISTCHECK_CONFIGURE_FLAGS=--enable-werror
# The Makefile puts halt_on_error=1 etc. first; ours come last and so win.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1"

N_PASS=0 N_FAIL=0 N_SKIP=0
FAILED=()       # "label|log file" of every failure
STAGE_NOTES=()  # one line per stage for the summary

# Unmount every FUSE mount below our build or temporary directories (left by a
# test that was killed, or by a timeout), so that nothing hangs and rm works.
cleanup_mounts() {
	local mnt fstype prefix
	while read -r _ mnt fstype _; do
		case $fstype in fuse | fuse.* | fuseblk) ;; *) continue ;; esac
		mnt=$(printf '%b' "$mnt")
		for prefix in "$TEST_TMP" "$BUILD_DIR" "$SAN_BUILD_DIR"; do
			case $mnt in
				"$prefix" | "$prefix"/*)
					echo "setup.sh: unmounting leftover FUSE mount $mnt" >&2
					fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
					;;
			esac
		done
	done </proc/self/mounts
}

final_cleanup() {
	cleanup_mounts
	rm -rf --one-file-system "$TEST_TMP" 2>/dev/null || true
}
trap 'final_cleanup >/dev/null 2>&1' EXIT
trap 'exit 130' INT TERM
cleanup_mounts   # left in the build directories by an earlier, killed run

# Seconds a stage may use: a share of what is left of the budget.
stage_timeout() {
	local share=$1 left
	left=$((DEADLINE - $(date +%s) - 60))
	[ "$left" -lt 60 ] && left=60
	echo $((left * share / 100))
}

# left_until END: seconds from now until END, at least 30.
left_until() {
	local left=$(($1 - $(date +%s)))
	[ "$left" -lt 30 ] && left=30
	echo "$left"
}

# run_logged LOG TIMEOUT cmd...: run with a time limit, output to the terminal
# and LOG; returns the command's status (124 on timeout).
run_logged() {
	local log=$1 limit=$2
	shift 2
	mkdir -p "$(dirname "$log")"
	echo "+ $* (time limit ${limit}s)" | tee -a "$log"
	timeout -k 30 "$limit" "$@" </dev/null 2>&1 | tee -a "$log"
	return "${PIPESTATUS[0]}"
}

# fail LABEL [LOG]
fail() {
	N_FAIL=$((N_FAIL + 1))
	FAILED+=("$1|${2:-}")
}

# collect_trs DIR LABEL: count the results of every test of a build dir.
# Sets COLLECTED_FAILS to the number of failures found.
COLLECTED_FAILS=0
collect_trs() {
	local dir=$1 label=$2 trs res name
	COLLECTED_FAILS=0
	[ -d "$dir" ] || return 0
	while IFS= read -r -d '' trs; do
		name=${trs#"$dir"/}
		name=${name%.trs}
		while IFS= read -r res; do
			case $res in
				PASS | XFAIL) N_PASS=$((N_PASS + 1)) ;;
				SKIP) N_SKIP=$((N_SKIP + 1)) ;;
				FAIL | ERROR | XPASS)
					fail "[$label] $name ($res)" "${trs%.trs}.log"
					COLLECTED_FAILS=$((COLLECTED_FAILS + 1))
					;;
				*) ;;
			esac
		done < <(sed -n 's/^:test-result:[[:space:]]*\([A-Z]*\).*/\1/p' "$trs")
	done < <(find "$dir" -path "$dir/vmbundlefs-*" -prune -o -name '*.trs' -print0 | sort -z)
}

# fresh_dir DIR: empty a build directory, refusing anything that does not look
# like one (the source tree, /, a directory with other things in it).
fresh_dir() {
	local dir=$1
	case "$SRCDIR/" in "$dir"/*) die "refusing to wipe '$dir': it contains the source tree" ;; esac
	if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/config.log" ] &&
		! ls "$dir"/setup-*.log >/dev/null 2>&1; then
		die "refusing to wipe '$dir': not empty and not a build directory"
	fi
	rm -rf --one-file-system "$dir" 2>/dev/null || {
		chmod -R u+w "$dir" 2>/dev/null
		rm -rf --one-file-system "$dir"
	} || die "cannot remove '$dir'"
	mkdir -p "$dir" || die "cannot create '$dir'"
}

# build_and_check LABEL DIR SHARE configure-args...: a clean build and its tests.
build_and_check() {
	local label=$1 dir=$2 share=$3 log rc t0 end
	shift 3
	log=$dir/setup-$label.log
	t0=$(date +%s)
	end=$((t0 + $(stage_timeout "$share")))
	fresh_dir "$dir"
	say "stage $label: build in $dir"
	# (not in a pipeline: bootstrap records that it ran)
	if ! bootstrap >>"$log" 2>&1; then
		tail -n 30 "$log"
		fail "[$label] autoreconf" "$log"
		STAGE_NOTES+=("$label: autoreconf failed")
		return 1
	fi
	# shellcheck disable=SC2016 # expanded by the inner bash
	if ! run_logged "$log" "$(left_until "$end")" bash -c 'cd "$1" && shift && "$@"' _ "$dir" \
		"$SRCDIR/configure" "$@"; then
		fail "[$label] configure" "$log"
		STAGE_NOTES+=("$label: configure failed")
		return 1
	fi
	if ! run_logged "$log" "$(left_until "$end")" make -C "$dir" -j"$JOBS"; then
		fail "[$label] make (build failed)" "$log"
		STAGE_NOTES+=("$label: build failed")
		return 1
	fi
	say "stage $label: make check"
	run_logged "$log" "$(left_until "$end")" make -C "$dir" -j"$JOBS" check
	rc=$?
	cleanup_mounts
	collect_trs "$dir" "$label"
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		fail "[$label] make check timed out" "$log"
	elif [ "$rc" -ne 0 ] && [ "$COLLECTED_FAILS" -eq 0 ]; then
		fail "[$label] make check failed (exit $rc) outside any test" "$log"
	fi
	STAGE_NOTES+=("$label: make check exit $rc, $(($(date +%s) - t0))s")
	return 0
}

WERROR_BUILT=0
for stage in $STAGES; do
	case $stage in
		werror)
			build_and_check werror "$BUILD_DIR" 35 --enable-werror && WERROR_BUILT=1
			;;
		san)
			build_and_check san "$SAN_BUILD_DIR" 50 --enable-sanitizers
			;;
		distcheck)
			say "stage distcheck (in $BUILD_DIR)"
			log=$BUILD_DIR/setup-distcheck.log
			t0=$(date +%s)
			if [ "$WERROR_BUILT" != 1 ]; then
				fail "distcheck (not run: the --enable-werror build failed or did not run)"
				STAGE_NOTES+=("distcheck: not run")
				continue
			fi
			run_logged "$log" "$(stage_timeout 100)" make -C "$BUILD_DIR" -j"$JOBS" distcheck
			rc=$?
			cleanup_mounts
			if [ "$rc" -eq 0 ]; then
				N_PASS=$((N_PASS + 1))
			else
				fail "distcheck (exit $rc)" "$log"
				# Each failing test of distcheck's own make check, with its own log
				# (the summary then shows why it failed, not only that it did).
				while IFS= read -r -d '' trs; do
					if grep -Eq '^:test-result: *(FAIL|ERROR|XPASS)' "$trs"; then
						echo "distcheck: failing test ${trs%.trs}"
						tail -n 30 "${trs%.trs}.log" 2>/dev/null | sed 's/^/    /'
						fail "[distcheck] ${trs##*/_build/sub/}" "${trs%.trs}.log"
					fi
				done < <(find "$BUILD_DIR" -path "$BUILD_DIR/vmbundlefs-*" -name '*.trs' -print0 2>/dev/null)
			fi
			STAGE_NOTES+=("distcheck: exit $rc, $(($(date +%s) - t0))s")
			;;
		*)
			die "unknown stage '$stage' in VMB_STAGES"
			;;
	esac
done

final_cleanup
trap - EXIT

say "summary"
for note in "${STAGE_NOTES[@]}"; do
	echo "  $note"
done
if [ ${#FAILED[@]} -gt 0 ]; then
	echo
	echo "failures:"
	for f in "${FAILED[@]}"; do
		echo "  FAIL: ${f%%|*}"
	done
	for f in "${FAILED[@]}"; do
		flog=${f#*|}
		if [ -z "$flog" ] || [ ! -f "$flog" ]; then continue; fi
		echo
		echo "--- ${f%%|*}: $flog"
		# The failing checks and sanitizer reports first (they may be far from the end).
		grep -E '^(FAIL|not ok|ERROR)|ERROR: [A-Za-z]*Sanitizer|runtime error:|^SUMMARY: ' \
			"$flog" 2>/dev/null | head -n 20 | sed 's/^/  > /'
		echo "  (last lines:)"
		tail -n 40 "$flog" | sed 's/^/  | /'
	done
fi
echo "total time: $(($(date +%s) - START_TIME))s"
echo "$N_PASS passed, $N_FAIL failed, $N_SKIP skipped"
[ "$N_FAIL" -eq 0 ]
