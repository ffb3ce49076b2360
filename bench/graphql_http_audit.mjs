// graphql-http's audit of the GraphQL-over-HTTP specification, against a running StaySync, with a
// bearer token (TOKEN) on every request. Prints each check that is not ok, then the counts; exits 1
// on any warning or error. Run through bench/graphql_http_audit.sh.
import { auditServer } from 'graphql-http';

const [url] = process.argv.slice(2);
const results = await auditServer({
  url,
  fetchFn: (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${process.env.TOKEN}`);
    return fetch(input, { ...init, headers });
  },
});
const counts = { ok: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  if (result.status !== 'ok') {
    const body = result.response ? await result.response.text().catch(() => '') : '';
    console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}\n    ${result.reason}\n    ${body.slice(0, 300)}`);
  }
}
console.log(JSON.stringify(counts));
process.exit(counts.warn + counts.error === 0 ? 0 : 1);
