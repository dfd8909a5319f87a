// The offline chat page in Debian's headless Chromium, driven by playwright-core.
// Env: AIRLOCK_URL, AIRLOCK_KEY, ARTIFACTS (directory for the screenshot).
// Checks: CSP header, streamed tokens appear, the stop button stops a generation, and the page
// makes no request to any origin but the server's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const base = process.env.AIRLOCK_URL;
const key = process.env.AIRLOCK_KEY;
const artifacts = process.env.ARTIFACTS || '.';

test('web chat: stream, stop, no external requests', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const requests = [];
  try {
    const page = await browser.newPage();
    page.on('request', (r) => requests.push(r.url()));
    const resp = await page.goto(`${base}/`);
    assert.equal(resp.status(), 200);
    const csp = resp.headers()['content-security-policy'];
    assert.ok(csp && csp.includes("default-src 'none'") && csp.includes("connect-src 'self'"), `CSP: ${csp}`);
    const html = await resp.text();
    assert.doesNotMatch(html, /https?:\/\//, 'no absolute URL in the page');

    await page.fill('#apikey', key);
    await page.dispatchEvent('#apikey', 'change');
    await page.waitForFunction(() => document.querySelectorAll('#model option').length > 0);
    // 512 tokens: at ~2900 tok/s on one thread, 64 (about 20 ms) could reach the page as one
    // network read, and then as one DOM update
    await page.fill('#maxtokens', '512');
    await page.fill('#temperature', '0');

    // 1. a message streams in: record the assistant text as it grows
    await page.evaluate(() => {
      window.__lengths = [];
      const obs = new MutationObserver(() => {
        const bodies = document.querySelectorAll('.msg.assistant .body');
        const b = bodies[bodies.length - 1];
        if (b) window.__lengths.push(b.textContent.length);
      });
      obs.observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
    });
    await page.fill('#input', 'Once upon a time');
    await page.click('#send');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 1 &&
      !document.getElementById('send').disabled);
    const seen = await page.evaluate(() => window.__lengths);
    const distinct = new Set(seen.filter((n) => n > 0));
    assert.ok(distinct.size >= 2, `text arrived in several pieces: ${JSON.stringify(seen.slice(0, 20))}`);
    const first = await page.textContent('.msg.assistant .body');
    assert.ok(first.length > 0);
    assert.match(await page.textContent('#speed'), /tokens\/s/);

    // 2. the stop button stops a long generation
    await page.fill('#maxtokens', '32768');
    await page.fill('#temperature', '1');
    await page.fill('#input', 'Tell me a very long story');
    await page.click('#send');
    await page.waitForFunction(() => {
      const b = document.querySelectorAll('.msg.assistant .body');
      return b.length === 2 && b[1].textContent.length > 0;
    });
    await page.click('#stop');
    await page.waitForFunction(() => !document.getElementById('send').disabled);
    const second = (await page.$$eval('.msg.assistant .body', (els) => els.map((e) => e.textContent)))[1];
    assert.match(second, /\[stopped\]$/);

    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: `${artifacts}/web-chat.png`, fullPage: true });

    // 3. conversation survives a reload (kept in the browser)
    await page.reload();
    assert.equal(await page.locator('.msg.user').count(), 2);
  } finally {
    await browser.close();
  }
  const origin = new URL(base).origin;
  const foreign = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:'));
  assert.deepEqual(foreign, [], 'every request went to the server itself');
  assert.ok(requests.length >= 4);
});
