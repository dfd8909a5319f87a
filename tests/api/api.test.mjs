// The official OpenAI and Anthropic clients against a live `airlock serve` on 127.0.0.1.
// Env: AIRLOCK_URL (http://127.0.0.1:PORT), AIRLOCK_KEY (a valid API key), AIRLOCK_MODEL (id).
// The clients are used exactly as an application would, changing only base URL and key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const base = process.env.AIRLOCK_URL;
const key = process.env.AIRLOCK_KEY;
const model = process.env.AIRLOCK_MODEL;
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });

async function raw(path, init = {}) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...(init.headers || {}) };
  const r = await fetch(`${base}${path}`, { ...init, headers });
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body, text, headers: r.headers };
}

function assertOpenAIError(body) {
  assert.ok(body && body.error, 'error object present');
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in body.error, `error.${k} present`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
}

test('models list and retrieve', async () => {
  const list = await openai.models.list();
  const ids = list.data.map((m) => m.id);
  assert.deepEqual(ids, [model]);
  const m = await openai.models.retrieve(model);
  assert.equal(m.id, model);
  await assert.rejects(openai.models.retrieve('no-such-model'), (e) => e.status === 404);
});

test('chat completion', async () => {
  const r = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 16, temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 16);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('max_tokens gives finish_reason length; same seed gives the same text', async () => {
  const req = { model, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 8, temperature: 0.9, seed: 42 };
  const a = await openai.chat.completions.create(req);
  const b = await openai.chat.completions.create(req);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  if (a.usage.completion_tokens === 8) assert.equal(a.choices[0].finish_reason, 'length');
});

test('chat streaming with usage', async () => {
  const stream = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 24, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta && c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks > 2, 'several chunks');
  assert.ok(text.length > 0);
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage && usage.completion_tokens > 0);
  // streaming and non-streaming greedy output agree
  const r = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 24, temperature: 0,
  });
  assert.equal(r.choices[0].message.content, text);
});

test('stop strings end the text before the stop', async () => {
  const r0 = await openai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40, temperature: 0 });
  const full = r0.choices[0].text;
  const words = full.trim().split(/\s+/);
  assert.ok(words.length > 3, `enough text to pick a stop word from: ${JSON.stringify(full)}`);
  const stop = words[2];
  const r = await openai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: [stop] });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
});

test('completions, logprobs', async () => {
  const r = await openai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, logprobs: 3 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  const c = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  const lp = c.choices[0].logprobs.content;
  assert.ok(lp.length > 0);
  for (const e of lp) {
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 2);
    // greedy: the chosen token is the most likely one
    assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4);
  }
});

test('anthropic messages, plain and streaming', async () => {
  const m = await anthropic.messages.create({
    model, max_tokens: 16, system: 'You tell stories.', messages: [{ role: 'user', content: 'Once upon a time' }],
  });
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(m.content[0].type, 'text');
  assert.ok(m.content[0].text.length > 0);
  assert.ok(['end_turn', 'max_tokens', 'stop_sequence'].includes(m.stop_reason));
  assert.ok(m.usage.input_tokens > 0 && m.usage.output_tokens > 0);
  const events = [];
  let text = '';
  const stream = anthropic.messages.stream({ model, max_tokens: 16, messages: [{ role: 'user', content: 'Once upon a time' }] });
  for await (const ev of stream) {
    events.push(ev.type);
    if (ev.type === 'content_block_delta') text += ev.delta.text;
  }
  assert.equal(events[0], 'message_start');
  assert.equal(events[events.length - 1], 'message_stop');
  assert.ok(events.includes('content_block_start') && events.includes('message_delta'));
  assert.ok(text.length > 0);
  const final = await stream.finalMessage();
  assert.equal(final.content[0].text, text);
});

test('JSON mode: json_schema output always parses and follows the schema', async () => {
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string', maxLength: 24 },
      happy: { type: 'boolean' },
      age: { type: 'integer' },
      color: { enum: ['red', 'green', 'blue'] },
    },
    required: ['name', 'happy', 'age', 'color'],
  };
  for (const seed of [1, 2, 3]) {
    const r = await openai.chat.completions.create({
      model, messages: [{ role: 'user', content: 'Describe a cat' }], temperature: 0.8, seed,
      response_format: { type: 'json_schema', json_schema: { name: 'cat', schema } },
    });
    assert.equal(r.choices[0].finish_reason, 'stop');
    const v = JSON.parse(r.choices[0].message.content);
    assert.equal(typeof v.name, 'string');
    assert.ok(v.name.length <= 24);
    assert.equal(typeof v.happy, 'boolean');
    assert.ok(Number.isInteger(v.age));
    assert.ok(['red', 'green', 'blue'].includes(v.color));
  }
  // json_object: whatever the model writes is a JSON object as far as it got
  const o = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Describe a cat' }], temperature: 0, max_tokens: 64,
    response_format: { type: 'json_object' },
  });
  assert.match(o.choices[0].message.content, /^\s*\{/);
  // an unsupported schema keyword is a 400 naming it
  const bad = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({
    model, messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: 'a+' } } },
  }) });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.param, 'response_format');
  assert.match(bad.body.error.message, /pattern/);
});

