# Sourced by the load scripts: the work dir $work with a 10,000-device fleet (fleet.toml and
# its certificates, made once with the binaries in $bin), entered.
mkdir -p "$work"
if [ ! -f "$work/fleet.toml" ]; then
    "$bin/vaka-load" fleet-config --devices 10000 >"$work/fleet.toml"
    "$bin/vaka" certs --config "$work/fleet.toml" --dir "$work/certs" >/dev/null
fi
cd "$work"
