// The landing page: what is running, refreshed every few seconds while shown.
import { api, ApiError, $, markNav, formatDuration, takeCredential } from '/assets/common.js';

const KEY = 'notifyd.key';
const nf = new Intl.NumberFormat();
let key = takeCredential('key', KEY);
let timer = null;

function set(id, v) {
	const n = $('#' + id);
	if (n.textContent !== v) n.textContent = v;
}

async function refresh() {
	clearTimeout(timer);
	try {
		const s = await api('/api/v1/status', { credential: key });
		$('#needkey').hidden = true;
		$('#error').hidden = true;
		set('version', s.version);
		set('uptime', formatDuration(s.uptime_s));
		set('http', s.listeners.http || 'off');
		set('smtp', s.listeners.smtp || 'off');
		set('control', s.listeners.control);
		set('notifications', nf.format(s.counts.notifications));
		set('users', nf.format(s.counts.users));
		set('mail', nf.format(s.counts.mail));
		set('websockets', nf.format(s.counts.websockets));
		set('online', nf.format(s.counts.users_online));
		set('updated', '');
		document.title = 'notifyd ' + s.version;
	} catch (e) {
		if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
			$('#needkey').hidden = false;
			if (key) showError('That API key was refused: ' + e.message);
			return;
		}
		showError(e.message);
		set('updated', '(not updating)');
	}
	if (!document.hidden) timer = setTimeout(refresh, 3000);
}

function showError(msg) {
	const p = $('#error');
	p.textContent = msg;
	p.hidden = false;
}

markNav();
$('#keyform').addEventListener('submit', (ev) => {
	ev.preventDefault();
	key = $('#key').value.trim();
	if (key) sessionStorage.setItem(KEY, key);
	refresh();
});
document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
refresh();
