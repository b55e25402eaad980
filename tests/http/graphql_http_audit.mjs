// Runs the `graphql-http` package's GraphQL-over-HTTP server audit against a live server.
// Usage: node graphql_http_audit.mjs URL [BEARER]; prints one JSON line per audit
// ({id, name, status, reason}) and exits 0. The test that calls it reads the lines.
// The package is resolved from NODE_PATH (the test installs a pinned version there).
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "x.js"));
const { auditServer } = require("graphql-http");

const [url, bearer] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  if (bearer) headers.set("authorization", `Bearer ${bearer}`);
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn });
for (const r of results) {
  let reason = r.reason || "";
  if (r.status !== "ok" && r.response) {
    try {
      reason += ` [status ${r.response.status}: ${(await r.response.text()).slice(0, 200)}]`;
    } catch {}
  }
  console.log(JSON.stringify({ id: r.id, name: r.name, status: r.status, reason }));
}
