#!/usr/bin/env node
// node train.js [options]: the default study on the embedded synthetic world (see --help).
'use strict';
let study, errors;
try {
  study = require('./dist/lib/cli/study_command.js');
  errors = require('./dist/lib/errors.js');
} catch (e) {
  console.error('morec is not built yet: run `npm ci` (or `npm run build`) first.\n' + e.message);
  process.exit(1);
}
study.studyMain(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => process.exit(errors.reportFailure(err)),
);
