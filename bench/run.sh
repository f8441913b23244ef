#!/usr/bin/env bash
# pgsync benchmark: full copy vs a raw binary COPY pipe vs pg_dump -Fd -j2 |
# pg_restore -j2 (and pgcopydb clone when installed); backlog catch-up vs a
# native CREATE SUBSCRIPTION. Tools interleaved and rotated, >= 3 reps,
# medians of paired ratios (pgsync / peer within one rep). Every run is
# validated by row counts and an ordered md5 per table.
#
#   bench/run.sh [--quick] [--reps N] [--scale S]
#
# Results: $OUT (default bench/out/<time>/): runs.tsv and summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0; REPS=3; SCALE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS="$2"; shift ;;
    --scale) SCALE="$2"; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--reps N] [--scale S]" >&2; exit 1 ;;
  esac; shift
done
[ -n "$SCALE" ] || { [ "$QUICK" = 1 ] && SCALE=5 || SCALE=200; }
BACKLOG_TXNS=$([ "$QUICK" = 1 ] && echo 20000 || echo 200000)
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
SRC_PORT="${SRC_PORT:-55432}"; DST_PORT="${DST_PORT:-55433}"
OUT="${OUT:-bench/out/$(date +%Y%m%d-%H%M%S)}"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/pgsync-bench.XXXXXX)"; chmod 755 "$WORK"
AS=(); [ "$(id -u)" = 0 ] && { AS=(runuser -u postgres --); chown postgres "$WORK"; }
run_pg() { "${AS[@]}" "$@"; }

cargo build --release -q
PGSYNC="$PWD/target/release/pgsync"

for side in src dst; do
  run_pg "$PGBIN/initdb" -D "$WORK/$side" -U postgres -A trust >/dev/null
  port=$([ $side = src ] && echo $SRC_PORT || echo $DST_PORT)
  cat >> "$WORK/$side/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
wal_level = logical
max_wal_senders = 20
max_replication_slots = 20
shared_buffers = 256MB
max_wal_size = 4GB
fsync = on
CONF
done
stop() { for side in src dst; do run_pg "$PGBIN/pg_ctl" -D "$WORK/$side" stop -m fast >/dev/null 2>&1 || true; done; rm -rf "$WORK"; }
trap stop EXIT
start() { run_pg "$PGBIN/pg_ctl" -D "$WORK/$1" -l "$WORK/$1.log" -w start >/dev/null; }
start src; start dst
S=(psql -X -q -h 127.0.0.1 -p $SRC_PORT -U postgres -v ON_ERROR_STOP=1)
D=(psql -X -q -h 127.0.0.1 -p $DST_PORT -U postgres -v ON_ERROR_STOP=1)
"${S[@]}" -c "create database app" postgres
"$PGBIN/pgbench" -q -h 127.0.0.1 -p $SRC_PORT -U postgres -i -s "$SCALE" app >/dev/null 2>&1
"${S[@]}" -c "alter table pgbench_history add column hid bigserial primary key" app
TABLES="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history"

digest() { # port -> one line of count:md5 per table
  local p=$1 t
  for t in $TABLES; do
    psql -X -At -h 127.0.0.1 -p "$p" -U postgres app -c \
      "select '$t:' || count(*) || ':' || coalesce(md5(string_agg(md5(x::text), '' order by x::text)), '') from $t x"
  done
}
WANT="$(digest $SRC_PORT)"
fresh_dst() { "${D[@]}" -c "drop database if exists app with (force)" -c "create database app" postgres; }
validate() { local got; got="$(digest $DST_PORT)"; [ "$got" = "$WANT" ] && echo ok || { echo "MISMATCH" >&2; echo bad; }; }
now() { date +%s.%N; }

