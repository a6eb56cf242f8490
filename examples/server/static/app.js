// sessionkit demo page: the client half of session management, as a plain ES module.
//
// Credentials (see the README's "Browser client" section for the threat model):
// - the session token and the refresh token are HttpOnly cookies the page never sees (the
//   refresh cookie is sent only to /api/v1/auth/refresh-token); the copies in the login answer
//   are dropped unread;
// - the short-lived access token lives in this module's memory only, never in Web Storage;
// - the per-session CSRF token (not a credential by itself) is kept in memory and sent in the
//   X-CSRF-Token header with every cookie-authenticated state-changing request.
//
// Behaviour: the access token is refreshed a margin before it expires, from the server's
// `expires_in` (measured from when the request was sent, so clock skew does not matter); every
// API call goes through `api()`, which on 401 access_token_expired refreshes once for all
// concurrent callers and retries; user activity is tracked with passive, throttled listeners and
// shared between tabs; a warning precedes an inactivity sign-out or the session's absolute end;
// the server is asked about the session at a low interval and when the tab gets focus; tabs
// coordinate over a BroadcastChannel (and the Web Locks API when available).

const AUTH = '/api/v1/auth';
const CHANNEL = 'sessionkit-demo';
const REFRESH_LOCK = 'sessionkit-demo-refresh';
const LEADER_LOCK = 'sessionkit-demo-leader';

/** Everything the page knows. Exported (read-only use) for the end-to-end tests. */
export const state = {
  config: null,
  signedIn: false,
  user: null,
  sessionId: null,
  csrf: null,
  /** `{ token, expiresAt }`, expiresAt in local epoch milliseconds. */
  access: null,
  /** The session's absolute end, local epoch milliseconds. */
  absoluteEndsAt: null,
  /** Server clock minus local clock, in milliseconds, from the `Date` header. */
  skewMs: 0,
  lastActivity: Date.now(),
  refreshTimer: null,
  checkTimer: null,
  tickTimer: null,
  /** Test seams (see `suspendTimers`). */
  scheduledRefreshSuspended: false,
  sessionChecksSuspended: false,
};

const channel = 'BroadcastChannel' in window ? new BroadcastChannel(CHANNEL) : null;
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/** An error answer of the API: `{ error, message, reason? }` with its status. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error || 'http_error';
    this.reason = body?.reason;
  }
}

/**
 * One request. `auth` is 'bearer' (the access token), 'cookie' (the session cookie, with the
 * CSRF token on state-changing methods) or 'none'. Answers `{ status, body, sentAt }`.
 */
async function send(path, { method = 'GET', body, auth = 'bearer', token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth === 'bearer' && token) headers.Authorization = `Bearer ${token}`;
  if (auth === 'cookie' && method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  const sentAt = Date.now();
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const receivedAt = Date.now();
  const date = Date.parse(response.headers.get('Date') || '');
  if (!Number.isNaN(date)) {
    // `Date` has whole seconds: the server's instant lies within [date, date + 1 s).
    state.skewMs = date + 500 - (sentAt + receivedAt) / 2;
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = null; }
  }
  return { status: response.status, body: parsed, sentAt };
}

/** A server timestamp (RFC 3339) on the local clock. */
const serverToLocal = (rfc3339) => Date.parse(rfc3339) - state.skewMs;

let refreshInFlight = null;

/**
 * A new access token. Single flight: concurrent callers in this tab share one refresh; across
 * tabs, the Web Lock lets one tab refresh while the others wait and then reuse its result
 * (broadcast on the channel).
 */
export function refreshAccessToken() {
  if (!refreshInFlight) {
    const stale = state.access?.token ?? null;
    refreshInFlight = withRefreshLock(() => refreshUnlessDone(stale)).finally(() => { refreshInFlight = null; });
  }
  return refreshInFlight;
}

function withRefreshLock(task) {
  return navigator.locks ? navigator.locks.request(REFRESH_LOCK, task) : task();
}

