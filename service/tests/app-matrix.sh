#!/usr/bin/env bash
# The application matrix (issue 7): unmodified Debian programs under `joyride run`, against
# Linux peers and (where it makes sense) against each other through one joyrided. Prints one
# line per application × role with PASS/FAIL and the reason, then "N passed, N failed".
#
# Layout: joyrided drives one end of a veth (AF_PACKET) inside namespace $NS_J; Linux's own
# stack is on the other end in $NS_L. Programs "under Joyride" run in $NS_J, where the kernel has
# no address at all (only lo), so the only way they can reach the test network is Joyride.
#
#   sudo service/tests/app-matrix.sh            # after cargo build (debug) or with BIN=DIR
#   ONLY=nginx sudo service/tests/app-matrix.sh # one application
#
# Needs root, iproute2, and the applications (missing ones are reported as SKIP with the
# package to install). Every step is bounded by `timeout`; the whole matrix takes about a minute.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/debug}
JOYRIDE=$BIN/joyride
JOYRIDED=$BIN/joyrided
LIB=$(ls -t "$BIN/libjoyride.so" "$BIN/deps/libjoyride.so" 2>/dev/null | head -n1)
ONLY=${ONLY:-}
tag=jm$$
NS_J=$tag-j NS_L=$tag-l
LX=10.98.7.1 JX=10.98.7.2
WORK=$(mktemp -d /tmp/joyride-matrix.XXXXXX)
chmod 755 "$WORK"
SOCK=$WORK/joyride.sock
passed=0 failed=0 skipped=0
pids=()

die() { echo "app-matrix: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$JOYRIDED" ] && [ -x "$JOYRIDE" ] && [ -n "$LIB" ] ||
  die "build first: cargo build -p joyride-service -p joyride-posix (or set BIN=target/release)"

cleanup() {
  # Applications first, the service (pids[0]) last: apps whose service vanishes get ENETDOWN,
  # and some (memcached's libevent) abort on that.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; sleep 0.05; done
  ip netns pids "$NS_J" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns pids "$NS_L" 2>/dev/null | xargs -r kill 2>/dev/null
  sleep 0.3
  ip netns pids "$NS_J" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns pids "$NS_L" 2>/dev/null | xargs -r kill -9 2>/dev/null
  ip netns del "$NS_J" 2>/dev/null
  ip netns del "$NS_L" 2>/dev/null
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

# --- the network --------------------------------------------------------------------------
ip netns add "$NS_J" && ip netns add "$NS_L" || die "cannot create namespaces"
ip link add "${tag}a" netns "$NS_J" type veth peer name "${tag}b" netns "$NS_L"
for ns in "$NS_J" "$NS_L"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$NS_J" link set "${tag}a" up
ip -n "$NS_L" addr add "$LX/24" dev "${tag}b"
# No GSO super-frames from the Linux peer over AF_PACKET (ARCHITECTURE.md).
ip netns exec "$NS_L" ethtool -K "${tag}b" tso off gso off >/dev/null 2>&1 ||
  ip -n "$NS_L" link set "${tag}b" gso_max_segs 1
ip -n "$NS_L" link set "${tag}b" up

ip netns exec "$NS_J" "$JOYRIDED" --backend "af-packet:${tag}a" --ip "$JX/24" --socket "$SOCK" \
  >"$WORK/joyrided.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "serving applications" "$WORK/joyrided.log" && break; sleep 0.1; done
grep -q "serving applications" "$WORK/joyrided.log" || die "joyrided did not start: $(cat "$WORK/joyrided.log")"

# jr CMD…: under Joyride (in $NS_J, where the kernel has no route anywhere); lx CMD…: on
# Linux's stack, in $NS_L. Scripts, not functions, so `timeout` and `runuser` can run them.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexec ip netns exec %s env JOYRIDE_LIB=%s %s run --socket %s -- "$@"\n' \
  "$NS_J" "$(realpath "$LIB")" "$(realpath "$JOYRIDE")" "$SOCK" >"$WORK/bin/jr"
printf '#!/bin/sh\nexec ip netns exec %s "$@"\n' "$NS_L" >"$WORK/bin/lx"
chmod 755 "$WORK/bin/jr" "$WORK/bin/lx"
PATH=$WORK/bin:$PATH
# bg NAME CMD…: starts CMD in the background, output in $WORK/NAME.log.
bg() { local n=$1; shift; "$@" >"$WORK/$n.log" 2>&1 & pids+=($!); }
# wait_port NS IP PORT: until something accepts there (10 s).
wait_port() {
  for _ in $(seq 100); do
    ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# wait_joyride_port PORT: until a Joyride listener on PORT shows in `joyride stat`.
wait_joyride_port() {
  for _ in $(seq 100); do
    "$JOYRIDE" stat --socket "$SOCK" 2>/dev/null | grep -q "LISTEN .*:$1 " && return 0
    sleep 0.1
  done
  return 1
}

# result APP ROLE STATUS REASON
result() {
  printf '%-10s %-44s %-4s %s\n' "$1" "$2" "$3" "$4"
  case $3 in PASS) passed=$((passed + 1)) ;; FAIL) failed=$((failed + 1)) ;; *) skipped=$((skipped + 1)) ;; esac
}
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
need() { # need APP ROLE TOOL PKG: SKIP unless TOOL exists
  command -v "$3" >/dev/null 2>&1 && return 0
  result "$1" "$2" SKIP "needs $3 (apt-get install $4)"
  return 1
}
tail1() { tr -d '\r' <"$1" | grep -v '^\s*$' | tail -n1 | cut -c1-100; }

