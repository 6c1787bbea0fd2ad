// /inbox in Chromium: sign-in, live arrival, read state across pages,
// reconnection after a restart, preferences, scrolling and filters, 375 px.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, newPage, closeBrowser, finish, shot, test } from './harness.js';

let d;
before(async () => { d = await new Daemon().start(); });
after(async () => { await closeBrowser(); await d.cleanup(); });

const send = (user, title, extra = {}) =>
	d.rest('POST', '/api/v1/notifications', { user, type: 'message', title, body: 'Body of ' + title, ...extra });

async function signedIn(user, opts) {
	const t = await d.token(user);
	const page = await newPage(d, opts);
	await page.goto(d.url + '/inbox#token=' + t);
	await page.waitForSelector('#conn.live');
	return { page, t };
}

const clean = (page, name) => finish(page, d, name);

test('a #token= link signs in, and the token leaves the address bar', async () => {
	await send('ann', 'Welcome');
	const { page, t } = await signedIn('ann');
	assert.equal(await page.textContent('#username'), 'ann');
	await page.waitForSelector('.item >> text=Welcome');
	assert.equal(new URL(page.url()).hash, '', 'the fragment is gone');
	assert.ok(page.requests.every((u) => !u.includes(t)), 'no HTTP request carries the token in its URL');
	// A reload stays signed in (this tab holds it); signing out forgets it.
	await page.reload();
	await page.waitForSelector('#conn.live');
	await page.click('#signout');
	await page.waitForSelector('#signin:not([hidden])');
	await page.reload();
	await page.waitForSelector('#signin:not([hidden])');
	// Pasting the token works too.
	await page.fill('#token', t);
	await page.click('#signin-form button');
	await page.waitForSelector('.item >> text=Welcome');
	await clean(page, 'inbox-signin');
});

test('a bad or expired token is refused with a reason', async () => {
	const page = await newPage(d);
	await page.goto(d.url + '/inbox#token=not-a-jwt');
	await page.waitForSelector('#signin-error:not([hidden])');
	assert.match(await page.textContent('#signin-error'), /not a user token/);
	// Well formed, wrongly signed: the server says no.
	const forged = 'eyJhbGciOiJIUzI1NiJ9.' + Buffer.from(JSON.stringify({ sub: 'ann', exp: 4102444800 })).toString('base64url') + '.AAAA';
	await page.goto(d.url + '/inbox#token=' + forged);
	await page.waitForFunction(() => /refused/.test(document.querySelector('#signin-error').textContent));
	await shot(page, 'inbox-refused');
	// The refusals themselves are console errors (a 401); nothing else is.
	assert.ok(page.errors.every((e) => /401|WebSocket/.test(e)), page.errors.join('\n'));
	await page.ctx.close();
});

test('a notification sent through the REST API appears live, no reload', async () => {
	const { page } = await signedIn('bob');
	let navigations = 0;
	page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
	await page.waitForSelector('#empty:not([hidden])');
	await send('bob', 'Order shipped', { type: 'order_shipped', data: { order_id: 'A1' } });
	await page.waitForSelector('.item.unread >> text=Order shipped');
	assert.equal(await page.textContent('#badge'), '1');
	assert.match(await page.title(), /^\(1\) /);
	assert.equal(navigations, 0);
	// High and urgent ones carry their priority, in sight and in the title's name.
	await send('bob', 'Server down', { priority: 'urgent' });
	await send('bob', 'Disk filling', { priority: 'high' });
	await send('bob', 'Newsletter', { priority: 'low' });
	await page.waitForSelector('.item >> text=Newsletter');
	const prio = (t) => page.evaluate((t) => [...document.querySelectorAll('.item')]
		.find((li) => li.querySelector('.title').textContent === t).querySelector('.prio')?.textContent ?? null, t);
	assert.deepEqual([await prio('Server down'), await prio('Disk filling'), await prio('Newsletter'),
		await prio('Order shipped')], ['urgent', 'high', null, null]);
	await page.waitForSelector('.title[aria-label="Unread: Urgent: Server down"]');
	await clean(page, 'inbox-live');
});

