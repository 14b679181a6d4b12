#!/usr/bin/env bash
#
# scripts/test.sh — run the whole test suite (this is what `make test` and CI
# run).
#
# Steps:
#   1. Static checks: gofmt -l and go vet ./... in every module (fail fast).
#   2. Make sure `go test -race` can work (it needs cgo, i.e. a C compiler;
#      gcc is installed with apt-get if missing).
#   3. Provision a throwaway PostgreSQL cluster for the postgreslog tests:
#      find initdb/pg_ctl/postgres (PATH, then /usr/lib/postgresql/*/bin;
#      `apt-get install -y postgresql` if absent), initdb a cluster in a
#      temporary directory as the `postgres` OS user, start it on a free
#      loopback port and create the database `eventsourced_test`.
#   4. Provision a throwaway etcd for the cluster discovery tests: find
#      `etcd` in PATH (`apt-get install -y etcd-server` if absent), start a
#      single member in a temporary directory with its client and peer URLs
#      on free loopback ports, and wait until GET /health says it is healthy.
#   5. `go test -race -count=1 -timeout 12m ./...` in EVERY Go module of the
#      repository (every go.mod except those under testdata/).
#   6. Always (EXIT trap: success, failure, Ctrl-C) stop PostgreSQL and etcd
#      and delete their directories.
#
# Usage:
#   scripts/test.sh [extra go test flags...]     e.g. scripts/test.sh -run TestFoo -v
#
# Environment read by this script:
#   CI=true                        provisioning failures are fatal (exit 1);
#                                  without CI they are a warning and the tests
#                                  run without a database (and skip).
#   GO                             go command to use (default: go).
#   EVENTSOURCED_SKIP_CHECKS=1     skip the gofmt/vet step.
#   EVENTSOURCED_SKIP_POSTGRES=1   do not provision PostgreSQL.
#   EVENTSOURCED_SKIP_ETCD=1       do not provision etcd.
#   EVENTSOURCED_PG_SEARCH_PATH    where to look for the server binaries
#                                  first (default: $PATH).
#   EVENTSOURCED_PG_SEARCH_GLOB    then here (default: /usr/lib/postgresql/*/bin).
#
# Environment exported to the tests when PostgreSQL is up (any values
# inherited from the caller are discarded first):
#   EVENTSOURCED_POSTGRES_DSN  postgres://postgres@127.0.0.1:PORT/eventsourced_test?sslmode=disable
#   EVENTSOURCED_PG_BIN        directory holding initdb, pg_ctl, postgres (psql, ...)
#   EVENTSOURCED_PG_CTL        path of pg_ctl
#   EVENTSOURCED_PG_DATA       the cluster's data directory
#   EVENTSOURCED_PG_LOG        server log file (pass it to `pg_ctl start -l`)
#   EVENTSOURCED_PG_USER       OS user owning the cluster: "postgres" when
#                              this script runs as root, else the current user
#   EVENTSOURCED_PG_PORT       the TCP port (also in the DSN)
#
# Environment exported to the tests when etcd is up (an inherited value is
# discarded first):
#   EVENTSOURCED_ETCD_ENDPOINTS  http://127.0.0.1:PORT, the client URL of the
#                                single etcd member (comma-separated if
#                                there were several). Tests use a fresh key
#                                prefix each; the data is deleted at the end.
#
# Stopping/starting the server from a test (fault injection). The server
# refuses to run as root, so when the test process is root (os.Geteuid()==0)
# run pg_ctl as EVENTSOURCED_PG_USER via runuser; otherwise run pg_ctl directly
# (the cluster then belongs to the current user). Port, listen address and
# socket directory are in the cluster's config, so no -o options are needed:
#
#   # crash the server (no shutdown checkpoint; WAL recovery on next start)
#   runuser -u "$EVENTSOURCED_PG_USER" -- \
#       "$EVENTSOURCED_PG_CTL" -D "$EVENTSOURCED_PG_DATA" -m immediate -w stop
#   # start it again; returns once it accepts connections
#   runuser -u "$EVENTSOURCED_PG_USER" -- \
#       "$EVENTSOURCED_PG_CTL" -D "$EVENTSOURCED_PG_DATA" -l "$EVENTSOURCED_PG_LOG" -w -t 60 start
#
#   (equivalently: su -s /bin/sh postgres -c '<pg_ctl command>')
#
# ALWAYS pass `-l "$EVENTSOURCED_PG_LOG"` to `pg_ctl start`: without it the
# server inherits pg_ctl's stdout/stderr, and Go's exec.Cmd.Output/
# CombinedOutput/Run with a buffer would block until the server exits.
# Set cmd.Dir to filepath.Dir(EVENTSOURCED_PG_DATA) (a directory the postgres
# user can enter). A test that stops the server must start it again before it
# returns; if it does not, this script still cleans up.

