// PostGraphile v5 (Amber preset), the peer that `bench/inbox.py --peer postgraphile` measures against.
// The bench starts server.mjs on Node >= 22 with DATABASE_URL (the database it seeded) and PORT.
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const connectionString = process.env.DATABASE_URL;
if (!connectionString) {
  throw new Error("DATABASE_URL is not set: the bench passes the DSN of the database it seeded");
}

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ connectionString, schemas: ["public"] })],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PORT ?? 5678),
    graphqlPath: "/graphql",
    watch: false,
    graphiql: false,
    websockets: false,
  },
  grafast: { explain: false },
};

export default preset;