function norm(v) {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

test('embeddings: the official client (base64 by default), float, token ids', async () => {
  const dim = Number(process.env.AIRLOCK_EMBED_DIM);
  assert.ok(dim > 0, 'AIRLOCK_EMBED_DIM names the model width');
  // no encoding_format: the client asks for base64 and decodes the float32 bytes itself
  const a = await openai.embeddings.create({ model, input: 'Once upon a time' });
  assert.equal(a.object, 'list');
  assert.equal(a.model, model);
  assert.equal(a.data.length, 1);
  assert.equal(a.data[0].object, 'embedding');
  assert.equal(a.data[0].index, 0);
  assert.equal(a.data[0].embedding.length, dim);
  assert.ok(Math.abs(norm(a.data[0].embedding) - 1) < 1e-5, 'unit length');
  assert.ok(a.usage.prompt_tokens > 0);
  assert.equal(a.usage.total_tokens, a.usage.prompt_tokens);

  const inputs = ['Once upon a time', 'The cat sat on the mat and looked at the moon.', 'Once upon a time'];
  const b = await openai.embeddings.create({ model, input: inputs, encoding_format: 'float' });
  assert.equal(b.data.length, 3);
  b.data.forEach((d, i) => {
    assert.equal(d.index, i);
    assert.equal(d.embedding.length, dim);
    assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-5);
  });
  // identical input, identical vector; the float text gives back the exact float32 values
  assert.deepEqual(b.data[0].embedding, b.data[2].embedding);
  assert.deepEqual(b.data[0].embedding.map(Math.fround), a.data[0].embedding);
  assert.notDeepEqual(b.data[0].embedding, b.data[1].embedding);
  assert.ok(b.usage.prompt_tokens > 2 * a.usage.prompt_tokens);

  // base64 asked for explicitly: the client hands back the string
  const c = await openai.embeddings.create({ model, input: 'Once upon a time', encoding_format: 'base64' });
  const buf = Buffer.from(c.data[0].embedding, 'base64');
  assert.equal(buf.length, 4 * dim);
  const floats = Array.from({ length: dim }, (_, i) => buf.readFloatLE(4 * i));
  assert.deepEqual(floats, a.data[0].embedding);

  // token ids (one input, or several), and dimensions equal to the width
  const t = await openai.embeddings.create({ model, input: [[1, 403, 261], [1, 403]], dimensions: dim, encoding_format: 'float' });
  assert.equal(t.data.length, 2);
  assert.equal(t.usage.prompt_tokens, 5);
  const t1 = await openai.embeddings.create({ model, input: [1, 403, 261], encoding_format: 'float' });
  assert.deepEqual(t1.data[0].embedding, t.data[0].embedding);
});

test('embeddings: errors are OpenAI-shaped 400s', async () => {
  const bad = async (body, param, code) => {
    await assert.rejects(openai.embeddings.create(body), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `BadRequestError for ${JSON.stringify(body).slice(0, 80)}`);
      assert.equal(e.status, 400);
      if (param) assert.equal(e.param, param);
      if (code) assert.equal(e.code, code);
      return true;
    });
  };
  await bad({ model: 'no-such-model', input: 'x' }, 'model', 'model_not_found');
  await bad({ model, input: '' }, 'input');
  await bad({ model, input: [] }, 'input');
  await bad({ model, input: ['ok', ''] }, 'input');
  await bad({ model, input: 5 }, 'input', 'invalid_type');
  await bad({ model, input: ['a', [1, 2]] }, 'input', 'invalid_type');
  await bad({ model, input: [[1, -2]] }, 'input');
  await bad({ model, input: [[1, 1 << 30]] }, 'input');
  await bad({ model, input: 'once upon a time '.repeat(3000) }, 'input', 'context_length_exceeded');
  await bad({ model, input: 'x', dimensions: 3 }, 'dimensions');
  await bad({ model, input: 'x', encoding_format: 'int8' }, 'encoding_format');
  const r = await raw('/v1/embeddings', { method: 'POST', body: '{"input": [' });
  assert.equal(r.status, 400); assertOpenAIError(r.body);
  const m = await raw('/v1/embeddings', { method: 'GET' });
  assert.equal(m.status, 405); assertOpenAIError(m.body);
});

test('embeddings while streams generate', async () => {
  const alone = await openai.embeddings.create({ model, input: ['Once upon a time', 'A dog ran.'], encoding_format: 'float' });
  const gens = [];
  for (let i = 0; i < 3; i++) {
    gens.push(openai.completions.create({ model, prompt: `Story ${i}: Once upon a time`, max_tokens: 32, temperature: 0 }));
  }
  const embs = [];
  for (let i = 0; i < 4; i++) {
    embs.push(openai.embeddings.create({ model, input: ['Once upon a time', 'A dog ran.'], encoding_format: 'float' }));
  }
  const [rs, es] = await Promise.all([Promise.all(gens), Promise.all(embs)]);
  for (const r of rs) assert.ok(r.usage.completion_tokens > 0);
  for (const e of es) assert.deepEqual(e.data.map((d) => d.embedding), alone.data.map((d) => d.embedding));
});

