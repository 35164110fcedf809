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
#   s3_start [BUCKET]                the S3-protocol server from npm (see s3_find):
#                                    $S3_ENDPOINT, $S3_BUCKET, AWS_* exported; exit 77
#                                    when it is not installed
#   s3_stop
#   log_fetches LOG                  "COUNT PATH" of every 2xx GET of objects/ in LOG,
#                                    one line per path (range requests counted each)
#   need_tool NAME WHY               exit 77 naming NAME when it is absent
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

# s3_find: the S3-protocol server's command (installed from npm by contrib/setup.sh,
# owned by helper fetch): VMB_S3_SERVER, else s3rver on PATH or in a node_modules/.bin.
s3_find() {
    local c
    for c in "${VMB_S3_SERVER:-}" "$(command -v s3rver 2>/dev/null)" \
        ${VMB_SRCDIR:+"$VMB_SRCDIR/node_modules/.bin/s3rver"} \
        /usr/local/lib/node_modules/s3rver/bin/s3rver.js /usr/local/bin/s3rver \
        /opt/vmbundlefs-test/node_modules/.bin/s3rver; do
        [ -n "$c" ] && [ -x "$c" ] && { printf '%s\n' "$c"; return 0; }
    done
    return 1
}

# s3_start [BUCKET]: sets S3_ENDPOINT (http://127.0.0.1:PORT), S3_BUCKET, S3_DIR,
# and exports the AWS_* variables s3rver accepts (S3RVER/S3RVER).
s3_start() {
    local bucket=${1:-vmbtest} bin d pid try
    bin=$(s3_find) || skip "no S3-protocol server (npm s3rver; contrib/setup.sh installs it)"
    need_tool node "s3rver runs on node"
    d=$(_remote_dir)/s3
    mkdir -p "$d/data"
    for try in 1 2 3 4 5; do
        S3_PORT=$(random_port)
        "$bin" --directory "$d/data" --address 127.0.0.1 --port "$S3_PORT" \
            --configure-bucket "$bucket" --silent </dev/null >>"$d/out" 2>&1 &
        pid=$!
        if _wait_port "$S3_PORT" 20 "$pid"; then
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

# log_bytes LOG: body bytes the server sent for objects (every request).
log_bytes() {
    awk '$2 ~ /\/objects\// { b += $5 } END { printf "%d\n", b }' "$1"
}
