#!/usr/bin/env bash
# The cloud tier's test cluster on loopback: three RabbitMQ nodes (Debian's
# rabbitmq-server, MQTT plugin, quorum queues) clustered together, and three
# etcd members (Debian's etcd-server). make test's tests start it through
# internal/testcluster; an operator can start it by hand to try the cloud
# tier (docs/SCALE.md).
#
#   cluster.sh start DIR         start all six, write DIR/cluster.env
#   cluster.sh stop DIR          stop all (gracefully), then epmd
#   cluster.sh kill-rabbit DIR N kill -9 RabbitMQ node N (1..3)
#   cluster.sh start-rabbit DIR N
#   cluster.sh kill-etcd DIR N   kill -9 etcd member N (1..3)
#   cluster.sh start-etcd DIR N
#   cluster.sh user DIR NAME PASSWORD [TAG]   add a RabbitMQ user (all vhost rights)
#   cluster.sh ctl DIR N ARGS... rabbitmqctl against node N
#
# Ports: PORT_BASE (default 21000) gives MQTT PORT_BASE+1..3, AMQP +11..13,
# Erlang distribution +21..23, epmd +30, etcd clients +41..43, etcd peers
# +51..53; or set each list: MQTT_PORTS, AMQP_PORTS, DIST_PORTS, EPMD_PORT,
# ETCD_CLIENT_PORTS, ETCD_PEER_PORTS ("p1 p2 p3"). Everything listens on
# 127.0.0.1 only; the state (data, logs, the Erlang cookie) stays in DIR.
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop|kill-rabbit|start-rabbit|kill-etcd|start-etcd|user|ctl DIR ...}
dir=${2:?the cluster directory}
shift 2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

RABBIT_LIB=${RABBIT_LIB:-/usr/lib/rabbitmq/bin}
ETCD=${ETCD:-etcd}

# The ports are fixed at start and kept in DIR/ports for the later commands.
if [ "$cmd" = start ] && [ ! -f "$dir/ports" ]; then
	b=${PORT_BASE:-21000}
	{
		echo "MQTT_PORTS=\"${MQTT_PORTS:-$((b + 1)) $((b + 2)) $((b + 3))}\""
		echo "AMQP_PORTS=\"${AMQP_PORTS:-$((b + 11)) $((b + 12)) $((b + 13))}\""
		echo "DIST_PORTS=\"${DIST_PORTS:-$((b + 21)) $((b + 22)) $((b + 23))}\""
		echo "EPMD_PORT=\"${EPMD_PORT:-$((b + 30))}\""
		echo "ETCD_CLIENT_PORTS=\"${ETCD_CLIENT_PORTS:-$((b + 41)) $((b + 42)) $((b + 43))}\""
		echo "ETCD_PEER_PORTS=\"${ETCD_PEER_PORTS:-$((b + 51)) $((b + 52)) $((b + 53))}\""
	} >"$dir/ports"
fi
[ -f "$dir/ports" ] || { echo "cluster.sh: $dir has no cluster (start it first)" >&2; exit 2; }
# shellcheck disable=SC1091
. "$dir/ports"
nth() { local i=$1; shift; set -- $*; eval "echo \${$i}"; }