test('authentication failures', async () => {
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'al-wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  const badA = new Anthropic({ baseURL: base, apiKey: 'al-wrong', maxRetries: 0 });
  await assert.rejects(badA.messages.create({ model, max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 401);
  const r = await fetch(`${base}/v1/models`);
  assert.equal(r.status, 401);
  assertOpenAIError(await r.json());
});

test('error shapes and statuses', async () => {
  let r = await raw('/v1/chat/completions', { method: 'POST', body: '{"messages": [' });
  assert.equal(r.status, 400); assertOpenAIError(r.body);
  r = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model, messages: 'hi' }) });
  assert.equal(r.status, 400); assert.equal(r.body.error.param, 'messages');
  r = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 400); assert.equal(r.body.error.code, 'model_not_found');
  r = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model, n: 2, messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 400); assert.equal(r.body.error.param, 'n');
  r = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model, max_tokens: -5, messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 400); assert.equal(r.body.error.param, 'max_tokens');
  r = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model, max_tokens: 1e12, messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 400);
  r = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model, temperature: 'hot', messages: [{ role: 'user', content: 'x' }] }) });
  assert.equal(r.status, 400); assert.equal(r.body.error.param, 'temperature');
  r = await raw('/v1/chat/completions', { method: 'POST', body: '['.repeat(100000) });
  assert.equal(r.status, 400); assertOpenAIError(r.body);
  r = await raw('/v1/chat/completions', { method: 'POST', body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) });
  assert.equal(r.status, 400); assertOpenAIError(r.body);
  r = await raw('/v1/chat/completions', { method: 'GET' });
  assert.equal(r.status, 405); assertOpenAIError(r.body);
  r = await raw('/v1/nothing', { method: 'GET' });
  assert.equal(r.status, 404); assertOpenAIError(r.body);
  r = await raw('/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x'.repeat(5 << 20) }] }) });
  assert.equal(r.status, 413);
  const long = 'once upon a time '.repeat(3000);
  r = await raw('/v1/completions', { method: 'POST', body: JSON.stringify({ model, prompt: long }) });
  assert.equal(r.status, 400); assert.equal(r.body.error.code, 'context_length_exceeded');
  // the server keeps serving after all of that
  const ok = await openai.completions.create({ model, prompt: 'Once', max_tokens: 2 });
  assert.equal(ok.object, 'text_completion');
});

test('concurrent streams all complete', async () => {
  const jobs = [];
  for (let i = 0; i < 8; i++) {
    jobs.push(openai.completions.create({ model, prompt: `Story ${i}: Once upon a time`, max_tokens: 24, temperature: 0.8, seed: i }));
  }
  const rs = await Promise.all(jobs);
  for (const r of rs) assert.ok(r.usage.completion_tokens > 0);
});

test('a client that disconnects mid-stream frees its slot', async () => {
  const ac = new AbortController();
  const stream = await openai.chat.completions.create({
    model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 100000, temperature: 1, stream: true,
  }, { signal: ac.signal });
  let n = 0;
  try {
    for await (const _ of stream) { if (++n === 3) ac.abort(); }
  } catch { /* aborted */ }
  let active = -1;
  for (let i = 0; i < 50; i++) {
    const m = await (await fetch(`${base}/metrics`)).text();
    const line = m.split('\n').find((l) => l.startsWith('airlock_active_slots'));
    active = Number(line.split(' ').pop());
    if (active === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(active, 0);
  // the audit log shows the request was cut short (499), not run to its end
  if (process.env.AIRLOCK_AUDIT) {
    const { readFileSync } = await import('node:fs');
    const recs = readFileSync(process.env.AIRLOCK_AUDIT, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(recs.some((r) => r.endpoint === '/v1/chat/completions' && r.status === 499),
      'a cancelled request was recorded with status 499');
  }
});

test('health, ready, metrics', async () => {
  assert.equal((await fetch(`${base}/health`)).status, 200);
  assert.equal((await fetch(`${base}/ready`)).status, 200);
  const m = await (await fetch(`${base}/metrics`)).text();
  assert.match(m, /airlock_requests_total\{[^}]*endpoint="\/v1\/chat\/completions"/);
  assert.match(m, /airlock_requests_total\{endpoint="\/v1\/embeddings",status="200"\} [1-9]/);
  // the embeddings tests above returned vectors: their inputs and tokens are counted
  assert.match(m, /\n# TYPE airlock_embedding_inputs_total counter\nairlock_embedding_inputs_total [1-9]/);
  assert.match(m, /\n# TYPE airlock_embedding_tokens_total counter\nairlock_embedding_tokens_total [1-9]/);
  assert.match(m, /airlock_model_info\{/);
  assert.match(m, /process_resident_memory_bytes \d+/);
});
