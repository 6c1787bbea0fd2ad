// /mail in Chromium: live arrival, a hostile HTML mail that neither runs
// nor loads anything, the message's views, delete and mark read, 375 px.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Daemon, newPage, closeBrowser, finish, shot, smtpSend, tracker, SHOTS, test } from './harness.js';

let d;
before(async () => { d = await new Daemon().start(); });
after(async () => { await closeBrowser(); await d.cleanup(); });

function mail(subject, { html, text = 'Plain text of ' + subject, to = 'ann@example.test', attach } = {}) {
	const b = 'b-' + Math.random().toString(36).slice(2);
	const parts = [['text/plain; charset=utf-8', text]];
	if (html) parts.push(['text/html; charset=utf-8', html]);
	let body = 'From: Shop <shop@example.test>\nTo: ' + to + '\nSubject: ' + subject +
		'\nDate: ' + new Date().toUTCString() + '\nMIME-Version: 1.0\n';
	if (attach) {
		body += 'Content-Type: multipart/mixed; boundary="' + b + 'm"\n\n--' + b + 'm\n';
	}
	body += 'Content-Type: multipart/alternative; boundary="' + b + '"\n\n';
	for (const [type, content] of parts) body += '--' + b + '\nContent-Type: ' + type + '\n\n' + content + '\n';
	body += '--' + b + '--\n';
	if (attach) {
		body += '--' + b + 'm\nContent-Type: text/csv; name="' + attach.name + '"\nContent-Disposition: attachment; filename="' +
			attach.name + '"\nContent-Transfer-Encoding: base64\n\n' + Buffer.from(attach.data).toString('base64') + '\n--' + b + 'm--\n';
	}
	return smtpSend(d.smtpPort, 'shop@example.test', to, body);
}

async function mailPage(opts) {
	const page = await newPage(d, opts);
	await page.goto(d.url + '/mail');
	await page.waitForSelector('#conn.live');
	return page;
}

const clean = (page, name) => finish(page, d, name);

test('new mail arrives live, counted', async () => {
	const page = await mailPage();
	const before = await page.locator('.msgs li').count();
	await mail('Live arrival');
	await page.waitForSelector('.msgs li.unread >> text=Live arrival');
	assert.equal(await page.locator('.msgs li').count(), before + 1);
	await page.waitForFunction(() => /unread/.test(document.querySelector('#counts').textContent));
	assert.match(await page.title(), /^\(\d+\) Mail/);
	await clean(page, 'mail-live');
});

test('an HTML mail with a script, a remote image and a form runs and loads nothing', async () => {
	const t = await tracker();
	try {
		const html = '<html><body><h1 id="hello">Hello</h1>' +
			'<p style="color: rgb(200, 0, 0)">Inline styles still show.</p>' +
			'<img src="' + t.url + '/pixel.gif" alt="pixel">' +
			'<script>parent.postMessage("script ran", "*"); fetch("' + t.url + '/script");</script>' +
			'<img src="x" onerror="fetch(\'' + t.url + '/onerror\')">' +
			'<link rel="stylesheet" href="' + t.url + '/style.css">' +
			'<form action="' + t.url + '/form" method="post"><button id="go">Go</button></form>' +
			'</body></html>';
		await mail('Hostile HTML', { html });
		// A mail's own refusals (its CSP at work) are logged in its frame: expected.
		const page = await mailPage({ allowErrorsFrom: ['/view/'] });
		await page.evaluate(() => { window.messages = []; addEventListener('message', (e) => window.messages.push(e.data)); });
		await page.click('.msgs >> text=Hostile HTML');
		await page.waitForSelector('#tab-html[aria-selected="true"]');
		const frameEl = await page.waitForSelector('iframe.html-frame');
		assert.equal(await frameEl.getAttribute('sandbox'), '');
		const frame = await frameEl.contentFrame();
		await frame.waitForLoadState('load');
		await frame.waitForSelector('#hello');
		// The page's fonts and colours come through; the script did not run.
		assert.equal(await frame.$eval('p', (p) => getComputedStyle(p).color), 'rgb(200, 0, 0)');
		await frame.click('#go', { timeout: 2000 }).catch(() => {});
		// A round trip to the server after the load: anything the mail could
		// have sent would have reached the tracker by now.
		await page.evaluate(() => fetch('/healthz'));
		assert.deepEqual(t.hits, [], 'the tracker was reached');
		assert.deepEqual(await page.evaluate(() => window.messages), [], 'the script ran');
		// Chromium saw the mail ask (CSP refused it before any connection).
		const asked = page.requests.filter((u) => u.startsWith(t.url));
		assert.deepEqual(asked.filter((u) => !page.blocked.includes(u)), [], 'a request went out');
		await clean(page, 'mail-hostile-html');
	} finally {
		await t.close();
	}
});

