-- 101-primary-key-update
-- source: pgsync's own case (the shape of e.g. debezium/debezium DBZ-1531 and
--         dimitri/pgcopydb key-change reports)
-- category: UPDATE that changes the primary key (single and composite),
--           key swaps within one transaction, key change with unchanged TOAST
-- assumes: fresh source database, pgsync syncs every table in schema public
-- source-setup:
CREATE TABLE acct (id int PRIMARY KEY, owner text, big text);
ALTER TABLE acct ALTER COLUMN big SET STORAGE EXTERNAL;   -- out of line, sent as 'u' when unchanged
CREATE TABLE line (order_id int, line_no int, sku text, qty int, PRIMARY KEY (order_id, line_no));
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
-- an identity ALWAYS column that is not the key: it arrives in every UPDATE's new tuple
CREATE TABLE ticket (id int PRIMARY KEY, seq bigint GENERATED ALWAYS AS IDENTITY, state text);
INSERT INTO acct SELECT g, 'owner ' || g, repeat(md5(g::text), 200) FROM generate_series(1, 6) g;
INSERT INTO line VALUES (1, 1, 'a', 1), (1, 2, 'b', 2), (2, 1, 'c', 3);
INSERT INTO ident (v) VALUES ('one'), ('two');
INSERT INTO ticket (id, state) VALUES (1, 'open'), (2, 'open');
-- during-sync:
-- plain key change; only the key changes, big stays 'u' (unchanged TOAST)
UPDATE acct SET id = 100 WHERE id = 1;
-- key and another column change together
UPDATE acct SET id = 200, owner = 'moved' WHERE id = 2;
-- swap two keys inside one transaction through a temporary value
BEGIN;
UPDATE acct SET id = -3 WHERE id = 3;
UPDATE acct SET id = 3 WHERE id = 4;
UPDATE acct SET id = 4 WHERE id = -3;
COMMIT;
-- reuse a key freed earlier in the same transaction
BEGIN;
DELETE FROM acct WHERE id = 6;
UPDATE acct SET id = 6, big = 'small now' WHERE id = 5;
COMMIT;
-- change a key, then delete the row by its new key
UPDATE acct SET id = 300 WHERE id = 100;
DELETE FROM acct WHERE id = 300;
-- every row's key at once (negate: never collides with itself)
UPDATE line SET order_id = -order_id;
-- one column of a composite key
UPDATE line SET line_no = 9 WHERE order_id = -1 AND line_no = 2;
-- the other column, moving a line to another order
UPDATE line SET order_id = -2, qty = 30 WHERE order_id = -1 AND line_no = 9;
-- a plain update of a table with a non-key identity ALWAYS column (seq unchanged)
UPDATE ticket SET state = 'closed' WHERE id = 1;
UPDATE ticket SET id = 20 WHERE id = 2;
-- an identity ALWAYS column can only be updated to DEFAULT on the source; that
-- changes its value (here: the key)
UPDATE ident SET id = DEFAULT WHERE v = 'one';
UPDATE ticket SET seq = DEFAULT WHERE id = 1;
-- expect:
SELECT id, owner, length(big), md5(big) FROM acct ORDER BY id;
SELECT * FROM line ORDER BY order_id, line_no;
SELECT * FROM ident ORDER BY id;
SELECT * FROM ticket ORDER BY id;
-- destination only: SELECT string_agg(id || ':' || length(big), ',' ORDER BY id) FROM acct; expected 3:6400,4:6400,6:9,200:6400
-- destination only: SELECT string_agg(order_id || '/' || line_no || '/' || sku || '/' || qty, ',' ORDER BY order_id, line_no) FROM line; expected -2/1/c/3,-2/9/b/30,-1/1/a/1
-- expected acct: (3,'owner 4',6400) (4,'owner 3',6400) (6,'owner 5',9 = 'small now')
-- (200,'moved',6400); big is intact (length 6400) wherever it was not updated.
-- line: (-2,1,c,3) (-2,9,b,30) (-1,1,a,1). ident: (2,two) (3,one).
-- ticket: (1,3,closed) (20,2,open).
-- why:
-- With REPLICA IDENTITY DEFAULT an UPDATE that changes the key carries the old
-- key ('K' tuple); applying it by the new key updates nothing (or the wrong
-- row). A key change that leaves out-of-line values unchanged must not write
-- them; swaps and reused keys must be applied in the source's statement order.
-- An identity GENERATED ALWAYS column on the destination refuses
-- "SET col = <value>" (only DEFAULT is allowed), so unchanged values must not be
-- re-set and changed ones need another way in.
