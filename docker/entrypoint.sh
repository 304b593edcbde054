#!/bin/sh
# The image's entrypoint: `madoguchi ARGS...`, after `madoguchi db upgrade` when MADOGUCHI_MIGRATE=1 (for a single
# container; compose.yaml runs a one-shot migrate service instead, so replicas never migrate at once).
# `serve` without --host/--port listens on MADOGUCHI_HOST:MADOGUCHI_PORT, the port the HEALTHCHECK probes.
set -eu
if [ "$#" -eq 0 ]; then set -- serve; fi
if [ "${MADOGUCHI_MIGRATE:-0}" = 1 ] && [ "$1" = serve ]; then
    madoguchi db upgrade
fi
if [ "$1" = serve ]; then
    shift
    case " $* " in *" --host"*) ;; *) set -- --host "$MADOGUCHI_HOST" "$@" ;; esac
    case " $* " in *" --port"*) ;; *) set -- --port "$MADOGUCHI_PORT" "$@" ;; esac
    set -- serve "$@"
fi
exec madoguchi "$@"
