# tests/remote-lib.sh: servers for the remote-image tests (issue 11), sourced by bash
# after tests/lib.sh (and vmb_setup, which makes $T) or by bench/remote.sh.
#
#   tls_make_ca                      a test CA and a server cert for 127.0.0.1/localhost:
#                                    $TLS_CA (PEM, give it to -o cafile=), $TLS_CERT, $TLS_KEY
#   nginx_start DIR                  nginx serving DIR on 127.0.0.1: HTTP/1.1 on
#                                    $NGINX_URL, HTTPS with HTTP/2 on $NGINX_TLS_URL
#                                    (makes the CA if needed); access log $NGINX_LOG:
#                                      METHOD URI RANGE STATUS BYTES PROTOCOL
#   nginx_stop
#   faultsrv_start DIR [ARGS...]     tests/helpers/faultsrv on $FAULT_URL, access log
#                                    $FAULT_LOG (METHOD PATH RANGE STATUS BYTES FAULT),
#                                    rules from $FAULT_CTL
#   faultsrv_rules [RULE...]         replace the rules (none: faults off), atomically
#   faultsrv_stop
#   shapeproxy_start HOST:PORT [ARGS...]   tests/helpers/shapeproxy in front of a server:
#                                    $PROXY_PORT (default args: 10 ms each way, 1 Gbit/s)
#   shapeproxy_stop
#   s3_start [BUCKET]                the S3-protocol server from npm (s3rver):
#                                    $S3_ENDPOINT, $S3_BUCKET, AWS_* exported; exit 77
#                                    when it is not installed
#   s3_stop
#   log_fetches LOG                  "COUNT PATH" of every 2xx GET of objects/ in LOG,
#                                    one line per path (range requests counted each)
#   log_bytes LOG                    body bytes sent for objects/ in LOG
#   need_tool NAME WHY               exit 77 naming NAME when it is absent
#
# The vmbundlefs side (tests/lib.sh's vmb_setup first):
#   remote_need_cli [CMD...]         exit 77 unless this build has publish, mount URL, CMD...
#   remote_fixture                   bundle vm (16 MiB disk.img with holes and a repeated
#                                    chunk, config, nvram) in $SRC, imported into $STORE,
#                                    published to $PUB; $REF is the reference image
#   rmount NAME URL [ARGS...]        vmbundlefs mount -f URL $T/NAME (log $T/NAME.log)
#   rumount NAME, rkill NAME         unmount and check the daemon / kill -9 it
#   cache_verify DIR                 every chunk file's SHA-256 is its name; prints the count
#   $RCMP FILE REF                   tests/helpers/rcmp: correct bytes or EIO, per block
#
# Every server listens on 127.0.0.1 on a free port and is stopped (by its pid) when
# the test exits. A tool that is missing makes the test exit 77 saying why.

REMOTE_PIDS=
FAULTSRV=${VMB_TESTBIN:+$VMB_TESTBIN/helpers/faultsrv}
SHAPEPROXY=${VMB_TESTBIN:+$VMB_TESTBIN/helpers/shapeproxy}

# Fallbacks when lib.sh is not loaded (bench/remote.sh).
declare -F say >/dev/null || say() { printf '%s\n' "$*"; }
declare -F skip >/dev/null || skip() { say "SKIP: $*"; exit 77; }
declare -F fail >/dev/null || fail() { say "FAIL: $*"; exit 1; }

need_tool() {
    command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed ($2)"
}

# _remote_dir: where server state lives ($T/srv).
_remote_dir() {
    [ -n "${T:-}" ] && [ -d "$T" ] || fail "remote-lib: \$T is not set (call vmb_setup first)"
    mkdir -p "$T/srv"
    printf '%s\n' "$T/srv"
}

# _remote_track PID: stop PID (and wait for it) when the test exits.
_remote_track() {
    REMOTE_PIDS="$REMOTE_PIDS $1"
    if [ -z "${_REMOTE_TRAP:-}" ]; then
        _REMOTE_TRAP=1
        if declare -F on_exit >/dev/null; then
            on_exit remote_stop_all
        else
            trap 'remote_stop_all' EXIT
        fi
    fi
}

_remote_kill() {
    local p=$1 i
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$p" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$p" 2>/dev/null
    return 0
}

