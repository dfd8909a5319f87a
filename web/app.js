// airlock web chat. Talks only to the server that served this page (same origin; the
// Content-Security-Policy forbids anything else). The conversation lives in localStorage.
'use strict';

const $ = (id) => document.getElementById(id);
const store = window.localStorage;
let messages = JSON.parse(store.getItem('airlock.messages') || '[]');
let controller = null;

function headers() {
  const h = { 'content-type': 'application/json' };
  const key = $('apikey').value.trim();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

function save() {
  store.setItem('airlock.messages', JSON.stringify(messages));
  store.setItem('airlock.settings', JSON.stringify({
    key: $('apikey').value, system: $('system').value,
    temperature: $('temperature').value, maxtokens: $('maxtokens').value,
  }));
}

// Render text with ``` fenced code blocks as <pre><code> and a copy button. Built with DOM
// nodes and textContent only: model output is never interpreted as HTML.
function renderText(el, text) {
  el.replaceChildren();
  const parts = text.split('```');
  parts.forEach((part, i) => {
    if (i % 2 === 0) {
      if (part) el.appendChild(document.createTextNode(part));
      return;
    }
    const nl = part.indexOf('\n');
    const body = nl >= 0 ? part.slice(nl + 1) : part;
    const pre = document.createElement('pre');
    const code = document.createElement('code');
    code.textContent = body;
    const btn = document.createElement('button');
    btn.className = 'copy';
    btn.type = 'button';
    btn.textContent = 'Copy';
    btn.addEventListener('click', () => {
      navigator.clipboard.writeText(body).then(() => { btn.textContent = 'Copied'; },
        () => { btn.textContent = 'Copy failed'; });
    });
    pre.append(btn, code);
    el.appendChild(pre);
  });
}

function addBubble(role, text, cls) {
  const div = document.createElement('div');
  div.className = `msg ${role}${cls ? ' ' + cls : ''}`;
  const label = document.createElement('div');
  label.className = 'role';
  label.textContent = role;
  const body = document.createElement('div');
  body.className = 'body';
  renderText(body, text);
  div.append(label, body);
  $('messages').appendChild(div);
  $('messages').scrollTop = $('messages').scrollHeight;
  return body;
}

function redraw() {
  $('messages').replaceChildren();
  for (const m of messages) addBubble(m.role, m.content);
}

async function loadModels() {
  try {
    const r = await fetch('/v1/models', { headers: headers() });
    if (r.status === 401) { $('status').textContent = 'enter an API key (Settings)'; return; }
    const j = await r.json();
    const sel = $('model');
    sel.replaceChildren();
    for (const m of j.data) {
      const o = document.createElement('option');
      o.value = m.id; o.textContent = m.id;
      sel.appendChild(o);
    }
    $('status').textContent = 'ready';
  } catch (e) {
    $('status').textContent = `server unreachable: ${e.message}`;
  }
}

async function loadStatus() {
  try {
    const j = await (await fetch('/status')).json();
    const dl = $('serverinfo');
    dl.replaceChildren();
    const rows = [
      ['Model', `${j.model.id} (${j.model.type})`], ['Model SHA-256', j.model.sha256],
      ['Version', j.model.version || 'not from the model store'], ['Signer', j.model.signer || 'not from a verified bundle'], ['Uptime', `${j.uptime_s} s`],
      ['Tokens/s (last request)', j.tokens_per_second.toFixed(1)], ['Lockdown', j.lockdown],
      ['Audit chain head', j.audit.head || 'audit log off'], ['Audit records', String(j.audit.records)],
    ];
    for (const [k, v] of rows) {
      const dt = document.createElement('dt'); dt.textContent = k;
      const dd = document.createElement('dd'); dd.textContent = v;
      dl.append(dt, dd);
    }
    if (j.model.note) $('note').textContent = j.model.note;
  } catch { /* status is informational */ }
}

async function send(text) {
  messages.push({ role: 'user', content: text });
  addBubble('user', text);
  save();
  const body = addBubble('assistant', '');
  const sys = $('system').value.trim();
  const req = {
    model: $('model').value || undefined,
    messages: (sys ? [{ role: 'system', content: sys }] : []).concat(messages),
    temperature: Number($('temperature').value),
    max_tokens: Number($('maxtokens').value),
    stream: true,
    stream_options: { include_usage: true },
  };
  controller = new AbortController();
  $('stop').disabled = false;
  $('send').disabled = true;
  let out = '';
  let first = 0;
  let tokens = 0;
  try {
    const r = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(), body: JSON.stringify(req), signal: controller.signal,
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error((j.error && j.error.message) || `HTTP ${r.status}`);
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') continue;
          const j = JSON.parse(data);
          if (j.error) throw new Error(j.error.message);
          if (j.usage) tokens = j.usage.completion_tokens;
          for (const c of j.choices || []) {
            const d = c.delta && c.delta.content;
            if (!d) continue;
            if (!first) first = performance.now();
            tokens++;
            out += d;
            renderText(body, out);
            $('messages').scrollTop = $('messages').scrollHeight;
            const secs = (performance.now() - first) / 1000;
            if (secs > 0) $('speed').textContent = `${(tokens / secs).toFixed(1)} tokens/s`;
          }
        }
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') {
      body.parentElement.classList.add('error');
      out += (out ? '\n' : '') + `[error: ${e.message}]`;
      renderText(body, out);
    } else {
      out += ' [stopped]';
      renderText(body, out);
    }
  } finally {
    controller = null;
    $('stop').disabled = true;
    $('send').disabled = false;
    messages.push({ role: 'assistant', content: out });
    save();
    loadStatus();
  }
}

function init() {
  const s = JSON.parse(store.getItem('airlock.settings') || '{}');
  if (s.key) $('apikey').value = s.key;
  if (s.system) $('system').value = s.system;
  if (s.temperature) $('temperature').value = s.temperature;
  if (s.maxtokens) $('maxtokens').value = s.maxtokens;
  redraw();
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('input').value.trim();
    if (!text || controller) return;
    $('input').value = '';
    send(text);
  });
  $('input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); $('composer').requestSubmit(); }
  });
  $('stop').addEventListener('click', () => { if (controller) controller.abort(); });
  $('clear').addEventListener('click', () => { messages = []; save(); redraw(); });
  $('apikey').addEventListener('change', () => { save(); loadModels(); });
  for (const id of ['system', 'temperature', 'maxtokens']) $(id).addEventListener('change', save);
  loadModels();
  loadStatus();
}

document.addEventListener('DOMContentLoaded', init);
