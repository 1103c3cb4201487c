// BusyLamp web console.
//
// A plain ES module: it reads the same JSON API and Server-Sent Events stream as any other
// client (docs/admin-api.md). Every piece of server data reaches the page through
// textContent or attributes, never through innerHTML.

const TOKEN_KEY = 'busylamp.token';
const ACCOUNT_KEY = 'busylamp.account';
const VENDOR_EXTENSIONS = { yealink: 'cfg', polycom: 'xml', cisco: 'xml', snom: 'xml' };
const VENDOR_NAMES = { yealink: 'Yealink', polycom: 'Polycom', cisco: 'Cisco SPA', snom: 'snom' };
// Reconnect delays after the browser gave up on the event stream (EventSource retries by
// itself on a dropped connection; it stops only on an HTTP error answer).
const RECONNECT_DELAYS_MS = [2000, 4000, 8000, 15000, 30000];
// Lamp changes that arrive close together are announced as one sentence.
const ANNOUNCE_BATCH_MS = 700;
const ANNOUNCE_MAX_ITEMS = 3;

const STATE_WORDS = {
  idle: 'Idle',
  ringing: 'Ringing',
  busy: 'On a call',
  dialing: 'Dialing',
  unregistered: 'Not registered',
};
const STATE_ORDER = ['idle', 'ringing', 'busy', 'dialing', 'unregistered'];

const RULE_NAMES = {
  watcher_exists: 'The watching line exists',
  target_exists: 'The watched line exists',
  same_account: 'Both lines are in the same account',
  same_group: 'Both lines are in the same group',
  presence: 'Presence is on for the watched line',
  same_network_only: 'Same network (when the account requires it)',
  target_registered: 'The watched line has a registered phone',
  credentials: 'The phone signs in with the right password',
};
const VERDICT_WORDS = {
  pass: 'Pass',
  fail: 'Fail',
  not_checked: 'Not checked',
  not_applicable: 'Does not apply',
  info: 'Note',
};
const REFUSAL_CODES = {
  bad_credentials: 'the phone used a wrong user name or password',
  unknown_target: 'the watched number or extension does not exist',
  other_account: 'the two lines belong to different accounts',
  other_group: 'the two lines are in different groups',
  presence_off: 'presence is off for the watched line',
  other_network: 'the phone is not on the watched line’s network',
  bad_event: 'the phone asked for an event BusyLamp does not serve',
  not_acceptable: 'the phone accepts no document type BusyLamp sends',
  interval_too_brief: 'the phone asked for too short a subscription',
  bad_expires: 'the phone sent an unreadable expiry time',
  unknown_subscription: 'the phone refreshed a subscription that has ended',
  foreign_subscription: 'the phone refreshed another phone’s subscription',
};
const SOURCE_WORDS = {
  line: 'set on this line',
  account: 'inherited from the account',
  platform: 'inherited from the platform default',
};

const state = {
  token: null,
  signedIn: false,
  accounts: [],
  account: null,
  lines: new Map(), // extension -> Line
  lamps: new Map(), // extension -> LineState
  tiles: new Map(), // extension -> button
  selected: null,
  es: null,
  everLive: false,
  reconnectTimer: null,
  reconnectAttempt: 0,
  connection: 'off',
  announceQueue: [],
  announceTimer: null,
  loadToken: 0, // rises on every account switch, so late answers for the old account are dropped
};

const $ = (id) => document.getElementById(id);
const narrowScreen = window.matchMedia('(max-width: 64rem)');

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Creates an element. Strings in `children` become text nodes; null/false are skipped. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.append(child);
    else node.append(document.createTextNode(String(child)));
  }
}

const SVG_NS = 'http://www.w3.org/2000/svg';
// Each state has its own shape, so a lamp reads without colour.
const ICONS = {
  idle: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M7.8 12.4l2.9 2.9 5.6-6' }]],
  ringing: [
    ['path', { d: 'M7 16.5V11a5 5 0 0 1 10 0v5.5l1.5 1.5h-13z' }],
    ['path', { d: 'M10.3 20.2a1.9 1.9 0 0 0 3.4 0' }],
    ['path', { d: 'M3.6 8.2a9 9 0 0 1 2.6-4.1M20.4 8.2a9 9 0 0 0-2.6-4.1' }],
  ],
  busy: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M7.5 12h9', 'stroke-width': 3 }]],
  dialing: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M9 15l6-6M10 9h5v5' }]],
  unregistered: [['circle', { cx: 12, cy: 12, r: 9, 'stroke-dasharray': '3 2.6' }], ['path', { d: 'M8.5 8.5l7 7M15.5 8.5l-7 7' }]],
  pass: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M7.8 12.4l2.9 2.9 5.6-6' }]],
  fail: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M8.8 8.8l6.4 6.4M15.2 8.8l-6.4 6.4' }]],
  not_checked: [['circle', { cx: 12, cy: 12, r: 9, 'stroke-dasharray': '3 2.6' }], ['path', { d: 'M8 12h8' }]],
  not_applicable: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M6 18L18 6' }]],
  info: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M12 11v5.5M12 7.6v.1', 'stroke-width': 2.4 }]],
  accept: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M7.8 12.4l2.9 2.9 5.6-6' }]],
  refuse: [['path', { d: 'M12 3l9.5 17h-19z' }], ['path', { d: 'M12 9.5v5M12 17.2v.1', 'stroke-width': 2.4 }]],
};

