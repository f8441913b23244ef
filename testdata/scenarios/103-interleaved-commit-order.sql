-- 103-interleaved-commit-order
-- source: pgsync's own case (the shape of supabase/etl and debezium reports where
--         changes were applied in begin/xid order instead of commit order)
-- category: interleaved transactions / commit order / two-phase commit
-- assumes: fresh source database, pgsync syncs every table in schema public
-- server-setting: max_prepared_transactions = 10
-- source-setup:
-- PREPARE TRANSACTION detaches a transaction from its session, so one psql
-- script can interleave transactions: the one that began first commits last.
CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL, last_tx text);
CREATE TABLE ledger (id int PRIMARY KEY, sku text, delta int, tx text);
INSERT INTO stock VALUES ('a', 10, 'setup'), ('b', 20, 'setup'), ('c', 30, 'setup');
-- during-sync:
-- T1 begins first (lowest xid, earliest changes in the WAL) ...
BEGIN;
INSERT INTO ledger VALUES (1, 'a', -1, 'T1');
UPDATE stock SET qty = qty - 1, last_tx = 'T1' WHERE sku = 'a';
PREPARE TRANSACTION 't1';
-- ... T2 begins later and commits first; it changes rows T1 does not hold locks on
BEGIN;
INSERT INTO ledger VALUES (2, 'b', -5, 'T2');
UPDATE stock SET qty = qty - 5, last_tx = 'T2' WHERE sku = 'b';
INSERT INTO stock VALUES ('d', 1, 'T2');
PREPARE TRANSACTION 't2';
-- T3 updates the row T2 inserted, but only after T2 commits
COMMIT PREPARED 't2';
BEGIN;
UPDATE stock SET qty = qty + 100, last_tx = 'T3' WHERE sku = 'd';
DELETE FROM ledger WHERE id = 2;
INSERT INTO ledger VALUES (3, 'd', 100, 'T3');
PREPARE TRANSACTION 't3';
-- T4 is prepared and then rolled back: none of it may arrive
BEGIN;
INSERT INTO ledger VALUES (4, 'c', -30, 'T4');
DELETE FROM stock WHERE sku = 'c';
PREPARE TRANSACTION 't4';
COMMIT PREPARED 't3';
ROLLBACK PREPARED 't4';
-- finally the oldest transaction commits, after everything it overlapped
COMMIT PREPARED 't1';
-- a transaction that touches rows of every earlier one, committed last
BEGIN;
UPDATE stock SET last_tx = last_tx || '+T5' WHERE sku IN ('a', 'b', 'd');
UPDATE ledger SET delta = delta * 10 WHERE id IN (1, 3);
SAVEPOINT s;
DELETE FROM stock;
ROLLBACK TO SAVEPOINT s;
COMMIT;
-- expect:
SELECT * FROM stock ORDER BY sku;
SELECT * FROM ledger ORDER BY id;
SELECT count(*) FROM pg_prepared_xacts;
-- destination only: SELECT string_agg(sku || ':' || qty || ':' || last_tx, ',' ORDER BY sku) FROM stock; expected a:9:T1+T5,b:15:T2+T5,c:30:setup,d:101:T3+T5
-- destination only: SELECT string_agg(id || ':' || delta || ':' || tx, ',' ORDER BY id) FROM ledger; expected 1:-10:T1,3:1000:T3
-- why:
-- Logical decoding sends each transaction whole at its commit, in commit order;
-- a consumer that orders by xid or by first change, or that applies a
-- transaction's changes before its commit, writes T1 before T2/T3 and loses or
-- reorders updates. A prepared-then-rolled-back transaction must leave no trace.
