#!/bin/sh
# File-level module dependencies per crate and their cycles (exit 1 on a cycle).
# See scripts/module_deps.py for what counts as an edge.
exec python3 "$(dirname "$0")/module_deps.py" "$@"
