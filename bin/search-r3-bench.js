#!/usr/bin/env node
'use strict';
require('../dist/cli/bench.js')
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code; });
