// The inbox: one user's notifications, live over /ws, read state synced
// with every other tab and device, and the user's preferences.
import {
	api, ApiError, el, $, markNav, timeEl, refreshTimes, jwtClaims, takeCredential,
	backoff, wsURL,
} from '/assets/common.js';

const TOKEN = 'notifyd.token';
const PAGE = 30;

let token = null;
let user = null;
const items = new Map();	// id -> {n, li}
let nextBefore = null;		// the cursor of the next older page; null: no more
let loading = false;
let generation = 0;		// bumped when the list is reset: stale pages are dropped
let lastId = 0;			// the newest notification id this page has heard of
let ws = null;
let attempt = 0;
let retryTimer = null;
let everConnected = false;
let missed = 0;
let stopped = false;
const seenTypes = new Set();

const filters = () => ({
	type: $('#f-type').value,
	archived: $('#f-box').value === 'archived',
	unread: $('#f-unread').checked,
});

const base = () => '/api/v1/users/' + encodeURIComponent(user);
const call = (path, opts = {}) => api(path, { ...opts, credential: token });

function showError(msg, where = '#error') {
	const p = $(where);
	p.textContent = msg || '';
	p.hidden = !msg;
}

// ---- signing in and out ----

function signinView(msg) {
	stopped = true;
	if (ws) ws.close(1000);
	clearTimeout(retryTimer);
	$('#inbox').hidden = true;
	$('#who').hidden = true;
	$('#signin').hidden = false;
	showError(msg, '#signin-error');
	document.title = 'Inbox · notifyd';
	$('#token').focus();
}

function signIn(t) {
	const c = jwtClaims(t);
	if (!c || typeof c.sub !== 'string') return signinView('That is not a user token (a JWT whose sub is a user id).');
	if (typeof c.exp === 'number' && c.exp * 1000 < Date.now()) {
		sessionStorage.removeItem(TOKEN);
		return signinView('That token expired; ask for a new one.');
	}
	token = t;
	user = c.sub;
	stopped = false;
	sessionStorage.setItem(TOKEN, t);
	$('#signin').hidden = true;
	$('#inbox').hidden = false;
	$('#who').hidden = false;
	$('#username').textContent = user;
	call(base()).then((u) => { if (u.name) $('#username').textContent = u.name; }).catch(() => {});
	connect();
	pushShow();
}

function signOut() {
	sessionStorage.removeItem(TOKEN);
	clearList();
	token = user = null;
	lastId = 0;
	everConnected = false;
	missed = 0;
	$('#missed').hidden = true;
	signinView('');
}

// ---- the list ----

function clearList() {
	generation++;
	items.clear();
	$('#items').replaceChildren();
	nextBefore = null;
	$('#more').hidden = true;
	$('#empty').hidden = true;
}

function matches(n, f = filters()) {
	if (f.type && n.type !== f.type) return false;
	if (f.archived !== Boolean(n.archived_at)) return false;
	if (f.unread && n.read_at) return false;
	return true;
}

function noteType(type) {
	if (seenTypes.has(type)) return;
	seenTypes.add(type);
	const sel = $('#f-type');
	const opts = [...sel.options].slice(1).map((o) => o.value).concat(type).sort();
	const cur = sel.value;
	sel.replaceChildren(el('option', { value: '' }, 'All types'), ...opts.map((t) => el('option', { value: t }, t)));
	sel.value = cur;
	$('#p-knowntypes').append(el('option', { value: type }));
}

function render(n, fresh) {
	const read = Boolean(n.read_at);
	const bodyId = 'body-' + n.id;
	const li = el('li', { class: 'item' + (read ? '' : ' unread') + (fresh ? ' fresh' : ''), 'data-id': n.id });
	const title = el('button', {
		type: 'button', class: 'title', 'aria-expanded': 'false', 'aria-controls': bodyId,
		onclick: () => open(n.id),
	}, n.title || '(no title)');
	// high and urgent stand out; low and normal go unmarked
	const loud = n.priority === 'high' || n.priority === 'urgent';
	li.append(
		el('div', { class: 'head' }, title,
			loud ? el('span', { class: 'prio ' + n.priority }, n.priority) : null,
			el('span', { class: 'type' }, n.type), timeEl(n.created_at)),
		el('p', { class: 'body', id: bodyId }, n.body || ''),
		el('div', { class: 'actions' },
			el('button', { type: 'button', class: 'toggle-read', onclick: () => setRead(n.id, !items.get(n.id).n.read_at) },
				read ? 'Mark unread' : 'Mark read'),
			el('button', { type: 'button', class: 'toggle-archive', onclick: () => setArchived(n.id, !items.get(n.id).n.archived_at) },
				n.archived_at ? 'Unarchive' : 'Archive'),
			n.url ? el('a', { class: 'button', href: n.url, rel: 'noopener noreferrer', target: '_blank', onclick: () => markRead([n.id]) }, 'Open link') : null),
	);
	const prio = loud ? n.priority[0].toUpperCase() + n.priority.slice(1) + ': ' : '';
	title.setAttribute('aria-label', (read ? '' : 'Unread: ') + prio + (n.title || '(no title)'));
	return li;
}