test('a message shows as text, headers, raw source and attachments', async () => {
	await mail('With attachment', { html: '<p>Hi</p>', attach: { name: 'report.csv', data: 'a,b\n1,2\n' } });
	const page = await mailPage();
	await page.click('.msgs >> text=With attachment');
	await page.waitForSelector('#view-h >> text=With attachment');
	// Keyboard: arrows move between tabs.
	await page.focus('#tab-html');
	await page.keyboard.press('ArrowRight');
	await page.waitForSelector('#tab-text[aria-selected="true"]');
	assert.match(await page.textContent('#panel-text'), /Plain text of With attachment/);
	await page.click('#tab-headers');
	await page.waitForSelector('#panel-headers th >> text=Subject');
	await page.click('#tab-raw');
	await page.waitForFunction(() => /MIME-Version: 1.0/.test(document.querySelector('#panel-raw').textContent));
	await page.keyboard.press('End');
	await page.waitForSelector('#tab-attachments[aria-selected="true"]');
	const [download] = await Promise.all([page.waitForEvent('download'), page.click('#panel-attachments a')]);
	assert.equal(download.suggestedFilename(), 'report.csv');
	const chunks = [];
	for await (const c of await download.createReadStream()) chunks.push(c);
	assert.equal(Buffer.concat(chunks).toString(), 'a,b\n1,2\n');
	await clean(page, 'mail-views');
});

test('search, mark unread, delete one and delete all', async () => {
	await mail('Receipt 1001', { to: 'zoe@example.test' });
	await mail('Receipt 1002', { to: 'zoe@example.test' });
	await mail('Not a receipt', { to: 'yan@example.test' });
	const page = await mailPage();
	// Dates go with the browser's zone: a search before 2000 finds nothing, after it both.
	await page.fill('#q', 'to:zoe before:2000-01-01');
	await page.press('#q', 'Enter');
	await page.waitForSelector('#empty:not([hidden]) >> text=Nothing matches.');
	await page.fill('#q', 'to:zoe subject:receipt after:2000-01-01');
	await page.press('#q', 'Enter');
	await page.waitForFunction(() => document.querySelectorAll('.msgs li').length === 2);
	// Mark all read, with a search: what it shows, nothing else.
	await page.click('#readall');
	await page.waitForFunction(() => !document.querySelector('.msgs li.unread'));
	const other = await d.rest('GET', '/api/v1/search?query=' + encodeURIComponent('subject:"Not a receipt"'));
	assert.equal(other.messages[0].Read, false);
	assert.equal((await d.rest('GET', '/api/v1/search?query=' + encodeURIComponent('to:zoe is:unread'))).messages_count, 0);
	await page.click('.msgs >> text=Receipt 1001');
	await page.waitForSelector('.msgs li:not(.unread) >> text=Receipt 1001');
	await page.click('#v-unread');
	await page.waitForSelector('.msgs li.unread >> text=Receipt 1001');
	const list = await d.rest('GET', '/api/v1/search?query=' + encodeURIComponent('subject:"Receipt 1001"'));
	assert.equal(list.messages[0].Read, false);
	await page.click('#v-delete');
	await page.waitForFunction(() => document.querySelectorAll('.msgs li').length === 1);
	assert.equal((await d.rest('GET', '/api/v1/search?query=' + encodeURIComponent('subject:"Receipt 1001"'))).messages.length, 0);
	// Delete all, with a search active: what it matches, nothing else.
	const total = (await d.rest('GET', '/api/v1/messages')).total;
	await page.click('#deleteall');
	await page.waitForSelector('#empty:not([hidden])');
	assert.equal((await d.rest('GET', '/api/v1/messages')).total, total - 1);
	// Without one: everything.
	await page.fill('#q', '');
	await page.press('#q', 'Enter');
	await page.waitForFunction(() => document.querySelectorAll('.msgs li').length > 0);
	await page.click('#readall');
	await page.waitForFunction(() => !document.querySelector('.msgs li.unread'));
	assert.equal((await d.rest('GET', '/api/v1/messages')).unread, 0);
	await page.click('#deleteall');
	await page.waitForSelector('#empty:not([hidden])');
	assert.equal((await d.rest('GET', '/api/v1/messages')).total, 0);
	await clean(page, 'mail-delete');
});

test('at 375 px the list and the message fit', async () => {
	await mail('Narrow screen', { html: '<table width="600"><tr><td>A wide newsletter layout</td></tr></table>' });
	const page = await mailPage({ width: 375, height: 740 });
	await page.click('.msgs >> text=Narrow screen');
	const frame = await (await page.waitForSelector('iframe.html-frame')).contentFrame();
	await frame.waitForSelector('text=A wide newsletter layout');
	// A full-page capture leaves the sandboxed frame (another process)
	// blank; the frame on its own shows what a phone shows.
	await page.locator('iframe.html-frame').screenshot({ path: join(SHOTS, 'mail-375-html.png') });
	const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
	assert.ok(overflow <= 0, 'horizontal overflow of ' + overflow + ' px');
	// Opening a message moves focus to it, which on a phone is below the list.
	assert.equal(await page.evaluate(() => document.activeElement.id), 'view-h');
	await clean(page, 'mail-375');
});
