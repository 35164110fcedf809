# tests/lock-lib.sh: helpers shared by the lock tests (sourced after tests/lib.sh).
#
#   lh ARGS...            run tests/helpers/lockhelper
#   lhr ARGS...           same, results only (timestamps stripped)
#   lh_bg NAME ARGS...    start it in the background: output $T/NAME.out, pid $T/NAME.pid
#   wait_out NAME ERE [S] wait (default 10 s) for a line of NAME's output matching ERE
#   out_of NAME           NAME's results so far (timestamps stripped)
#   stamp_of NAME ERE     the timestamp of NAME's first line matching ERE
#   lh_kill NAME [SIG]    signal it (default KILL) and reap it
#   lh_intr NAME N [S]    SIGUSR2 once it waits in a lock call, until N lines are out
#   lock_waiter FILE      someone waits for a lock on FILE (/proc/locks)
#   lh_cleanup            kill every helper still running (also done at exit)

LH=${VMB_TESTBIN:+$VMB_TESTBIN/helpers/lockhelper}
_LH_PIDS=

lh() { "$LH" "$@"; }
lhr() { "$LH" "$@" | sed 's/ t=[0-9.]*$//'; }

lh_bg() {
    local name=$1
    shift
    : >"$T/$name.out"   # here, not in the child: a waiter must not see old output
    : >"$T/$name.err"
    "$LH" "$@" >>"$T/$name.out" 2>>"$T/$name.err" &
    echo $! >"$T/$name.pid"
    _LH_PIDS="$_LH_PIDS $!"
}

pid_of() { cat "$T/$1.pid"; }

wait_out() {
    local n=$(( ${3:-10} * 50 ))
    while [ $n -gt 0 ]; do
        grep -Eq -- "$2" "$T/$1.out" 2>/dev/null && return 0
        sleep 0.02
        n=$((n - 1))
    done
    return 1
}

out_of() { sed 's/ t=[0-9.]*$//' "$T/$1.out" 2>/dev/null; }

stamp_of() { grep -E -- "$2" "$T/$1.out" | head -n 1 | sed 's/.* t=//'; }

# last result line of NAME
last_of() { out_of "$1" | tail -n 1; }

lh_kill() {
    local p n=250 st
    p=$(pid_of "$1") || return 0
    kill -"${2:-KILL}" "$p" 2>/dev/null
    [ "${2:-KILL}" = KILL ] || return 0
    # reap it, but do not hang on a process stuck in the filesystem (5 s)
    while [ $n -gt 0 ]; do
        st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
        [ -z "$st" ] || [ "$st" = Z ] && { wait "$p" 2>/dev/null; return 0; }
        sleep 0.02
        n=$((n - 1))
    done
    say "# process $p ($1) did not die within 5 s of SIGKILL (state $st: stuck in the filesystem?)"
    return 1
} 2>/dev/null   # no "Killed" job notices

# lh_done NAME [S]: wait (default 10 s) for NAME to exit by itself; 1 if it did not.
lh_done() {
    local p n=$(( ${2:-10} * 50 ))
    p=$(pid_of "$1")
    while [ $n -gt 0 ]; do
        kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
        sleep 0.02
        n=$((n - 1))
    done
    return 1
}

lh_cleanup() {
    local p st
    for p in $_LH_PIDS; do kill -9 "$p" 2>/dev/null; done
    for p in $_LH_PIDS; do
        # reap only what has died: a process stuck in a hung mount would block wait
        st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
        [ -z "$st" ] || [ "$st" = Z ] && wait "$p" 2>/dev/null
    done
    _LH_PIDS=
    return 0
} 2>/dev/null

# ms_between T1 T2: milliseconds from T1 to T2 (seconds with decimals)
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d\n", (b - a) * 1000 }'; }

now_s() { date +%s.%N; }

# daemon log lines about a refusal
log_has() { grep -Fq -- "$1" "$T/log"; }

_lh_prereqs() {
    [ -n "$LH" ] && [ -x "$LH" ] || hard_error "helper '$LH' is not built"
}
_lh_prereqs
on_exit lh_cleanup

# wait_lines NAME N [S]: wait (default 10 s) until NAME has printed N lines
wait_lines() {
    local n=$(( ${3:-10} * 50 ))
    while [ $n -gt 0 ]; do
        [ "$(wc -l <"$T/$1.out" 2>/dev/null || echo 0)" -ge "$2" ] && return 0
        sleep 0.02
        n=$((n - 1))
    done
    return 1
}

# System call numbers of fcntl(2) and flock(2) here (lh_blocked); empty if unknown.
case $(uname -m) in
x86_64) _LH_LOCK_SYSCALLS="72 73" ;;
aarch64 | riscv64) _LH_LOCK_SYSCALLS="25 32" ;;
i?86) _LH_LOCK_SYSCALLS="55 221 143" ;;
*) _LH_LOCK_SYSCALLS= ;;
esac

# lh_blocked NAME: NAME's process sleeps (interruptibly) in a lock call: fcntl(2) or
# flock(2), read from /proc/PID/syscall (where that cannot be read, or the numbers
# are not known here, in any system call once 0.3 s have passed: the old guess).
_LH_BLOCKED_SINCE=
lh_blocked() {
    local p st s
    p=$(pid_of "$1") || return 1
    st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
    [ "$st" = S ] || return 1
    if [ -n "$_LH_LOCK_SYSCALLS" ] && read -r s _ <"/proc/$p/syscall" 2>/dev/null; then
        case " $_LH_LOCK_SYSCALLS " in *" $s "*) return 0 ;; esac
        return 1
    fi
    [ -n "$_LH_BLOCKED_SINCE" ] || _LH_BLOCKED_SINCE=$(now_s)
    [ "$(ms_between "$_LH_BLOCKED_SINCE" "$(now_s)")" -ge 300 ]
}

# lh_intr NAME N [S]: interrupt NAME's waiting lock call with SIGUSR2, and wait
# (default 10 s) until NAME has printed N lines; 1 if it has not. The signal is sent
# only once NAME really waits in fcntl/flock (sent earlier it would be lost, or kill
# NAME before its handler is installed), and again every 0.2 s while it still does.
lh_intr() {
    local p n=$(( ${3:-10} * 5 ))
    p=$(pid_of "$1")
    _LH_BLOCKED_SINCE=
    while [ $n -gt 0 ]; do
        [ "$(wc -l <"$T/$1.out")" -ge "$2" ] && return 0
        lh_blocked "$1" && kill -USR2 "$p" 2>/dev/null
        sleep 0.2
        n=$((n - 1))
    done
    [ "$(wc -l <"$T/$1.out")" -ge "$2" ]
}

# lock_waiter FILE: some process (or a daemon's thread, for a lock through a mount:
# FILE is then the backing file) waits for a lock on FILE: a blocked request ("->")
# on FILE's inode in /proc/locks.
lock_waiter() {
    local ino
    ino=$(stat -c %i "$1" 2>/dev/null) || return 1
    awk -v ino="$ino" '
        / -> / { for (i = 1; i <= NF; i++) if ($i ~ ("^[0-9a-f]+:[0-9a-f]+:" ino "$")) f = 1 }
        END { exit !f }' /proc/locks
}
