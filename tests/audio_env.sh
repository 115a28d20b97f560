#!/usr/bin/env bash
# A real-time virtual audio path for tests (deps_probe §5.4), private to one runtime dir.
#   tests/audio_env.sh start DIR   → starts PulseAudio with two null sinks and prints env lines
#   tests/audio_env.sh stop DIR
# Sinks: "speaker" (the app's output: the room) and "mouth" (the user's voice). The default source
# "virtmic" is mouth's monitor, so the mic hears the user, not the app (a headset). Point the
# default sink at "mouth" (pactl set-default-sink mouth) to let the app's speech reach the mic.
# apt: pulseaudio pulseaudio-utils libasound2-plugins libportaudio2
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?runtime dir}
mkdir -p "$dir"; chmod 700 "$dir"
export XDG_RUNTIME_DIR="$dir" PULSE_RUNTIME_PATH="$dir/pulse" HOME="${HOME:-/root}"
export PULSE_SERVER="unix:$dir/pulse/native"
case "$cmd" in
start)
  command -v pulseaudio >/dev/null || { echo "pulseaudio is not installed (apt install pulseaudio pulseaudio-utils libasound2-plugins)" >&2; exit 3; }
  pulseaudio --daemonize=yes --exit-idle-time=-1 -n --disallow-exit --use-pid-file=yes \
    --load="module-native-protocol-unix socket=$dir/pulse/native auth-anonymous=1" \
    --load="module-null-sink sink_name=speaker sink_properties=device.description=Speaker" \
    --load="module-null-sink sink_name=mouth sink_properties=device.description=Mouth" \
    --log-target=file:"$dir/pulse.log" >/dev/null 2>&1 || { echo "pulseaudio failed to start: $(tail -n 3 "$dir/pulse.log" 2>/dev/null)" >&2; exit 3; }
  for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
  pactl info >/dev/null 2>&1 || { echo "pulseaudio did not answer: $(tail -n 3 "$dir/pulse.log" 2>/dev/null)" >&2; exit 3; }
  pactl load-module module-remap-source master=mouth.monitor source_name=virtmic \
    source_properties=device.description=VirtualMic >/dev/null
  pactl set-default-sink speaker
  pactl set-default-source virtmic
  echo "XDG_RUNTIME_DIR=$dir"
  echo "PULSE_RUNTIME_PATH=$dir/pulse"
  echo "PULSE_SERVER=$PULSE_SERVER"
  ;;
stop)
  pulseaudio --kill 2>/dev/null || true
  ;;
esac
