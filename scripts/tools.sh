#!/usr/bin/env bash
# scripts/tools.sh — build and check the tools the rollbook dev stack runs.
#
#   Temporal CLI v1.5.1 (dev server + Web UI)   built from the Go module proxy
#   Consul v1.14.11                             built from tools/consul (a separate module)
#   HAProxy 2.6                                 Debian package "haproxy"
#   PostgreSQL 15                               Debian package "postgresql-15"
#   Prometheus 2.42 (+ promtool)                Debian package "prometheus"
#   Alertmanager 0.25 (+ amtool)                Debian package "prometheus-alertmanager"
#
# The Go tools are built once into a cache outside the work tree, keyed by tool and version:
#   ${ROLLBOOK_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rollbook/tools}/temporal-v1.5.1/temporal
#   ${ROLLBOOK_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rollbook/tools}/consul-v1.14.11/consul
# so every clone (and CI on the same machine) reuses them. A cold build of both takes about
# 7 minutes on 2 cores; when they are present this script returns in well under a second.
#
# Debian packages are installed with apt-get when running as root on Debian/Ubuntu
# (apt-get update is run only if the install fails without it); otherwise the script
# says what to install and fails.
#
# Keep the versions in step with internal/devstack/tools.go (a test checks it).
set -euo pipefail

TEMPORAL_VERSION=v1.5.1
CONSUL_VERSION=v1.14.11
PG_MAJOR=15

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir=${ROLLBOOK_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rollbook/tools}
temporal_bin=$tools_dir/temporal-$TEMPORAL_VERSION/temporal
consul_bin=$tools_dir/consul-$CONSUL_VERSION/consul

log() { printf 'tools: %s\n' "$*" >&2; }
die() { printf 'tools: error: %s\n' "$*" >&2; exit 1; }

need_go() {
	command -v go >/dev/null 2>&1 || die "go is not on PATH (Go 1.26 is needed to build the tools)"
}

# seconds since the epoch
now() { date +%s; }

# --- Go tools -------------------------------------------------------------------------------------

# (Output is captured before matching: `cmd | grep -q` under pipefail fails at random when
# grep exits early and cmd gets SIGPIPE.)
temporal_ok() {
	local out
	[[ -x $temporal_bin ]] && out=$("$temporal_bin" --version 2>/dev/null) && [[ $out == *"version ${TEMPORAL_VERSION#v} "* ]]
}
consul_ok() {
	local out
	[[ -x $consul_bin ]] && out=$("$consul_bin" version 2>/dev/null) && [[ $out == *"Consul $CONSUL_VERSION"* ]]
}

build_temporal() {
	need_go
	local dir tmp start
	dir=$(dirname "$temporal_bin")
	mkdir -p "$dir"
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	start=$(now)
	log "building Temporal CLI $TEMPORAL_VERSION into $dir (cold build: ~5-7 min on 2 cores) ..."
	# go install pkg@version ignores the current module, so this works from anywhere.
	if ! GOBIN=$tmp GOFLAGS=-buildvcs=false go install \
		-ldflags "-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_VERSION#v}" \
		"github.com/temporalio/cli/cmd/temporal@$TEMPORAL_VERSION"; then
		rm -rf "$tmp"
		die "building the Temporal CLI failed (see above)"
	fi
	mv -f "$tmp/temporal" "$temporal_bin"
	rm -rf "$tmp"
	log "Temporal CLI built in $(($(now) - start)) s"
}

build_consul() {
	need_go
	local dir tmp start
	dir=$(dirname "$consul_bin")
	mkdir -p "$dir"
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	start=$(now)
	log "building Consul $CONSUL_VERSION from tools/consul into $dir (cold build: ~5-7 min on 2 cores) ..."
	# Consul's own go.mod has replace directives, so `go install ...@version` refuses it; a small
	# module that requires it (tools/consul) builds it instead.
	if ! (cd "$repo_root/tools/consul" && GOFLAGS=-buildvcs=false GOWORK=off \
		go build -o "$tmp/consul" github.com/hashicorp/consul); then
		rm -rf "$tmp"
		die "building Consul failed (see above)"
	fi
	mv -f "$tmp/consul" "$consul_bin"
	rm -rf "$tmp"
	log "Consul built in $(($(now) - start)) s"
}

# --- Debian packages ------------------------------------------------------------------------------