async function refreshUnlessDone(stale) {
  // Another tab may have refreshed while this one waited for the lock.
  if (state.access && state.access.token !== stale && state.access.expiresAt - Date.now() > refreshMargin()) {
    return state.access.token;
  }
  const { status, body, sentAt } = await send(`${AUTH}/refresh-token`, { method: 'POST', body: {}, auth: 'cookie' });
  if (status !== 200) {
    const error = new ApiError(status, body);
    if (status === 401 || status === 403) await signOut(reasonText(error), { callServer: false });
    throw error;
  }
  adoptAccessToken(body.access_token, expiryOf(body, sentAt), true);
  return body.access_token;
}

/**
 * When an access token expires on the local clock: `expires_in` seconds from when the request
 * was sent (so no clock comparison with the server is involved, and latency only makes it
 * earlier), less one second because `exp` and `expires_in` are whole seconds.
 */
function expiryOf(answer, sentAt) {
  return sentAt + Math.max(0, answer.expires_in - 1) * 1000;
}

function adoptAccessToken(token, expiresAt, broadcast) {
  state.access = { token, expiresAt };
  scheduleRefresh();
  if (broadcast) post({ type: 'tokens', sessionId: state.sessionId, token, expiresAt });
}

/** The margin before expiry at which to refresh: as configured, at most half the lifetime. */
function refreshMargin() {
  const lifetime = state.access ? Math.max(0, state.access.expiresAt - Date.now()) : 0;
  return Math.min(state.config?.refresh_margin_ms ?? 60_000, lifetime / 2);
}

/**
 * Whether this tab schedules the refreshes: one tab does, holding a Web Lock for as long as it
 * lives, and the others take the tokens it broadcasts (they refresh themselves only when a call
 * meets an expired token). Without Web Locks every tab schedules its own.
 */
let leader = !navigator.locks;

function electLeader() {
  navigator.locks?.request(LEADER_LOCK, () => {
    leader = true;
    scheduleRefresh();
    return new Promise(() => {}); // held until the tab closes; then another tab takes over
  });
}

/**
 * Arms the one refresh timer: a margin before the access token expires, and no later than
 * `session_renew_ms` after the last refresh. Calls made with an access token do not renew the
 * session on the server, a refresh does; so while the page is open the session outlives a
 * server idle timeout shorter than the token's lifetime, and the page's own inactivity
 * sign-out decides when it ends.
 */
function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  if (!leader || !state.signedIn || !state.access || state.scheduledRefreshSuspended) return;
  const lifetime = state.access.expiresAt - Date.now();
  const beforeExpiry = lifetime - Math.min(state.config.refresh_margin_ms, lifetime / 2);
  const delay = Math.max(0, Math.min(beforeExpiry, state.config.session_renew_ms ?? Infinity));
  state.refreshTimer = setTimeout(() => {
    refreshAccessToken().catch((error) => {
      if (!(error instanceof ApiError)) {
        showStatus('Cannot reach the server; retrying…', true);
        state.refreshTimer = setTimeout(scheduleRefresh, 5_000);
      }
    });
  }, delay);
}

/**
 * Every API call of the page. Bearer-authenticated with the in-memory access token; on 401
 * `access_token_expired` (or `invalid_access_token`, e.g. after a server restart) it refreshes
 * once, shared by every call that failed at the same moment, and retries. An ended session
 * signs the page out.
 */
export async function api(path, { method = 'GET', body, auth = 'bearer' } = {}) {
  if (auth === 'bearer' && !state.access) await refreshAccessToken();
  let used = state.access?.token;
  let answer = await send(path, { method, body, auth, token: used });
  if (answer.status === 401 && auth === 'bearer'
      && (answer.body?.error === 'access_token_expired' || answer.body?.error === 'invalid_access_token')) {
    // Refresh only if nobody has since: a late 401 must not start a second refresh.
    if (state.access?.token === used) await refreshAccessToken();
    used = state.access?.token;
    answer = await send(path, { method, body, auth, token: used });
  }
  if (answer.status >= 400) {
    const error = new ApiError(answer.status, answer.body);
    if (answer.status === 401 && state.signedIn) await signOut(reasonText(error), { callServer: false });
    throw error;
  }
  return answer.body;
}

