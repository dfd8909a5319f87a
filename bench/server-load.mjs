// server-load.mjs -- a small load generator for OpenAI-compatible servers (airlock serve,
// llama-server), using only Node's built-in fetch. N closed-loop clients each send streaming
// (SSE) requests to /v1/completions or /v1/chat/completions, one after another, either a fixed
// number of requests in all (--requests) or for a fixed time (--seconds). Tokens are counted
// from the final usage chunk (stream_options.include_usage) or, failing that, one per content
// chunk. Prints one JSON object on stdout:
//   {concurrency, requests, ok, errors, statuses, tokens, wall_s, tok_s, ttft_p50_ms, ttft_p99_ms,
//    lat_p50_ms, lat_p99_ms, stream_tok_s}
// Usage: node server-load.mjs --url http://127.0.0.1:PORT [--key KEY] [--model ID]
//          [--endpoint completions|chat] [--concurrency N] [--requests N | --seconds S]
//          [--max-tokens N] [--prompt TEXT] [--no-stream] [--unique]
// Only loopback URLs are accepted.

const args = { url: '', key: '', model: '', endpoint: 'completions', concurrency: 1, requests: 0,
  seconds: 0, 'max-tokens': 64, prompt: 'Once upon a time', stream: true, unique: false };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--no-stream') { args.stream = false; continue; }
  if (a === '--unique') { args.unique = true; continue; }
  if (!a.startsWith('--') || i + 1 >= process.argv.length) {
    console.error(`server-load: bad argument ${a}`);
    process.exit(2);
  }
  args[a.slice(2)] = process.argv[++i];
}
const conc = Number(args.concurrency), maxTokens = Number(args['max-tokens']);
const nReq = Number(args.requests), seconds = Number(args.seconds);
const host = (() => { try { return new URL(args.url).hostname; } catch { return ''; } })();
if (!['127.0.0.1', 'localhost', '[::1]'].includes(host) || !(conc >= 1) || !(nReq > 0 || seconds > 0)) {
  console.error('server-load: need --url http://127.0.0.1:PORT, --concurrency >= 1 and --requests or --seconds');
  process.exit(2);
}

const path = args.endpoint === 'chat' ? '/v1/chat/completions' : '/v1/completions';
function body(n) {
  // --unique puts the request's number in front of the prompt so that no server can reuse a
  // cached prompt prefix from an earlier request
  const prompt = args.unique ? `Request ${n}. ${args.prompt}` : args.prompt;
  const b = { max_tokens: maxTokens, temperature: 0, stream: args.stream };
  if (args.model) b.model = args.model;
  if (args.stream) b.stream_options = { include_usage: true };
  if (args.endpoint === 'chat') b.messages = [{ role: 'user', content: prompt }];
  else b.prompt = prompt;
  return JSON.stringify(b);
}
const headers = { 'content-type': 'application/json' };
if (args.key) headers.authorization = `Bearer ${args.key}`;

// one request; returns {status, tokens, ttft_ms, lat_ms, error}
async function one(n) {
  const t0 = performance.now();
  let ttft = -1, chunks = 0, usage = -1;
  try {
    const r = await fetch(args.url + path, { method: 'POST', headers, body: body(n) });
    if (r.status !== 200) {
      await r.text();
      return { status: r.status, tokens: 0, ttft_ms: -1, lat_ms: performance.now() - t0 };
    }
    if (!args.stream) {
      const j = await r.json();
      const lat = performance.now() - t0;
      return { status: 200, tokens: j.usage ? j.usage.completion_tokens : 0, ttft_ms: lat, lat_ms: lat };
    }
    const dec = new TextDecoder();
    let buf = '', done = false;
    for await (const part of r.body) {
      buf += dec.decode(part, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') { done = true; continue; }
        let j;
        try { j = JSON.parse(data); } catch { continue; }
        if (j.usage && typeof j.usage.completion_tokens === 'number') usage = j.usage.completion_tokens;
        const c = j.choices && j.choices[0];
        const text = c ? (c.text ?? (c.delta && c.delta.content)) : null;
        if (text) {
          if (ttft < 0) ttft = performance.now() - t0;
          chunks++;
        }
      }
    }
    const lat = performance.now() - t0;
    if (!done) return { status: 200, tokens: 0, ttft_ms: ttft, lat_ms: lat, error: 'no [DONE]' };
    return { status: 200, tokens: usage >= 0 ? usage : chunks, ttft_ms: ttft, lat_ms: lat };
  } catch (e) {
    return { status: 0, tokens: 0, ttft_ms: -1, lat_ms: performance.now() - t0, error: String(e) };
  }
}

function pct(v, p) {
  if (!v.length) return null;
  const s = [...v].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] * 10) / 10;
}

const results = [];
let issued = 0;
const start = performance.now();
const deadline = seconds > 0 ? start + seconds * 1000 : Infinity;
async function client() {
  for (;;) {
    if (nReq > 0 && issued >= nReq) return;
    if (performance.now() >= deadline) return;
    results.push(await one(issued++));
  }
}
await Promise.all(Array.from({ length: conc }, client));
const wall = (performance.now() - start) / 1000;
const ok = results.filter((r) => r.status === 200 && !r.error);
const statuses = {};
for (const r of results) statuses[r.status] = (statuses[r.status] || 0) + 1;
const tokens = ok.reduce((a, r) => a + r.tokens, 0);
const streamRates = ok.filter((r) => r.tokens > 1 && r.lat_ms > r.ttft_ms && r.ttft_ms >= 0)
  .map((r) => (r.tokens - 1) / ((r.lat_ms - r.ttft_ms) / 1000));
const errs = results.filter((r) => r.error).map((r) => r.error);
console.log(JSON.stringify({
  concurrency: conc, requests: results.length, ok: ok.length, errors: results.length - ok.length,
  statuses, first_error: errs[0] || null, tokens, wall_s: Math.round(wall * 100) / 100,
  tok_s: Math.round((tokens / wall) * 10) / 10,
  ttft_p50_ms: pct(ok.map((r) => r.ttft_ms), 50), ttft_p99_ms: pct(ok.map((r) => r.ttft_ms), 99),
  lat_p50_ms: pct(ok.map((r) => r.lat_ms), 50), lat_p99_ms: pct(ok.map((r) => r.lat_ms), 99),
  stream_tok_s: streamRates.length
    ? Math.round((streamRates.reduce((a, b) => a + b, 0) / streamRates.length) * 10) / 10 : null,
}));
