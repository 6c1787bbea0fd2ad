// What every page of notifyd shares: calling the API, building DOM from
// data (text only: nothing a user or a sender wrote is parsed as HTML),
// times, and the credentials a page holds for its tab.

export class ApiError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

// Call the API: JSON in, JSON out; an error answer throws ApiError.
export async function api(path, { method = 'GET', body, credential, text = false } = {}) {
	const headers = {};
	if (credential) headers.Authorization = 'Bearer ' + credential;
	if (body !== undefined) headers['Content-Type'] = 'application/json';
	let res;
	try {
		res = await fetch(path, {
			method, headers, body: body === undefined ? undefined : JSON.stringify(body),
			cache: 'no-store', credentials: 'omit',
		});
	} catch (e) {
		throw new ApiError(0, 'network', 'notifyd did not answer (' + e.message + ')');
	}
	if (res.ok && text) return res.text();
	let data = null;
	const type = res.headers.get('Content-Type') || '';
	if (type.startsWith('application/json')) data = await res.json().catch(() => null);
	if (!res.ok) {
		const e = (data && data.error) || {};
		throw new ApiError(res.status, e.code || 'http_' + res.status, e.message || res.statusText);
	}
	return data;
}

// el('li', {class: 'x', onclick: f}, 'text', child...): an element, text as text.
export function el(tag, attrs = {}, ...children) {
	const n = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === undefined || v === null || v === false) continue;
		if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
		else if (k === 'class') n.className = v;
		else if (k === 'text') n.textContent = v;
		else if (k in n && typeof v !== 'string') n[k] = v;
		else n.setAttribute(k, v === true ? '' : String(v));
	}
	for (const c of children.flat()) {
		if (c === undefined || c === null || c === false) continue;
		n.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return n;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// Mark the page's link in the header as the current one.
export function markNav() {
	for (const a of document.querySelectorAll('.bar nav a')) {
		if (a.getAttribute('href') === location.pathname) a.setAttribute('aria-current', 'page');
	}
}

const abs = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

// A <time> showing how long ago iso was, the exact time on hover.
export function timeEl(iso) {
	const d = new Date(iso);
	return el('time', { datetime: iso, title: abs.format(d) }, ago(d));
}

export function ago(d, now = Date.now()) {
	const s = Math.round((d.getTime() - now) / 1000);
	const a = Math.abs(s);
	if (a < 45) return 'just now';
	if (a < 2700) return rel.format(Math.round(s / 60), 'minute');
	if (a < 79200) return rel.format(Math.round(s / 3600), 'hour');
	if (a < 2592000) return rel.format(Math.round(s / 86400), 'day');
	return abs.format(d);
}

// Keep every <time> of root saying the right "ago".
export function refreshTimes(root = document) {
	for (const t of root.querySelectorAll('time[datetime]')) t.textContent = ago(new Date(t.dateTime));
}

export function formatBytes(n) {
	if (n < 1024) return n + ' B';
	if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
	return (n / 1048576).toFixed(1) + ' MiB';
}

export function formatDuration(s) {
	const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
	if (d) return d + 'd ' + h + 'h';
	if (h) return h + 'h ' + m + 'm';
	if (m) return m + 'm ' + (s % 60) + 's';
	return s + 's';
}

// The claims of a JWT, unverified (the server verifies; the page only reads sub and exp).
export function jwtClaims(token) {
	try {
		const p = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
		return JSON.parse(decodeURIComponent(escape(atob(p + '='.repeat((4 - p.length % 4) % 4)))));
	} catch {
		return null;
	}
}

// A credential from the fragment (#token=... or #key=...), taken out of the
// address bar at once, else the one this tab holds.
export function takeCredential(name, storageKey) {
	const frag = new URLSearchParams(location.hash.slice(1));
	const v = frag.get(name);
	if (v) {
		sessionStorage.setItem(storageKey, v);
		frag.delete(name);
		const rest = frag.toString();
		history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
	}
	return sessionStorage.getItem(storageKey);
}

// Retry delays: 0.5 s doubling to 30 s, with jitter so tabs do not reconnect in step.
export function backoff(attempt) {
	const base = Math.min(30000, 500 * 2 ** attempt);
	return Math.round(base / 2 + Math.random() * base / 2);
}

export function wsURL(path) {
	return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
}