config() { # pgsync configuration in $1
  mkdir -p "$1"
  cat > "$1/pgsync.hcl" <<HCL
endpoint "src" {
  host = "127.0.0.1"
  port = $SRC_PORT
  database = "app"
  user = "postgres"
}
endpoint "dst" {
  host = "127.0.0.1"
  port = $DST_PORT
  database = "app"
  user = "postgres"
}
task "bench" {
  source      = endpoint.src
  destination = endpoint.dst
  sync_types  = ["schema", "full", "incremental"]
  schema "public" {}
}
HCL
}

full_pgsync() {
  local ws="$WORK/ws-full"; rm -rf "$ws"; config "$ws"
  "$PGSYNC" --chdir "$ws" apply --auto-approve --exit-when-caught-up >"$WORK/pgsync.log" 2>&1
}
# The practical limit of one stream: tables without indexes (pre-data), one
# binary COPY each, then indexes and constraints (post-data).
full_pipe() {
  "$PGBIN/pg_dump" -h 127.0.0.1 -p $SRC_PORT -U postgres --section=pre-data app | "${D[@]}" app >/dev/null
  local t
  for t in $TABLES; do
    psql -X -h 127.0.0.1 -p $SRC_PORT -U postgres app -c "copy $t to stdout (format binary)" |
      psql -X -q -h 127.0.0.1 -p $DST_PORT -U postgres app -c "copy $t from stdin (format binary)"
  done
  "$PGBIN/pg_dump" -h 127.0.0.1 -p $SRC_PORT -U postgres --section=post-data app | "${D[@]}" app >/dev/null
}
full_dump() {
  rm -rf "$WORK/dump"
  "$PGBIN/pg_dump" -h 127.0.0.1 -p $SRC_PORT -U postgres -Fd -j2 -f "$WORK/dump" app
  "$PGBIN/pg_restore" -h 127.0.0.1 -p $DST_PORT -U postgres -j2 -d app "$WORK/dump"
}
full_pgcopydb() {
  pgcopydb clone --source "postgres://postgres@127.0.0.1:$SRC_PORT/app" \
    --target "postgres://postgres@127.0.0.1:$DST_PORT/app" --dir "$WORK/pgcopydb" --drop-if-exists >/dev/null 2>&1
  rm -rf "$WORK/pgcopydb"
}
TOOLS=(pgsync pipe dump); command -v pgcopydb >/dev/null && TOOLS+=(pgcopydb)

