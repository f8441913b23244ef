-- 102-replica-identity-full-nulls
-- source: pgsync's own case (the shape of 2ndQuadrant/pglogical#262 and
--         debezium/debezium DBZ-2075: FULL identity rows matched with "=")
-- category: REPLICA IDENTITY FULL / NULLs in the old tuple / duplicate rows /
--           types without an equality operator
-- assumes: fresh source database, pgsync syncs every table in schema public
--          (FULL tables without a key pass the precheck with a warning)
-- source-setup:
CREATE TABLE contact (name text, email text, phone text, score float8);   -- no key
ALTER TABLE contact REPLICA IDENTITY FULL;
CREATE TABLE doc_full (id int PRIMARY KEY, meta json, pos point, note text, big text);
ALTER TABLE doc_full REPLICA IDENTITY FULL;
ALTER TABLE doc_full ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO contact VALUES
  ('ann', NULL, '555', 1.5),
  ('bob', 'bob@x', NULL, NULL),
  ('dup', NULL, NULL, NULL),
  ('dup', NULL, NULL, NULL),
  ('nan', 'n@x', NULL, 'NaN');
INSERT INTO doc_full VALUES
  (1, '{"b": 1,  "a": [1, 2]}', '(1,2)', NULL, repeat('B', 5000)),
  (2, NULL, NULL, 'plain', NULL);
-- during-sync:
-- old tuple has NULLs: matching with "=" finds nothing
UPDATE contact SET phone = '556' WHERE name = 'ann';
UPDATE contact SET email = NULL WHERE name = 'bob';
-- one of two identical all-NULL rows: exactly one must change
UPDATE contact SET email = 'one@x' WHERE ctid = (SELECT min(ctid) FROM contact WHERE name = 'dup');
-- and then delete the other, still identical to nothing else
DELETE FROM contact WHERE name = 'dup' AND email IS NULL;
-- NaN in the old tuple (NaN = NaN is true for float8 in PostgreSQL)
UPDATE contact SET score = 2 WHERE name = 'nan';
INSERT INTO contact VALUES (NULL, NULL, NULL, NULL), (NULL, NULL, NULL, NULL);
DELETE FROM contact WHERE ctid = (SELECT max(ctid) FROM contact WHERE name IS NULL);
-- json and point have no "=" operator: the old tuple cannot be matched with "="
UPDATE doc_full SET note = 'touched' WHERE id = 1;
UPDATE doc_full SET meta = '{"z":0}' WHERE id = 2;
DELETE FROM doc_full WHERE id = 2;
INSERT INTO doc_full VALUES (3, '[]', '(0,0)', NULL, NULL);
UPDATE doc_full SET pos = '(9,9)' WHERE id = 3;
-- expect:
SELECT name, email, phone, score, count(*) FROM contact
GROUP BY 1, 2, 3, 4 ORDER BY 1 NULLS LAST, 2 NULLS LAST, 3, 4;
SELECT id, meta::text, pos::text, note, length(big), md5(big) FROM doc_full ORDER BY id;
-- destination only: SELECT count(*) FROM contact; expected 5
-- destination only: SELECT string_agg(id || ':' || coalesce(note, '-') || ':' || coalesce(length(big), 0), ',' ORDER BY id) FROM doc_full; expected 1:touched:5000,3:-:0
-- why:
-- With REPLICA IDENTITY FULL the old tuple identifies the row; a NULL in it must
-- match with IS NOT DISTINCT FROM, duplicates must be changed one at a time,
-- and columns whose type has no equality operator (json, point) must not break
-- the apply (compare them as text, or leave them out of the match when a key
-- exists).