// Put n in the list, newest first; fresh: it arrived live (or while away).
function place(n, fresh) {
	noteType(n.type);
	if (n.id > lastId) lastId = n.id;
	if (items.has(n.id)) {
		update(n);
		return false;
	}
	if (!matches(n)) return false;
	const li = render(n, fresh);
	items.set(n.id, { n, li });
	const list = $('#items');
	let before = null;
	for (const c of list.children) {
		if (Number(c.dataset.id) < n.id) { before = c; break; }
	}
	list.insertBefore(li, before);
	$('#empty').hidden = true;
	return true;
}

// Show n's new state (read, archived) in its row.
function update(n) {
	const it = items.get(n.id);
	if (!it) return;
	it.n = { ...it.n, ...n };
	const read = Boolean(it.n.read_at);
	it.li.classList.toggle('unread', !read);
	it.li.querySelector('.toggle-read').textContent = read ? 'Mark unread' : 'Mark read';
	it.li.querySelector('.toggle-archive').textContent = it.n.archived_at ? 'Unarchive' : 'Archive';
	it.li.querySelector('.title').setAttribute('aria-label', (read ? '' : 'Unread: ') + (it.n.title || '(no title)'));
	if (Boolean(it.n.archived_at) !== filters().archived) remove(n.id);
}

function remove(id) {
	const it = items.get(id);
	if (!it) return;
	const focused = it.li.contains(document.activeElement);
	const next = it.li.nextElementSibling || it.li.previousElementSibling;
	it.li.remove();
	items.delete(id);
	if (focused && next) next.querySelector('.title').focus();
	$('#empty').hidden = items.size > 0 || nextBefore !== null;
}

async function loadPage() {
	if (loading || !token) return;
	loading = true;
	const gen = generation;
	const f = filters();
	const q = new URLSearchParams({ limit: PAGE });
	if (nextBefore) q.set('before', nextBefore);
	if (f.type) q.set('type', f.type);
	if (f.archived) q.set('archived', 'true');
	if (f.unread) q.set('unread', 'true');
	try {
		const page = await call(base() + '/notifications?' + q);
		if (gen === generation) {
			for (const n of page.notifications) place(n, false);
			nextBefore = page.next_before;
			setBadge(page.unread_count);
			showError('');
		}
	} catch (e) {
		if (gen === generation) authFailure(e) || showError('Could not load notifications: ' + e.message);
	} finally {
		loading = false;
	}
	// The list was reset (a filter changed) while this page was on its way:
	// the load the reset asked for was skipped as this one ran, so make it now.
	if (gen !== generation) return loadPage();
	$('#more').hidden = nextBefore === null;
	$('#empty').hidden = items.size > 0 || nextBefore !== null;
	// Keep filling while the end of the list is on screen.
	if (nextBefore !== null && sentinelVisible) loadPage();
}

// One that arrived while the page was offline (created before it came
// back), whichever brought it first: the replay or the resync.
function noteMissed(n, back) {
	if (new Date(n.created_at).getTime() >= back) return;
	missed++;
	const p = $('#missed');
	p.textContent = missed + (missed === 1 ? ' notification' : ' notifications') + ' arrived while this page was offline.';
	p.hidden = false;
}

// After a reconnect: the read and archived state changed while away.
async function resync(back) {
	const f = filters();
	const q = new URLSearchParams({ limit: Math.min(100, Math.max(PAGE, items.size)) });
	if (f.type) q.set('type', f.type);
	if (f.archived) q.set('archived', 'true');
	if (f.unread) q.set('unread', 'true');
	try {
		const page = await call(base() + '/notifications?' + q);
		const got = new Set(page.notifications.map((n) => n.id));
		const oldest = page.notifications.length ? page.notifications[page.notifications.length - 1].id : Infinity;
		for (const n of page.notifications) {
			if (items.has(n.id)) update(n);
			else if (place(n, true)) noteMissed(n, back);
		}
		for (const id of [...items.keys()]) {
			if (id >= oldest && !got.has(id) && !f.unread) remove(id);
		}
		setBadge(page.unread_count);
	} catch (e) {
		authFailure(e);
	}
}

