#!/usr/bin/env bash
# bench/compare.sh BEFORE AFTER — runs the same `pomona bench` with two
# pomona binaries back to back (before, then after, per store and size) at
# 1k / 10k / 100k enrolled devices on SQLite and PostgreSQL, the server
# pinned to one core and the load generator (the bench process) to the
# other, and prints before/after markdown tables (docs/benchmarks.md).
#
#   bench/compare.sh /work/bench/pomona-base ./pomona
#
# Settings (environment):
#   SIZES="1000 10000 100000"   enrolled devices per run (DEVICES of them
#                               through the full flow, the rest seeded)
#   STORES="sqlite postgres"
#   DEVICES=200 CHECKINS=10 COMMANDS=2 TIMEOUT=30m (per run)
#   WAVE=1                      add --wave where the binary has it; skipped
#                               at 100k when the 10k assignment shows it
#                               would take over WAVE_MAX_S (default 180) s
#   PG=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
#                               (a database is created and dropped per run)
#   SERVER_CPU=0 LOAD_CPU=1     taskset cores (a CHECKPOINT before every
#                               PostgreSQL run)
#   PG_CPU=                     pin the local PostgreSQL server's processes
#                               (postmaster, so every new backend too) to
#                               this core for the runs, e.g. 1 to keep it off
#                               the server's core; unset: not pinned. Each
#                               process's affinity is put back at exit,
#                               interrupted too (the bench and its database
#                               are then stopped and dropped).
#   ORDER=before-first          or after-first: which binary runs first in
#                               each pair (run both to see an order effect)
#   OUT=/tmp/pomona-compare.$$  JSON reports and logs
set -euo pipefail
before=${1:?usage: compare.sh BEFORE-BINARY AFTER-BINARY}
after=${2:?usage: compare.sh BEFORE-BINARY AFTER-BINARY}
SIZES=${SIZES:-1000 10000 100000}
STORES=${STORES:-sqlite postgres}
DEVICES=${DEVICES:-200} CHECKINS=${CHECKINS:-10} COMMANDS=${COMMANDS:-2} TIMEOUT=${TIMEOUT:-30m}
WAVE=${WAVE:-1} WAVE_MAX_S=${WAVE_MAX_S:-180}
PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
SERVER_CPU=${SERVER_CPU:-0} LOAD_CPU=${LOAD_CPU:-1} ORDER=${ORDER:-before-first}
PG_CPU=${PG_CPU:-}
OUT=${OUT:-/tmp/pomona-compare.$$}
mkdir -p "$OUT"
command -v jq >/dev/null || { echo "compare.sh needs jq" >&2; exit 2; }

