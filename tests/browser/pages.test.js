// Every page in Chromium, light and dark: headers, labels, contrast, focus,
// nothing from elsewhere; and the landing page's live numbers.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, newPage, closeBrowser, foreignRequests, shot, smtpSend, test } from './harness.js';

let d;
let token;
before(async () => {
	d = await new Daemon().start();
	await d.rest('POST', '/api/v1/notifications', { user: 'ivy', type: 'order_shipped', title: 'Shipped', body: 'On its way' });
	await smtpSend(d.smtpPort, 'a@example.test', 'ivy@example.test', 'Subject: Hello\n\nA mail.');
	token = await d.token('ivy');
});
after(async () => { await closeBrowser(); await d.cleanup(); });

// Every text's contrast against what is behind it: WCAG AA, 4.5:1 (3:1 large).
function contrastProblems() {
	const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
	const lum = ([r, g, b]) => {
		const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
		return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
	};
	const bgOf = (n) => {
		for (; n && n.nodeType === 1; n = n.parentElement) {
			const c = rgb(getComputedStyle(n).backgroundColor);
			if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
		}
		return rgb(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3);
	};
	const out = [];
	const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let t = walk.nextNode(); t; t = walk.nextNode()) {
		const e = t.parentElement;
		if (!t.textContent.trim() || !e.checkVisibility() || e.closest('[hidden], .visually-hidden')) continue;
		const cs = getComputedStyle(e);
		const fg = rgb(cs.color).slice(0, 3), bg = bgOf(e);
		const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
		const ratio = (a + 0.05) / (b + 0.05);
		const size = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
		const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
		const disabled = e.closest('button:disabled, input:disabled');
		if (ratio < need && !disabled) out.push(t.textContent.trim().slice(0, 40) + ': ' + ratio.toFixed(2) + ' < ' + need);
	}
	return out;
}

// Every form control has a name a screen reader says.
function unlabelled() {
	return [...document.querySelectorAll('input, select, textarea, button')]
		.filter((c) => c.checkVisibility() && !c.closest('[hidden]'))
		.filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') &&
			!c.getAttribute('aria-labelledby') && !(c.tagName === 'BUTTON' && c.textContent.trim()))
		.map((c) => c.outerHTML.slice(0, 80));
}

const PAGES = [['/', 'landing', '#version:not(:empty)'], ['/inbox', 'inbox', '.item'],
	['/mail', 'mail', '.msgs li'], ['/api', 'api', 'h1#NAME']];

for (const scheme of ['light', 'dark']) {
	for (const [path, name, ready] of PAGES) {
		test(`${path} in ${scheme}: headers, labels, contrast, focus, nothing from elsewhere`, async () => {
			const page = await newPage(d);
			await page.emulateMedia({ colorScheme: scheme });
			const responses = [];
			page.on('response', (r) => responses.push(r));
			const res = await page.goto(d.url + path + (path === '/inbox' ? '#token=' + token : ''));
			await page.waitForSelector(ready);
			const h = res.headers();
			assert.match(h['content-security-policy'], /script-src 'self'/);
			assert.doesNotMatch(h['content-security-policy'], /unsafe-inline|unsafe-eval/);
			assert.equal(h['x-content-type-options'], 'nosniff');
			assert.equal(h['referrer-policy'], 'no-referrer');
			assert.ok(h.etag, 'an ETag');
			// Scripts and styles come compressed.
			for (const r of responses.filter((x) => /\/assets\/.*\.(js|css)$/.test(x.url()))) {
				assert.equal((await r.allHeaders())['content-encoding'], 'gzip', r.url());
			}
			const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
			const dark = (bg.match(/\d+/g) || []).slice(0, 3).reduce((a, b) => a + Number(b), 0) < 200;
			assert.equal(dark, scheme === 'dark', 'background ' + bg);
			assert.deepEqual(await page.evaluate(unlabelled), [], 'controls without a label');
			assert.deepEqual(await page.evaluate(contrastProblems), [], 'text below AA contrast');
			// The first Tab shows the skip link, with a visible focus ring.
			await page.keyboard.press('Tab');
			const focus = await page.evaluate(() => {
				const e = document.activeElement;
				const cs = getComputedStyle(e);
				return { cls: e.className, outline: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
			});
			assert.equal(focus.cls, 'skip');
			assert.ok(focus.outline !== 'none' && focus.width >= 2, JSON.stringify(focus));
			await shot(page, `page-${name}-${scheme}`);
			assert.deepEqual(page.errors, [], 'console errors');
			assert.deepEqual(foreignRequests(page, d), [], 'requests to other origins');
			await page.ctx.close();
		});
	}
}

test('the landing page counts what arrives, live', async () => {
	const page = await newPage(d);
	await page.goto(d.url + '/');
	await page.waitForFunction(() => document.querySelector('#notifications').textContent !== '…');
	const count = async (id) => Number((await page.textContent(id)).replace(/\D/g, ''));
	const n = await count('#notifications'), m = await count('#mail');
	assert.equal(n, (await d.ctl('status')).counts.notifications);
	assert.equal(await page.textContent('#smtp'), '127.0.0.1:' + d.smtpPort);
	await d.rest('POST', '/api/v1/notifications', { user: 'jon', type: 'message', title: 'Count me' });
	await smtpSend(d.smtpPort, 'a@example.test', 'jon@example.test', 'Subject: Count me too\n\nHi.');
	await page.waitForFunction(([n0, m0]) => {
		const v = (id) => Number(document.querySelector(id).textContent.replace(/\D/g, ''));
		return v('#notifications') === n0 + 1 && v('#mail') === m0 + 1;
	}, [n, m], { timeout: 10000 });
	// An open inbox is an open WebSocket and a user online.
	const inbox = await newPage(d);
	await inbox.goto(d.url + '/inbox#token=' + token);
	await inbox.waitForSelector('#conn.live');
	await page.waitForFunction(() => document.querySelector('#online').textContent === '1', null, { timeout: 10000 });
	await shot(page, 'landing-live');
	assert.deepEqual(page.errors, []);
	await inbox.ctx.close();
	await page.ctx.close();
});
