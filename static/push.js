/* Syrena: turn web-push ("app") notifications on and off in this browser.
 *
 * Markup (templates/public/_push.html):
 *   [data-push]                 the section; hidden entirely when the server has push off
 *   [data-push-subscribe]       button; data-manage-token (optional: attach to that resident),
 *                               data-prefs-form (optional CSS selector of the preferences form;
 *                               default: the form holding input[name=categories]),
 *                               data-consent (optional selector of the consent checkbox),
 *                               data-csrf (optional token, sent as X-CSRFToken)
 *   [data-push-unsubscribe]     button
 *   [data-push-status]          where messages appear; data-msg-* hold the texts the browser
 *                               shows on its own (unsupported, ios, denied, consent, working,
 *                               failed, on, link)
 *   [data-push-actions-on/off]  wrappers shown when this browser is (not) subscribed
 *
 * No inline script (CSP script-src 'self'). The worker is registered at page load and the
 * key fetched then, so a click goes straight to the permission prompt: Safari only allows
 * it directly from a user gesture.
 */
(function () {
  'use strict';

  const root = document.querySelector('[data-push]');
  if (!root) {
    return;
  }
  const subscribeButton = root.querySelector('[data-push-subscribe]');
  const unsubscribeButton = root.querySelector('[data-push-unsubscribe]');
  const statusBox = root.querySelector('[data-push-status]');
  const actionsOff = root.querySelector('[data-push-actions-off]');
  const actionsOn = root.querySelector('[data-push-actions-on]');
  const STORE_KEY = 'syrena.manage_url';
  let publicKey = null;

  function show(element, visible) {
    if (element) {
      element.hidden = !visible;
    }
  }

  function text(name) {
    return (statusBox && statusBox.dataset['msg' + name.charAt(0).toUpperCase() + name.slice(1)]) || '';
  }

  function say(message, link) {
    if (!statusBox) {
      return;
    }
    statusBox.textContent = message || '';
    if (link) {
      const paragraph = document.createElement('p');
      const anchor = document.createElement('a');
      anchor.href = link;
      anchor.textContent = text('link') || link;
      paragraph.appendChild(anchor);
      statusBox.appendChild(paragraph);
    }
  }

  function isIos() {
    return /iPhone|iPad|iPod/.test(navigator.userAgent) ||
      (navigator.platform === 'MacIntel' && navigator.maxTouchPoints > 1);
  }

  function isStandalone() {
    return navigator.standalone === true ||
      (window.matchMedia && window.matchMedia('(display-mode: standalone)').matches);
  }

  function supported() {
    return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
  }

  function keyBytes(base64url) {
    const padded = base64url.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((base64url.length + 3) % 4);
    const raw = window.atob(padded);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function preferences() {
    const selector = subscribeButton.dataset.prefsForm;
    let form = selector ? document.querySelector(selector) : null;
    if (!form) {
      const anyCategory = document.querySelector('input[name="categories"]');
      form = anyCategory ? anyCategory.form : null;
    }
    const prefs = { categories: [], levels: {}, areas: [] };
    if (!form) {
      return prefs;
    }
    form.querySelectorAll('input[name="categories"]:checked').forEach((box) => prefs.categories.push(box.value));
    // The always-on category's box is disabled (so the form does not send it): add it here.
    form.querySelectorAll('input[data-category-always]').forEach((box) => prefs.categories.push(box.value));
    form.querySelectorAll('input[name="areas"]:checked').forEach((box) => prefs.areas.push(box.value));
    form.querySelectorAll('select[name^="level_"]').forEach((select) => {
      prefs.levels[select.name.slice('level_'.length)] = select.value;
    });
    const language = form.querySelector('[name="language"]');
    if (language && language.value) {
      prefs.language = language.value;
    }
    return prefs;
  }

  async function post(path, payload) {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (subscribeButton && subscribeButton.dataset.csrf) {
      headers['X-CSRFToken'] = subscribeButton.dataset.csrf;
    }
    // Answers come in the page's language.
    const lang = document.documentElement.lang || '';
    const response = await fetch(lang ? path + '?lang=' + encodeURIComponent(lang) : path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: headers,
      body: JSON.stringify(payload)
    });
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = {};
    }
    return { ok: response.ok, data: data };
  }

  async function registration() {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    return navigator.serviceWorker.ready;
  }

  async function currentSubscription() {
    const reg = await registration();
    return reg.pushManager.getSubscription();
  }

  async function subscribeHere() {
    const reg = await registration();
    const options = { userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) };
    try {
      return await reg.pushManager.subscribe(options);
    } catch (err) {
      // Subscribed earlier with another server key (keys were rotated): start afresh.
      const old = await reg.pushManager.getSubscription();
      if (err && err.name === 'InvalidStateError' && old) {
        await old.unsubscribe();
        return reg.pushManager.subscribe(options);
      }
      throw err;
    }
  }

  async function onSubscribe(event) {
    event.preventDefault();
    const token = subscribeButton.dataset.manageToken || '';
    const consentBox = subscribeButton.dataset.consent ? document.querySelector(subscribeButton.dataset.consent) : null;
    if (!token && consentBox && !consentBox.checked) {
      say(text('consent'));
      consentBox.focus();
      return;
    }
    // First thing in the click handler: Safari refuses the prompt outside a user gesture.
    const permission = await Notification.requestPermission();
    if (permission !== 'granted') {
      say(text('denied'));
      return;
    }
    subscribeButton.disabled = true;
    say(text('working'));
    try {
      const subscription = await subscribeHere();
      const payload = Object.assign(preferences(), {
        subscription: subscription.toJSON(),
        consent: consentBox ? consentBox.checked : Boolean(token)
      });
      if (token) {
        payload.token = token;
      }
      const answer = await post('/push/subscribe', payload);
      if (!answer.ok) {
        // The server keeps nothing, so the browser should not keep the subscription either.
        await subscription.unsubscribe();
        say(answer.data.message || text('failed'));
        return;
      }
      if (answer.data.manage_url && !token) {
        try {
          window.localStorage.setItem(STORE_KEY, answer.data.manage_url);
        } catch (err) { /* private mode: the link on screen has to do */ }
      }
      say(answer.data.message || text('on'), token ? null : answer.data.manage_url);
      show(actionsOff, false);
      show(actionsOn, true);
    } catch (err) {
      say(text('failed'));
    } finally {
      subscribeButton.disabled = false;
    }
  }

  async function onUnsubscribe(event) {
    event.preventDefault();
    unsubscribeButton.disabled = true;
    try {
      const subscription = await currentSubscription();
      let message = text('off');
      if (subscription) {
        const answer = await post('/push/unsubscribe', { endpoint: subscription.endpoint });
        message = answer.data.message || message;
        await subscription.unsubscribe();
      }
      say(message);
      show(actionsOn, false);
      show(actionsOff, true);
    } catch (err) {
      say(text('failed'));
    } finally {
      unsubscribeButton.disabled = false;
    }
  }

  async function start() {
    if (!supported()) {
      say(isIos() && !isStandalone() ? text('ios') : text('unsupported'));
      return;
    }
    const answer = await fetch('/push/key', { credentials: 'same-origin' });
    if (!answer.ok) {
      show(root, false); // push is off on this server
      return;
    }
    publicKey = (await answer.json()).public_key;
    if (subscribeButton) {
      subscribeButton.addEventListener('click', onSubscribe);
    }
    if (unsubscribeButton) {
      unsubscribeButton.addEventListener('click', onUnsubscribe);
    }
    const subscription = await currentSubscription();
    const on = Boolean(subscription) && Notification.permission === 'granted';
    show(actionsOff, !on);
    show(actionsOn, on);
    if (on) {
      let link = null;
      try {
        link = subscribeButton && subscribeButton.dataset.manageToken ? null : window.localStorage.getItem(STORE_KEY);
      } catch (err) { /* no storage */ }
      say(text('on'), link);
    }
  }

  start().catch(() => say(text('failed')));
}());