function icon(name, className = 'icon') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', className);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const [tag, attrs] of ICONS[name] || ICONS.info) {
    const shape = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) shape.setAttribute(k, String(v));
    svg.append(shape);
  }
  return svg;
}

function visuallyHidden(text) {
  return el('span', { class: 'visually-hidden', text });
}

function setMessage(node, text, kind = 'info') {
  node.textContent = text || '';
  node.dataset.kind = kind;
}

function table(caption, columns, rows, emptyText) {
  if (!rows.length) return el('p', { class: 'empty', text: emptyText });
  return el('table', null,
    el('caption', { class: 'visually-hidden', text: caption }),
    el('thead', null, el('tr', null, columns.map((c) => el('th', { scope: 'col', text: c })))),
    el('tbody', null, rows.map((cells) => el('tr', null,
      cells.map((c, i) => el('td', { 'data-label': columns[i] }, el('span', { class: 'cell' }, c)))))));
}

// ---------------------------------------------------------------------------------------------
// Formatting

function parseDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

function formatTime(iso) {
  const d = parseDate(iso);
  if (!d) return String(iso ?? '');
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

function timeElement(iso) {
  const d = parseDate(iso);
  return el('time', { datetime: d ? d.toISOString() : null, title: d ? d.toLocaleString() : null, text: formatTime(iso) });
}

function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

/** The user part of a SIP or tel URI: "sip:6495550201@host;user=phone" -> "6495550201". */
function userPart(identity) {
  let s = String(identity ?? '').trim();
  const lt = s.indexOf('<');
  if (lt >= 0) {
    const gt = s.indexOf('>', lt);
    s = s.slice(lt + 1, gt > lt ? gt : undefined);
  }
  s = s.replace(/^(sips?|tel):/i, '');
  const at = s.indexOf('@');
  if (at >= 0) s = s.slice(0, at);
  s = s.split(/[;?]/)[0];
  try {
    s = decodeURIComponent(s);
  } catch {
    // keep it as written
  }
  return s;
}

function lineLabel(ext) {
  const line = state.lines.get(ext) || state.lamps.get(ext);
  return line && line.name ? `${line.name} (${ext})` : String(ext ?? '');
}

function lineByNumber(number) {
  if (!number) return null;
  for (const map of [state.lamps, state.lines]) {
    for (const line of map.values()) {
      if (line.number === number || line.extension === number) return line;
    }
  }
  return null;
}

function presenceValue(presence) {
  if (presence === true) return 'on';
  if (presence === false) return 'off';
  return 'inherit';
}

function presenceFromValue(value) {
  if (value === 'on') return true;
  if (value === 'off') return false;
  return null;
}

function onOff(flag) {
  return flag ? 'On' : 'Off';
}

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const detail = (body && typeof body.detail === 'string' && body.detail) ||
      (status === 0 ? 'The server cannot be reached. Check the connection and try again.' : `The server answered with status ${status}.`);
    super(detail);
    this.status = status;
    this.code = body && body.error;
    this.field = body && body.field;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

async function request(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      // not JSON: the status says enough
    }
    const error = new ApiError(response.status, data, response.headers.get('Retry-After'));
    if (response.status === 401 && state.signedIn) sessionExpired();
    throw error;
  }
  return response;
}

async function api(path, options) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

function accountPath(suffix = '') {
  return `/api/v1/accounts/${encodeURIComponent(state.account.id)}${suffix}`;
}

// ---------------------------------------------------------------------------------------------
// Signing in

function takeTokenFromHash() {
  const hash = window.location.hash;
  if (!hash.startsWith('#')) return false;
  const params = new URLSearchParams(hash.slice(1));
  const token = params.get('token');
  if (!token) return false;
  sessionStorage.setItem(TOKEN_KEY, token);
  // Keep the token out of the address bar, the history and any bookmark.
  history.replaceState(null, '', window.location.pathname + window.location.search);
  return true;
}

function showSignIn(message, kind = 'error') {
  state.signedIn = false;
  disconnect();
  closePanel({ restoreFocus: false });
  $('console').hidden = true;
  $('sections-nav').hidden = true;
  $('account-picker').hidden = true;
  $('connection').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  setMessage($('signin-message'), message || '', kind);
  $('signin-submit').disabled = false;
  const input = $('token-input');
  input.setAttribute('aria-invalid', message && kind === 'error' ? 'true' : 'false');
  input.focus();
}

async function signIn(token) {
  state.token = token;
  setMessage($('signin-message'), 'Checking the token…', 'info');
  $('signin-submit').disabled = true;
  let data;
  try {
    data = await api('/api/v1/accounts');
  } catch (error) {
    state.token = null;
    let message;
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      message = 'The server did not accept that admin token. Check it and try again.';
    } else if (error.status === 503 && error.code === 'no_token_configured') {
      sessionStorage.removeItem(TOKEN_KEY);
      message = 'This server has no admin token configured, so nobody can sign in yet. ' +
        'Set BUSYLAMP_ADMIN_TOKEN in the server’s environment (or admin_token in its configuration file) and restart it.';
    } else if (error.status === 429) {
      sessionStorage.removeItem(TOKEN_KEY);
      const wait = error.retryAfter ? ` about ${formatDuration(error.retryAfter)}` : ' a while';
      message = `Too many wrong tokens were tried from this address. Wait${wait} and try again.`;
    } else {
      // The server may be restarting: keep the token for another try.
      $('token-input').value = token;
      message = `Could not sign in: ${error.detail}`;
    }
    showSignIn(message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token-input').value = '';
  state.signedIn = true;
  state.accounts = Array.isArray(data && data.accounts) ? data.accounts : [];
  showConsole();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showSignIn('You are signed out.', 'info');
}

function sessionExpired() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showSignIn('The server no longer accepts this admin token (it may have been changed). Sign in again.');
}

