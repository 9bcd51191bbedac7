#!/usr/bin/env bash
# Installs what the platform and its tests need, and only what is missing:
#   - Debian packages (PHP CLI, ...), via apt-get when running as root (sudo otherwise);
#   - the Python virtualenv in .venv with the project and its dev dependencies.
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(php-cli php-mysql openssh-server wordpress wordpress-theme-twentytwentythree openssl)
# PostgreSQL for the production-instance tests (Dagster storage); Chromium for the UI's end-to-end test
APT_PACKAGES+=(postgresql chromium chromium-driver)
# PHP_CodeSniffer: the PSR-12 check on the rendered PHP plugins (tests/templates/test_phpcs.py)
APT_PACKAGES+=(php-codesniffer)
PYTHON=${PYTHON:-python3}
# Node.js runs PHP 7.4-8.5 as WebAssembly (the compatibility matrix); Debian's when none is on PATH
command -v node >/dev/null || APT_PACKAGES+=(nodejs npm)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=.venv/.psp-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi
# npm packages (package.json + package-lock.json): installed exactly as locked, again only when the lock changed
if [ -f package-lock.json ]; then
  command -v npm >/dev/null || { echo "setup: npm is missing: install Debian's npm (apt-get install npm)" >&2; exit 1; }
  npm_want=$(cat package.json package-lock.json | sha256sum | cut -c1-16)
  if [ ! -f node_modules/.psp-installed ] || [ "$(cat node_modules/.psp-installed)" != "$npm_want" ]; then
    echo "setup: installing npm packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$npm_want" > node_modules/.psp-installed
  fi
fi
echo "setup: ready ($(php -r 'echo "PHP ", PHP_VERSION;'), $(.venv/bin/python -c 'import dagster; print("dagster", dagster.__version__)'))"
