import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The running Sluice version, from package.json. */
export const SLUICE_VERSION: string = (require('../package.json') as { version: string }).version;
