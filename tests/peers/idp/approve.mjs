// Scripted approver: completes a device-code approval on the test IdP exactly as a person would in a
// browser, through the provider's own HTML pages over HTTP, keeping cookies between requests.
//
//   node approve.mjs --verification-uri-complete URL --user alice [--password any] [--deny]
//
// Steps: GET the verification page -> POST the user-code form it auto-submits in a browser -> POST the
// confirm form (both carry the xsrf field) -> on each
// /interaction/<uid> page POST `prompt=login` (login=<user>, any password), then `prompt=consent`.
// With --deny the consent step is aborted instead (the client then receives access_denied).
// Exit 0 when the provider confirms the outcome asked for; 1 with a message on stderr otherwise; 2 on bad usage.
// Prints nothing secret (no cookies, no codes).
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const MAX_STEPS = 30;

/// A minimal cookie jar for one origin: cookies keyed by name and path, sent when the path matches.
class CookieJar {
  #cookies = new Map(); // `${path}\u0000${name}` -> { name, value, path }

  store(setCookieHeaders, requestPath) {
    for (const header of setCookieHeaders) {
      const [pair, ...attributes] = header.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = requestPath.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [key, ...rest] = attribute.split('=');
        const attributeValue = rest.join('=');
        switch (key.toLowerCase()) {
          case 'path': path = attributeValue || '/'; break;
          case 'max-age': if (Number(attributeValue) <= 0) expired = true; break;
          case 'expires': if (Date.parse(attributeValue) <= Date.now()) expired = true; break;
          default: break;
        }
      }
      const key = `${path}\u0000${name}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  header(requestPath) {
    const matching = [...this.#cookies.values()].filter(({ path }) => requestPath === path
      || requestPath.startsWith(path.endsWith('/') ? path : `${path}/`));
    matching.sort((a, b) => b.path.length - a.path.length); // most specific first, as browsers do
    return matching.map(({ name, value }) => `${name}=${value}`).join('; ');
  }
}

function decodeEntities(text) {
  return text.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_, entity) => ({
    amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'",
  })[entity]);
}

function attribute(tag, name) {
  const match = tag.match(new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)')`, 'i'));
  return match ? decodeEntities(match[2] ?? match[3]) : undefined;
}

/// All <form> elements of a page: { id, action, method, fields: {name: value} } (hidden inputs only).
function parseForms(html) {
  const forms = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const tag = `<form ${match[1]}>`;
    const fields = {};
    for (const input of match[2].matchAll(/<input\b[^>]*>/gi)) {
      const name = attribute(input[0], 'name');
      if (name && (attribute(input[0], 'type') ?? 'text').toLowerCase() === 'hidden') {
        fields[name] = attribute(input[0], 'value') ?? '';
      }
    }
    forms.push({
      id: attribute(tag, 'id'),
      action: attribute(tag, 'action'),
      method: (attribute(tag, 'method') ?? 'get').toLowerCase(),
      fields,
    });
  }
  return forms;
}