test('opening marks read, the badge follows, and mark unread undoes it', async () => {
	await send('cat', 'One');
	await send('cat', 'Two');
	const { page } = await signedIn('cat');
	await page.waitForFunction(() => document.querySelector('#badge').textContent === '2');
	await page.click('.item >> text=One');
	await page.waitForFunction(() => document.querySelector('#badge').textContent === '1');
	const one = page.locator('.item', { hasText: 'One' });
	assert.equal(await one.evaluate((n) => n.classList.contains('unread')), false);
	assert.equal((await d.rest('GET', '/api/v1/users/cat/unread_count')).unread_count, 1, 'the server agrees');
	await one.locator('.toggle-read').click();
	await page.waitForFunction(() => document.querySelector('#badge').textContent === '2');
	assert.equal((await d.rest('GET', '/api/v1/users/cat/unread_count')).unread_count, 2);
	// Keyboard: Tab reaches the titles, Enter opens.
	await page.focus('.item >> nth=0 >> .title');
	await page.keyboard.press('Enter');
	await page.waitForFunction(() => document.querySelector('#badge').textContent === '1');
	await clean(page, 'inbox-read');
});

test('a read in a second page shows in the first at once', async () => {
	await send('dan', 'Alpha');
	await send('dan', 'Beta');
	const a = await signedIn('dan');
	const b = await signedIn('dan');
	await a.page.waitForFunction(() => document.querySelectorAll('.item.unread').length === 2);
	await b.page.click('.item >> text=Beta');
	await a.page.waitForFunction(() => document.querySelector('#badge').textContent === '1' &&
		!document.querySelector('.item[data-id] .title[aria-label^="Unread: Beta"]'));
	await b.page.click('#read-all');
	await a.page.waitForFunction(() => document.querySelectorAll('.item.unread').length === 0 &&
		document.querySelector('#badge').textContent === '0');
	assert.equal(await a.page.title(), 'Inbox · notifyd');
	await shot(a.page, 'inbox-second-page-b');
	await clean(a.page, 'inbox-second-page-a');
	await b.page.ctx.close();
});

test('after a restart the page reconnects and shows what it missed', async () => {
	await send('eve', 'Before');
	const { page } = await signedIn('eve');
	await page.waitForSelector('.item >> text=Before');
	const before = (await d.rest('GET', '/api/v1/users/eve/notifications')).notifications[0];
	await d.stop();
	await page.waitForSelector('#conn.down');
	await shot(page, 'inbox-reconnecting');
	// Back without its HTTP listener, so the page stays offline while
	// notifyctl reads one and sends two; then back as it was.
	await d.start({ http: false });
	await d.ctl('read', '--user', 'eve', String(before.id));
	await d.ctl('send', '--user', 'eve', '--type', 'message', '--title', 'Missed one');
	await d.ctl('send', '--user', 'eve', '--type', 'message', '--title', 'Missed two');
	await d.stop();
	await d.start();
	await page.waitForSelector('#conn.live', { timeout: 40000 });
	await page.waitForSelector('.item >> text=Missed two');
	await page.waitForSelector('.item >> text=Missed one');
	assert.match(await page.textContent('#missed'), /2 notifications arrived while this page was offline/);
	// The read made meanwhile shows too, and nothing is there twice.
	await page.waitForFunction(() => !document.querySelector('.item.unread .title[aria-label="Unread: Before"]'));
	assert.equal(await page.locator('.item').count(), 3);
	assert.equal(await page.textContent('#badge'), '2');
	// Live again: a new one comes as usual.
	await send('eve', 'Live after');
	await page.waitForSelector('.item >> text=Live after');
	// While the daemon was down the page's own attempts failed: those are
	// the only console errors.
	page.errors = page.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e));
	await clean(page, 'inbox-reconnected');
});