is_debian() { [[ -r /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
	# apt_install PKG... — install as root on Debian; run apt-get update only when needed.
	if [[ $(id -u) -ne 0 ]] || ! is_debian; then
		die "missing: $* — install it with: sudo apt-get install -y $*"
	fi
	log "installing $* with apt-get ..."
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "$@" </dev/null; then
		log "apt-get install failed; running apt-get update and trying again"
		apt-get update </dev/null
		apt-get install -y --no-install-recommends "$@" </dev/null
	fi
}

check_haproxy() {
	if ! command -v haproxy >/dev/null 2>&1 && [[ ! -x /usr/sbin/haproxy ]]; then
		apt_install haproxy
	fi
}

# The dev stack runs its own Prometheus and Alertmanager (private config and data under the
# stack directory); the Debian packages may also enable system services, which rollbook never
# touches.
check_prometheus() {
	local missing=()
	[[ -x ${ROLLBOOK_PROMETHEUS_BIN:-/usr/bin/prometheus} ]] || missing+=(prometheus)
	[[ -x ${ROLLBOOK_ALERTMANAGER_BIN:-/usr/bin/prometheus-alertmanager} ]] || missing+=(prometheus-alertmanager)
	((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

pg_bindir() {
	if [[ -n ${ROLLBOOK_PG_BINDIR:-} ]]; then
		echo "$ROLLBOOK_PG_BINDIR"
	else
		echo "/usr/lib/postgresql/$PG_MAJOR/bin"
	fi
}

check_postgres() {
	local bindir
	bindir=$(pg_bindir)
	if [[ ! -x $bindir/initdb || ! -x $bindir/postgres ]]; then
		[[ -n ${ROLLBOOK_PG_BINDIR:-} ]] && die "ROLLBOOK_PG_BINDIR=$ROLLBOOK_PG_BINDIR has no initdb/postgres"
		apt_install "postgresql-$PG_MAJOR"
	fi
	# The dev stack runs its own private cluster; the Debian package may have started the
	# system cluster, which rollbook never touches.
}

# --- main -----------------------------------------------------------------------------------------

main() {
	local quiet=0
	[[ ${1:-} == -q || ${1:-} == --quiet ]] && quiet=1

	check_haproxy
	check_postgres
	check_prometheus

	# Build both Go tools in parallel when both are missing (the machine has 2 cores and
	# each build is mostly single-package compile + a long link).
	local pids=() failed=0
	temporal_ok || { build_temporal & pids+=($!); }
	consul_ok || { build_consul & pids+=($!); }
	for p in "${pids[@]}"; do wait "$p" || failed=1; done
	((failed == 0)) || die "a tool build failed"

	temporal_ok || die "$temporal_bin does not run 'temporal --version' as $TEMPORAL_VERSION"
	consul_ok || die "$consul_bin does not run 'consul version' as $CONSUL_VERSION"

	if ((quiet == 0)); then
		local haproxy_bin
		haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
		local tv cv hv
		tv=$("$temporal_bin" --version)
		cv=$("$consul_bin" version)
		hv=$("$haproxy_bin" -v)
		hv=${hv%%$'\n'*}
		printf 'temporal  %s  (%s)\n' "$temporal_bin" "${tv%%$'\n'*}"
		printf 'consul    %s  (%s)\n' "$consul_bin" "${cv%%$'\n'*}"
		printf 'haproxy   %s  (%s)\n' "$haproxy_bin" "${hv% - https*}"
		printf 'postgres  %s  (%s)\n' "$(pg_bindir)" "$("$(pg_bindir)/postgres" --version)"
		local pv av
		pv=$("${ROLLBOOK_PROMETHEUS_BIN:-/usr/bin/prometheus}" --version 2>&1)
		av=$("${ROLLBOOK_ALERTMANAGER_BIN:-/usr/bin/prometheus-alertmanager}" --version 2>&1)
		printf 'prometheus    %s  (%s)\n' "${ROLLBOOK_PROMETHEUS_BIN:-/usr/bin/prometheus}" "${pv%%$'\n'*}"
		printf 'alertmanager  %s  (%s)\n' "${ROLLBOOK_ALERTMANAGER_BIN:-/usr/bin/prometheus-alertmanager}" "${av%%$'\n'*}"
	fi
}

main "$@"