printf 'scenario\trep\ttool\tseconds\tvalid\n' > "$OUT/runs.tsv"
for rep in $(seq 1 "$REPS"); do
  n=${#TOOLS[@]}
  for i in $(seq 0 $((n - 1))); do
    tool=${TOOLS[$(((i + rep - 1) % n))]}
    fresh_dst; sync
    t0=$(now); "full_$tool"; t1=$(now)
    v=$(validate)
    [ "$tool" = pgsync ] && { "$PGSYNC" --chdir "$WORK/ws-full" destroy --auto-approve >>"$WORK/pgsync.log" 2>&1 || true; }
    printf 'full\t%s\t%s\t%.3f\t%s\n' "$rep" "$tool" "$(echo "$t1 - $t0" | bc)" "$v" | tee -a "$OUT/runs.tsv"
  done
done

# Backlog catch-up: BACKLOG_TXNS one-row inserts written while the consumer
# is stopped, then drained; rows/s measured from start to the last row.
"${S[@]}" -c "create table backlog (id bigint primary key, v text)" app
write_backlog() { "${S[@]}" app -c "do \$\$ begin for i in $1..$2 loop insert into backlog values (i, md5(i::text)); commit; end loop; end \$\$"; }
wait_rows() { while [ "$(psql -X -At -h 127.0.0.1 -p $DST_PORT -U postgres app -c "select count(*) from backlog")" -lt "$1" ]; do sleep 0.05; done; }
base=0
for rep in $(seq 1 "$REPS"); do
  for tool in $( [ $((rep % 2)) = 1 ] && echo "pgsync native" || echo "native pgsync"); do
    fresh_dst
    "${S[@]}" app -c "truncate backlog"
    if [ $tool = pgsync ]; then
      ws="$WORK/ws-cdc"; rm -rf "$ws"; config "$ws"
      sed -i 's/schema "public" {}/table "public.backlog" {}/' "$ws/pgsync.hcl"
      "$PGSYNC" --chdir "$ws" apply --auto-approve --exit-when-caught-up >"$WORK/cdc.log" 2>&1
      write_backlog 1 "$BACKLOG_TXNS"
      t0=$(now); "$PGSYNC" --chdir "$ws" apply --auto-approve --exit-when-caught-up >>"$WORK/cdc.log" 2>&1
      wait_rows "$BACKLOG_TXNS"; t1=$(now)
      "$PGSYNC" --chdir "$ws" destroy --auto-approve >>"$WORK/cdc.log" 2>&1 || true
    else
      "$PGBIN/pg_dump" -h 127.0.0.1 -p $SRC_PORT -U postgres --schema-only -t backlog app | "${D[@]}" app >/dev/null
      "${S[@]}" app -c "drop publication if exists bp" -c "create publication bp for table backlog"
      "${D[@]}" app -c "create subscription bs connection 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=app' publication bp with (copy_data = false)"
      "${D[@]}" app -c "alter subscription bs disable"
      write_backlog 1 "$BACKLOG_TXNS"
      t0=$(now); "${D[@]}" app -c "alter subscription bs enable"
      wait_rows "$BACKLOG_TXNS"; t1=$(now)
      "${D[@]}" app -c "alter subscription bs disable" -c "alter subscription bs set (slot_name = none)" -c "drop subscription bs"
      "${S[@]}" app -c "select pg_drop_replication_slot('bs')" >/dev/null
    fi
    got=$(psql -X -At -h 127.0.0.1 -p $DST_PORT -U postgres app -c "select count(*) || md5(string_agg(v, '' order by id)) from backlog")
    want=$(psql -X -At -h 127.0.0.1 -p $SRC_PORT -U postgres app -c "select count(*) || md5(string_agg(v, '' order by id)) from backlog")
    v=$([ "$got" = "$want" ] && echo ok || echo bad)
    secs=$(echo "$t1 - $t0" | bc)
    printf 'backlog\t%s\t%s\t%.3f\t%s\n' "$rep" "$tool" "$secs" "$v" | tee -a "$OUT/runs.tsv"
  done
done

python3 - "$OUT" "$SCALE" "$BACKLOG_TXNS" <<'PY'
import sys, statistics, collections, platform, os, subprocess
out, scale, txns = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [l.rstrip('\n').split('\t') for l in open(f"{out}/runs.tsv")][1:]
by = collections.defaultdict(dict)
for sc, rep, tool, secs, valid in rows:
    by[(sc, rep)][tool] = (float(secs), valid)
cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"], capture_output=True, text=True).stdout.strip()
lines = [f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.platform()}; pgbench scale {scale}; backlog {txns} one-row transactions", "",
         "| scenario | tool | median s | median paired ratio pgsync/tool | all runs valid |", "|---|---|---|---|---|"]
for sc in ("full", "backlog"):
    tools = sorted({t for (s, _), d in by.items() if s == sc for t in d})
    for t in tools:
        secs = [d[t][0] for (s, _), d in by.items() if s == sc and t in d]
        valid = all(d[t][1] == "ok" for (s, _), d in by.items() if s == sc and t in d)
        ratios = [d["pgsync"][0] / d[t][0] for (s, _), d in by.items() if s == sc and t in d and "pgsync" in d]
        extra = f" ({txns / statistics.median(secs):,.0f} rows/s)" if sc == "backlog" else ""
        lines.append(f"| {sc} | {t} | {statistics.median(secs):.2f}{extra} | {statistics.median(ratios):.2f} | {'yes' if valid else 'NO'} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
