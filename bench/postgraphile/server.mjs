// One Node process serving PostGraphile over node:http (grafserv/node): no watch mode, no GraphiQL.
//
//   DATABASE_URL=postgresql://... PORT=5678 node server.mjs
//
// For the bench's "SQL/request" column every statement sent through node-postgres is counted (an
// increment, nothing else); on SIGUSR2 the count is written to $BENCH_SQL_COUNT_FILE.
import { renameSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";

import { grafserv } from "grafserv/node";
import pg from "pg";
import { postgraphile } from "postgraphile";

import preset from "./graphile.config.mjs";

let statements = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function countedQuery(...args) {
  statements += 1;
  return query.apply(this, args);
};
const countFile = process.env.BENCH_SQL_COUNT_FILE;
if (countFile) {
  process.on("SIGUSR2", () => {
    writeFileSync(`${countFile}.tmp`, String(statements));
    renameSync(`${countFile}.tmp`, countFile);
  });
}

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.on("error", (error) => {
  console.error(error);
  process.exit(1);
});
await serv.addTo(server);
await pgl.getSchema(); // introspect before listening: the first request is then not the slow one
const { host, port } = preset.grafserv;
server.listen(port, host, () => console.log(`PostGraphile listening on http://${host}:${port}/graphql`));

const stop = async () => {
  server.close();
  await pgl.release();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
