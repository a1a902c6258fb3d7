#!/usr/bin/env node
// Entry point for `phonehome` / `npx phonehome`: runs the compiled CLI (built by `npm install` via the prepare script).
'use strict';
const path = require('path');
const fs = require('fs');
const cli = path.join(__dirname, '..', 'dist', 'proxy', 'cli.js');
if (!fs.existsSync(cli)) {
  console.error('phonehome is not built yet: run `npm install` (or `npm run build`) in ' + path.join(__dirname, '..'));
  process.exit(1);
}
require(cli).main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error('phonehome: ' + (err && err.message ? err.message : String(err))); process.exit(1); },
);
