-- 105-value-fidelity
-- source: pgsync's own case (the shape of PeerDB-io/peerdb#1008, debezium/debezium
--         DBZ-5054 and dimitri/pgcopydb#447: values rewritten on the way)
-- category: value round trip through COPY (setup rows) and the stream (during-sync
--           rows): json text kept verbatim, bytea with every byte value, arrays with
--           NULLs, multidimensional arrays and lower bounds, interval, money,
--           ranges, enum/composite, special dates, float extremes
-- assumes: fresh source database, pgsync syncs every table in schema public; the
--          source database has non-default DateStyle, IntervalStyle and bytea_output
-- source-setup:
DO $$ BEGIN
  EXECUTE format('ALTER DATABASE %I SET DateStyle = %L', current_database(), 'SQL, DMY');
  EXECUTE format('ALTER DATABASE %I SET IntervalStyle = %L', current_database(), 'sql_standard');
  EXECUTE format('ALTER DATABASE %I SET bytea_output = %L', current_database(), 'escape');
END $$;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'it''s "fine"');
CREATE TYPE pair AS (l text, r int[]);
CREATE TABLE val (
  id   int PRIMARY KEY,
  j    json,            -- stored as text: whitespace, key order and duplicate keys kept
  jb   jsonb,
  b    bytea,
  ia   int[],
  ta   text[],
  md   int[],           -- multidimensional / non-default lower bounds
  iv   interval,
  m    money,
  rg   int4range,
  tr   tstzrange,
  mo   mood,
  moa  mood[],
  pr   pair,
  d    date,
  ts   timestamp,
  f8   float8,
  f4   real,
  ch   "char",
  bits varbit,
  ip   inet,
  u    uuid
);
INSERT INTO val VALUES
  (1, '{ "b" : 1,"a":[1, 2 ] , "a" : "dup" }', '{"b": 1, "a": {"z": null}}',
   (SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex') FROM generate_series(0, 255) g),
   '{1,NULL,3}', '{NULL,"NULL","",a\\b,"c\"d"}', '{{1,2},{3,NULL}}',
   '1 year 2 mons -3 days 04:05:06.789', '-12345.67', '[1,5)', '[2024-01-01 00:00+00,infinity)',
   'it''s "fine"', '{sad,"it''s \"fine\""}', ROW('x,y', '{1,NULL}'),
   '0044-03-15 BC', 'infinity', 5e-324, 'NaN', 'q', B'1010011', '::ffff:10.0.0.1/120',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
  (2, '[]', '[]', '\x', '{}', '{}', '[0:1][5:6]={{1,2},{3,4}}',
   '-178000000 years', '0', 'empty', '(,)', 'sad', '{}', ROW(NULL, NULL),
   '-infinity', '1999-12-31 23:59:59.999999', 1.7976931348623157e308, '-0', E'\\', B'', '0.0.0.0/0', NULL);
-- during-sync:
INSERT INTO val SELECT id + 10, j, jb, b, ia, ta, md, iv, m, rg, tr, mo, moa, pr, d, ts, f8, f4, ch, bits, ip, u
FROM val;
INSERT INTO val VALUES
  (3, E'{\n\t"k" :\t"v\\u00e9\\n"\n}', '{"k": "v\u00e9"}',
   (SELECT decode(string_agg(lpad(to_hex(255 - g), 2, '0'), '' ORDER BY g), 'hex') FROM generate_series(0, 255) g),
   '{NULL}', '{NULL,NULL}', '{{{1}},{{2}}}',
   '1 day -1 second', '92233720368547758.07', '(,10]', 'empty', 'ok', '{NULL,ok}', ROW('', '{}'),
   '2024-02-29', '2024-02-29 12:00:00.5', -5e-324, '1e-45', E'\001', B'0', '2001:db8::1', NULL);
UPDATE val SET j = '{"changed"  :  true}', iv = iv * 2, m = m + '0.01',
       md = '[-1:0]={7,8}', b = b || '\x00'::bytea
 WHERE id = 1;
UPDATE val SET ia = array_append(ia, NULL), ta[3] = NULL WHERE id = 11;
UPDATE val SET pr.r = '{9}', tr = '[2020-01-01,2020-01-02]' WHERE id = 12;
DELETE FROM val WHERE id = 2;
-- expect:
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SET bytea_output = 'hex';
SET TimeZone = 'UTC';
SET extra_float_digits = 3;
SELECT id, j::text, jb::text, md5(b), length(b), ia::text, ta::text, md::text, array_dims(md),
       iv::text, m::text, rg::text, tr::text, mo::text, moa::text, pr::text, d::text, ts::text,
       f8::text, f4::text, ch::text, bits::text, ip::text, u::text
FROM val ORDER BY id;
SELECT id, ta[1] IS NULL, ta[2] IS NULL, ia[2] IS NULL, (pr).l IS NULL, md[1][2] FROM val ORDER BY id;
-- destination only: SELECT j::text FROM val WHERE id = 11; expected { "b" : 1,"a":[1, 2 ] , "a" : "dup" }
-- destination only: SELECT md5(b) = md5((SELECT decode(string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g), 'hex') FROM generate_series(0, 255) g)) FROM val WHERE id = 11; expected t
-- destination only: SELECT array_dims(md) FROM val WHERE id = 12; expected [0:1][5:6]
-- why:
-- json keeps its input text (whitespace, key order, duplicate keys), so rebuilding
-- it through a JSON library changes it; bytea must survive every byte (0x00, 0x5c,
-- 0xff) in hex and escape output; array NULLs differ from the string "NULL";
-- dimensions and lower bounds are part of an array value; interval, money, dates
-- and floats have text forms that depend on session settings the source database
-- may override.
