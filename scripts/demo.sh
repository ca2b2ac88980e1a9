#!/usr/bin/env bash
# demo.sh: certvault end to end on this machine, in about half a minute.
#
# Builds certvaultd, certvault and certvault-agent into a temporary
# directory, starts a single-node vault and an nginx on free 127.0.0.1
# ports, enrolls an agent for group "web", binds certificate "www" to the
# files nginx serves, rotates the certificate and waits until nginx serves
# the new one. Everything it starts is stopped, and everything it writes
# (one temporary directory) is removed, when it exits. It needs Go, nginx,
# openssl and curl ('make deps' installs the last three); run it with
# 'make demo'.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO=${GO:-go}
if ! command -v "$GO" >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	GO=/usr/local/go/bin/go
fi

step() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }

# --- prerequisites -------------------------------------------------------
NGINX=$(command -v nginx || true)
for p in /usr/sbin/nginx /usr/local/sbin/nginx; do
	[ -n "$NGINX" ] || { [ -x "$p" ] && NGINX=$p; } || true
done
missing=""
[ -n "$NGINX" ] || missing="$missing nginx"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v "$GO" >/dev/null 2>&1 || missing="$missing go"
if [ -n "$missing" ]; then
	die "missing:$missing. Run 'make deps' (as root, it installs nginx, openssl and curl); Go comes from https://go.dev/dl/"
fi