function showConsole() {
  $('signin').hidden = true;
  $('console').hidden = false;
  $('sections-nav').hidden = false;
  $('sign-out').hidden = false;
  $('connection').hidden = false;

  const select = $('account-select');
  select.replaceChildren(...state.accounts.map((a) => el('option', { value: a.id, text: a.name ? `${a.name} (${a.id})` : a.id })));
  $('account-picker').hidden = state.accounts.length === 0;

  if (!state.accounts.length) {
    state.account = null;
    clearLamps();
    $('lamps-account').textContent = '';
    const notice = $('lamps-notice');
    notice.textContent = 'There are no accounts on this server yet. Create one through the admin API or a directory file, then reload this page.';
    notice.hidden = false;
    setConnection('off');
    return;
  }
  const remembered = sessionStorage.getItem(ACCOUNT_KEY);
  const chosen = state.accounts.find((a) => a.id === remembered) || state.accounts[0];
  select.value = chosen.id;
  selectAccount(chosen.id);
}

// ---------------------------------------------------------------------------------------------
// Account

async function selectAccount(id) {
  const account = state.accounts.find((a) => a.id === id);
  if (!account) return;
  state.loadToken += 1;
  const token = state.loadToken;
  sessionStorage.setItem(ACCOUNT_KEY, id);
  state.account = account;
  closePanel({ restoreFocus: false });
  clearLamps();
  state.lines = new Map();
  state.everLive = false;
  $('lamps-notice').hidden = true;
  $('lamps-account').textContent = `· ${account.name || account.id}`;
  $('diagnose-result').replaceChildren();
  renderAccount();
  connect();
  await loadLines(token);
  loadRefusals();
}

async function loadLines(token = state.loadToken) {
  try {
    const data = await api(accountPath('/lines'));
    if (token !== state.loadToken) return;
    state.lines = new Map((data && Array.isArray(data.lines) ? data.lines : []).map((l) => [l.extension, l]));
  } catch (error) {
    if (token !== state.loadToken) return;
    const notice = $('lamps-notice');
    notice.textContent = `The account’s lines could not be read: ${error.detail}`;
    notice.hidden = false;
  }
  fillLineSelects();
  // Names from the line list may now name callers the tiles showed only by number.
  for (const [ext, lamp] of state.lamps) {
    const tile = state.tiles.get(ext);
    if (tile) renderTile(tile, lamp);
  }
  if (state.selected) renderPanel();
}