function setBadge(count) {
	const b = $('#badge');
	b.textContent = String(count);
	b.classList.toggle('zero', count === 0);
	document.title = (count > 0 ? '(' + count + ') ' : '') + 'Inbox · notifyd';
}

function authFailure(e) {
	if (e instanceof ApiError && e.status === 401) {
		sessionStorage.removeItem(TOKEN);
		signinView(e.code === 'token_expired' ? 'Your token expired; sign in again.' : 'The token was refused: ' + e.message);
		return true;
	}
	return false;
}

// ---- actions ----

function applyState(ids, field, value) {
	for (const id of ids) {
		const it = items.get(id);
		if (it) update({ id, [field]: value });
	}
}

async function markRead(ids) {
	const unread = ids.filter((id) => items.get(id) && !items.get(id).n.read_at);
	if (!unread.length) return;
	applyState(unread, 'read_at', new Date().toISOString());
	try {
		const r = await call(base() + '/notifications/read', { method: 'POST', body: { ids: unread } });
		if (typeof r.unread_count === 'number') setBadge(r.unread_count);
	} catch (e) {
		applyState(unread, 'read_at', null);
		authFailure(e) || showError('Could not mark read: ' + e.message);
	}
}

async function setRead(id, read) {
	if (read) return markRead([id]);
	applyState([id], 'read_at', null);
	try {
		const r = await call(base() + '/notifications/' + id + '/unread', { method: 'POST' });
		if (typeof r.unread_count === 'number') setBadge(r.unread_count);
	} catch (e) {
		authFailure(e) || showError('Could not mark unread: ' + e.message);
	}
}

async function setArchived(id, archived) {
	try {
		await call(base() + '/notifications/' + id + '/' + (archived ? 'archive' : 'unarchive'), { method: 'POST' });
		update({ id, archived_at: archived ? new Date().toISOString() : null });
	} catch (e) {
		authFailure(e) || showError('Could not ' + (archived ? 'archive' : 'unarchive') + ': ' + e.message);
	}
}

function open(id) {
	const it = items.get(id);
	if (!it) return;
	const t = it.li.querySelector('.title');
	const expanded = t.getAttribute('aria-expanded') === 'true';
	t.setAttribute('aria-expanded', String(!expanded));
	it.li.classList.remove('fresh');
	markRead([id]);
}

async function readAll() {
	try {
		const r = await call(base() + '/notifications/read_all', { method: 'POST' });
		for (const [id, it] of items) if (id <= r.up_to && !it.n.read_at) update({ id, read_at: new Date().toISOString() });
		setBadge(r.unread_count);
	} catch (e) {
		authFailure(e) || showError('Could not mark all read: ' + e.message);
	}
}

// ---- the stream ----

function setConn(state, text) {
	const c = $('#conn');
	c.className = 'conn ' + state;
	c.textContent = text;
}

function connect() {
	clearTimeout(retryTimer);
	if (stopped) return;
	const q = new URLSearchParams({ token });
	if (everConnected && lastId > 0) q.set('since', lastId);
	const sock = new WebSocket(wsURL('/ws?' + q));
	const connectedAt = Date.now();
	ws = sock;
	let reconnect = everConnected;
	let closedBy = null;
	sock.onmessage = (ev) => {
		let m;
		try { m = JSON.parse(ev.data); } catch { return; }
		const d = m.data || {};
		switch (m.type) {
		case 'connected':
			attempt = 0;
			setConn('live', 'live');
			setBadge(d.unread_count);
			if (!everConnected) {
				everConnected = true;
				if (d.last_id > lastId) lastId = d.last_id;
				clearList();
				loadPage();
			} else if (reconnect && d.last_id < lastId) {
				// Another history (a database restored from a backup, or made
				// anew): what this page holds is not in it. Start over.
				lastId = d.last_id;
				clearList();
				loadPage();
			} else if (reconnect) {
				resync(connectedAt);
			}
			break;
		case 'notification':
			if (place(d, true) && reconnect) noteMissed(d, connectedAt);
			break;
		case 'read':
			applyState(d.ids || [], 'read_at', new Date().toISOString());
			break;
		case 'unread':
			applyState(d.ids || [], 'read_at', null);
			break;
		case 'archived':
			applyState(d.ids || [], 'archived_at', new Date().toISOString());
			break;
		case 'unarchived':
			applyState(d.ids || [], 'archived_at', null);
			if (filters().archived) for (const id of d.ids || []) remove(id);
			break;
		case 'read_all':
			for (const [id, it] of items) if (id <= d.up_to && !it.n.read_at) update({ id, read_at: new Date().toISOString() });
			break;
		case 'deleted':
			remove(d.id);
			break;
		case 'unread_count':
			setBadge(d.count);
			break;
		case 'error':
			if (d.code === 'token_expired') closedBy = 'expired';
			break;
		}
	};
	sock.onclose = (ev) => {
		if (ws !== sock || stopped) return;
		ws = null;
		if (ev.code === 4001 || closedBy === 'expired') {
			sessionStorage.removeItem(TOKEN);
			return signinView('Your token expired; sign in again.');
		}
		if (!everConnected) {
			// Refused before the upgrade (401 and the like): ask the REST API why.
			call(base() + '/unread_count').catch((e) => authFailure(e));
		}
		const wait = backoff(attempt++);
		const until = Date.now() + wait;
		const tick = () => {
			const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
			setConn('down', 'reconnecting in ' + s + ' s…');
			if (Date.now() < until) retryTimer = setTimeout(tick, 250);
			else connect();
		};
		tick();
		reconnect = true;
	};
}

