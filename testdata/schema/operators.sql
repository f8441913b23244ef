-- Schema-generation fixture for the object kinds around types: operators,
-- operator families and classes, casts and text search objects. Loaded into
-- database `app` by tests/schema_sync_objects.rs; every object here must come
-- out identical on the destination, and the indexes, constraints, views and
-- generated columns that use them must work there.

create schema ops;
create extension citext with schema ops;
create schema "Text Search";

-- Complex numbers ordered by modulus: a composite type with a full set of
-- comparison operators, a btree and a hash operator class. The operators'
-- functions are PL/pgSQL so that the planner cannot inline them away from
-- the indexes; the support functions have SQL-standard bodies (14+), which
-- record the functions they call, so a single table brings them along.
create type ops.complex as (re float8, im float8);
comment on type ops.complex is 'ordered by modulus';

create function ops.complex_abs(ops.complex) returns float8
    language sql immutable strict as 'select sqrt(($1).re ^ 2 + ($1).im ^ 2)';
create function ops.complex_cmp(a ops.complex, b ops.complex) returns integer
    language sql immutable strict
begin atomic
    select case when ops.complex_abs(a) < ops.complex_abs(b) then -1
                when ops.complex_abs(a) > ops.complex_abs(b) then 1 else 0 end;
end;
create function ops.complex_lt(a ops.complex, b ops.complex) returns boolean
    language plpgsql immutable strict as 'begin return ops.complex_cmp(a, b) < 0; end';
create function ops.complex_le(a ops.complex, b ops.complex) returns boolean
    language plpgsql immutable strict as 'begin return ops.complex_cmp(a, b) <= 0; end';
create function ops.complex_eq(a ops.complex, b ops.complex) returns boolean
    language plpgsql immutable strict as 'begin return ops.complex_cmp(a, b) = 0; end';
create function ops.complex_ne(a ops.complex, b ops.complex) returns boolean
    language plpgsql immutable strict as 'begin return ops.complex_cmp(a, b) <> 0; end';
create function ops.complex_ge(a ops.complex, b ops.complex) returns boolean
    language plpgsql immutable strict as 'begin return ops.complex_cmp(a, b) >= 0; end';
create function ops.complex_gt(a ops.complex, b ops.complex) returns boolean
    language plpgsql immutable strict as 'begin return ops.complex_cmp(a, b) > 0; end';
create function ops.complex_hash(z ops.complex) returns integer
    language sql immutable strict
begin atomic
    select pg_catalog.hashfloat8(ops.complex_abs(z));
end;
-- Cross-type: a complex against a plain modulus.
create function ops.complex_float_cmp(a ops.complex, b float8) returns integer
    language sql immutable strict
begin atomic
    select pg_catalog.btfloat8cmp(ops.complex_abs(a), b);
end;
create function ops.complex_float_lt(a ops.complex, b float8) returns boolean
    language sql immutable strict
begin atomic
    select ops.complex_abs(a) < b;
end;

create operator ops.< (function = ops.complex_lt, leftarg = ops.complex, rightarg = ops.complex,
    commutator = operator(ops.>), negator = operator(ops.>=),
    restrict = scalarltsel, join = scalarltjoinsel);
create operator ops.<= (function = ops.complex_le, leftarg = ops.complex, rightarg = ops.complex,
    commutator = operator(ops.>=), negator = operator(ops.>),
    restrict = scalarlesel, join = scalarlejoinsel);
create operator ops.= (function = ops.complex_eq, leftarg = ops.complex, rightarg = ops.complex,
    commutator = operator(ops.=), negator = operator(ops.<>),
    restrict = eqsel, join = eqjoinsel, hashes, merges);
create operator ops.<> (function = ops.complex_ne, leftarg = ops.complex, rightarg = ops.complex,
    commutator = operator(ops.<>), negator = operator(ops.=),
    restrict = neqsel, join = neqjoinsel);
create operator ops.>= (function = ops.complex_ge, leftarg = ops.complex, rightarg = ops.complex,
    commutator = operator(ops.<=), negator = operator(ops.<),
    restrict = scalargesel, join = scalargejoinsel);
create operator ops.> (function = ops.complex_gt, leftarg = ops.complex, rightarg = ops.complex,
    commutator = operator(ops.<), negator = operator(ops.<=),
    restrict = scalargtsel, join = scalargtjoinsel);
comment on operator ops.= (ops.complex, ops.complex) is 'same modulus';
create operator ops.< (function = ops.complex_float_lt, leftarg = ops.complex, rightarg = float8);
-- A prefix operator.
create operator ops.@@ (function = ops.complex_abs, rightarg = ops.complex);

-- The family is created first and holds a loose cross-type member; the
-- class joins it.
create operator family ops.complex_abs_family using btree;
alter operator family ops.complex_abs_family using btree add
    operator 1 ops.< (ops.complex, float8),
    function 1 (ops.complex, float8) ops.complex_float_cmp(ops.complex, float8);
