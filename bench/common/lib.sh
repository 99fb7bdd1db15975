# Shared helpers for bench/*/run.sh (source it): a throwaway TLS CA, a free port, a local
# mosquitto 2.0 TLS listener, and a process's resident set size.
#
#   source bench/common/lib.sh
#   bench_tls "$dir"                 # $dir/ca.pem, ca.key, server.pem, server.key (localhost, 127.0.0.1)
#   port=$(bench_free_port)
#   bench_mosquitto "$dir" "$port"   # starts it, sets BENCH_MOSQUITTO_PID, waits for the port
#   bench_rss_kib "$pid"             # VmRSS in KiB
#
# BENCH_KEY=rsa makes RSA-2048 keys; the default is ECDSA P-256 (what rcgen gives the emulator).

bench_tls() {
  local dir=$1
  local newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  if [[ "${BENCH_KEY:-ec}" == rsa ]]; then newkey=(-newkey rsa:2048); fi
  openssl req -x509 "${newkey[@]}" -nodes -days 1 -subj /CN=bench-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req "${newkey[@]}" -nodes -subj /CN=localhost -keyout "$dir/server.key" \
    -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$dir/san.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 1 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
}

bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_wait_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$port" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on $port" >&2
  return 1
}

# A mosquitto 2.0 TLS listener on 127.0.0.1:$port with $dir's certificate, no persistence
# (mosquitto's QoS 1 acknowledgement means "received", not "on disk").
bench_mosquitto() {
  local dir=$1 port=$2
  cat > "$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
cafile $dir/ca.pem
certfile $dir/server.pem
keyfile $dir/server.key
allow_anonymous true
# Running as root, mosquitto would switch to user mosquitto and lose access to the keys.
user root
persistence false
max_inflight_messages 0
max_queued_messages 0
CONF
  mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  BENCH_MOSQUITTO_PID=$!
  bench_wait_port "$port"
}

bench_rss_kib() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# The emulator flags that put its AMQP listeners on free ports, for a build that has them (an
# older baseline has no such flags): use unquoted, `$(bench_amqp_flags "$bin")`.
bench_amqp_flags() {
  if "$1" emulator --help | grep -q -- --amqp-plain-port; then echo "--amqp-port 0 --amqp-plain-port 0"; fi
}
