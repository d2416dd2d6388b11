// SPDX-License-Identifier: MIT
// s3rver for imgforge's publish tests, on loopback only, knowing the tests'
// key pairs besides its own (S3RVER/S3RVER):
//
//     node s3rver.js MODULE_DIR DATA_DIR PORT_FILE [ACCESS_KEY SECRET_KEY]...
//
// MODULE_DIR is where `make deps` installed s3rver (its node_modules/s3rver).
// Writes the port to PORT_FILE once listening; logs each request on stdout
// as the s3rver command does ("Stored part N of UPLOAD-ID", ...). s3rver
// checks that the access key exists, not SigV4 signatures:
// fake-aws.py --s3-front-port-file puts a front before it that does.
'use strict';
const fs = require('fs');
const path = require('path');

const [moduleDir, dataDir, portFile, ...pairs] = process.argv.slice(2);
if (!portFile || pairs.length % 2) {
  process.stderr.write('usage: node s3rver.js MODULE_DIR DATA_DIR PORT_FILE [ACCESS_KEY SECRET_KEY]...\n');
  process.exit(2);
}
const base = path.join(moduleDir, 'node_modules', 's3rver');
const S3rver = require(base);
const account = require(path.join(base, 'lib', 'models', 'account')).DUMMY_ACCOUNT;
for (let i = 0; i < pairs.length; i += 2) account.createKeyPair(pairs[i], pairs[i + 1]);

new S3rver({ address: '127.0.0.1', port: 0, directory: dataDir, silent: false, vhostBuckets: false })
  .run()
  .then(({ port }) => {
    fs.writeFileSync(portFile + '.tmp', port + '\n');
    fs.renameSync(portFile + '.tmp', portFile);
  })
  .catch(err => {
    process.stderr.write('s3rver: ' + err.message + '\n');
    process.exit(1);
  });