test('preferences are saved and read back through the API', async () => {
	await send('fay', 'Order', { type: 'order_shipped' });
	const { page } = await signedIn('fay');
	await page.waitForSelector('.item >> text=Order');
	await page.click('#prefs-open');
	await page.waitForSelector('#prefs[open] #p-types tr');
	await page.fill('#p-tz', 'Europe/Berlin');
	await page.selectOption('select[aria-label="Email for Every type"]', 'off');
	await page.selectOption('select[aria-label="Email for order_shipped"]', 'on');
	await page.check('#p-quiet');
	await page.fill('#p-qstart', '21:30');
	await page.fill('#p-qend', '06:45');
	await page.uncheck('input[name="day"][value="sat"]');
	await page.uncheck('input[name="day"][value="sun"]');
	await page.check('input[name="digest"][value="daily"]');
	await page.selectOption('#p-eiu', '10m');
	await page.click('#prefs-save');
	await page.waitForFunction(() => document.querySelector('#prefs-status').textContent === 'Saved.');
	await shot(page, 'inbox-preferences');
	const p = await d.rest('GET', '/api/v1/users/fay/preferences');
	assert.deepEqual(p, {
		channels: { email: false },
		types: { order_shipped: { email: true } },
		quiet_hours: { start: '21:30', end: '06:45', days: ['mon', 'tue', 'wed', 'thu', 'fri'] },
		digest: 'daily',
		email_if_unread: '10m',
		user: 'fay',
	});
	assert.equal((await d.rest('GET', '/api/v1/users/fay')).tz, 'Europe/Berlin');
	// Changed elsewhere, the dialog shows the server's document when opened.
	await d.rest('PATCH', '/api/v1/users/fay/preferences', { digest: 'weekly', quiet_hours: null });
	await page.keyboard.press('Escape');
	await page.click('#prefs-open');
	await page.waitForFunction(() => document.querySelector('input[name="digest"][value="weekly"]').checked);
	assert.equal(await page.isChecked('#p-quiet'), false);
	assert.equal(await page.inputValue('#p-tz'), 'Europe/Berlin');
	// A bad zone is refused with the server's reason, and nothing changes.
	await page.fill('#p-tz', 'Mars/Olympus');
	await page.click('#prefs-save');
	await page.waitForSelector('#prefs-error:not([hidden])');
	assert.match(await page.textContent('#prefs-error'), /tz/);
	assert.equal((await d.rest('GET', '/api/v1/users/fay')).tz, 'Europe/Berlin');
	page.errors = page.errors.filter((e) => !/422/.test(e));
	await clean(page, 'inbox-preferences-reopened');
});

test('scrolling loads older pages; filters and archive work', async () => {
	for (let i = 1; i <= 70; i++) await send('gus', 'Message ' + i);
	for (let i = 1; i <= 4; i++) await send('gus', 'Shipped ' + i, { type: 'order_shipped' });
	const { page } = await signedIn('gus', { height: 700 });
	await page.waitForSelector('.item >> text=Shipped 4');
	// The list fills as the end comes into view, to the very first.
	for (let n = 0; n < 10 && await page.locator('.item').count() < 74; n++) {
		await page.locator('.item').last().scrollIntoViewIfNeeded();
		await page.waitForFunction((c) => document.querySelectorAll('.item').length > c || document.querySelector('#more').hidden,
			await page.locator('.item').count());
	}
	assert.equal(await page.locator('.item').count(), 74);
	await page.waitForSelector('.item >> text="Message 1"');
	await page.selectOption('#f-type', 'order_shipped');
	await page.waitForFunction(() => document.querySelectorAll('.item').length === 4);
	await page.locator('.item', { hasText: 'Shipped 2' }).locator('.toggle-archive').click();
	await page.waitForFunction(() => document.querySelectorAll('.item').length === 3);
	await page.selectOption('#f-box', 'archived');
	await page.waitForSelector('.item >> text=Shipped 2');
	assert.equal(await page.locator('.item').count(), 1);
	await page.selectOption('#f-box', 'inbox');
	await page.check('#f-unread');
	await page.click('.item >> text=Shipped 4');
	await page.uncheck('#f-unread');
	await page.check('#f-unread');
	await page.waitForFunction(() => document.querySelectorAll('.item').length === 2);
	await clean(page, 'inbox-filters');
});

test('a filter changed while a page is loading still gets its page', async () => {
	await send('ida', 'Plain one');
	await send('ida', 'Ship one', { type: 'order_shipped' });
	const { page } = await signedIn('ida');
	await page.waitForSelector('.item >> text=Ship one');
	// The first change's page is held until the second change is made.
	let release;
	const held = new Promise((ok) => { release = ok; });
	const asked = [];
	await page.route(/\/notifications\?/, async (route) => {
		asked.push(route.request().url());
		if (asked.length === 1) await held;
		await route.continue();
	});
	await page.selectOption('#f-type', 'order_shipped');
	await page.waitForFunction(() => document.querySelectorAll('.item').length === 0);
	await page.check('#f-unread');
	release();
	await page.waitForSelector('.item >> text=Ship one');
	assert.equal(await page.locator('.item').count(), 1);
	const last = new URL(asked[asked.length - 1]).searchParams;
	assert.equal(last.get('type'), 'order_shipped');
	assert.equal(last.get('unread'), 'true');
	await clean(page, 'inbox-filter-race');
});

