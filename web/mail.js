// The mailbox: what the SMTP sink caught, live over /api/events, each
// message shown as its reader would see it, with nothing in it running.
import { api, ApiError, el, $, markNav, timeEl, refreshTimes, formatBytes, takeCredential, backoff, wsURL } from '/assets/common.js';

const KEY = 'notifyd.key';
const PAGE = 50;

let key = takeCredential('key', KEY);
let query = '';
// A search's before: and after: dates are this browser's, as in Mailpit's own pages.
function zone() {
	const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
	return tz && /\b(before|after):/i.test(query) ? { tz } : {};
}
let start = 0;
let total = 0;
let generation = 0;
let current = null;		// the ID shown
const rows = new Map();		// ID -> {m, li}
let ws = null;
let attempt = 0;
let pollTimer = null;

const call = (path, opts = {}) => api(path, { ...opts, credential: key });

function showError(msg) {
	const p = $('#error');
	p.textContent = msg || '';
	p.hidden = !msg;
}

function failed(e, what) {
	if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
		$('#needkey').hidden = false;
		showError(key ? 'That API key was refused: ' + e.message : '');
		if (!key) $('#key').focus();
		return;
	}
	showError(what + ': ' + e.message);
}

function addr(a) {
	if (!a) return '';
	return a.Name ? a.Name + ' <' + a.Address + '>' : a.Address;
}

function setCounts(t, unread) {
	total = t;
	$('#counts').textContent = t + (t === 1 ? ' message' : ' messages') + (unread ? ', ' + unread + ' unread' : '');
	document.title = (unread ? '(' + unread + ') ' : '') + 'Mail · notifyd';
}

// ---- the list ----

function row(m) {
	const li = el('li', { class: m.Read ? '' : 'unread', 'data-id': m.ID });
	const b = el('button', { type: 'button', onclick: () => show(m.ID), 'aria-current': m.ID === current ? 'true' : 'false' },
		el('span', { class: 'subj' }, m.Subject || '(no subject)'),
		el('span', { class: 'meta' },
			el('span', {}, addr(m.From)),
			timeEl(m.Created)),
		el('span', { class: 'meta' },
			el('span', {}, 'To ' + (m.To || []).map(addr).join(', ')),
			el('span', {}, (m.Attachments ? '📎 ' + m.Attachments + ' · ' : '') + formatBytes(m.Size))));
	b.setAttribute('aria-label', (m.Read ? '' : 'Unread: ') + (m.Subject || '(no subject)') + ', from ' + addr(m.From));
	li.append(b);
	return li;
}

function place(m, atTop) {
	if (rows.has(m.ID)) return;
	const li = row(m);
	rows.set(m.ID, { m, li });
	if (atTop) $('#msgs').prepend(li); else $('#msgs').append(li);
	$('#empty').hidden = true;
}

function setRead(id, read) {
	const r = rows.get(id);
	if (!r) return;
	r.m.Read = read;
	r.li.classList.toggle('unread', !read);
	r.li.querySelector('button').setAttribute('aria-label', (read ? '' : 'Unread: ') + (r.m.Subject || '(no subject)') + ', from ' + addr(r.m.From));
}

function removeRow(id) {
	const r = rows.get(id);
	if (!r) return;
	r.li.remove();
	rows.delete(id);
	if (current === id) closeViewer();
	$('#empty').hidden = rows.size > 0;
}

async function load(reset) {
	const gen = reset ? ++generation : generation;
	if (reset) start = 0;
	const path = query ? '/api/v1/search?' + new URLSearchParams({ query, ...zone(), start, limit: PAGE })
		: '/api/v1/messages?' + new URLSearchParams({ start, limit: PAGE });
	try {
		const r = await call(path);
		if (gen !== generation) return;
		if (reset) {
			rows.clear();
			$('#msgs').replaceChildren();
		}
		$('#needkey').hidden = true;
		showError('');
		for (const m of r.messages) place(m, false);
		start += r.messages.length;
		const shown = query ? r.messages_count : r.total;
		setCounts(r.total, r.unread);
		$('#more').hidden = start >= shown;
		$('#empty').hidden = rows.size > 0;
		$('#empty').textContent = query ? 'Nothing matches.' : 'No mail yet. Point your application\'s SMTP at the sink.';
		if (reset && !ws) listen();
	} catch (e) {
		failed(e, 'Could not load the mailbox');
	}
}

// ---- one message ----

const TABS = [['html', 'HTML'], ['text', 'Text'], ['headers', 'Headers'], ['raw', 'Raw'], ['attachments', 'Attachments']];

function closeViewer() {
	current = null;
	$('#viewer').hidden = true;
	for (const r of rows.values()) r.li.querySelector('button').setAttribute('aria-current', 'false');
}

