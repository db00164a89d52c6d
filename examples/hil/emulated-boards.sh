#!/bin/sh
# Three emulated boards on this machine, reached through a real OpenSSH
# server on loopback: arm64 (qemu-aarch64), armv7 (qemu-arm) and native.
# Runs examples/scenarios/hil-boards.yaml on them with `sedna hil run` and
# writes the report (report.json, report.md, chart.svg) into OUT (default
# hil-report). Needs Debian's openssh-server and qemu-user, and the binaries
# of `make build cross` (bin/sedna, bin/sedna-linux-*). Run from the
# repository's root:
#   make build cross && sh examples/hil/emulated-boards.sh docs/hil-example
set -eu
OUT=${1:-hil-report}
SEDNA=${SEDNA:-bin/sedna}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK/sshd.pid" 2>/dev/null) 2>/dev/null; rm -rf "$WORK"' EXIT

# A host key, a user key and an sshd of our own on a free loopback port.
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/user_key"
cp "$WORK/user_key.pub" "$WORK/authorized_keys"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $WORK/host_key
AuthorizedKeysFile $WORK/authorized_keys
PidFile $WORK/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
/usr/sbin/sshd -f "$WORK/sshd_config"
# known_hosts gets the key we made: no key is trusted blindly.
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$WORK/host_key.pub")" > "$WORK/known_hosts"

free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
board() { # name arch emulator
	cat <<B
  - name: $1
    arch: $2
    address: 127.0.0.1:$PORT
    user: $(id -un)
    keyFile: $WORK/user_key
    knownHosts: $WORK/known_hosts
    dataDir: $WORK/$1
    listen: 127.0.0.1:$(free)
B
	[ -z "$3" ] || echo "    emulator: $3"
}
NATIVE=$(go env GOARCH)
{
	echo "boards:"
	board arm64-emulated arm64 qemu-aarch64
	board armv7-emulated armv7 qemu-arm
	board "$NATIVE-native" "$NATIVE" ""
} > "$WORK/boards.yaml"

"$SEDNA" hil run --inventory "$WORK/boards.yaml" --scenario examples/scenarios/hil-boards.yaml --out "$OUT" \
	--bin "$NATIVE=$SEDNA"
"$SEDNA" hil clean --inventory "$WORK/boards.yaml"
