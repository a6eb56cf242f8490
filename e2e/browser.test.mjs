// End-to-end tests of the example server's browser page (examples/server/static) in Debian's
// headless Chromium, driven by playwright-core (which downloads no browser).
//
// The server is built with cargo and started on a free loopback port with short lifetimes:
// access tokens 4 s (no leeway), idle timeout 6 s, a warning 3 s before the inactivity
// sign-out, a session check every 2 s. Nothing but 127.0.0.1 is contacted: Chromium runs with
// its background networking off, and every request of a page to another host is aborted.
//
// Screenshots of the signed-in page and of the warning go to e2e/artifacts/.
//
// Environment: CHROMIUM (default /usr/bin/chromium), SESSIONKIT_SERVER (a prebuilt server
// binary; default: built here with `cargo build --example server`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);
const ARTIFACTS = join(HERE, 'artifacts');

const ACCESS_TTL_S = 4;
const IDLE_MS = 6_000;
const WARNING_MS = 3_000;
const CHECK_MS = 2_000;
const SERVER_FLAGS = [
  '--access-token-ttl', `${ACCESS_TTL_S}s`,
  '--access-token-leeway', '0s',
  '--idle-timeout', '6s',
  '--touch-interval', '1s',
  '--client-refresh-margin', '1s',
  '--client-idle-logout', `${IDLE_MS}ms`,
  '--client-warning', `${WARNING_MS}ms`,
  '--client-check-interval', `${CHECK_MS}ms`,
  '--max-sessions-per-user', 'unlimited',
];

let binary;
let server;
let browser;

