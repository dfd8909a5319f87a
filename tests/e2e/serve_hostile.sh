#!/usr/bin/env bash
# Hostile HTTP against a live `airlock serve` built with ASan/UBSan ($AIRLOCK_ASAN) on 127.0.0.1:
# oversized bodies (413), slowloris clients (idle ones and ones dripping a header byte a second),
# invalid UTF-8, 100k-deep JSON nesting, huge/negative numbers, wrong types (chat and embeddings
# bodies), an embedding input longer than the context, unknown routes (404),
# wrong methods (405), garbage request lines, a 100 KB header, a client that hangs up mid-stream.
# Every answer must be a clear error status (OpenAI-shaped JSON where the route sends a body),
# normal requests must be served throughout, the sanitizers must stay silent, and SIGTERM must
# give a clean exit. Raw requests come from Python's socket module. About 60-80 s.
set -euo pipefail
: "${AIRLOCK_ASAN:?}" "${SHARED:?}" "${TMP:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v python3 >/dev/null || fail "python3 not installed"
model=$SHARED/models/stories260K-q8_0.gguf
[ -f "$model" ] || fail "$model missing"
data=$TMP/data
key=$("$AIRLOCK_ASAN" keys add hostile --data "$data" 2>/dev/null)
log=$TMP/serve.log
# halt_on_error is the default; leaks are reported at exit and checked below
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  "$AIRLOCK_ASAN" serve --model "$model" --host 127.0.0.1 --port 0 --data "$data" \
  --audit-log "$TMP/audit.jsonl" --parallel 2 --ctx 256 --max-body 65536 -t 1 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
port=
for _ in $(seq 1 300); do
  port=$(grep -o 'on http://127.0.0.1:[0-9]*/' "$log" | head -1 | sed 's/.*://; s/\///') || true
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log"; fail "serve exited early"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; fail "serve did not report its port"; }

cat >"$TMP/hostile.py" <<'PY'
import json, socket, sys, threading, time

PORT, KEY = int(sys.argv[1]), sys.argv[2]
MAX_BODY = 65536
IDLE = 30            # the server's idle timeout (src/server/server.c, http_config)
failures = []

def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)