# pin_pg CPUS: every process of the local PostgreSQL server (owner
# postgres) onto CPUS. Backends fork from the postmaster and inherit its
# affinity, so the connections a run opens later are pinned too. Each
# process's affinity before is kept for unpin_pg.
pg_saved=() pg_before=""
pin_pg() {
	local p n=0 cpus
	pg_before=$(taskset -pc "$(pgrep -o -u postgres || echo 0)" 2>/dev/null | sed 's/.*: //' || true)
	for p in $(pgrep -u postgres || true); do
		cpus=$(taskset -pc "$p" 2>/dev/null | sed 's/.*: //') || continue
		taskset -a -pc "$1" "$p" >/dev/null 2>&1 && { pg_saved+=("$p:$cpus"); n=$((n + 1)); }
	done
	echo "  PostgreSQL: $n processes on CPU $1" >&2
	((n > 0)) || echo "  PG_CPU=$1: no PostgreSQL process could be pinned (not root, or no local server run by the user postgres): PostgreSQL is not pinned" >&2
}
# unpin_pg: every process back to its affinity before pin_pg; processes
# started since (backends) to the postmaster's before, else every online
# core (not nproc's: the cores this script may use, 1 under taskset).
unpin_pg() {
	local p e cpus all
	all=$(cat /sys/devices/system/cpu/online 2>/dev/null || echo "0-$(($(getconf _NPROCESSORS_ONLN) - 1))")
	for p in $(pgrep -u postgres || true); do
		cpus=${pg_before:-$all}
		for e in "${pg_saved[@]}"; do [[ ${e%%:*} != "$p" ]] || cpus=${e#*:}; done
		taskset -a -pc "$cpus" "$p" >/dev/null 2>&1 || true
	done
	echo "  PostgreSQL: affinity restored (${pg_before:-$all})" >&2
}
# cleanup at exit, interrupted too (Ctrl-C, kill): the bench still running
# (and with it its server) is stopped, its database dropped, PostgreSQL
# unpinned; they were left running and kept the database.
cur_pid="" cur_db=""
cleanup() {
	if [[ -n $cur_pid ]] && kill -0 "$cur_pid" 2>/dev/null; then
		echo "  interrupted: stopping the bench ($cur_pid)" >&2
		kill -TERM "$cur_pid" 2>/dev/null || true
		wait "$cur_pid" 2>/dev/null || true
	fi
	if [[ -n $cur_db ]]; then
		psql "$PG" -qAtc "DROP DATABASE IF EXISTS $cur_db WITH (FORCE)" >/dev/null 2>&1 ||
			echo "  could not drop the database $cur_db" >&2
	fi
	if ((${#pg_saved[@]} > 0)); then unpin_pg; fi
}
trap cleanup EXIT
if [[ -n $PG_CPU && $STORES == *postgres* ]]; then
	pin_pg "$PG_CPU"
elif [[ -n $PG_CPU ]]; then
	echo "  PG_CPU=$PG_CPU ignored: STORES=$STORES has no postgres" >&2
fi

# run NAME BINARY STORE SIZE: one bench, its server moved to SERVER_CPU as
# soon as it starts (pomona bench starts `pomona serve` as its child).
run() {
	local name=$1 bin=$2 store=$3 size=$4 db="" args=()
	local seed=$((size > DEVICES ? size - DEVICES : 0)) devices=$((size < DEVICES ? size : DEVICES))
	args=(bench --devices "$devices" --seed "$seed" --checkins "$CHECKINS" --commands "$COMMANDS" --timeout "$TIMEOUT" --json)
	local help; help=$("$bin" bench --help 2>&1 || true)
	if [[ $WAVE == 1 && $help == *-wave* ]]; then
		if [[ $size -lt 100000 || $(wave_ok "$store") == yes ]]; then args+=(--wave); fi
	fi
	if [[ $store == postgres ]]; then
		# The previous run's writes (and its dropped database) are still
		# dirty in PostgreSQL's buffers; without a checkpoint here the
		# second run of a pair paid for the first one's (Session 12:
		# idle +65 % for whichever binary ran second at 100k).
		psql "$PG" -qAtc "CHECKPOINT" >/dev/null 2>&1 || echo "  (CHECKPOINT refused: not a superuser; runs may pay for the previous one's writes)" >&2
		db="pomona_cmp_$$_${name}_${size}"
		psql "$PG" -qAtc "CREATE DATABASE $db" >/dev/null
		args+=(--store postgres --db "${PG/\/postgres\?//$db?}")
	fi
	echo "$(date -u +%T) $name $store $size: ${args[*]}" >&2
	local t0=$SECONDS
	taskset -c "$LOAD_CPU" "$bin" "${args[@]}" >"$OUT/$name-$store-$size.json" 2>"$OUT/$name-$store-$size.log" &
	local pid=$! pinned=""
	cur_pid=$pid cur_db=$db
	while kill -0 "$pid" 2>/dev/null; do
		for c in $(pgrep -P "$pid" || true); do
			[[ " $pinned " == *" $c "* ]] || { taskset -a -pc "$SERVER_CPU" "$c" >/dev/null 2>&1 && pinned+=" $c"; }
		done
		sleep 0.2
	done
	wait "$pid" || echo "  $name $store $size: bench failed or had errors (see $OUT/$name-$store-$size.log)" >&2
	echo "  $((SECONDS - t0)) s" >&2
	[[ -z $db ]] || psql "$PG" -qAtc "DROP DATABASE IF EXISTS $db" >/dev/null
	cur_pid="" cur_db=""
}

# wave_ok STORE: would the 100k assignment fit, judging by the 10k one?
wave_ok() {
	local f="$OUT/after-$1-10000.json" s
	[[ -s $f ]] || { echo yes; return; }
	s=$(jq '[.phases[] | select(.name | startswith("wave: assignment")) | .wall_ns][0] // 0 | . / 1e9 * 10 | floor' "$f")
	if ((s <= WAVE_MAX_S)); then echo yes; else
		echo "  wave at 100k skipped on $1: the 10k assignment took $((s / 10)) s (×10 > ${WAVE_MAX_S} s)" >&2
		echo no
	fi
}

for store in $STORES; do
	for size in $SIZES; do
		if [[ $ORDER == after-first ]]; then
			run after "$after" "$store" "$size"
			run before "$before" "$store" "$size"
		else
			run before "$before" "$store" "$size"
			run after "$after" "$store" "$size"
		fi
	done
done

# The tables: server CPU per operation (before → after) per phase and
# size; the heap per enrolled device; the wave (after only).
cell() { # FILE PHASE: "CPU/op (errors)"
	[[ -s $1 ]] || { echo "–"; return; }
	jq -r --arg p "$2" '([.phases[] | select(.name == $p)] + [.phases[] | select(.name | startswith($p))])[0] //empty
		| (if .ops > 0 then .server_cpu_ns / .ops else 0 end) as $c
		| (if $c >= 1e6 then "\($c / 1e4 | round / 100) ms" else "\($c / 1e3 | round) µs" end)
		+ (if .errors > 0 then " (\(.errors) failed)" else "" end)' "$1" 2>/dev/null | grep . || echo "–"
}
heap() {
	[[ -s $1 ]] || { echo "–"; return; }
	jq -r '((.server_heap_live_after_bytes - .server_heap_live_before_bytes) / ([.devices + .seeded_devices, 1] | max)) | "\(round) B"' "$1"
}
for store in $STORES; do
	echo
	echo "**$store**, server CPU per operation, before → after ($(date -u +%F), DEVICES=$DEVICES through the full flow, the rest seeded)"
	echo
	printf '| phase |'; for size in $SIZES; do printf ' %sk |' $((size / 1000)); done; echo
	printf '| --- |'; for size in $SIZES; do printf ' --- |'; done; echo
	for phase in "enrollment without the sign-in" "idle check-in" "command round trip (enqueue without push)" "command round trip" "bulk enqueue" "wave: assignment" "wave: InstallProfile"; do
		printf '| %s |' "$phase"
		for size in $SIZES; do
			printf ' %s → %s |' "$(cell "$OUT/before-$store-$size.json" "$phase")" "$(cell "$OUT/after-$store-$size.json" "$phase")"
		done
		echo
	done
	printf '| live heap per enrolled device |'
	for size in $SIZES; do printf ' %s → %s |' "$(heap "$OUT/before-$store-$size.json")" "$(heap "$OUT/after-$store-$size.json")"; done
	echo
	echo
	echo "Wave (after): round trips/s, p50 / p95 / p99, server CPU, load-generator CPU and every other process's CPU (PostgreSQL) per round trip, all cores' busy share"
	echo
	echo '| size | round trips/s | p50 / p95 / p99 | server CPU/op | load CPU/op | other CPU/op | cores busy | errors |'
	echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
	for size in $SIZES; do
		f="$OUT/after-$store-$size.json"
		[[ -s $f ]] || continue
		jq -r --arg s "$((size / 1000))k" '.phases[] | select(.name | startswith("wave: InstallProfile"))
			| "| \($s) | \(.ops / (.wall_ns / 1e9) | round) | \(.p50_ns / 1e6 * 10 | round / 10) / \(.p95_ns / 1e6 * 10 | round / 10) / \(.p99_ns / 1e6 * 10 | round / 10) ms | \(.server_cpu_ns / .ops / 1e3 | round) µs | \((.load_cpu_ns // 0) / .ops / 1e3 | round) µs | \(if (.machine_cpu_ns // 0) > 0 then "\(([.machine_cpu_ns - .server_cpu_ns - (.load_cpu_ns // 0), 0] | max) / .ops / 1e3 | round) µs" else "–" end) | \(if (.machine_cpu_ns // 0) > 0 then "\(.machine_cpu_ns / .wall_ns / (.cores // 1) * 100 | round) %" else "–" end) | \(.errors) |"' "$f"
	done
done
echo
echo "reports: $OUT" >&2
