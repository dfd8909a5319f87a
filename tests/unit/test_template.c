/* test_template.c -- chat templates (engine/template.c): the shared conformance vectors
 * (../shared/vectors/chat-templates/expected, byte for byte), one test per construct, clear
 * errors for unsupported syntax, and hostile templates failing cleanly under the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/template.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

/* 2026-01-15 12:00 UTC: the date the vectors were rendered with, noon so that any local time
 * zone within +-11 h still reads the 15th. */
#define TEST_NOW ((time_t)1768478400)

static const char *
shared_dir(void)
{
    const char *s = getenv("SHARED");
    return s && *s ? s : "../shared";
}

static char *
read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b;
    buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    if (!b.data)
        buf_append(&b, "", 0);
    return buf_steal(&b);
}

/* Render tmpl with one user message "hi" (or the given messages) and a fixed clock. */
static int
render_vars(const char *tmpl, json_t *vars, struct buf *out, struct al_err *e)
{
    struct chat_template_opts o = {.now = TEST_NOW};
    buf_reset(out);
    int rc = chat_template_render_json(tmpl, vars, &o, out, e);
    json_decref(vars);
    return rc;
}

static json_t *
default_vars(void)
{
    return json_pack("{s:[{s:s,s:s}],s:b,s:s,s:s}", "messages", "role", "user", "content", "hi",
                     "add_generation_prompt", 1, "bos_token", "<s>", "eos_token", "</s>");
}

/* Expect tmpl to render exactly `want`. */
static void
check(const char *tmpl, const char *want)
{
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    int rc = render_vars(tmpl, default_vars(), &out, &e);
    if (rc != 0)
        fail_msg("template %s\nfailed: %s", tmpl, e.msg);
    if (strcmp(out.data ? out.data : "", want) != 0)
        fail_msg("template %s\nwant [%s]\ngot  [%s]", tmpl, want, out.data ? out.data : "");
    buf_free(&out);
}

