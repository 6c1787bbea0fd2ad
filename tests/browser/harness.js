// What the browser tests share: a private notifyd, notifyctl, SMTP, and a
// Chromium page that records every console error and every request.
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';
import assert from 'node:assert/strict';
import { test as nodeTest } from 'node:test';
import { chromium } from 'playwright-core';

/*
 * node:test's test, failing after two minutes instead of hanging the run.
 * The timeout is set here, per test, because Debian 12's Node 18 has no
 * --test-timeout.
 */
export const test = (name, fn) => nodeTest(name, { timeout: 120000 }, fn);

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.NOTIFYD_BIN || join(ROOT, 'bin', 'notifyd');
const CTL = process.env.NOTIFYCTL_BIN || join(ROOT, 'bin', 'notifyctl');
export const SHOTS = process.env.BROWSER_OUT || join(ROOT, 'build', 'default', 'browser');
mkdirSync(SHOTS, { recursive: true });

export function freePort() {
	return new Promise((ok, fail) => {
		const s = net.createServer();
		s.on('error', fail);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => ok(port));
		});
	});
}

// A notifyd of the test's own: its directory, ports and socket.
export class Daemon {
	constructor() {
		this.dir = mkdtempSync(join(tmpdir(), 'notifyd-browser-'));
		this.sock = join(this.dir, 'ctl.sock');
		this.proc = null;
		this.log = '';
	}

	// start({http: false}): no HTTP listener, so that no page can reach it.
	async start({ http = true } = {}) {
		if (!this.httpPort) {
			this.httpPort = await freePort();
			this.smtpPort = await freePort();
		}
		this.log = '';
		const p = spawn(BIN, ['--data-dir', this.dir, '--http', http ? '127.0.0.1:' + this.httpPort : 'off',
			'--smtp', '127.0.0.1:' + this.smtpPort, '--socket', this.sock], {
			stdio: ['ignore', 'ignore', 'pipe'],
			// The push endpoints of the tests are on loopback.
			env: { ...process.env, NOTIFYD_PUSH_ALLOW_PRIVATE: 'true' },
		});
		this.proc = p;
		p.stderr.setEncoding('utf8');
		// Started when it says so; gone if it exits first.
		await new Promise((ok, fail) => {
			const onData = (d) => {
				this.log += d;
				if (this.log.includes('notifyd started')) ok();
			};
			p.stderr.on('data', onData);
			p.once('exit', (code) => fail(new Error('notifyd exited with ' + code + ':\n' + this.log)));
		});
		p.removeAllListeners('exit');
		this.exited = new Promise((ok) => p.once('exit', ok));
		return this;
	}

	get url() {
		return 'http://127.0.0.1:' + this.httpPort;
	}

	async stop() {
		if (!this.proc) return;
		this.proc.kill('SIGTERM');
		await this.exited;
		this.proc = null;
	}

	async cleanup() {
		await this.stop();
		rmSync(this.dir, { recursive: true, force: true });
	}

	// notifyctl --json ARGS...: the parsed result; throws with its stderr on failure.
	ctl(...args) {
		return new Promise((ok, fail) => {
			execFile(CTL, ['--socket', this.sock, '--json', ...args], (err, stdout, stderr) => {
				if (err) fail(new Error('notifyctl ' + args.join(' ') + ': ' + stderr));
				else ok(stdout.trim() ? JSON.parse(stdout) : null);
			});
		});
	}

	async token(user) {
		const r = await this.ctl('token', user, '--ttl', '1h');
		return r.token;
	}

	async apiKey() {
		if (!this.key) this.key = (await this.ctl('key', 'create', 'browser-' + Date.now())).key;
		return this.key;
	}

	// The REST API with an API key.
	async rest(method, path, body) {
		const key = await this.apiKey();
		const res = await fetch(this.url + path, {
			method, body: body === undefined ? undefined : JSON.stringify(body),
			headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
		});
		const data = await res.json().catch(() => null);
		if (!res.ok) throw new Error(method + ' ' + path + ': ' + res.status + ' ' + JSON.stringify(data));
		return data;
	}
}

