# Sourced inside scripts/jetstream-cluster.sh (which sets $NATS_URLS): cluster.toml made from
# fleet.toml with a [cluster] section naming node n1 and the three servers, and any further
# `key = value` lines given as arguments.
base=${NATS_BASE_PORT:-14222}
servers=$(printf '"%s", ' $NATS_URLS)
mon=$(for i in 0 1 2; do printf '"http://127.0.0.1:%s", ' $((base + 100 + i)); done)
cp fleet.toml cluster.toml
printf '\n[cluster]\nnode_id = "n1"\nservers = [%s]\nmonitoring = [%s]\n' \
    "${servers%, }" "${mon%, }" >>cluster.toml
for line in "$@"; do printf '%s\n' "$line" >>cluster.toml; done