/* Expect tmpl to fail with code and a message containing `part`. */
static void
check_fail(const char *tmpl, enum al_code code, const char *part)
{
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    int rc = render_vars(tmpl, default_vars(), &out, &e);
    if (rc == 0)
        fail_msg("template %s\nrendered [%s], expected an error", tmpl, out.data ? out.data : "");
    if (e.code != code || !strstr(e.msg, part))
        fail_msg("template %s\nwant code %d with '%s'\ngot code %d: %s", tmpl, (int)code, part,
                 (int)e.code, e.msg);
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

/* ===== Constructs (expected text is what Jinja2 3.1 renders) =========================== */


static void
test_whitespace(void **state)
{
    (void)state;
    check("a\n  {%- if true %}\n    b\n  {% endif -%}\n  c",
          "a    b\nc");
    check("{% if true %}  x  {% endif %}\ny",
          "  x  y");
    check("line1\n    {% for i in [1,2] %}\n    item{{ i }}\n    {% endfor %}\nend",
          "line1\n    item1\n    item2\nend");
    check("{{ 1 }}   {% if true %}x{% endif %}",
          "1   x");
    check("{{ 1 }}\n   {% if true %}x{% endif %}",
          "1\nx");
    check("{%+ if true %}x{% endif +%}\ny",
          "x\ny");
    check("a {# comment #}\nb",
          "a b");
    check("a\n{# comment #}\nb",
          "a\nb");
    check("  {% if true %}\n  x\n  {% endif %}\n  {{ \"y\" }}\n  {#- c #}  \n  z {# c #}\nw",
          "  x\n  y  \n  z w");
    check("x{{- \"  y  \" -}}  z",
          "x  y  z");
    check("trailing newline\n",
          "trailing newline");
    check("crlf\r\n{% if true %}\r\nx\r\n{% endif %}\r\n",
          "crlf\nx\n");
    check("{%- raw %}{{ not }}{% endraw %}",
          "{{ not }}");
    check("{% raw -%}  a  {%- endraw %}\nb|x\n  {% raw %}{{ y }}\n  {% endraw %}\nz",
          "ab|x\n{{ y }}\nz");
    check("{%- for m in messages -%}\n    {{ m.role }}\n{%- endfor %}",
          "user");
}

static void
test_literals(void **state)
{
    (void)state;
    check("{{ {'a': {'b': 1}} }}",
          "{'a': {'b': 1}}");
    check("{{ {'a': {'b': 1}}}}",
          "{'a': {'b': 1}}");
    check("{{ [1,2.5,\"a\",none,true,{\"k\":[1]}] }}|{{ (1,2) }}|{{ (\"a\",) }}|{{ () }}|{{ [] }}|{{ {} }}",
          "[1, 2.5, 'a', None, True, {'k': [1]}]|(1, 2)|('a',)|()|[]|{}");
    check("{{ \"a\\tb\\\\c\\x41\\u00e9\" }}|{{ 'it''s' }}|{{ \"abc\" \"def\" }}|{{ True }}{{ None }}{{ 1_000 }}",
          "a\tb\\cA\303\251|its|abcdef|TrueNone1000");
    check("{{ 1.0 }}|{{ 1e20 }}|{{ 0.1+0.2 }}|{{ 1e-5 }}|{{ 1.5e-7 }}|{{ 1e16 }}|{{ 12345.678 }}|{{ -0.0 }}|{{ 1/3 }}",
          "1.0|1e+20|0.30000000000000004|1e-05|1.5e-07|1e+16|12345.678|-0.0|0.3333333333333333");
    check("{{ [\"it's\", 'a\"b', \"x'y\\\"z\", \"\\n\\u00e9\"] }}",
          "[\"it's\", 'a\"b', 'x\\'y\"z', '\\n\303\251']");
}

static void
test_operators(void **state)
{
    (void)state;
    check("{{ 10/4 }}|{{ 7//2 }}|{{ -7//2 }}|{{ -7 % 3 }}|{{ 2**10 }}|{{ 10 % -3 }}|{{ 5.5 % 2 }}|{{ 7.0 // 2 }}|{{ 2**-1 }}",
          "2.5|3|-4|2|1024|-2|1.5|3.0|0.5");
    check("{{ -1|abs }}{{ - 1 }}{{ -(1) }}{{ +2 }}{{ 2 ** 3 ** 2 }}{{ 2 * 3 + 4 }}{{ 2 + 3 * 4 }}{{ (2 + 3) * 4 }}",
          "1-1-1264101420");
    check("{{ \"x\" * 3 }}{{ [1] * 2 }}{{ true + 1 }}{{ [1] + [2] }}{{ \"a\" ~ 1 ~ none ~ 1.5 ~ true ~ undefinedvar }}",
          "xxx[1, 1]2[1, 2]a1None1.5True");
    check("{{ 1 if false }}|{{ \"a\" if 1 > 2 else \"b\" }}|{{ not true or false and true }}|{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}",
          "|b|False|True|False");
    check("{{ \"b\" in \"abc\" }}|{{ 2 not in [1,3] }}|{{ \"k\" in {\"k\":1} }}|{{ \"z\" in x }}",
          "True|True|True|False");
    check("{{ 0 or \"x\" }}|{{ \"a\" and \"b\" }}|{{ [] or none }}|{{ true and 1 }}|{{ false or 0 }}|{{ not \"\" }}",
          "x|b|None|1|0|True");
    check("{{ 1 == 1.0 }}{{ true == 1 }}|{{ [1,2] == [1,2] }}|{{ (1,2) == [1,2] }}|{{ {\"a\":1} == {\"a\":1} }}|{{ x == y }}",
          "TrueTrue|True|False|True|True");
    check("{{ 'a' < 'b' }}{{ [1,2] < [1,3] }}{{ 1 < 1.5 }}{{ \"B\" >= \"a\" }}",
          "TrueTrueTrueFalse");
    check("{{ \"%s-%d\" % (\"a\", 3) }}|{{ \"%s\" % 1 }}|{{ \"%.2f%%\" % 1.5 }}|{{ \"%r\" % \"q\" }}",
          "a-3|1|1.50%|'q'");
}

static void
test_access(void **state)
{
    (void)state;
    check("{{ messages[0][\"role\"] }}{{ messages.0.role }}{{ messages[5] }}{{ messages[-1].content }}",
          "useruserhi");
    check("{{ \"abc\"[::-1] }}{{ \"abc\"[-1] }}{{ \"abc\"[5:] }}{{ [1,2,3,4][1:3] }}{{ [1,2,3,4][::2] }}{{ \"h\303\251llo\"[1:3] }}{{ \"h\303\251llo\"|length }}{{ [1,2,3][-2:] }}{{ [1,2,3][:-1] }}",
          "cbac[2, 3][1, 3]\303\251l5[2, 3][1, 2]");
    check("{% set d = {\"x\": 1, 2: \"two\"} %}{{ d[2] }}{{ d.x }}{{ d[\"x\"] }}{{ d.missing }}|{{ none.x }}|{{ \"s\".x }}|{{ [1].x }}",
          "two11|||");
    check("{{ {\"a\":1}.get(\"a\") }}{{ {\"a\":1}.get(\"b\") }}{{ {\"a\":1}.get(\"b\", 5) }}{{ {\"a\":1,\"b\":2}.keys()|list }}{{ {\"a\":1}.values()|list }}{{ {\"a\":1}.items()|list }}",
          "1None5['a', 'b'][1][('a', 1)]");
}

static void
test_statements(void **state)
{
    (void)state;
    check("{% if x %}a{% elif y %}b{% elif true %}c{% else %}d{% endif %}",
          "c");
    check("{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = x + 1 %}{{x}}{% endfor %}{{ x }}",
          "12121");
    check("{% for i in [1,2] %}{% if i == 2 %}{{ y }}{% endif %}{% set y = i %}{% endfor %}[{{ y }}]",
          "[]");
    check("{% if true %}{% set z = 5 %}{% endif %}{{ z }}",
          "5");
    check("{% set a, b = [1, 2] %}{{ b }}{{ a }}",
          "21");
    check("{% set t %}inner {{ 1 + 1 }}{% endset %}[{{ t }}]",
          "[inner 2]");
    check("{% set ns = namespace(a=1, b=\"x\") %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}{{ ns.b }}",
          "4x");
    check("{{ ns }}{% set ns = namespace() %}{% set ns.x = 1 %}{{ ns.x }}",
          "1");
    check("{% macro f(a, b=2) %}[{{a}}{{b}}{{ c }}]{% endmacro %}{% set c = 9 %}{{ f(1) }}{{ f(1, b=3) }}{{ f() }}",
          "[129][139][29]");
    check("{% macro greet(name, punct=\"!\") -%}\nHello {{ name }}{{ punct }}\n{%- endmacro %}\n{{ greet(\"a\") }} {{ greet(\"b\", punct=\"\?\") }}",
          "Hello a! Hello b\?");
    check("{% set x = 5 %}{% macro f() %}{{ x }}{% endmacro %}{% for i in [1] %}{% set x = 7 %}{{ f() }}{% endfor %}",
          "5");
    check("{% macro m() %}x{% endmacro %}{{ m() }}{{ m is callable }}{{ raise_exception is defined }}{{ range is callable }}",
          "xTrueTrueTrue");
}

static void
test_loops(void **state)
{
    (void)state;
    check("{% for k, v in {\"a\": 1, \"b\": 2}.items() %}{{k}}={{v}}{% if not loop.last %},{% endif %}{% endfor %}",
          "a=1,b=2");
    check("{% for i in range(3) %}{{ loop.previtem }},{{ loop.nextitem }};{% endfor %}",
          ",1;0,2;1,;");
    check("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
          "0134");
    check("{% for i in [] %}x{% else %}empty{% endfor %}|{% for i in [1,2,3] if i > 1 %}{{ loop.index }}/{{ loop.length }}:{{ i }} {% endfor %}",
          "empty|1/2:2 2/2:3 ");
    check("{% for x in [1,2,3] %}{% for y in \"ab\" %}{{ loop.index }}{{ loop.depth }}{% endfor %}{{ loop.index }}{% endfor %}",
          "112111121211213");
    check("{% for x in [1,2,3] %}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.cycle(\"a\",\"b\") }}{% endfor %}",
          "320TrueFalsea211FalseFalseb102FalseTruea");
    check("{% for a, b in [[1,2],[3,4]] %}{{ a+b }}{% endfor %}|{% for c in \"h\303\251\" %}[{{c}}]{% endfor %}|{% for k in {\"x\":1,\"y\":2} %}{{k}}{% endfor %}|{% for u in undefinedvar %}u{% endfor %}",
          "37|[h][\303\251]|xy|");
    check("{% for x in [1] %}{% continue %}{% else %}E{% endfor %}|{% for x in [1, 2] %}{% if x == 1 %}{% continue %}{% endif %}{% else %}E{% endfor %}|{% for k, v in {\"a\": 1, \"b\": 2}|dictsort %}{{ k }}{% endfor %}|{% for a, b in [{\"x\": 1, \"y\": 2}] %}{{ a }}{{ b }}{% endfor %}",
          "E||ab|xy");
    check("{{ range(5)|list }}{{ range(1,10,3)|list }}{{ range(5,0,-2)|list }}",
          "[0, 1, 2, 3, 4][1, 4, 7][5, 3, 1]");
    check("{% for m in messages[::-1] %}{{ m.role }}{% endfor %}{% for i in range(3) %}{% for j in range(3) %}{% if j > i %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
          "user00 10 11 20 21 22 ");
}

static void
test_tests(void **state)
{
    (void)state;
    check("{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ \"s\" is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is boolean }}{{ true is true }}{{ false is false }}",
          "FalseTrueTrueTrueTrueTrueFalseTrueTrue");
    check("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 1 is eq 1 }}{{ 3 is number }}{{ true is number }}{{ 3.0 is integer }}{{ 3.0 is float }}",
          "TrueTrueTrueTrueTrueTrueFalseTrue");
    check("{{ \"a\" is lower }}{{ \"A\" is upper }}{{ 3 is in [1,3] }}{{ 3 is ge 2 }}{{ 3 is sameas 3 }}{{ 1 is ne 2 }}{{ 2 is lt 3 }}{{ \"x\" is sequence }}",
          "TrueTrueTrueTrueTrueTrueTrueTrue");
    check("{{ none is not none }}|{{ x is not defined }}|{{ not x is defined }}|{{ x|length }}{{ x is iterable }}{{ x is sequence }}",
          "False|True|True|0TrueTrue");
    check("{{ 2.5 is odd }}{{ 3.0 is odd }}{{ 4.0 is even }}{{ [1] is lower }}{{ \"Ab\" is lower }}{{ none is lower }}",
          "FalseTrueTrueFalseFalseFalse");
    check("{{ messages[0].role is string and messages[0].missing is undefined }}",
          "True");
}

static void
test_filters(void **state)
{
    (void)state;
    check("{{ \"  a  \"|trim }}|{{ \"xxhixx\"|trim(\"x\") }}|{{ \" \\u3000 a \\u00a0\"|trim }}|{{ none|trim }}|{{ \"Hello\"|upper }}{{ \"Hello\"|lower }}{{ \"hello big-world (x\"|title }}{{ \"hELLO wORLD\"|capitalize }}",
          "a|hi|a|None|HELLOhelloHello Big-World (XHello world");
    check("{{ \"d\303\251j\303\240 VU \303\277\"|upper }}|{{ \"\303\200\303\211\303\216 \316\221\316\222\316\223 \316\243 \320\237\320\240\320\230\320\222\320\225\320\242 \320\201 \305\270\"|lower }}|{{ \"\303\251j\303\240 vu-x (ab\"|title }}|{{ \"\303\251j\303\240 vu1x\".title() }}|{{ \"\303\251LAN\"|capitalize }}|{{ \"\305\201\303\223D\305\271\"|lower }}{{ \"\305\202\303\263d\305\272\"|upper }}",
          "D\303\211J\303\200 VU \305\270|\303\240\303\251\303\256 \316\261\316\262\316\263 \317\203 \320\277\321\200\320\270\320\262\320\265\321\202 \321\221 \303\277|\303\211j\303\240 Vu-X (Ab|\303\211j\303\240 Vu1X|\303\211lan|\305\202\303\263d\305\272\305\201\303\223D\305\271");
    check("{{ \"a b\"|replace(\" \", \"_\") }}{{ \"aaa\"|replace(\"a\",\"b\",2) }}{{ \"abc\"|length }}{{ [1]|count }}{{ {\"a\":1}|length }}",
          "a_bbba311");
    check("{{ x|default(\"d\") }}{{ \"\"|default(\"e\", true) }}{{ none|default(\"n\") }}{{ x|d(\"dd\") }}|{{ [3,1]|first }}{{ [3,1]|last }}{{ \"abc\"|first }}{{ []|first }}",
          "deNonedd|31a");
    check("{{ \"3\"|int + 1 }}{{ \"3.7\"|float }}{{ \"x\"|int }}{{ 3.9|int }}{{ \" -12 \"|int }}{{ \"x\"|int(7) }}{{ 2|float }}{{ true|int }}",
          "43.703-1272.01");
    check("{{ \"ab\"|list }}{{ {\"a\":1}|list }}{{ {\"a\":1}|items|list }}{{ undefinedvar|items|list }}{{ (1,2)|list }}",
          "['a', 'b']['a'][('a', 1)][][1, 2]");
    check("{{ [1,2,3]|join(\", \") }}{{ [{\"n\":\"a\"},{\"n\":\"b\"}]|join(\"-\", attribute=\"n\") }}{{ [1,\"a\",none]|join }}",
          "1, 2, 3a-b1aNone");
    check("{{ messages|selectattr(\"role\",\"equalto\",\"user\")|map(attribute=\"content\")|join(\"+\") }}|{{ [1,2,3]|select(\"odd\")|list }}|{{ [0,1,2]|select|list }}|{{ [1,none,2]|reject(\"none\")|list }}",
          "hi|[1, 3]|[1, 2]|[1, 2]");
    check("{{ [{\"x\":1},{\"y\":2}]|selectattr(\"x\", \"defined\")|list }}{{ [{\"x\":1},{\"x\":0}]|rejectattr(\"x\")|list }}{{ [{\"a\":{\"b\":1}},{\"a\":{\"b\":2}}]|map(attribute=\"a.b\")|list }}{{ [\"a\",\"b\"]|map(\"upper\")|list }}{{ [{\"a\":1},{}]|map(attribute=\"a\", default=0)|list }}",
          "[{'x': 1}][{'x': 0}][1, 2]['A', 'B'][1, 0]");
    check("{{ \"a\\nb\"|indent(2) }}|{{ \"a\\nb\"|indent(2, true) }}|{{ \"a\\nb\\n\"|indent(2) }}|{{ \"\\na\\n\\nb\"|indent(2) }}|{{ \"\\na\\n\\nb\"|indent(2, blank=true) }}|{{ \"a\"|indent(\"--\", first=true) }}",
          "a\n  b|  a\n  b|a\n  b\n|\n  a\n\n  b|\n  a\n  \n  b|--a");
    check("{{ [3,1,2]|sort }}{{ [\"b\",\"A\",\"c\"]|sort }}{{ [3,1,2]|sort(reverse=true) }}{{ [{\"k\":2},{\"k\":1}]|sort(attribute=\"k\") }}{{ [1,2,2,1]|unique|list }}{{ [\"a\",\"A\"]|unique|list }}",
          "[1, 2, 3]['A', 'b', 'c'][3, 2, 1][{'k': 1}, {'k': 2}][1, 2]['a']");
    check("{{ [1,5,3]|max }}{{ [1,5,3]|min }}{{ [1,2,3]|sum }}{{ [{\"v\":1},{\"v\":2}]|sum(attribute=\"v\") }}{{ {\"b\":1,\"a\":2}|dictsort }}{{ [1,2]|reverse|list }}{{ \"abc\"|reverse }}",
          "5163[('a', 2), ('b', 1)][2, 1]cba");
    check("{{ {\"a\": 1, \"b\": 2}|reverse|list }}{{ false|select|list }}{{ none|map(\"upper\")|list }}{{ [x] }}{{ 7|round }}{{ false|safe }}{{ \"%s|%s\" % [\"a\"] if false else \"b\" }}",
          "['b', 'a'][][][Undefined]7Falseb");
    check("{{ -3|abs }}{{ 2.567|round(2) }}{{ 2.5|round }}{{ 3.5|round }}{{ 2.1|round(method=\"ceil\") }}{{ \"one two  three\"|wordcount }}{{ 5|string + \"x\" }}{{ none|string }}{{ \"x\"|safe }}{{ messages|first|attr(\"role\") }}",
          "32.572.04.03.035xNonex");
}

static void
test_tojson(void **state)
{
    (void)state;
    check("{{ {\"a\":\"\303\251\\n\\u0001/\\u007f\"}|tojson }}|{{ [1,{\"b\":[]}, {}]|tojson(indent=2) }}|{{ 1.5|tojson }}",
          "{\"a\": \"\303\251\\n\\u0001/\177\"}|[\n  1,\n  {\n    \"b\": []\n  },\n  {}\n]|1.5");
    check("{{ [1, 2]|tojson }}{{ \"\303\251\"|tojson }}{{ \"\303\251\360\237\246\231\"|tojson(ensure_ascii=true) }}{{ none|tojson }}{{ {\"a\": 1.0}|tojson }}{{ \"\\u2028<>&'\"|tojson }}",
          "[1, 2]\"\303\251\"\"\\u00e9\\ud83e\\udd99\"null{\"a\": 1.0}\"\342\200\250<>&'\"");
    check("{{ {\"k\": [1, 2.5, true, none, \"s\"]}|tojson(indent=4) }}{{ {\"b\":1,\"a\":2}|tojson(sort_keys=true) }}{{ {\"a\":[1]}|tojson(separators=(\",\", \":\")) }}{{ (1, 2)|tojson }}",
          "{\n    \"k\": [\n        1,\n        2.5,\n        true,\n        null,\n        \"s\"\n    ]\n}{\"a\": 2, \"b\": 1}{\"a\":[1]}[1, 2]");
    check("{{ messages|tojson }}",
          "[{\"role\": \"user\", \"content\": \"hi\"}]");
}

static void
test_strings(void **state)
{
    (void)state;
    check("{{ \"a,b,c\".split(\",\", 1) }}{{ \"  a b  c \".split(none, 1) }}{{ \"abc\".split(\"b\")[-1] }}{{ \" a  b \".split() }}{{ \"a,b,,c\".split(\",\") }}",
          "['a', 'b,c']['a', 'b  c ']c['a', 'b']['a', 'b', '', 'c']");
    check("{{ \"abc\".startswith(\"a\") }}{{ \"abc\".endswith((\"x\",\"c\")) }}{{ \"  x \".strip() }}|{{ \"xxhixx\".strip(\"x\") }}|{{ \"\\n\\nx\\n\".lstrip(\"\\n\") }}|{{ \"x \\n\".rstrip() }}|{{ \"abc\".find(\"c\") }}{{ \"abc\".find(\"z\") }}",
          "TrueTruex|hi|x\n|x|2-1");
    check("{{ \"a-b\".upper() }}{{ \"AB\".lower() }}{{ \"ab\".replace(\"a\",\"z\") }}{{ \"hello world\".title() }}{{ \"hELLO\".capitalize() }}{{ \"a\".isdigit() }}{{ \"12\".isdigit() }}{{ \"-\".join([\"a\",\"b\"]) }}",
          "A-BabzbHello WorldHelloFalseTruea-b");
    check("{{ \"{}-{x}\".format(1, x=2) }}{{ \"{0}{1}{0}\".format(\"a\", \"b\") }}{{ \"{{}}\".format() }}{{ \"abcab\".count(\"ab\") }}{{ \"abcab\".rfind(\"ab\") }}",
          "1-2aba{}23");
    check("{%- set content = '<think>\\nhm\\n</think>\\n\\nok' %}{{ content.split('</think>')[-1].lstrip('\\n') }}|{{ content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
          "ok|hm");
}


/* ===== Errors: unsupported constructs, syntax, runtime ============================= */

static void
test_unsupported(void **state)
{
    (void)state;
    check_fail("{% include 'x' %}", AL_EUNSUPPORTED, "1:4: unsupported tag 'include'");
    check_fail("{% extends 'base' %}", AL_EUNSUPPORTED, "unsupported tag 'extends'");
    check_fail("{% call m() %}x{% endcall %}", AL_EUNSUPPORTED, "unsupported tag 'call'");
    check_fail("{% filter upper %}x{% endfilter %}", AL_EUNSUPPORTED, "unsupported tag 'filter'");
    check_fail("{% with a = 1 %}{% endwith %}", AL_EUNSUPPORTED, "unsupported tag 'with'");
    check_fail("a\n\n  {{ x|nosuch }}", AL_EUNSUPPORTED, "3:8: unsupported filter 'nosuch'");
    check_fail("{{ x is nosuch }}", AL_EUNSUPPORTED, "1:9: unsupported test 'nosuch'");
    check_fail("{% for x in y recursive %}{% endfor %}", AL_EUNSUPPORTED,
               "unsupported recursive for loop");
    check_fail("{{ 'a'.zfill(3) }}", AL_EUNSUPPORTED, "1:7: unsupported string method 'zfill'");
    check_fail("{{ [1].append(2) }}", AL_EUNSUPPORTED, "unsupported method 'append' on list");
    check_fail("{{ lipsum() }}", AL_EUNSUPPORTED, "unsupported function 'lipsum'");
    check_fail("{{ f(*args) }}", AL_EUNSUPPORTED, "unsupported *args");
    check_fail("{{ '%x' % 1 }}", AL_EUNSUPPORTED, "unsupported '%' conversion 'x'");
    check_fail("{{ '{:>4}'.format(1) }}", AL_EUNSUPPORTED, "unsupported field");
    check_fail("{{ loop.changed(1) }}{% for i in [1] %}{{ loop.changed }}{% endfor %}",
               AL_EFORMAT, "'loop' is undefined");
    check_fail("{% for i in [1] %}{{ loop.changed }}{% endfor %}", AL_EUNSUPPORTED,
               "unsupported loop attribute 'loop.changed'");
}

static void
test_syntax_errors(void **state)
{
    (void)state;
    check_fail("{% if x %}a", AL_EFORMAT, "missing {% endif %}");
    check_fail("{% for x in y %}a{% endif %}", AL_EFORMAT, "unexpected 'endif'");
    check_fail("ok {{ x ", AL_EFORMAT, "1:4: unterminated {{ tag");
    check_fail("{# x", AL_EFORMAT, "unterminated {# comment");
    check_fail("{% endif %}", AL_EFORMAT, "unexpected 'endif'");
    check_fail("{% break %}", AL_EFORMAT, "'break' outside of a for loop");
    check_fail("{{ 'abc }}", AL_EFORMAT, "unterminated string literal");
    check_fail("{{ 1 + }}", AL_EFORMAT, "expected an expression");
    check_fail("{{ x ? }}", AL_EFORMAT, "unexpected character '?'");
    check_fail("{{ x ) }}", AL_EFORMAT, "unbalanced closing bracket");
    check_fail("{% set %}", AL_EFORMAT, "expected a variable name");
    check_fail("{% if %}{% endif %}", AL_EFORMAT, "expected an expression");
    check_fail("{{ '\\u12' }}", AL_EFORMAT, "truncated");
    check_fail("{% raw %}x", AL_EFORMAT, "without {% endraw %}");
    check_fail("{{ 99999999999999999999 }}", AL_ELIMIT, "does not fit in 64 bits");
    check_fail("{% macro m(a, ) %}{% endmacro %}", AL_EFORMAT, "expected a parameter name");
}

static void
test_runtime_errors(void **state)
{
    (void)state;
    check_fail("{{ 'a' + 1 }}", AL_EFORMAT, "unsupported operand types for +: 'str' and 'int'");
    check_fail("{{ 1 / 0 }}", AL_EFORMAT, "division by zero");
    check_fail("{{ 1 // 0 }}", AL_EFORMAT, "division or modulo by zero");
    check_fail("\n {{ raise_exception('Bad role: ' ~ messages[0].role) }}", AL_EUSAGE,
               "2:5: Bad role: user");
    check_fail("{{ x|tojson }}", AL_EFORMAT, "not JSON serializable");
    check_fail("{% for a, b in [1] %}{% endfor %}", AL_EFORMAT, "cannot unpack");
    check_fail("{{ 9223372036854775807 + 1 }}", AL_ELIMIT, "does not fit in 64 bits");
    check_fail("{{ x.y }}", AL_EFORMAT, "'x' is undefined");
    check_fail("{{ x + 1 }}", AL_EFORMAT, "'x' is undefined");
    check_fail("{% for i in none %}{% endfor %}", AL_EFORMAT, "'NoneType' object is not iterable");
    check_fail("{{ 1 < 'a' }}", AL_EFORMAT, "cannot order");
    check_fail("{{ 5() }}", AL_EFORMAT, "not callable");
    check_fail("{% set x = 1 %}{% set x.a = 2 %}", AL_EFORMAT, "not a namespace");
    check_fail("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", AL_EFORMAT, "no more than 1");
    check_fail("{{ [1][::0] }}", AL_EFORMAT, "slice step cannot be zero");
    check_fail("{{ strftime_now() }}", AL_EFORMAT, "needs a format string");
}

/* ===== Hostile templates: every limit fails cleanly =============================== */

static char *
repeat_str(const char *head, const char *unit, size_t times, const char *tail)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, head);
    for (size_t i = 0; i < times; i++)
        buf_puts(&b, unit);
    buf_puts(&b, tail);
    return buf_steal(&b);
}