// Send one message to the sink the way any SMTP client would.
export function smtpSend(port, from, to, data) {
	return new Promise((ok, fail) => {
		const s = net.connect(port, '127.0.0.1');
		const steps = ['EHLO browser.test', 'MAIL FROM:<' + from + '>', 'RCPT TO:<' + to + '>', 'DATA',
			data.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..') + '\r\n.', 'QUIT'];
		let buf = '';
		s.setEncoding('utf8');
		s.on('data', (d) => {
			buf += d;
			// One reply per step: its last line has a space after the code.
			while (/^\d{3} .*\r\n/m.test(buf)) {
				const m = buf.match(/^(\d{3}) .*\r\n/m);
				const code = Number(m[1]);
				buf = buf.slice(m.index + m[0].length);
				if (code >= 400) { s.destroy(); return fail(new Error('SMTP ' + m[0].trim())); }
				const next = steps.shift();
				if (next === undefined) { s.end(); return ok(); }
				s.write(next + '\r\n');
			}
		});
		s.on('error', fail);
	});
}

// A server on another origin that counts what asks it for anything.
export async function tracker() {
	const hits = [];
	const srv = http.createServer((req, res) => {
		hits.push(req.url);
		res.writeHead(200, { 'Content-Type': 'image/gif' });
		res.end();
	});
	await new Promise((ok) => srv.listen(0, '127.0.0.1', ok));
	return { hits, url: 'http://127.0.0.1:' + srv.address().port, close: () => new Promise((ok) => srv.close(ok)) };
}

let browser = null;
let keepAlive = null;
export async function launch() {
	if (!browser) {
		// Playwright leaves the event loop free to end: a promise that never
		// settles would end the run silently. Held open, it times out instead.
		keepAlive = setInterval(() => {}, 1 << 30);
		browser = await chromium.launch({
			executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
			args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
		});
	}
	return browser;
}

export async function closeBrowser() {
	if (browser) await browser.close();
	browser = null;
	clearInterval(keepAlive);
}

// A page that records console errors, uncaught exceptions and every request.
// allowErrorsFrom: URL prefixes whose console errors are expected (a
// captured mail's own CSP refusals, say).
export async function newPage(daemon, { width = 1200, height = 900, allowErrorsFrom = [] } = {}) {
	const b = await launch();
	const ctx = await b.newContext({ viewport: { width, height } });
	const page = await ctx.newPage();
	page.errors = [];
	page.requests = [];
	page.on('console', (m) => {
		if (m.type() !== 'error') return;
		const where = m.location().url || '';
		if (allowErrorsFrom.some((p) => where.startsWith(daemon.url + p))) return;
		page.errors.push(m.text() + ' (' + where + ')');
	});
	page.on('pageerror', (e) => page.errors.push('uncaught: ' + e.message));
	page.blocked = [];
	page.on('request', (r) => page.requests.push(r.url()));
	page.on('requestfailed', (r) => {
		if (/^csp$|BLOCKED_BY_CSP/i.test(r.failure()?.errorText || '')) page.blocked.push(r.url());
	});
	page.on('dialog', (d) => d.accept());
	page.ctx = ctx;
	return page;
}

// What every page must show at its end: nothing asked of another origin.
// Requests the browser refused on a CSP (a captured mail's) never left it.
export function foreignRequests(page, daemon) {
	const origins = [daemon.url, daemon.url.replace('http', 'ws')];
	return page.requests.filter((u) => !u.startsWith('data:') && !origins.some((o) => u.startsWith(o + '/')) &&
		!page.blocked.includes(u));
}

export async function shot(page, name) {
	await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
}

// The end of a test's page: its screenshot, no console errors, nothing
// asked of another origin; then the page is closed.
export async function finish(page, daemon, name) {
	await shot(page, name);
	assert.deepEqual(page.errors, [], 'console errors');
	assert.deepEqual(foreignRequests(page, daemon), [], 'requests to other origins');
	await page.ctx.close();
}