# The Erlang cookie and epmd are the cluster's own (HOME is DIR), so a
# RabbitMQ of the machine's, or another test cluster, is not disturbed.
rabbit_env() {
	local n=$1
	export HOME="$dir" ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1
	# A crash dump (of a node or of rabbitmqctl) stays in the cluster's
	# directory, not in the caller's.
	export ERL_CRASH_DUMP="$dir/rabbit$n/erl_crash.dump"
	export RABBITMQ_NODENAME="rabbit$n@localhost" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	export RABBITMQ_NODE_PORT=$(nth "$n" "$AMQP_PORTS") RABBITMQ_DIST_PORT=$(nth "$n" "$DIST_PORTS")
	export RABBITMQ_MNESIA_BASE="$dir/rabbit$n/mnesia" RABBITMQ_LOG_BASE="$dir/rabbit$n/log"
	export RABBITMQ_CONFIG_FILE="$dir/rabbit$n/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbit$n/enabled_plugins"
	export RABBITMQ_FEATURE_FLAGS_FILE="$dir/rabbit$n/feature_flags" RABBITMQ_PID_FILE="$dir/rabbit$n/pid"
	export RABBITMQ_CONF_ENV_FILE=/dev/null RABBITMQ_ADVANCED_CONFIG_FILE="$dir/rabbit$n/advanced.config"
	# The VM is execed in place of the script: $! is the broker's own pid.
	export RUNNING_UNDER_SYSTEMD=true
	# Erlang's distribution listens on loopback too.
	export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

ctl() { local n=$1; shift; (rabbit_env "$n"; "$RABBIT_LIB/rabbitmqctl" -q -n "rabbit$n@localhost" "$@"); }

start_rabbit() {
	local n=$1
	mkdir -p "$dir/rabbit$n/log"
	[ -f "$dir/.erlang.cookie" ] || { head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$dir/.erlang.cookie"; chmod 400 "$dir/.erlang.cookie"; }
	echo '[rabbitmq_mqtt,rabbitmq_consistent_hash_exchange].' >"$dir/rabbit$n/enabled_plugins"
	echo '[].' >"$dir/rabbit$n/advanced.config"
	cat >"$dir/rabbit$n/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(nth "$n" "$AMQP_PORTS")
mqtt.listeners.tcp.default = 127.0.0.1:$(nth "$n" "$MQTT_PORTS")
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
mqtt.durable_queue_type = quorum
loopback_users = none
log.console = false
log.file.level = warning
EOF
	(rabbit_env "$n"; exec setsid "$RABBIT_LIB/rabbitmq-server" >"$dir/rabbit$n/log/stdout" 2>&1 </dev/null) &
	echo $! >"$dir/rabbit$n/pid"
	disown || true
}

# await_startup needs the node registered with epmd: until the VM has
# come that far (seconds on a loaded machine) it fails at once, so ask
# again; the node's own exit ends the wait with its log.
await_rabbit() {
	local n=$1 i
	for i in $(seq 1 600); do
		if ctl "$n" await_startup --timeout 120 >/dev/null 2>>"$dir/rabbit$n/log/await"; then
			return 0
		fi
		if ! kill -0 "$(cat "$dir/rabbit$n/pid")" 2>/dev/null; then
			echo "cluster.sh: RabbitMQ node $n exited at start; its log:" >&2
			tail -n 30 "$dir/rabbit$n/log/stdout" >&2
			return 1
		fi
		# Polling another process: no event to wait on.
		sleep 0.2
	done
	echo "cluster.sh: RabbitMQ node $n did not start (logs: $dir/rabbit$n/log)" >&2
	return 1
}

join_rabbit() {
	local n=$1
	# rabbitmqctl's warnings while a node joins go to the node's log.
	ctl "$n" stop_app >/dev/null 2>>"$dir/rabbit$n/log/join"
	ctl "$n" reset >/dev/null 2>>"$dir/rabbit$n/log/join"
	ctl "$n" join_cluster rabbit1@localhost >/dev/null 2>>"$dir/rabbit$n/log/join"
	ctl "$n" start_app >/dev/null 2>>"$dir/rabbit$n/log/join"
}

start_etcd() {
	local n=$1 init=$2 cluster="" i
	for i in 1 2 3; do cluster="${cluster:+$cluster,}etcd$i=http://127.0.0.1:$(nth "$i" "$ETCD_PEER_PORTS")"; done
	mkdir -p "$dir/etcd$n"
	local c="http://127.0.0.1:$(nth "$n" "$ETCD_CLIENT_PORTS")" p="http://127.0.0.1:$(nth "$n" "$ETCD_PEER_PORTS")"
	setsid "$ETCD" --name "etcd$n" --data-dir "$dir/etcd$n/data" \
		--listen-client-urls "$c" --advertise-client-urls "$c" \
		--listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
		--initial-cluster "$cluster" --initial-cluster-state "$init" --initial-cluster-token sedna-test \
		--heartbeat-interval 50 --election-timeout 500 --log-level warn \
		>"$dir/etcd$n/log" 2>&1 </dev/null &
	echo $! >"$dir/etcd$n/pid"
	disown || true
}

await_etcd() {
	local n=$1 i
	for i in $(seq 1 600); do
		if ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$(nth "$n" "$ETCD_CLIENT_PORTS")" --dial-timeout 1s --command-timeout 2s endpoint health >/dev/null 2>&1; then
			return 0
		fi
		# Polling another process: no event to wait on.
		sleep 0.1
	done
	echo "cluster.sh: etcd$n did not become healthy (log: $dir/etcd$n/log)" >&2
	return 1
}

kill9() { local f=$1; [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; }

write_env() {
	local mqtt="" amqp="" etcd="" i
	for i in 1 2 3; do
		mqtt="${mqtt:+$mqtt,}tcp://127.0.0.1:$(nth "$i" "$MQTT_PORTS")"
		amqp="${amqp:+$amqp,}amqp://127.0.0.1:$(nth "$i" "$AMQP_PORTS")"
		etcd="${etcd:+$etcd,}http://127.0.0.1:$(nth "$i" "$ETCD_CLIENT_PORTS")"
	done
	{
		echo "SEDNA_RABBITMQ_URLS=$mqtt"
		echo "SEDNA_RABBITMQ_AMQP=$amqp"
		echo "SEDNA_ETCD_ENDPOINTS=$etcd"
	} >"$dir/cluster.env"
}

case $cmd in
start)
	# An epmd left on the cluster's port by an earlier run (its nodes
	# killed) would take the new nodes' names and then go away with them.
	(export ERL_EPMD_PORT="$EPMD_PORT"; epmd -kill >/dev/null 2>&1 || true)
	for i in 1 2 3; do start_etcd "$i" new; done
	for i in 1 2 3; do start_rabbit "$i"; done
	for i in 1 2 3; do await_rabbit "$i"; done
	join_rabbit 2
	join_rabbit 3
	for i in 1 2 3; do await_etcd "$i"; done
	write_env
	cat "$dir/cluster.env"
	;;
stop)
	for i in 1 2 3; do
		if [ -f "$dir/rabbit$i/pid" ] && kill -0 "$(cat "$dir/rabbit$i/pid")" 2>/dev/null; then
			ctl "$i" stop >/dev/null 2>&1 || true
		fi
	done
	# Until each process is gone (a loaded node takes a while), then -9:
	# its ports must be free for the next start.
	for f in "$dir"/rabbit?/pid "$dir"/etcd?/pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			# Polling another process: no event to wait on.
			sleep 0.2
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
	(export ERL_EPMD_PORT="$EPMD_PORT"; epmd -kill >/dev/null 2>&1 || true)
	;;
kill-rabbit) kill9 "$dir/rabbit${1:?node}/pid" ;;
start-rabbit) start_rabbit "${1:?node}"; await_rabbit "$1" ;;
kill-etcd) kill9 "$dir/etcd${1:?member}/pid" ;;
start-etcd) start_etcd "${1:?member}" existing; await_etcd "$1" ;;
user)
	ctl 1 add_user "${1:?name}" "${2:?password}" >/dev/null
	ctl 1 set_permissions -p / "$1" '.*' '.*' '.*' >/dev/null
	[ -z "${3:-}" ] || ctl 1 set_user_tags "$1" "$3" >/dev/null
	;;
ctl) n=${1:?node}; shift; ctl "$n" "$@" ;;
*) echo "cluster.sh: unknown command $cmd" >&2; exit 2 ;;
esac
