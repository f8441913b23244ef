#!/usr/bin/env bash
# Re-captures the golden pgoutput frames pg15_*.bin in this directory from a
# throwaway PostgreSQL cluster. README.md beside this script explains the
# steps; the SQL below is the SQL quoted there.
#
#   bash testdata/pgoutput/capture.sh            # binaries from $PGSYNC_PG_BINDIR
#                                                # or /usr/lib/postgresql/15/bin
#
# As root the server runs as the `postgres` user through `runuser`.
# On the same PostgreSQL build LSNs, xids and OIDs come out the same, but
# times differ on every capture: after re-capturing, update the expected times
# in the `golden_*` tests of src/replication/pgoutput.rs and frame.rs.
set -euo pipefail

BINDIR=${PGSYNC_PG_BINDIR:-/usr/lib/postgresql/15/bin}
OUT=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/pgoutput-capture.XXXXXX)

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$WORK"

as_pg "$BINDIR/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync -E UTF8 \
    --locale=C >/dev/null
cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$WORK'
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
fsync = off
wal_sender_timeout = '2s'
EOF
as_pg "$BINDIR/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
trap 'as_pg "$BINDIR/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null; rm -rf "$WORK"' EXIT

sql() {
    PGOPTIONS='-c client_min_messages=warning' "$BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -U postgres -d postgres "$@"
}

PROTO1="'proto_version', '1', 'publication_names', 'pub', 'messages', 'true'"
PROTO1_BINARY="$PROTO1, 'binary', 'true'"
PROTO2_STREAM="'proto_version', '2', 'publication_names', 'pub', 'messages', 'true', 'streaming', 'on'"

# Decoding stops at the flushed WAL position, and neither aborts nor
# non-transactional messages flush WAL: wait for the WAL writer.
wait_for_flush() {
    local lsn
    lsn=$(sql -c "select pg_current_wal_insert_lsn()")
    until [ "$(sql -c "select pg_current_wal_flush_lsn() >= '$lsn'")" = t ]; do sleep 0.1; done
}

SLOT=x

