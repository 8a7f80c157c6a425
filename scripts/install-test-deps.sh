#!/usr/bin/env bash
# install-test-deps.sh: install the system packages the imapedge integration
# tests need (Debian 12):
#
#   dovecot-imapd  real IMAP backend, started privately by proxy/dovecottest
#   python3, curl  real clients used against the proxy
#
# Idempotent and fast when everything is already installed (no apt calls at
# all). Must run as root (or with sudo available) when something is missing.
#
# The package's postinst may start the system-wide Dovecot (binding 143/993 on
# all addresses). The tests never use it, so after installing we stop and
# disable it. Private test instances (own config, base_dir under a temp dir)
# are never touched.
set -euo pipefail

DOVECOT_BIN=/usr/sbin/dovecot

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

missing() {
	local need=()
	[[ -x "$DOVECOT_BIN" ]] || need+=(dovecot-imapd)
	command -v python3 >/dev/null 2>&1 || need+=(python3)
	command -v curl >/dev/null 2>&1 || need+=(curl)
	echo "${need[@]+"${need[@]}"}"
}

# apt/dpkg may already be running (e.g. a background install started when the
# machine was provisioned, logging to /tmp/apt-dovecot.log). Wait for it
# instead of fighting over the dpkg lock.
wait_for_apt() {
	local waited=0 limit=900
	while pgrep -x apt-get >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1 ||
		pgrep -x dpkg >/dev/null 2>&1 || pgrep -x unattended-upgr >/dev/null 2>&1; do
		if ((waited == 0)); then
			log "waiting for a running apt/dpkg to finish (see /tmp/apt-dovecot.log if present)..."
		fi
		if ((waited >= limit)); then
			log "apt/dpkg still running after ${limit}s; giving up"
			exit 1
		fi
		sleep 2
		waited=$((waited + 2))
	done
}

# Stop (and disable) the system-wide Dovecot if the package started it. Only
# the instance configured by /etc/dovecot/dovecot.conf is addressed: doveadm
# stop signals the master whose pid is in that config's base_dir.
stop_system_dovecot() {
	if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
		systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
	fi
	if command -v service >/dev/null 2>&1; then
		service dovecot stop >/dev/null 2>&1 || true
	fi
	if command -v update-rc.d >/dev/null 2>&1; then
		update-rc.d dovecot disable >/dev/null 2>&1 || true
	fi
	if [[ -f /etc/dovecot/dovecot.conf ]] && command -v doveadm >/dev/null 2>&1; then
		timeout 20 doveadm -c /etc/dovecot/dovecot.conf stop >/dev/null 2>&1 || true
	fi
}

need=$(missing)
if [[ -z "$need" ]]; then
	exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo -n)
	else
		log "need root to install: $need"
		exit 1
	fi
fi

wait_for_apt
# A background install may have finished in the meantime.
need=$(missing)
if [[ -z "$need" ]]; then
	exit 0
fi

log "installing: $need"
# shellcheck disable=SC2086 # $need is a space-separated package list.
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $need

if [[ "$need" == *dovecot-imapd* ]]; then
	if [[ ${#SUDO[@]} -eq 0 ]]; then
		stop_system_dovecot
	else
		"${SUDO[@]}" bash -c "$(declare -f stop_system_dovecot); stop_system_dovecot"
	fi
fi

need=$(missing)
if [[ -n "$need" ]]; then
	log "still missing after install: $need"
	exit 1
fi
log "done"
