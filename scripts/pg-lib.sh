# shellcheck shell=bash
# Shared helpers for a throwaway PostgreSQL server, sourced by .ci/run and scripts/pg-dev.
#
#   pg_start DIR [PORT]  initdb into DIR/data, start a server listening on 127.0.0.1:PORT (the first free
#                        port from PORT, default 55432) and on a unix socket in DIR, create the role
#                        $PG_APP_USER and the database $PG_APP_DB, and wait until it accepts connections.
#                        Sets PG_PORT and PG_URL (an SQLAlchemy URL for psycopg 3); writes them to DIR/env.
#   pg_stop DIR          stop that server (whatever state it is in) and remove DIR.
#
# As root the server runs as the unprivileged `postgres` system user (PostgreSQL refuses to run as
# root); otherwise as the current user. Authentication is `trust`: only for a throwaway local server.
# Progress goes to stderr, so a caller's stdout stays clean.

PG_APP_USER=${PG_APP_USER:-madoguchi}
PG_APP_DB=${PG_APP_DB:-madoguchi_test}
PG_SUPERUSER=postgres

pg_log() { printf '[pg] %s\n' "$*" >&2; }

# The bin directory of the newest installed PostgreSQL (PG_BINDIR overrides).
pg_bindir() {
    if [[ -n ${PG_BINDIR:-} ]]; then
        printf '%s\n' "$PG_BINDIR"
        return
    fi
    local ver
    ver=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null \
        | awk -F/ '{print $5}' | sort -V | tail -n 1)
    if [[ -n $ver ]]; then
        printf '/usr/lib/postgresql/%s/bin\n' "$ver"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        pg_log "no PostgreSQL server binaries found (apt-get install postgresql)"
        return 1
    fi
}

# Runs a command as the server's OS user, from inside DIR (the caller's cwd may be unreadable to it).
_pg_as_owner() {
    local dir=$1; shift
    if [[ $(id -u) -eq 0 ]]; then
        (cd "$dir" && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

_pg_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_start() {
    local dir=$1 port=${2:-55432} bindir locale
    bindir=$(pg_bindir) || return 1
    PG_OS_USER=$(id -un)
    if [[ $(id -u) -eq 0 ]]; then
        PG_OS_USER=postgres
        id -u "$PG_OS_USER" >/dev/null 2>&1 || { pg_log "as root, a '$PG_OS_USER' system user is needed"; return 1; }
    fi
    while ! _pg_port_free "$port"; do
        port=$((port + 1))
    done
    PG_PORT=$port
    # A UTF-8 locale so that upper()/lower()/ILIKE work on Japanese text; plain C where there is none.
    locale=C
    if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then locale=C.UTF-8; fi

    mkdir -p "$dir"
    [[ -z $(ls -A "$dir") ]] || { pg_log "$dir is not empty"; return 1; }
    if [[ $(id -u) -eq 0 ]]; then chown "$PG_OS_USER" "$dir"; fi
    chmod 700 "$dir"

    pg_log "initdb ($bindir, locale $locale) into $dir/data as $PG_OS_USER"
    _pg_as_owner "$dir" "$bindir/initdb" -D "$dir/data" -U "$PG_SUPERUSER" --auth=trust \
        --encoding=UTF8 --locale="$locale" --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    cat >>"$dir/data/postgresql.conf" <<CONF

# throwaway server for madoguchi's tests (scripts/pg-lib.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
CONF

    pg_log "starting on 127.0.0.1:$port (socket in $dir)"
    _pg_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
        || { pg_log "server did not start; its log:"; cat "$dir/postgres.log" >&2; return 1; }
    local i
    for ((i = 0; i < 60; i++)); do
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.5
    done
    "$bindir/pg_isready" -h 127.0.0.1 -p "$port" >&2 || { cat "$dir/postgres.log" >&2; return 1; }

    # The tests create and drop their own schemas and databases: the role may create databases and owns
    # the test database (and so, since PostgreSQL 15, its public schema).
    PGCONNECT_TIMEOUT=10 "$bindir/psql" -X -q -w -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U "$PG_SUPERUSER" \
        -d postgres >/dev/null <<SQL || return 1
CREATE ROLE "$PG_APP_USER" LOGIN CREATEDB;
CREATE DATABASE "$PG_APP_DB" OWNER "$PG_APP_USER";
SQL
    PG_URL="postgresql+psycopg://$PG_APP_USER@127.0.0.1:$port/$PG_APP_DB"
    printf 'PG_PORT=%s\nPG_URL=%s\n' "$PG_PORT" "$PG_URL" >"$dir/env"
    pg_log "ready: $PG_URL"
}

pg_stop() {
    local dir=$1 bindir pid
    [[ -n $dir && -d $dir ]] || return 0
    if [[ -f $dir/data/postmaster.pid ]]; then
        bindir=$(pg_bindir 2>/dev/null) || bindir=
        PG_OS_USER=$(stat -c %U "$dir/data")
        if [[ -n $bindir ]]; then
            _pg_as_owner "$dir" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
        # Whatever pg_ctl made of it: no postmaster may outlive its directory.
        pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            pg_log "postmaster $pid still running; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    rm -rf -- "$dir"
    pg_log "stopped; removed $dir"
}
