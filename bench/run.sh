#!/usr/bin/env bash
# pgsync benchmark (shared/BENCHMARKS.md protocol). Scenarios:
#   full     full copy of D1 (pgbench -i -s S): pgsync vs a binary COPY pipe
#            (pre-data, COPY per table, post-data) vs pg_dump -Fd -jN +
#            pg_restore -jN vs pgcopydb clone (when installed)
#   full-d2  the same four on D2 (~G GB of incompressible mixed types, TOAST,
#            a table without key, a 16-partition table) in database d2
#   backlog  one-row transactions written while the consumer is stopped, then
#            drained: pgsync vs a native subscription
#   steady   W1: pgbench -n -c 4 -j 2 -T T plus a 20 ms heartbeat, with pgsync
#            streaming, with a native subscription, and with no replication;
#            staleness from a target-side trigger, source TPS, backlog at load
#            end and catch-up time
#   bigtxn   W3: one N-row INSERT transaction while streaming: COMMIT ->
#            last row on the target, consumer peak RSS (native: streaming=off)
# Tools interleaved and rotated per repetition, every run behind the quiet
# gate, re-run (at most twice) when foreign CPU exceeds 5 % of wall x cores,
# validated by row count and md5 per table, and written as one JSON each.
#
#   bench/run.sh [--quick] [--reps N] [--scale S] [--only LIST] [--d2-gb G]
#                [--steady-seconds T] [--bigtxn-rows N] [--gate-max S]
#
# Results in $OUT (default bench/out/<time>/): runs/*.json, runs.tsv,
# summary.md, logs/. Environment: PGBIN, SRC_PORT, DST_PORT, OUT, PGSYNC (a
# built binary: skips cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_SCENARIOS="full,full-d2,backlog,bigtxn,steady"
usage() {
  echo "usage: bench/run.sh [--quick] [--reps N] [--scale S] [--only $ALL_SCENARIOS]" >&2
  echo "                    [--d2-gb G] [--steady-seconds T] [--bigtxn-rows N] [--gate-max S]" >&2
  exit 1
}
QUICK=0 REPS=3 SCALE="" ONLY="$ALL_SCENARIOS" D2_GB="" STEADY_S="" BIGTXN_ROWS="" GATE_MAX=""
ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS="${2:?}"; shift ;;
    --scale) SCALE="${2:?}"; shift ;;
    --only) ONLY="${2:?}"; shift ;;
    --d2-gb) D2_GB="${2:?}"; shift ;;
    --steady-seconds) STEADY_S="${2:?}"; shift ;;
    --bigtxn-rows) BIGTXN_ROWS="${2:?}"; shift ;;
    --gate-max) GATE_MAX="${2:?}"; shift ;;
    *) usage ;;
  esac
  shift
done
quick() { [ "$QUICK" = 1 ] && echo "$1" || echo "$2"; }
: "${SCALE:=$(quick 5 200)}" "${D2_GB:=$(quick 0.05 3)}" "${STEADY_S:=$(quick 10 60)}"
: "${BIGTXN_ROWS:=$(quick 200000 8000000)}" "${GATE_MAX:=$(quick 30 180)}"
BACKLOG_TXNS=$(quick 20000 200000)
WAIT_MAX=$(quick 600 7200)  # seconds any single wait for a consumer may take
for s in ${ONLY//,/ }; do
  case ",$ALL_SCENARIOS," in *",$s,"*) ;; *) echo "unknown scenario: $s" >&2; usage ;; esac
done
wanted() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
SRC_PORT="${SRC_PORT:-55432}" DST_PORT="${DST_PORT:-55433}"
CORES=$(nproc)
LIB="$PWD/bench/benchlib.py"
OUT="${OUT:-bench/out/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/runs" "$OUT/logs"; OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/pgsync-bench.XXXXXX)"; chmod 755 "$WORK"
AS=(); if [ "$(id -u)" = 0 ]; then AS=(runuser -u postgres --); chown postgres "$WORK"; fi
run_pg() { "${AS[@]}" "$@"; }
now() { date +%s.%N; }
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

