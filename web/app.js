// app.js - the outpost web console (docs/console.md).
//
// A client of the admin JSON API (docs/api.md) and of /metrics, nothing more:
// whatever the page does, a script can do with the same requests. Pages are
// hash routes (#/, #/queue, #/message/ID, #/history, #/tls) drawn into <main>
// with DOM calls only (no innerHTML: every string from the daemon is text).
'use strict';

const $ = (sel) => document.querySelector(sel);
const S = {
	user: null, csrf: null, // the session (docs/api.md, "Sessions"): its cookie is HttpOnly, the token is ours
	sample: null,        // the last /metrics sample, for rates
	timer: null,         // the overview's refresh
	// Cursors of the paged listings (docs/api.md, "Pages"): the start of each
	// page seen, for Previous, and the filters they belong to (a cursor is
	// only valid with the filters and order it came with).
	queue: {key: null, pages: [null], page: 0},
	history: {key: null, pages: [null], page: 0},
};
const STATES = ['queued', 'held', 'deferred', 'delivered', 'failed'];
const ICON = {queued: '○', held: '‖', deferred: '↻', delivered: '✓', failed: '✗', pending: '…', yes: '✓', no: '✗'};
// Which recipients an action changes (docs/queue.md, "Queue administration").
const ACTS = {
	hold: {states: ['queued', 'deferred'], verb: 'Hold', done: 'held'},
	release: {states: ['held'], verb: 'Release', done: 'released'},
	kick: {states: ['queued', 'deferred'], verb: 'Kick', done: 'made due now'},
	drop: {states: ['queued', 'held', 'deferred'], verb: 'Drop', done: 'dropped'},
};

// ---- DOM and formatting ----

function h(tag, attrs, ...kids) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false) continue;
		if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
		else el.setAttribute(k === 'cls' ? 'class' : k, v === true ? '' : v);
	}
	for (const kid of kids.flat(Infinity))
		if (kid !== null && kid !== undefined && kid !== false) el.append(kid instanceof Node ? kid : String(kid));
	return el;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
const badge = (state) => h('span', {cls: `st st-${state}`}, h('span', {'aria-hidden': 'true'}, ICON[state] || '•'), ' ', state);
const domainOf = (addr) => addr.slice(addr.lastIndexOf('@') + 1).toLowerCase();

// Local time shown, UTC on hover.
function when(iso) {
	if (!iso) return h('span', {cls: 'muted'}, '—');
	const d = new Date(iso);
	if (isNaN(d)) return iso;
	return h('time', {datetime: iso, title: `${d.toISOString().replace('.000Z', 'Z')} UTC`}, d.toLocaleString());
}

function ago(iso) {
	const s = Math.max(0, (Date.now() - new Date(iso)) / 1000);
	if (s < 90) return `${Math.round(s)} s`;
	if (s < 5400) return `${Math.round(s / 60)} min`;
	if (s < 172800) return `${Math.round(s / 3600)} h`;
	return `${Math.round(s / 86400)} d`;
}

function size(n) {
	if (n < 1024) return `${n} B`;
	if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
	return `${(n / 1048576).toFixed(1)} MiB`;
}

// A table that becomes cards on a phone: each cell carries its column name.
// A row is its cells, or {attrs, cells}.
function table(cols, rows, cls) {
	const label = (c) => (typeof c === 'string' ? c : '');
	return h('table', {cls: `stack ${cls || ''}`},
		h('thead', {}, h('tr', {}, cols.map((c) => h('th', {scope: 'col'}, c)))),
		h('tbody', {}, rows.map((r) => h('tr', r.attrs || {}, (r.cells || r).map((cell, i) =>
			h('td', {'data-label': label(cols[i]), cls: cols[i] === 'Size' ? 'num' : null}, h('div', {}, cell)))))));
}

// The last reply: an error unless the recipient was delivered.
const lastReply = (r) => (r.last_error ? h('span', {cls: r.state === 'delivered' ? 'wrap' : 'err'}, r.last_error) : '');

function notify(text, error) {
	$('#notice-text').textContent = text;
	$('#notice').className = error ? 'error' : '';
	$('#notice').setAttribute('role', error ? 'alert' : 'status');
	$('#notice').hidden = false;
}

function show(...kids) {
	const main = $('#main');
	main.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
	return main;
}

function confirmAction(text) {
	return new Promise((resolve) => {
		const d = $('#confirm');
		$('#confirm-text').textContent = text;
		d.returnValue = '';
		d.addEventListener('close', () => resolve(d.returnValue === 'yes'), {once: true});
		d.showModal();
	});
}

// ---- the API ----

class ApiError extends Error {
	constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
	const headers = {Accept: 'application/json'};
	if (body !== undefined) headers['Content-Type'] = 'application/json';
	if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
	let res;
	try {
		res = await fetch(path, {method, headers, credentials: 'same-origin', cache: 'no-store',
			body: body === undefined ? undefined : JSON.stringify(body)});
	} catch (e) {
		throw new ApiError(0, `cannot reach the daemon (${e.message})`);
	}
	const text = await res.text();
	let data = text;
	if ((res.headers.get('Content-Type') || '').startsWith('application/json'))
		try { data = JSON.parse(text); } catch (e) { /* keep the text */ }
	if (res.ok) return data;
	const err = new ApiError(res.status, (data && data.error) || `HTTP ${res.status}`);
	// The daemon sends no Basic challenge with the session cookie (docs/api.md),
	// so an ended session is ours to notice: bring back the login form.
	if (res.status === 401 && !path.startsWith('/api/v1/session')) {
		S.user = S.csrf = null;
		loginPage('Your session has ended: log in again.');
	}
	throw err;
}