set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Flags for every `go test` run. The whole suite must finish in < 15 min on a
# 2-core CI machine; 12m is the per-module hard limit.
GO_TEST_FLAGS=(-race -count=1 -timeout 12m)

# Name of the database the tests use.
TEST_DB=eventsourced_test

# Where to look for initdb/pg_ctl/postgres.
PG_SEARCH_PATH=${EVENTSOURCED_PG_SEARCH_PATH:-$PATH}
PG_SEARCH_GLOB=${EVENTSOURCED_PG_SEARCH_GLOB:-/usr/lib/postgresql/*/bin}

# State of the throwaway cluster (filled in by provision_postgres; read by
# stop_postgres from the EXIT trap).
PG_BIN=""  # directory with initdb, pg_ctl, postgres
PG_USER="" # OS user that owns and runs the cluster
PG_TMP=""  # temporary directory: data dir, log, unix socket
PG_DATA="" # $PG_TMP/data
PG_LOG=""  # $PG_TMP/postgres.log
PG_PORT="" # TCP port on 127.0.0.1

# State of the throwaway etcd (filled in by provision_etcd; read by
# stop_etcd from the EXIT trap).
ETCD_BIN=""  # the etcd program
ETCD_TMP=""  # temporary directory: data dir and log
ETCD_PID=""  # the server's process id
ETCD_PORT="" # client port on 127.0.0.1

APT_UPDATED="" # set once `apt-get update` has run

# OS user that runs the server when this script runs as root.
PG_OS_USER=postgres

# The variables exported to the tests.
PG_ENV_VARS="EVENTSOURCED_POSTGRES_DSN EVENTSOURCED_PG_BIN EVENTSOURCED_PG_CTL
EVENTSOURCED_PG_DATA EVENTSOURCED_PG_LOG EVENTSOURCED_PG_USER EVENTSOURCED_PG_PORT"

# NOTE: provision_postgres and the functions it calls run as the condition of
# an `if`, where bash ignores `set -e`. Every step that can fail therefore
# checks its result explicitly (`|| return 1`).

# ---------------------------------------------------------------------------
# Package installation
# ---------------------------------------------------------------------------

is_root() { [ "$(id -u)" -eq 0 ]; }

# as_root CMD...: run CMD as root (directly, or via password-less sudo),
# non-interactively as far as apt/dpkg are concerned.
as_root() {
	if is_root; then
		DEBIAN_FRONTEND=noninteractive "$@"
	else
		sudo -n env DEBIAN_FRONTEND=noninteractive "$@"
	fi
}

# apt_install PKG...: install Debian packages (apt-get update runs once).
apt_install() {
	if ! command -v apt-get >/dev/null 2>&1; then
		err "apt-get is not available; cannot install: $*"
		return 1
	fi
	if ! is_root && ! { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
		err "installing $* needs root or password-less sudo"
		return 1
	fi
	if [ -z "$APT_UPDATED" ]; then
		log "apt-get update"
		as_root apt-get update -q || {
			err "apt-get update failed"
			return 1
		}
		APT_UPDATED=1
	fi
	log "apt-get install -y $*"
	as_root apt-get install -y -q "$@" || {
		err "apt-get install -y $* failed"
		return 1
	}
}

# ---------------------------------------------------------------------------
# Go toolchain
# ---------------------------------------------------------------------------

# ensure_race_toolchain: `go test -race` needs cgo, which Go disables when no
# C compiler is found. Install gcc if needed.
ensure_race_toolchain() {
	[ "$("$GO" env CGO_ENABLED)" = 1 ] && return 0
	if [ "${CGO_ENABLED:-}" = 0 ]; then
		err "CGO_ENABLED=0 is set, but go test -race needs cgo"
		return 1
	fi
	warn "no C compiler ($("$GO" env CC)) found; go test -race needs cgo — installing gcc"
	apt_install gcc libc6-dev || return 1
	[ "$("$GO" env CGO_ENABLED)" = 1 ] || {
		err "cgo is still disabled after installing gcc"
		return 1
	}
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# pg_bin_dir_ok DIR: DIR holds all three server programs we need.
pg_bin_dir_ok() {
	[ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]
}

# find_pg_bin: print the directory holding initdb, pg_ctl and postgres.
# Looks in $PG_SEARCH_PATH (symlinks such as /usr/local/bin/initdb ->
# /usr/lib/postgresql/15/bin/initdb are resolved, so we get the real
# directory), then in $PG_SEARCH_GLOB, newest major version first.
# Fails if none is found.
find_pg_bin() {
	local rest="$PG_SEARCH_PATH:" entry resolved dir
	while [ -n "$rest" ]; do
		entry=${rest%%:*}
		rest=${rest#*:}
		if [ -z "$entry" ] || [ ! -x "$entry/initdb" ]; then
			continue
		fi
		resolved=$(readlink -f "$entry/initdb" 2>/dev/null || true)
		if [ -n "$resolved" ] && pg_bin_dir_ok "${resolved%/*}"; then
			printf '%s\n' "${resolved%/*}"
			return 0
		fi
		if pg_bin_dir_ok "$entry"; then
			printf '%s\n' "$entry"
			return 0
		fi
	done
	# $PG_SEARCH_GLOB is deliberately unquoted: it is a glob. A pattern that
	# matches nothing stays literal and fails pg_bin_dir_ok.
	# shellcheck disable=SC2086
	for dir in $(printf '%s\n' $PG_SEARCH_GLOB | sort -V -r); do
		if pg_bin_dir_ok "$dir"; then
			printf '%s\n' "$dir"
			return 0
		fi
	done
	return 1
}

# ensure_pg_binaries: set PG_BIN, installing the `postgresql` package if the
# server programs are nowhere to be found.
ensure_pg_binaries() {
	if PG_BIN=$(find_pg_bin); then
		return 0
	fi
	warn "PostgreSQL server programs (initdb, pg_ctl, postgres) not found in PATH or $PG_SEARCH_GLOB"
	apt_install postgresql || return 1
	PG_BIN=$(find_pg_bin) || {
		err "package postgresql is installed, but initdb/pg_ctl/postgres are still not found"
		return 1
	}
}

# pg_tool NAME: print the path of a PostgreSQL client program (psql,
# pg_isready, createdb): from PG_BIN, else from PATH.
pg_tool() {
	if [ -x "$PG_BIN/$1" ]; then
		printf '%s\n' "$PG_BIN/$1"
	else
		command -v "$1"
	fi
}

# setup_pg_user: choose the OS user that runs the server. PostgreSQL refuses
# to run as root, so as root we use `postgres` (created if missing);
# otherwise the current user.
setup_pg_user() {
	if ! is_root; then
		PG_USER=$(id -un) || return 1
		return 0
	fi
	PG_USER=$PG_OS_USER
	if id -u "$PG_USER" >/dev/null 2>&1; then
		return 0
	fi
	log "creating OS user $PG_USER"
	if command -v useradd >/dev/null 2>&1; then
		if getent group "$PG_USER" >/dev/null 2>&1; then
			useradd --system --gid "$PG_USER" --no-create-home \
				--home-dir /var/lib/postgresql --shell /bin/sh "$PG_USER"
		else
			useradd --system --user-group --no-create-home \
				--home-dir /var/lib/postgresql --shell /bin/sh "$PG_USER"
		fi
	else
		adduser --system --group --no-create-home \
			--home /var/lib/postgresql --shell /bin/sh "$PG_USER"
	fi || {
		err "could not create OS user $PG_USER"
		return 1
	}
}

# as_pg CMD...: run CMD as the cluster's OS user, from inside $PG_TMP (so the
# user can always enter its working directory).
as_pg() {
	if ! is_root; then
		(cd "$PG_TMP" && "$@")
	elif command -v runuser >/dev/null 2>&1; then
		(cd "$PG_TMP" && runuser -u "$PG_USER" -- "$@")
	else
		(cd "$PG_TMP" && su -s /bin/bash "$PG_USER" -c "$(printf '%q ' "$@")")
	fi
}

# free_port: print a currently unused TCP port on 127.0.0.1, in 20000-32767:
# below the kernel's ephemeral range (Linux 32768-60999), so that no other
# program's bind of port 0 or outgoing connection takes it before the server
# binds it, or while a test has the server stopped (see internal/freeport).
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import random, socket
for _ in range(1000):
    s = socket.socket()
    port = random.randint(20000, 32767)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port in 20000-32767")' && return 0
	fi
	# Fallback: try random ports until one has nobody listening.
	local port tries
	for tries in $(seq 1000); do
		port=$((20000 + RANDOM % 12768))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	return 1
}

# write_pg_conf: (re)write our settings, included from postgresql.conf.
write_pg_conf() {
	cat >"$PG_DATA/eventsourced-test.conf" <<EOF || return 1
# Written by scripts/test.sh: throwaway cluster for the test suite.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_TMP'
max_connections = 200
# fsync=off: the cluster is deleted after the run and the OS never crashes
# under it, so skipping fsync loses nothing; committed data still survives
# pg_ctl stop -m immediate (what fault tests do). Do NOT add
# synchronous_commit=off: commits acknowledged in the last ~600ms would then
# be lost by an immediate stop, breaking crash-recovery tests.
fsync = off
EOF
	if is_root; then
		chown "$PG_USER" "$PG_DATA/eventsourced-test.conf" || return 1
	fi
}

# init_pg_cluster: create $PG_TMP and initdb a cluster in it.
init_pg_cluster() {
	local base=${TMPDIR:-/tmp}
	# As root, stay in /tmp: the postgres user must be able to reach the
	# directory, and root's TMPDIR may be private.
	is_root && base=/tmp
	PG_TMP=$(mktemp -d "$base/eventsourced-pg.XXXXXX") || {
		err "could not create a temporary directory in $base"
		return 1
	}
	PG_DATA=$PG_TMP/data
	PG_LOG=$PG_TMP/postgres.log
	if is_root; then
		chown "$PG_USER" "$PG_TMP" || return 1
	fi
	chmod 0700 "$PG_TMP" || return 1

	info "initdb $PG_DATA (as OS user $PG_USER)"
	as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C --no-sync >"$PG_TMP/initdb.log" 2>&1 || {
		err "initdb failed:"
		sed 's/^/    /' "$PG_TMP/initdb.log" >&2
		return 1
	}

	# Trust everything local: unix socket and loopback only (the server
	# listens on 127.0.0.1 only).
	cat >"$PG_DATA/pg_hba.conf" <<EOF || return 1
# Written by scripts/test.sh: throwaway cluster, trust auth on loopback.
local all all              trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128      trust
EOF
	printf "\ninclude 'eventsourced-test.conf'\n" >>"$PG_DATA/postgresql.conf" || return 1
}

# start_pg_cluster: pick a port and start the server (retried with a new
# port in case another process grabbed ours in the meantime).
start_pg_cluster() {
	local attempt
	for attempt in 1 2 3; do
		PG_PORT=$(free_port) || {
			err "could not find a free TCP port on 127.0.0.1"
			return 1
		}
		write_pg_conf || return 1
		info "starting PostgreSQL on 127.0.0.1:$PG_PORT (attempt $attempt)"
		if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null; then
			return 0
		fi
		warn "pg_ctl start failed; end of $PG_LOG:"
		tail -n 20 "$PG_LOG" 2>/dev/null | sed 's/^/    /' >&2
		# In case it came up after all (slow start), make sure it is down.
		as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
	done
	err "could not start PostgreSQL"
	return 1
}

# create_test_db: create $TEST_DB (as the postgres superuser, over TCP).
create_test_db() {
	local createdb psql
	if createdb=$(pg_tool createdb); then
		"$createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$TEST_DB"
	elif psql=$(pg_tool psql); then
		"$psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
			-c "CREATE DATABASE $TEST_DB"
	else
		err "neither createdb nor psql found"
		false
	fi || {
		err "could not create database $TEST_DB"
		return 1
	}
}

# pg_sanity_check DSN: the server answers on the DSN the tests will use.
pg_sanity_check() {
	local dsn=$1 tool out
	if tool=$(pg_tool pg_isready); then
		"$tool" -q -d "$dsn" -t 10 || {
			err "pg_isready: server not ready at $dsn"
			return 1
		}
	fi
	if tool=$(pg_tool psql); then
		out=$("$tool" "$dsn" -X -q -t -A -c 'select 1') || out=""
		if [ "$out" != 1 ]; then
			err "psql \"$dsn\" -c 'select 1' failed (got: ${out:-nothing})"
			return 1
		fi
		info "sanity check ok: psql \"\$EVENTSOURCED_POSTGRES_DSN\" -c 'select 1' returned 1"
	else
		warn "psql not found; only checked with pg_isready"
	fi
}

# provision_postgres: the whole PostgreSQL setup; exports the EVENTSOURCED_*
# variables on success.
provision_postgres() {
	log "provisioning a throwaway PostgreSQL cluster"
	ensure_pg_binaries || return 1
	info "server programs: $PG_BIN ($("$PG_BIN/postgres" --version 2>/dev/null || echo 'unknown version'))"
	setup_pg_user || return 1
	init_pg_cluster || return 1
	start_pg_cluster || return 1
	create_test_db || return 1

	local dsn="postgres://postgres@127.0.0.1:$PG_PORT/$TEST_DB?sslmode=disable"
	pg_sanity_check "$dsn" || return 1

	export EVENTSOURCED_POSTGRES_DSN=$dsn
	export EVENTSOURCED_PG_BIN=$PG_BIN
	export EVENTSOURCED_PG_CTL=$PG_BIN/pg_ctl
	export EVENTSOURCED_PG_DATA=$PG_DATA
	export EVENTSOURCED_PG_LOG=$PG_LOG
	export EVENTSOURCED_PG_USER=$PG_USER
	export EVENTSOURCED_PG_PORT=$PG_PORT
	info "PostgreSQL is up:"
	local v
	for v in $PG_ENV_VARS; do
		info "  $v=${!v}"
	done
}

# stop_postgres: stop the cluster (if running) and delete its directory.
# Safe to call more than once and at any stage of provisioning.
stop_postgres() {
	[ -n "$PG_TMP" ] && [ -d "$PG_TMP" ] || return 0
	if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
		log "stopping the test PostgreSQL"
		as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
			true
		# Last resort: kill the postmaster (its children follow it).
		if [ -f "$PG_DATA/postmaster.pid" ]; then
			local pid
			pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
			if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
				warn "pg_ctl stop failed; killing postmaster $pid"
				kill -KILL "$pid" 2>/dev/null || true
				sleep 1
			fi
		fi
	fi
	case "$PG_TMP" in
	*/eventsourced-pg.*) rm -rf "$PG_TMP" || warn "could not remove $PG_TMP" ;;
	esac
	[ -d "$PG_TMP" ] || info "removed $PG_TMP"
	PG_TMP=""
}