BG_PIDS=()   # background processes of ours still to stop on exit
forget() { local p keep=(); for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; BG_PIDS=("${keep[@]}"); }
cleanup() {
  local rc=$? pid
  for pid in "${BG_PIDS[@]}"; do  # a /usr/bin/time wrapper ignores SIGINT: signal its child too
    pkill -INT -P "$pid" 2>/dev/null || true; kill -INT "$pid" 2>/dev/null || true
  done
  for pid in "${BG_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    pkill -KILL -P "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true
  done
  for side in src dst; do
    if [ -f "$WORK/$side/postmaster.pid" ]; then
      run_pg "$PGBIN/pg_ctl" -D "$WORK/$side" stop -m fast >/dev/null 2>&1 || true
    fi
  done
  cp "$WORK"/src.log "$WORK"/dst.log "$OUT/logs/" 2>/dev/null || true  # the servers' logs
  rm -rf "$WORK"
  [ "$rc" = 0 ] || echo "bench failed (exit $rc); logs in $OUT/logs" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${PGSYNC:-}" ]; then
  cargo build --release -q
  PGSYNC="${CARGO_TARGET_DIR:-$PWD/target}/release/pgsync"
fi

# --- clusters ---------------------------------------------------------------

for side in src dst; do
  run_pg "$PGBIN/initdb" -D "$WORK/$side" -U postgres -A trust >/dev/null
  port=$([ "$side" = src ] && echo "$SRC_PORT" || echo "$DST_PORT")
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
pg_start() { run_pg "$PGBIN/pg_ctl" -D "$WORK/$1" -l "$WORK/$1.log" -w start >/dev/null; }
restart_clusters() {
  for side in src dst; do
    run_pg "$PGBIN/pg_ctl" -D "$WORK/$side" -w stop -m fast >/dev/null
    pg_start "$side"
  done
}
pg_start src; pg_start dst

PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres)
src() { "${PSQL[@]}" -p "$SRC_PORT" -d "$@"; }   # src DB [psql args]
dst() { "${PSQL[@]}" -p "$DST_PORT" -d "$@"; }
fresh_dst() { dst postgres -c "set client_min_messages = warning" -c "drop database if exists $1 with (force)" -c "create database $1"; }
alive() { local st; st=$(ps -o stat= -p "$1") && [ "${st:0:1}" != Z ]; }  # pid, not a zombie
wait_until() { # port db sql want timeout [pid]: untimed set-up waits, given up when pid is gone
  local end; end=$(($(date +%s) + $5))
  until [ "$("${PSQL[@]}" -p "$1" -d "$2" -c "$3" 2>/dev/null)" = "$4" ]; do
    [ "$(date +%s)" -lt "$end" ] || { log "timed out waiting for $3 = $4 on port $1"; return 1; }
    [ -z "${6:-}" ] || alive "$6" || { log "the consumer exited (see $LOG)"; return 1; }
    sleep 0.2
  done
}

