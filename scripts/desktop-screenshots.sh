#!/usr/bin/env bash
# Takes the desktop client's screenshots (docs/screenshots/*.png): the real window under Xvfb,
# driven with xdotool through log in, waiting for a partner, a chat with a scripted partner
# (marks, typing) who then leaves, the history, the profile and sessions, the light theme
# and the connection lost. Installs Xvfb, Mesa, xdotool and
# ImageMagick with apt-get when they are missing.
#
#   scripts/desktop-screenshots.sh            # release builds (what a user runs)
#   scripts/desktop-screenshots.sh --debug    # debug builds: quicker to build
#
# Everything listens on 127.0.0.1 only; every process started here is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=release
[[ "${1:-}" == "--debug" ]] && PROFILE=debug
PORT="${RC_SCREENSHOT_PORT:-18080}"
URL="http://127.0.0.1:${PORT}"
SCREEN="${RC_SCREENSHOT_DISPLAY:-:77}"
OUT=docs/screenshots
TARGET="${CARGO_TARGET_DIR:-target}"

packages=(xvfb libgl1-mesa-dri libegl1 libxkbcommon-x11-0 xdotool imagemagick curl)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=()
    [[ "$(id -u)" -ne 0 ]] && sudo=(sudo)
    echo "installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build=(cargo build -p random-chats -p desktop --bins --example partner)
[[ "$PROFILE" == release ]] && build+=(--release)
"${build[@]}"
BIN="$TARGET/$PROFILE"

WORK="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (up to 60 s) until the command succeeds.
wait_for() {
    for _ in $(seq 1 600); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "gave up waiting for: $*" >&2
    return 1
}

# Waits until the partner has printed a step.
wait_step() {
    wait_for grep -qx "$1" "$WORK/partner.log"
}

"$BIN/random-chats" --listen "127.0.0.1:${PORT}" --in-memory --log-format json >"$WORK/platform.log" 2>&1 &
PLATFORM=$!
pids+=("$PLATFORM")
wait_for curl -sf "$URL/healthz"

curl -sf "$URL/v1/auth/signup" -H 'content-type: application/json' -d '{
  "username": "ann", "password": "correct horse battery", "display_name": "Ann",
  "gender": "female", "birth_date": "1995-04-23", "interests": ["chess", "music", "travel"]}' >/dev/null

Xvfb "$SCREEN" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY="$SCREEN"
wait_for xdotool getdisplaygeometry

RC_DESKTOP_CONFIG_DIR="$WORK/config" "$BIN/random-chats-desktop" --server "$URL" >"$WORK/desktop.log" 2>&1 &
DESKTOP=$!
pids+=("$DESKTOP")
wait_for xdotool search --name '^Random Chats$'
WINDOW="$(xdotool search --name '^Random Chats$' | head -1)"

mkdir -p "$OUT"
shot() {
    sleep "${2:-0.8}"
    import -window "$WINDOW" "$OUT/$1.png"
    echo "saved $OUT/$1.png"
}
# Clicks at a point of the window (its size is fixed at 980 × 700).
click() {
    xdotool mousemove --window "$WINDOW" "$1" "$2" click 1
    sleep 0.3
}

# 1. Log in. (There is no window manager, so the window is given the keyboard by hand.)
sleep 1.5
xdotool windowfocus --sync "$WINDOW"
click 496 199
xdotool type --delay 40 ann
click 496 226
xdotool type --delay 40 'correct horse battery'
shot 1-log-in
xdotool key Return
sleep 2

# 2. Find, then wait.
shot 2-find
click 490 315
shot 3-waiting 3.5

# 3. A partner arrives, greets, Ann answers; the partner reads it and types.
"$BIN/examples/partner" --server "$URL" --interests chess,films --leave-when "$WORK/leave" >"$WORK/partner.log" 2>&1 &
pids+=($!)
wait_step greeted
sleep 1
xdotool type --delay 30 'Hi Sam! Yes, chess is my favourite. Blitz or classical?'
xdotool key Return
wait_step typing
shot 4-chat 1.2

# 4. The partner leaves.
touch "$WORK/leave"
wait_step left
shot 5-partner-left

# 5. History.
click 211 16
shot 6-history 1.5
click 100 80
shot 7-history-chat 1.5

# 6. Profile and preferences; sessions.
click 267 16
shot 8-profile 1.5
click 326 16
shot 9-sessions 1.5

# 7. The window again, in the light theme: the remembered session logs in by itself.
kill "$DESKTOP"
wait "$DESKTOP" 2>/dev/null || true
RC_DESKTOP_CONFIG_DIR="$WORK/config" "$BIN/random-chats-desktop" --server "$URL" --theme light >"$WORK/desktop-light.log" 2>&1 &
pids+=($!)
wait_for xdotool search --name '^Random Chats$'
WINDOW="$(xdotool search --name '^Random Chats$' | head -1)"
shot 10-light 2

# 8. The server goes away: the top bar counts down to the next attempt.
kill "$PLATFORM"
shot 11-reconnecting 1.5

echo "screenshots are in $OUT/"