// ---- preferences ----

const CHANNELS = [['in_app', 'In the app'], ['email', 'Email']];

function triSelect(label, value) {
	const s = el('select', { 'aria-label': label },
		el('option', { value: '' }, 'Default'), el('option', { value: 'on' }, 'On'), el('option', { value: 'off' }, 'Off'));
	s.value = value === true ? 'on' : value === false ? 'off' : '';
	return s;
}

function typeRow(type, chans = {}) {
	const name = type === '*' ? 'Every type' : type;
	return el('tr', { 'data-type': type },
		el('th', { scope: 'row' }, name),
		...CHANNELS.map(([ch, label]) => el('td', {}, triSelect(label + ' for ' + name, chans[ch]))));
}

let prefsTz = '';

async function openPrefs() {
	showError('', '#prefs-error');
	$('#prefs-status').textContent = '';
	$('#prefs').showModal();
	try {
		const [p, u] = await Promise.all([call(base() + '/preferences'), call(base()).catch(() => ({}))]);
		fillPrefs(p);
		prefsTz = u.tz || '';
		$('#p-tz').value = prefsTz;
	} catch (e) {
		authFailure(e) || showError('Could not load preferences: ' + e.message, '#prefs-error');
	}
	if (!$('#zones').children.length && Intl.supportedValuesOf) {
		$('#zones').append(...Intl.supportedValuesOf('timeZone').map((z) => el('option', { value: z })));
	}
}

function fillPrefs(p) {
	const rows = [typeRow('*', p.channels || {})];
	const types = new Set([...Object.keys(p.types || {}), ...seenTypes]);
	for (const t of [...types].sort()) rows.push(typeRow(t, (p.types || {})[t] || {}));
	$('#p-types').replaceChildren(...rows);
	const q = p.quiet_hours;
	$('#p-quiet').checked = Boolean(q);
	if (q) {
		$('#p-qstart').value = q.start;
		$('#p-qend').value = q.end;
		const days = new Set(q.days && q.days.length ? q.days : ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);
		for (const d of document.querySelectorAll('input[name="day"]')) d.checked = days.has(d.value);
	}
	for (const r of document.querySelectorAll('input[name="digest"]')) r.checked = r.value === (p.digest || 'off');
	const eiu = $('#p-eiu');
	const v = p.email_if_unread || '';
	if (![...eiu.options].some((o) => o.value === v)) eiu.append(el('option', { value: v }, v));
	eiu.value = v;
}

function prefsDoc() {
	const doc = { channels: {}, types: {} };
	for (const tr of $('#p-types').children) {
		const t = tr.dataset.type;
		const sels = tr.querySelectorAll('select');
		const chans = {};
		CHANNELS.forEach(([ch], i) => { if (sels[i].value) chans[ch] = sels[i].value === 'on'; });
		if (t === '*') doc.channels = chans;
		else if (Object.keys(chans).length) doc.types[t] = chans;
	}
	if ($('#p-quiet').checked) {
		const days = [...document.querySelectorAll('input[name="day"]:checked')].map((d) => d.value);
		doc.quiet_hours = { start: $('#p-qstart').value, end: $('#p-qend').value, days };
	} else {
		doc.quiet_hours = null;
	}
	doc.digest = document.querySelector('input[name="digest"]:checked').value;
	doc.email_if_unread = $('#p-eiu').value || null;
	return doc;
}