unset_pg_env() {
	local v
	for v in $PG_ENV_VARS; do
		unset "$v"
	done
}

# ---------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------

# ensure_etcd_binary: set ETCD_BIN, installing the `etcd-server` package if
# etcd is not in PATH.
ensure_etcd_binary() {
	if ETCD_BIN=$(command -v etcd); then
		return 0
	fi
	warn "etcd not found in PATH"
	apt_install etcd-server || return 1
	ETCD_BIN=$(command -v etcd) || {
		err "package etcd-server is installed, but etcd is still not in PATH"
		return 1
	}
}

# etcd_healthy PORT: the server on PORT answers GET /health with
# {"health":"true"} (bash's /dev/tcp: no curl needed), within 5 s.
etcd_healthy() {
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
		grep -q "\"health\":\"true\"" <&3' _ "$1" 2>/dev/null
}

# start_etcd: pick two free ports and start a single-member etcd on them in
# the background (retried with new ports in case another process grabbed
# one meanwhile); returns once it is healthy.
start_etcd() {
	local attempt peer i
	for attempt in 1 2 3; do
		ETCD_PORT=$(free_port) && peer=$(free_port) || {
			err "could not find a free TCP port on 127.0.0.1"
			return 1
		}
		if [ "$ETCD_PORT" = "$peer" ]; then
			continue
		fi
		rm -rf "$ETCD_TMP/data"
		info "starting etcd on 127.0.0.1:$ETCD_PORT (peer port $peer; attempt $attempt)"
		"$ETCD_BIN" --name eventsourced-test --data-dir "$ETCD_TMP/data" \
			--listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
			--advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
			--listen-peer-urls "http://127.0.0.1:$peer" \
			--initial-advertise-peer-urls "http://127.0.0.1:$peer" \
			--initial-cluster "eventsourced-test=http://127.0.0.1:$peer" \
			--initial-cluster-state new \
			</dev/null >"$ETCD_TMP/etcd.log" 2>&1 &
		ETCD_PID=$!
		for i in $(seq 1 60); do
			if ! kill -0 "$ETCD_PID" 2>/dev/null; then
				break
			fi
			if etcd_healthy "$ETCD_PORT"; then
				return 0
			fi
			sleep 0.5
		done
		warn "etcd did not become healthy; end of $ETCD_TMP/etcd.log:"
		tail -n 20 "$ETCD_TMP/etcd.log" 2>/dev/null | sed 's/^/    /' >&2
		kill_etcd
	done
	err "could not start etcd"
	return 1
}