function renderAccount() {
  const account = state.account;
  $('account-presence').value = presenceValue(account.presence);
  const effective = account.presence_effective;
  const from = account.presence === null || account.presence === undefined ? 'inherited from the platform default' : 'set on this account';
  $('account-presence-effective').textContent = effective === undefined
    ? ''
    : `Effective for the account: ${onOff(effective)}, ${from}.`;
  setMessage($('account-presence-message'), '');
  const facts = [];
  if (typeof account.line_count === 'number') facts.push(['Lines', String(account.line_count)]);
  if (typeof account.same_network_only === 'boolean') facts.push(['Same network only', account.same_network_only ? 'Yes' : 'No']);
  if (account.pickup) {
    if (account.pickup.directed) facts.push(['Directed pickup code', account.pickup.directed]);
    if (account.pickup.group) facts.push(['Group pickup code', account.pickup.group]);
  }
  $('account-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
}

async function saveAccountPresence(event) {
  event.preventDefault();
  if (!state.account) return;
  const message = $('account-presence-message');
  const button = $('account-presence-save');
  const presence = presenceFromValue($('account-presence').value);
  button.disabled = true;
  setMessage(message, 'Saving…');
  try {
    const updated = await api(accountPath(), { method: 'PATCH', body: { presence } });
    if (updated) {
      Object.assign(state.account, updated);
    } else {
      state.account.presence = presence;
    }
    renderAccount();
    setMessage(message, 'Saved.', 'success');
    await loadLines();
  } catch (error) {
    setMessage(message, `Not saved: ${error.detail}`, 'error');
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Live lamps

function setConnection(kind) {
  if (state.connection === kind) return;
  state.connection = kind;
  const words = { off: 'Not connected', connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' };
  $('connection').dataset.state = kind;
  $('connection-text').textContent = words[kind] || kind;
  $('lamps-stale').hidden = !(kind === 'reconnecting' && state.lamps.size > 0);
}

function disconnect() {
  if (state.es) {
    state.es.close();
    state.es = null;
  }
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = null;
  setConnection('off');
}

function connect() {
  disconnect();
  if (!state.account || !state.token) return;
  const url = `${accountPath('/events')}?access_token=${encodeURIComponent(state.token)}`;
  const es = new EventSource(url);
  state.es = es;
  setConnection(state.everLive ? 'reconnecting' : 'connecting');

  const live = () => {
    state.everLive = true;
    state.reconnectAttempt = 0;
    setConnection('live');
  };
  es.addEventListener('open', () => {
    if (state.es === es) live();
  });
  es.addEventListener('snapshot', (event) => {
    if (state.es !== es) return;
    const data = parseEvent(event);
    if (!data) return;
    applySnapshot(Array.isArray(data.lamps) ? data.lamps : []);
    live();
  });
  es.addEventListener('lamp', (event) => {
    if (state.es !== es) return;
    const lamp = parseEvent(event);
    if (lamp && lamp.extension !== undefined) applyLamp(lamp);
  });
  es.addEventListener('error', () => {
    if (state.es !== es) return;
    setConnection('reconnecting');
    if (es.readyState === EventSource.CLOSED) {
      // The server answered with an error (or not an event stream): EventSource gives up.
      es.close();
      state.es = null;
      scheduleReconnect();
    }
  });
}

function parseEvent(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    return null;
  }
}

function scheduleReconnect() {
  clearTimeout(state.reconnectTimer);
  const delay = RECONNECT_DELAYS_MS[Math.min(state.reconnectAttempt, RECONNECT_DELAYS_MS.length - 1)];
  state.reconnectAttempt += 1;
  const token = state.loadToken;
  state.reconnectTimer = setTimeout(async () => {
    if (token !== state.loadToken || !state.signedIn) return;
    try {
      // Tells a revoked token (401: sign in again) from a server that is away.
      const data = await api('/api/v1/accounts');
      if (token !== state.loadToken) return;
      state.accounts = Array.isArray(data && data.accounts) ? data.accounts : state.accounts;
      const account = state.accounts.find((a) => a.id === state.account.id);
      if (!account) {
        showConsole();
        return;
      }
      state.account = account;
      renderAccount();
      connect();
    } catch (error) {
      if (error.status !== 401) scheduleReconnect();
    }
  }, delay);
}

function clearLamps() {
  state.lamps = new Map();
  state.tiles = new Map();
  $('lamp-grid').replaceChildren();
  $('lamp-announcer').textContent = '';
  clearTimeout(state.announceTimer);
  state.announceTimer = null;
  state.announceQueue = [];
  renderCounts();
}

/** What a tile shows for a line state: one of the five lamp kinds, the words, the other party. */
function lampView(lamp) {
  const dialogs = Array.isArray(lamp.dialogs) ? lamp.dialogs : [];
  const kindOfLamp = lamp.lamp || lamp.state || 'idle';
  let kind;
  if (kindOfLamp === 'ringing') kind = 'ringing';
  else if (kindOfLamp === 'dialing') kind = 'dialing';
  else if (kindOfLamp === 'busy' || lamp.state === 'busy') kind = 'busy';
  else if (lamp.registered === false) kind = 'unregistered';
  else kind = 'idle';

  let dialog = null;
  let status = STATE_WORDS[kind];
  let lead = null;
  if (kind === 'ringing') {
    dialog = dialogs.find((d) => d.direction === 'recipient' && d.state === 'early') ||
      dialogs.find((d) => d.state === 'early') || dialogs[0];
    lead = 'from';
  } else if (kind === 'busy') {
    dialog = dialogs.find((d) => d.state === 'confirmed') || dialogs[0];
    if (!dialog || dialog.state !== 'confirmed') status = 'Busy';
    lead = 'with';
  } else if (kind === 'dialing') {
    dialog = dialogs.find((d) => d.direction === 'initiator' && d.state === 'early') || dialogs[0];
    lead = 'to';
  }
  const party = dialog ? partyOf(dialog) : null;
  const moreCalls = kind !== 'idle' && kind !== 'unregistered' && dialogs.length > 1 ? dialogs.length - 1 : 0;
  return { kind, status, lead, party, moreCalls };
}

function partyOf(dialog) {
  const remote = dialog.remote || {};
  const number = userPart(remote.identity);
  let name = typeof remote.display_name === 'string' ? remote.display_name.trim() : '';
  if (!name) {
    const known = lineByNumber(number);
    if (known && known.name) name = known.name;
  }
  if (!name && !number) return null;
  return { name, number: number && number !== name ? number : '' };
}

function partyNodes(view) {
  if (!view.party) {
    if (view.kind === 'ringing') return [el('span', { class: 'lamp-party', text: 'Incoming call' })];
    return [];
  }
  const { name, number } = view.party;
  return [el('span', { class: 'lamp-party' },
    `${view.lead} `,
    name ? el('span', { class: 'party-name', text: name }) : null,
    name && number ? ' ' : null,
    number ? el('span', { class: 'party-number', text: number }) : null)];
}

function partySentence(view) {
  if (!view.party) return '';
  const { name, number } = view.party;
  return `${view.lead} ${[name, number].filter(Boolean).join(', ')}`;
}

function createTile(ext) {
  const button = el('button', {
    type: 'button',
    class: 'lamp',
    'aria-expanded': 'false',
    'aria-controls': 'line-panel',
    dataset: { extension: ext },
  });
  button.addEventListener('click', () => {
    if (state.selected === ext && !$('line-panel').hidden) closePanel();
    else openPanel(ext);
  });
  state.tiles.set(ext, button);
  return button;
}

function renderTile(button, lamp) {
  const view = lampView(lamp);
  const ext = String(lamp.extension);
  const name = lamp.name || (state.lines.get(ext) || {}).name || `Extension ${ext}`;
  button.dataset.state = view.kind;
  button.replaceChildren(
    el('span', { class: 'lamp-light' }, icon(view.kind, 'lamp-icon')),
    el('span', { class: 'lamp-body' },
      el('span', { class: 'lamp-name', text: name }),
      el('span', { class: 'lamp-ids' },
        visuallyHidden(', extension '),
        el('span', { class: 'lamp-ext', text: ext }),
        lamp.number ? [visuallyHidden(', number '), el('span', { class: 'lamp-number', text: lamp.number })] : null),
      visuallyHidden(', '),
      el('span', { class: 'lamp-status', text: view.status }),
      view.party || view.kind === 'ringing' ? visuallyHidden(', ') : null,
      partyNodes(view),
      view.moreCalls ? el('span', { class: 'lamp-more', text: `+${view.moreCalls} more call${view.moreCalls > 1 ? 's' : ''}` }) : null));
  button.setAttribute('aria-expanded', String(state.selected === ext && !$('line-panel').hidden));
  return view;
}

function applySnapshot(lamps) {
  const grid = $('lamp-grid');
  const previous = state.lamps;
  const hadLamps = previous.size > 0;
  const next = new Map();
  for (const lamp of lamps) {
    if (lamp && lamp.extension !== undefined) next.set(String(lamp.extension), lamp);
  }
  // The whole new state first: a tile names its caller by looking the number up among the lamps.
  state.lamps = next;
  const items = [];
  const changes = [];
  for (const [ext, lamp] of next) {
    const button = state.tiles.get(ext) || createTile(ext);
    const before = previous.get(ext);
    const view = renderTile(button, lamp);
    if (hadLamps && (!before || lampView(before).kind !== view.kind)) changes.push(describe(lamp, view));
    items.push(button.parentElement || el('li', null, button));
  }
  for (const ext of state.tiles.keys()) {
    if (!next.has(ext)) state.tiles.delete(ext);
  }
  grid.replaceChildren(...items);
  renderCounts();
  if (!hadLamps) {
    announceNow(lamps.length
      ? `Showing ${lamps.length} lamp${lamps.length === 1 ? '' : 's'} for ${state.account.name || state.account.id}.`
      : 'This account has no lines yet.');
  } else {
    changes.forEach(announce);
  }
  if (state.selected) {
    if (next.has(state.selected)) renderPanelState();
    else closePanel({ restoreFocus: false });
  }
}

function applyLamp(lamp) {
  const ext = String(lamp.extension);
  const before = state.lamps.get(ext);
  state.lamps.set(ext, lamp);
  let button = state.tiles.get(ext);
  if (!button) {
    button = createTile(ext);
    $('lamp-grid').append(el('li', null, button));
  }
  const view = renderTile(button, lamp);
  renderCounts();
  const beforeView = before ? lampView(before) : null;
  if (!beforeView || beforeView.kind !== view.kind || partySentence(beforeView) !== partySentence(view)) {
    announce(describe(lamp, view));
  }
  if (state.selected === ext) renderPanelState();
}

function describe(lamp, view) {
  const who = lamp.name ? `${lamp.name} (${lamp.extension})` : `Extension ${lamp.extension}`;
  const party = partySentence(view);
  return `${who}: ${view.status.toLowerCase()}${party ? ` ${party}` : ''}.`;
}

function renderCounts() {
  const counts = Object.fromEntries(STATE_ORDER.map((k) => [k, 0]));
  for (const lamp of state.lamps.values()) counts[lampView(lamp).kind] += 1;
  const items = [el('li', { class: 'count-total', text: `${state.lamps.size} line${state.lamps.size === 1 ? '' : 's'}` })];
  for (const kind of STATE_ORDER) {
    if (!counts[kind]) continue;
    items.push(el('li', { class: 'count', dataset: { state: kind } },
      icon(kind, 'count-icon'), `${counts[kind]} ${STATE_WORDS[kind].toLowerCase()}`));
  }
  $('lamp-counts').replaceChildren(...(state.lamps.size ? items : []));
}

function announce(text) {
  state.announceQueue.push(text);
  if (state.announceTimer) return;
  state.announceTimer = setTimeout(() => {
    const queue = state.announceQueue;
    state.announceQueue = [];
    state.announceTimer = null;
    let sentence = queue.slice(0, ANNOUNCE_MAX_ITEMS).join(' ');
    if (queue.length > ANNOUNCE_MAX_ITEMS) sentence += ` And ${queue.length - ANNOUNCE_MAX_ITEMS} more changes.`;
    announceNow(sentence);
  }, ANNOUNCE_BATCH_MS);
}

function announceNow(text) {
  const now = new Date().toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  $('lamp-announcer').replaceChildren(el('span', { class: 'announcer-time', text: now }), ' ', text);
}

// ---------------------------------------------------------------------------------------------
// Line detail panel

function setOverlay() {
  const open = !$('line-panel').hidden;
  const overlay = open && narrowScreen.matches;
  document.body.classList.toggle('panel-overlay', overlay);
  for (const id of ['main', 'sections-nav']) $(id).inert = overlay;
  document.querySelector('.topbar').inert = overlay;
  $('layout').classList.toggle('with-panel', open);
}

async function openPanel(ext) {
  state.selected = ext;
  const panel = $('line-panel');
  panel.hidden = false;
  for (const [e, tile] of state.tiles) tile.setAttribute('aria-expanded', String(e === ext));
  setOverlay();
  for (const id of ['line-presence-message', 'line-group-message', 'line-download-message']) setMessage($(id), '');
  $('line-group').removeAttribute('aria-invalid');
  renderPanel();
  panel.scrollTop = 0;
  $('line-heading').focus({ preventScroll: true });
  refreshLine(ext);
  loadSubscriptions(ext);
}

function closePanel({ restoreFocus = true } = {}) {
  const panel = $('line-panel');
  const wasOpen = !panel.hidden;
  const ext = state.selected;
  panel.hidden = true;
  state.selected = null;
  for (const tile of state.tiles.values()) tile.setAttribute('aria-expanded', 'false');
  setOverlay();
  if (wasOpen && restoreFocus && ext && state.tiles.has(ext)) state.tiles.get(ext).focus();
}

async function refreshLine(ext) {
  try {
    const line = await api(accountPath(`/lines/${encodeURIComponent(ext)}`));
    if (line && line.extension !== undefined) state.lines.set(String(line.extension), line);
    if (state.selected === ext) renderPanel();
  } catch (error) {
    if (state.selected === ext) setMessage($('line-presence-message'), `This line’s settings could not be read: ${error.detail}`, 'error');
  }
}

function renderPanel() {
  const ext = state.selected;
  if (!ext) return;
  const line = state.lines.get(ext);
  const lamp = state.lamps.get(ext);
  const name = (line && line.name) || (lamp && lamp.name) || `Extension ${ext}`;
  $('line-heading').textContent = `${name} · ${ext}`;
  renderPanelState();

  const facts = [['Extension', ext]];
  const number = (line && line.number) || (lamp && lamp.number);
  if (number) facts.push(['Number', number]);
  if (line && line.group) facts.push(['Group', line.group]);
  if (lamp && typeof lamp.registered === 'boolean') facts.push(['Phone', lamp.registered ? 'Registered' : 'Not registered']);
  $('line-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));

  const presenceSelect = $('line-presence');
  const groupInput = $('line-group');
  if (line) {
    if (document.activeElement !== presenceSelect) presenceSelect.value = presenceValue(line.presence);
    if (document.activeElement !== groupInput && !groupInput.hasAttribute('aria-invalid')) groupInput.value = line.group || '';
    const source = SOURCE_WORDS[line.presence_source] || (line.presence_source ? `from ${line.presence_source}` : '');
    $('line-presence-effective').textContent = typeof line.presence_effective === 'boolean'
      ? `Effective: ${onOff(line.presence_effective)}${source ? `, ${source}` : ''}.`
      : '';
  } else {
    $('line-presence-effective').textContent = '';
  }
}

function renderPanelState() {
  const ext = state.selected;
  const lamp = ext && state.lamps.get(ext);
  const target = $('line-state');
  if (!lamp) {
    target.replaceChildren();
    return;
  }
  const view = lampView(lamp);
  target.dataset.state = view.kind;
  target.replaceChildren(icon(view.kind, 'state-icon'),
    el('span', { class: 'panel-status', text: view.status }),
    view.party ? ` ${partySentence(view)}` : '');
}

async function loadSubscriptions(ext) {
  const watchers = $('line-watchers');
  const watching = $('line-watching');
  watchers.replaceChildren(el('p', { class: 'empty', text: 'Loading…' }));
  watching.replaceChildren(el('p', { class: 'empty', text: 'Loading…' }));
  const path = (key) => `${accountPath('/subscriptions')}?${key}=${encodeURIComponent(ext)}`;
  const [byTarget, byWatcher] = await Promise.allSettled([api(path('target')), api(path('watcher'))]);
  if (state.selected !== ext) return;
  watchers.replaceChildren(subscriptionsView(byTarget, 'watcher', 'No phone watches this line right now.'));
  watching.replaceChildren(subscriptionsView(byWatcher, 'target', 'This line’s phones watch no other line right now.'));
}

function subscriptionsView(result, side, emptyText) {
  if (result.status === 'rejected') {
    return el('p', { class: 'message', dataset: { kind: 'error' }, text: `Could not load: ${result.reason.detail || result.reason.message}` });
  }
  const subs = (result.value && Array.isArray(result.value.subscriptions)) ? result.value.subscriptions : [];
  const rows = subs.map((s) => [
    el('span', null, lineLabel(s[side]), s[`${side}_number`] ? el('span', { class: 'muted block', text: s[`${side}_number`] }) : null),
    s.event === 'dialog' ? 'dialog (BLF key)' : String(s.event ?? ''),
    el('span', { class: 'mono' }, String(s.source ?? ''), s.user_agent ? el('span', { class: 'muted block', text: s.user_agent }) : null),
    el('span', null, `in ${formatDuration(s.expires)}`, s.expires_at ? el('span', { class: 'muted block' }, 'at ', timeElement(s.expires_at)) : null),
  ]);
  return table(side === 'watcher' ? 'Phones watching this line' : 'Lines this line watches',
    [side === 'watcher' ? 'Watcher' : 'Watched line', 'Event', 'Source', 'Expires'], rows, emptyText);
}

async function saveLinePresence(event) {
  event.preventDefault();
  const ext = state.selected;
  if (!ext) return;
  const message = $('line-presence-message');
  const button = $('line-presence-save');
  button.disabled = true;
  setMessage(message, 'Saving…');
  try {
    const line = await api(accountPath(`/lines/${encodeURIComponent(ext)}`), {
      method: 'PATCH',
      body: { presence: presenceFromValue($('line-presence').value) },
    });
    if (line) state.lines.set(ext, line);
    if (state.selected !== ext) return;
    renderPanel();
    setMessage(message, 'Saved.', 'success');
    // Turning presence off ends subscriptions; give the server a moment, then show who is left.
    setTimeout(() => {
      if (state.selected === ext) loadSubscriptions(ext);
    }, 600);
  } catch (error) {
    if (state.selected === ext) setMessage(message, `Not saved: ${error.detail}`, 'error');
  } finally {
    button.disabled = false;
  }
}

async function saveLineGroup(event) {
  event.preventDefault();
  const ext = state.selected;
  if (!ext) return;
  const input = $('line-group');
  const message = $('line-group-message');
  const button = $('line-group-save');
  button.disabled = true;
  setMessage(message, 'Saving…');
  try {
    const line = await api(accountPath(`/lines/${encodeURIComponent(ext)}`), {
      method: 'PATCH',
      body: { group: input.value },
    });
    if (line) state.lines.set(ext, line);
    if (state.selected !== ext) return;
    input.removeAttribute('aria-invalid');
    renderPanel();
    setMessage(message, `Saved. ${lineLabel(ext)} is now in group ${(line && line.group) || input.value}.`, 'success');
    fillLineSelects();
  } catch (error) {
    if (state.selected !== ext) return;
    if (error.status === 400) input.setAttribute('aria-invalid', 'true');
    setMessage(message, `Not saved: ${error.detail}`, 'error');
    input.focus();
  } finally {
    button.disabled = false;
  }
}

function filenameFrom(disposition) {
  if (!disposition) return null;
  let m = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(disposition);
  if (m) {
    try {
      return decodeURIComponent(m[2].trim().replace(/^"|"$/g, ''));
    } catch {
      // fall back to the plain parameter
    }
  }
  m = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(disposition);
  if (m) return m[1].replace(/\\(.)/g, '$1');
  m = /filename\s*=\s*([^;]+)/i.exec(disposition);
  return m ? m[1].trim() : null;
}

async function downloadConfig(vendor, button) {
  const ext = state.selected;
  if (!ext || !state.account) return;
  const message = $('line-download-message');
  button.disabled = true;
  setMessage(message, `Preparing the ${VENDOR_NAMES[vendor]} configuration…`);
  try {
    const path = `/provision/${encodeURIComponent(vendor)}/${encodeURIComponent(state.account.id)}/${encodeURIComponent(ext)}`;
    const response = await request(path);
    const blob = await response.blob();
    const fallback = `${vendor}-${state.account.id}-${ext}.${VENDOR_EXTENSIONS[vendor] || 'txt'}`;
    const name = (filenameFrom(response.headers.get('Content-Disposition')) || fallback).replace(/[\\/]/g, '_');
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
    setMessage(message, `Downloaded ${name}.`, 'success');
  } catch (error) {
    setMessage(message, `Download failed: ${error.detail}`, 'error');
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Why is this lamp orange?

function fillLineSelects() {
  const source = state.lines.size ? state.lines : state.lamps;
  const lines = [...source.values()].sort((a, b) =>
    String(a.extension).localeCompare(String(b.extension), undefined, { numeric: true }));
  const fill = (select, fallbackIndex) => {
    const previous = select.value;
    select.replaceChildren(...lines.map((l) => el('option', {
      value: l.extension,
      text: l.name ? `${l.name} (${l.extension})` : String(l.extension),
    })));
    if (lines.some((l) => String(l.extension) === previous)) select.value = previous;
    else if (lines.length) select.value = String(lines[Math.min(fallbackIndex, lines.length - 1)].extension);
  };
  fill($('diagnose-watcher'), 0);
  fill($('diagnose-target'), 1);
  $('diagnose-run').disabled = lines.length === 0;
}

async function runDiagnose(event) {
  event.preventDefault();
  if (!state.account) return;
  const watcher = $('diagnose-watcher').value;
  const target = $('diagnose-target').value;
  const result = $('diagnose-result');
  const status = $('diagnose-status');
  if (!watcher || !target) {
    result.replaceChildren(el('p', { class: 'message', dataset: { kind: 'error' }, text: 'Choose a watcher and a target line.' }));
    return;
  }
  const button = $('diagnose-run');
  button.disabled = true;
  status.textContent = 'Checking…';
  result.setAttribute('aria-busy', 'true');
  try {
    const params = new URLSearchParams({ watcher, target });
    const diagnosis = await api(`${accountPath('/diagnose')}?${params}`);
    result.replaceChildren(...diagnosisView(diagnosis || {}));
    status.textContent = `Explanation ready: ${diagnosis && diagnosis.decision === 'accept' ? 'the subscription is accepted' : 'the subscription is refused'}.`;
  } catch (error) {
    result.replaceChildren(el('p', { class: 'message', dataset: { kind: 'error' }, text: `Could not explain: ${error.detail}` }));
    status.textContent = `Could not explain: ${error.detail}`;
  } finally {
    button.disabled = false;
    result.removeAttribute('aria-busy');
  }
}

function diagnosisView(d) {
  const accepted = d.decision === 'accept';
  const watcher = lineLabel(d.watcher);
  const target = lineLabel(d.target);
  const headline = accepted
    ? `Accepted: ${watcher} can watch ${target}.`
    : `Refused: ${watcher} cannot watch ${target}.`;
  const nodes = [
    el('div', { class: 'verdict', dataset: { decision: accepted ? 'accept' : 'refuse' } },
      icon(accepted ? 'accept' : 'refuse', 'verdict-icon'),
      el('div', null,
        el('p', { class: 'verdict-headline', text: headline }),
        !accepted && (d.status || d.reason)
          ? el('p', { class: 'verdict-sip' }, 'The phone is answered ', el('span', { class: 'mono', text: [d.status, d.reason].filter(Boolean).join(' ') }), '.')
          : null)),
  ];
  if (d.summary) nodes.push(el('p', { class: 'summary', text: d.summary }));
  if (d.live === false) nodes.push(el('p', { class: 'muted', text: 'Read from the stored settings only: live checks (registrations, addresses) were not made.' }));

  const rules = Array.isArray(d.rules) ? d.rules : [];
  if (rules.length) {
    nodes.push(el('h3', { text: 'What was checked' }));
    nodes.push(el('ol', { class: 'rules' }, rules.map(ruleView)));
  }

  const refusals = Array.isArray(d.refusals) ? d.refusals : [];
  nodes.push(el('h3', { text: 'Recent refused attempts for these lines' }));
  nodes.push(table('Recent refused attempts for these lines', ['Time', 'Source', 'Status', 'Reason'],
    refusals.map((r) => [timeElement(r.time), el('span', { class: 'mono', text: String(r.source ?? '') }), String(r.status ?? ''), reasonCell(r)]),
    'No refused attempts are on record for these two lines.'));
  return nodes;
}

function ruleView(rule) {
  const verdict = VERDICT_WORDS[rule.verdict] ? rule.verdict : 'info';
  const extra = [];
  if (rule.source) extra.push(`Setting ${SOURCE_WORDS[rule.source] ? SOURCE_WORDS[rule.source].replace('this line', 'the line') : `from ${rule.source}`}.`);
  if (Array.isArray(rule.watcher_addresses) && rule.watcher_addresses.length) extra.push(`Watcher’s addresses: ${rule.watcher_addresses.join(', ')}.`);
  if (Array.isArray(rule.target_addresses) && rule.target_addresses.length) extra.push(`Target’s addresses: ${rule.target_addresses.join(', ')}.`);
  return el('li', { class: 'rule', dataset: { verdict } },
    el('span', { class: 'rule-verdict' }, icon(verdict, 'rule-icon'), VERDICT_WORDS[rule.verdict] || String(rule.verdict ?? 'Note')),
    el('span', { class: 'rule-text' },
      el('span', { class: 'rule-name', text: RULE_NAMES[rule.rule] || humanize(rule.rule) }),
      rule.detail ? el('span', { class: 'rule-detail', text: rule.detail }) : null,
      extra.length ? el('span', { class: 'rule-detail muted', text: extra.join(' ') }) : null));
}

function humanize(name) {
  const s = String(name ?? '').replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function reasonCell(refusal) {
  const plain = REFUSAL_CODES[refusal.code];
  return el('span', null, String(refusal.reason ?? refusal.code ?? ''), plain ? el('span', { class: 'muted block', text: plain }) : null);
}

// ---------------------------------------------------------------------------------------------
// Recent refusals

async function loadRefusals() {
  if (!state.account) return;
  const token = state.loadToken;
  const status = $('refusals-status');
  const button = $('refusals-refresh');
  button.disabled = true;
  status.textContent = 'Loading…';
  try {
    const data = await api(accountPath('/refusals'));
    if (token !== state.loadToken) return;
    const refusals = data && Array.isArray(data.refusals) ? data.refusals : [];
    $('refusals-table').replaceChildren(table('Recent refused attempts for the account',
      ['Time', 'Request', 'Watcher', 'Target', 'Source', 'Status', 'Reason'],
      refusals.map((r) => [
        timeElement(r.time),
        String(r.method ?? ''),
        lineLabel(r.watcher),
        lineLabel(r.target),
        el('span', { class: 'mono', text: String(r.source ?? '') }),
        String(r.status ?? ''),
        reasonCell(r),
      ]),
      'No refused attempts recently: every phone that asked was let in.'));
    const updated = `Updated ${new Date().toLocaleTimeString()}.`;
    status.textContent = refusals.length
      ? `${refusals.length} refused attempt${refusals.length === 1 ? '' : 's'}, newest first. ${updated}`
      : updated;
  } catch (error) {
    if (token === state.loadToken) status.textContent = `Could not load the refusals: ${error.detail}`;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Start

function wire() {
  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) {
      showSignIn('Enter the admin token.');
      return;
    }
    signIn(token);
  });
  $('sign-out').addEventListener('click', signOut);
  $('account-select').addEventListener('change', (event) => selectAccount(event.target.value));
  $('account-presence-form').addEventListener('submit', saveAccountPresence);
  $('line-close').addEventListener('click', () => closePanel());
  $('line-presence-form').addEventListener('submit', saveLinePresence);
  $('line-group-form').addEventListener('submit', saveLineGroup);
  $('line-group').addEventListener('input', () => {
    $('line-group').removeAttribute('aria-invalid');
    setMessage($('line-group-message'), '');
  });
  $('line-subs-refresh').addEventListener('click', () => {
    if (state.selected) loadSubscriptions(state.selected);
  });
  $('line-diagnose').addEventListener('click', () => {
    const ext = state.selected;
    if (!ext) return;
    $('diagnose-target').value = ext;
    if ($('diagnose-watcher').value === ext) {
      const other = [...$('diagnose-watcher').options].find((o) => o.value !== ext);
      if (other) $('diagnose-watcher').value = other.value;
    }
    closePanel({ restoreFocus: false });
    $('diagnose-heading').scrollIntoView({ block: 'start' });
    $('diagnose-watcher').focus({ preventScroll: true });
  });
  $('line-downloads').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-vendor]');
    if (button) downloadConfig(button.dataset.vendor, button);
  });
  $('line-panel').addEventListener('keydown', (event) => {
    if (event.key === 'Escape') closePanel();
  });
  $('diagnose-form').addEventListener('submit', runDiagnose);
  $('refusals-refresh').addEventListener('click', loadRefusals);
  narrowScreen.addEventListener('change', setOverlay);
  window.addEventListener('hashchange', () => {
    if (takeTokenFromHash()) signIn(sessionStorage.getItem(TOKEN_KEY));
  });
}

function start() {
  wire();
  takeTokenFromHash();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn('');
}

start();
