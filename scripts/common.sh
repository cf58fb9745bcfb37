# common.sh: shared by run.sh and test.sh. Checks the machine, installs what is missing (Debian 12, as
# root, with apt), and builds. Sourced, not run.
set -euo pipefail

GW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GW_APT_PKGS="pkg-config cmake make gcc libprotobuf-c-dev protobuf-c-compiler libgrpc-dev libmicrohttpd-dev
  libcurl4-openssl-dev libnghttp2-dev libpq-dev libpcre2-dev libjson-c-dev libyaml-dev zlib1g-dev libzstd-dev zstd libsnappy-dev liblz4-dev lz4 libssl-dev libdeflate-dev
  libcmocka-dev postgresql valgrind"
# Only for fuzzing (scripts/fuzz.sh): clang and its libFuzzer runtime (only recommended by clang, so
# absent after an install without recommends).
GW_FUZZ_APT_PKGS="clang libclang-rt-14-dev"

gw_say() { printf '==> %s\n' "$*" >&2; }
gw_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# gw_ensure_packages [LIST]: install the Debian packages of LIST (default GW_APT_PKGS) that are missing; say
# exactly what is missing when we cannot.
gw_ensure_packages() {
  local missing=()
  for p in ${1:-$GW_APT_PKGS}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    gw_die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
  fi
  command -v apt-get >/dev/null || gw_die "missing packages ${missing[*]} and no apt-get on this machine (Debian 12 expected)"
  gw_say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || gw_die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || gw_die "apt-get install ${missing[*]} failed"
}

gw_ensure_node() {
  command -v node >/dev/null || gw_die "node (20.x) is required for the end-to-end tests and is not installed"
  command -v npm >/dev/null || gw_die "npm is required for the end-to-end tests and is not installed"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || gw_die "node >= 20 required (found $(node --version))"
}

# gw_build DIR [cmake args...]: configure and build into DIR.
gw_build() {
  local dir=$1
  shift
  cmake -S "$GW_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null || gw_die "cmake configure failed"
  cmake --build "$dir" -j "$(nproc)" >&2 || gw_die "build failed"
}

# A directory the postgres user can reach (initdb and postgres refuse to run as root).
gw_pg_reachable() {
  local dir=$1
  mkdir -p "$dir"
  runuser -u postgres -- test -x "$dir" 2>/dev/null
}