static void
check_fail_owned(char *tmpl, enum al_code code, const char *part)
{
    check_fail(tmpl, code, part);
    free(tmpl);
}

static void
test_hostile_nesting(void **state)
{
    (void)state;
    check_fail_owned(repeat_str("{{ ", "(", 5000, "1 }}"), AL_ELIMIT, "nested too deeply");
    check_fail_owned(repeat_str("{{ ", "[", 5000, "1 }}"), AL_ELIMIT, "nested too deeply");
    check_fail_owned(repeat_str("{{ ", "not ", 5000, "1 }}"), AL_ELIMIT, "levels deep");
    check_fail_owned(repeat_str("{{ ", "-", 5000, "1 }}"), AL_ELIMIT, "levels deep");
    check_fail_owned(repeat_str("", "{% if true %}", 5000, "x"), AL_ELIMIT, "levels deep");
    check_fail_owned(repeat_str("{{ 'x'", "|trim", 5000, " }}"), AL_ELIMIT, "evaluation nested");
    check_fail_owned(repeat_str("{{ messages", "[0]", 5000, " }}"), AL_ELIMIT,
                     "evaluation nested");
    check_fail_owned(repeat_str("{{ 1", " + 1", 5000, " }}"), AL_ELIMIT, "evaluation nested");
    check_fail("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", AL_ELIMIT,
               "evaluation nested");
    /* a long but flat template is fine */
    char *flat = repeat_str("", "{{ 1 }}", 20000, "");
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    assert_int_equal(render_vars(flat, default_vars(), &out, &e), 0);
    assert_int_equal(out.len, 20000);
    buf_free(&out);
    free(flat);
}

