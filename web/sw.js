// The service worker of notifyd's pages: shows each Web Push message
// (notifyd-api(7), "Web Push"), and opens its url when it is clicked.
self.addEventListener('push', (ev) => {
	let n = {};
	try {
		n = ev.data ? ev.data.json() : {};
	} catch (e) {
		n = { title: ev.data ? ev.data.text() : '' };
	}
	ev.waitUntil(self.registration.showNotification(n.title || 'New notification', {
		body: n.body || '',
		tag: n.id ? 'notifyd-' + n.id : undefined,
		icon: '/assets/icon.svg',
		data: { url: n.url || '/inbox', id: n.id },
	}));
});

self.addEventListener('notificationclick', (ev) => {
	ev.notification.close();
	const url = new URL((ev.notification.data && ev.notification.data.url) || '/inbox',
		self.location.origin).href;
	ev.waitUntil((async () => {
		const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
		const same = open.find((c) => c.url === url);
		return same ? same.focus() : self.clients.openWindow(url);
	})());
});
