#!/bin/sh
# exec-solver.sh — a lego "exec" DNS solver (the convention of certvault's
# exec solver) that publishes dns-01 TXT records in pebble-challtestsrv,
# for tests that run a real Pebble (package test/pebble).
#
# Usage:
#   exec-solver.sh present FQDN VALUE   add VALUE to the TXT records at FQDN
#   exec-solver.sh cleanup FQDN VALUE   remove the TXT records at FQDN
#
# FQDN is the record name, e.g. "_acme-challenge.www.example.com." (a
# trailing dot is added when missing); VALUE is the base64url key
# authorization digest.
#
# Environment:
#   CHALLTESTSRV_URL  required: pebble-challtestsrv's management API, e.g.
#                     http://127.0.0.1:8055 (pebble.Server.ChallSrvURL;
#                     pebble.Server.ExecSolverEnv returns the entry).
#
# Needs curl. Exits 0 once pebble-challtestsrv has taken the change (its DNS
# server answers with it at once), 2 on a usage error, curl's status when
# the request fails.
#
# cleanup removes every TXT value at FQDN, not only VALUE:
# pebble-challtestsrv has no per-value delete. A wildcard order and its base
# name share the record, so clean up only when both are done.
set -eu

usage() {
	echo "usage: $0 present|cleanup FQDN VALUE (with CHALLTESTSRV_URL set)" >&2
	exit 2
}

[ $# -eq 3 ] || usage
action=$1 fqdn=$2 value=$3
[ -n "$fqdn" ] && [ -n "$value" ] || usage
if [ -z "${CHALLTESTSRV_URL:-}" ]; then
	echo "$0: CHALLTESTSRV_URL is not set (pebble-challtestsrv's management URL, e.g. http://127.0.0.1:8055)" >&2
	exit 2
fi
# Both go into a JSON string unescaped: refuse what would need escaping.
for v in "$fqdn" "$value"; do
	case $v in
	*[!A-Za-z0-9._*=+/-]*)
		echo "$0: refusing unexpected characters in \"$v\"" >&2
		exit 2
		;;
	esac
done
case $fqdn in
*.) ;;
*) fqdn="$fqdn." ;;
esac

case $action in
present) path=/set-txt body="{\"host\":\"$fqdn\",\"value\":\"$value\"}" ;;
cleanup) path=/clear-txt body="{\"host\":\"$fqdn\"}" ;;
*) usage ;;
esac

exec curl --silent --show-error --fail --noproxy '*' --max-time 10 \
	--header 'Content-Type: application/json' --data "$body" \
	"${CHALLTESTSRV_URL%/}$path"
