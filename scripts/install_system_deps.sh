#!/usr/bin/env bash
# Debian/Ubuntu packages the GUI and its tests need: an X server for headless runs (Xvfb), Qt's xcb platform
# libraries and Mesa OpenGL for VTK. Installs only what is missing; needs root (or sudo).
set -euo pipefail
packages=(xvfb xauth libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libegl1 libgl1 libglx-mesa0
  libgl1-mesa-dri libdbus-1-3 libfontconfig1 libxrender1 libxi6)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