/** The server binary: $SESSIONKIT_SERVER, or built now with cargo. */
function serverBinary() {
  if (process.env.SESSIONKIT_SERVER) return process.env.SESSIONKIT_SERVER;
  const out = execFileSync('cargo', ['build', '--example', 'server', '--message-format', 'json-render-diagnostics'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for (const line of out.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    const message = JSON.parse(line);
    if (message.reason === 'compiler-artifact' && message.target?.name === 'server' && message.executable) {
      return message.executable;
    }
  }
  throw new Error('cargo did not report the server executable');
}

/** Starts the server on a free loopback port; resolves once it prints its address. */
function startServer(binary, flags = SERVER_FLAGS) {
  const child = spawn(binary, ['--listen', '127.0.0.1:0', '--insecure-cookies', '--log-level', 'warn', ...flags], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start within 30 s')), 30_000);
    let seen = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      seen += chunk;
      const match = seen.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], child });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code}: ${seen}`));
    });
  });
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  binary = serverBinary();
  server = await startServer(binary);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
    ],
  });
});

after(async () => {
  await browser?.close();
  if (server) {
    server.child.kill('SIGTERM');
    await new Promise((resolve) => server.child.once('exit', resolve));
  }
});

/**
 * A fresh browser context (its own cookies, storage and BroadcastChannel), whose pages may only
 * reach the test server, and a record of every API request and response of its pages.
 */
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  await context.route('**/*', (route) => {
    const host = new URL(route.request().url()).hostname;
    return host === '127.0.0.1' ? route.continue() : route.abort('blockedbyclient');
  });
  const log = { requests: [], responses: [], problems: [] };
  context.on('request', (request) => log.requests.push({ at: Date.now(), method: request.method(), path: new URL(request.url()).pathname }));
  context.on('response', (response) => {
    const entry = { at: Date.now(), status: response.status(), path: new URL(response.url()).pathname, method: response.request().method() };
    log.responses.push(entry);
    if (entry.status >= 400) response.json().then((body) => { entry.error = body.error; }, () => {});
  });
  context.on('page', (page) => {
    page.on('pageerror', (error) => log.problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      // A CSP violation or a script error shows up here.
      if (message.type() === 'error' && !/status of 401/.test(message.text())) log.problems.push(message.text());
    });
  });
  return { context, log };
}

const refreshes = (log, since = 0) => log.requests.filter((r) => r.path === '/api/v1/auth/refresh-token' && r.at >= since);

async function openPage(context, url = server.url) {
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

async function signIn(page, user = 'alice', password = 'wonderland') {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app-view').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#user').textContent(), user);
}

/** Keeps the user busy on `page` for `ms`: the pointer moves every `every` ms. */
async function beActive(page, ms, every = 400) {
  const end = Date.now() + ms;
  let x = 10;
  while (Date.now() < end) {
    x = x === 10 ? 300 : 10;
    await page.mouse.move(x, 200 + (x % 7));
    await sleep(every);
  }
}

/** An admin's bearer call from outside the browser. */
async function asAdmin(method, path) {
  const login = await fetch(`${server.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'alice', password: 'wonderland' }),
  });
  const { access_token: token } = await login.json();
  return fetch(`${server.url}${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
}

test('login shows the user, the countdowns and the session list', async () => {
  const { context, log } = await newContext();
  const page = await openPage(context);
  await page.locator('#login-view').waitFor({ state: 'visible' });
  await signIn(page);
  await page.locator('#sessions tr', { hasText: 'this browser' }).waitFor();
  assert.match(await page.locator('#idle-countdown').textContent(), /^0:0[0-6]$/);
  assert.match(await page.locator('#absolute-countdown').textContent(), /^[78]:\d\d:\d\d$/);
  await page.screenshot({ path: join(ARTIFACTS, 'signed-in.png'), fullPage: true });

  // The login answer carried the tokens, yet none reached Web Storage or a readable cookie.
  const stored = await page.evaluate(() => ({
    local: Object.keys(localStorage).length,
    session: Object.keys(sessionStorage).length,
    cookies: document.cookie,
  }));
  assert.deepEqual(stored, { local: 0, session: 0, cookies: '' });
  const cookies = await context.cookies();
  const byName = Object.fromEntries(cookies.map((c) => [c.name, c]));
  assert.equal(byName.session.httpOnly, true);
  assert.equal(byName.refresh_token.httpOnly, true);
  assert.equal(byName.refresh_token.path, '/api/v1/auth/refresh-token');
  assert.equal(byName.refresh_token.sameSite, 'Strict');

  // A reload resumes the session from the cookies, without a new login.
  await page.reload();
  await page.locator('#app-view').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#user').textContent(), 'alice');
  assert.equal(log.requests.filter((r) => r.path === '/api/v1/auth/login').length, 1);
  assert.deepEqual(log.problems, []);
  await context.close();
});

test('the access token is refreshed before it expires, with no failed request', async () => {
  const { context, log } = await newContext();
  const page = await openPage(context);
  await signIn(page);
  const start = Date.now();
  // Busy for three token lifetimes, calling the API all along.
  const calls = page.evaluate(async (ms) => {
    const { api } = await import('/app.js');
    const end = Date.now() + ms;
    let n = 0;
    while (Date.now() < end) {
      await api('/api/v1/auth/session');
      n += 1;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    return n;
  }, ACCESS_TTL_S * 3 * 1000);
  await beActive(page, ACCESS_TTL_S * 3 * 1000);
  assert.ok((await calls) >= 20);
  const failed = log.responses.filter((r) => r.at >= start && r.status >= 400);
  assert.deepEqual(failed, [], 'no request failed');
  // One refresh per (lifetime − 1 s rounding − margin), not per call.
  const count = refreshes(log, start).length;
  assert.ok(count >= 3 && count <= 8, `${count} refreshes`);
  assert.deepEqual(log.problems, []);
  await context.close();
});

test('ten parallel API calls after expiry cause exactly one refresh', async () => {
  const { context, log } = await newContext();
  const page = await openPage(context);
  await signIn(page);
  await page.locator('#sessions tr').first().waitFor();
  const waitMs = await page.evaluate(async () => {
    const { state, suspendTimers } = await import('/app.js');
    suspendTimers({ checks: true });
    // `expiresAt` is conservative by the one-second rounding of `exp`; wait past the real end.
    return state.access.expiresAt + 1_300 - Date.now();
  });
  await beActive(page, waitMs);
  const since = Date.now();
  const results = await page.evaluate(async () => {
    const { api } = await import('/app.js');
    const answers = await Promise.all(Array.from({ length: 10 }, () => api('/api/v1/auth/sessions')));
    return answers.map((a) => a.sessions.length);
  });
  assert.equal(results.length, 10);
  assert.equal(refreshes(log, since).length, 1, 'exactly one refresh');
  const expired = log.responses.filter((r) => r.at >= since && r.status === 401);
  assert.equal(expired.length, 10, 'each call met the expired token once, then was retried');
  const retried = log.responses.filter((r) => r.at >= since && r.path === '/api/v1/auth/sessions' && r.status === 200);
  assert.equal(retried.length, 10);
  await context.close();
});

test('inactivity shows the warning, then signs out', async () => {
  const { context, log } = await newContext();
  const page = await openPage(context);
  await signIn(page);
  const signedInAt = Date.now();
  const warning = page.getByRole('alertdialog');
  await warning.waitFor({ state: 'visible', timeout: IDLE_MS });
  const warnedAfter = Date.now() - signedInAt;
  assert.ok(warnedAfter >= IDLE_MS - WARNING_MS - 500, `warned after ${warnedAfter} ms`);
  assert.match(await warning.textContent(), /signed out in 0:0[0-3] because of inactivity/);
  assert.ok(await page.getByRole('button', { name: 'Stay signed in' }).isVisible());
  await page.screenshot({ path: join(ARTIFACTS, 'warning.png'), fullPage: true });

  await page.locator('#login-view').waitFor({ state: 'visible', timeout: WARNING_MS + 2_000 });
  const signedOutAfter = Date.now() - signedInAt;
  assert.ok(signedOutAfter >= IDLE_MS - 300, `signed out after ${signedOutAfter} ms`);
  assert.match(await page.locator('#status').textContent(), /inactivity/);
  assert.ok(await warning.isHidden());
  const logout = log.responses.find((r) => r.path === '/api/v1/auth/logout');
  assert.equal(logout?.status, 204, 'the page ended the session on the server (cookie + CSRF token)');
  assert.deepEqual(log.problems, []);
  await context.close();
});

test('activity keeps the session alive; "stay signed in" extends it', async () => {
  const { context, log } = await newContext();
  const page = await openPage(context);
  await signIn(page);
  const start = Date.now();
  const warning = page.getByRole('alertdialog');
  let warned = false;
  const end = Date.now() + IDLE_MS * 1.7;
  while (Date.now() < end) {
    await page.mouse.move(50 + (Date.now() % 300), 300);
    if (Date.now() % 3 === 0) await page.keyboard.press('Shift');
    warned ||= await warning.isVisible();
    await sleep(700);
  }
  assert.equal(warned, false, 'no warning while active');
  assert.ok(await page.locator('#app-view').isVisible());

  // Idle until the warning, then the button.
  await warning.waitFor({ state: 'visible', timeout: IDLE_MS });
  const [extend] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/auth/sessions/refresh'),
    page.getByRole('button', { name: 'Stay signed in' }).click(),
  ]);
  assert.equal(extend.status(), 200, 'the session was extended through the cookie with the CSRF token');
  assert.equal(await extend.request().headerValue('x-csrf-token'), await page.evaluate(async () => (await import('/app.js')).state.csrf));
  await warning.waitFor({ state: 'hidden' });
  await sleep(WARNING_MS);
  assert.ok(await page.locator('#app-view').isVisible(), 'still signed in past the old deadline');
  assert.deepEqual(log.responses.filter((r) => r.at >= start && r.status >= 400), []);
  await context.close();
});

test('an active page keeps its session past a server idle timeout shorter than the token lifetime', async () => {
  // Calls made with an access token do not renew the session on the server; the page's
  // refreshes must, often enough for the idle timeout (6 s here, tokens 20 s).
  const other = await startServer(binary, [
    '--access-token-ttl', '20s',
    '--idle-timeout', '6s',
    '--touch-interval', '1s',
    '--client-idle-logout', '6s',
    '--client-warning', '2s',
  ]);
  try {
    const { context, log } = await newContext();
    const page = await openPage(context, other.url);
    await signIn(page);
    const start = Date.now();
    await beActive(page, 10_000);
    const session = await page.evaluate(async () => (await import('/app.js')).api('/api/v1/auth/session'));
    assert.equal(session.user, 'alice');
    assert.ok(await page.locator('#app-view').isVisible(), 'still signed in');
    assert.deepEqual(log.responses.filter((r) => r.at >= start && r.status >= 400), []);
    // (6 s - 1 s) / 2: a refresh about every 2.5 s, although the token lasts 20 s.
    const count = refreshes(log, start).length;
    assert.ok(count >= 3 && count <= 6, `${count} refreshes`);
    await context.close();
  } finally {
    other.child.kill('SIGTERM');
    await new Promise((resolve) => other.child.once('exit', resolve));
  }
});

test('a revocation through the admin API signs the page out at the next check', async () => {
  const { context, log } = await newContext();
  const page = await openPage(context);
  await signIn(page, 'bob', 'builder');
  // Only the periodic check may notice: no scheduled refresh.
  await page.evaluate(async () => (await import('/app.js')).suspendTimers());
  const revoked = await asAdmin('DELETE', '/api/v1/admin/users/bob/sessions');
  assert.equal(revoked.status, 200);
  const revokedAt = Date.now();
  await page.locator('#login-view').waitFor({ state: 'visible', timeout: CHECK_MS + 2_000 });
  assert.ok(Date.now() - revokedAt <= CHECK_MS + 1_000);
  assert.match(await page.locator('#status').textContent(), /administrator ended your session/);
  const check = log.responses.find((r) => r.at >= revokedAt && r.path === '/api/v1/auth/session');
  assert.equal(check?.status, 401);
  await context.close();
});

test('two tabs share one refresh, and logout in one signs out the other', async () => {
  const { context, log } = await newContext();
  const first = await openPage(context);
  await signIn(first);
  const second = await openPage(context);
  await second.locator('#app-view').waitFor({ state: 'visible' });
  const ids = await Promise.all([first, second].map((p) => p.evaluate(async () => (await import('/app.js')).state.sessionId)));
  assert.equal(ids[0], ids[1], 'the second tab joined the same session');

  // Activity in the first tab only; the second hears of it and stays signed in.
  const since = Date.now();
  const windowMs = 8_000;
  await beActive(first, windowMs);
  const count = refreshes(log, since).length;
  // A token lives TTL − 1 s on the page's clock and is renewed 1 s (the margin) before that.
  const every = (ACCESS_TTL_S - 2) * 1000;
  assert.ok(count <= windowMs / every + 1, `${count} refreshes for two tabs: one tab refreshes for both`);
  assert.ok(await second.locator('#app-view').isVisible(), 'activity in one tab counts for all');
  assert.deepEqual(log.responses.filter((r) => r.at >= since && r.status >= 400), []);

  await first.getByRole('button', { name: 'Sign out', exact: true }).click();
  await first.locator('#login-view').waitFor({ state: 'visible' });
  await second.locator('#login-view').waitFor({ state: 'visible', timeout: 2_000 });
  assert.match(await second.locator('#status').textContent(), /signed out/i);
  assert.deepEqual(log.problems, []);
  await context.close();
});
