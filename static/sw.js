/* Syrena service worker, served at /sw.js (scope "/") by subscribers/push.py.
 *
 * - push: show the alert. The payload is the JSON providers/webpush.py sends:
 *   {title, body, url, category, level, tag}. A notification with the same tag replaces
 *   the earlier one (a corrected alert does not pile up); level 3 / emergency stays on
 *   screen until the resident reacts and alerts again even when it replaces one.
 * - notificationclick: focus a tab already showing the alert's page, or open it.
 * - pushsubscriptionchange: the browser renewed the subscription; tell the server, with the
 *   old endpoint as the proof, so the resident keeps getting alerts.
 * Every push must show a notification (userVisibleOnly), or browsers show their own
 * "this site has been updated in the background" and may revoke the permission.
 */
'use strict';

const ICON = '/static/icon-192.png';

self.addEventListener('install', () => {
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

function readPayload(event) {
  if (!event.data) {
    return {};
  }
  try {
    const data = event.data.json();
    return data && typeof data === 'object' ? data : {};
  } catch (err) {
    return { body: event.data.text() };
  }
}

self.addEventListener('push', (event) => {
  const data = readPayload(event);
  const urgent = data.level === 3 || data.category === 'emergency';
  const options = {
    body: data.body || '',
    icon: ICON,
    badge: ICON,
    data: { url: data.url || '/' },
    requireInteraction: urgent,
    timestamp: Date.now()
  };
  if (data.tag) {
    options.tag = String(data.tag);
    // renotify needs a tag; without it a replaced urgent alert would arrive silently.
    options.renotify = urgent;
  }
  if (urgent) {
    options.vibrate = [300, 150, 300, 150, 600];
  }
  event.waitUntil(self.registration.showNotification(data.title || 'Syrena', options));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  let target;
  try {
    target = new URL((event.notification.data && event.notification.data.url) || '/', self.location.origin);
  } catch (err) {
    target = new URL('/', self.location.origin);
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:') {
    target = new URL('/', self.location.origin);
  }
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const client of windows) {
      if (client.url === target.href && 'focus' in client) {
        return client.focus();
      }
    }
    return self.clients.openWindow(target.href);
  })());
});

function keyBytes(base64url) {
  const padded = base64url.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((base64url.length + 3) % 4);
  const raw = atob(padded);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) {
    bytes[i] = raw.charCodeAt(i);
  }
  return bytes;
}

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil((async () => {
    const old = event.oldSubscription;
    if (!old) {
      return; // nothing proves which resident this browser was: the page will subscribe again
    }
    let renewed = event.newSubscription;
    if (!renewed) {
      const answer = await fetch('/push/key', { credentials: 'same-origin' });
      if (!answer.ok) {
        return;
      }
      const { public_key: publicKey } = await answer.json();
      renewed = await self.registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(publicKey)
      });
    }
    await fetch('/push/subscribe', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ subscription: renewed.toJSON(), old_endpoint: old.endpoint })
    });
  })());
});
