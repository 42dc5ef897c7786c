// node-postgres (npm `pg`) against `qubedb serve`: connect, DDL, parameterized and named prepared
// queries, types, a transaction rolled back, an error's SQLSTATE, and metadata from information_schema.
// Run by the server tests with the port as the argument (`pg` found through NODE_PATH, which .ci/run
// sets); prints `ok` when all hold.

const assert = require("assert");
const { Client } = require("pg");

async function main() {
  const client = new Client({ host: "127.0.0.1", port: Number(process.argv[2]), user: "qubedb", database: "qubedb" });
  await client.connect();
  await client.query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(8,2), tags TEXT, seen TIMESTAMPTZ, ok BOOLEAN)");
  for (let id = 1; id <= 3; id++) {
    await client.query({
      name: "insert-item",
      text: "INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6)",
      values: [id, `item ${id}`, (id * 1.5).toFixed(2), null, new Date(Date.UTC(2024, 0, id, 12)), id % 2 === 1],
    });
  }
  const selected = await client.query("SELECT id, name, price, seen, ok FROM items WHERE price > $1 ORDER BY id", ["2"]);
  assert.deepStrictEqual(selected.rows.map((row) => [row.id, row.name, row.price, row.ok]), [
    [2, "item 2", "3.00", false],
    [3, "item 3", "4.50", true],
  ]);
  assert.strictEqual(selected.rows[0].seen.toISOString(), "2024-01-02T12:00:00.000Z");
  assert.deepStrictEqual(selected.fields.map((field) => field.name), ["id", "name", "price", "seen", "ok"]);
  await client.query("BEGIN");
  await client.query("DELETE FROM items");
  await client.query("ROLLBACK");
  const count = await client.query("SELECT count(*)::int AS n FROM items");
  assert.strictEqual(count.rows[0].n, 3);
  await assert.rejects(client.query("INSERT INTO items VALUES (1, 'again')"), (error) => error.code === "23505");
  await assert.rejects(client.query("SELEC 1"), (error) => error.code === "42601" && Number(error.position) === 1);
  const columns = await client.query(
    "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
    ["items"],
  );
  assert.deepStrictEqual(columns.rows.map((row) => `${row.column_name}:${row.data_type}:${row.is_nullable}`), [
    "id:integer:NO",
    "name:text:NO",
    "price:numeric:YES",
    "tags:text:YES",
    "seen:timestamp with time zone:YES",
    "ok:boolean:YES",
  ]);
  await client.end();
  console.log("ok");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