test('at 375 px wide nothing overflows and every control is reachable', async () => {
	await send('hal', 'A title long enough to wrap on a narrow phone screen, surely', { type: 'order_shipped' });
	const { page } = await signedIn('hal', { width: 375, height: 740 });
	await page.waitForSelector('.item');
	const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
	assert.ok(overflow <= 0, 'horizontal overflow of ' + overflow + ' px');
	for (const sel of ['#prefs-open', '#signout', '#read-all', '#f-type', '.item .toggle-read']) {
		const box = await page.locator(sel).first().boundingBox();
		assert.ok(box && box.x >= 0 && box.x + box.width <= 375, sel + ' is on screen');
	}
	await page.click('#prefs-open');
	await page.waitForSelector('#prefs[open] #p-types tr');
	const dlg = await page.locator('#prefs').boundingBox();
	assert.ok(dlg.width <= 375);
	await shot(page, 'inbox-375-preferences');
	await page.keyboard.press('Escape');
	await clean(page, 'inbox-375');
});

test('"Notify me in this browser" subscribes this browser for its user', async () => {
	const page = await newPage(d);
	await page.ctx.grantPermissions(['notifications'], { origin: d.url });
	// No push service is reachable from here: subscribe() answers as one would,
	// with the keys of RFC 8291's example.
	await page.addInitScript(() => {
		PushManager.prototype.subscribe = async function (opts) {
			window.keyBytes = new Uint8Array(opts.applicationServerKey).length;
			const sub = {
				endpoint: 'http://127.0.0.1:9/push/browser-test', expirationTime: null,
				keys: {
					p256dh: 'BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4',
					auth: 'BTBZMqHH6r4Tts7J_aSIgg',
				},
			};
			return { ...sub, toJSON: () => sub };
		};
	});
	const t = await d.token('pia');
	await page.goto(d.url + '/inbox#token=' + t);
	await page.waitForSelector('#push-enable:not([hidden])');
	assert.equal(await page.textContent('#push-enable'), 'Notify me in this browser');
	await page.click('#push-enable');
	await page.waitForSelector('#push-enable[disabled]');
	assert.equal(await page.evaluate(() => window.keyBytes), 65, 'the VAPID key, decoded');
	const subs = await d.ctl('push', 'list', '--user', 'pia');
	assert.equal(subs.subscriptions.length, 1);
	assert.ok(subs.subscriptions[0].endpoint.includes('browser-test'));
	// Its service worker is served from the root, so that it covers every page.
	const sw = await fetch(d.url + '/sw.js');
	assert.equal(sw.status, 200);
	assert.match(sw.headers.get('content-type'), /javascript/);
	assert.equal(await page.evaluate(async () => (await navigator.serviceWorker.getRegistration('/')).scope),
		d.url + '/');
	await clean(page, 'inbox-push');
});

test('after a restore from a backup the page shows that inbox, and what comes next', async () => {
	// The backup holds nothing of rex's: the page then resyncs against an
	// empty first page, which on its own removes nothing it holds.
	const bk = join(d.dir, 'backup-rex');
	await d.ctl('backup', bk);
	await send('rex', 'Kept');
	const { page } = await signedIn('rex');
	await page.waitForSelector('.item >> text=Kept');
	await send('rex', 'Lost');
	await page.waitForSelector('.item >> text=Lost');
	// Restored as notifyd(8) says: stopped, the database copied back, its WAL gone.
	await d.stop();
	await page.waitForSelector('#conn.down');
	copyFileSync(join(bk, 'notifyd.db'), join(d.dir, 'notifyd.db'));
	for (const f of ['notifyd.db-wal', 'notifyd.db-shm']) rmSync(join(d.dir, f), { force: true });
	await d.start();
	await page.waitForSelector('#conn.live', { timeout: 40000 });
	await page.waitForFunction(() => document.querySelectorAll('.item').length === 0);
	// The next one takes the id "Kept" had here: it must come all the same.
	await send('rex', 'After restore');
	await page.waitForSelector('.item >> text=After restore');
	assert.equal(await page.locator('.item').count(), 1);
	assert.equal(await page.textContent('#badge'), '1');
	page.errors = page.errors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e));
	await clean(page, 'inbox-restored');
});