printf '%-10s %-44s %-4s %s\n' APP ROLE RES "DETAIL"

# --- shared fixtures: files to serve, a Linux web server, a Linux echo server ---------------
mkdir -p "$WORK/www"
head -c $((4 << 20)) /dev/urandom >"$WORK/www/blob.bin"
echo "hello from the matrix" >"$WORK/www/index.html"
blob_sha=$(sha256sum <"$WORK/www/blob.bin" | cut -d' ' -f1)
bg http-linux lx python3 -m http.server --bind "$LX" 8000 -d "$WORK/www"
wait_port "$NS_L" "$LX" 8000 || die "the Linux http.server did not start"

# --- curl ---------------------------------------------------------------------------------------
if want curl && need curl "client -> Linux http.server" curl curl; then
  got=$(timeout 60 jr curl -sS "http://$LX:8000/blob.bin" 2>"$WORK/curl.err" | sha256sum | cut -d' ' -f1)
  if [ "$got" = "$blob_sha" ]; then result curl "client -> Linux http.server" PASS "4 MiB, sha256 equal"
  else result curl "client -> Linux http.server" FAIL "sha256 differs: $(tail1 "$WORK/curl.err")"; fi
fi

# --- socat --------------------------------------------------------------------------------------
if want socat && need socat "client -> Linux echo" socat socat; then
  bg socat-linux lx socat TCP-LISTEN:7001,bind="$LX",reuseaddr,fork EXEC:cat
  wait_port "$NS_L" "$LX" 7001
  out=$(echo "ping through joyride" | timeout 20 jr socat -t 2 - "TCP:$LX:7001" 2>"$WORK/socat-c.err")
  if [ "$out" = "ping through joyride" ]; then result socat "client -> Linux echo" PASS "echoed"
  else result socat "client -> Linux echo" FAIL "got '$out' $(tail1 "$WORK/socat-c.err")"; fi
  role="server (fork per connection) <- Linux client"
  bg socat-j jr socat TCP-LISTEN:7000,reuseaddr,fork EXEC:cat
  if wait_joyride_port 7000; then
    ok=0
    for i in 1 2 3; do
      out=$(echo "line $i" | timeout 10 lx socat -t 2 - "TCP:$JX:7000" 2>>"$WORK/socat-s.err")
      [ "$out" = "line $i" ] && ok=$((ok + 1))
    done
    if [ $ok = 3 ]; then result socat "$role" PASS "3 connections echoed"
    else result socat "$role" FAIL "$ok/3 echoed $(tail1 "$WORK/socat-s.err")"; fi
  else result socat "$role" FAIL "no listener: $(tail1 "$WORK/socat-j.log")"; fi
fi

# --- nginx: master + 2 workers, daemon on ------------------------------------------------------
if want nginx && need nginx "master+workers, daemon on <- Linux wrk" nginx nginx-light; then
  cat >"$WORK/nginx.conf" <<CONF