async function show(id) {
	current = id;
	for (const [rid, r] of rows) r.li.querySelector('button').setAttribute('aria-current', rid === id ? 'true' : 'false');
	let m;
	try {
		m = await call('/api/v1/message/' + encodeURIComponent(id));
	} catch (e) {
		return failed(e, 'Could not open the message');
	}
	if (current !== id) return;
	setRead(id, true);
	$('#view-h').textContent = m.Subject || '(no subject)';
	const meta = [['From', addr(m.From)], ['To', (m.To || []).map(addr).join(', ')]];
	if (m.Cc && m.Cc.length) meta.push(['Cc', m.Cc.map(addr).join(', ')]);
	if (m.ReplyTo && m.ReplyTo.length) meta.push(['Reply-To', m.ReplyTo.map(addr).join(', ')]);
	meta.push(['Date', m.Date ? new Date(m.Date).toLocaleString() : ''], ['Size', formatBytes(m.Size)]);
	$('#meta').replaceChildren(...meta.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
	const atts = (m.Attachments || []).concat(m.Inline || []);
	const tabs = TABS.filter(([t]) => (t !== 'html' || m.HTML) && (t !== 'attachments' || atts.length));
	$('#tabs').replaceChildren(...tabs.map(([t, label], i) => el('button', {
		type: 'button', role: 'tab', id: 'tab-' + t, 'aria-controls': 'panel-' + t,
		'aria-selected': i === 0 ? 'true' : 'false', tabindex: i === 0 ? '0' : '-1',
		onclick: () => selectTab(t), onkeydown: tabKeys,
	}, label + (t === 'attachments' ? ' (' + atts.length + ')' : ''))));
	$('#panels').replaceChildren(...tabs.map(([t]) => el('div', {
		role: 'tabpanel', id: 'panel-' + t, 'aria-labelledby': 'tab-' + t, tabindex: '0', 'data-tab': t,
	})));
	$('#panels').dataset.id = id;
	panelContent.set('text', () => el('pre', {}, m.Text || '(no text part)'));
	panelContent.set('attachments', () => el('ul', { class: 'attachments' }, atts.map((a) => el('li', {},
		download(id, a), ' ', el('span', { class: 'muted' }, a.ContentType + ', ' + formatBytes(a.Size))))));
	$('#viewer').hidden = false;
	selectTab(tabs[0][0]);
	$('#view-h').focus();
}

const panelContent = new Map();

function download(id, a) {
	const href = '/api/v1/message/' + encodeURIComponent(id) + '/part/' + encodeURIComponent(a.PartID);
	const name = a.FileName || 'part-' + a.PartID;
	if (!key) return el('a', { href, download: name }, name);
	// With an API key the link cannot carry it: fetch, then save what came.
	return el('a', {
		href: '#', onclick: async (ev) => {
			ev.preventDefault();
			const res = await fetch(href, { headers: { Authorization: 'Bearer ' + key } });
			if (!res.ok) return showError('Could not download ' + name);
			const url = URL.createObjectURL(await res.blob());
			const link = el('a', { href: url, download: name });
			link.click();
			setTimeout(() => URL.revokeObjectURL(url), 10000);
		},
	}, name);
}

async function fill(t, panel, id) {
	if (panel.childElementCount) return;
	try {
		if (t === 'html') {
			// No allow-* at all: no script, no form, no same origin; the
			// view's own CSP (sandbox, img-src data:) blocks remote loads.
			const frame = el('iframe', { class: 'html-frame', sandbox: '', title: 'The HTML body', referrerpolicy: 'no-referrer' });
			if (key) frame.srcdoc = await call('/view/' + encodeURIComponent(id) + '.html', { text: true });
			else frame.src = '/view/' + encodeURIComponent(id) + '.html';
			panel.append(frame);
		} else if (t === 'headers') {
			const h = await call('/api/v1/message/' + encodeURIComponent(id) + '/headers');
			panel.append(el('table', { class: 'headers' }, el('tbody', {},
				Object.entries(h).flatMap(([k, vs]) => vs.map((v) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, v)))))));
		} else if (t === 'raw') {
			panel.append(el('pre', {}, await call('/api/v1/message/' + encodeURIComponent(id) + '/raw', { text: true })));
		} else {
			panel.append(panelContent.get(t)());
		}
	} catch (e) {
		failed(e, 'Could not load the ' + t);
	}
}

function selectTab(t) {
	const id = $('#panels').dataset.id;
	for (const b of $('#tabs').children) {
		const on = b.id === 'tab-' + t;
		b.setAttribute('aria-selected', on ? 'true' : 'false');
		b.tabIndex = on ? 0 : -1;
	}
	for (const p of $('#panels').children) {
		p.hidden = p.dataset.tab !== t;
		if (!p.hidden) fill(t, p, id);
	}
}