static void
test_hostile_size(void **state)
{
    (void)state;
    check_fail("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
               AL_ELIMIT, "loop iterations");
    check_fail("{{ range(1000000000)|length }}", AL_ELIMIT, "range() of 1000000000 items");
    check_fail("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", AL_ELIMIT,
               "output exceeds 16777216 bytes");
    check_fail("{% set ns = namespace(s='x') %}{% for i in range(100) %}"
               "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
               AL_ELIMIT, "working memory");
    check_fail("{{ 'x' * 10000000000 }}", AL_ELIMIT, "repetition");
    check_fail("{{ [1, 2] * 1000000000 }}", AL_ELIMIT, "repetition");
    check_fail("{{ 'ab' * 100000 * 100000 }}", AL_ELIMIT, "repetition");
    check_fail("{{ range(100000)|unique|list|length }}", AL_ELIMIT, "unique: more than");

    /* the caller's limits apply */
    struct chat_template_opts o = {.now = TEST_NOW, .max_output = 5, .max_iterations = 3};
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    json_t *vars = default_vars();
    assert_int_equal(chat_template_render_json("{% for i in range(10) %}{{ i }}{% endfor %}",
                                               vars, &o, &out, &e),
                     -1);
    assert_int_equal(e.code, AL_ELIMIT);
    o.max_iterations = 100;
    assert_int_equal(chat_template_render_json("{% for i in range(10) %}{{ i }}{% endfor %}",
                                               vars, &o, &out, &e),
                     -1);
    assert_non_null(strstr(e.msg, "output exceeds 5 bytes"));
    assert_int_equal(out.len, 0);

    /* work is bounded even when each loop iteration is a single big operation */
    struct chat_template_opts w = {.now = TEST_NOW, .max_work = 1000000};
    assert_int_equal(chat_template_render_json("{% set big = [0] * 100000 %}"
                                               "{% for i in range(1000) %}{% if 1 in big %}"
                                               "{% endif %}{% endfor %}",
                                               vars, &w, &out, &e),
                     -1);
    assert_int_equal(e.code, AL_ELIMIT);
    assert_non_null(strstr(e.msg, "steps of work"));

    /* templates over 1 MiB are refused before parsing */
    char *big = repeat_str("", "x", CHAT_TEMPLATE_MAX_SOURCE + 1, "");
    assert_int_equal(chat_template_render_json(big, vars, &o, &out, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    free(big);

    /* variables nested deeper than the limit */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < 300; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    json_object_set_new(vars, "deep", deep);
    assert_int_equal(chat_template_render_json("x", vars, &o, &out, &e), -1);
    assert_int_equal(e.code, AL_ELIMIT);
    json_decref(vars);

    /* bytes that are not UTF-8 pass through as they are */
    check("\xff{{ '\xfe' ~ '\xc3' }}{{ '\xc3'|length }}", "\xff\xfe\xc3" "1");
    buf_free(&out);
}

/* ===== Conformance vectors ======================================================== */

static void
test_conformance(void **state)
{
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/vectors/chat-templates/expected", shared_dir());
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s (set SHARED)", dir);
    struct dirent *de;
    int files = 0, failures = 0;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        char path[2048], tpath[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        json_error_t je;
        json_t *v = json_load_file(path, 0, &je);
        assert_non_null(v);
        const char *tname = json_string_value(json_object_get(v, "template"));
        assert_non_null(tname);
        snprintf(tpath, sizeof tpath, "%s/vectors/chat-templates/%s", shared_dir(), tname);
        char *tmpl = read_text(tpath);
        assert_non_null(tmpl);

        json_t *vars = json_object();
        json_object_set(vars, "messages", json_object_get(v, "messages"));
        json_object_set(vars, "add_generation_prompt", json_object_get(v, "add_generation_prompt"));
        json_object_set(vars, "bos_token", json_object_get(v, "bos_token"));
        json_object_set(vars, "eos_token", json_object_get(v, "eos_token"));
        json_object_set_new(vars, "tools", json_null());
        json_object_set_new(vars, "documents", json_null());

        struct buf out;
        struct al_err e = {0};
        buf_init(&out);
        int rc = render_vars(tmpl, vars, &out, &e);
        const char *want = json_string_value(json_object_get(v, "expected"));
        const char *want_err = json_string_value(json_object_get(v, "expected_error"));
        if (want) {
            if (rc != 0) {
                print_error("%s: failed: %s\n", de->d_name, e.msg);
                failures++;
            } else if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0) {
                print_error("%s: mismatch\nwant [%s]\ngot  [%s]\n", de->d_name, want, out.data);
                failures++;
            }
        } else {
            assert_non_null(want_err);
            if (rc == 0 || !strstr(e.msg, want_err)) {
                print_error("%s: want error '%s', got rc %d: %s\n", de->d_name, want_err, rc,
                            rc ? e.msg : "");
                failures++;
            }
        }
        buf_free(&out);
        free(tmpl);
        json_decref(v);
        files++;
    }
    closedir(d);
    assert_true(files >= 40); /* 8 templates x 5 conversations at the time of writing */
    assert_int_equal(failures, 0);
}

/* The plain API (struct chat_msg) on a real template gives the same text as the vectors. */
static void
test_api_messages(void **state)
{
    (void)state;
    char tpath[2048];
    snprintf(tpath, sizeof tpath, "%s/vectors/chat-templates/microsoft-Phi-3.5-mini-instruct.jinja",
             shared_dir());
    char *tmpl = read_text(tpath);
    assert_non_null(tmpl);
    struct chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}};
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    buf_puts(&out, "prefix|");
    assert_int_equal(chat_template_render(tmpl, msgs, 2, true, "<s>", "<|endoftext|>", &out, &e), 0);
    assert_string_equal(out.data,
                        "prefix|<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n");
    /* on failure nothing is appended */
    assert_int_equal(chat_template_render("{{ raise_exception('no') }}", msgs, 2, true, NULL,
                                          NULL, &out, &e),
                     -1);
    assert_int_equal(e.code, AL_EUSAGE);
    assert_string_equal(out.data,
                        "prefix|<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n");
    /* NULL content is none */
    struct chat_msg nul[] = {{"user", NULL}};
    buf_reset(&out);
    assert_int_equal(chat_template_render("{{ messages[0].content is none }}", nul, 1, false,
                                          NULL, NULL, &out, &e),
                     0);
    assert_string_equal(out.data, "True");
    /* text that is not UTF-8 cannot become a JSON string */
    struct chat_msg bad[] = {{"user", "ok"}, {"user", "\xff"}};
    assert_int_equal(chat_template_render("x", bad, 2, false, NULL, NULL, &out, &e), -1);
    assert_int_equal(e.code, AL_EFORMAT);
    assert_non_null(strstr(e.msg, "message 1"));
    assert_int_equal(chat_template_render("x", msgs, 1, false, "\xfe", NULL, &out, &e), -1);
    buf_free(&out);
    free(tmpl);
}