# provision_etcd: the whole etcd setup; exports EVENTSOURCED_ETCD_ENDPOINTS
# on success.
provision_etcd() {
	log "provisioning a throwaway etcd"
	ensure_etcd_binary || return 1
	info "etcd: $ETCD_BIN ($("$ETCD_BIN" --version 2>/dev/null | head -n 1 || echo 'unknown version'))"
	ETCD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/eventsourced-etcd.XXXXXX") || {
		err "could not create a temporary directory"
		return 1
	}
	chmod 0700 "$ETCD_TMP" || return 1
	start_etcd || return 1
	export EVENTSOURCED_ETCD_ENDPOINTS="http://127.0.0.1:$ETCD_PORT"
	info "etcd is up (pid $ETCD_PID): EVENTSOURCED_ETCD_ENDPOINTS=$EVENTSOURCED_ETCD_ENDPOINTS"
}

# kill_etcd: stop the server (TERM, then KILL after 10 s) if it runs.
kill_etcd() {
	[ -n "$ETCD_PID" ] || return 0
	if kill -0 "$ETCD_PID" 2>/dev/null; then
		kill -TERM "$ETCD_PID" 2>/dev/null || true
		local i
		for i in $(seq 1 20); do
			kill -0 "$ETCD_PID" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$ETCD_PID" 2>/dev/null; then
			warn "etcd $ETCD_PID ignored SIGTERM; killing it"
			kill -KILL "$ETCD_PID" 2>/dev/null || true
		fi
	fi
	wait "$ETCD_PID" 2>/dev/null || true
	ETCD_PID=""
}

