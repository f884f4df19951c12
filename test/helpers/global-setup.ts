import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/db/migrate.js';
import { openPgDb } from '../../src/db/pg-db.js';
import { buildPgliteTemplate } from '../../src/db/pglite-db.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplatePath: string;
    pgTemplateDatabase: string | null;
  }
}

/**
 * Runs once per `npm test`: builds dist/ (the smoke tests start the real `sluice` binary), a migrated
 * PGlite template, and — when SLUICE_TEST_DATABASE_URL is set — a migrated PostgreSQL template database.
 * Each test file then starts from a fresh copy of a template (see test-db.ts).
 */
export default async function setup(project: TestProject) {
  execFileSync(process.execPath, ['scripts/ensure-built.mjs'], { stdio: 'inherit' });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-test-'));
  const templatePath = path.join(dir, 'pglite-template.tar');
  const blob = await buildPgliteTemplate(async (db) => {
    await migrate(db);
  });
  fs.writeFileSync(templatePath, Buffer.from(await blob.arrayBuffer()));
  project.provide('pgliteTemplatePath', templatePath);

  const url = process.env.SLUICE_TEST_DATABASE_URL;
  let templateDb: string | null = null;
  if (url) {
    templateDb = `sluice_tpl_${process.pid}_${Date.now().toString(36)}`;
    const admin = await openPgDb({ connectionString: url, max: 1 });
    try {
      await admin.query(`CREATE DATABASE ${templateDb}`);
    } finally {
      await admin.close();
    }
    const tpl = await openPgDb({ connectionString: withDatabase(url, templateDb), max: 1 });
    try {
      await migrate(tpl);
    } finally {
      await tpl.close();
    }
  }
  project.provide('pgTemplateDatabase', templateDb);

  return async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    if (url && templateDb) {
      const admin = await openPgDb({ connectionString: url, max: 1 });
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${templateDb} WITH (FORCE)`);
      } finally {
        await admin.close();
      }
    }
  };
}

/** The same connection string pointing at another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
