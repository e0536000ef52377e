// Writes a private JSON Web Key Set for server.mjs --jwks (tests that rotate keys or need unknown kids).
//
//   node make-jwks.mjs --out FILE --kid KID [--kid KID2 ...] [--alg RS256|PS256|ES256]
//
// One freshly generated key per --kid, in that order (oidc-provider signs with the first one that fits
// the client's alg). With --public FILE also writes the public half (what /jwks will serve).
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

let values;
try {
  ({ values } = parseArgs({
    options: {
      out: { type: 'string' },
      public: { type: 'string' },
      kid: { type: 'string', multiple: true },
      alg: { type: 'string', default: 'RS256' },
    },
    strict: true,
  }));
} catch (err) {
  console.error(`make-jwks: ${err.message}`);
  process.exit(2);
}
if (!values.out || !values.kid?.length) {
  console.error('usage: make-jwks.mjs --out FILE --kid KID [--kid KID ...] [--alg RS256|PS256|ES256] [--public FILE]');
  process.exit(2);
}

function generate(alg) {
  if (alg === 'RS256' || alg === 'PS256') return generateKeyPairSync('rsa', { modulusLength: 2048 });
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' });
  console.error(`make-jwks: unsupported --alg ${alg}`);
  return process.exit(2);
}

const privateKeys = [];
const publicKeys = [];
for (const kid of values.kid) {
  const { privateKey, publicKey } = generate(values.alg);
  const meta = { kid, use: 'sig', alg: values.alg };
  privateKeys.push({ ...privateKey.export({ format: 'jwk' }), ...meta });
  publicKeys.push({ ...publicKey.export({ format: 'jwk' }), ...meta });
}
writeFileSync(values.out, `${JSON.stringify({ keys: privateKeys })}\n`, { mode: 0o600 });
if (values.public) writeFileSync(values.public, `${JSON.stringify({ keys: publicKeys })}\n`);
