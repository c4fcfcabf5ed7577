# Sourced by the other scripts: makes sure Python's venv and the project's .venv exist.
# Installs Debian packages only when something is missing (root, or sudo when available).

apt_install() {
  local packages=("$@")
  ((${#packages[@]})) || return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install ${packages[*]}" >&2; return 1; }
    sudo=(sudo)
  fi
  echo "installing Debian packages: ${packages[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

ensure_venv() {
  local missing=()
  command -v python3 >/dev/null || missing+=(python3)
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then missing+=(python3-venv); fi
  apt_install "${missing[@]}"
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import exporter, pytest, grafana_foundation_sdk' 2>/dev/null \
     || [ pyproject.toml -nt .venv/.installed ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    touch .venv/.installed
  fi
}
