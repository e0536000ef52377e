// Test OpenID Connect provider for glassgate's integration tests and demo.
//
//   node server.mjs --port P --issuer http://127.0.0.1:P [--host 127.0.0.1] [--jwks FILE]
//                   [--users FILE] [--id-token-ttl SECONDS] [--device-code-ttl SECONDS]
//
// oidc-provider 9.x with the device authorization grant (RFC 8628) and the library's default development
// login/consent pages: any login name with any password signs in, and the ID token's `sub` is that name.
// One public client `glassgate` (no secret) may use the device_code and refresh_token grants.
//
// --jwks FILE   a JSON Web Key Set with PRIVATE keys ({"keys": [...]}) to sign with; without it the library
//               signs with its fixed development key (kid "keystore-CHANGE-ME"), the same at every restart.
// --users FILE  JSON {"alice": {"groups": ["dba"], "name": "Alice"}, ...}; users not listed get no groups.
//               Default: alice -> ["dba"], bob -> [].
//
// Logs one line per request (method, path without query, status, milliseconds) to stdout; never tokens,
// codes or query strings. Exits 0 on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

function fail(message) {
  console.error(`idp: ${message}`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      issuer: { type: 'string' },
      jwks: { type: 'string' },
      users: { type: 'string' },
      'id-token-ttl': { type: 'string', default: '3600' },
      'device-code-ttl': { type: 'string', default: '600' },
    },
    strict: true,
  }));
} catch (err) {
  fail(err.message);
}

const port = Number.parseInt(args.port ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('--port must be a TCP port number');
const issuer = args.issuer ?? `http://${args.host}:${port}`;
const idTokenTtl = Number.parseInt(args['id-token-ttl'], 10);
const deviceCodeTtl = Number.parseInt(args['device-code-ttl'], 10);
if (!(idTokenTtl > 0) || !(deviceCodeTtl > 0)) fail('TTLs must be positive integers (seconds)');

function readJson(path, what) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${what} ${path}: ${err.message}`);
  }
}

const users = args.users
  ? readJson(args.users, 'users file')
  : { alice: { groups: ['dba'], name: 'Alice' }, bob: { groups: [], name: 'Bob' } };

let jwks;
if (args.jwks) {
  jwks = readJson(args.jwks, 'JWKS file');
  if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) fail(`${args.jwks}: no "keys" array`);
}

const configuration = {
  clients: [{
    client_id: 'glassgate',
    client_name: 'glassgate',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    id_token_signed_response_alg: 'RS256',
  }],
  // Scope -> claims. `groups` is our own scope carrying the `groups` claim.
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'groups'],
  // Put scope-granted claims (groups, name) into the ID token even though an access token is issued too.
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    const entry = users[sub] ?? {};
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: entry.name ?? sub,
          preferred_username: sub,
          groups: Array.isArray(entry.groups) ? entry.groups : [],
        };
      },
    };
  },
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: {
    AccessToken: 3600,
    DeviceCode: deviceCodeTtl,
    Grant: 14 * 24 * 3600,
    IdToken: idTokenTtl,
    Interaction: 600,
    RefreshToken: 24 * 3600,
    Session: 24 * 3600,
  },
  ...(jwks ? { jwks } : {}),
};

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  fail(`configuration rejected: ${err.message}`);
}

// One log line per request. Paths only: query strings carry user codes and are left out.
provider.use(async (ctx, next) => {
  const started = Date.now();
  try {
    await next();
  } finally {
    console.log(`idp: ${ctx.method} ${ctx.path} -> ${ctx.status} (${Date.now() - started} ms)`);
  }
});

provider.on('server_error', (ctx, err) => console.error(`idp: server_error on ${ctx.path}: ${err.stack}`));
provider.on('grant.error', (ctx, err) => console.log(`idp: grant error: ${err.message}`));
provider.on('grant.success', (ctx) => console.log(`idp: grant success for client ${ctx.oidc.client?.clientId}`));

const server = provider.listen(port, args.host, () => {
  console.log(`idp: listening on ${args.host}:${port}, issuer ${issuer}`);
});
server.on('error', (err) => {
  // EADDRINUSE lands here; the harness retries on another port when it sees "address in use".
  console.error(`idp: cannot listen on ${args.host}:${port}: ${err.code === 'EADDRINUSE' ? 'address in use' : err.message}`);
  process.exit(3);
});

function shutdown(signal) {
  console.log(`idp: ${signal} received, exiting`);
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