def conn(timeout=30):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def read_response(s):
    """Read one HTTP/1.1 response; returns (status, headers, body) or (None, {}, b'') if the
    server closed the connection without answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            return (None, {}, b"") if not data else (-1, {}, data)
        data += d
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        return status, hdrs, rest[:n]
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                d = s.recv(65536)
                if not d:
                    return status, hdrs, body
                rest += d
            size_line, rest = rest.split(b"\r\n", 1)
            n = int(size_line.split(b";")[0], 16)
            while len(rest) < n + 2:
                d = s.recv(65536)
                if not d:
                    return status, hdrs, body + rest
                rest += d
            body += rest[:n]
            rest = rest[n + 2:]
            if n == 0:
                return status, hdrs, body
    while True:
        d = s.recv(65536)
        if not d:
            return status, hdrs, rest
        rest += d

def raw(data, timeout=30):
    s = conn(timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading everything
        return read_response(s)
    finally:
        s.close()

def request(method, path, body=None, headers=None, auth=True, timeout=60):
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": "127.0.0.1", "Connection": "close"}
    if auth:
        h["Authorization"] = "Bearer " + KEY
    if body is not None:
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items())
    return raw(head.encode("latin-1") + b"\r\n" + (body or b""), timeout)

def openai_error(body):
    try:
        j = json.loads(body)
    except ValueError:
        return False
    e = j.get("error") if isinstance(j, dict) else None
    return (isinstance(e, dict) and all(k in e for k in ("message", "type", "param", "code"))
            and isinstance(e["message"], str) and len(e["message"]) > 0)

def anthropic_error(body):
    try:
        j = json.loads(body)
    except ValueError:
        return False
    e = j.get("error") if isinstance(j, dict) else None
    return (j.get("type") == "error" and isinstance(e, dict) and isinstance(e.get("type"), str)
            and isinstance(e.get("message"), str) and len(e["message"]) > 0)

def expect_error(what, resp, statuses, shape=openai_error):
    st, _, body = resp
    check(st in statuses and shape(body),
          "%s -> %s %s" % (what, st, body[:160].decode("utf-8", "replace")))

def chat(content="Once upon a time", **extra):
    b = {"messages": [{"role": "user", "content": content}], "max_tokens": 8, "temperature": 0}
    b.update(extra)
    return json.dumps(b)

def normal_ok(what):
    st, _, body = request("POST", "/v1/chat/completions", chat(), timeout=60)
    good = False
    if st == 200:
        try:
            j = json.loads(body)
            good = j["object"] == "chat.completion" and j["usage"]["completion_tokens"] > 0
        except (ValueError, KeyError, TypeError):
            pass
    check(good, "normal chat completion %s -> %s" % (what, st))

def metric(name):
    st, _, body = request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None

# ---- slowloris, in the background while everything else runs -----------------------------------
slow_results = {}

def slow_client(i, drip, seconds):
    """Send a partial request, then one header byte per second (drip) or nothing (idle); record
    how long until the server closed the connection (None if it never did)."""
    t0 = time.time()
    s = None
    try:
        s = conn(timeout=1.0)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while time.time() - t0 < seconds:
            if drip:
                s.sendall(b"a")
            try:
                if s.recv(4096) == b"":
                    slow_results[i] = time.time() - t0
                    return
                # any answer (e.g. 408) is fine too; keep reading for the close
            except socket.timeout:
                pass
        slow_results[i] = None
    except (ConnectionResetError, BrokenPipeError):
        slow_results[i] = time.time() - t0
    finally:
        if s:
            s.close()

N_SLOW = 6
slow_threads = []
for i in range(N_SLOW):
    t = threading.Thread(target=slow_client, args=(i, i % 2 == 0, IDLE + 15), daemon=True)
    t.start()
    slow_threads.append(t)
time.sleep(1.5)
normal_ok("while %d slowloris connections are open" % N_SLOW)

# ---- routes and methods -------------------------------------------------------------------------
expect_error("GET /nope (unknown route)", request("GET", "/nope"), {404})
expect_error("POST /v1/nope (unknown route)", request("POST", "/v1/nope", "{}"), {404})
st, h, body = request("GET", "/v1/chat/completions")
check(st == 405 and openai_error(body) and "POST" in h.get("allow", ""),
      "GET /v1/chat/completions -> %s allow=%r" % (st, h.get("allow")))
expect_error("DELETE /health", request("DELETE", "/health"), {405})
expect_error("PUT /v1/models", request("PUT", "/v1/models", "{}"), {405})
expect_error("no API key", request("POST", "/v1/chat/completions", chat(), auth=False), {401})
expect_error("wrong API key", request("POST", "/v1/chat/completions", chat(),
             headers={"Authorization": "Bearer sk-not-a-key"}, auth=False), {401})

# ---- oversized bodies ----------------------------------------------------------------------------
big = chat("x" * (MAX_BODY + 1000))
expect_error("body of %d bytes (limit %d)" % (len(big), MAX_BODY),
             request("POST", "/v1/chat/completions", big), {413})
t0 = time.time()
s = conn(timeout=10)
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
          KEY.encode() + b"\r\nContent-Length: 1000000000000\r\n\r\n{\"messages\":")
r = read_response(s)
s.close()
expect_error("announced Content-Length of 1 TB, body never sent", r, {413})
check(time.time() - t0 < 5, "1 TB announcement answered at once (%.1f s)" % (time.time() - t0))
# chunked upload that never says its size up front
s = conn(timeout=30)
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
          KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
try:
    for _ in range(40):
        s.sendall(b"%x\r\n%s\r\n" % (8192, b"y" * 8192))
    s.sendall(b"0\r\n\r\n")
except (BrokenPipeError, ConnectionResetError):
    pass
r = read_response(s)
s.close()
expect_error("chunked body of 320 KB", r, {413})

# ---- malformed JSON -----------------------------------------------------------------------------
expect_error("empty body", request("POST", "/v1/chat/completions", ""), {400})
expect_error("not JSON", request("POST", "/v1/chat/completions", "hello"), {400})
expect_error("truncated JSON", request("POST", "/v1/chat/completions", '{"messages":[{"role"'),
             {400})
expect_error("JSON array body", request("POST", "/v1/chat/completions", "[]"), {400})
expect_error("JSON null body", request("POST", "/v1/chat/completions", "null"), {400})
expect_error("NUL byte in body", request("POST", "/v1/chat/completions",
             b'{"messages":[{"role":"user","content":"a\x00b"}],"max_tokens":4}'), {400})
for name, bad in [("0xff 0xfe", b"\xff\xfe"), ("overlong '/'", b"\xc0\xaf"),
                  ("truncated 3-byte sequence", b"\xe2\x82"), ("UTF-16 surrogate", b"\xed\xa0\x80"),
                  ("code point above U+10FFFF", b"\xf4\x90\x80\x80")]:
    body = b'{"messages":[{"role":"user","content":"hi ' + bad + b' there"}],"max_tokens":4}'
    expect_error("invalid UTF-8 (%s) in a JSON string" % name,
                 request("POST", "/v1/chat/completions", body), {400})
body = b'{"prompt":"ok","max_tokens":4,"stop":["\xff"]}'
expect_error("invalid UTF-8 in stop", request("POST", "/v1/completions", body), {400})
st, _, body = request("POST", "/v1/chat/completions", chat("lone surrogate \\ud800 escape"))
check(st == 400 and openai_error(body) or st == 200,
      "escaped lone surrogate \\ud800 -> %s (400 or 200, no crash)" % st)
deep = "[" * 60000  # 60k fits the 64 KB limit here
expect_error("60k nested arrays", request("POST", "/v1/chat/completions", deep), {400})
deep = ('{"messages":' + "[" * 30000 + "]" * 30000 + "}")
expect_error("30k nested arrays in messages", request("POST", "/v1/chat/completions", deep), {400})
deep = '{"a":' * 10000 + "1" + "}" * 10000
expect_error("10k nested objects", request("POST", "/v1/completions", deep), {400})
expect_error("duplicate keys", request("POST", "/v1/completions",
             '{"prompt":"a","prompt":"b","max_tokens":4}'), {400})

# ---- numbers and types ---------------------------------------------------------------------------
bad_fields = [
    ("max_tokens", 10 ** 12), ("max_tokens", 2 ** 63), ("max_tokens", 1e308), ("max_tokens", -1),
    ("max_tokens", 0), ("max_tokens", 1.5), ("max_tokens", "16"), ("max_tokens", [16]),
    ("max_completion_tokens", -7), ("temperature", -1), ("temperature", 9e99),
    ("temperature", "hot"), ("top_p", -0.5), ("top_p", 2), ("n", -1), ("n", 5),
    ("presence_penalty", -3), ("frequency_penalty", 1e10), ("top_logprobs", -2),
    ("seed", "abc"), ("stream", "yes"), ("stop", 5), ("stop", [1, 2]), ("model", 5),
    ("messages", "hello"), ("messages", [1]), ("messages", []), ("messages", None),
    ("messages", [{"role": 7, "content": "x"}]), ("messages", [{"role": "user", "content": 5}]),
    ("messages", [{"role": "wizard", "content": "x"}]), ("response_format", "json"),
    ("response_format", {"type": "json_schema", "json_schema": {"schema": 5}}),
    ("stream_options", 3), ("logprobs", "yes"), ("user", 12),
]
for k, v in bad_fields:
    b = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    b[k] = v
    expect_error("%s = %s" % (k, json.dumps(v)[:40]),
                 request("POST", "/v1/chat/completions", json.dumps(b)), {400})
expect_error("unknown model", request("POST", "/v1/chat/completions",
             chat(model="no-such-model")), {400, 404})
expect_error("/v1/completions prompt = 5", request("POST", "/v1/completions",
             '{"prompt":5,"max_tokens":4}'), {400})
expect_error("/v1/messages without max_tokens", request("POST", "/v1/messages",
             '{"model":"stories260K-q8_0","messages":[{"role":"user","content":"hi"}]}'), {400},
             anthropic_error)
expect_error("/v1/messages with max_tokens = -1", request("POST", "/v1/messages",
             '{"model":"stories260K-q8_0","max_tokens":-1,"messages":[{"role":"user",'
             '"content":"hi"}]}'), {400}, anthropic_error)
expect_error("/v1/messages with invalid UTF-8", request("POST", "/v1/messages",
             b'{"model":"stories260K-q8_0","max_tokens":4,"messages":[{"role":"user",'
             b'"content":"\xff"}]}'), {400}, anthropic_error)
expect_error("/v1/embeddings input = {}", request("POST", "/v1/embeddings", '{"input":{}}'), {400})

# ---- embeddings: every wrong shape is a 400 naming the parameter; a hang-up frees the slot -------
st, _, body = request("POST", "/v1/embeddings", '{"input":["Once upon a time","a cat"]}')
try:
    good = st == 200 and [d["index"] for d in json.loads(body)["data"]] == [0, 1]
except (ValueError, KeyError, TypeError):
    good = False
check(good, "embeddings of two inputs -> %s" % st)
for what, b, param in [
        ("input = 5", '{"input":5}', "input"), ("input = null", '{"input":null}', "input"),
        ("input = true", '{"input":true}', "input"), ("input = [[\"a\"]]", '{"input":[["a"]]}', "input"),
        ("input = [1.5]", '{"input":[1.5]}', "input"), ("input = [-1]", '{"input":[-1]}', "input"),
        ("input = [2147483648]", '{"input":[2147483648]}', "input"),
        ("input = [1e400]", '{"input":[1e400]}', None),
        ("input = [[1,[2]]]", '{"input":[[1,[2]]]}', "input"),
        ("input = [\"\"]", '{"input":[""]}', "input"), ("input = [[]]", '{"input":[[]]}', "input"),
        ("token id outside the vocabulary", '{"input":[[1,100000]]}', "input"),
        ("2049 inputs", json.dumps({"input": ["x"] * 2049}), "input"),
        ("input longer than the context", json.dumps({"input": ["ok", "Once upon a time " * 600]}),
         "input"),
        ("input of token ids longer than the context", json.dumps({"input": [1] * 257}), "input"),
        ("encoding_format = []", '{"input":"x","encoding_format":[]}', "encoding_format"),
        ("encoding_format = 'utf8'", '{"input":"x","encoding_format":"utf8"}', "encoding_format"),
        ("dimensions = -1", '{"input":"x","dimensions":-1}', "dimensions"),
        ("dimensions = 1e30", '{"input":"x","dimensions":1e30}', "dimensions"),
        ("dimensions = 63", '{"input":"x","dimensions":63}', "dimensions"),
        ("model = 5", '{"input":"x","model":5}', "model"),
        ("unknown model", '{"input":"x","model":"text-embedding-3-small"}', "model")]:
    st, _, body = request("POST", "/v1/embeddings", b)
    try:
        p = json.loads(body)["error"]["param"]
    except (ValueError, KeyError, TypeError):
        p = "?"
    check(st == 400 and openai_error(body) and (param is None or p == param),
          "/v1/embeddings %s -> %s param=%s %s" % (what, st, p, body[:120].decode("utf-8", "replace")))
st, _, body = request("POST", "/v1/embeddings", json.dumps({"input": [1] * 256}))
check(st == 200, "/v1/embeddings input of exactly the context (256 tokens) -> %s" % st)
# ~60 KB of token ids, 60 inputs of 250 tokens: hang up while they are computed
big = json.dumps({"input": [[1] + [(7 * i + j) % 500 + 3 for j in range(249)] for i in range(60)]},
                 separators=(",", ":")).encode()
check(len(big) < MAX_BODY, "large embeddings body fits the limit (%d bytes)" % len(big))
s = conn(timeout=30)
s.sendall(("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: "
           "application/json\r\nContent-Length: %d\r\n\r\n" % (KEY, len(big))).encode() + big)
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
s.close()  # RST
t0 = time.time()
active = None
while time.time() - t0 < 10:
    active = metric("airlock_active_slots")
    if active == 0:
        break
    time.sleep(0.1)
check(active == 0, "embeddings: slot freed %.1f s after the client hung up (active=%s)"
      % (time.time() - t0, active))
big_prompt = chat("Once upon a time " * 600)  # ~3000 tokens > ctx 256
expect_error("prompt longer than the context", request("POST", "/v1/chat/completions",
             big_prompt), {400})
# a legal but huge max_tokens stops at the context, in bounded time
t0 = time.time()
st, _, body = request("POST", "/v1/completions", '{"prompt":"Once","max_tokens":1048576}',
                      timeout=120)
ok = st == 200 and json.loads(body)["choices"][0]["finish_reason"] == "length"
check(ok, "max_tokens 1048576 -> %s, stops at the context in %.1f s" % (st, time.time() - t0))

# ---- garbage at the HTTP layer (libmicrohttpd answers; any 4xx/5xx or a close, never a hang) ----
def http_level(what, data, lo=400):
    try:
        st, _, _ = raw(data, timeout=15)
    except socket.timeout:
        st = "timeout"
    check(st is None or (isinstance(st, int) and lo <= st < 600), "%s -> %s" % (what, st))

http_level("garbage request line", b"GARBAGE\r\n\r\n")
http_level("binary request line", bytes(range(1, 32)) + b"\r\n\r\n")
http_level("HTTP/9.9", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n")
# libmicrohttpd tolerates a missing Host (RFC 9112 says 400); an answer is all that is asked
http_level("no Host in HTTP/1.1", b"GET /health HTTP/1.1\r\n\r\n", lo=200)
http_level("header line without colon", b"GET /health HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n")
http_level("100 KB header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bloat: " + b"b" * 100000 +
           b"\r\n\r\n")
http_level("2000 small headers", b"GET /health HTTP/1.1\r\nHost: x\r\n" +
           b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n")
http_level("100 KB URI", b"GET /" + b"u" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
http_level("bad Content-Length", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: -5\r\n\r\n")
http_level("Content-Length and chunked", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n\r\n")
http_level("bad chunk size", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
           b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n")
normal_ok("after the HTTP-layer garbage")

# ---- a streaming client that hangs up after the first chunk frees its slot at once ---------------
for endpoint, body in [("/v1/chat/completions", chat(max_tokens=200, stream=True)),
                       ("/v1/messages", json.dumps({"model": "stories260K-q8_0", "max_tokens": 200,
                        "stream": True, "messages": [{"role": "user", "content": "Hi"}]}))]:
    s = conn(timeout=30)
    b = body.encode()
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: "
               "application/json\r\nContent-Length: %d\r\n\r\n" % (endpoint, KEY, len(b))).encode()
              + b)
    got = s.recv(4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    check(got.startswith(b"HTTP/1.1 200"), "%s stream started" % endpoint)
    t0 = time.time()
    active = None
    while time.time() - t0 < 5:
        active = metric("airlock_active_slots")
        if active == 0:
            break
        time.sleep(0.1)
    check(active == 0, "%s: slot freed %.1f s after the client hung up (active=%s)"
          % (endpoint, time.time() - t0, active))
# several at once, hanging up at different points
def hang_up(delay):
    try:
        s = conn(timeout=30)
        b = chat(max_tokens=200, stream=True).encode()
        s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Length: %d\r\n\r\n" % (KEY, len(b))).encode() + b)
        time.sleep(delay)
        s.close()
    except OSError:
        pass
ts = [threading.Thread(target=hang_up, args=(d,)) for d in (0, 0.05, 0.2, 0.5, 1.0)]
[t.start() for t in ts]
[t.join() for t in ts]
normal_ok("after clients hung up mid-stream")

# ---- the slowloris clients: cut off by the idle timeout ------------------------------------------
for t in slow_threads:
    t.join()
for i in range(N_SLOW):
    kind = "dripping one header byte a second" if i % 2 == 0 else "silent after a partial header"
    r = slow_results.get(i)
    check(r is not None and r <= IDLE + 5,
          "slowloris connection %d (%s) closed by the server after %s s (limit %d)"
          % (i, kind, None if r is None else round(r, 1), IDLE + 5))
normal_ok("at the end")
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
PY

rc=0
timeout 150 python3 "$TMP/hostile.py" "$port" "$key" || rc=$?
kill -0 $pid 2>/dev/null || { cat "$log"; fail "the server died (see its log above)"; }
kill -TERM $pid
src=0
wait $pid || src=$?
trap - EXIT
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' \
    "$log"; then
  cat "$log"; fail "sanitizer report in the server's stderr"
fi
[ "$src" -eq 0 ] || { tail -30 "$log"; fail "serve exited with status $src after SIGTERM"; }
grep -q 'shutting down' "$log" || fail "no 'shutting down' line in the server log"
[ "$rc" -eq 0 ] || fail "hostile requests: see the FAIL lines above"
echo "PASS serve_hostile"