daemon on;
master_process on;
worker_processes 2;
user root;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-body;
  proxy_temp_path $WORK/nginx-proxy;
  fastcgi_temp_path $WORK/nginx-fcgi;
  uwsgi_temp_path $WORK/nginx-uwsgi;
  scgi_temp_path $WORK/nginx-scgi;
  server { listen 8080; root $WORK/www; }
}
CONF
  role="master+workers, daemon on <- Linux wrk"
  timeout 20 jr nginx -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1
  if wait_joyride_port 8080; then
    body=$(timeout 10 lx curl -sS "http://$JX:8080/index.html" 2>&1)
    if [ "$body" != "hello from the matrix" ]; then
      result nginx "$role" FAIL "curl got: ${body:0:80}"
    elif need wrk "$role" wrk wrk; then
      timeout 30 lx wrk -t2 -c16 -d3s "http://$JX:8080/index.html" >"$WORK/wrk.log" 2>&1
      rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.log")
      bad=$(grep -E "Socket errors|Non-2xx" "$WORK/wrk.log")
      if [ -n "$rps" ] && [ -z "$bad" ]; then result nginx "$role" PASS "$rps req/s"
      else result nginx "$role" FAIL "${bad:-no result} $(tail1 "$WORK/wrk.log")"; fi
      role="server <- wrk, both under Joyride"
      timeout 30 jr wrk -t2 -c16 -d3s "http://$JX:8080/index.html" >"$WORK/wrk2.log" 2>&1
      rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk2.log")
      bad=$(grep -E "Socket errors|Non-2xx" "$WORK/wrk2.log")
      if [ -n "$rps" ] && [ -z "$bad" ]; then result nginx "$role" PASS "$rps req/s"
      else result nginx "$role" FAIL "${bad:-no result} $(tail1 "$WORK/wrk2.log")"; fi
    fi
  else result nginx "$role" FAIL "no listener: $(tail1 "$WORK/nginx.log") $(tail1 "$WORK/nginx-error.log" 2>/dev/null)"; fi
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
fi

# --- redis ----------------------------------------------------------------------------------------
if want redis && need redis "server <- Linux redis-benchmark" redis-server redis-server; then
  role="server <- Linux redis-benchmark"
  bg redis-j jr redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save "" \
    --appendonly no --dir "$WORK"
  if wait_joyride_port 6379; then
    timeout 60 lx redis-benchmark -h "$JX" -p 6379 -n 20000 -c 10 -t set,get -q >"$WORK/rb.log" 2>&1
    get=$(tr '\r' '\n' <"$WORK/rb.log" | awk '/^GET:/ {print $2}' | tail -n1)
    set=$(tr '\r' '\n' <"$WORK/rb.log" | awk '/^SET:/ {print $2}' | tail -n1)
    if [ -n "$get" ] && [ -n "$set" ]; then result redis "$role" PASS "SET $set GET $get req/s"
    else result redis "$role" FAIL "$(tail1 "$WORK/rb.log")"; fi
    role="server <- redis-benchmark, both under Joyride"
    timeout 60 jr redis-benchmark -h "$JX" -p 6379 -n 20000 -c 10 -t set,get -q >"$WORK/rb2.log" 2>&1
    get=$(tr '\r' '\n' <"$WORK/rb2.log" | awk '/^GET:/ {print $2}' | tail -n1)
    set=$(tr '\r' '\n' <"$WORK/rb2.log" | awk '/^SET:/ {print $2}' | tail -n1)
    if [ -n "$get" ] && [ -n "$set" ]; then result redis "$role" PASS "SET $set GET $get req/s"
    else result redis "$role" FAIL "$(tail1 "$WORK/rb2.log")"; fi
  else result redis "$role" FAIL "no listener: $(tail1 "$WORK/redis-j.log")"; fi
  role="redis-cli -> Linux redis-server"
  bg redis-l lx redis-server --port 6380 --bind "$LX" --protected-mode no --save "" --appendonly no --dir "$WORK"
  wait_port "$NS_L" "$LX" 6380
  timeout 10 jr redis-cli -h "$LX" -p 6380 set matrix joyride >/dev/null 2>"$WORK/rc.err"
  out=$(timeout 10 jr redis-cli -h "$LX" -p 6380 get matrix 2>>"$WORK/rc.err")
  if [ "$out" = joyride ]; then result redis "$role" PASS "SET then GET"
  else result redis "$role" FAIL "got '$out' $(tail1 "$WORK/rc.err")"; fi
fi

