#!/usr/bin/env node
// node train.js [options]: the default study on the embedded synthetic world (see --help).
'use strict';
let study;
try {
  study = require('./dist/lib/cli/study_command.js');
} catch (e) {
  console.error('morec is not built yet: run `npm ci` (or `npm run build`) first.\n' + e.message);
  process.exit(1);
}
study.studyMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`${err.code ? err.code + ': ' : ''}${err.message}`);
    process.exit(1);
  },
);