// Arrow keys, Home and End move between tabs, as the ARIA pattern has it.
function tabKeys(ev) {
	const tabs = [...$('#tabs').children];
	let i = tabs.indexOf(ev.currentTarget);
	if (ev.key === 'ArrowRight') i = (i + 1) % tabs.length;
	else if (ev.key === 'ArrowLeft') i = (i - 1 + tabs.length) % tabs.length;
	else if (ev.key === 'Home') i = 0;
	else if (ev.key === 'End') i = tabs.length - 1;
	else return;
	ev.preventDefault();
	tabs[i].focus();
	selectTab(tabs[i].id.slice(4));
}

// ---- actions ----

async function markUnread() {
	if (!current) return;
	try {
		await call('/api/v1/messages', { method: 'PUT', body: { IDs: [current], Read: false } });
		setRead(current, false);
	} catch (e) {
		failed(e, 'Could not mark unread');
	}
}

// Delete ids, or with none every message the search shows (all without one).
async function del(ids) {
	try {
		if (!ids && query) await call('/api/v1/search?' + new URLSearchParams({ query, ...zone() }), { method: 'DELETE' });
		else await call('/api/v1/messages', { method: 'DELETE', body: ids ? { IDs: ids } : undefined });
		if (ids) ids.forEach(removeRow); else load(true);
	} catch (e) {
		failed(e, 'Could not delete');
	}
}

// Mark read what the search shows (every message without one).
async function readAll() {
	try {
		if (query) await call('/api/v1/messages?' + new URLSearchParams(zone()), { method: 'PUT', body: { Search: query, Read: true } });
		else await call('/api/v1/messages', { method: 'PUT', body: { Read: true } });
		for (const id of rows.keys()) setRead(id, true);
	} catch (e) {
		failed(e, 'Could not mark all read');
	}
}

// ---- live ----

function setConn(state, text) {
	const c = $('#conn');
	c.className = 'conn ' + state;
	c.textContent = text;
}

let refreshTimer = null;
function refreshSoon() {
	clearTimeout(refreshTimer);
	refreshTimer = setTimeout(() => load(true), 300);
}

// /api/events with no credentials works from this machine; with an API
// key (a browser cannot put one on a WebSocket) the page polls instead.
function listen() {
	if (key) return poll();
	const sock = new WebSocket(wsURL('/api/events'));
	ws = sock;
	let opened = false;
	sock.onopen = () => { opened = true; attempt = 0; setConn('live', 'live'); };
	sock.onmessage = (ev) => {
		let m;
		try { m = JSON.parse(ev.data); } catch { return; }
		switch (m.Type) {
		case 'new':
			if (query) refreshSoon();
			else { place(m.Data, true); start++; }
			break;
		case 'delete':
			for (const id of m.Data || []) removeRow(id);
			break;
		case 'truncate':
			rows.clear();
			$('#msgs').replaceChildren();
			closeViewer();
			$('#empty').hidden = false;
			break;
		case 'prune':
			refreshSoon();
			break;
		case 'stats':
			setCounts(m.Data.Total, m.Data.Unread);
			break;
		}
	};
	sock.onclose = () => {
		if (ws !== sock) return;
		ws = null;
		const wait = backoff(attempt++);
		setConn('down', 'reconnecting…');
		setTimeout(() => { listen(); if (opened) load(true); }, wait);
	};
}

function poll() {
	clearTimeout(pollTimer);
	setConn('down', 'updating every 5 s');
	pollTimer = setTimeout(async () => {
		if (!document.hidden) await refreshTop();
		poll();
	}, 5000);
}

// Polling: put what is new at the top, keep the rest.
async function refreshTop() {
	if (query) return load(true);
	try {
		const r = await call('/api/v1/messages?' + new URLSearchParams({ start: 0, limit: PAGE }));
		for (const m of r.messages.slice().reverse()) if (!rows.has(m.ID)) { place(m, true); start++; }
		setCounts(r.total, r.unread);
	} catch (e) {
		failed(e, 'Could not refresh');
	}
}

function init() {
	markNav();
	$('#searchform').addEventListener('submit', (ev) => {
		ev.preventDefault();
		query = $('#q').value.trim();
		closeViewer();
		load(true);
	});
	$('#more').addEventListener('click', () => load(false));
	$('#readall').addEventListener('click', readAll);
	$('#deleteall').addEventListener('click', () => {
		if (confirm(query ? 'Delete every message matching ' + query + '?' : 'Delete all ' + total + ' messages?')) del(null);
	});
	$('#v-unread').addEventListener('click', markUnread);
	$('#v-delete').addEventListener('click', () => current && del([current]));
	$('#keyform').addEventListener('submit', (ev) => {
		ev.preventDefault();
		key = $('#key').value.trim() || null;
		if (key) sessionStorage.setItem(KEY, key);
		if (ws) { const s = ws; ws = null; s.close(); }
		load(true);
	});
	setInterval(() => refreshTimes($('#msgs')), 30000);
	load(true);
}

init();