// ---- login (sessions: docs/api.md, "Sessions") ----

async function boot() {
	try {
		setSession(await api('GET', '/api/v1/session'));
	} catch (e) {
		if (e.status === 401) return loginPage();
		return show(h('p', {cls: 'err'}, `Cannot start: ${e.message}`));
	}
	route();
}

function setSession(s) {
	S.user = s.user;
	S.csrf = s.csrf;
}

function frame(loggedIn) {
	$('#nav').hidden = !loggedIn;
	$('#who').hidden = !loggedIn;
	$('#who-name').textContent = S.user ? `${S.user} ·` : '';
}

function loginPage(message) {
	clearInterval(S.timer);
	frame(false);
	const user = h('input', {name: 'user', autocomplete: 'username', required: true, autofocus: true});
	const pass = h('input', {name: 'password', type: 'password', autocomplete: 'current-password', required: true});
	const out = h('p', {cls: message ? 'err' : 'muted', role: 'alert', id: 'login-result'}, message || '');
	const button = h('button', {cls: 'primary', type: 'submit'}, 'Log in');
	const form = h('form', {cls: 'login', id: 'login'}, h('h1', {}, 'Log in'),
		h('label', {}, 'User', user), h('label', {}, 'Password', pass), button, out);
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		button.disabled = true;
		out.className = 'muted';
		out.textContent = 'Checking…';
		try {
			setSession(await api('POST', '/api/v1/session', {user: user.value, password: pass.value}));
			notify(`Logged in as ${S.user}.`);
			route();
		} catch (e) {
			out.className = 'err';
			out.textContent = e.status === 401 ? 'Wrong user or password.'
				: e.status === 429 ? 'Too many failed attempts: wait a while, then try again.'
				: `Cannot log in: ${e.message}`;
			pass.value = '';
			button.disabled = false;
		}
	});
	show(form);
	user.focus();
}

async function logout() {
	try {
		await api('DELETE', '/api/v1/session');
		notify('Logged out.');
	} catch (e) {
		notify(`Logout failed: ${e.message}`, true);
	}
	S.user = S.csrf = null;
	loginPage();
}

// ---- routing ----

const ROUTES = {'': overviewPage, queue: queuePage, message: messagePage, history: historyPage, tls: tlsPage};

function route() {
	if (!S.user) return loginPage();
	clearInterval(S.timer);
	frame(true);
	const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
	const [name, arg] = path.split('/');
	const params = new URLSearchParams(query || '');
	document.querySelectorAll('#nav a').forEach((a) => a.toggleAttribute('aria-current', false));
	const link = document.querySelector(`#nav a[href="#/${name === 'message' ? 'queue' : name}"]`);
	if (link) link.setAttribute('aria-current', 'page');
	const page = ROUTES[name] || overviewPage;
	const main = $('#main');
	main.dataset.ready = ''; // set when the page is drawn (the browser test waits for it)
	page(params, arg && decodeURIComponent(arg)).catch((e) => {
		if (e.status === 401) return; // the login form is shown
		show(h('h1', {}, 'Error'), h('p', {cls: 'err'}, e.message));
	}).finally(() => { main.dataset.ready = location.hash || '#/'; });
}

function go(path, params) {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params || {})) if (v) q.set(k, v);
	const hash = `#/${path}${q.toString() ? `?${q}` : ''}`;
	if (location.hash === hash) route();
	else location.hash = hash;
}

// ---- queue listing (GET /api/v1/queue: docs/api.md) ----

// The listing's filters and order, passed to the API as they are: the daemon
// filters and sorts (an unknown value is its 400, shown as it says).
const QUEUE_PARAMS = ['state', 'domain', 'recipient', 'sender', 'older_than', 'newer_than', 'sort'];
// The age choices: a bound on the queue time, in the API's duration syntax.
const AGES = {'': 'any age', 'older_than:10m': 'older than 10 min', 'older_than:1h': 'older than 1 h',
	'older_than:6h': 'older than 6 h', 'older_than:1d': 'older than 1 d', 'older_than:3d': 'older than 3 d',
	'newer_than:10m': 'newer than 10 min', 'newer_than:1h': 'newer than 1 h', 'newer_than:1d': 'newer than 1 d'};
const SORTS = {oldest: 'oldest first', newest: 'newest first'};

// One page: {messages, next} where next is the cursor of the page after, or null.
async function listQueue(f, cursor, limit) {
	const q = new URLSearchParams();
	for (const k of QUEUE_PARAMS) if (f[k]) q.set(k, f[k]);
	q.set('limit', limit);
	if (cursor) q.set('cursor', cursor);
	const d = await api('GET', `/api/v1/queue?${q}`);
	return {messages: d.messages, next: d.next_cursor};
}