comment on operator family ops.complex_abs_family using btree is 'by modulus';
create operator class ops.complex_abs_ops default for type ops.complex using btree
    family ops.complex_abs_family as
    operator 1 ops.<, operator 2 ops.<=, operator 3 ops.=, operator 4 ops.>=, operator 5 ops.>,
    function 1 ops.complex_cmp(ops.complex, ops.complex);
comment on operator class ops.complex_abs_ops using btree is 'btree by modulus';
-- The hash class makes its own family.
create operator class ops.complex_hash_ops default for type ops.complex using hash as
    operator 1 ops.=,
    function 1 ops.complex_hash(ops.complex);
-- A GiST class over a built-in type, with an ordering operator.
create operator class ops.box_lite_ops for type box using gist as
    operator 3 pg_catalog.&&, operator 7 pg_catalog.@>, operator 8 pg_catalog.<@,
    operator 15 pg_catalog.<-> (box, point) for order by pg_catalog.float_ops,
    function 1 pg_catalog.gist_box_consistent(internal, box, smallint, oid, internal),
    function 2 pg_catalog.gist_box_union(internal, internal),
    function 5 pg_catalog.gist_box_penalty(internal, internal, internal),
    function 6 pg_catalog.gist_box_picksplit(internal, internal),
    function 7 pg_catalog.gist_box_same(box, box, internal),
    function 8 pg_catalog.gist_box_distance(internal, box, smallint, oid, internal);

-- Angles: a domain with a self-commutating operator.
create domain ops.angle as float8 check (value >= 0 and value < 360);
create function ops.angle_add(a ops.angle, b ops.angle) returns ops.angle
    language sql immutable strict as 'select ((a + b)::numeric % 360)::float8';
create operator ops.+ (function = ops.angle_add, leftarg = ops.angle, rightarg = ops.angle,
    commutator = operator(ops.+));

-- Casts: with a function (assignment), with inout, without function (which
-- needs two base types of the same representation: from 17 no composite,
-- enum, array, range or domain type may be cast that way; here an
-- extension's type, which the selection of schema ops brings).
create function ops.complex_of(float8) returns ops.complex
    language sql immutable strict as 'select row($1, 0)::ops.complex';
create cast (float8 as ops.complex) with function ops.complex_of(float8) as assignment;
comment on cast (float8 as ops.complex) is 'a real number';
create cast (ops.complex as text) with inout;
create cast (ops.citext as bytea) without function;

-- Text search: a template and a parser built from the built-in functions,
-- dictionaries, and configurations (one copied from english, its mappings
-- altered; one on the custom parser).
create text search template "Text Search".simple_tmpl (init = dsimple_init, lexize = dsimple_lexize);
comment on text search template "Text Search".simple_tmpl is 'simple, again';
create text search dictionary "Text Search"."Stop Simple" (template = "Text Search".simple_tmpl,
    stopwords = english, accept = false);
create text search dictionary "Text Search".english_stem2 (template = snowball, language = english);
comment on text search dictionary "Text Search".english_stem2 is 'stemmer';
create text search parser "Text Search".words (start = prsd_start, gettoken = prsd_nexttoken,
    end = prsd_end, lextypes = prsd_lextype, headline = prsd_headline);
create text search configuration "Text Search".myconf (copy = pg_catalog.english);
alter text search configuration "Text Search".myconf
    alter mapping for asciiword, word with "Text Search"."Stop Simple", "Text Search".english_stem2;
alter text search configuration "Text Search".myconf drop mapping for email, url, url_path;
comment on text search configuration "Text Search".myconf is 'english, less';
create text search configuration "Text Search".plain (parser = "Text Search".words);
alter text search configuration "Text Search".plain add mapping for asciiword, word with simple;

create table ops.shape (
    id integer primary key,
    z ops.complex not null,
    heading ops.angle,
    label ops.citext,
    area box,
    body text,
    doc tsvector generated always as (to_tsvector('"Text Search".myconf', body)) stored,
    exclude using hash (z with ops.=)
);
create index shape_z on ops.shape (z);
create index shape_area on ops.shape using gist (area ops.box_lite_ops);
create index shape_body on ops.shape using gin (to_tsvector('"Text Search".plain', body));
insert into ops.shape (id, z, heading, label, area, body)
select i, row(i, i % 7)::ops.complex, (i * 37 % 360)::float8, 'Shape ' || i,
       box(point(i, i), point(i + 2, i + 3)),
       format('The %s quick foxes jumped over %s lazy dogs at http://x.example/%s', i, i * 2, i)
  from generate_series(1, 200) i;

create view ops.shape_view as
select s.id, s.z::text as z_text, (s.heading::float8)::ops.complex as heading_complex,
       s.label::bytea as label_bytes, operator(ops.@@) s.z as modulus,
       s.heading operator(ops.+) s.heading as doubled
  from ops.shape s
 where s.z operator(ops.<) 100::float8;
