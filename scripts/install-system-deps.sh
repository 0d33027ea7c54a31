#!/usr/bin/env bash
# Installs the Debian packages ViSDM uses, when they are missing and we are allowed to.
#   bubblewrap             sandbox for training jobs on the compute node
#   dataset-fashion-mnist  real images for tests, benchmarks and the demo
#   postgresql             a real server for the index's PostgreSQL tests
#   chromium-headless-shell  the browser the web app's end-to-end tests drive (Playwright)
set -euo pipefail
packages=(bubblewrap dataset-fashion-mnist postgresql chromium-headless-shell)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: missing Debian packages: ${missing[*]} (install them with apt-get as root)" >&2
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