// Every message of a filter, up to cap (for counts and the overview).
async function listAll(f, cap) {
	let out = [], cursor = null;
	do {
		const page = await listQueue(f, cursor, Math.min(1000, cap - out.length));
		out = out.concat(page.messages);
		cursor = page.next;
	} while (cursor && out.length < cap);
	return {messages: out, complete: !cursor};
}

// ---- actions ----

function affected(action, messages, match) {
	let n = 0;
	for (const m of messages)
		for (const r of m.recipients)
			if (ACTS[action].states.includes(r.state) && (!match || match(r))) n++;
	return n;
}

// Confirms with the number of recipients, posts, and says what changed.
async function act(action, body, count, what, atLeast) {
	const a = ACTS[action];
	if (count === 0 && !atLeast) {
		notify(`${a.verb}: no recipient ${what} is ${a.states.join(' or ')}; nothing to do.`, true);
		return false;
	}
	if (!await confirmAction(`${a.verb} ${atLeast ? 'at least ' : ''}${plural(count, 'recipient')} ${what}?`)) {
		notify(`${a.verb} cancelled: nothing changed.`);
		return false;
	}
	try {
		const r = await api('POST', `/api/v1/queue/${action}`, body);
		notify(`${plural(r.changed, 'recipient')} ${a.done}.`);
		return true;
	} catch (e) {
		notify(`${a.verb} failed: ${e.message}`, true);
		return false;
	}
}

async function setPaused(paused) {
	try {
		const r = await api('POST', `/api/v1/delivery/${paused ? 'pause' : 'resume'}`, {});
		notify(r.paused ? 'Delivery paused: no new attempts until it is resumed.' : 'Delivery resumed.');
	} catch (e) {
		notify(`Cannot ${paused ? 'pause' : 'resume'} delivery: ${e.message}`, true);
	}
	route();
}

function pauseButton(paused) {
	return h('button', {type: 'button', id: paused ? 'resume' : 'pause', onclick: () => setPaused(!paused)},
		paused ? 'Resume delivery' : 'Pause delivery');
}

// ---- overview ----

function parseMetrics(text) {
	const m = {};
	for (const line of text.split('\n')) {
		const r = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
		if (r) m[r[1] + (r[2] || '')] = Number(r[3]);
	}
	return m;
}

async function sampleMetrics() {
	const res = await fetch('/metrics', {credentials: 'same-origin', cache: 'no-store'});
	if (!res.ok) throw new ApiError(res.status, `/metrics answered ${res.status}`);
	const m = parseMetrics(await res.text());
	const r = (k) => m[`outpost_delivery_recipients_total{result="${k}"}`] || 0;
	return {t: Date.now(), accepted: m.outpost_messages_accepted_total || 0, delivered: r('delivered'),
		deferred: r('deferred'), failed: r('failed'), open: m.outpost_delivery_connections_open || 0};
}

// Per minute, between two samples.
function rates(prev, now) {
	const per = (k) => (((now[k] - prev[k]) * 60000) / (now.t - prev.t)).toFixed(1);
	return {accepted: per('accepted'), delivered: per('delivered'), deferred: per('deferred'), failed: per('failed'), secs: Math.round((now.t - prev.t) / 1000)};
}

const card = (n, k, id) => h('div', {cls: 'card', id}, h('span', {cls: 'n'}, n), h('span', {cls: 'k'}, k));