# stop_etcd: stop the server and delete its directory. Safe to call more
# than once and at any stage of provisioning.
stop_etcd() {
	if [ -n "$ETCD_PID" ]; then
		log "stopping the test etcd"
		kill_etcd
	fi
	[ -n "$ETCD_TMP" ] && [ -d "$ETCD_TMP" ] || return 0
	case "$ETCD_TMP" in
	*/eventsourced-etcd.*) rm -rf "$ETCD_TMP" || warn "could not remove $ETCD_TMP" ;;
	esac
	[ -d "$ETCD_TMP" ] || info "removed $ETCD_TMP"
	ETCD_TMP=""
}

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# run_tests [go test flags...]: go test in every module; report all
# failures, fail if any module failed.
run_tests() {
	local dir mod rel start failed="" count=0
	while IFS= read -r dir; do
		mod=$(module_path "$dir")
		rel=$(rel_dir "$dir")
		count=$((count + 1))
		log "testing module $mod ($rel): go test ${GO_TEST_FLAGS[*]}${*:+ $*} ./..."
		start=$SECONDS
		if (cd "$dir" && "$GO" test "${GO_TEST_FLAGS[@]}" "$@" ./... </dev/null); then
			info "PASS $mod ($((SECONDS - start))s)"
		else
			err "FAIL $mod ($((SECONDS - start))s)"
			failed="$failed $mod"
		fi
	done < <(list_modules)

	if [ "$count" -eq 0 ]; then
		err "no go.mod found under $REPO_ROOT"
		return 1
	fi
	if [ -n "$failed" ]; then
		err "tests failed in:$failed"
		return 1
	fi
	log "all $count module(s) passed"
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	stop_postgres || true
	stop_etcd || true
	exit "$rc"
}