function reasonText(error) {
  const reasons = {
    session_revoked: {
      logout: 'You signed out in another window.',
      logout_all: 'You signed out everywhere.',
      admin: 'An administrator ended your session.',
      evicted: 'You signed in on too many devices; this session was ended.',
      refresh_reuse: 'Your session was ended for your protection (a token was used twice).',
    },
    session_expired: {
      idle: 'Your session expired after inactivity.',
      absolute: 'Your session reached its maximum length.',
    },
  };
  // A refused refresh token names why its session ended the same way.
  const code = error.code === 'invalid_refresh_token' ? 'session_revoked' : error.code;
  return reasons[code]?.[error.reason] || 'Your session has ended. Please sign in again.';
}

// ---------------------------------------------------------------------------------------------
// Signing in and out
// ---------------------------------------------------------------------------------------------

async function logIn(form) {
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  $('login-error').textContent = '';
  try {
    const { status, body, sentAt } = await send(`${AUTH}/login`, {
      method: 'POST',
      auth: 'none',
      body: {
        username: form.username.value,
        password: form.password.value,
        remember_me: form.remember_me.checked,
        // The tokens stay in the HttpOnly cookies: the answer leaves them out of the body.
        cookie_only: true,
      },
    });
    if (status !== 200) {
      $('login-error').textContent = status === 401 ? 'Wrong user name or password.' : (body?.message || `Error ${status}`);
      return;
    }
    form.password.value = '';
    // With cookie_only the answer has no session_token or refresh_token: this page uses the
    // HttpOnly cookies and never sees either.
    begin(body, sentAt);
    post({ type: 'login', sessionId: body.session_id });
  } catch {
    $('login-error').textContent = 'Cannot reach the server.';
  } finally {
    button.disabled = false;
  }
}

/** Enters the signed-in state from a login answer or a session view. */
function begin(session, sentAt) {
  state.signedIn = true;
  state.user = session.user;
  state.sessionId = session.session_id;
  state.csrf = session.csrf_token;
  state.absoluteEndsAt = serverToLocal(session.absolute_expires_at);
  state.lastActivity = Date.now();
  if (session.access_token) adoptAccessToken(session.access_token, expiryOf(session, sentAt), true);
  $('user').textContent = session.user;
  showStatus('');
  show('app-view');
  scheduleCheck();
  clearInterval(state.tickTimer);
  state.tickTimer = setInterval(tick, 250);
  tick();
  loadSessions();
}

/**
 * Resumes after a page load (or a login in another tab) from the session cookie: reads the
 * session (a GET: no CSRF token needed, and another site could not read the answer), then gets
 * an access token through the refresh-token cookie.
 */
async function resume() {
  try {
    const { status, body } = await send(`${AUTH}/session`, { auth: 'cookie' });
    if (status !== 200) {
      show('login-view');
      return;
    }
    begin(body);
    await refreshAccessToken();
  } catch (error) {
    if (!(error instanceof ApiError)) showStatus('Cannot reach the server.', true);
    if (!state.signedIn) show('login-view');
  }
}

/**
 * Leaves the signed-in state. `callServer`: end the session on the server too (through the
 * cookie, so that it works whatever the access token's state). Every other tab follows.
 */
export async function signOut(message, { callServer = true, broadcast = true } = {}) {
  if (!state.signedIn) return;
  state.signedIn = false;
  clearTimeout(state.refreshTimer);
  clearTimeout(state.checkTimer);
  clearInterval(state.tickTimer);
  hideWarning();
  if (callServer) {
    try { await send(`${AUTH}/logout`, { method: 'POST', auth: 'cookie' }); } catch { /* signed out locally anyway */ }
  }
  state.access = null;
  state.csrf = null;
  state.sessionId = null;
  state.user = null;
  if (broadcast) post({ type: 'logout', message });
  $('sessions').replaceChildren();
  show('login-view');
  showStatus(message, true);
}

// ---------------------------------------------------------------------------------------------
// Activity, warnings, checks
// ---------------------------------------------------------------------------------------------

let lastNoted = 0;

/**
 * Records activity at `at`. Local activity is ignored while the inactivity warning is shown: the
 * user answers it with its button (moving the pointer towards the button must not make it
 * vanish); activity reported by another tab does dismiss it.
 */
