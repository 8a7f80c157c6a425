#!/usr/bin/env bash
# test.sh: the whole imapedge test suite, as CI runs it.
#
# Installs what the tests need (Dovecot from Debian's packages, python3,
# curl), checks formatting and vet, runs every test with the race detector,
# runs each fuzz target for a short while (FUZZTIME, default 10s), then the
# benchmark suite's smoke mode (installs HAProxy and nginx's mail module).
#
# Environment:
#   FUZZTIME=10s   time per fuzz target; FUZZTIME=0 skips fuzzing
#   IMAPEDGE_FULL=1  run heavy tests in their full mode
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

# Integration tests must never skip silently for want of Dovecot.
export IMAPEDGE_REQUIRE_DOVECOT=1

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n "$unformatted" ]]; then
	echo "gofmt needed on:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 15m ./...

fuzztime=${FUZZTIME:-10s}
if [[ "$fuzztime" != "0" ]]; then
	echo "== fuzz ($fuzztime per target)"
	for pkg in $(go list ./...); do
		for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
			echo "-- $pkg $target"
			go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
		done
	done
fi
echo "== benchmark smoke (scripts/bench.sh --quick: every target must work; speed is not checked)"
scripts/bench.sh --quick

echo "== all tests passed"
