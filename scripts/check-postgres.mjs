// Exits non-zero, naming the URL, when PostgreSQL does not answer: CI must not pass with the
// PostgreSQL half of the suite silently skipped.
import pg from 'pg';

const url = process.argv[2] ?? process.env.SLUICE_TEST_DATABASE_URL;
if (!url) {
  console.error('check-postgres: no URL given (argument or SLUICE_TEST_DATABASE_URL)');
  process.exit(2);
}
const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
try {
  await client.connect();
  const { rows } = await client.query('SHOW server_version');
  const major = Number.parseInt(rows[0].server_version, 10);
  if (major < 15) throw new Error(`PostgreSQL ${rows[0].server_version} is too old: Sluice needs 15 or newer`);
  console.log(`PostgreSQL ${rows[0].server_version} reachable for the test suite`);
} catch (err) {
  console.error(`check-postgres: PostgreSQL at ${url} is unreachable: ${err.message}`);
  process.exit(1);
} finally {
  await client.end().catch(() => {});
}