function noteActivity(at = Date.now(), { broadcast = true, local = true } = {}) {
  if (local && warningKind === 'idle') return;
  if (at <= state.lastActivity) return;
  state.lastActivity = at;
  if (broadcast) post({ type: 'activity', at });
  if (warningKind === 'idle') hideWarning();
}

/** Passive listeners, throttled: at most one note per 1/20 of the inactivity period (≤ 1 s). */
function trackActivity() {
  const onActivity = () => {
    const now = Date.now();
    const throttle = Math.min(1_000, (state.config?.idle_logout_ms ?? 60_000) / 20);
    if (now - lastNoted < throttle || !state.signedIn) return;
    lastNoted = now;
    noteActivity(now);
  };
  const options = { passive: true, capture: true };
  for (const type of ['pointerdown', 'pointermove', 'keydown', 'wheel', 'scroll', 'touchstart']) {
    window.addEventListener(type, onActivity, options);
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !state.signedIn) return;
    // Timers of hidden tabs are throttled: settle an overdue sign-out before counting this.
    tick();
    if (!state.signedIn) return;
    onActivity();
    checkSession();
  });
  window.addEventListener('focus', () => { if (state.signedIn) checkSession(); });
}

let warningKind = null;

/** Four times a second: the countdowns, the warning, the inactivity sign-out. */
function tick() {
  if (!state.signedIn) return;
  const now = Date.now();
  const { idle_logout_ms: idle, warning_ms: warning } = state.config;
  const idleEnd = state.lastActivity + idle;
  if (now >= idleEnd) {
    signOut('You were signed out after a period of inactivity.');
    return;
  }
  if (state.absoluteEndsAt && now >= state.absoluteEndsAt) {
    signOut('Your session reached its maximum length. Please sign in again.');
    return;
  }
  $('idle-countdown').textContent = duration(idleEnd - now);
  $('absolute-countdown').textContent = state.absoluteEndsAt ? duration(state.absoluteEndsAt - now) : '–';
  $('token-countdown').textContent = state.access
    ? duration(Math.max(0, state.access.expiresAt - refreshMargin() - now)) : '–';
  if (state.absoluteEndsAt && state.absoluteEndsAt - now <= warning && state.absoluteEndsAt <= idleEnd) {
    showWarning('absolute', `Your session ends in ${duration(state.absoluteEndsAt - now)}; you will then need to sign in again. Save your work.`);
  } else if (idleEnd - now <= warning) {
    showWarning('idle', `You will be signed out in ${duration(idleEnd - now)} because of inactivity.`);
  } else if (warningKind) {
    hideWarning();
  }
}

function showWarning(kind, text) {
  const box = $('warning');
  $('warning-text').textContent = text;
  $('stay').hidden = kind === 'absolute';
  if (warningKind !== kind) {
    warningKind = kind;
    box.hidden = false;
    if (kind === 'idle') $('stay').focus({ preventScroll: true });
  }
}

function hideWarning() {
  warningKind = null;
  $('warning').hidden = true;
}

/** "Stay signed in": extends the session on the server and counts as activity. */
async function staySignedIn() {
  hideWarning();
  noteActivity(Date.now());
  try {
    const session = await api(`${AUTH}/sessions/refresh`, { method: 'POST', auth: 'cookie' });
    state.absoluteEndsAt = serverToLocal(session.absolute_expires_at);
  } catch (error) {
    if (!(error instanceof ApiError)) showStatus('Cannot reach the server.', true);
  }
}

/** Asks the server whether the session still stands (a revocation made elsewhere shows here). */
async function checkSession() {
  if (!state.signedIn || state.sessionChecksSuspended) return;
  scheduleCheck();
  try {
    const session = await api(`${AUTH}/session`);
    state.absoluteEndsAt = serverToLocal(session.absolute_expires_at);
  } catch { /* api() has signed out if the session ended */ }
}

function scheduleCheck() {
  clearTimeout(state.checkTimer);
  if (state.signedIn && !state.sessionChecksSuspended) {
    state.checkTimer = setTimeout(checkSession, state.config.check_interval_ms);
  }
}

// ---------------------------------------------------------------------------------------------
// Tabs
// ---------------------------------------------------------------------------------------------

function post(message) {
  channel?.postMessage(message);
}

