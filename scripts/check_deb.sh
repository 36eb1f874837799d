#!/usr/bin/env bash
# Checks the Debian package that `cpack -G DEB` made in BUILD_DIR:
#   scripts/check_deb.sh BUILD_DIR
# its file name, its files, the conffile, the control fields, the maintainer
# scripts, the systemd unit's hardening (and systemd-analyze verify), the
# packaged config (campaignd starts on it), the extracted binaries'
# --version, and lintian: any E: fails, W: and I: are printed.
set -euo pipefail
build_dir=$(cd "${1:?usage: scripts/check_deb.sh BUILD_DIR}" && pwd)

fail() { echo "check_deb: $*" >&2; exit 1; }

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build_dir/CMakeCache.txt")
[ -n "$version" ] || fail "no CMAKE_PROJECT_VERSION in $build_dir/CMakeCache.txt"
arch=$(dpkg --print-architecture)
deb=$build_dir/campaignd_${version}_${arch}.deb
[ -f "$deb" ] || fail "$deb is missing (run cpack -G DEB in $build_dir)"
echo "check_deb: $(basename "$deb")"

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The files, from the package's own listing.
dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|' > "$tmp/files"
for f in /usr/bin/campaignd /usr/bin/campaignctl /usr/bin/campaignd-gateway \
         /etc/campaignd/campaignd.toml /lib/systemd/system/campaignd.service \
         /usr/share/doc/campaignd/copyright \
         /usr/share/doc/campaignd/changelog.gz; do
  grep -qx "$f" "$tmp/files" || fail "$f is not in the package"
done
if grep -q '^/usr/local/' "$tmp/files"; then fail "files under /usr/local"; fi

# The control area: the conffile, the fields, the maintainer scripts.
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/campaignd/campaignd.toml "$tmp/control/conffiles" ||
  fail "/etc/campaignd/campaignd.toml is not a conffile"
for field in Package Version Architecture Maintainer Section Priority \
             Depends Description; do
  grep -q "^$field: ." "$tmp/control/control" || fail "control has no $field"
done
grep -q "^Version: $version\$" "$tmp/control/control" || fail "Version is not $version"
depends=$(sed -n 's/^Depends: //p' "$tmp/control/control")
for dep in adduser libc6 libgrpc++1.51; do
  [[ $depends == *"$dep"* ]] || fail "Depends lacks $dep: $depends"
done
for script in postinst prerm postrm; do
  [ -x "$tmp/control/$script" ] || fail "$script is missing or not executable"
  sh -n "$tmp/control/$script" || fail "$script: syntax error"
done
grep -q 'adduser --system --group --home /var/lib/campaignd' \
  "$tmp/control/postinst" || fail "postinst does not create the user"

# The files themselves.
dpkg-deb -x "$deb" "$tmp/root"
unit=$tmp/root/lib/systemd/system/campaignd.service
for key in 'User=campaignd' 'StateDirectory=campaignd' \
           'ExecStart=/usr/bin/campaignd --config /etc/campaignd/campaignd.toml' \
           'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
           'PrivateTmp=yes' 'PrivateDevices=yes' 'ProtectKernelTunables=yes' \
           'ProtectKernelModules=yes' 'ProtectControlGroups=yes' \
           'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
           'RestrictNamespaces=yes' 'LockPersonality=yes' \
           'MemoryDenyWriteExecute=yes' 'SystemCallFilter=@system-service' \
           'CapabilityBoundingSet=' 'Restart=on-failure' 'KillSignal=SIGTERM' \
           'TimeoutStopSec=30s' 'WantedBy=multi-user.target'; do
  grep -qx "$key" "$unit" || fail "campaignd.service lacks $key"
done
if command -v systemd-analyze >/dev/null; then
  # Offline (no running systemd needed): every key known and well-formed,
  # and ExecStart's binary, in the extracted tree, executable.
  sed "s|^ExecStart=/usr/bin/|ExecStart=$tmp/root/usr/bin/|" "$unit" \
    > "$tmp/campaignd.service"
  systemd-analyze verify --man=no "$tmp/campaignd.service" 2>&1 |
    tee "$tmp/verify"
  if [ -s "$tmp/verify" ]; then fail "systemd-analyze verify complained"; fi
  echo "check_deb: systemd-analyze verify: clean"
  # The exposure score of the hardening (0 = locked down, 10 = none; shown
  # times ten to --threshold): above 2.0 means a protection was dropped.
  systemd-analyze security --offline=yes --threshold=20 --no-pager \
    "$tmp/campaignd.service" > "$tmp/security" 2>&1 ||
    { cat "$tmp/security"; fail "systemd-analyze security: exposure above 2.0"; }
  echo "check_deb: systemd-analyze security: $(grep 'Overall exposure' "$tmp/security")"
else
  echo "check_deb: systemd-analyze not installed: unit syntax not verified"
fi
toml=$tmp/root/etc/campaignd/campaignd.toml
grep -q '^db = "/var/lib/campaignd/campaignd.db"' "$toml" || fail "the config's db"
grep -q '^listen = "127.0.0.1:' "$toml" || fail "the config's listen"
grep -q '^http_listen = "127.0.0.1:' "$toml" || fail "the config's http_listen"
zcat "$tmp/root/usr/share/doc/campaignd/changelog.gz" > "$tmp/changelog"
[ "$(dpkg-parsechangelog -l "$tmp/changelog" -S Version)" = "$version" ] ||
  fail "packaging/debian/changelog's first entry is not version $version"

# The extracted binaries run (their libraries are the Depends).
bin=$tmp/root/usr/bin
for b in campaignd campaignctl; do
  out=$("$bin/$b" --version)
  echo "check_deb: $b --version: $out"
  [[ $out =~ ^$b\ ${version//./\\.}\ \(commit\ ([0-9a-f]{12}|unknown)[,\)] ]] ||
    fail "$b --version printed: $out"
done
"$bin/campaignd-gateway" --aliases > /dev/null || fail "campaignd-gateway --aliases failed"
# campaignd starts on the packaged config (the flags move the database and
# the listeners into the temp dir) and stops cleanly on SIGTERM.
CAMPAIGND_BOOTSTRAP_KEY=check_deb_bootstrap_key "$bin/campaignd" \
  --config "$toml" --db "$tmp/campaignd.db" --listen 127.0.0.1:0 \
  --http-listen 127.0.0.1:0 > "$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q 'campaignd listening' "$tmp/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q 'campaignd listening' "$tmp/server.log" ||
  { cat "$tmp/server.log"; fail "campaignd did not start on the packaged config"; }
kill -TERM "$server_pid"
wait "$server_pid" || { cat "$tmp/server.log"; fail "campaignd did not exit 0 on SIGTERM"; }
server_pid=""
echo "check_deb: campaignd started on the packaged config and stopped on SIGTERM"

# lintian: errors fail; warnings and infos are printed.
lintian_status=0
lintian --fail-on error --display-info "$deb" > "$tmp/lintian" 2>&1 ||
  lintian_status=$?
cat "$tmp/lintian"
if [ $lintian_status -ne 0 ] || grep -q '^E: ' "$tmp/lintian"; then
  fail "lintian found errors (exit $lintian_status)"
fi
echo "check_deb: lintian: $(grep -c '^E: ' "$tmp/lintian" || true) errors," \
     "$(grep -c '^W: ' "$tmp/lintian" || true) warnings"
echo "check_deb: ok"
