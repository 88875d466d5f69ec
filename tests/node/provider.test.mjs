// The official Nylas Node SDK (npm `nylas`), unchanged, against the emailkit provider.
//
//   cd tests/node && npm ci && node --test
//
// The test starts a sandbox and a provider itself (start_provider.py, with the project's
// virtualenv: $EMAILKIT_PYTHON, default ../../.venv/bin/python) and drives the provider only
// through `new Nylas({ apiKey, apiUri })`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import Nylas, { NylasApiError, NylasOAuthError, WebhookTriggers } from 'nylas';

const here = dirname(fileURLToPath(import.meta.url));
const python = process.env.EMAILKIT_PYTHON || join(here, '..', '..', '.venv', 'bin', 'python');
const apiKey = randomBytes(32).toString('base64url');
const REDIRECT = 'http://127.0.0.1:8765/node-callback';

let lab; // { provider, mailpit } URLs
let child;
let nylas;

before(async () => {
  child = spawn(python, [join(here, 'start_provider.py')], {
    env: { ...process.env, EMAILKIT_PROVIDER_API_KEY: apiKey },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr = (stderr + chunk).slice(-4000); });
  const lines = createInterface({ input: child.stdout });
  lab = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the provider did not start within 60 s:\n${stderr}`)), 60_000);
    child.once('exit', (code) => reject(new Error(`start_provider.py exited with ${code}:\n${stderr}`)));
    lines.once('line', (line) => { clearTimeout(timer); resolve(JSON.parse(line)); });
  });
  nylas = new Nylas({ apiKey, apiUri: lab.provider, timeout: 30 });
});

after(() => {
  child?.stdin.end(); // the launcher stops when its stdin closes
});

const address = (name = 'user') => `${name}-${randomUUID().slice(0, 10)}@example.com`;

async function connect(name) {
  const email = address(name);
  const grant = await nylas.auth.customAuthentication({
    requestBody: { provider: 'emailkit', settings: { email } },
  });
  return { id: grant.data.id, email };
}

async function apiError(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof NylasApiError, `expected NylasApiError, got ${error}`);
    assert.ok(error.message);
    return error;
  }
  assert.fail('expected the call to fail');
}

async function ids(identifier, queryParams = {}) {
  const page = await nylas.messages.list({ identifier, queryParams });
  return new Set(page.data.map((m) => m.id));
}

/** A webhook receiver on loopback: answers Nylas's challenge GET, records the POSTs. */
async function receiver() {
  const received = [];
  const challenges = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'GET') {
      const challenge = url.searchParams.get('challenge') || '';
      challenges.push(challenge);
      res.writeHead(challenge ? 200 : 400, { 'Content-Type': 'text/plain' }).end(challenge);
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks), signature: req.headers['x-nylas-signature'] });
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/webhook`;
  const waitFor = async (type, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = received.find((r) => JSON.parse(r.body).type === type);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${type} webhook within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { url, received, challenges, waitFor, close: () => new Promise((r) => server.close(r)) };
}

describe('grants', () => {
  test('custom authentication, find, list; one grant per mailbox', async () => {
    const email = address('ann');
    const first = await nylas.auth.customAuthentication({ requestBody: { provider: 'emailkit', settings: { email } } });
    const again = await nylas.auth.customAuthentication({
      requestBody: { provider: 'emailkit', settings: { email: email.toUpperCase() } },
    });
    assert.equal(again.data.id, first.data.id);
    const found = await nylas.grants.find({ grantId: first.data.id });
    assert.equal(found.data.email, email);
    assert.equal(found.data.grantStatus, 'valid');
    const listed = await nylas.grants.list();
    assert.ok(listed.data.some((g) => g.id === first.data.id));
  });

  test('a wrong API key is a 401 NylasApiError', async () => {
    const stranger = new Nylas({ apiKey: 'not-the-key', apiUri: lab.provider });
    const error = await apiError(stranger.grants.list());
    assert.equal(error.statusCode, 401);
    assert.equal(error.type, 'unauthorized');
    assert.ok(error.requestId, 'x-request-id is read by the Node SDK');
  });
});

describe('messages', () => {
  let ann;
  let bob;
  let cat;
  let sent;
  let withFile;
  let reply;

  before(async () => {
    [ann, bob, cat] = await Promise.all([connect('ann'), connect('bob'), connect('cat')]);
    const dir = mkdtempSync(join(tmpdir(), 'nylas-node-'));
    const report = join(dir, 'report.pdf');
    writeFileSync(report, Buffer.concat([Buffer.from('%PDF-1.4 '), randomBytes(2048)]));
    sent = (await nylas.messages.send({
      identifier: ann.id,
      requestBody: { to: [{ email: bob.email, name: 'Bob' }], cc: [{ email: cat.email }], subject: 'node plan',
        body: '<p>hello</p>' },
    })).data;
    // An attachment as the SDK's own file helper builds it: a read stream plus its size.
    withFile = (await nylas.messages.send({
      identifier: ann.id,
      requestBody: {
        to: [{ email: bob.email }], subject: 'node file', body: 'see file',
        attachments: [{ filename: basename(report), contentType: 'application/pdf',
          content: createReadStream(report), size: statSync(report).size }],
      },
    })).data;
    reply = (await nylas.messages.send({
      identifier: bob.id, requestBody: { to: [{ email: ann.email }], replyToMessageId: sent.id, body: 'ok' },
    })).data;
  });

  test('send returns the message, with its attachment', () => {
    assert.equal(sent.subject, 'node plan');
    assert.equal(sent.grantId, ann.id);
    assert.equal(withFile.attachments.length, 1);
    assert.equal(withFile.attachments[0].filename, 'report.pdf');
    assert.equal(withFile.attachments[0].contentType, 'application/pdf');
    assert.equal(reply.threadId, sent.threadId);
  });

  test('a send over 3 MiB goes multipart, as the SDK does it, with an inline part', async () => {
    const big = randomBytes(3 * 1024 * 1024 + 4096);
    const logo = Buffer.from('89504e470d0a1a0a0000', 'hex');
    const sender = await connect('big'); // its own grant: the other tests count Ann's messages
    const out = (await nylas.messages.send({
      identifier: sender.id,
      requestBody: {
        to: [{ email: address() }], subject: 'node big', body: '<img src="cid:logo">',
        attachments: [
          { filename: 'big.bin', contentType: 'application/octet-stream', content: big, size: big.length },
          { filename: 'logo.png', contentType: 'image/png', content: logo, size: logo.length, contentId: 'logo' },
        ],
      },
    })).data;
    const byName = Object.fromEntries(out.attachments.map((a) => [a.filename, a]));
    assert.equal(byName['big.bin'].size, big.length);
    assert.equal(byName['logo.png'].isInline, true);
    assert.equal(byName['logo.png'].contentId, 'logo');
    // Mailpit holds the file byte for byte.
    const raw = await (await fetch(`${lab.mailpit}/api/v1/message/${out.id}/raw`)).text();
    assert.ok(raw.includes(big.toString('base64').slice(0, 76)), 'the attachment is in the stored message');
  });

  test('list with every documented filter (camelCase in, snake_case on the wire)', async () => {
    assert.deepEqual(await ids(ann.id, { in: 'SENT' }), new Set([sent.id, withFile.id]));
    assert.deepEqual(await ids(ann.id, { in: 'INBOX' }), new Set([reply.id]));
    assert.deepEqual(await ids(ann.id, { anyEmail: [cat.email] }), new Set([sent.id]));
    assert.deepEqual(await ids(ann.id, { cc: [cat.email] }), new Set([sent.id]));
    assert.deepEqual(await ids(ann.id, { to: [bob.email] }), new Set([sent.id, withFile.id]));
    assert.deepEqual(await ids(ann.id, { from: [bob.email] }), new Set([reply.id]));
    assert.deepEqual(await ids(ann.id, { hasAttachment: true }), new Set([withFile.id]));
    assert.deepEqual(await ids(ann.id, { subject: 'node file' }), new Set([withFile.id]));
    assert.deepEqual(await ids(ann.id, { threadId: sent.threadId }), new Set([sent.id, reply.id]));
    assert.deepEqual(await ids(ann.id, { unread: true }), new Set([reply.id]));
    assert.deepEqual(await ids(ann.id, { receivedAfter: 4102444800 }), new Set());
  });

  test('pagination: limit and pageToken', async () => {
    const first = await nylas.messages.list({ identifier: ann.id, queryParams: { limit: 1 } });
    assert.equal(first.data.length, 1);
    assert.ok(first.nextCursor);
    const second = await nylas.messages.list({ identifier: ann.id, queryParams: { limit: 1, pageToken: first.nextCursor } });
    assert.notEqual(second.data[0].id, first.data[0].id);
    const all = [];
    for await (const page of nylas.messages.list({ identifier: ann.id })) all.push(...page.data);
    assert.equal(all.length, 3);
  });

  test('a filter the provider does not implement is a 400 naming it', async () => {
    const error = await apiError(nylas.messages.list({ identifier: ann.id, queryParams: { searchQueryNative: 'x' } }));
    assert.equal(error.statusCode, 400);
    assert.equal(error.type, 'invalid_request_error');
    assert.match(error.message, /search_query_native/);
  });

  test('find and update', async () => {
    const found = await nylas.messages.find({ identifier: bob.id, messageId: sent.id });
    assert.equal(found.data.unread, true);
    assert.deepEqual(found.data.folders, ['INBOX']);
    const updated = await nylas.messages.update({
      identifier: bob.id, messageId: sent.id, requestBody: { unread: false, starred: true },
    });
    assert.equal(updated.data.unread, false);
    assert.equal(updated.data.starred, true);
    assert.ok((await ids(bob.id, { starred: true })).has(sent.id));
  });

  test('errors: 404, 405 naming what exists, idempotency conflicts', async () => {
    const missing = await apiError(nylas.messages.find({ identifier: ann.id, messageId: 'nope' }));
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.type, 'not_found_error');
    const notHere = await apiError(nylas.messages.destroy({ identifier: ann.id, messageId: sent.id }));
    assert.equal(notHere.statusCode, 405);
    assert.match(notHere.message, /DELETE/);
    const key = randomUUID();
    const body = { to: [{ email: cat.email }], subject: 'once', body: 'x' };
    const once = await nylas.messages.send({ identifier: ann.id, requestBody: body,
      overrides: { headers: { 'Idempotency-Key': key } } });
    const replay = await nylas.messages.send({ identifier: ann.id, requestBody: body,
      overrides: { headers: { 'Idempotency-Key': key } } });
    assert.equal(replay.data.id, once.data.id);
    const conflict = await apiError(nylas.messages.send({ identifier: ann.id,
      requestBody: { ...body, subject: 'twice' }, overrides: { headers: { 'Idempotency-Key': key } } }));
    assert.equal(conflict.statusCode, 409);
    assert.equal(conflict.type, 'invalid_idempotent_request');
  });

  test('threads: list with query filters, find', async () => {
    const byTo = await nylas.threads.list({ identifier: ann.id, queryParams: { to: [bob.email] } });
    assert.deepEqual(new Set(byTo.data.map((t) => t.id)), new Set([sent.threadId, withFile.threadId]));
    const withCat = (await nylas.threads.list({ identifier: ann.id, queryParams: { anyEmail: [cat.email] } }))
      .data.map((t) => t.id);
    assert.ok(withCat.includes(sent.threadId) && !withCat.includes(withFile.threadId), withCat);
    const inbox = await nylas.threads.list({ identifier: ann.id, queryParams: { in: 'INBOX' } });
    assert.deepEqual(inbox.data.map((t) => t.id), [sent.threadId]);
    const thread = await nylas.threads.find({ identifier: ann.id, threadId: sent.threadId });
    assert.deepEqual(thread.data.messageIds, [sent.id, reply.id]);
    assert.equal(thread.data.latestDraftOrMessage.id, reply.id);
  });

  test('webhooks: challenge, create, find, list, update, rotate, signed delivery, destroy', async () => {
    const hook = await receiver();
    try {
      const created = (await nylas.webhooks.create({ requestBody: {
        webhookUrl: hook.url, description: 'node',
        triggerTypes: [WebhookTriggers.MessageSendSuccess, WebhookTriggers.MessageCreated],
      } })).data;
      assert.equal(hook.challenges.length, 1);
      assert.equal(created.webhookSecret.length, 64);
      assert.deepEqual(created.triggerTypes, ['message.send_success', 'message.created']);
      assert.deepEqual(created.notificationEmailAddresses, []);
      assert.equal((await nylas.webhooks.find({ webhookId: created.id })).data.webhookUrl, hook.url);
      assert.ok((await nylas.webhooks.list()).data.some((w) => w.id === created.id));

      const out = (await nylas.messages.send({ identifier: ann.id,
        requestBody: { to: [{ email: address() }], subject: 'hooked', body: 'x' } })).data;
      const delivery = await hook.waitFor('message.send_success');
      const expected = createHmac('sha256', created.webhookSecret).update(delivery.body).digest('hex');
      assert.equal(delivery.signature, expected);
      assert.equal(JSON.parse(delivery.body).data.object.id, out.id);

      const updated = (await nylas.webhooks.update({ webhookId: created.id,
        requestBody: { description: 'renamed', triggerTypes: [WebhookTriggers.MessageBounceDetected] } })).data;
      assert.equal(updated.description, 'renamed');
      assert.deepEqual(updated.triggerTypes, ['message.bounce_detected']);
      const rotated = (await nylas.webhooks.rotateSecret({ webhookId: created.id })).data;
      assert.notEqual(rotated.webhookSecret, created.webhookSecret);

      await nylas.webhooks.destroy({ webhookId: created.id });
      const gone = await apiError(nylas.webhooks.find({ webhookId: created.id }));
      assert.equal(gone.statusCode, 404);
    } finally {
      await hook.close();
    }
  });

  test('a webhook URL that does not answer the challenge is refused', async () => {
    const hook = await receiver();
    const { url } = hook;
    await hook.close();
    const error = await apiError(nylas.webhooks.create({ requestBody: {
      webhookUrl: url, triggerTypes: [WebhookTriggers.MessageCreated] } }));
    assert.equal(error.statusCode, 400);
    assert.match(error.message, /challenge/);
  });
});

describe('OAuth as the SDK drives it', () => {
  let clientId;

  before(async () => {
    await nylas.applications.redirectUris.create({ requestBody: { url: REDIRECT, platform: 'web' } });
    clientId = (await nylas.applications.getDetails()).data.applicationId;
  });

  /** What the user's browser does: open the consent page, press Allow. */
  async function consent(url, email) {
    const page = await fetch(url);
    const html = await page.text();
    assert.equal(page.status, 200, html);
    const form = new URLSearchParams();
    for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
      form.append(name, value.replaceAll('&amp;', '&').replaceAll('&#34;', '"').replaceAll('&#39;', "'"));
    }
    form.append('email', email);
    form.append('decision', 'allow');
    const action = new URL(html.match(/<form method="post" action="([^"]+)"/)[1], url);
    const back = await fetch(action, { method: 'POST', body: form, redirect: 'manual' });
    assert.equal(back.status, 302);
    return new URL(back.headers.get('location')).searchParams;
  }

  test('urlForOAuth2PKCE → consent → exchangeCodeForToken → refreshAccessToken → revoke', async () => {
    const email = address('node-oauth');
    const auth = nylas.auth.urlForOAuth2PKCE({ clientId, redirectUri: REDIRECT, scope: ['email.send', 'email.read'],
      loginHint: email, state: 'n1', accessType: 'offline' });
    assert.equal(new URL(auth.url).searchParams.get('code_challenge_method'), 's256');
    const back = await consent(auth.url, email);
    assert.equal(back.get('state'), 'n1');
    const token = await nylas.auth.exchangeCodeForToken({ clientId, redirectUri: REDIRECT, code: back.get('code'),
      codeVerifier: auth.secret });
    assert.equal(token.email, email);
    assert.ok(token.grantId && token.accessToken && token.refreshToken);

    const user = new Nylas({ apiKey: token.accessToken, apiUri: lab.provider });
    const mine = await user.messages.send({ identifier: 'me', requestBody: { to: [{ email: address() }], body: 'x' } });
    assert.equal(mine.data.grantId, token.grantId);

    const fresh = await nylas.auth.refreshAccessToken({ clientId, redirectUri: REDIRECT, refreshToken: token.refreshToken });
    assert.notEqual(fresh.accessToken, token.accessToken);
    assert.equal(await nylas.auth.revoke(fresh.accessToken), true);
    const revoked = await apiError(new Nylas({ apiKey: fresh.accessToken, apiUri: lab.provider })
      .messages.list({ identifier: 'me' }));
    assert.equal(revoked.statusCode, 401);

    // Code reuse is refused with the SDK's OAuth error class, carrying its fields.
    await assert.rejects(
      nylas.auth.exchangeCodeForToken({ clientId, redirectUri: REDIRECT, code: back.get('code'), codeVerifier: auth.secret }),
      (error) => error instanceof NylasOAuthError && error.error === 'invalid_grant'
        && Number.isInteger(error.errorCode) && typeof error.errorUri === 'string',
    );
  });

  test('a wrong verifier and a wrong client secret are refused', async () => {
    const email = address('node-refused');
    const auth = nylas.auth.urlForOAuth2PKCE({ clientId, redirectUri: REDIRECT, scope: ['email.read'], loginHint: email });
    const code = (await consent(auth.url, email)).get('code');
    await assert.rejects(
      nylas.auth.exchangeCodeForToken({ clientId, redirectUri: REDIRECT, code, codeVerifier: randomUUID() }),
      (error) => error instanceof NylasOAuthError && error.error === 'invalid_grant',
    );
    await assert.rejects(
      nylas.auth.exchangeCodeForToken({ clientId, redirectUri: REDIRECT, code, codeVerifier: auth.secret,
        clientSecret: 'not-the-api-key' }),
      (error) => error instanceof NylasOAuthError && error.error === 'invalid_client' && error.statusCode === 401,
    );
  });
});