channel?.addEventListener('message', ({ data }) => {
  switch (data?.type) {
    case 'tokens':
      if (state.signedIn && data.sessionId === state.sessionId
          && (!state.access || data.expiresAt > state.access.expiresAt)) {
        adoptAccessToken(data.token, data.expiresAt, false);
      }
      break;
    case 'activity':
      if (state.signedIn) noteActivity(data.at, { broadcast: false, local: false });
      break;
    case 'logout':
      signOut(data.message || 'You signed out in another window.', { callServer: false, broadcast: false });
      break;
    case 'login':
      if (data.sessionId !== state.sessionId) {
        // The cookies now belong to the new session: follow it.
        if (state.signedIn) signOut('', { callServer: false, broadcast: false });
        resume();
      }
      break;
    default:
  }
});

// ---------------------------------------------------------------------------------------------
// Sessions list
// ---------------------------------------------------------------------------------------------

async function loadSessions() {
  let list;
  try {
    list = await api(`${AUTH}/sessions`);
  } catch {
    return;
  }
  const rows = list.sessions
    .sort((a, b) => Number(b.current) - Number(a.current) || b.created_at.localeCompare(a.created_at))
    .map((session) => {
      const row = document.createElement('tr');
      const device = cell(session.user_agent ? shortAgent(session.user_agent) : 'unknown');
      device.className = 'device';
      if (session.user_agent) device.title = session.user_agent;
      if (session.current) {
        const badge = document.createElement('span');
        badge.className = 'badge';
        badge.textContent = 'this browser';
        device.append(' ', badge);
      }
      const action = document.createElement('td');
      if (!session.current) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'revoke';
        button.textContent = 'Revoke';
        button.setAttribute('aria-label', `Revoke the session signed in ${when(session.created_at)}`);
        button.addEventListener('click', () => revoke(session.session_id, button));
        action.append(button);
      }
      row.append(device, cell(session.ip || '–'), cell(when(session.created_at)), cell(when(session.last_seen_at)), action);
      return row;
    });
  $('sessions').replaceChildren(...rows);
}

async function revoke(sessionId, button) {
  button.disabled = true;
  try {
    await api(`${AUTH}/sessions/revoke`, { method: 'POST', body: { session_id: sessionId } });
    showStatus('Session revoked.');
  } catch (error) {
    showStatus(error.message, true);
  }
  loadSessions();
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function shortAgent(agent) {
  const match = agent.match(/(Firefox|Edg|Chrome|Chromium|Safari|curl|reqwest)\/[\d.]+/);
  return match ? match[0] : agent.slice(0, 40);
}

const when = (rfc3339) => new Date(serverToLocal(rfc3339)).toLocaleString();

function duration(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

// ---------------------------------------------------------------------------------------------
// Page
// ---------------------------------------------------------------------------------------------

function show(view) {
  for (const id of ['loading-view', 'login-view', 'app-view']) $(id).hidden = id !== view;
}

function showStatus(text, problem = false) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('problem', problem);
}

/**
 * For the end-to-end tests: stop the scheduled refresh (so that the access token expires) and,
 * with `checks`, the session checks too.
 */
export function suspendTimers({ checks = false } = {}) {
  state.scheduledRefreshSuspended = true;
  clearTimeout(state.refreshTimer);
  if (checks) {
    state.sessionChecksSuspended = true;
    clearTimeout(state.checkTimer);
  }
}

async function main() {
  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    logIn(event.currentTarget);
  });
  $('logout').addEventListener('click', () => signOut('You signed out.'));
  $('logout-all').addEventListener('click', async () => {
    try {
      await api(`${AUTH}/logout-all`, { method: 'POST' });
      signOut('You signed out everywhere.', { callServer: false });
    } catch (error) {
      showStatus(error.message, true);
    }
  });
  $('stay').addEventListener('click', staySignedIn);
  try {
    const { status, body } = await send('/api/v1/client-config', { auth: 'none' });
    if (status !== 200) throw new Error(`client-config: ${status}`);
    state.config = body;
  } catch {
    show('login-view');
    showStatus('Cannot reach the server; reload the page to try again.', true);
    return;
  }
  trackActivity();
  electLeader();
  await resume();
  document.body.dataset.ready = 'true';
}

main();