static void
test_extra_vars(void **state)
{
    (void)state;
    struct chat_msg msgs[] = {{"user", "Hi"}};
    json_t *extra = json_pack("{s:b,s:[{s:s}]}", "enable_thinking", 0, "tools", "name", "f");
    struct chat_template_opts o = {.now = TEST_NOW};
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    assert_int_equal(chat_template_render_ex("{{ enable_thinking }}|{{ tools|tojson }}|"
                                             "{{ strftime_now('%Y-%m-%d') }}",
                                             msgs, 1, true, NULL, NULL, extra, &o, &out, &e),
                     0);
    assert_string_equal(out.data, "False|[{\"name\": \"f\"}]|2026-01-15");
    json_decref(extra);
    buf_free(&out);
}

static void
test_fallback(void **state)
{
    (void)state;
    struct chat_msg msgs[] = {{"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello"},
                              {"user", "Bye"}};
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    assert_int_equal(chat_template_render(chat_template_fallback(), msgs, 4, true, NULL, NULL,
                                          &out, &e),
                     0);
    assert_string_equal(out.data, "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello\n\n"
                                  "User: Bye\n\nAssistant:");
    buf_reset(&out);
    assert_int_equal(chat_template_render(chat_template_fallback(), msgs, 2, false, NULL, NULL,
                                          &out, &e),
                     0);
    assert_string_equal(out.data, "System: Be brief.\n\nUser: Hi\n\n");
    buf_free(&out);
    assert_int_equal(chat_template_check(chat_template_fallback(), &e), 0);
}

static void
test_basics(void **state)
{
    (void)state;
    check("{{ bos_token }}{{ messages[0].content }}", "<s>hi");
    check_fail("{% include 'x' %}", AL_EUNSUPPORTED, "1:4: unsupported tag 'include'");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_access),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_tests),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_tojson),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_hostile_nesting),
        cmocka_unit_test(test_hostile_size),
        cmocka_unit_test(test_conformance),
        cmocka_unit_test(test_api_messages),
        cmocka_unit_test(test_extra_vars),
        cmocka_unit_test(test_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