function pageText(html) {
  return html.replace(/<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ').trim().slice(0, 400);
}

export class ApprovalError extends Error {}

/// Approves (or with deny=true, denies) the device authorization behind verificationUriComplete.
/// Resolves to { outcome: 'approved' | 'denied', steps } or throws ApprovalError.
export async function approve({
  verificationUriComplete, user, password = 'any-password', deny = false, log = () => {},
}) {
  const jar = new CookieJar();
  let url = new URL(verificationUriComplete);
  let request = { method: 'GET' };
  const seen = {
    codeSubmit: false, confirm: false, login: false, consent: false,
  };

  for (let step = 0; step < MAX_STEPS; step += 1) {
    const headers = { accept: 'text/html' };
    const cookie = jar.header(url.pathname);
    if (cookie) headers.cookie = cookie;
    let body;
    if (request.form) {
      body = new URLSearchParams(request.form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    let response;
    try {
      response = await fetch(url, {
        method: request.method, headers, body, redirect: 'manual',
      });
    } catch (err) {
      throw new ApprovalError(`${request.method} ${url.pathname}: ${err.cause?.message ?? err.message}`);
    }
    jar.store(response.headers.getSetCookie(), url.pathname);
    log(`${request.method} ${url.pathname} -> ${response.status}`);

    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      if (!location) throw new ApprovalError(`${response.status} from ${url.pathname} without Location`);
      await response.arrayBuffer();
      url = new URL(location, url);
      request = { method: 'GET' };
      continue;
    }
    const html = await response.text();
    if (response.status !== 200) {
      throw new ApprovalError(`${request.method} ${url.pathname} answered ${response.status}: ${pageText(html)}`);
    }

    const forms = parseForms(html);
    const confirm = forms.find((f) => f.id === 'op.deviceConfirmForm');
    // GET verification_uri_complete answers with a self-submitting form (xsrf + user_code) that a browser
    // posts with JavaScript; it leads to the confirmation page.
    const codeSubmit = forms.find((f) => f !== confirm && 'xsrf' in f.fields && 'user_code' in f.fields);
    const login = forms.find((f) => f.fields.prompt === 'login');
    const consent = forms.find((f) => f.fields.prompt === 'consent');

    if (/<title>\s*Sign-in Success\s*<\/title>/i.test(html)) {
      if (deny) throw new ApprovalError('the provider reports success although --deny was asked');
      return { outcome: 'approved', steps: step + 1 };
    }
    if (codeSubmit && !seen.codeSubmit && !seen.confirm) {
      seen.codeSubmit = true;
      url = new URL(codeSubmit.action, url);
      request = { method: 'POST', form: codeSubmit.fields };
    } else if (confirm && !seen.confirm) {
      seen.confirm = true;
      url = new URL(confirm.action, url);
      request = { method: 'POST', form: confirm.fields };
    } else if (login) {
      if (seen.login) throw new ApprovalError(`login as "${user}" was not accepted: ${pageText(html)}`);
      seen.login = true;
      url = new URL(login.action, url);
      request = { method: 'POST', form: { ...login.fields, login: user, password } };
    } else if (consent) {
      if (seen.consent) throw new ApprovalError(`consent was not accepted: ${pageText(html)}`);
      seen.consent = true;
      if (deny) {
        const abort = html.match(/href="([^"]*\/abort)"/);
        if (!abort) throw new ApprovalError('consent page has no abort link');
        url = new URL(decodeEntities(abort[1]), url);
        request = { method: 'GET' };
      } else {
        url = new URL(consent.action, url);
        request = { method: 'POST', form: consent.fields };
      }
    } else if (deny && seen.consent && /interrupted|aborted|denied/i.test(html)) {
      return { outcome: 'denied', steps: step + 1 };
    } else {
      throw new ApprovalError(`unexpected page at ${url.pathname}: ${pageText(html)}`);
    }
  }
  throw new ApprovalError(`no outcome after ${MAX_STEPS} requests`);
}

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'verification-uri-complete': { type: 'string' },
        user: { type: 'string' },
        password: { type: 'string', default: 'any-password' },
        deny: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`approve: ${err.message}`);
    process.exit(2);
  }
  if (!values['verification-uri-complete'] || !values.user) {
    console.error('usage: approve.mjs --verification-uri-complete URL --user NAME [--password P] [--deny] [--verbose]');
    process.exit(2);
  }
  try {
    const result = await approve({
      verificationUriComplete: values['verification-uri-complete'],
      user: values.user,
      password: values.password,
      deny: values.deny,
      log: values.verbose ? (line) => console.error(`approve: ${line}`) : () => {},
    });
    console.log(`approve: ${result.outcome} for ${values.user}`);
  } catch (err) {
    console.error(`approve: failed: ${err.message}`);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