# capture OPTIONS COUNT SPEC [SEQUENCE]
#   Reads slot $SLOT's pending changes with pgoutput OPTIONS and consumes
#   them (pg_logical_slot_get_binary_changes: the frames that
#   pg_logical_slot_peek_binary_changes returns, then the slot advances).
#   COUNT is the expected number of frames, or '*' for any.
#   SPEC is "INDEX:TAG:NAME ...": frame INDEX (negative counts from the end)
#   must start with TAG and is saved as pg15_NAME.bin.
#   SEQUENCE, if given, saves every frame as pg15_SEQUENCE.bin: each frame
#   preceded by its length as a big-endian u32.
capture() {
    local opts=$1 count=$2 spec=$3 sequence=${4:-}
    local rows
    mapfile -t rows < <(sql -c "set logical_decoding_work_mem = '64kB'" \
        -c "select encode(data, 'hex') from pg_logical_slot_get_binary_changes('$SLOT', null, null, $opts)")
    local n=${#rows[@]}
    if [ -n "${DEBUG:-}" ]; then
        for row in "${rows[@]}"; do printf '%s' "${row:0:2}" | xxd -r -p; done >&2
        echo >&2
    fi
    if [ "$count" != '*' ] && [ "$n" != "$count" ]; then
        echo "expected $count frames, got $n:" >&2
        for row in "${rows[@]}"; do echo "  ${row:0:2}" >&2; done
        exit 1
    fi
    local item idx tag name hex
    for item in $spec; do
        IFS=: read -r idx tag name <<<"$item"
        [ "$idx" -lt 0 ] && idx=$((n + idx))
        hex=${rows[$idx]}
        if [ "$(printf '%s' "${hex:0:2}" | xxd -r -p)" != "$tag" ]; then
            echo "frame $idx: expected tag $tag, got $(printf '%s' "${hex:0:2}" | xxd -r -p)" >&2
            exit 1
        fi
        printf '%s' "$hex" | xxd -r -p >"$OUT/pg15_$name.bin"
    done
    if [ -n "$sequence" ]; then
        for hex in "${rows[@]}"; do
            printf '%08x%s' $((${#hex} / 2)) "$hex"
        done | xxd -r -p >"$OUT/pg15_$sequence.bin"
    fi
}

# --- setup (not captured) ---------------------------------------------------
sql >/dev/null <<'SQL'
create type mood as enum ('happy', 'sad');
create table t (id int primary key, body text, note varchar(20));
create table f (id int, v text);
alter table f replica identity full;
create table parent (id int generated always as identity primary key, v text);
create table child (id int primary key, parent_id int references parent);
create table m (id int primary key, feeling mood);
create table big (id int primary key, pad text);
create publication pub for all tables;
select pg_replication_origin_create('upstream');
select pg_create_logical_replication_slot('x', 'pgoutput');
SQL

# --- protocol version 1 -----------------------------------------------------
# 1. insert a row whose body (4000 random hex digits, seeded) is TOASTed
sql >/dev/null <<'SQL'
select setseed(0.5);
insert into t
select 1, string_agg(md5(random()::text), ''), 'first'
from generate_series(1, 125);
SQL
capture "$PROTO1" 4 "0:B:begin 1:R:relation_t 2:I:insert_toasted 3:C:commit"

# 2. update another column: the TOASTed body is sent as 'u' (unchanged)
sql -c "update t set note = 'second' where id = 1"
capture "$PROTO1" 4 "2:U:update_unchanged_toast"

# 3. update the key: the old key goes as a 'K' tuple
sql -c "update t set id = 2 where id = 1"
capture "$PROTO1" 4 "2:U:update_key"

# 4. delete under REPLICA IDENTITY DEFAULT: 'K' tuple
sql -c "delete from t where id = 2"
capture "$PROTO1" 4 "2:D:delete_key"

# 5. nulls, then the same row shape in binary mode ('b' columns)
sql -c "insert into t values (3, null, 'nulls')"
capture "$PROTO1" 4 "2:I:insert_null"
sql -c "insert into t values (4, 'short', 'binary')"
capture "$PROTO1_BINARY" 4 "2:I:insert_binary"

# 6. REPLICA IDENTITY FULL: 'O' tuples on update and delete
sql >/dev/null <<'SQL'
begin;
insert into f values (1, 'a');
update f set v = 'b' where id = 1;
delete from f where id = 1;
commit;
SQL
capture "$PROTO1" 6 "1:R:relation_full 2:I:insert_full 3:U:update_full 4:D:delete_full"

# 7. TRUNCATE ... RESTART IDENTITY CASCADE over two related tables
sql -c "insert into parent (v) values ('p')" -c "insert into child values (1, 1)"
capture "$PROTO1" 8 ""
sql -c "truncate parent restart identity cascade"
capture "$PROTO1" 5 "1:R:relation_parent 2:R:relation_child 3:T:truncate_cascade_restart_identity"

# 8. logical decoding messages, transactional and not
sql -c "select pg_logical_emit_message(true, 'p', 'hello')" >/dev/null
capture "$PROTO1" 3 "0:B:begin_message 1:M:message_transactional 2:C:commit_message"
sql -c "select pg_logical_emit_message(false, 'p', 'bye')" >/dev/null
wait_for_flush
capture "$PROTO1" 1 "0:M:message_nontransactional"

# 9. a column of a user-defined type: a Type message precedes the Relation
sql -c "insert into m values (1, 'happy')"
capture "$PROTO1" 5 "1:Y:type_mood 2:R:relation_m 3:I:insert_enum"

# 10. a transaction replayed from a replication origin: an Origin message
sql >/dev/null <<'SQL'
select pg_replication_origin_session_setup('upstream');
begin;
select pg_replication_origin_xact_setup('0/ABCDEF', '2024-01-02 03:04:05+00');
insert into f values (2, 'from upstream');
commit;
SQL
capture "$PROTO1" 5 "1:O:origin"

# --- protocol version 2, streaming -----------------------------------------
# 11. a transaction over logical_decoding_work_mem (64kB) is streamed while
#     in progress; inside Stream Start .. Stream Stop each change carries its
#     xid. The whole sequence is saved too.
sql -c "insert into f values (3, 'streamed')"
capture "$PROTO2_STREAM" 4 ""
sql >/dev/null <<'SQL'
begin;
select pg_logical_emit_message(true, 'p', 'streamed');
insert into m values (2, 'sad');
update f set v = 'streamed too' where id = 3;
delete from f where id = 3;
truncate child;
insert into big select g, repeat(md5(g::text), 30) from generate_series(1, 70) g;
commit;
SQL
capture "$PROTO2_STREAM" '*' "0:S:stream_start_first 1:M:stream_message 2:Y:stream_type \
3:R:stream_relation_m 4:I:stream_insert_enum 6:U:stream_update_full 7:D:stream_delete_full \
9:T:stream_truncate -2:E:stream_stop -1:c:stream_commit" stream_commit_sequence

# 12. a streamed transaction whose subtransaction is rolled back, then itself.
#     A new slot: decoding from slot x's restart_lsn would first stream the
#     transaction of step 11 again and abort it (it committed before the
#     slot's confirmed position).
SLOT=y
sql -c "select pg_create_logical_replication_slot('y', 'pgoutput')" >/dev/null
sql >/dev/null <<'SQL'
begin;
insert into big select g, repeat(md5(g::text), 30) from generate_series(101, 170) g;
savepoint s;
insert into big select g, repeat(md5(g::text), 30) from generate_series(201, 270) g;
rollback to savepoint s;
rollback;
SQL
wait_for_flush
# Decoded after the rollback, the changes are found aborted at the first
# catalog access, so both streamed blocks are empty: S E S E A A.
capture "$PROTO2_STREAM" 6 "2:S:stream_start_continued -2:A:stream_abort_subtransaction \
-1:A:stream_abort"

# --- the replication protocol around the messages ---------------------------
# 13. raw CopyData payloads of START_REPLICATION: an XLogData holding a Begin
#     and primary keepalives, one asking for a reply (after
#     wal_sender_timeout / 2 = 1s without a status update)
sql -c "select pg_create_logical_replication_slot('z', 'pgoutput')" >/dev/null
sql -c "insert into f values (9, 'copydata')"
python3 "$OUT/capture_copydata.py" "$WORK" z "$OUT"