# Tables of a database (schema public, pgsync's dts_* helpers left out):
# `tables` lists what is validated (partitioned parents, not partitions),
# `copy_units` what the pipe copies (leaf tables).
TABLE_SQL="from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relname not like 'dts\\_%'"
tables() { "${PSQL[@]}" -p "$1" -d "$2" -c "select format('%I', c.relname) $TABLE_SQL
  and c.relkind in ('r', 'p') and not c.relispartition order by 1"; }
copy_units() { src "$1" -c "select format('%I', c.relname) $TABLE_SQL and c.relkind = 'r' order by 1"; }
data_bytes() { src "$1" -c "select sum(pg_table_size(c.oid)) $TABLE_SQL and c.relkind = 'r'"; }

digest() { # port db [table...] -> one "table:rows:md5" line per table
  local port=$1 db=$2 t list; shift 2
  list=("$@"); [ $# -gt 0 ] || mapfile -t list < <(tables "$port" "$db")
  for t in "${list[@]}"; do
    # order-independent: md5 of each row's text, sorted, hashed in 256 buckets
    # (string_agg stays far below its 1 GB limit at any scale)
    "${PSQL[@]}" -p "$port" -d "$db" -c "set work_mem = '64MB'" -c "
      select '$t:' || coalesce(sum(n), 0) || ':' || coalesce(md5(string_agg(b, '' order by k)), '')
      from (select left(h, 2) k, count(*) n, md5(string_agg(h, '' order by h)) b
            from (select md5(x::text) h from $t x) r group by 1) g"
  done
}
verdict() { # want got: ok, or bad with the difference in the run log
  if [ "$1" = "$2" ]; then echo ok; else
    { echo "VALIDATION MISMATCH"; diff <(echo "$1") <(echo "$2"); } >> "$LOG" || true
    log "validation MISMATCH (see $LOG)"; echo bad
  fi
}
validate() { # db want [table...]: the destination's digest against want
  local db=$1 want=$2; shift 2
  verdict "$want" "$(digest "$DST_PORT" "$db" "$@")"
}
both_digests() { # db: source and destination digests computed at once; sets WANT and GOT
  local db=$1 p1 p2
  digest "$SRC_PORT" "$db" > "$WORK/want" & p1=$!
  digest "$DST_PORT" "$db" > "$WORK/got" & p2=$!
  wait "$p1"; wait "$p2"
  WANT="$(cat "$WORK/want")" GOT="$(cat "$WORK/got")"
}
wal_lsn() { dst postgres -c "select pg_current_wal_lsn()"; }

config() { # dir db selection: a pgsync configuration
  mkdir -p "$1"
  cat > "$1/pgsync.hcl" <<HCL
endpoint "src" {
  host     = "127.0.0.1"
  port     = $SRC_PORT
  database = "$2"
  user     = "postgres"
}
endpoint "dst" {
  host     = "127.0.0.1"
  port     = $DST_PORT
  database = "$2"
  user     = "postgres"
}
task "bench" {
  source      = endpoint.src
  destination = endpoint.dst
  sync_types  = ["schema", "full", "incremental"]
  $3
}
HCL
}
pgsync_destroy() { "$PGSYNC" --chdir "$1" destroy --auto-approve >> "$LOG" 2>&1; }
pgsync_stop() { # pid: SIGINT, then wait for the graceful exit
  local rc=0
  kill -INT "$1"; wait "$1" || rc=$?
  forget "$1"
  [ "$rc" = 0 ] || { log "pgsync exited with $rc on SIGINT (see $LOG)"; return 1; }
}

# --- measurement ------------------------------------------------------------

# timed CMD...: runs CMD under GNU time, appending "wall user sys maxrss_kb" to
# $WORK/time; a run's tool CPU is the sum, its peak RSS the largest line.
timed() { /usr/bin/time -a -o "$WORK/time" -f '%e %U %S %M' "$@"; }
time_totals() { awk '/^[0-9]/ {cpu += $2 + $3; if ($4 > rss) rss = $4} END {printf "tool_cpu_s=%.2f tool_peak_rss_kb=%d", cpu, rss}' "$WORK/time"; }
snap() { python3 "$LIB" snap "$WORK/src" "$WORK/dst" "$$" "${1:-}" > "$WORK/$2"; }
gate() { python3 "$LIB" gate "$GATE_MAX" 15 > "$WORK/gate.json"; }
vm_hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

RUN_SEQ=0 FAILED=0 NOISY=""
printf 'scenario\trep\ttool\tattempt\tseconds\tvalid\tnoisy\tforeign_cpu_s\tgate_busy_pct\n' > "$OUT/runs.tsv"
record() { # scenario tool rep attempt seconds valid key=value...: one run's JSON; sets NOISY
  local sc=$1 tool=$2 rep=$3 attempt=$4 secs=$5 valid=$6 f foreign busy
  shift 6
  RUN_SEQ=$((RUN_SEQ + 1))
  f="$OUT/runs/$(printf %03d "$RUN_SEQ")-$sc-r$rep-$tool-a$attempt.json"
  read -r NOISY foreign busy <<< "$(python3 "$LIB" record "$f" "$WORK/snap0" "$WORK/snap1" \
    scenario="$sc" tool="$tool" rep="$rep" attempt="$attempt" file_order="$RUN_SEQ" seconds="$secs" \
    valid="$valid" "-=$(cat "$WORK/gate.json")" "$@")"
  [ "$valid" = bad ] && FAILED=1
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$rep" "$tool" "$attempt" "$secs" "$valid" \
    "$NOISY" "$foreign" "$busy" | tee -a "$OUT/runs.tsv"
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

# run_scenario NAME TOOL...: every repetition runs every tool, rotated
# (rep 1: A B C, rep 2: B C A, ...); a noisy run is re-run at most twice.
run_scenario() {
  local sc=$1 rep i n attempt tool; shift
  local tools=("$@"); n=${#tools[@]}
  for rep in $(seq 1 "$REPS"); do
    for i in $(seq 0 $((n - 1))); do
      tool=${tools[$(((i + rep - 1) % n))]}
      for attempt in 1 2 3; do
        LOG="$OUT/logs/$sc-r$rep-$tool-a$attempt.log"
        log "$sc rep $rep: $tool (attempt $attempt)"
        "run_${sc//-/_}" "$tool" "$rep" "$attempt"
        [ "$NOISY" = noisy ] || break
      done
    done
  done
}

# warm_up DB: one untimed pipe copy of DB before the measured runs. The
# first copy into a fresh cluster creates and zero-fills every WAL segment
# it writes (later ones recycle them): at scale 200 the same pgsync copy
# took 24.7 s into a fresh cluster and 21.3 s into the same cluster again,
# a cost that fell on whichever tool ran first (rep 1's first tool).
warm_up() {
  log "$1: warm-up copy (not measured)"
  LOG="$OUT/logs/warm-up-$1.log"
  fresh_dst "$1"; restart_clusters
  full_pipe "$1"
  fresh_dst "$1"
}

# --- datasets ---------------------------------------------------------------

load_d1() {
  src postgres -c "create database app"
  "$PGBIN/pgbench" -q -h 127.0.0.1 -p "$SRC_PORT" -U postgres -i -s "$SCALE" app >/dev/null 2>&1
  src app -c "alter table pgbench_history add column hid bigserial primary key"
}

# D2: ~G GB over 8 tables of mixed, incompressible types (random md5 text,
# sha512 bytes), generated with setseed() so every session has the same data.
d2_rows() { # share of D2 bytes, bytes per row -> rows
  awk -v g="$D2_GB" -v f="$1" -v b="$2" 'BEGIN {n = int(g * 1e9 * f / b); print (n < 10 ? 10 : n)}'
}
load_d2() {
  src postgres -c "create database d2"
  src d2 -v customers="$(d2_rows 0.05 110)" -v orders="$(d2_rows 0.25 1100)" -v items="$(d2_rows 0.10 90)" \
    -v events="$(d2_rows 0.15 480)" -v blobs="$(d2_rows 0.20 20500)" -v logs="$(d2_rows 0.10 330)" \
    -v measures="$(d2_rows 0.15 150)" <<'SQL'
select setseed(0.42) \g /dev/null
create type d2_status as enum ('new', 'paid', 'shipped', 'delivered', 'returned', 'cancelled');
create function d2_status_at(r float8) returns d2_status language sql immutable
  as $$ select (enum_range(null::d2_status))[1 + floor(r * 6)::int] $$;

create table d2_kinds (id int primary key, name text not null, status d2_status not null);
insert into d2_kinds select g, 'kind-' || g, d2_status_at(g / 17.0) from generate_series(1, 16) g;

create table d2_customers (id bigint primary key, ext_id uuid not null unique, name text not null,
  balance numeric(14, 2), created_at timestamptz not null, status d2_status not null);
insert into d2_customers
select g, md5(random()::text || g)::uuid, substr(md5(random()::text), 1, 8 + floor(random() * 20)::int),
       round((random() * 1e6)::numeric, 2), timestamptz '2020-01-01' + random() * interval '1500 days',
       d2_status_at(random())
from generate_series(1, :customers) g;

-- text of 50..2000 random characters (md5 concatenations)
create table d2_orders (id bigint primary key, customer_id bigint not null references d2_customers,
  amount numeric(12, 2) not null, placed_at timestamptz not null, status d2_status not null, note text not null);
insert into d2_orders
select s.g, 1 + floor(random() * :customers)::bigint, round((random() * 1e4)::numeric, 2),
       timestamptz '2021-01-01' + random() * interval '1000 days', d2_status_at(random()), left(r.t, s.len)
from (select g, 50 + floor(random() * 1951)::int len from generate_series(1, :orders) g) s,
     lateral (select string_agg(md5(random()::text || i), '') t from generate_series(1, (s.len + 31) / 32) i) r;

create table d2_items (id bigint primary key, order_id bigint not null, sku text not null, qty int not null,
  price numeric(10, 2) not null, added_at timestamptz not null);
insert into d2_items
select g, 1 + floor(random() * :orders)::bigint, 'SKU-' || substr(md5(random()::text), 1, 10),
       1 + floor(random() * 20)::int, round((random() * 500)::numeric, 2),
       timestamptz '2021-01-01' + random() * interval '1000 days'
from generate_series(1, :items) g;

-- uuid key, jsonb of ~300 bytes, int[] of 1..16 elements
create table d2_events (id uuid primary key, at timestamptz not null, kind int not null references d2_kinds,
  payload jsonb not null, tags int[] not null);
insert into d2_events
select md5(random()::text || s.g)::uuid, timestamptz '2022-01-01' + random() * interval '700 days', 1 + s.g % 16,
       jsonb_build_object('user', floor(random() * 1e6)::int, 'session', md5(random()::text),
         'path', '/' || md5(random()::text) || '/' || substr(md5(random()::text), 1, 12),
         'agent', md5(random()::text) || md5(random()::text) || md5(random()::text),
         'ok', random() < 0.9, 'ms', round((random() * 1000)::numeric, 3),
         'items', jsonb_build_array(floor(random() * 1e6)::int, floor(random() * 1e6)::int, md5(random()::text))),
       a.tags
from generate_series(1, :events) s(g),
     lateral (select array_agg(floor(random() * 1e6)::int) tags
              from generate_series(1, 1 + (s.g * 7 + floor(random() * 16)::int) % 16) i) a;

-- 8..32 KB of random bytes per row: TOASTed, and compression cannot shrink it
create table d2_blobs (id bigint primary key, kind d2_status not null, created_at timestamptz not null,
  data bytea not null);
insert into d2_blobs
select s.g, d2_status_at(random()), timestamptz '2022-01-01' + random() * interval '700 days', r.b
from (select g, 8192 + floor(random() * 24577)::int len, random() salt from generate_series(1, :blobs) g) s,
     lateral (select substring(string_agg(sha512(int8send(i) || float8send(s.salt)), ''::bytea) from 1 for s.len) b
              from generate_series(1, (s.len + 63) / 64) i) r;

-- no primary key: REPLICA IDENTITY FULL
create table d2_log (at timestamptz not null, level d2_status not null, source text not null,
  msg text not null, n numeric);
alter table d2_log replica identity full;
insert into d2_log
select timestamptz '2023-01-01' + random() * interval '300 days', d2_status_at(random()),
       'host-' || floor(random() * 100)::int, left(r.t, s.len), round((random() * 1e9)::numeric, 4)
from (select g, 50 + floor(random() * 451)::int len from generate_series(1, :logs) g) s,
     lateral (select string_agg(md5(random()::text || i), '') t from generate_series(1, (s.len + 31) / 32) i) r;

-- 16 hash partitions with a primary key
create table d2_measure (id bigint not null, sensor uuid not null, at timestamptz not null,
  v numeric(18, 6) not null, vals int[] not null, primary key (id)) partition by hash (id);
select format('create table d2_measure_p%s partition of d2_measure for values with (modulus 16, remainder %s)', i, i)
from generate_series(0, 15) i \gexec
insert into d2_measure
select g, md5((g % 5000)::text)::uuid, timestamptz '2023-01-01' + random() * interval '300 days',
       round((random() * 1e6)::numeric, 6),
       array[floor(random() * 1e6)::int, floor(random() * 1e6)::int, floor(random() * 1e6)::int]
from generate_series(1, :measures) g;

create index on d2_orders (customer_id);
create index on d2_items (order_id);
create index on d2_events (at);
create index on d2_log (at);
create index on d2_measure (at);
vacuum (analyze, freeze);
checkpoint;
SQL
}

# --- full copy --------------------------------------------------------------

PG_SRC=(-h 127.0.0.1 -p "$SRC_PORT" -U postgres)
full_pgsync() {
  local ws="$WORK/ws-full"; rm -rf "$ws"; config "$ws" "$1" 'schema "public" {}'
  timed "$PGSYNC" --chdir "$ws" apply --auto-approve --exit-when-caught-up >> "$LOG" 2>&1
}
# The practical limit of one stream: tables without indexes, one binary COPY
# each, then sequence values (what pg_dump's data section would set), then
# indexes and constraints (post-data).
full_pipe() {
  local db=$1 t t0 t1 t2
  t0=$(now)
  timed "$PGBIN/pg_dump" "${PG_SRC[@]}" --section=pre-data "$1" | timed "${PSQL[@]}" -p "$DST_PORT" -d "$db" >> "$LOG"
  t1=$(now)
  for t in $UNITS; do
    timed "${PSQL[@]}" -p "$SRC_PORT" -d "$db" -c "copy $t to stdout (format binary)" |
      timed "${PSQL[@]}" -p "$DST_PORT" -d "$db" -c "copy $t from stdin (format binary)"
  done
  timed "${PSQL[@]}" -p "$SRC_PORT" -d "$db" -c "select format('select pg_catalog.setval(%L, %s, %L);',
    format('%I.%I', schemaname, sequencename), coalesce(last_value, start_value), last_value is not null)
    from pg_sequences" | timed "${PSQL[@]}" -p "$DST_PORT" -d "$db" >> "$LOG"
  t2=$(now)
  timed "$PGBIN/pg_dump" "${PG_SRC[@]}" --section=post-data "$db" | timed "${PSQL[@]}" -p "$DST_PORT" -d "$db" >> "$LOG"
  PHASES="pre_data_s=$(secs "$t0" "$t1") data_s=$(secs "$t1" "$t2") post_data_s=$(secs "$t2" "$(now)")"
}
full_dump() {
  rm -rf "$WORK/dump"
  timed "$PGBIN/pg_dump" "${PG_SRC[@]}" -Fd -j "$CORES" -f "$WORK/dump" "$1" >> "$LOG" 2>&1
  timed "$PGBIN/pg_restore" -h 127.0.0.1 -p "$DST_PORT" -U postgres -j "$CORES" -d "$1" "$WORK/dump" >> "$LOG" 2>&1
}
full_pgcopydb() {
  rm -rf "$WORK/pgcopydb"
  timed pgcopydb clone --source "postgres://postgres@127.0.0.1:$SRC_PORT/$1" \
    --target "postgres://postgres@127.0.0.1:$DST_PORT/$1" --dir "$WORK/pgcopydb" --drop-if-exists >> "$LOG" 2>&1
}
FULL_TOOLS=(pgsync pipe dump); command -v pgcopydb >/dev/null && FULL_TOOLS+=(pgcopydb)

run_full_copy() { # scenario db tool rep attempt
  local sc=$1 db=$2 tool=$3 rep=$4 attempt=$5 t0 t1 w0 v
  fresh_dst "$db"; restart_clusters; sync
  : > "$WORK/time"; PHASES=""
  w0=$(wal_lsn)
  gate; snap "" snap0; t0=$(now)
  "full_$tool" "$db"
  t1=$(now); snap "" snap1
  v=$(validate "$db" "$WANT")
  [ "$tool" = pgsync ] && pgsync_destroy "$WORK/ws-full"
  # shellcheck disable=SC2046,SC2086 # time_totals and PHASES print key=value words
  record "$sc" "$tool" "$rep" "$attempt" "$(secs "$t0" "$t1")" "$v" $(time_totals) $PHASES \
    dataset="$db" data_bytes="$DATA_BYTES" rows="$ROWS" \
    dst_db_bytes="$(dst postgres -c "select pg_database_size('$db')")" \
    dst_wal_bytes="$(dst postgres -c "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$w0')")"
}
run_full() { run_full_copy full app "$@"; }
run_full_d2() { run_full_copy full-d2 d2 "$@"; }
prepare_full() { # db: source digest, leaf tables, sizes
  WANT="$(digest "$SRC_PORT" "$1")"
  UNITS="$(copy_units "$1")"
  DATA_BYTES="$(data_bytes "$1")"
  ROWS=$(awk -F: '{n += $2} END {print n}' <<< "$WANT")
  log "$1: $ROWS rows, $((DATA_BYTES / 1000000)) MB of table data"
}

# --- backlog ----------------------------------------------------------------

run_backlog() { # tool rep attempt
  local tool=$1 rep=$2 attempt=$3 ws="$WORK/ws-backlog" pid="" rc=0 v t0 noop=()
  fresh_dst app; restart_clusters
  src app -c "truncate backlog"
  if [ "$tool" = pgsync ]; then
    rm -rf "$ws"; config "$ws" app 'table "public.backlog" {}'
    "$PGSYNC" --chdir "$ws" apply --auto-approve --exit-when-caught-up >> "$LOG" 2>&1
    t0=$(now)  # once more with nothing to apply: pgsync's fixed start-up cost
    "$PGSYNC" --chdir "$ws" apply --auto-approve --exit-when-caught-up >> "$LOG" 2>&1
    noop=(noop_apply_s="$(secs "$t0" "$(now)")")
  else
    "$PGBIN/pg_dump" "${PG_SRC[@]}" --schema-only -t backlog app | dst app >> "$LOG"
    dst app -c "create subscription bs connection 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=app'
      publication bp with (copy_data = false)" -c "alter subscription bs disable" 2>> "$LOG"
  fi
  src app -c "do \$\$ begin for i in 1..$BACKLOG_TXNS loop
    insert into backlog values (i, md5(i::text)); commit; end loop; end \$\$"
  : > "$WORK/time"
  gate; snap "" snap0
  python3 "$LIB" wait "${PSQL[@]}" -p "$DST_PORT" -d app -- \
    "select coalesce(max(id), 0) from backlog" "$BACKLOG_TXNS" 0.02 "$WAIT_MAX" > "$WORK/wait.json" &
  local waiter=$!; BG_PIDS+=("$waiter")
  sleep 0.3  # the poller is connected before the consumer starts
  t0=$(now)
  if [ "$tool" = pgsync ]; then
    timed "$PGSYNC" --chdir "$ws" apply --auto-approve --exit-when-caught-up >> "$LOG" 2>&1 &
    pid=$!; BG_PIDS+=("$pid")
  else
    dst app -c "alter subscription bs enable"
  fi
  if [ -n "$pid" ]; then wait "$pid" || rc=$?; forget "$pid"; fi
  [ "$rc" = 0 ] || { log "pgsync apply exited with $rc (see $LOG)"; return 1; }
  wait "$waiter"; forget "$waiter"
  snap "" snap1
  if [ "$tool" = pgsync ]; then pgsync_destroy "$ws"; else
    dst app -c "drop subscription bs" >> "$LOG" 2>&1
  fi
  v=$(validate app "$(digest "$SRC_PORT" app backlog)" backlog)
  local total startup drain
  read -r total startup drain <<< "$(python3 "$LIB" elapsed "$WORK/wait.json" "$t0")"
  # shellcheck disable=SC2046 # time_totals prints key=value words
  record backlog "$tool" "$rep" "$attempt" "$total" "$v" rows="$BACKLOG_TXNS" startup_s="$startup" \
    drain_s="$drain" "${noop[@]}" $([ "$tool" = pgsync ] && time_totals)
}

# --- steady (W1) ------------------------------------------------------------

D1_TABLES="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history lagprobe"
# Target side, in a schema no consumer syncs: ALWAYS triggers (they fire
# under session_replication_role = replica) log every applied heartbeat when
# its row is written (lag_log) and when the destination transaction that
# holds it commits (lag_commit, deferred: visible staleness, batching
# included; commit timestamps would not do: native apply gives its commits
# the source's).
LAG_LOG_SQL="create schema bench;
create table bench.bench_lag_log (src_ts timestamptz, dst_ts timestamptz);
create table bench.bench_commit_log (src_ts timestamptz, commit_ts timestamptz);
create function bench.lag_log() returns trigger language plpgsql as
  \$\$ begin insert into bench.bench_lag_log values (new.ts, clock_timestamp()); return null; end \$\$;
create function bench.commit_log() returns trigger language plpgsql as
  \$\$ begin insert into bench.bench_commit_log values (new.ts, clock_timestamp()); return null; end \$\$;
create trigger lag_log after update on public.lagprobe for each row execute function bench.lag_log();
create constraint trigger lag_commit after update on public.lagprobe deferrable initially deferred
  for each row execute function bench.commit_log();
alter table public.lagprobe enable always trigger lag_log, enable always trigger lag_commit;"

start_native() { # tables publication: schema, publication, subscription with the initial copy; waits for it
  local t only=()
  for t in $1; do only+=(-t "$t"); done
  "$PGBIN/pg_dump" "${PG_SRC[@]}" --schema-only "${only[@]}" app | dst app >> "$LOG"
  dst app -c "create subscription bs connection 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=app'
    publication $2 with (streaming = off)" 2>> "$LOG"
  wait_until "$DST_PORT" app "select count(*) from pg_subscription_rel where srsubstate <> 'r'" 0 "$WAIT_MAX"
}
start_pgsync() { # selection: apply (no --exit-when-caught-up) in the background; sets PID
  local ws="$WORK/ws-stream"
  rm -rf "$ws"; config "$ws" app "$1"
  "$PGSYNC" --chdir "$ws" apply --auto-approve >> "$LOG" 2>&1 &
  PID=$!; BG_PIDS+=("$PID")
}
stop_consumer() { # tool (a pgsync that does not stop cleanly fails the bench)
  case "$1" in
    pgsync) pgsync_stop "$PID"; pgsync_destroy "$WORK/ws-stream" ;;
    native) dst app -c "drop subscription bs" >> "$LOG" 2>&1 ;;
  esac
}
probe() { # port: "epoch of lagprobe.ts|history rows"
  "${PSQL[@]}" -p "$1" -d app -c "select extract(epoch from ts) || '|' || (select count(*) from pgbench_history)
    from lagprobe where id = 1"
}

run_steady() { # tool rep attempt
  local tool=$1 rep=$2 attempt=$3 PID="" t0 t_end v=n/a s d catch="" extra=()
  fresh_dst app; restart_clusters
  src app -c "update lagprobe set ts = clock_timestamp() where id = 1"
  case "$tool" in
    pgsync) start_pgsync 'schema "public" {}' ;;
    native) start_native "$D1_TABLES" w1 ;;
  esac
  if [ "$tool" != none ]; then  # initial copy done and streaming: a fresh heartbeat arrives
    s=$(src app -c "update lagprobe set ts = clock_timestamp() where id = 1 returning ts")
    wait_until "$DST_PORT" app "select ts = '$s' from lagprobe where id = 1" t "$WAIT_MAX" "$PID"
    dst app -c "$LAG_LOG_SQL"
  fi
  gate; snap "$PID" snap0; t0=$(now)
  "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$SRC_PORT" -U postgres -f "$WORK/heartbeat.sql" -R 50 -c 1 \
    -T "$STEADY_S" app > "$WORK/hb.out" 2>> "$LOG" &
  local hb=$!; BG_PIDS+=("$hb")
  "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$SRC_PORT" -U postgres -c 4 -j 2 -T "$STEADY_S" app > "$WORK/load.out" 2>> "$LOG"
  wait "$hb"; forget "$hb"; t_end=$(now)
  cat "$WORK/load.out" >> "$LOG"
  if [ "$tool" != none ]; then
    s=$(probe "$SRC_PORT"); d=$(probe "$DST_PORT")
    extra+=(backlog_rows=$((${s#*|} - ${d#*|})) backlog_s="$(secs "${d%|*}" "${s%|*}")")
    if [ "$s" = "$d" ]; then catch=0; else
      python3 "$LIB" wait "${PSQL[@]}" -p "$DST_PORT" -d app -- \
        "select extract(epoch from ts) || '|' || (select count(*) from pgbench_history) from lagprobe where id = 1" \
        "$s" 0.02 "$WAIT_MAX" "$PID" > "$WORK/wait.json"
      catch=$(python3 "$LIB" elapsed "$WORK/wait.json" "$t_end" | cut -d' ' -f1)
    fi
    extra+=("-=$(python3 "$LIB" lag "${PSQL[@]}" -p "$DST_PORT" -d app -- "$(awk -v t="$t0" 'BEGIN {printf "%.3f", t + 3}')")")
  fi
  [ -n "$PID" ] && extra+=(tool_peak_rss_kb="$(vm_hwm_kb "$PID")")
  snap "$PID" snap1
  if [ "$tool" != none ]; then both_digests app; v=$(verdict "$WANT" "$GOT"); fi
  stop_consumer "$tool"
  record steady "$tool" "$rep" "$attempt" "${catch:-0}" "$v" "${extra[@]}" load_s="$STEADY_S" \
    tps="$(awk '/^tps = / {print $3}' "$WORK/load.out")" \
    heartbeats="$(awk '/actually processed/ {print $NF}' "$WORK/hb.out")"
}

# --- bigtxn (W3) ------------------------------------------------------------

run_bigtxn() { # tool rep attempt
  local tool=$1 rep=$2 attempt=$3 PID="" n=$BIGTXN_ROWS t_begin t_commit v extra=()
  fresh_dst app; restart_clusters
  src app -c "truncate bigtxn" -c "insert into bigtxn values (0, 'warm-up')"
  case "$tool" in
    pgsync) start_pgsync 'table "public.bigtxn" {}' ;;
    native) start_native bigtxn w3 ;;
  esac
  wait_until "$DST_PORT" app "select count(*) from bigtxn" 1 "$WAIT_MAX" "$PID"
  gate; snap "$PID" snap0
  python3 "$LIB" wait "${PSQL[@]}" -p "$DST_PORT" -d app -- \
    "select exists (select from bigtxn where id = $n)" t 0.05 "$WAIT_MAX" "$PID" > "$WORK/wait.json" &
  local waiter=$!; BG_PIDS+=("$waiter")
  sleep 0.3
  t_begin=$(now)
  t_commit=$(src app -c "begin" -c "insert into bigtxn
      select g, md5(g::text) || md5((g + 1)::text) || md5((g + 2)::text) || md5((g + 3)::text)
      from generate_series(1, $n) g" -c "commit" -c "select extract(epoch from clock_timestamp())")
  wait "$waiter"; forget "$waiter"
  [ -n "$PID" ] && extra+=(tool_peak_rss_kb="$(vm_hwm_kb "$PID")")
  snap "$PID" snap1
  v=$(validate app "$(digest "$SRC_PORT" app bigtxn)" bigtxn)
  stop_consumer "$tool"
  record bigtxn "$tool" "$rep" "$attempt" \
    "$(python3 "$LIB" elapsed "$WORK/wait.json" "$t_commit" | cut -d' ' -f1)" "$v" "${extra[@]}" rows="$n" txn_s="$(secs "$t_begin" "$t_commit")"
}

# --- main -------------------------------------------------------------------

python3 "$LIB" meta "$OUT/meta.json" started="$(date -u +%FT%TZ)" command="bench/run.sh $ARGS" \
  pg="$("$PGBIN/postgres" --version)" pgsync="$("$PGSYNC" --version)" \
  pgcopydb="$(command -v pgcopydb >/dev/null && pgcopydb --version 2>/dev/null | head -n 1 || echo absent)" \
  settings="reps $REPS, scale $SCALE, D2 $D2_GB GB, backlog $BACKLOG_TXNS txns, steady $STEADY_S s, bigtxn $BIGTXN_ROWS rows, gate < 15 % busy over 5 s waiting at most $GATE_MAX s, $CORES cores"

if wanted full || wanted backlog || wanted steady || wanted bigtxn; then log "loading D1 (pgbench scale $SCALE)"; load_d1; fi
if wanted full; then prepare_full app; warm_up app; run_scenario full "${FULL_TOOLS[@]}"; fi
if wanted full-d2; then
  log "loading D2 ($D2_GB GB)"; load_d2; prepare_full d2; warm_up d2
  run_scenario full-d2 "${FULL_TOOLS[@]}"
fi
if wanted backlog; then
  src app -c "create table backlog (id bigint primary key, v text)" -c "create publication bp for table backlog"
  run_scenario backlog pgsync native
  src app -c "drop publication bp" -c "drop table backlog"
fi
if wanted bigtxn; then
  src app -c "create table bigtxn (id bigint primary key, v text not null)" -c "create publication w3 for table bigtxn"
  run_scenario bigtxn pgsync native
  src app -c "drop publication w3" -c "drop table bigtxn"
fi

if wanted steady; then
  echo "update lagprobe set ts = clock_timestamp() where id = 1;" > "$WORK/heartbeat.sql"
  src app -c "create table lagprobe (id int primary key, ts timestamptz not null)" \
    -c "insert into lagprobe values (1, clock_timestamp())" \
    -c "create publication w1 for table ${D1_TABLES// /, }"
  run_scenario steady pgsync native none
  src app -c "drop publication w1" -c "drop table lagprobe"
fi
python3 "$LIB" summary "$OUT" > /dev/null
cat "$OUT/summary.md"
[ "$FAILED" = 0 ] || { log "some runs did not validate"; exit 1; }
