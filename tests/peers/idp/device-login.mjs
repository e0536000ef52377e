// Whole device-code login against the test IdP, for tests that need an ID token quickly.
//
//   node device-login.mjs --issuer URL [--client-id glassgate] --user alice [--password P]
//                         [--scope "openid profile groups"] [--json] [--deny] [--timeout SECONDS]
//
// 1. discovery, 2. device authorization request, 3. approval through the provider's pages (approve.mjs),
// 4. polls the token endpoint honouring `interval` and `slow_down`.
// Prints the id_token on stdout (with --json: the whole token response as one JSON line).
// Exit codes: 0 token obtained; 1 failure (message on stderr); 2 bad usage;
// 3 the token endpoint answered an OAuth error (e.g. access_denied after --deny), printed as `error: CODE`.
import { parseArgs } from 'node:util';

import { approve } from './approve.mjs';

const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

function usage(message) {
  if (message) console.error(`device-login: ${message}`);
  console.error('usage: device-login.mjs --issuer URL [--client-id ID] --user NAME [--password P] '
    + '[--scope S] [--json] [--deny] [--timeout SECONDS]');
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      issuer: { type: 'string' },
      'client-id': { type: 'string', default: 'glassgate' },
      user: { type: 'string' },
      password: { type: 'string', default: 'any-password' },
      scope: { type: 'string', default: 'openid profile groups' },
      json: { type: 'boolean', default: false },
      deny: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '60' },
      verbose: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}
if (!args.issuer || !args.user) usage('--issuer and --user are required');
const deadline = Date.now() + Number.parseInt(args.timeout, 10) * 1000;
const log = args.verbose ? (line) => console.error(`device-login: ${line}`) : () => {};

async function getJson(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new Error(`${url}: ${err.cause?.message ?? err.message}`);
  }
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${url}: answered ${response.status} with non-JSON body: ${text.slice(0, 200)}`);
  }
  return { status: response.status, body };
}

function form(fields) {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(fields).toString(),
  };
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

try {
  const issuer = args.issuer.replace(/\/$/, '');
  const discovery = await getJson(`${issuer}/.well-known/openid-configuration`);
  if (discovery.status !== 200) throw new Error(`discovery answered ${discovery.status}`);
  const { device_authorization_endpoint: deviceEndpoint, token_endpoint: tokenEndpoint } = discovery.body;
  if (!deviceEndpoint || !tokenEndpoint) throw new Error('discovery lacks device_authorization_endpoint or token_endpoint');

  const authorization = await getJson(deviceEndpoint, form({ client_id: args['client-id'], scope: args.scope }));
  if (authorization.status !== 200) {
    throw new Error(`device authorization answered ${authorization.status}: ${JSON.stringify(authorization.body)}`);
  }
  const {
    device_code: deviceCode, verification_uri_complete: verificationUriComplete, interval = 5,
  } = authorization.body;
  log(`device authorization ok, interval ${interval}s`);

  const approval = await approve({
    verificationUriComplete, user: args.user, password: args.password, deny: args.deny, log,
  });
  log(`approval: ${approval.outcome}`);

  // The first poll may be immediate: the approval is already complete.
  let wait = 0;
  let pollInterval = interval;
  for (;;) {
    if (Date.now() + wait > deadline) throw new Error('timed out polling the token endpoint');
    await sleep(wait);
    const token = await getJson(tokenEndpoint, form({
      grant_type: DEVICE_CODE_GRANT, device_code: deviceCode, client_id: args['client-id'],
    }));
    if (token.status === 200) {
      if (!token.body.id_token) throw new Error('token response has no id_token');
      console.log(args.json ? JSON.stringify(token.body) : token.body.id_token);
      process.exit(0);
    }
    const { error } = token.body;
    if (error === 'authorization_pending') {
      wait = pollInterval * 1000;
    } else if (error === 'slow_down') {
      pollInterval += 5;
      wait = pollInterval * 1000;
    } else {
      console.log(`error: ${error}`);
      console.error(`device-login: token endpoint: ${error}: ${token.body.error_description ?? ''}`);
      process.exit(3);
    }
    log(`token endpoint: ${error}, next poll in ${wait / 1000}s`);
  }
} catch (err) {
  console.error(`device-login: failed: ${err.message}`);
  process.exit(1);
}
