#!/usr/bin/env node
// The `sluice` command. It runs the compiled code in dist/ (`npm run build`, or `npm start` builds it).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('sluice: dist/ is missing; run `npm run build` first (or `npm start`, which builds)\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv.slice(2));