# --- memcached: threads ------------------------------------------------------------------------
if want memcached && need memcached "server (4 threads) <- Linux memcslap" memcached memcached; then
  role="server (4 threads) <- Linux memcslap"
  bg memcached-j jr memcached -u root -l 0.0.0.0 -p 11211 -t 4 -U 0
  if wait_joyride_port 11211; then
    if need memcslap "$role" memcslap libmemcached-tools; then
      timeout 60 lx memcslap --servers="$JX:11211" --concurrency=4 --execute-number=2000 --test=set \
        >"$WORK/ms.log" 2>&1
      rc=$?
      timeout 60 lx memcslap --servers="$JX:11211" --concurrency=4 --execute-number=2000 --test=get \
        >>"$WORK/ms.log" 2>&1
      rc2=$?
      secs=$(awk '/^Time to (set|get) .* by/ {print $(NF-1)}' "$WORK/ms.log" | paste -sd/)
      if [ $rc = 0 ] && [ $rc2 = 0 ] && [ -n "$secs" ]; then
        result memcached "$role" PASS "8000 sets / 8000 gets in $secs s"
      else result memcached "$role" FAIL "rc $rc/$rc2 $(tail1 "$WORK/ms.log")"; fi
    fi
  else result memcached "$role" FAIL "no listener: $(tail1 "$WORK/memcached-j.log")"; fi
fi

# --- haproxy in front of a Linux backend -------------------------------------------------------
if want haproxy && need haproxy "proxy -> Linux backend <- Linux curl" haproxy haproxy; then
  role="proxy -> Linux backend <- Linux curl"
  cat >"$WORK/haproxy.cfg" <<CONF
global
  maxconn 256
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend web
  bind 0.0.0.0:8081
  default_backend linux
backend linux
  server l1 $LX:8000
CONF
  bg haproxy-j jr haproxy -db -f "$WORK/haproxy.cfg"
  if wait_joyride_port 8081; then
    got=$(timeout 60 lx curl -sS "http://$JX:8081/blob.bin" 2>"$WORK/hc.err" | sha256sum | cut -d' ' -f1)
    if [ "$got" = "$blob_sha" ]; then result haproxy "$role" PASS "4 MiB through the proxy, sha256 equal"
    else result haproxy "$role" FAIL "sha256 differs: $(tail1 "$WORK/hc.err") $(tail1 "$WORK/haproxy-j.log")"; fi
  else result haproxy "$role" FAIL "no listener: $(tail1 "$WORK/haproxy-j.log")"; fi
fi

# --- PostgreSQL: a backend process forked per connection ----------------------------------------
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
if want postgres && need postgres "postmaster (fork per connection) <- Linux pgbench" \
  "${pgbin:-none}/postgres" postgresql; then
  role="postmaster (fork per connection) <- Linux pgbench"
  id postgres >/dev/null 2>&1 || useradd -r -M postgres
  mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
  asp() { runuser -u postgres -- "$@"; }
  if asp "$pgbin/initdb" -D "$WORK/pg/data" -A trust -U postgres >"$WORK/initdb.log" 2>&1; then
    echo "host all all 0.0.0.0/0 trust" >>"$WORK/pg/data/pg_hba.conf"
    bg postgres-j ip netns exec "$NS_J" runuser -u postgres -- env JOYRIDE_LIB="$LIB" \
      "$JOYRIDE" run --socket "$SOCK" -- "$pgbin/postgres" -D "$WORK/pg/data" -p 5432 \
      -c listen_addresses='*' -c unix_socket_directories="$WORK/pg" -c fsync=off
    if wait_joyride_port 5432; then
      timeout 60 lx "$pgbin/pgbench" -h "$JX" -U postgres -i -s 1 postgres >"$WORK/pgb.log" 2>&1 &&
        timeout 60 lx "$pgbin/pgbench" -h "$JX" -U postgres -c 8 -j 2 -T 3 postgres >>"$WORK/pgb.log" 2>&1
      rc=$?
      tps=$(awk '/^tps/ {print $3}' "$WORK/pgb.log" | tail -n1)
      if [ $rc = 0 ] && [ -n "$tps" ]; then result postgres "$role" PASS "$tps tps (8 clients)"
      else result postgres "$role" FAIL "rc $rc $(tail1 "$WORK/pgb.log")"; fi
    else result postgres "$role" FAIL "no listener: $(tail1 "$WORK/postgres-j.log")"; fi
  else result postgres "$role" FAIL "initdb: $(tail1 "$WORK/initdb.log")"; fi
fi

# --- the service is still healthy, and nothing leaked into it ------------------------------------
if kill -0 "${pids[0]}" 2>/dev/null; then result joyrided "survives the whole matrix" PASS "$("$JOYRIDE" stat --socket "$SOCK" | grep '^apps:' | cut -c1-90)"
else result joyrided "survives the whole matrix" FAIL "$(tail1 "$WORK/joyrided.log")"; fi

[ -z "${PAUSE:-}" ] || { echo "paused $PAUSE s: $WORK, namespaces $NS_J $NS_L"; sleep "$PAUSE"; }
echo
echo "matrix: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
