// Magnetar's web console: a single page over the admin REST API. Every request carries the
// token the user pasted (kept in this tab's sessionStorage only), so the console shows and
// changes exactly what that role may. No data is ever written into the page as HTML: every
// node is built with textContent, so names and payloads cannot inject markup.
'use strict';

(() => {
  const TOKEN_KEY = 'magnetar-console-token';
  const REFRESH_MS = 2000;
  const MAX_ROWS = 50;

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let timers = [];

  class ApiError extends Error {
    constructor(status, reason) {
      super(reason);
      this.status = status;
    }
  }

  // ---- DOM helpers -------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'class') el.className = value;
      else if (key === 'value') el.value = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const enc = encodeURIComponent;

  function table(id, headers, rows, empty) {
    if (!rows.length) return h('p', { class: 'empty', id: id && id + '-empty' }, empty || 'None.');
    return h('table', { id },
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', {}, name)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))));
  }

  function section(title, id, ...body) {
    return h('section', { id }, h('h2', {}, title), ...body);
  }

  function flash(message, kind) {
    const el = document.getElementById('flash');
    el.textContent = message;
    el.className = 'flash ' + (kind || 'info');
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { el.hidden = true; }, 8000);
  }

  function describe(error) {
    if (error instanceof ApiError) {
      if (error.status === 403) return 'Not permitted for your role: ' + error.message;
      return error.message + ' (HTTP ' + error.status + ')';
    }
    return String(error && error.message ? error.message : error);
  }

  // A button that asks for a second click before it does something destructive.
  function dangerButton(label, id, action) {
    let armed = false;
    const button = h('button', { type: 'button', class: 'danger', id }, label);
    button.addEventListener('click', async () => {
      if (!armed) {
        armed = true;
        button.textContent = 'Click again to confirm';
        button.classList.add('armed');
        setTimeout(() => {
          armed = false;
          button.textContent = label;
          button.classList.remove('armed');
        }, 5000);
        return;
      }
      armed = false;
      button.disabled = true;
      try {
        await action();
      } catch (e) {
        flash(describe(e), 'error');
        button.disabled = false;
        button.textContent = label;
      }
    });
    return button;
  }

  // A form whose submit runs `action(values)` and reports the outcome.
  function actionForm(id, fields, submitLabel, action) {
    const form = h('form', { id, class: 'action' }, fields, h('button', { type: 'submit' }, submitLabel));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const values = {};
      for (const el of form.elements) {
        if (!el.name) continue;
        values[el.name] = el.type === 'checkbox' ? el.checked : el.value.trim();
      }
      const button = form.querySelector('button[type=submit]');
      button.disabled = true;
      try {
        const message = await action(values);
        if (message) flash(message, 'ok');
      } catch (e) {
        flash(describe(e), 'error');
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  function field(label, name, attrs) {
    return h('label', {}, label, h('input', Object.assign({ name }, attrs || {})));
  }

  function bytes(n) {
    if (n === null || n === undefined) return '-';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = Number(n);
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit === 0 ? value.toFixed(0) : value.toFixed(1)) + ' ' + units[unit];
  }

  function rate(n) {
    return n === undefined || n === null ? '-' : Number(n).toFixed(1);
  }

  function when(ms) {
    return ms ? new Date(Number(ms)).toISOString().replace('T', ' ').replace('Z', ' UTC') : '-';
  }

  function link(href, text) {
    return h('a', { href }, text);
  }

  // ---- the admin API -----------------------------------------------------------------------

  function authHeaders() {
    return token ? { Authorization: 'Bearer ' + token } : {};
  }

  async function request(url, init) {
    const response = await fetch(url, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = text;
      }
    }
    if (!response.ok) {
      const reason = (data && data.reason) || (typeof data === 'string' && data) || response.statusText;
      if (response.status === 401 && location.hash !== '#/login') {
        sessionStorage.setItem('magnetar-console-return', location.hash);
        location.hash = '#/login';
      }
      throw new ApiError(response.status, reason);
    }
    return data;
  }

  function api(method, path, body) {
    const init = { method, headers: authHeaders() };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return request('/console/api' + path, init);
  }

  const get = (path) => api('GET', path);

  // The role in a JWT's `sub`, shown next to "Sign out"; the server verifies the token.
  function tokenSubject(jwt) {
    try {
      const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part)).sub || '(no subject)';
    } catch (_) {
      return '(unreadable token)';
    }
  }

  function renderSession() {
    const el = document.getElementById('session');
    if (token) {
      el.replaceChildren(
        h('span', { id: 'session-role' }, 'Role: ' + tokenSubject(token)),
        h('button', {
          type: 'button', id: 'sign-out', onclick: () => {
            token = '';
            sessionStorage.removeItem(TOKEN_KEY);
            renderSession();
            location.hash = '#/login';
          },
        }, 'Sign out'));
    } else {
      el.replaceChildren(link('#/login', 'Sign in with a token'));
    }
  }

  // ---- refresh -----------------------------------------------------------------------------

  // Runs `fn` now and every REFRESH_MS while `view` is the page shown.
  function every(view, fn) {
    if (!view.isConnected) return Promise.resolve();
    const tick = async () => {
      if (!view.isConnected) return;
      try {
        await fn();
      } catch (e) {
        if (view.isConnected) flash(describe(e), 'error');
      }
    };
    timers.push(setInterval(tick, REFRESH_MS));
    return tick();
  }

  function stopRefresh() {
    timers.forEach(clearInterval);
    timers = [];
  }

  // Runs `fill(container)`; an error (a 403, say) is shown inside the section instead.
  async function guarded(container, fill) {
    try {
      await fill(container);
    } catch (e) {
      container.replaceChildren(h('p', { class: 'denied' }, describe(e)));
    }
  }

  // ---- pages -------------------------------------------------------------------------------

  async function loginPage(view) {
    const message = h('p', { id: 'login-message', class: 'hint' },
      'Paste a JWT token (as for pulsar-client\'s AuthenticationToken). It stays in this browser tab.');
    const form = h('form', { id: 'login', class: 'action' },
      h('label', {}, 'Token', h('textarea', { name: 'token', id: 'login-token', rows: 4, cols: 60 })),
      h('button', { type: 'submit' }, 'Sign in'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const candidate = form.elements.token.value.trim();
      const previous = token;
      token = candidate;
      try {
        // Any authenticated read tells a valid token from a bad one: 403 still means valid.
        await get('/admin/v2/clusters').catch((e) => {
          if (e instanceof ApiError && e.status === 403) return null;
          throw e;
        });
        sessionStorage.setItem(TOKEN_KEY, candidate);
        renderSession();
        const back = sessionStorage.getItem('magnetar-console-return');
        sessionStorage.removeItem('magnetar-console-return');
        location.hash = back && back !== '#/login' ? back : '#/';
      } catch (e) {
        token = previous;
        message.textContent = 'Sign-in failed: ' + describe(e);
        message.className = 'error';
      }
    });
    view.append(h('h1', {}, 'Sign in'), message, form);
  }

  async function overviewPage(view) {
    view.append(h('h1', {}, 'Overview'));
    const clusters = h('div');
    const ownership = h('div');
    const health = h('div');
    view.append(
      section('Clusters and brokers', 'clusters', clusters),
      section('Bundle ownership', 'ownership', ownership),
      section('This broker', 'health', health));
    await Promise.all([
      guarded(clusters, async (el) => {
        const names = await get('/admin/v2/clusters');
        const rows = await Promise.all(names.map(async (name) => {
          const [data, brokers] = await Promise.all([
            get('/admin/v2/clusters/' + enc(name)).catch(() => ({})),
            get('/admin/v2/brokers/' + enc(name)).catch((e) => [describe(e)]),
          ]);
          return [name, data.serviceUrl || '-', data.brokerServiceUrl || '-', brokers.join(', ') || '-'];
        }));
        el.replaceChildren(table('clusters-table',
          ['Cluster', 'Web service', 'Broker service', 'Active brokers'], rows, 'No clusters.'));
      }),
      guarded(ownership, async (el) => {
        const tenants = await get('/admin/v2/tenants');
        const namespaces = (await Promise.all(tenants.map((t) =>
          get('/admin/v2/namespaces/' + enc(t)).catch(() => [])))).flat().slice(0, MAX_ROWS);
        const rows = [];
        await Promise.all(namespaces.map(async (ns) => {
          const owners = await get('/admin/v2/namespaces/' + ns.split('/').map(enc).join('/') + '/owners')
            .catch(() => ({}));
          for (const [bundle, broker] of Object.entries(owners)) {
            rows.push([link('#/namespace/' + ns.split('/').map(enc).join('/'), ns), bundle, broker]);
          }
        }));
        rows.sort((a, b) => a[0].textContent.localeCompare(b[0].textContent));
        el.replaceChildren(table('ownership-table', ['Namespace', 'Bundle', 'Owner'], rows,
          'No bundle is owned right now: bundles are taken when a topic is first used.'));
      }),
      guarded(health, async (el) => {
        const answer = await get('/admin/v2/brokers/health');
        el.replaceChildren(h('p', { id: 'broker-health' }, 'Health check: ' + answer));
      }),
    ]);
  }

  async function tenantsPage(view) {
    view.append(h('h1', {}, 'Tenants'));
    const list = h('div');
    view.append(section('Tenants', 'tenants', list));
    const clusters = await get('/admin/v2/clusters').catch(() => []);
    await guarded(list, async (el) => {
      const names = await get('/admin/v2/tenants');
      const rows = await Promise.all(names.map(async (name) => {
        const info = await get('/admin/v2/tenants/' + enc(name)).catch(() => ({}));
        return [
          link('#/tenant/' + enc(name), name),
          (info.adminRoles || []).join(', ') || '-',
          (info.allowedClusters || []).join(', ') || '-',
          dangerButton('Delete', 'delete-tenant-' + name, async () => {
            await api('DELETE', '/admin/v2/tenants/' + enc(name));
            flash('Deleted tenant ' + name, 'ok');
            route();
          }),
        ];
      }));
      el.replaceChildren(table('tenants-table', ['Tenant', 'Admin roles', 'Allowed clusters', ''], rows,
        'No tenants.'));
    });
    view.append(section('Create a tenant', 'create-tenant',
      actionForm('create-tenant-form', [
        field('Name', 'name', { required: true, id: 'tenant-name' }),
        field('Admin roles (comma-separated)', 'roles', { id: 'tenant-roles' }),
        field('Allowed clusters', 'clusters', { id: 'tenant-clusters', value: clusters.join(',') }),
      ], 'Create tenant', async (v) => {
        const split = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
        await api('PUT', '/admin/v2/tenants/' + enc(v.name),
          { adminRoles: split(v.roles), allowedClusters: split(v.clusters) });
        location.hash = '#/tenant/' + enc(v.name);
        return 'Created tenant ' + v.name;
      })));
  }

  async function tenantPage(view, tenant) {
    view.append(h('p', { class: 'crumbs' }, link('#/tenants', 'Tenants'), ' / '), h('h1', {}, tenant));
    const info = h('div');
    const list = h('div');
    view.append(section('Tenant', 'tenant-info', info), section('Namespaces', 'namespaces', list));
    await Promise.all([
      guarded(info, async (el) => {
        const data = await get('/admin/v2/tenants/' + enc(tenant));
        el.replaceChildren(h('dl', {},
          h('dt', {}, 'Admin roles'), h('dd', {}, (data.adminRoles || []).join(', ') || '-'),
          h('dt', {}, 'Allowed clusters'), h('dd', {}, (data.allowedClusters || []).join(', ') || '-')));
      }),
      guarded(list, async (el) => {
        const names = await get('/admin/v2/namespaces/' + enc(tenant));
        const rows = names.map((full) => {
          const ns = full.split('/')[1];
          return [
            link('#/namespace/' + enc(tenant) + '/' + enc(ns), full),
            dangerButton('Delete', 'delete-namespace-' + ns, async () => {
              await api('DELETE', '/admin/v2/namespaces/' + enc(tenant) + '/' + enc(ns));
              flash('Deleted namespace ' + full, 'ok');
              route();
            }),
          ];
        });
        el.replaceChildren(table('namespaces-table', ['Namespace', ''], rows, 'No namespaces.'));
      }),
    ]);
    view.append(section('Create a namespace', 'create-namespace',
      actionForm('create-namespace-form', [field('Name', 'name', { required: true, id: 'namespace-name' })],
        'Create namespace', async (v) => {
          await api('PUT', '/admin/v2/namespaces/' + enc(tenant) + '/' + enc(v.name));
          location.hash = '#/namespace/' + enc(tenant) + '/' + enc(v.name);
          return 'Created namespace ' + tenant + '/' + v.name;
        })));
  }

  // The short name of `persistent://t/ns/topic`.
  function shortName(full) {
    return full.split('/').slice(4).join('/') || full;
  }

  function backlogOf(stats) {
    return Object.values(stats.subscriptions || {}).reduce((sum, s) => sum + (s.msgBacklog || 0), 0);
  }

  function consumersOf(stats) {
    return Object.values(stats.subscriptions || {}).reduce((sum, s) => sum + (s.consumers || []).length, 0);
  }

  async function namespacePage(view, tenant, ns) {
    const base = enc(tenant) + '/' + enc(ns);
    view.append(
      h('p', { class: 'crumbs' }, link('#/tenants', 'Tenants'), ' / ', link('#/tenant/' + enc(tenant), tenant), ' / '),
      h('h1', {}, tenant + '/' + ns));
    const topics = h('div');
    const permissions = h('div');
    const policies = h('div');
    view.append(
      section('Topics', 'topics', h('p', { class: 'hint' }, 'Rates refresh every 2 s.'), topics),
      section('Create a topic', 'create-topic', actionForm('create-topic-form', [
        field('Name', 'name', { required: true, id: 'topic-name' }),
        field('Partitions (0: not partitioned)', 'partitions', { type: 'number', min: 0, value: '0', id: 'topic-partitions' }),
      ], 'Create topic', async (v) => {
        const partitions = Number(v.partitions || 0);
        const path = '/admin/v2/persistent/' + base + '/' + enc(v.name);
        if (partitions > 0) await api('PUT', path + '/partitions', partitions);
        else await api('PUT', path);
        route();
        return 'Created topic ' + v.name;
      })),
      section('Permissions', 'permissions', permissions),
      section('Bundles and replication', 'policies', policies));

    // Topics with live figures.
    await guarded(topics, async (el) => {
      const [names, partitioned] = await Promise.all([
        get('/admin/v2/persistent/' + base),
        get('/admin/v2/persistent/' + base + '/partitioned').catch(() => []),
      ]);
      const all = [...new Set([...partitioned, ...names.filter((n) => !/-partition-\d+$/.test(n))])].sort();
      const shown = all.slice(0, MAX_ROWS);
      const cells = {};
      const rows = shown.map((full) => {
        const name = shortName(full);
        const row = ['msgRateIn', 'msgRateOut', 'backlog', 'storage', 'producers', 'consumers']
          .map((k) => (cells[full + k] = h('span', { class: 'num', id: 'topic-' + name + '-' + k }, '…')));
        return [
          link('#/topic/' + base + '/' + enc(name), name),
          ...row,
          dangerButton('Delete', 'delete-topic-' + name, async () => {
            const path = '/admin/v2/persistent/' + base + '/' + enc(name);
            // Confirmed twice: its subscriptions go with it (and its clients are closed).
            await api('DELETE', (partitioned.includes(full) ? path + '/partitions' : path) + '?force=true');
            flash('Deleted topic ' + name, 'ok');
            route();
          }),
        ];
      });
      el.replaceChildren(table('topics-table',
        ['Topic', 'Msg/s in', 'Msg/s out', 'Backlog', 'Storage', 'Producers', 'Consumers', ''], rows,
        'No topics yet.'));
      if (all.length > shown.length) el.append(h('p', { class: 'hint' }, 'First ' + MAX_ROWS + ' of ' + all.length + ' topics.'));
      if (!shown.length) return;
      every(view, async () => {
        await Promise.all(shown.map(async (full) => {
          const path = '/admin/v2/persistent/' + base + '/' + enc(shortName(full)) +
            (partitioned.includes(full) ? '/partitioned-stats' : '/stats');
          const stats = await get(path).catch(() => null);
          if (!stats) return;
          cells[full + 'msgRateIn'].textContent = rate(stats.msgRateIn);
          cells[full + 'msgRateOut'].textContent = rate(stats.msgRateOut);
          cells[full + 'backlog'].textContent = backlogOf(stats);
          cells[full + 'storage'].textContent = bytes(stats.storageSize);
          cells[full + 'producers'].textContent = (stats.publishers || []).length;
          cells[full + 'consumers'].textContent = consumersOf(stats);
        }));
      });
    });

    await guarded(permissions, async (el) => {
      const granted = await get('/admin/v2/namespaces/' + base + '/permissions');
      const rows = Object.entries(granted).sort().map(([role, actions]) => [
        role,
        actions.join(', '),
        dangerButton('Revoke', 'revoke-' + role, async () => {
          await api('DELETE', '/admin/v2/namespaces/' + base + '/permissions/' + enc(role));
          flash('Revoked the permissions of ' + role, 'ok');
          route();
        }),
      ]);
      el.replaceChildren(
        table('permissions-table', ['Role', 'Actions', ''], rows, 'No role has been granted anything here.'),
        actionForm('grant-form', [
          field('Role', 'role', { required: true, id: 'grant-role' }),
          h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'produce', id: 'grant-produce', checked: true }), 'produce'),
          h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'consume', id: 'grant-consume', checked: true }), 'consume'),
        ], 'Grant', async (v) => {
          const actions = ['produce', 'consume'].filter((a) => v[a]);
          await api('POST', '/admin/v2/namespaces/' + base + '/permissions/' + enc(v.role), actions);
          route();
          return 'Granted ' + actions.join(', ') + ' to ' + v.role;
        }));
    });

    await guarded(policies, async (el) => {
      const [owners, replication] = await Promise.all([
        get('/admin/v2/namespaces/' + base + '/owners').catch(() => ({})),
        get('/admin/v2/namespaces/' + base + '/replication').catch(() => []),
      ]);
      el.replaceChildren(
        h('p', { id: 'replication-clusters' }, 'Replication clusters: ' + (replication.join(', ') || '-')),
        table('owners-table', ['Bundle', 'Owner'], Object.entries(owners), 'No bundle of this namespace is owned right now.'));
    });
  }

  const TOPIC_FIGURES = [
    ['msgRateIn', 'Msg/s in', rate],
    ['msgRateOut', 'Msg/s out', rate],
    ['msgThroughputIn', 'Bytes/s in', (n) => bytes(n) + '/s'],
    ['msgThroughputOut', 'Bytes/s out', (n) => bytes(n) + '/s'],
    ['msgInCounter', 'Messages in', (n) => n],
    ['msgOutCounter', 'Messages out', (n) => n],
    ['backlog', 'Backlog', (n) => n],
    ['storageSize', 'Storage', bytes],
  ];

  function renderPayload(payload, format) {
    const raw = atob(payload);
    const data = Uint8Array.from(raw, (c) => c.charCodeAt(0));
    if (format === 'hex') {
      const lines = [];
      for (let i = 0; i < data.length; i += 16) {
        const chunk = Array.from(data.slice(i, i + 16));
        const hex = chunk.map((b) => b.toString(16).padStart(2, '0')).join(' ');
        const text = chunk.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
        lines.push(i.toString(16).padStart(8, '0') + '  ' + hex.padEnd(48) + '  ' + text);
      }
      return lines.join('\n');
    }
    const text = new TextDecoder('utf-8', { fatal: false }).decode(data);
    if (format === 'json') {
      try {
        return JSON.stringify(JSON.parse(text), null, 2);
      } catch (_) {
        return '(not JSON) ' + text;
      }
    }
    return text;
  }

  async function topicPage(view, tenant, ns, topic) {
    const base = enc(tenant) + '/' + enc(ns);
    const path = '/admin/v2/persistent/' + base + '/' + enc(topic);
    view.append(
      h('p', { class: 'crumbs' }, link('#/tenants', 'Tenants'), ' / ', link('#/tenant/' + enc(tenant), tenant), ' / ',
        link('#/namespace/' + base, ns), ' / '),
      h('h1', {}, 'persistent://' + tenant + '/' + ns + '/' + topic));
    const meta = await get(path + '/partitions').catch(() => ({ partitions: 0 }));
    const partitioned = (meta.partitions || 0) > 0;

    const figures = {};
    const cards = h('div', { class: 'cards', id: 'topic-figures' }, TOPIC_FIGURES.map(([key, label]) =>
      h('div', { class: 'card' }, h('div', { class: 'label' }, label),
        (figures[key] = h('div', { class: 'value', id: 'stat-' + key }, '…')))));
    const producers = h('div');
    const subscriptions = h('div');
    const replication = h('div');
    const ledgers = h('div');
    const cursors = h('div');
    view.append(
      h('p', { class: 'hint' }, 'Figures refresh every 2 s.'),
      cards,
      dangerButton('Delete topic and its subscriptions', 'delete-topic', async () => {
        await api('DELETE', (partitioned ? path + '/partitions' : path) + '?force=true');
        flash('Deleted topic ' + topic, 'ok');
        location.hash = '#/namespace/' + base;
      }));
    if (partitioned) {
      view.append(section('Partitions', 'partitions', table('partitions-table', ['Partition'],
        Array.from({ length: meta.partitions }, (_, i) =>
          [link('#/topic/' + base + '/' + enc(topic + '-partition-' + i), topic + '-partition-' + i)]))));
    }
    view.append(
      section('Producers', 'producers', producers),
      section('Subscriptions', 'subscriptions', subscriptions));

    let subscriptionNames = [];
    const subSelects = [];
    function subscriptionSelect(name, id) {
      const select = h('select', { name, id });
      subSelects.push(select);
      return select;
    }
    function updateSubscriptionSelects(names) {
      if (names.join('\n') === subscriptionNames.join('\n')) return;
      subscriptionNames = names;
      for (const select of subSelects) {
        const current = select.value;
        select.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
        if (names.includes(current)) select.value = current;
      }
    }

    if (!partitioned) {
      const peekOut = h('div', { id: 'peek-result' });
      let peeked = [];
      const formatSelect = h('select', { name: 'format', id: 'peek-format' },
        h('option', { value: 'text' }, 'text'), h('option', { value: 'hex' }, 'hex'), h('option', { value: 'json' }, 'JSON'));
      const showPeeked = () => {
        peekOut.replaceChildren(peeked.length
          ? h('ol', { class: 'messages' }, peeked.map((m) => h('li', { class: 'message' },
            h('div', { class: 'message-meta' },
              'ID ' + m.messageId + ' · published ' + when(m.publishTime) +
              (m.key ? ' · key ' + m.key : '') +
              (Object.keys(m.properties || {}).length ? ' · properties ' + JSON.stringify(m.properties) : '')),
            h('pre', { class: 'payload' }, renderPayload(m.payload, formatSelect.value)))))
          : h('p', { class: 'empty' }, 'The backlog is empty.'));
      };
      formatSelect.addEventListener('change', showPeeked);
      const subPath = (sub) => path + '/subscription/' + enc(sub);
      view.append(section('Subscription actions', 'subscription-actions',
        actionForm('skip-form', [
          h('label', {}, 'Subscription', subscriptionSelect('subscription', 'skip-subscription')),
          field('Messages', 'count', { type: 'number', min: 1, value: '1', id: 'skip-count' }),
        ], 'Skip', async (v) => {
          await api('POST', subPath(v.subscription) + '/skip/' + enc(v.count));
          return 'Skipped ' + v.count + ' messages on ' + v.subscription;
        }),
        actionForm('clear-form', [
          h('label', {}, 'Subscription', subscriptionSelect('subscription', 'clear-subscription')),
        ], 'Clear backlog', async (v) => {
          await api('POST', subPath(v.subscription) + '/skip_all');
          return 'Cleared the backlog of ' + v.subscription;
        }),
        actionForm('reset-form', [
          h('label', {}, 'Subscription', subscriptionSelect('subscription', 'reset-subscription')),
          field('Minutes ago', 'minutes', { type: 'number', min: 0, value: '60', id: 'reset-minutes' }),
        ], 'Reset cursor', async (v) => {
          const at = Date.now() - Number(v.minutes || 0) * 60000;
          await api('POST', subPath(v.subscription) + '/resetcursor/' + at);
          return 'Reset ' + v.subscription + ' to ' + when(at);
        })));
      view.append(section('Peek messages', 'peek',
        h('p', { class: 'hint' }, 'The first messages of a subscription\'s backlog, without consuming them.'),
        actionForm('peek-form', [
          h('label', {}, 'Subscription', subscriptionSelect('subscription', 'peek-subscription')),
          field('Count', 'count', { type: 'number', min: 1, max: 100, value: '10', id: 'peek-count' }),
          h('label', {}, 'Show as', formatSelect),
        ], 'Peek', async (v) => {
          peeked = await request('/console/peek/' + base + '/' + enc(topic) + '/' + enc(v.subscription) +
            '?count=' + enc(v.count || 10), { headers: authHeaders() });
          showPeeked();
          return null;
        }),
        peekOut));
    }
    view.append(
      section('Replication', 'replication', replication),
      section('Ledgers', 'ledgers', ledgers),
      section('Cursors', 'cursors', cursors));

    await every(view, async () => {
      const stats = await get(path + (partitioned ? '/partitioned-stats' : '/stats'));
      stats.backlog = backlogOf(stats);
      for (const [key, , format] of TOPIC_FIGURES) figures[key].textContent = format(stats[key] || 0);
      producers.replaceChildren(table('producers-table', ['Producer', 'Msg/s in', 'Address'],
        (stats.publishers || []).map((p) => [p.producerName || '-', rate(p.msgRateIn), p.address || '-']),
        'No producers.'));
      const subs = Object.entries(stats.subscriptions || {}).sort();
      subscriptions.replaceChildren(table('subscriptions-table',
        ['Subscription', 'Type', 'Backlog', 'Unacked', 'Delayed', 'Consumers'],
        subs.map(([name, s]) => [name, s.type || '-', s.msgBacklog || 0, s.unackedMessages || 0,
          s.msgDelayed || 0, (s.consumers || []).map((c) => c.consumerName).join(', ') || '-']),
        'No subscriptions.'));
      updateSubscriptionSelects(subs.map(([name]) => name));
      replication.replaceChildren(table('replication-table',
        ['Remote cluster', 'Connected', 'Msg/s out', 'Msg/s in', 'Backlog', 'Delay (s)', 'Last error'],
        Object.entries(stats.replication || {}).sort().map(([cluster, r]) => [cluster,
          r.connected ? 'yes' : 'no', rate(r.msgRateOut), rate(r.msgRateIn), r.replicationBacklog || 0,
          rate(r.replicationDelayInSeconds), r.lastError || '-']),
        'This topic does not replicate.'));
      if (partitioned) return;
      const internal = await get(path + '/internalStats').catch(() => null);
      if (!internal) return;
      const storedOn = (l) => (!l.offloaded ? 'bookies'
        : l.bookieDeleted ? 'tiered storage' : 'bookies + tiered storage');
      ledgers.replaceChildren(table('ledgers-table', ['Ledger', 'Entries', 'Size', 'Stored on'],
        (internal.ledgers || []).map((l) => [l.ledgerId, l.entries, bytes(l.size), storedOn(l)]),
        'No ledgers.'));
      cursors.replaceChildren(table('cursors-table', ['Cursor', 'Mark-delete', 'Read position', 'Backlog'],
        Object.entries(internal.cursors || {}).sort().map(([name, c]) => [name, c.markDeletePosition,
          c.readPosition, c.numberOfEntriesSinceFirstNotAckedMessage]), 'No cursors.'));
    });
  }

  // ---- routing -----------------------------------------------------------------------------

  const ROUTES = [
    [/^#?\/?$/, overviewPage, 'nav-overview'],
    [/^#\/login$/, loginPage, null],
    [/^#\/tenants$/, tenantsPage, 'nav-tenants'],
    [/^#\/tenant\/([^/]+)$/, tenantPage, 'nav-tenants'],
    [/^#\/namespace\/([^/]+)\/([^/]+)$/, namespacePage, 'nav-tenants'],
    [/^#\/topic\/([^/]+)\/([^/]+)\/([^/]+)$/, topicPage, 'nav-tenants'],
  ];

  async function route() {
    stopRefresh();
    const main = document.getElementById('main');
    const hash = location.hash || '#/';
    for (const nav of document.querySelectorAll('header nav a')) nav.classList.remove('active');
    for (const [pattern, page, nav] of ROUTES) {
      const match = hash.match(pattern);
      if (!match) continue;
      if (nav) document.getElementById(nav).classList.add('active');
      const view = h('div', { class: 'view' });
      main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
      let args;
      try {
        args = match.slice(1).map(decodeURIComponent);
      } catch (_) {
        main.replaceChildren(h('p', { class: 'error' }, 'Malformed address.'));
        return;
      }
      // Shown at once; pages fill their sections as answers arrive.
      main.replaceChildren(view);
      try {
        await page(view, ...args);
      } catch (e) {
        if (view.isConnected) view.append(h('p', { class: 'error', id: 'page-error' }, describe(e)));
      }
      return;
    }
    main.replaceChildren(h('p', { class: 'error' }, 'No such page.'));
  }

  function goTo(text) {
    const value = text.trim().replace(/^(persistent|non-persistent):\/\//, '');
    const parts = value.split('/').filter(Boolean).map(enc);
    if (parts.length === 1) location.hash = '#/tenant/' + parts[0];
    else if (parts.length === 2) location.hash = '#/namespace/' + parts.join('/');
    else if (parts.length === 3) location.hash = '#/topic/' + parts.join('/');
    else flash('Type a tenant, tenant/namespace or tenant/namespace/topic.', 'error');
  }

  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('goto').addEventListener('submit', (event) => {
      event.preventDefault();
      goTo(document.getElementById('goto-input').value);
    });
    renderSession();
    window.addEventListener('hashchange', route);
    route();
  });
})();
