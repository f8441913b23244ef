-- 104-quoted-non-ascii-names
-- source: pgsync's own case (the shape of dimitri/pgcopydb#226 and
--         debezium/debezium DBZ-3035: unquoted or mis-split identifiers)
-- category: identifiers: mixed case, non-ASCII, spaces, dots, quotes, reserved words
-- assumes: fresh source database, pgsync syncs every table in schema public
-- source-setup:
CREATE TABLE "CustomerOrders" (
  "Order ID"    int PRIMARY KEY,
  "customerName" text NOT NULL,
  "Größe €"     numeric(6,2),
  "select"      text,
  "col""quote"  text,
  lower_plain   int
);
CREATE TABLE "Ünïcödé 表" ("ключ" serial PRIMARY KEY, "値" text, "Order ID" int
  REFERENCES "CustomerOrders" ("Order ID") ON UPDATE CASCADE ON DELETE CASCADE);
CREATE TABLE "a.b" ("x.y" int PRIMARY KEY, "A" text, "a" text);   -- a dot in both names; "A" and a differ
CREATE TABLE "user" (id int PRIMARY KEY, "group" text);             -- reserved words
CREATE INDEX "Idx Größe" ON "CustomerOrders" ("Größe €");
CREATE UNIQUE INDEX "uq ключ" ON "Ünïcödé 表" ("値");
INSERT INTO "CustomerOrders" VALUES (1, 'Zoë', 1.50, 'sel', 'q"1', 1), (2, 'Ødegaard', 2.00, NULL, NULL, 2);
INSERT INTO "Ünïcödé 表" ("値", "Order ID") VALUES ('一', 1), ('二', 2);
INSERT INTO "a.b" VALUES (1, 'upper', 'lower');
INSERT INTO "user" VALUES (1, 'admin');
-- during-sync:
INSERT INTO "CustomerOrders" VALUES (3, 'Åsa', 3.25, 'from', 'q""3', 3);
UPDATE "CustomerOrders" SET "Größe €" = 9.99, "col""quote" = 'x"y' WHERE "Order ID" = 1;
UPDATE "CustomerOrders" SET "Order ID" = 20 WHERE "Order ID" = 2;       -- key change, cascades to the child row
INSERT INTO "Ünïcödé 表" ("値", "Order ID") VALUES ('三', 3);
UPDATE "Ünïcödé 表" SET "値" = '一一' WHERE "ключ" = 1;
DELETE FROM "CustomerOrders" WHERE "Order ID" = 3;                      -- cascades to "Ünïcödé 表"
INSERT INTO "a.b" VALUES (2, 'U2', 'l2');
UPDATE "a.b" SET "A" = 'UPPER' WHERE "x.y" = 1;
DELETE FROM "a.b" WHERE "x.y" = 2;
INSERT INTO "user" VALUES (2, 'staff');
UPDATE "user" SET "group" = 'root' WHERE id = 1;
TRUNCATE "a.b";
INSERT INTO "a.b" VALUES (5, 'after', 'truncate');
-- expect:
SELECT * FROM "CustomerOrders" ORDER BY "Order ID";
SELECT * FROM "Ünïcödé 表" ORDER BY "ключ";
SELECT * FROM "a.b" ORDER BY "x.y";
SELECT * FROM "user" ORDER BY id;
SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'dts\_%' ORDER BY 1;
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '"Ünïcödé 表"'::regclass ORDER BY 1;
-- destination only: SELECT string_agg("Order ID" || ':' || "customerName", ',' ORDER BY "Order ID") FROM "CustomerOrders"; expected 1:Zoë,20:Ødegaard
-- destination only: SELECT string_agg("x.y" || ':' || "A" || ':' || a, ',') FROM "a.b"; expected 5:after:truncate
-- why:
-- Every identifier must be quoted wherever SQL is built (DDL, COPY column
-- lists, INSERT/UPDATE/DELETE, TRUNCATE, catalog lookups); splitting
-- "schema.table" on the dot, folding case, or dropping embedded quotes sends
-- changes to the wrong table or fails the stream.