remote_stop_all() {
    local p
    for p in $REMOTE_PIDS; do _remote_kill "$p"; done
    REMOTE_PIDS=
}

_remote_untrack() {
    local p out=
    for p in $REMOTE_PIDS; do [ "$p" = "$1" ] || out="$out $p"; done
    REMOTE_PIDS=$out
}

# _wait_file FILE SECONDS PID: wait until FILE exists (and PID lives).
_wait_file() {
    local n=$(($2 * 10))
    while [ $n -gt 0 ]; do
        [ -s "$1" ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# _wait_port PORT SECONDS PID: until something accepts on 127.0.0.1:PORT.
_wait_port() {
    local n=$(($2 * 10))
    while [ $n -gt 0 ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# _port_free PORT: nothing listens on 127.0.0.1:PORT (or 0.0.0.0:PORT).
_port_free() {
    local hex
    hex=$(printf '%04X' "$1")
    ! awk -v h=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# random_port: a port nothing listens on now (nginx cannot take port 0 and tell).
random_port() {
    local p i
    for i in $(seq 1 100); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        _port_free "$p" && { echo "$p"; return 0; }
    done
    fail "random_port: no free port found"
}

# ---------------------------------------------------------------- TLS

tls_make_ca() {
    local d
    [ -n "${TLS_CA:-}" ] && [ -s "$TLS_CA" ] && return 0
    need_tool openssl "needed to make the test CA"
    d=$(_remote_dir)/tls
    mkdir -p "$d"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=vmbundlefs test CA" \
            -keyout "$d/ca.key" -out "$d/ca.pem" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$d/server.key" -out "$d/server.csr" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext" &&
        openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
            -CAcreateserial -days 2 -extfile "$d/ext" -out "$d/server.pem"
    } >"$d/openssl.out" 2>&1 || { cat "$d/openssl.out"; fail "tls_make_ca: openssl failed"; }
    TLS_CA=$d/ca.pem
    TLS_CERT=$d/server.pem
    TLS_KEY=$d/server.key
    # A CA no one trusts, for the negative tests.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" \
        -keyout "$d/other.key" -out "$d/other.pem" >>"$d/openssl.out" 2>&1
    TLS_OTHER_CA=$d/other.pem
}

# ---------------------------------------------------------------- nginx

# nginx_start DIR [EXTRA_HTTP_CONF]: serve DIR. Sets NGINX_PORT, NGINX_TLS_PORT,
# NGINX_URL, NGINX_TLS_URL, NGINX_LOG, NGINX_PID.
nginx_start() {
    local root=$1 extra=${2:-} d conf try pid user
    need_tool nginx "Debian package nginx-light; needed to serve a published store"
    root=$(cd "$root" && pwd -P) || fail "nginx_start: no directory $1"
    tls_make_ca
    d=$(_remote_dir)/nginx
    mkdir -p "$d/tmp"
    NGINX_LOG=$d/access.log
    : >"$NGINX_LOG"
    user=
    [ "$(id -u)" = 0 ] && user="user root;"
    for try in 1 2 3 4 5 6 7 8; do
        NGINX_PORT=$(random_port)
        NGINX_TLS_PORT=$(random_port)
        [ "$NGINX_PORT" = "$NGINX_TLS_PORT" ] && continue
        conf=$d/nginx.conf
        cat >"$conf" <<EOF
$user
daemon off;
master_process on;
worker_processes 2;
pid $d/nginx.pid;
error_log $d/error.log info;
events { worker_connections 512; }
http {
    types { application/octet-stream bin; }
    default_type application/octet-stream;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    log_format vmb '\$request_method \$uri "\$http_range" \$status \$body_bytes_sent \$server_protocol';
    access_log $NGINX_LOG vmb;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        listen 127.0.0.1:$NGINX_TLS_PORT ssl http2;
        server_name localhost;
        ssl_certificate $TLS_CERT;
        ssl_certificate_key $TLS_KEY;
        root $root;
        $extra
    }
}
EOF
        nginx -c "$conf" -p "$d" -e "$d/error.log" </dev/null >"$d/nginx.out" 2>&1 &
        pid=$!
        if _wait_port "$NGINX_PORT" 10 "$pid" && _wait_port "$NGINX_TLS_PORT" 5 "$pid"; then
            NGINX_PID=$pid
            _remote_track "$pid"
            NGINX_URL=http://127.0.0.1:$NGINX_PORT
            NGINX_TLS_URL=https://127.0.0.1:$NGINX_TLS_PORT
            NGINX_ROOT=$root
            export NGINX_URL NGINX_TLS_URL NGINX_LOG
            say "# nginx (pid $pid) serving $root on $NGINX_URL and $NGINX_TLS_URL"
            return 0
        fi
        _remote_kill "$pid"
        wait "$pid" 2>/dev/null
        grep -q 'Address already in use' "$d/error.log" "$d/nginx.out" 2>/dev/null && continue
        cat "$d/nginx.out" "$d/error.log" 2>/dev/null | tail -n 20
        fail "nginx did not start"
    done
    fail "nginx: no free port pair after 8 tries"
}

nginx_stop() {
    [ -n "${NGINX_PID:-}" ] || return 0
    _remote_kill "$NGINX_PID"
    wait "$NGINX_PID" 2>/dev/null
    _remote_untrack "$NGINX_PID"
    NGINX_PID=
}

# ---------------------------------------------------------------- faultsrv

# faultsrv_start DIR [ARGS...]: sets FAULT_PORT, FAULT_URL, FAULT_LOG, FAULT_CTL, FAULT_PID.
faultsrv_start() {
    local root=$1 d pid
    shift
    [ -x "$FAULTSRV" ] || fail "helper '$FAULTSRV' is not built"
    d=$(_remote_dir)/faultsrv
    mkdir -p "$d"
    rm -f "$d/port"
    FAULT_LOG=${FAULT_LOG:-$d/access.log}
    FAULT_CTL=$d/rules
    [ -e "$FAULT_CTL" ] || : >"$FAULT_CTL"
    "$FAULTSRV" -P "$d/port" -l "$FAULT_LOG" -c "$FAULT_CTL" "$@" "$root" \
        </dev/null >>"$d/stderr" 2>&1 &
    pid=$!
    _wait_file "$d/port" 10 "$pid" || { cat "$d/stderr"; fail "faultsrv did not start"; }
    FAULT_PID=$pid
    _remote_track "$pid"
    FAULT_PORT=$(cat "$d/port")
    FAULT_URL=http://127.0.0.1:$FAULT_PORT
    FAULT_STDERR=$d/stderr
    export FAULT_URL FAULT_LOG
    say "# faultsrv (pid $pid) serving $root on $FAULT_URL"
}

# faultsrv_rules [RULE...]: the new rule set, in place at once (rename).
faultsrv_rules() {
    local r
    [ -n "${FAULT_CTL:-}" ] || fail "faultsrv_rules: faultsrv is not started"
    : >"$FAULT_CTL.tmp"
    for r in "$@"; do printf '%s\n' "$r" >>"$FAULT_CTL.tmp"; done
    mv -f "$FAULT_CTL.tmp" "$FAULT_CTL"
}

faultsrv_stop() {
    [ -n "${FAULT_PID:-}" ] || return 0
    _remote_kill "$FAULT_PID"
    wait "$FAULT_PID" 2>/dev/null
    _remote_untrack "$FAULT_PID"
    FAULT_PID=
}

# faultsrv_alive: it did not crash (a sanitizer report or a signal fails the test).
faultsrv_clean() {
    [ -n "${FAULT_STDERR:-}" ] || return 0
    if grep -Eq 'runtime error|AddressSanitizer|LeakSanitizer' "$FAULT_STDERR"; then
        cat "$FAULT_STDERR"
        return 1
    fi
    [ -z "${FAULT_PID:-}" ] || kill -0 "$FAULT_PID" 2>/dev/null
}

# ---------------------------------------------------------------- shaping proxy

# shapeproxy_start HOST:PORT [ARGS...]: sets PROXY_PORT, PROXY_PID.
shapeproxy_start() {
    local up=$1 d pid
    shift
    [ -x "$SHAPEPROXY" ] || fail "helper '$SHAPEPROXY' is not built"
    d=$(_remote_dir)/proxy.$$.$RANDOM
    mkdir -p "$d"
    [ $# -gt 0 ] || set -- -d 10 -r 1G
    "$SHAPEPROXY" -P "$d/port" "$@" "$up" </dev/null >>"$d/stderr" 2>&1 &
    pid=$!
    _wait_file "$d/port" 10 "$pid" || { cat "$d/stderr"; fail "shapeproxy did not start"; }
    PROXY_PID=$pid
    _remote_track "$pid"
    PROXY_PORT=$(cat "$d/port")
    say "# shapeproxy (pid $pid) 127.0.0.1:$PROXY_PORT -> $up ($*)"
}

shapeproxy_stop() {
    [ -n "${PROXY_PID:-}" ] || return 0
    _remote_kill "$PROXY_PID"
    wait "$PROXY_PID" 2>/dev/null
    _remote_untrack "$PROXY_PID"
    PROXY_PID=
}

# ---------------------------------------------------------------- S3

# The S3-protocol server: s3rver from npm, installed by contrib/setup.sh (helper
# fetch's npm step) into $VMB_NPM_DIR (default /var/tmp/vmbundlefs-npm), run behind
# tests/helpers/s3sigv4.js (which checks SigV4) when that front is there.
S3_NPM_DIR=${VMB_NPM_DIR:-/var/tmp/vmbundlefs-npm}

# s3_start [BUCKET]: sets S3_ENDPOINT (http://127.0.0.1:PORT), S3_BUCKET, S3_LOG (one
# line per request with the front), and exports the AWS_* variables it accepts.
s3_start() {
    local bucket=${1:-vmbtest} d pid try front
    need_tool node "the S3-protocol server s3rver runs on node (contrib/setup.sh installs nodejs)"
    [ -f "$S3_NPM_DIR/node_modules/s3rver/package.json" ] ||
        skip "s3rver is not installed in $S3_NPM_DIR (contrib/setup.sh test installs it with npm)"
    front=${VMB_SRCDIR:-$(dirname "${BASH_SOURCE[0]}")/..}/tests/helpers/s3sigv4.js
    d=$(_remote_dir)/s3
    mkdir -p "$d/data"
    S3_LOG=$d/requests.log
    for try in 1 2 3 4 5; do
        S3_PORT=$(random_port)
        : >"$d/out"
        if [ -f "$front" ]; then
            NODE_PATH=$S3_NPM_DIR/node_modules node "$front" "$d/data" "$S3_PORT" "$bucket" "$S3_LOG" \
                </dev/null >>"$d/out" 2>&1 &
        else
            "$S3_NPM_DIR/node_modules/.bin/s3rver" --directory "$d/data" --address 127.0.0.1 \
                --port "$S3_PORT" --configure-bucket "$bucket" </dev/null >>"$d/out" 2>&1 &
        fi
        pid=$!
        if _wait_port "$S3_PORT" 30 "$pid"; then
            S3_PID=$pid
            _remote_track "$pid"
            S3_ENDPOINT=http://127.0.0.1:$S3_PORT
            S3_BUCKET=$bucket
            S3_DIR=$d/data
            export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
            say "# s3rver (pid $pid) on $S3_ENDPOINT, bucket $bucket"
            return 0
        fi
        _remote_kill "$pid"
        wait "$pid" 2>/dev/null
        grep -q EADDRINUSE "$d/out" && continue
        tail -n 20 "$d/out"
        fail "s3rver did not start"
    done
    fail "s3rver: no free port after 5 tries"
}

s3_stop() {
    [ -n "${S3_PID:-}" ] || return 0
    _remote_kill "$S3_PID"
    wait "$S3_PID" 2>/dev/null
    _remote_untrack "$S3_PID"
    S3_PID=
}

# ---------------------------------------------------------------- logs

# log_fetches LOG: "COUNT PATH" for every successful GET of an object (status
# 200/206), sorted by path. Both log formats (nginx's and faultsrv's) have
# METHOD PATH RANGE STATUS BYTES first (a range never holds a space here).
log_fetches() {
    awk '$1 == "GET" && $2 ~ /\/objects\// && ($4 == 200 || $4 == 206) { c[$2]++ }
         END { for (p in c) print c[p], p }' "$1" | sort -k2
}

# log_mark: faultsrv's access log's line count once it has been quiet for 0.5 s (10 s
# at most). faultsrv logs a slowly sent body when its pacing ends, up to 100 ms (more
# on a loaded machine) after the last bytes reached the client, which may have
# verified and kept the chunk meanwhile: counted at once, the log can miss a
# transfer that was made (or put one after a mark that came before it).
log_mark() {
    local a b i
    a=$(wc -l <"$FAULT_LOG")
    for i in $(seq 1 20); do
        sleep 0.5
        b=$(wc -l <"$FAULT_LOG")
        [ "$a" = "$b" ] && break
        a=$b
    done
    echo "$a"
}

# log_bytes LOG: body bytes the server sent for objects (every request).
log_bytes() {
    awk '$2 ~ /\/objects\// { b += $5 } END { printf "%d\n", b }' "$1"
}

# ---------------------------------------------------------------- vmbundlefs remote side

RCMP=${VMB_TESTBIN:+$VMB_TESTBIN/helpers/rcmp}
K=1024
M=$((1024 * 1024))

# remote_need_cli [pull] [prefetch]: exit 77 unless this build has publish, the mount
# of a URL, and the commands named.
remote_need_cli() {
    local c
    "$VMB_BIN" publish --help >/dev/null 2>&1 || [ -x "$VMB_TESTBIN/helpers/mkpub" ] ||
        skip "this build has no 'vmbundlefs publish' (nor tests/helpers/mkpub) yet (issue 11)"
    "$VMB_BIN" mount --help 2>&1 | grep -q 'URL' || skip "this build cannot mount a URL yet (issue 11)"
    for c in "$@"; do
        "$VMB_BIN" "$c" --help >/dev/null 2>&1 || skip "this build has no 'vmbundlefs $c' yet (issue 11)"
    done
}

# remote_fixture [CHUNK_KB]: the source bundle $SRC (= $T/src/vm: disk.img of 16 MiB
# with data at [0, 4 MiB), [8 MiB, 9 MiB), a copy of its first 256 KiB at 12 MiB (an
# identical chunk, stored once) and a partial last block; holes between; config and
# nvram small files), imported into $STORE as bundle "vm" and published to $PUB.
# $REF = the reference image; $N_OBJ_CHUNKS = the distinct data chunks at 256 KiB.
remote_fixture() {
    SRC=$T/src/vm
    REF=$SRC/disk.img
    PUB=$T/pub
    mkdir -p "$SRC"
    truncate -s $((16 * M)) "$REF"
    head -c $((4 * M)) /dev/urandom | dd of="$REF" conv=notrunc status=none
    head -c $((1 * M)) /dev/urandom | dd of="$REF" bs=1M seek=8 conv=notrunc status=none
    dd if="$REF" of="$REF" bs=256K count=1 seek=48 conv=notrunc status=none
    head -c 1000 /dev/urandom | dd of="$REF" bs=1 seek=$((16 * M - 1000)) conv=notrunc status=none
    printf 'memory 4096\ncpus 2\n' >"$SRC/config"
    head -c 65536 /dev/urandom >"$SRC/nvram"
    # 16 + 4 distinct data chunks, the copy shares chunk 0, and the last chunk
    N_OBJ_CHUNKS=21
    tar -C "$T/src" --sparse -cf - vm | "$VMB_BIN" import "$STORE" - vm >"$T/import.out" 2>&1 ||
        { cat "$T/import.out"; fail "import of the fixture failed"; }
    if "$VMB_BIN" publish --help >/dev/null 2>&1; then
        # 256 KiB chunks, the fixture's geometry whatever the default
        "$VMB_BIN" publish --chunk-size=256K "$STORE" vm "$PUB" >"$T/publish.out" 2>&1 ||
            { cat "$T/publish.out"; fail "publish of the fixture failed"; }
    else   # the published format written by the test helper (before publish existed)
        "$VMB_TESTBIN/helpers/mkpub" -c 262144 "$PUB" "$SRC" >"$T/publish.out" 2>&1 ||
            { cat "$T/publish.out"; fail "tests/helpers/mkpub of the fixture failed"; }
    fi
}

# remote_pulled: remote_fixture served by faultsrv ($URL), and its bundle pulled
# into a new local store $S with the cache $C (IMG: the image's path in it).
remote_pulled() {
    remote_need_cli pull
    remote_fixture
    faultsrv_start "$PUB"
    URL=$FAULT_URL
    C=$T/cache
    IMG=vm/disk.img
    S=$T/local
    "$VMB_BIN" init "$S" >/dev/null || fail "init $S"
    check "pull the bundle" "$VMB_BIN" pull -o "cache=$C" "$S" "$URL#vm"
}

# cache_verify DIR: every chunk in the cache DIR holds the bytes its name says
# (SHA-256); prints the number of chunks; fails naming a bad one.
cache_verify() {
    local f n=0 want got
    [ -d "$1/chunks" ] || { echo 0; return 0; }
    while IFS= read -r f; do
        want=${f##*/}
        got=$(sha256sum "$f" | cut -d' ' -f1)
        if [ "$want" != "$got" ]; then
            echo "cache chunk $f holds bytes of digest $got"
            return 1
        fi
        n=$((n + 1))
    done < <(find "$1/chunks" -type f -name '????????????????????????????????????????????????????????????????')
    echo "$n"
}

# rmount NAME URL [MOUNT ARGS...]: mount URL on $T/NAME in the background (the
# daemon's log in $T/NAME.log); waits up to 20 s for the mount.
rmount() {
    local name=$1 url=$2 mp i
    shift 2
    mp=$T/$name
    mkdir -p "$mp"
    rm -f "$T/$name.rc"
    (
        sh -c 'echo $$ >"$0"; exec "$@"' "$T/$name.pid" \
            "$VMB_BIN" mount -f --log="$T/$name.log" "$@" "$url" "$mp"
        echo $? >"$T/$name.rc"
    ) </dev/null >>"$T/$name.out" 2>&1 &
    RMOUNTS="${RMOUNTS:-} $name"
    if [ -z "${_RMOUNT_TRAP:-}" ]; then
        _RMOUNT_TRAP=1
        on_exit rumount_all
    fi
    for i in $(seq 1 200); do
        mountpoint -q "$mp" && return 0
        if [ -e "$T/$name.rc" ]; then
            tail -n 20 "$T/$name.out" "$T/$name.log" 2>/dev/null
            fail "mount of $url on $mp: the daemon exited with status $(cat "$T/$name.rc")"
        fi
        sleep 0.1
    done
    fail "mount of $url on $mp did not appear within 20 s"
}

# rumount NAME: unmount, wait for the daemon, check its exit status and its log.
rumount() {
    local name=$1 mp=$T/$1 i
    if is_mounted "$mp"; then
        for i in 1 2 3 4 5 6 7 8 9 10; do
            fusermount3 -u "$mp" 2>/dev/null && break
            sleep 0.3
        done
        is_mounted "$mp" && fusermount3 -uz "$mp"
    fi
    for i in $(seq 1 300); do [ -e "$T/$name.rc" ] && break; sleep 0.1; done
    if [ ! -e "$T/$name.rc" ]; then
        kill -9 "$(cat "$T/$name.pid" 2>/dev/null)" 2>/dev/null
        say "the daemon of $mp did not exit within 30 s of the unmount"
        return 1
    fi
    if grep -Eq "$_VMB_BAD_LOG" "$T/$name.log" "$T/$name.out" 2>/dev/null; then
        grep -En -A 30 "$_VMB_BAD_LOG" "$T/$name.log" "$T/$name.out" | head -n 60
        return 1
    fi
    case $(cat "$T/$name.rc") in
    0 | killed) return 0 ;;
    *) say "the daemon of $mp exited with status $(cat "$T/$name.rc")"; tail -n 20 "$T/$name.log"; return 1 ;;
    esac
}

# rkill NAME: kill -9 the daemon of $T/NAME and detach its mount.
rkill() {
    local name=$1 p i
    p=$(cat "$T/$name.pid" 2>/dev/null)
    [ -n "$p" ] || fail "rkill: no daemon pid for $name"
    kill -9 "$p" 2>/dev/null
    for i in $(seq 1 100); do [ -e "$T/$name.rc" ] && break; sleep 0.1; done
    echo killed >"$T/$name.rc"
    fusermount3 -uz "$T/$name" 2>/dev/null
    for i in $(seq 1 50); do is_mounted "$T/$name" || break; sleep 0.1; done
}

rumount_all() {
    local n bad=0
    for n in ${RMOUNTS:-}; do
        if is_mounted "$T/$n" || { [ -e "$T/$n.pid" ] && [ ! -e "$T/$n.rc" ]; }; then
            rumount "$n" || bad=1
        fi
    done
    RMOUNTS=
    return $bad
}
