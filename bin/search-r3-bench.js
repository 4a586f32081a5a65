#!/usr/bin/env node
'use strict';
const cli = require('../dist/cli/bench.js');
cli.installCliProcessHandlers();
cli.main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
