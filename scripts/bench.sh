#!/usr/bin/env bash
# bench.sh: compare imapedge with Dovecot directly, HAProxy (TCP mode) and
# nginx's mail proxy, everything on loopback on this machine.
#
#   scripts/bench.sh           full suite (3 rounds; about 7-9 minutes on 2 cores)
#   scripts/bench.sh --quick   CI smoke mode (about 30-60 s): every target must
#                              work with zero errors and zero lost sessions,
#                              and `imapedge-bench ab` must run
#
# To measure one change, compare two builds with imapedge-bench ab:
#   go build -o /tmp/old/imapedge ./cmd/imapedge   (before the change)
#   go build -o /tmp/new/imapedge ./cmd/imapedge   (after)
#   go run ./cmd/imapedge-bench ab -a /tmp/old/imapedge -b /tmp/new/imapedge
#
# Installs Dovecot (scripts/install-test-deps.sh) and haproxy, nginx and
# libnginx-mod-mail from Debian's packages if missing, builds imapedge and
# imapedge-bench into a temporary directory and runs `imapedge-bench suite`.
# Results: one JSON line per run in bench-results/bench-<time>.json and the
# printed report (markdown table) in bench-results/bench-<time>.md.
# Extra arguments after the options are passed to `imapedge-bench suite`
# (e.g. -rounds 1, -targets imapedge,haproxy, -keep).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
extra=()
for arg in "$@"; do
	case "$arg" in
	--quick | -quick) quick=(-quick) ;;
	-h | --help)
		sed -n '2,22p' "$0"
		exit 0
		;;
	*) extra+=("$arg") ;;
	esac
done

log() { printf 'bench: %s\n' "$*" >&2; }

scripts/install-test-deps.sh

# The peers. Their packages may start system-wide daemons (nginx on :80,
# haproxy with /etc/haproxy/haproxy.cfg); the benchmark starts its own
# instances with private configs, so those are stopped again.
need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
compgen -G '/usr/lib/nginx/modules/ngx_mail_module.so' >/dev/null || need+=(libnginx-mod-mail)
if ((${#need[@]} > 0)); then
	SUDO=()
	if [[ "$(id -u)" -ne 0 ]]; then
		if command -v sudo >/dev/null 2>&1; then
			SUDO=(sudo -n)
		else
			log "need root to install: ${need[*]}"
			exit 1
		fi
	fi
	log "installing: ${need[*]}"
	"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}"
	for svc in nginx haproxy; do
		if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
			"${SUDO[@]}" systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
		fi
		"${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
	done
	# Whatever the packages started must not keep their default ports.
	if command -v ss >/dev/null 2>&1; then
		if ss -Hltn 'sport = :80 or sport = :443' 2>/dev/null | grep -q .; then
			log "warning: something still listens on port 80/443 (not started by this script?):"
			ss -ltnp 'sport = :80 or sport = :443' >&2 || true
		fi
	fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/imapedge-bench-bin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "building imapedge and imapedge-bench"
go build -o "$tmp/imapedge" ./cmd/imapedge
go build -o "$tmp/imapedge-bench" ./cmd/imapedge-bench

mkdir -p bench-results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mode=full
((${#quick[@]} > 0)) && mode=quick
json="bench-results/bench-$stamp-$mode.json"
report="bench-results/bench-$stamp-$mode.md"
log "running the $mode suite; results in $json and $report"

# The JSON lines go to $json (-json); stdout carries them too, followed by
# the report, which is kept in $report.
set +e
"$tmp/imapedge-bench" suite "${quick[@]}" -json "$json" -imapedge "$tmp/imapedge" \
	"${extra[@]+"${extra[@]}"}" | tee "$tmp/stdout"
status=${PIPESTATUS[0]}
set -e
grep -v '^{' "$tmp/stdout" >"$report" || true
if ((status == 0 && ${#quick[@]} > 0)); then
	# The A/B comparison (imapedge-bench ab) works too: the binary against
	# itself, tiny sizes.
	log "smoke-testing imapedge-bench ab"
	"$tmp/imapedge-bench" ab -a "$tmp/imapedge" -b "$tmp/imapedge" -rounds 1 -logins 20 -noops 50 || status=$?
fi
exit "$status"
