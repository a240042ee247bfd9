# Shared set-up for scripts/run and scripts/test: installs what a fresh
# Debian/Ubuntu machine lacks, and starts the services tests use. Sourced.

log() { echo "oshal: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

# ensure_packages PKG...: apt-get installs the ones not installed yet.
ensure_packages() {
  command -v dpkg-query >/dev/null || { log "not a Debian/Ubuntu machine: install $* yourself"; return 0; }
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null; then
    ensure_packages curl ca-certificates
    log "installing the Rust toolchain (rustup)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt >&2
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# The build needs a C toolchain (SQLite, ring/aws-lc), cmake (llama.cpp) and
# the WebKitGTK stack the desktop app (Tauri) links against.
ensure_build_tools() {
  ensure_packages build-essential pkg-config cmake python3 python3-pip file \
    libssl-dev libwebkit2gtk-4.1-dev libsoup-3.0-dev libayatana-appindicator3-dev \
    librsvg2-dev libxdo-dev libdbus-1-dev
}

# PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, started if not answering.
ensure_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    ensure_packages postgresql postgresql-client
    log "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
    # A cluster this script started is a test server: the tests connect as
    # postgres and oshal_app over loopback without passwords (trust).
    if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
      local hba
      hba=$(as_root su postgres -c "psql -Atc 'show hba_file'")
      as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
      as_root su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
    fi
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    ensure_packages redis-server
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
}

# Node.js and npm (Debian's) for the UI build, and the UI's packages from
# ui/package-lock.json. Then builds ui/dist.
ensure_ui() {
  if ! command -v npm >/dev/null; then
    ensure_packages nodejs npm
  fi
  if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
    log "installing the UI's packages"
    (cd ui && npm ci --no-audit --no-fund --loglevel=error)
  fi
  log "building the UI"
  (cd ui && npm run --silent build >/dev/null)
}

# ffmpeg and ffprobe, which bots run for `media` tickets (the video pipeline).
ensure_media_tools() {
  command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || ensure_packages ffmpeg
}

# Prometheus and Alertmanager (Debian's), which the operations loop's test
# runs for real: a scrape of /metrics, an alert posted to the webhook.
ensure_ops_tools() {
  command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null ||
    ensure_packages prometheus prometheus-alertmanager
}

# The mesh's data plane between test hosts: userspace WireGuard in network
# namespaces (tests/harness/tailnet.rs).
ensure_mesh_tools() {
  command -v wireguard-go >/dev/null && command -v wg >/dev/null && command -v ip >/dev/null ||
    ensure_packages wireguard-go wireguard-tools iproute2
}

# Chromium for the browser tests of the UI; Xvfb and friends for the
# desktop window's tests.
ensure_ui_test_tools() {
  ensure_packages chromium fonts-dejavu-core xvfb xauth imagemagick dbus gnome-keyring libsecret-tools \
    webkit2gtk-driver
  # WebDriver for the app's real window, in front of WebKitWebDriver (~70 s once).
  if ! command -v tauri-driver >/dev/null; then
    log "installing tauri-driver"
    cargo install tauri-driver --locked --quiet >&2
  fi
}

# Schemathesis (PyPI), which fuzzes the API against its OpenAPI contract,
# in a virtual environment of its own outside the clone (~20 s once).
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
  local dir="${OSHAL_CACHE:-$HOME/.cache/oshal}/schemathesis-$SCHEMATHESIS_VERSION"
  if [ ! -x "$dir/bin/schemathesis" ]; then
    python3 -c 'import ensurepip' 2>/dev/null || ensure_packages python3-venv
    log "installing Schemathesis $SCHEMATHESIS_VERSION"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
  fi
  export OSHAL_SCHEMATHESIS="$dir/bin/schemathesis"
}

# The Tauri CLI (npm's prebuilt @tauri-apps/cli), kept outside the clone
# like the other tools: ui/'s lock file cannot carry it, since npm records
# its per-platform binaries only for platforms the registry here serves.
TAURI_CLI_VERSION=2.12.5
ensure_tauri_cli() {
  local dir="${OSHAL_CACHE:-$HOME/.cache/oshal}/tauri-cli/$TAURI_CLI_VERSION"
  if [ ! -x "$dir/node_modules/.bin/tauri" ]; then
    log "installing the Tauri CLI $TAURI_CLI_VERSION"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "@tauri-apps/cli@$TAURI_CLI_VERSION" >&2
  fi
  TAURI_CLI="$dir/node_modules/.bin/tauri"
}

# Containers without a registry (deploy/, scripts/images): buildah builds
# the images, podman runs them with runc (Debian's default crun fails on
# this kind of machine's cgroups), netavark's DNS and its events in a file
# (with no journald, a pod's init container is never seen to end), and
# debootstrap makes the Debian base. Python tools each in a virtual
# environment of its own outside the clone (~15 s once): podman-compose
# runs deploy/compose.yaml, kubernetes-validate checks deploy/k8s,
# check-jsonschema checks the compose file against the compose-spec schema
# it ships. Exports CONTAINERS_CONF and
# OSHAL_{PODMAN_COMPOSE,KUBERNETES_VALIDATE,CHECK_JSONSCHEMA}.
ensure_container_tools() {
  ensure_packages podman buildah runc netavark aardvark-dns debootstrap busybox iptables catatonit
  local cache="${OSHAL_CACHE:-$HOME/.cache/oshal}" tool name version dir
  mkdir -p "$cache/containers"
  export CONTAINERS_CONF="$cache/containers/containers.conf"
  printf '%s\n' '# Written by scripts/lib.sh (ensure_container_tools).' \
    '[containers]' 'default_ulimits = []' \
    '[engine]' 'cgroup_manager = "cgroupfs"' 'runtime = "runc"' 'events_logger = "file"' \
    '[network]' 'network_backend = "netavark"' >"$CONTAINERS_CONF.tmp"
  mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
  for tool in podman-compose==1.6.0 kubernetes-validate==1.37.0 check-jsonschema==0.39.0; do
    name=${tool%%==*} version=${tool##*==}
    dir="$cache/$name-$version"
    if [ ! -x "$dir/bin/$name" ]; then
      python3 -c 'import ensurepip' 2>/dev/null || ensure_packages python3-venv
      log "installing $name $version"
      rm -rf "$dir"
      python3 -m venv "$dir"
      "$dir/bin/pip" install -q --disable-pip-version-check "$tool" >&2
    fi
  done
  export OSHAL_PODMAN_COMPOSE="$cache/podman-compose-1.6.0/bin/podman-compose"
  export OSHAL_KUBERNETES_VALIDATE="$cache/kubernetes-validate-1.37.0/bin/kubernetes-validate"
  export OSHAL_CHECK_JSONSCHEMA="$cache/check-jsonschema-0.39.0/bin/check-jsonschema"
}