async function savePrefs(ev) {
	ev.preventDefault();
	showError('', '#prefs-error');
	const status = $('#prefs-status');
	status.textContent = 'Saving…';
	$('#prefs-save').disabled = true;
	try {
		const tz = $('#p-tz').value.trim();
		if (tz !== prefsTz) {
			await call(base(), { method: 'PUT', body: { tz } });
			prefsTz = tz;
		}
		const r = await call(base() + '/preferences', { method: 'PUT', body: prefsDoc() });
		fillPrefs(r);
		let msg = 'Saved.';
		if (r.digest_sent && r.digest_sent.items > 0) msg += ' What was waiting for your digest was sent now.';
		status.textContent = msg;
	} catch (e) {
		status.textContent = '';
		authFailure(e) || showError('Not saved: ' + e.message, '#prefs-error');
	} finally {
		$('#prefs-save').disabled = false;
	}
}

function addType() {
	const input = $('#p-newtype');
	const t = input.value.trim();
	if (!t) return;
	if (![...$('#p-types').children].some((tr) => tr.dataset.type === t)) $('#p-types').append(typeRow(t));
	input.value = '';
	$('#p-types').lastElementChild.querySelector('select').focus();
}

// ---- Web Push: this browser, even with the tab closed ----

function b64uBytes(s) {
	const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - s.length % 4) % 4));
	return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function pushButton(on) {
	const b = $('#push-enable');
	b.hidden = false;
	b.disabled = on;
	b.textContent = on ? 'Notifications on in this browser' : 'Notify me in this browser';
}

// Show the button where the browser can push; say so when this one already does.
async function pushShow() {
	if (!('serviceWorker' in navigator) || !('PushManager' in window)) return;
	try {
		const reg = await navigator.serviceWorker.register('/sw.js');
		const sub = await reg.pushManager.getSubscription();
		const on = sub !== null && Notification.permission === 'granted';
		// This browser pushes for whoever signed in last.
		if (on) await call(base() + '/push_subscriptions', { method: 'POST', body: sub.toJSON() });
		pushButton(on);
	} catch (e) {
		// No service worker here (a plain-HTTP origin that is not localhost): no button.
	}
}

async function pushEnable() {
	try {
		if (await Notification.requestPermission() !== 'granted')
			return showError('This browser blocks notifications from this site; allow them in its site settings.');
		const { public_key: key } = await api('/api/v1/push/vapid_public_key');
		const reg = await navigator.serviceWorker.register('/sw.js');
		let sub = await reg.pushManager.getSubscription();
		if (sub === null)
			sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64uBytes(key) });
		await call(base() + '/push_subscriptions', { method: 'POST', body: sub.toJSON() });
		pushButton(true);
	} catch (e) {
		if (!authFailure(e)) showError('Could not turn on notifications: ' + e.message);
	}
}

// ---- wiring ----

let sentinelVisible = false;

function init() {
	markNav();
	$('#signin-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		const t = $('#token').value.trim();
		$('#token').value = '';
		if (t) signIn(t);
	});
	$('#signout').addEventListener('click', signOut);
	$('#more').addEventListener('click', () => loadPage());
	$('#read-all').addEventListener('click', readAll);
	for (const id of ['#f-type', '#f-box', '#f-unread']) {
		$(id).addEventListener('change', () => { clearList(); loadPage(); });
	}
	$('#filters').addEventListener('submit', (ev) => ev.preventDefault());
	$('#prefs-open').addEventListener('click', openPrefs);
	$('#push-enable').addEventListener('click', pushEnable);
	$('#prefs-close').addEventListener('click', () => $('#prefs').close());
	$('#prefs-form').addEventListener('submit', savePrefs);
	$('#p-addtype').addEventListener('click', addType);
	$('#p-newtype').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') { ev.preventDefault(); addType(); } });
	new IntersectionObserver((entries) => {
		sentinelVisible = entries.some((e) => e.isIntersecting);
		if (sentinelVisible && nextBefore !== null && !loading && token) loadPage();
	}, { rootMargin: '400px' }).observe($('#sentinel'));
	setInterval(() => refreshTimes($('#items')), 30000);
	window.addEventListener('hashchange', () => {
		const t = takeCredential('token', TOKEN);
		if (t && t !== token) {
			signOut();
			signIn(t);
		}
	});
	const t = takeCredential('token', TOKEN);
	if (t) signIn(t); else signinView('');
}

init();
