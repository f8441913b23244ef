-- A "type zoo": what Pagila, Northwind and Chinook lack (issue 3's list),
-- for schema fingerprints and exact-value round trips. Loaded into an empty
-- database with psql -v ON_ERROR_STOP=1.
create extension citext;
create extension hstore;
create extension ltree;
create extension pgcrypto;

create schema "Zoo ""Mixed"" Çase";
set search_path = "Zoo ""Mixed"" Çase", public;

create type mood as enum ('sad', 'ok', 'happy');
create domain positive_int as integer check (value > 0);
create domain email as citext check (value ~ '^[^@]+@[^@]+$');
create type pair as (a integer, b text);
create type floatrange as range (subtype = float8, subtype_diff = float8mi);

create table every_type (
    id           integer generated always as identity primary key,
    j            json,
    jb           jsonb,
    u            uuid default gen_random_uuid(),
    iv           interval,
    ip           inet,
    net          cidr,
    mac          macaddr,
    mac8         macaddr8,
    b            bit(8),
    vb           varbit(20),
    x            xml,
    tsv          tsvector,
    tsq          tsquery,
    ir           int4range,
    nr           numrange,
    tr           tstzrange,
    dr           daterange,
    imr          int4multirange,
    fr           floatrange,
    m            money,
    ci           citext,
    h            hstore,
    l            ltree,
    e            email,
    p            positive_int,
    md           int[][],
    moods        mood[],
    pairs        pair[],
    doms         positive_int[],
    n            numeric(30, 10),
    f4           real,
    f8           double precision,
    ts           timestamp,
    tz           timestamptz,
    d            date,
    t            time,
    ttz          timetz,
    bytes        bytea,
    ch           char(5),
    vc           varchar(10),
    sha          text default encode(public.digest('zoo', 'sha256'), 'hex'),
    total        numeric generated always as (coalesce(n, 0) * 2) stored
);

create table keyless_full (a text, b jsonb, c int[]);
alter table keyless_full replica identity full;

create table "Ünïcode ""Table""" ("Çolumn" text primary key, "sp ace" int);

create table events (id bigint, region text, at date not null, payload jsonb,
                     primary key (id, region, at)) partition by list (region);
create table events_eu partition of events for values in ('eu') partition by range (at);
create table events_eu_2024 partition of events_eu for values from ('2024-01-01') to ('2025-01-01');
create table events_eu_rest partition of events_eu default;
create table events_us partition of events for values in ('us');
create table events_other partition of events default;

create extension if not exists btree_gist;
create table booking (id int primary key, room int, during tstzrange, exclude using gist (room with =, during with &&));

insert into every_type (j, jb, iv, ip, net, mac, mac8, b, vb, x, tsv, tsq, ir, nr, tr, dr, imr, fr, m, ci, h, l, e, p,
                        md, moods, pairs, doms, n, f4, f8, ts, tz, d, t, ttz, bytes, ch, vc)
values ('{"b": 1, "a": [1, 2],  "a": "dup"}', '{"b": 1, "a": [1, 2]}', '1 year 2 mons 3 days 04:05:06.789',
        '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'10101010', B'1101',
        '<a x="1">t&amp;<b/></a>', 'the quick:1 brown fox', 'quick & fox', '[1,10)', '(1.5,2.5]',
        '[2024-01-01 00:00+00,2024-06-01 00:00+00)', '[2024-01-01,2024-02-01)', '{[1,3), [5,8)}', '[0.5,1.5)',
        '$1,234.56', 'MiXeD', 'a=>1, "b c"=>"d\"e"', 'top.science.astronomy', 'Someone@Example.com', 7,
        '{{1,2},{3,NULL}}', '{sad,happy}', array[row(1, 'x'), row(2, null)]::pair[], '{1,2}', 1234567890.0123456789,
        3.4028235e38, -1.7976931348623157e308, '4713-01-01 BC', 'infinity', '-infinity', '24:00:00', '23:59:59+14',
        '\x00ff5c27', 'ab', 'ünïcødé'),
       (null, 'null', '-00:00:00.000001', '::1', '2001:db8::/32', null, null, B'00000000', B'', '<r/>', '', 'a',
        'empty', '[1,1]', null, '[2024-01-01,infinity)', '{}', null, '-$0.01', '', '', '', 'a@b', 1,
        '{}', '{}', '{}', null, 'NaN', '-Infinity', 5e-324, '294276-12-31 23:59:59', '1970-01-01 00:00:00+00', 'epoch',
        '00:00', '00:00:00-15:59', '', '', '');
insert into keyless_full values ('x', '{"k": null}', '{1,NULL}'), ('x', '{"k": null}', '{1,NULL}'), (null, null, null);
insert into "Ünïcode ""Table""" values ('ß', 1), ('日本', 2);
insert into events values (1, 'eu', '2024-05-01', '{}'), (2, 'eu', '2023-01-01', '[]'), (3, 'us', '2024-01-01', null), (4, 'ap', '2024-01-01', '1');
insert into booking values (1, 1, '[2024-01-01,2024-01-02)'), (2, 1, '[2024-01-02,2024-01-03)');