async function overviewPage() {
	const st = await api('GET', '/api/v1/status');
	const parts = [h('h1', {}, 'Overview')];
	parts.push(h('div', {cls: st.paused ? 'banner' : 'bar'}, st.paused ? h('strong', {}, '‖ Delivery is paused.') : h('span', {}, '▶ Delivery is running.'), pauseButton(st.paused)));
	if (!st.spool_writable) parts.push(h('div', {cls: 'banner bad'}, '✗ The last spool commit failed: the disk may be full or read-only.'));
	parts.push(h('h2', {}, 'Recipients by state'), h('div', {cls: 'cards', id: 'by-state'},
		STATES.map((s) => card(st.recipients[s], h('span', {}, badge(s)), `count-${s}`)),
		card(st.in_flight, 'attempts running')));
	const rateBox = h('div', {cls: 'cards', id: 'rates'}, h('p', {cls: 'muted'}, 'Reading /metrics…'));
	const oldest = h('div', {id: 'oldest'}, h('p', {cls: 'muted'}, 'Loading…'));
	const domains = h('div', {id: 'deferred-domains'}, h('p', {cls: 'muted'}, 'Loading…'));
	parts.push(h('h2', {}, 'Rates'), rateBox, h('h2', {}, 'Oldest message in the queue'), oldest,
		h('h2', {}, 'Domains with the most deferred recipients'), domains,
		h('p', {cls: 'muted'}, `outpost ${st.version} · refreshed every 10 s · `, when(new Date().toISOString())));
	show(parts);
	fillRates(rateBox);
	S.timer = setInterval(() => location.hash.replace(/^#\/?/, '') === '' && !document.querySelector('dialog[open]') && route(), 10000);
	const failed = (box) => (e) => box.replaceChildren(h('p', {cls: 'err'}, `Cannot list the queue: ${e.message}`));
	await listQueue({sort: 'oldest'}, null, 1).then(({messages: [m]}) => oldest.replaceChildren(m
		? h('p', {}, h('a', {href: `#/message/${m.id}`}, m.id), ` from ${m.sender || '<>'}, queued `, when(m.queued),
			` (${ago(m.queued)} ago), `, m.recipients.map((r) => [r.address, ' ', badge(r.state), ' ']))
		: h('p', {}, 'The queue is empty.')), failed(oldest));
	await listAll({state: 'deferred'}, 2000).then((def) => domains.replaceChildren(...[deferredDomains(def)].flat().filter(Boolean)), failed(domains));
}

async function fillRates(box) {
	try {
		let now = await sampleMetrics();
		let prev = S.sample && now.t - S.sample.t >= 1000 ? S.sample : null;
		if (!prev) { // a first visit: a second sample shortly
			await new Promise((ok) => setTimeout(ok, 3000));
			[prev, now] = [now, await sampleMetrics()];
		}
		S.sample = now; // the next refresh's first sample
		const r = rates(prev, now);
		box.replaceChildren(card(r.accepted, 'messages accepted / min', 'rate-accepted'),
			card(r.delivered, 'recipients delivered / min', 'rate-delivered'),
			card(r.deferred, 'recipients deferred / min'), card(r.failed, 'recipients failed / min'),
			card(now.open, 'SMTP connections open', 'connections-open'),
			h('p', {cls: 'muted'}, `over the last ${r.secs} s`));
	} catch (e) {
		box.replaceChildren(h('p', {cls: 'err'}, `Metrics are not available: ${e.message}`));
	}
}

function deferredDomains(def) {
	const by = new Map();
	for (const m of def.messages)
		for (const r of m.recipients) {
			if (r.state !== 'deferred') continue;
			const d = by.get(domainOf(r.address)) || {n: 0, error: '', next: null};
			d.n++;
			if (r.last_error) d.error = r.last_error; // messages come oldest first: the newest error wins
			if (!d.next || r.next_attempt < d.next) d.next = r.next_attempt;
			by.set(domainOf(r.address), d);
		}
	if (!by.size) return h('p', {}, 'No deferred recipients.');
	const top = [...by].sort((a, b) => b[1].n - a[1].n).slice(0, 10);
	return [table(['Domain', 'Deferred', 'Next attempt', 'Last error'], top.map(([d, v]) => [
		h('a', {href: `#/queue?state=deferred&domain=${encodeURIComponent(d)}`}, d), String(v.n), when(v.next), h('span', {cls: 'err'}, v.error)])),
	def.complete ? null : h('p', {cls: 'muted'}, `From the first ${def.messages.length} deferred messages.`)];
}

// ---- queue ----

function queueFilters(params) {
	const f = {};
	for (const k of QUEUE_PARAMS) f[k] = params.get(k) || '';
	f.limit = pageSize(params);
	return f;
}

// Rows per page: the choices, or what the address asks (the API takes 1 to 1000).
function pageSize(params) {
	const n = Math.floor(Number(params.get('limit')));
	return n >= 1 && n <= 1000 ? n : 50;
}

const select = (name, opts, value) => h('select', {name}, Object.entries(opts).map(([v, t]) => h('option', {value: v, selected: v === value}, t)));
const perPage = (limit) => {
	const opts = {25: '25', 50: '50', 100: '100'};
	opts[limit] = String(limit);
	return h('label', {}, 'Per page', select('limit', opts, String(limit)));
};

// Previous and Next over a keyset listing: Next follows next_cursor, Previous
// goes back to the cursor the page before started from (docs/api.md, "Pages").
function pager(p, next, prefix) {
	return [
		h('button', {type: 'button', id: `${prefix}prev`, disabled: p.page === 0, onclick: () => { p.page--; route(); }}, '← Previous'),
		h('span', {id: `${prefix}page`}, `Page ${p.page + 1}`),
		h('button', {type: 'button', id: `${prefix}next`, disabled: !next,
			onclick: () => { p.pages[++p.page] = next; p.pages.length = p.page + 1; route(); }}, 'Next →')];
}

// A listing's cursors belong to its filters: new filters start at page 1.
function pagesFor(p, params) {
	const key = params.toString();
	if (p.key !== key) { p.key = key; p.pages = [null]; p.page = 0; }
	return p.pages[p.page];
}

function filterForm(f) {
	const states = {'': 'pending (queued, held, deferred)'};
	STATES.forEach((s) => { states[s] = s; });
	const age = f.older_than ? `older_than:${f.older_than}` : f.newer_than ? `newer_than:${f.newer_than}` : '';
	const ages = {...AGES};
	if (!(age in ages)) ages[age] = age.replace('_than:', ' than ').replace('_', ' ');
	const form = h('form', {cls: 'filters', id: 'filters'},
		h('label', {}, 'State', select('state', states, f.state)),
		h('label', {}, 'Recipient domain', h('input', {name: 'domain', value: f.domain, placeholder: 'example.net', autocapitalize: 'off'})),
		h('label', {}, 'Recipient', h('input', {name: 'recipient', value: f.recipient, inputmode: 'email', autocapitalize: 'off'})),
		h('label', {}, 'Sender', h('input', {name: 'sender', value: f.sender, inputmode: 'email', autocapitalize: 'off', placeholder: 'a@example.org, or <>'})),
		h('label', {}, 'Age', select('age', ages, age)),
		h('label', {}, 'Order', select('sort', SORTS, f.sort || 'oldest')),
		perPage(f.limit),
		h('button', {type: 'submit', cls: 'primary'}, 'Show'));
	form.addEventListener('submit', (ev) => {
		ev.preventDefault();
		const v = Object.fromEntries(new FormData(form));
		if (v.age) { const [k, d] = v.age.split(':'); v[k] = d; }
		delete v.age;
		if (v.sort === 'oldest') delete v.sort; // the API's default
		for (const k of ['domain', 'recipient', 'sender']) v[k] = v[k].trim();
		go('queue', v);
	});
	return form;
}

async function queuePage(params) {
	const f = queueFilters(params);
	const p = S.queue;
	const cursor = pagesFor(p, params);
	const [st, list] = await Promise.all([api('GET', '/api/v1/status'), listQueue(f, cursor, f.limit).catch((e) => e)]);
	if (list instanceof Error) {
		if (list.status !== 400) throw list;
		// A filter the daemon refuses (a malformed address or domain): say so by the form.
		return show(h('h1', {}, 'Queue'), filterForm(f), h('p', {cls: 'err', id: 'filter-error'}, `The daemon refused this filter: ${list.message}`));
	}
	const selected = new Set();
	const actionBar = h('div', {cls: 'bar', id: 'actions'});
	const count = h('span', {id: 'selected-count', cls: 'grow'});
	const boxes = [];
	const refreshBar = () => {
		count.textContent = selected.size ? `${plural(selected.size, 'message')} selected` : 'Select messages to act on them';
		actionBar.querySelectorAll('button[data-act]').forEach((b) => { b.disabled = !selected.size; });
	};
	const rows = list.messages.map((m) => {
		const box = h('input', {type: 'checkbox', 'aria-label': `select ${m.id}`, value: m.id});
		boxes.push(box);
		box.addEventListener('change', () => {
			if (box.checked) selected.add(m.id); else selected.delete(m.id);
			box.closest('tr').classList.toggle('selected', box.checked);
			refreshBar();
		});
		return {attrs: {id: `m-${m.id}`}, cells: [box, h('a', {href: `#/message/${m.id}`, cls: 'mono'}, m.id),
			[when(m.queued), h('span', {cls: 'muted'}, ` (${ago(m.queued)})`)], h('span', {cls: 'wrap'}, m.sender || '<>'), size(m.size),
			m.recipients.map((r) => h('span', {cls: 'rcpt'}, h('span', {cls: 'wrap'}, r.address), ' ', badge(r.state),
				` ${plural(r.attempts, 'attempt')}`, r.next_attempt && r.state !== 'held' ? [' · next ', when(r.next_attempt)] : '', lastReply(r)))]};
	});
	const all = h('input', {type: 'checkbox', 'aria-label': 'select all on this page', id: 'select-all'});
	all.addEventListener('change', () => boxes.forEach((b) => { if (b.checked !== all.checked) b.click(); }));
	const chosen = () => list.messages.filter((m) => selected.has(m.id));
	for (const action of Object.keys(ACTS))
		actionBar.append(h('button', {type: 'button', 'data-act': action, cls: action === 'drop' ? 'danger' : '',
			onclick: async () => {
				const ms = chosen();
				if (await act(action, {ids: ms.map((m) => m.id)}, affected(action, ms), `in ${plural(ms.length, 'selected message')}`)) route();
			}}, ACTS[action].verb));
	actionBar.prepend(count);
	const parts = [h('h1', {}, 'Queue'), st.paused ? h('div', {cls: 'banner'}, h('strong', {}, '‖ Delivery is paused.'), pauseButton(true)) : h('div', {cls: 'bar'}, pauseButton(false)),
		filterForm(f), actionBar, bulkBar(f)];
	parts.push(list.messages.length
		? table([all, 'Queue id', 'Queued', 'Sender', 'Size', 'Recipients'], rows, 'queue')
		: h('p', {id: 'empty'}, 'No message matches.'));
	parts.push(h('div', {cls: 'bar', id: 'pager'}, pager(p, list.next, ''), h('button', {type: 'button', onclick: route}, 'Refresh')));
	show(parts);
	refreshBar();
}

// Actions on everything the filter selects: the API's selectors are the
// recipient domain and address, so only such a filter can be acted on whole.
function bulkBar(f) {
	if (!(f.domain || f.recipient) || f.state || f.sender || f.older_than || f.newer_than) return null;
	const what = [f.domain && `at ${f.domain}`, f.recipient && `for ${f.recipient}`].filter(Boolean).join(' ');
	const body = {};
	if (f.domain) body.domain = f.domain;
	if (f.recipient) body.recipient = f.recipient;
	const match = (r) => (!f.domain || domainOf(r.address) === f.domain.toLowerCase()) &&
		(!f.recipient || r.address.toLowerCase() === f.recipient.toLowerCase());
	return h('div', {cls: 'bar', id: 'bulk'}, h('span', {cls: 'grow'}, `Every recipient ${what}:`),
		Object.keys(ACTS).map((action) => h('button', {type: 'button', 'data-bulk': action, cls: action === 'drop' ? 'danger' : '',
			onclick: async () => {
				const every = await listAll({domain: f.domain, recipient: f.recipient}, 10000);
				if (await act(action, body, affected(action, every.messages, match), what, !every.complete)) route();
			}}, `${ACTS[action].verb} all`)));
}

// ---- one message ----

async function messagePage(params, id) {
	const m = await api('GET', `/api/v1/queue/${encodeURIComponent(id)}`);
	const raw = `/api/v1/queue/${encodeURIComponent(m.id)}/raw`;
	const flags = ['requiretls', 'tls_required_no', 'eightbit', 'smtputf8', 'dsn'].filter((k) => m[k]);
	const headers = h('pre', {id: 'headers'}, 'Loading…');
	const actions = h('div', {cls: 'bar', id: 'message-actions'}, Object.keys(ACTS).map((action) =>
		h('button', {type: 'button', 'data-act': action, cls: action === 'drop' ? 'danger' : '',
			onclick: async () => { if (await act(action, {ids: [m.id]}, affected(action, [m]), `of message ${m.id}`)) route(); }},
		ACTS[action].verb)), m.done ? null : h('a', {cls: 'button', href: raw, download: `${m.id}.eml`, id: 'download'}, 'Download the message'));
	show(h('h1', {}, 'Message ', h('span', {cls: 'mono'}, m.id)), actions,
		h('h2', {}, 'Envelope'),
		h('dl', {cls: 'kv', id: 'envelope'},
			h('dt', {}, 'Sender'), h('dd', {}, m.sender || '<> (null sender)'),
			h('dt', {}, 'Size'), h('dd', {}, `${size(m.size)} (${m.size} octets)`),
			h('dt', {}, 'Queued'), h('dd', {}, when(m.queued)),
			h('dt', {}, 'Finished'), h('dd', {}, m.done ? when(m.done) : 'no: recipients are pending'),
			h('dt', {}, 'From'), h('dd', {}, m.client || '—', m.auth_user ? ` (logged in as ${m.auth_user})` : ''),
			h('dt', {}, 'Flags'), h('dd', {}, flags.length ? flags.join(', ') : 'none')),
		h('h2', {}, 'Recipients'),
		table(['Recipient', 'State', 'Attempts', 'Last attempt', 'Next attempt', 'Last reply'], m.recipients.map((r) => [
			h('span', {cls: 'wrap'}, r.address), [badge(r.state), r.in_flight ? ' (attempt running)' : ''], String(r.attempts),
			when(r.last_attempt), r.state === 'held' ? 'held' : when(r.next_attempt), lastReply(r)]), 'recipients'),
		h('h2', {}, 'Attempts'),
		m.attempts.length ? attemptsTable(m.attempts) : h('p', {}, 'No attempt yet.'),
		h('h2', {}, 'Headers'), headers);
	readHeaders(raw, headers);
}

function tlsCell(a) {
	if (!a.tls_version) return h('span', {cls: 'muted'}, a.mx ? 'no TLS' : '—');
	return [`${a.tls_version} ${a.tls_cipher || ''}`, h('br'), `policy ${a.tls_policy || 'none'}, ${a.tls_verified || 'unverified'}`,
		a.tls_detail ? h('span', {cls: 'muted wrap'}, [h('br'), a.tls_detail]) : ''];
}

function attemptsTable(attempts) {
	return table(['Time', 'Recipient', 'MX host', 'IP', 'TLS', 'Result', 'Reply'], attempts.map((a) => [
		[when(a.time), h('span', {cls: 'muted'}, ` ${a.duration_ms} ms`)], h('span', {cls: 'wrap'}, a.recipient || '—'), a.mx || '—', a.ip || '—',
		tlsCell(a), badge(a.result), h('span', {cls: 'wrap'}, a.reply || '')]), 'attempts');
}

// The header section only: read the stream up to the blank line, then stop.
async function readHeaders(url, out) {
	try {
		const res = await fetch(url, {credentials: 'same-origin', cache: 'no-store'});
		if (res.status === 404) return out.replaceChildren('The body is gone: a finished message keeps no body.');
		if (!res.ok) throw new Error(`HTTP ${res.status}`);
		const reader = res.body.getReader(), dec = new TextDecoder();
		let text = '', end = -1;
		for (;;) {
			const {done, value} = await reader.read();
			if (value) text += dec.decode(value, {stream: true});
			if ((end = text.indexOf('\r\n\r\n')) >= 0 || done || text.length > 262144) break;
		}
		reader.cancel();
		out.replaceChildren(end >= 0 ? text.slice(0, end) : text);
	} catch (e) {
		out.replaceChildren(`Cannot read the message: ${e.message}`);
	}
}

// ---- history (GET /api/v1/history: every attempt of the messages the spool keeps) ----

const HISTORY_PARAMS = ['recipient', 'domain', 'id', 'result', 'since', 'sort'];
const SINCE = {'': 'any time', '1h': 'the last hour', '1d': 'the last day', '7d': 'the last 7 days'};

async function historyPage(params) {
	const f = {};
	for (const k of HISTORY_PARAMS) f[k] = params.get(k) || '';
	f.limit = pageSize(params);
	const since = {...SINCE};
	if (!(f.since in since)) since[f.since] = `since ${f.since}`;
	const form = h('form', {cls: 'filters', id: 'history-filters'},
		h('label', {}, 'Recipient', h('input', {name: 'recipient', value: f.recipient, inputmode: 'email', autocapitalize: 'off'})),
		h('label', {}, 'Recipient domain', h('input', {name: 'domain', value: f.domain, placeholder: 'example.net', autocapitalize: 'off'})),
		h('label', {}, 'Queue id', h('input', {name: 'id', value: f.id, autocapitalize: 'characters'})),
		h('label', {}, 'Result', select('result', {'': 'any', delivered: 'delivered', deferred: 'deferred', failed: 'failed'}, f.result)),
		h('label', {}, 'Started in', select('since', since, f.since)),
		h('label', {}, 'Order', select('sort', {newest: 'newest first', oldest: 'oldest first'}, f.sort || 'newest')),
		perPage(f.limit),
		h('button', {type: 'submit', cls: 'primary'}, 'Search'));
	form.addEventListener('submit', (ev) => {
		ev.preventDefault();
		const v = Object.fromEntries(new FormData(form));
		if (v.sort === 'newest') delete v.sort; // the API's default
		for (const k of ['recipient', 'domain', 'id']) v[k] = v[k].trim();
		go('history', v);
	});
	const p = S.history;
	const q = new URLSearchParams();
	for (const k of HISTORY_PARAMS) if (f[k]) q.set(k, f[k]);
	q.set('limit', f.limit);
	const cursor = pagesFor(p, params);
	if (cursor) q.set('cursor', cursor);
	let d;
	try {
		d = await api('GET', `/api/v1/history?${q}`);
	} catch (e) {
		if (e.status !== 400) throw e;
		return show(h('h1', {}, 'Delivery history'), form, h('p', {cls: 'err', id: 'filter-error'}, `The daemon refused this search: ${e.message}`));
	}
	show(h('h1', {}, 'Delivery history'), form,
		d.attempts.length ? table(['Time', 'Queue id', 'Sender', 'Recipient', 'Result', 'MX host / IP', 'TLS', 'Reply'], d.attempts.map((a) => ({
			attrs: {'data-id': a.id}, cells: [
				[when(a.time), a.duration_ms === null ? '' : h('span', {cls: 'muted'}, ` ${a.duration_ms} ms`)],
				h('a', {href: `#/message/${a.id}`, cls: 'mono'}, a.id), h('span', {cls: 'wrap'}, a.sender || '<>'),
				h('span', {cls: 'wrap'}, a.recipient), badge(a.result), [a.mx || '—', h('br'), a.ip || ''],
				tlsCell(a), h('span', {cls: 'wrap'}, a.reply || '')]})), 'history') : h('p', {id: 'empty'}, 'No attempt matches.'),
		h('div', {cls: 'bar', id: 'history-pager'}, pager(p, d.next_cursor, 'history-')),
		h('p', {cls: 'muted'}, 'A message\'s attempts stay for delivery.log_retention after its last recipient is final; a dropped message goes with its attempts.'));
}

// ---- TLS: today's results per policy domain, and outpost check ----

function policyInForce(p) {
	const type = p.policy['policy-type'];
	if (type === 'sts') {
		const mode = (p.policy['policy-string'] || []).find((l) => /^mode:/.test(l));
		return `MTA-STS ${mode ? mode.replace(/^mode:\s*/, '') : ''}`;
	}
	return type === 'tlsa' ? 'DANE (TLSA)' : type === 'no-policy-found' ? 'none (opportunistic TLS)' : type;
}

async function tlsPage(params) {
	const today = new Date().toISOString().slice(0, 10);
	const day = params.get('day') || today;
	const days = [0, 1, 2, 3].map((i) => new Date(Date.now() - i * 86400000).toISOString().slice(0, 10));
	const daySel = h('select', {name: 'day', id: 'day'}, days.map((d) => h('option', {value: d, selected: d === day}, d === today ? `${d} (today, UTC)` : d)));
	daySel.addEventListener('change', () => go('tls', {day: daySel.value}));
	const results = await api('GET', `/api/v1/tlsrpt/results?day=${encodeURIComponent(day)}`);
	const domain = h('input', {name: 'domain', id: 'check-domain', required: true, placeholder: 'example.net', autocapitalize: 'off'});
	const out = h('div', {id: 'check-result'});
	const button = h('button', {type: 'submit', cls: 'primary'}, 'Check');
	const form = h('form', {cls: 'bar', id: 'check-form'}, h('label', {cls: 'grow'}, 'Domain', domain), button);
	form.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		button.disabled = true;
		out.replaceChildren(h('p', {cls: 'muted'}, `Checking ${domain.value}: DNS, MTA-STS and a connection to each MX host; this can take a minute…`));
		try {
			out.replaceChildren(checkReport(await api('GET', `/api/v1/check?domain=${encodeURIComponent(domain.value.trim())}`)));
			notify(`Check of ${domain.value} done.`);
		} catch (e) {
			out.replaceChildren(h('p', {cls: 'err'}, `The check failed: ${e.message}`));
		}
		button.disabled = false;
	});
	show(h('h1', {}, 'TLS'), h('label', {cls: 'narrow'}, 'Day (UTC)', daySel),
		h('h2', {}, 'Results by policy domain'),
		results.length ? table(['Policy domain', 'Policy in force', 'Successful sessions', 'Failed sessions', 'Failures'], results.map((p) => [
			p.policy['policy-domain'], policyInForce(p), String(p.summary['total-successful-session-count']),
			h('span', {cls: p.summary['total-failure-session-count'] ? 'err' : ''}, String(p.summary['total-failure-session-count'])),
			(p['failure-details'] || []).map((f) => h('span', {cls: 'rcpt'}, `${f['result-type']}: ${f['failed-session-count']} × ${f['receiving-mx-hostname'] || ''} ${f['receiving-ip'] || ''}`,
				f['failure-reason-code'] ? h('span', {cls: 'muted'}, ` (${f['failure-reason-code']})`) : ''))]), 'tls-results')
			: h('p', {id: 'no-results'}, `No TLS results recorded on ${day}.`),
		h('h2', {}, 'Check a domain'),
		h('p', {cls: 'muted'}, 'What delivery to the domain would do now, and why (outpost check).'), form, out);
}