main() {
	trap on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	cd "$REPO_ROOT"

	command -v "$GO" >/dev/null 2>&1 ||
		die "'$GO' not found in PATH (add /usr/local/go/bin to PATH)"
	log "$("$GO" version); CI=${CI:-<unset>}"

	# 1. Static checks first: cheap, and they fail fast.
	if [ "${EVENTSOURCED_SKIP_CHECKS:-}" = 1 ]; then
		warn "EVENTSOURCED_SKIP_CHECKS=1: skipping gofmt/go vet"
	else
		bash "$REPO_ROOT/scripts/check.sh" all || die "static checks failed"
	fi

	# 2. The race detector needs cgo.
	ensure_race_toolchain || die "cannot run go test -race (see above)"

	# 3. PostgreSQL. Never use a database inherited from the environment.
	unset_pg_env
	if [ "${EVENTSOURCED_SKIP_POSTGRES:-}" = 1 ]; then
		warn "EVENTSOURCED_SKIP_POSTGRES=1: not provisioning PostgreSQL; its tests will skip"
	elif ! provision_postgres; then
		stop_postgres
		unset_pg_env
		if is_ci; then
			die "PostgreSQL provisioning failed (see above); CI=$CI, so this is fatal"
		fi
		warn "PostgreSQL provisioning failed (see above). Running the tests WITHOUT"
		warn "EVENTSOURCED_POSTGRES_DSN: PostgreSQL tests will skip. (With CI=true this is an error.)"
	fi

	# 4. etcd, for the cluster discovery tests.
	unset EVENTSOURCED_ETCD_ENDPOINTS
	if [ "${EVENTSOURCED_SKIP_ETCD:-}" = 1 ]; then
		warn "EVENTSOURCED_SKIP_ETCD=1: not provisioning etcd; its tests will skip"
	elif ! provision_etcd; then
		stop_etcd
		unset EVENTSOURCED_ETCD_ENDPOINTS
		if is_ci; then
			die "etcd provisioning failed (see above); CI=$CI, so this is fatal"
		fi
		warn "etcd provisioning failed (see above). Running the tests WITHOUT"
		warn "EVENTSOURCED_ETCD_ENDPOINTS: etcd tests will skip. (With CI=true this is an error.)"
	fi

	# 5. The tests themselves.
	run_tests "$@"
}

# Run main unless sourced (sourcing lets one exercise single functions).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