# --- cleanup -------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/certvault-demo.XXXXXX")
VAULT_PID="" AGENT_PID="" NGX_STARTED=""
NGX=$TMP/nginx
NGX_ARGS=(-p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log")

cleanup() {
	local rc=$?
	set +e
	trap - EXIT
	trap '' INT TERM # finish cleaning up even when interrupted again
	if [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; then
		echo
		echo "demo interrupted"
	elif [ "$rc" -ne 0 ]; then
		echo
		echo "demo failed (exit $rc); the last lines of each log:"
		for f in "$TMP/vault.log" "$TMP/agent.log" "$NGX/logs/error.log"; do
			[ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
		done
	fi
	step "Cleaning up"
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null
		wait "$AGENT_PID" 2>/dev/null
		echo "agent stopped"
	fi
	if [ -n "$NGX_STARTED" ]; then
		local pid
		pid=$(cat "$NGX/nginx.pid" 2>/dev/null)
		"$NGINX" "${NGX_ARGS[@]}" -s stop 2>/dev/null || { [ -n "$pid" ] && kill "$pid" 2>/dev/null; }
		for _ in $(seq 100); do
			[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		echo "nginx stopped"
	fi
	if [ -n "$VAULT_PID" ]; then
		kill "$VAULT_PID" 2>/dev/null
		for _ in $(seq 150); do
			kill -0 "$VAULT_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$VAULT_PID" 2>/dev/null
		wait "$VAULT_PID" 2>/dev/null
		echo "vault stopped"
	fi
	rm -rf "$TMP"
	echo "removed $TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers -------------------------------------------------------------
USED_PORTS=" "
# free_port prints a 127.0.0.1 port below the ephemeral range that nothing
# listens on.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		case $USED_PORTS in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED_PORTS="$USED_PORTS$p "
			echo "$p"
			return 0
		fi
	done
	return 1
}

# cv runs the admin CLI with the root token. The token is passed to this
# command only, so the agent and its hook never see it.
cv() {
	CERTVAULT_ADDR=$VAULT CERTVAULT_CACERT=$TMP/vault/ca.pem CERTVAULT_TOKEN=$ROOT_TOKEN "$BIN/certvault" "$@"
}

# try_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it
# succeeds (status 0) or SECONDS pass (status 1).
try_until() {
	local deadline=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# wait_until SECONDS WHAT COMMAND...: try_until, failing the demo when
# COMMAND never succeeds.
wait_until() {
	local limit=$1 what=$2
	shift 2
	try_until "$limit" "$@" || die "gave up after ${limit}s waiting for $what"
}

# served prints the serial and expiry of the certificate nginx serves for
# www.example.com.
served() {
	openssl s_client -connect "127.0.0.1:$NGX_PORT" -servername www.example.com </dev/null 2>/dev/null |
		openssl x509 -noout -serial -enddate 2>/dev/null || true
}

# in_vault prints the serial and expiry of www's current version.
in_vault() {
	cv cert download www --out - | openssl x509 -noout -serial -enddate
}

serial_of() { sed -n 's/^serial=//p' <<<"$1"; }
serves() { [ "$(serial_of "$(served)")" = "$1" ]; }

START=$(now_ms)

# --- build ---------------------------------------------------------------
step "Building certvaultd, certvault and certvault-agent into $TMP/bin"
BIN=$TMP/bin
(cd "$ROOT" && "$GO" build -o "$BIN/" ./cmd/certvaultd ./cmd/certvault)
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$BIN/" ./cmd/certvault-agent) # static, as shipped
ls -1 "$BIN"

# --- vault ---------------------------------------------------------------
API_PORT=$(free_port) || die "no free port"
RAFT_PORT=$(free_port) || die "no free port"
NGX_PORT=$(free_port) || die "no free port"
VAULT=https://127.0.0.1:$API_PORT

step "Starting a single-node vault on $VAULT (raft on 127.0.0.1:$RAFT_PORT)"
"$BIN/certvaultd" --data "$TMP/vault" --node-id demo --listen "127.0.0.1:$API_PORT" \
	--raft-listen "127.0.0.1:$RAFT_PORT" --log-level warn >"$TMP/vault.log" 2>&1 &
VAULT_PID=$!
vault_ready() {
	kill -0 "$VAULT_PID" 2>/dev/null || die "certvaultd exited"
	[ -s "$TMP/vault/root-token" ] && [ -s "$TMP/vault/ca.pem" ] &&
		curl -sf --max-time 2 --cacert "$TMP/vault/ca.pem" "$VAULT/readyz" >/dev/null
}
wait_until 30 "the vault to be ready" vault_ready
ROOT_TOKEN=$(cat "$TMP/vault/root-token")
cv cluster status

# --- access, certificate -------------------------------------------------
step "Letting agents of group web read certificate www"
cv role assign "Certificate User" --to group:web --scope /certificates/www

step "Creating certificate www (self-signed, CN=www.example.com)"
cv cert policy new --subject CN=www.example.com --san www.example.com --out "$TMP/policy.json"
cv cert create www --policy "$TMP/policy.json" --wait

step "Creating an agent join token for group web"
JT=$(cv agent join-token create --group web --ttl 10m -o json)
TOKEN=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' <<<"$JT")
FP=$(sed -n 's/.*"ca_fingerprint": *"\([^"]*\)".*/\1/p' <<<"$JT")
[ -n "$TOKEN" ] && [ -n "$FP" ] || die "no token in: $JT"
echo "token ${TOKEN:0:21}… (printed once), vault CA fingerprint $FP"

# --- the "VM" ------------------------------------------------------------
STATE=$TMP/agent-state
step "Joining the agent (state in $STATE)"
JOINED=$(printf '%s\n' "$TOKEN" | "$BIN/certvault-agent" join --vault "$VAULT" --token - \
	--ca-fingerprint "$FP" --state-dir "$STATE" --name demo-vm)
echo "$JOINED"
AGENT_ID=$(awk '/^joined as agent/ { print $4 }' <<<"$JOINED")
ls -l "$STATE"

TLS=$TMP/tls/www
step "Starting nginx on 127.0.0.1:$NGX_PORT with a placeholder certificate"
mkdir -p "$TLS" "$NGX/logs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
	-subj /CN=placeholder -addext subjectAltName=DNS:www.example.com \
	-keyout "$TLS/key.pem" -out "$TLS/fullchain.pem" 2>/dev/null
NGX_USER=""
if [ "$(id -u)" = 0 ] && id www-data >/dev/null 2>&1; then
	NGX_USER="user www-data www-data;"
fi
cat >"$NGX/nginx.conf" <<EOF
$NGX_USER
worker_processes 1;
daemon on;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $NGX/body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    server {
        listen 127.0.0.1:$NGX_PORT ssl;
        server_name www.example.com;
        ssl_certificate $TLS/fullchain.pem;
        ssl_certificate_key $TLS/key.pem;
        location / { return 200 "ok\n"; }
    }
}
EOF
NGX_STARTED=1
"$NGINX" "${NGX_ARGS[@]}"
wait_until 10 "nginx to serve TLS" bash -c "openssl s_client -connect 127.0.0.1:$NGX_PORT </dev/null >/dev/null 2>&1"
echo "nginx serves: $(served | tr '\n' ' ')"

step "Writing agent.yaml: www -> $TLS/{fullchain,key}.pem, reload nginx, check the served certificate"
# The reload hook logs what the agent tells it, then reloads nginx.
cat >"$TMP/reload-nginx.sh" <<EOF
#!/bin/sh
echo "\$(date +%T) hook: \$(env | grep '^CERTVAULT_' | sort | tr '\n' ' ')" >>"$TMP/hook.log"
exec "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/logs/error.log" -s reload
EOF
chmod 755 "$TMP/reload-nginx.sh"
cat >"$TMP/agent.yaml" <<EOF
vault: $VAULT
ca_file: $STATE/ca.pem
state_dir: $STATE
certificates:
  - name: www
    dir: $TLS
    files: {fullchain: fullchain.pem, key: key.pem}
    mode: "0640"
    reload: ["$TMP/reload-nginx.sh"]
    check: {tls: "127.0.0.1:$NGX_PORT", server_name: www.example.com}
    timeout: 10s
EOF
cat "$TMP/agent.yaml"
"$BIN/certvault-agent" check-config --config "$TMP/agent.yaml"

step "Starting the agent (log in $TMP/agent.log)"
"$BIN/certvault-agent" run --config "$TMP/agent.yaml" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
V1=$(in_vault)
S1=$(serial_of "$V1")
agent_installed() {
	kill -0 "$AGENT_PID" 2>/dev/null || die "certvault-agent exited: $(cat "$TMP/agent.log")"
	serves "$S1"
}
wait_until 30 "nginx to serve the vault's certificate" agent_installed
echo "vault has: $(tr '\n' ' ' <<<"$V1")"
echo "nginx serves: $(served | tr '\n' ' ')"
echo "on disk:"
ls -l "$TLS" | sed -n '/->/s/^.* \([^ ]* -> .*\)$/  \1/p'
echo "  $TLS/.certvault/www/current -> $(readlink "$TLS/.certvault/www/current")"

# --- rotation ------------------------------------------------------------
step "Rotating www: certvault cert create www --policy ... --wait"
T0=$(now_ms)
cv cert create www --policy "$TMP/policy.json" --wait >/dev/null
T1=$(now_ms)
V2=$(in_vault)
S2=$(serial_of "$V2")
[ "$S2" != "$S1" ] || die "the vault still has serial $S1 after cert create"
echo "vault has: $(tr '\n' ' ' <<<"$V2")"
wait_until 30 "nginx to serve the new certificate" serves "$S2"
T2=$(now_ms)
echo "nginx serves: $(served | tr '\n' ' ')"
echo "nginx served the new serial $(secs $((T2 - T0))) after 'cert create' started ($(secs $((T1 - T0))) of it in 'cert create --wait', $(secs $((T2 - T1))) after it returned)"
echo "reload hook runs:"
sed 's/^/  /' "$TMP/hook.log"

# --- status --------------------------------------------------------------
step "certvault agent status $AGENT_ID (what the agent reported to the vault)"
# The agent reports each install to the vault just after it; wait for it.
VERSION=$(cv cert get www | awk '/^id:/ { n = split($2, p, "/"); print p[n] }')
reported() { [[ $(cv agent status "$AGENT_ID") == *"$VERSION"* ]]; }
try_until 10 reported || echo "(the report of version $VERSION has not arrived yet)"
cv agent status "$AGENT_ID"

step "certvault-agent status (the agent's local state, readable while the vault is down)"
"$BIN/certvault-agent" status --config "$TMP/agent.yaml"

step "Agent log"
sed 's/^/  /' "$TMP/agent.log"

echo
echo "demo done in $(secs $(($(now_ms) - START)))."
