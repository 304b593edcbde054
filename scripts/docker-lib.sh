# shellcheck shell=bash
# Shared helpers for a private Docker daemon that builds and runs madoguchi's image, sourced by .ci/run and
# scripts/docker-ci. Nothing here touches a system-wide dockerd: the daemon has its own data root, exec root,
# pid file and socket under DIR, no bridge and no iptables rules (containers run with --network host), so
# stopping it leaves nothing behind but DIR.
#
#   docker_install         apt-get install docker.io and debootstrap where dockerd or debootstrap is missing
#   docker_start DIR       start dockerd with its state in DIR (reused if it is there); sets and exports
#                          DOCKER_HOST=unix://DIR/docker.sock; waits until it answers
#   docker_stop DIR        stop that daemon (its containers die with it); DIR stays (the cache of images)
#   docker_base TAG        make the base image TAG (Debian 12 minbase with python3, python3-venv and
#                          ca-certificates, by debootstrap + docker import) unless the daemon has it already:
#                          no container registry is reachable here, so python:3.11-slim cannot be pulled
#   docker_build TAG BASE  build the repository's Dockerfile as TAG on BASE (BASE_IMAGE), legacy builder,
#                          --network host; the host's CA bundle goes to the builder stage only (docker/extra-ca/)
#
# Progress goes to stderr, so a caller's stdout stays clean. Needs root (dockerd, debootstrap).

docker_log() { printf '[docker] %s\n' "$*" >&2; }

_docker_sudo() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

docker_install() {
    if command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 \
        && command -v docker >/dev/null 2>&1; then
        return 0
    fi
    docker_log "apt-get install docker.io debootstrap"
    DEBIAN_FRONTEND=noninteractive _docker_sudo apt-get -qq -o Acquire::Retries=3 update
    DEBIAN_FRONTEND=noninteractive _docker_sudo apt-get -qq -y -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 \
        install --no-install-recommends --no-upgrade docker.io debootstrap >/dev/null
}

_docker_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

docker_start() {
    local dir=$1 i
    mkdir -p "$dir"
    export DOCKER_HOST="unix://$dir/docker.sock"
    if [[ -f $dir/dockerd.pid ]] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null && _docker_answers; then
        docker_log "dockerd already running ($DOCKER_HOST)"
        return 0
    fi
    rm -f "$dir/dockerd.pid" "$dir/docker.sock"
    docker_log "starting dockerd ($DOCKER_HOST, data root $dir/data)"
    # setsid: the daemon is not in the caller's process group, so a ^C reaches it only through docker_stop.
    _docker_sudo setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
        -H "$DOCKER_HOST" --iptables=false --ip-masq=false --bridge=none \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    for ((i = 0; i < 120; i++)); do
        _docker_answers && { docker_log "dockerd $(docker version --format '{{.Server.Version}}') ready"; return 0; }
        sleep 0.5
    done
    docker_log "dockerd did not answer within 60 s; its log:"
    tail -n 30 "$dir/dockerd.log" >&2
    return 1
}

docker_stop() {
    local dir=$1 pid i
    [[ -n $dir && -f $dir/dockerd.pid ]] || return 0
    pid=$(cat "$dir/dockerd.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        _docker_sudo kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            docker_log "dockerd $pid still running after 30 s; killing it"
            _docker_sudo kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/dockerd.pid"
    # dockerd leaves its default network namespace bind-mounted under the exec root (and, when killed, its
    # containers' mounts): unmount whatever is left under DIR, deepest first, so DIR can be removed.
    local mount
    awk -v dir="$dir/" 'index($2, dir) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r mount; do
        _docker_sudo umount -l "$mount" 2>/dev/null || true
    done
    docker_log "dockerd stopped"
}

# The Debian mirror apt uses on this machine (deb822 or one-line sources), else deb.debian.org.
_docker_mirror() {
    local uri
    uri=$(grep -hs -m1 -E '^URIs:.*debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true)
    [[ -n $uri ]] || uri=$(grep -hs -m1 -E '^deb .*debian/? +bookworm' /etc/apt/sources.list \
        /etc/apt/sources.list.d/*.list | awk '{print $2}' || true)
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

docker_base() {
    local tag=$1 root mirror
    if docker image inspect "$tag" >/dev/null 2>&1; then
        docker_log "base image $tag already there"
        return 0
    fi
    mirror=$(_docker_mirror)
    root=$(mktemp -d /tmp/madoguchi-base.XXXXXX)
    docker_log "debootstrap bookworm (minbase + python3, python3-venv, ca-certificates) from $mirror"
    if ! _docker_sudo debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$root" "$mirror" >"$root.log" 2>&1; then
        tail -n 30 "$root.log" >&2
        _docker_sudo rm -rf -- "$root" "$root.log"
        return 1
    fi
    # What an image needs no copy of: downloaded packages, package lists, docs, man pages, translations.
    _docker_sudo rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*.log
    docker_log "docker import $tag"
    _docker_sudo tar -C "$root" --numeric-owner -c . \
        | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$tag" >/dev/null
    _docker_sudo rm -rf -- "$root" "$root.log"
}

docker_build() {
    local tag=$1 base=$2 repo extra
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    extra="$repo/docker/extra-ca/host-bundle.pem"
    # pip in the builder stage reaches PyPI through whatever TLS the host trusts (e.g. an egress proxy's CA);
    # the file is gitignored and copied into the builder stage only.
    if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then cp /etc/ssl/certs/ca-certificates.crt "$extra"; fi
    docker_log "docker build -t $tag --build-arg BASE_IMAGE=$base"
    local status=0
    DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE_IMAGE=$base" -t "$tag" "$repo" >&2 || status=$?
    rm -f "$extra"
    return "$status"
}