function yesNo(v, y, n) {
	return h('span', {cls: `st st-${v ? 'yes' : 'no'}`}, h('span', {'aria-hidden': 'true'}, ICON[v ? 'yes' : 'no']), ` ${v ? y : n}`);
}

function checkReport(r) {
	const mx = r.mx_list || {};
	const sts = r.mta_sts;
	const kv = (...pairs) => h('dl', {cls: 'kv'}, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
	const stsPart = sts ? kv(['MTA-STS record', `${sts.record.status}${sts.record.id ? ` (id ${sts.record.id})` : ''}${sts.record.detail ? `: ${sts.record.detail}` : ''}`],
		sts.fetched && ['Policy fetched now', sts.fetched.policy ? `${sts.fetched.status}: mode ${sts.fetched.policy.mode}, mx ${sts.fetched.policy.mx.join(' ')}` : `${sts.fetched.status} ${sts.fetched.reason || ''}`],
		['Policy cached', sts.cached === null ? 'none' : sts.cached.unavailable ? `unknown (${sts.cached.unavailable})` : `id ${sts.cached.id}, valid until ${sts.cached.valid_until}${sts.cached.valid ? '' : ' (expired)'}`]) : null;
	return h('div', {id: 'check-report'},
		h('p', {}, h('strong', {}, r.domain), ': ', yesNo(r.deliverable, 'delivery would find a host that takes the mail', 'delivery would not deliver now')),
		kv(['MX list', mx.error ? h('span', {cls: 'err'}, mx.error) : [yesNo(mx.dnssec, 'DNSSEC-signed', 'not DNSSEC-signed'), mx.implicit_mx ? ' (no MX: the domain itself)' : '']]), stsPart,
		(r.hosts || []).map((x) => {
			const c = x.connection || {};
			return h('div', {cls: 'host'}, h('h2', {}, `MX ${x.host}`, x.preference >= 0 ? h('span', {cls: 'muted'}, ` preference ${x.preference}`) : ''),
				kv(['Addresses', [(x.addresses || []).join(' ') || '—', ' ', yesNo(x.dnssec, 'DNSSEC', 'no DNSSEC')]],
					x.mta_sts_listed !== undefined && ['Listed by MTA-STS', x.mta_sts_listed ? 'yes' : 'no'],
					['TLSA', x.tlsa ? `${x.tlsa.status}${(x.tlsa.records || []).map((t) => ` · ${t.record}${t.usable ? '' : ' (unusable)'}`).join('')}` : 'not looked up'],
					['Policy', x.policy],
					['Connection', c.tls_version ? `${c.ip}: ${c.tls_version} ${c.tls_cipher}, certificate ${c.verified}${c.dane_match ? ` by ${c.dane_match}` : ''}, PKIX ${c.pkix_valid ? 'valid' : 'not valid'}`
						: `${c.ip || '—'}: ${c.error || 'plaintext'}`],
					c.verification_failure && ['Verification failed', `${c.verification_failure.result_type} ${c.verification_failure.reason}`],
					(c.chain || []).length && ['Certificates', h('span', {}, c.chain.map((k) => h('span', {cls: 'rcpt'}, `${k.subject} (issuer ${k.issuer}, until ${k.not_after})`)))],
					['REQUIRETLS', x.requiretls ? (x.requiretls.qualifies ? 'can be delivered' : x.requiretls.why) : '—'],
					['Decision', h('strong', {}, x.decision)]));
		}));
}

// ---- start ----

$('#notice-close').addEventListener('click', () => { $('#notice').hidden = true; });
$('#logout').addEventListener('click', logout);
window.addEventListener('hashchange', () => { $('#notice').hidden = true; route(); });
boot();
