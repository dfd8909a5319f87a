/* template.c -- chat templates, back half: values, the evaluator and the public API of
 * template.h. Semantics follow Jinja2 3.1 as Hugging Face transformers configures it
 * (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols): Python's str(),
 * truthiness, equality and arithmetic; default Undefined (falsy, prints "", iterates empty,
 * fails on arithmetic and attribute access); tojson is Python's json.dumps with
 * ensure_ascii=False. String case mapping and whitespace are ASCII plus the Unicode spaces
 * Python's str.strip knows; see docs/chat-templates.md for the subset.
 * Does not lex or parse (template_parse.c). Templates and variables are untrusted: recursion,
 * iterations, memory and output are bounded, and every failure is an al_err, never an abort. */
#include "engine/template.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/template_int.h"
#include "util/utf8.h"
#include "util/parse.h"
#include "util/xalloc.h"

/* ===== Arena ====================================================================== */

struct tpl_chunk {
    struct tpl_chunk *next; /* older chunk */
    size_t cap, used;       /* bytes in data */
    max_align_t data[];
};

#define TPL_CHUNK_BYTES (64u * 1024u)

void
tpl_arena_init(struct tpl_arena *a, size_t budget)
{
    a->head = NULL;
    a->used = 0;
    a->budget = budget;
}

void
tpl_arena_free(struct tpl_arena *a)
{
    struct tpl_chunk *c = a->head;
    while (c) {
        struct tpl_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

void *
tpl_alloc(struct tpl_arena *a, size_t n, struct al_err *e)
{
    size_t align = sizeof(max_align_t);
    size_t need = (n + align - 1) / align * align;
    if (n > a->budget || need > a->budget - a->used) {
        al_errf(e, AL_ELIMIT, "chat template: needs more than %zu bytes of working memory",
                a->budget);
        return NULL;
    }
    struct tpl_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > TPL_CHUNK_BYTES ? need : TPL_CHUNK_BYTES;
        c = xmalloc(sizeof *c + cap);
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += need;
    a->used += need;
    memset(p, 0, n);
    return p;
}

void *
tpl_alloc_array(struct tpl_arena *a, size_t count, size_t size, struct al_err *e)
{
    size_t n;
    if (!size_mul_ok(count, size, &n)) {
        al_errf(e, AL_ELIMIT, "chat template: array of %zu x %zu bytes", count, size);
        return NULL;
    }
    return tpl_alloc(a, n ? n : 1, e);
}

/* ===== Render state =============================================================== */

enum ctl { CTL_NONE, CTL_BREAK, CTL_CONTINUE };

struct scope {
    struct scope *parent; /* enclosing scope; NULL above the template's top level */
    struct tpl_dict vars; /* name -> value, arena-allocated */
};

struct render {
    struct tpl_arena *a;       /* borrowed: everything below lives here */
    struct al_err *e;          /* borrowed */
    struct tpl_dict *ctx;      /* the caller's variables, read-only */
    struct scope *top;         /* template-level assignments (macros see these) */
    struct scope *cur;         /* innermost scope: for-loop iteration, macro call, or top */
    struct buf *out;           /* where text goes now (switched for block set and macros) */
    size_t max_output;         /* bytes per output buffer */
    size_t iters, max_iters;   /* loop iterations so far / allowed */
    size_t work, max_work;     /* steps so far / allowed: see CHAT_TEMPLATE_MAX_WORK */
    int depth;                 /* guard: CHAT_TEMPLATE_MAX_EVAL_DEPTH */
    enum ctl ctl;              /* pending break/continue */
    time_t now;                /* strftime_now clock */
};

/* Call arguments, already evaluated. */
struct args {
    struct tv *pos;         /* arena array of n_pos positional values */
    size_t n_pos;
    struct tv *kw;          /* arena array of n_kw keyword values, parallel to kw_names */
    const char **kw_names;  /* borrowed from the syntax tree, not NUL-terminated */
    size_t *kw_names_n;     /* bytes of each kw_names entry */
    size_t n_kw;
};

/* Charge steps of work; the limit is checked on the next expression or iteration, so one
 * operation can overshoot by at most its own size, which memory bounds. */
static void
work_add(struct render *r, size_t units)
{
    r->work = units > SIZE_MAX - r->work ? SIZE_MAX : r->work + units;
}

/* ===== Value constructors and basic helpers ======================================= */

static struct tv
tv_undef(const char *name, size_t n)
{
    struct tv v = {.kind = TV_UNDEF};
    v.u.s.p = name;
    v.u.s.n = n;
    return v;
}

static struct tv
tv_none(void)
{
    struct tv v = {.kind = TV_NONE};
    return v;
}

static struct tv
tv_bool(bool b)
{
    struct tv v = {.kind = TV_BOOL};
    v.u.b = b;
    return v;
}

static struct tv
tv_int(int64_t i)
{
    struct tv v = {.kind = TV_INT};
    v.u.i = i;
    return v;
}

static struct tv
tv_float(double f)
{
    struct tv v = {.kind = TV_FLOAT};
    v.u.f = f;
    return v;
}

static struct tv
tv_str(const char *p, size_t n)
{
    struct tv v = {.kind = TV_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

static struct tv
tv_list(struct tpl_list *l)
{
    struct tv v = {.kind = TV_LIST};
    v.u.l = l;
    return v;
}

static struct tv
tv_dict(struct tpl_dict *d)
{
    struct tv v = {.kind = TV_DICT};
    v.u.d = d;
    return v;
}

/* Python's type name, for error messages. */
static const char *
tv_type_name(const struct tv *v)
{
    switch (v->kind) {
    case TV_UNDEF: return "undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST: return v->u.l->tuple ? "tuple" : "list";
    case TV_DICT: return "dict";
    case TV_NS: return "namespace";
    case TV_FUNC: return "builtin_function";
    case TV_MACRO: return "macro";
    case TV_LOOP: return "loop";
    }
    return "value";
}

static bool
tv_is_str(const struct tv *v, const char *s)
{
    return v->kind == TV_STR && v->u.s.n == strlen(s) && memcmp(v->u.s.p, s, v->u.s.n) == 0;
}

static bool
name_eq(const char *a, size_t an, const char *b)
{
    return an == strlen(b) && memcmp(a, b, an) == 0;
}

/* Errors carry the node's position so a template author can find the construct. */
__attribute__((format(printf, 4, 5))) static int
rfail(struct render *r, const struct tpl_node *at, enum al_code code, const char *fmt, ...)
{
    char msg[AL_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at)
        return al_errf(r->e, code, "chat template %d:%d: %s", at->line, at->col, msg);
    return al_errf(r->e, code, "chat template: %s", msg);
}

__attribute__((noinline)) static int
fail_undefined(struct render *r, const struct tpl_node *at, const struct tv *v)
{
    if (v->u.s.p)
        return rfail(r, at, AL_EFORMAT, "'%.*s' is undefined", (int)(v->u.s.n > 80 ? 80 : v->u.s.n),
                     v->u.s.p);
    return rfail(r, at, AL_EFORMAT, "value is undefined");
}

static struct tpl_list *
list_new(struct render *r, size_t n)
{
    work_add(r, n);
    struct tpl_list *l = tpl_alloc(r->a, sizeof *l, r->e);
    if (!l)
        return NULL;
    l->v = tpl_alloc_array(r->a, n, sizeof *l->v, r->e);
    if (!l->v)
        return NULL;
    l->n = n;
    return l;
}

static struct tpl_dict *
dict_new(struct render *r)
{
    return tpl_alloc(r->a, sizeof(struct tpl_dict), r->e);
}

/* Index of a string key in d, or -1. */
static long
dict_find_str(const struct tpl_dict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct tv *key = &d->keys[i];
        if (key->kind == TV_STR && key->u.s.n == n && memcmp(key->u.s.p, k, n) == 0)
            return (long)i;
    }
    return -1;
}

static int
dict_grow(struct render *r, struct tpl_dict *d)
{
    if (d->n < d->cap)
        return 0;
    size_t cap = d->cap ? d->cap * 2 : 8;
    struct tv *keys = tpl_alloc_array(r->a, cap, sizeof *keys, r->e);
    struct tv *vals = tpl_alloc_array(r->a, cap, sizeof *vals, r->e);
    if (!keys || !vals)
        return -1;
    if (d->n) {
        memcpy(keys, d->keys, d->n * sizeof *keys);
        memcpy(vals, d->vals, d->n * sizeof *vals);
    }
    d->keys = keys;
    d->vals = vals;
    d->cap = cap;
    return 0;
}

static int
dict_set_str(struct render *r, struct tpl_dict *d, const char *k, size_t n, struct tv v)
{
    long i = dict_find_str(d, k, n);
    if (i >= 0) {
        d->vals[i] = v;
        return 0;
    }
    if (dict_grow(r, d) < 0)
        return -1;
    d->keys[d->n] = tv_str(k, n);
    d->vals[d->n] = v;
    d->n++;
    return 0;
}

static char *
str_alloc(struct render *r, size_t n)
{
    size_t total;
    if (!size_add_ok(n, 1, &total)) {
        al_errf(r->e, AL_ELIMIT, "chat template: string too long");
        return NULL;
    }
    return tpl_alloc(r->a, total, r->e);
}

static int
str_concat(struct render *r, const char *a, size_t an, const char *b, size_t bn, struct tv *out)
{
    size_t n;
    if (!size_add_ok(an, bn, &n))
        return al_errf(r->e, AL_ELIMIT, "chat template: string too long");
    char *d = str_alloc(r, n);
    if (!d)
        return -1;
    work_add(r, n / 16);
    if (an)
        memcpy(d, a, an);
    if (bn)
        memcpy(d + an, b, bn);
    *out = tv_str(d, n);
    return 0;
}

/* Copy a temporary buffer into the arena as a string value and release the buffer. */
static int
buf_to_tv(struct render *r, struct buf *b, struct tv *out)
{
    work_add(r, b->len / 16);
    int rc = str_concat(r, b->data ? b->data : "", b->len, "", 0, out);
    buf_free(b);
    return rc;
}

/* A temporary buffer may not grow past what the arena could still hold. */
static int
buf_check(struct render *r, const struct buf *b)
{
    if (b->len > r->a->budget - r->a->used)
        return al_errf(r->e, AL_ELIMIT, "chat template: needs more than %zu bytes of working memory",
                       r->a->budget);
    return 0;
}

/* ===== UTF-8 and Python string semantics ========================================== */

/* Decode one code point at s[i] (i < n), lenient about malformed bytes (each counts as one). */
static uint32_t
utf8_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = *i;
    uint32_t c = u[k];
    int extra = c >= 0xF8 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (extra == 0 || (size_t)extra > n - k - 1) {
        *i = k + 1;
        return c;
    }
    uint32_t cp = c & (0x3Fu >> extra);
    for (int m = 1; m <= extra; m++) {
        if ((u[k + (size_t)m] & 0xC0) != 0x80) {
            *i = k + 1;
            return c;
        }
        cp = (cp << 6) | (u[k + (size_t)m] & 0x3F);
    }
    *i = k + (size_t)extra + 1;
    return cp;
}

/* Start of the code point that ends just before byte i (i > 0). */
static size_t
utf8_prev(const char *s, size_t i)
{
    size_t k = i - 1;
    int back = 0;
    while (k > 0 && back < 3 && ((unsigned char)s[k] & 0xC0) == 0x80) {
        k--;
        back++;
    }
    size_t probe = k;
    utf8_next(s, i, &probe);
    return probe == i ? k : i - 1;
}

static size_t
utf8_len(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        utf8_next(s, n, &i);
        count++;
    }
    return count;
}

static bool
py_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Does code point c occur in the UTF-8 set chars? */
static bool
in_charset(uint32_t c, const char *chars, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (utf8_next(chars, n, &i) == c)
            return true;
    }
    return false;
}

/* str.strip / lstrip / rstrip: chars NULL = whitespace. */
static struct tv
str_strip(const struct tv *s, const char *chars, size_t cn, bool left, bool right)
{
    const char *p = s->u.s.p;
    size_t b = 0, e = s->u.s.n;
    while (left && b < e) {
        size_t k = b;
        uint32_t c = utf8_next(p, e, &k);
        if (chars ? !in_charset(c, chars, cn) : !py_isspace(c))
            break;
        b = k;
    }
    while (right && e > b) {
        size_t k = utf8_prev(p, e);
        size_t probe = k;
        uint32_t c = utf8_next(p, e, &probe);
        if (chars ? !in_charset(c, chars, cn) : !py_isspace(c))
            break;
        e = k;
    }
    return tv_str(p + b, e - b);
}

static const char *
mem_find(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    return memmem(h, hn, nd, nn);
}

static char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static bool
ascii_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Simple (one code point to one code point) case mapping for the scripts chat text is mostly
 * written in: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic. Other code points count
 * as uncased and are kept; mappings that change length in Python (e.g. "ß".upper() == "SS")
 * are not done. Both directions never lengthen the UTF-8 text. */
static uint32_t
cp_upper(uint32_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7) ||
        (c >= 0x3B1 && c <= 0x3CB && c != 0x3C2) || (c >= 0x430 && c <= 0x44F))
        return c - 32;
    if (c >= 0x450 && c <= 0x45F)
        return c - 80;
    if (c == 0xFF)
        return 0x178;
    if (c == 0x131)
        return 'I';
    if (c == 0x17F)
        return 'S';
    if (c == 0x3C2)
        return 0x3A3;
    if (((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) && (c & 1))
        return c - 1;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && !(c & 1))
        return c - 1;
    return c;
}

static uint32_t
cp_lower(uint32_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
        (c >= 0x391 && c <= 0x3AB && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if (c == 0x178)
        return 0xFF;
    if (((c >= 0x100 && c <= 0x137 && c != 0x130) || (c >= 0x14A && c <= 0x177)) && !(c & 1))
        return c + 1;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && (c & 1))
        return c + 1;
    return c;
}

static bool
cp_cased(uint32_t c)
{
    return cp_upper(c) != c || cp_lower(c) != c || c == 0xDF || c == 0x138 || c == 0x149;
}

enum case_mode { CASE_UPPER, CASE_LOWER, CASE_CAPITALIZE, CASE_PYTITLE, CASE_JTITLE };

static int
str_case(struct render *r, const struct tv *s, enum case_mode mode, struct tv *out)
{
    size_t n = s->u.s.n, o = 0;
    char *d = str_alloc(r, n);
    if (!d)
        return -1;
    const char *p = s->u.s.p;
    uint32_t prev = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i;
        uint32_t c = utf8_next(p, n, &i);
        bool up;
        switch (mode) {
        case CASE_UPPER: up = true; break;
        case CASE_LOWER: up = false; break;
        case CASE_CAPITALIZE: up = start == 0; break;
        case CASE_PYTITLE: up = start == 0 || !cp_cased(prev); break;
        default:
            /* Jinja's title filter starts a word after '-', whitespace or an opening bracket */
            up = start == 0 || (prev && prev < 0x80 && strchr("- \t\n\r\f\v({[<", (int)prev));
            break;
        }
        prev = c;
        uint32_t m = up ? cp_upper(c) : cp_lower(c);
        if (m == c || i - start != (size_t)(c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4)) {
            /* unchanged, or a malformed byte that utf8_next passed through: copy as is */
            memcpy(d + o, p + start, i - start);
            o += i - start;
        } else {
            o += utf8_encode(m, d + o);
        }
    }
    *out = tv_str(d, o);
    return 0;
}

/* str.replace(old, new, count); count < 0 = all. */
static int
str_replace(struct render *r, const struct tv *s, const struct tv *old, const struct tv *rep,
            int64_t count, struct tv *out)
{
    struct buf b;
    buf_init(&b);
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, i = 0;
    int64_t done = 0;
    work_add(r, n / 16);
    if (old->u.s.n == 0) {
        /* Python inserts the replacement before every code point and at the end */
        while (count < 0 || done < count) {
            buf_append(&b, rep->u.s.p, rep->u.s.n);
            done++;
            if (i >= n)
                break;
            size_t k = i;
            utf8_next(p, n, &k);
            buf_append(&b, p + i, k - i);
            i = k;
            if (buf_check(r, &b) < 0) {
                buf_free(&b);
                return -1;
            }
        }
        buf_append(&b, p + i, n - i);
        return buf_to_tv(r, &b, out);
    }
    while (i <= n && (count < 0 || done < count)) {
        const char *hit = mem_find(p + i, n - i, old->u.s.p, old->u.s.n);
        if (!hit)
            break;
        size_t at = (size_t)(hit - p);
        buf_append(&b, p + i, at - i);
        buf_append(&b, rep->u.s.p, rep->u.s.n);
        i = at + old->u.s.n;
        done++;
        if (buf_check(r, &b) < 0) {
            buf_free(&b);
            return -1;
        }
    }
    buf_append(&b, p + i, n - i);
    return buf_to_tv(r, &b, out);
}

/* ===== Python str(), repr() and json.dumps ======================================== */

/* Decimal digits of v into dst (>= 21 bytes), without printf: ints are printed often. */
static size_t
fmt_int(int64_t v, char *dst)
{
    char tmp[24];
    size_t n = 0, o = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        dst[o++] = '-';
    while (n)
        dst[o++] = tmp[--n];
    return o;
}

/* Python's repr() of a float: the shortest digits that read back exactly, in fixed notation
 * for exponents -4..15 and scientific otherwise ("1e+16", "1.5e-07"). */
static void
fmt_float(double f, char *dst, size_t cap, bool json)
{
    if (isnan(f)) {
        snprintf(dst, cap, "%s", json ? "NaN" : "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(dst, cap, "%s%s", f < 0 ? "-" : "", json ? "Infinity" : "inf");
        return;
    }
    char sci[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, f);
        double back = 0;
        struct al_err ignored;
        if (parse_double(sci, -INFINITY, INFINITY, "float", &back, &ignored) == 0 && back == f)
            break;
    }
    /* sci is "-d.ddde+XX": collect digits and the exponent */
    char digits[24];
    size_t nd = 0;
    const char *q = sci;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        q++;
    }
    while (*q && *q != 'e') {
        if (*q >= '0' && *q <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *q;
        q++;
    }
    int exp10 = 0;
    if (*q == 'e') {
        int sign = 1;
        q++;
        if (*q == '-' || *q == '+')
            sign = *q++ == '-' ? -1 : 1;
        while (*q >= '0' && *q <= '9')
            exp10 = exp10 * 10 + (*q++ - '0');
        exp10 *= sign;
    }
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    size_t o = 0;
    char out[64];
    if (neg)
        out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            for (int k = 0; k <= exp10; k++)
                out[o++] = (size_t)k < nd ? digits[k] : '0';
            out[o++] = '.';
            if ((size_t)exp10 + 1 < nd) {
                for (size_t k = (size_t)exp10 + 1; k < nd; k++)
                    out[o++] = digits[k];
            } else {
                out[o++] = '0';
            }
        } else {
            out[o++] = '0';
            out[o++] = '.';
            for (int k = 0; k < -exp10 - 1; k++)
                out[o++] = '0';
            for (size_t k = 0; k < nd; k++)
                out[o++] = digits[k];
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (size_t k = 1; k < nd; k++)
                out[o++] = digits[k];
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(dst, cap, "%s", out);
}

static void
repr_str(struct buf *b, const char *p, size_t n)
{
    char q = '\'';
    if (memchr(p, '\'', n) && !memchr(p, '"', n))
        q = '"';
    buf_putc(b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\' || c == (unsigned char)q) {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c == '\n') {
            buf_puts(b, "\\n");
        } else if (c == '\r') {
            buf_puts(b, "\\r");
        } else if (c == '\t') {
            buf_puts(b, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(b, "\\x%02x", c);
        } else {
            buf_putc(b, (char)c);
        }
    }
    buf_putc(b, q);
}

/* Python's str() (repr = false) or repr() (repr = true) of v, appended to b. */
static int
tv_write(struct render *r, struct buf *b, const struct tv *v, bool repr, int depth)
{
    char num[64];
    work_add(r, 1);
    if (depth > CHAT_TEMPLATE_MAX_NESTING)
        return al_errf(r->e, AL_ELIMIT, "chat template: value nested too deeply to print");
    switch (v->kind) {
    case TV_UNDEF:
        if (repr)
            buf_puts(b, "Undefined");
        break;
    case TV_NONE: buf_puts(b, "None"); break;
    case TV_BOOL: buf_puts(b, v->u.b ? "True" : "False"); break;
    case TV_INT: buf_append(b, num, fmt_int(v->u.i, num)); break;
    case TV_FLOAT:
        fmt_float(v->u.f, num, sizeof num, false);
        buf_puts(b, num);
        break;
    case TV_STR:
        if (repr)
            repr_str(b, v->u.s.p, v->u.s.n);
        else
            buf_append(b, v->u.s.p, v->u.s.n);
        break;
    case TV_LIST: {
        const struct tpl_list *l = v->u.l;
        buf_putc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                buf_puts(b, ", ");
            if (tv_write(r, b, &l->v[i], true, depth + 1) < 0 || buf_check(r, b) < 0)
                return -1;
        }
        if (l->tuple && l->n == 1)
            buf_putc(b, ',');
        buf_putc(b, l->tuple ? ')' : ']');
        break;
    }
    case TV_DICT:
    case TV_NS: {
        const struct tpl_dict *d = v->u.d;
        buf_puts(b, v->kind == TV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                buf_puts(b, ", ");
            if (tv_write(r, b, &d->keys[i], true, depth + 1) < 0)
                return -1;
            buf_puts(b, ": ");
            if (tv_write(r, b, &d->vals[i], true, depth + 1) < 0 || buf_check(r, b) < 0)
                return -1;
        }
        buf_puts(b, v->kind == TV_NS ? "}>" : "}");
        break;
    }
    case TV_FUNC: buf_puts(b, "<built-in function>"); break;
    case TV_MACRO: buf_puts(b, "<Macro>"); break;
    case TV_LOOP: buf_puts(b, "<LoopContext>"); break;
    }
    return buf_check(r, b);
}

/* str(v) as a string value; strings are returned as they are. */
__attribute__((noinline)) static int
tv_to_str(struct render *r, const struct tv *v, struct tv *out)
{
    if (v->kind == TV_STR) {
        *out = *v;
        return 0;
    }
    if (v->kind == TV_UNDEF) {
        *out = tv_str("", 0);
        return 0;
    }
    /* the frequent scalars without a temporary buffer */
    if (v->kind == TV_BOOL) {
        *out = v->u.b ? tv_str("True", 4) : tv_str("False", 5);
        return 0;
    }
    if (v->kind == TV_NONE) {
        *out = tv_str("None", 4);
        return 0;
    }
    if (v->kind == TV_INT) {
        char num[24];
        return str_concat(r, num, fmt_int(v->u.i, num), "", 0, out);
    }
    struct buf b;
    buf_init(&b);
    if (tv_write(r, &b, v, false, 0) < 0) {
        buf_free(&b);
        return -1;
    }
    return buf_to_tv(r, &b, out);
}

struct json_style {
    const char *indent;   /* NULL = single line */
    const char *item_sep; /* ", " single-line, "," when indenting (Python's defaults) */
    const char *key_sep;  /* ": " */
    bool ensure_ascii;
    bool sort_keys;
};

static void
json_str(struct buf *b, const char *p, size_t n, bool ensure_ascii)
{
    buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
            buf_putc(b, '\\');
            buf_putc(b, c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c == '\b' ? 'b' : 'f');
            i++;
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
            i++;
        } else if (c >= 0x80 && ensure_ascii) {
            uint32_t cp = utf8_next(p, n, &i);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                buf_printf(b, "\\u%04x", cp);
            }
        } else {
            buf_putc(b, (char)c);
            i++;
        }
    }
    buf_putc(b, '"');
}

static void
json_newline(struct buf *b, const struct json_style *st, int level)
{
    buf_putc(b, '\n');
    for (int k = 0; k < level; k++)
        buf_puts(b, st->indent);
}

/* Python sorts keys with <, which for strings is code point order = UTF-8 byte order. */
static int
key_cmp(const struct tv *a, const struct tv *b)
{
    size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    int c = memcmp(a->u.s.p, b->u.s.p, n);
    if (c)
        return c;
    return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
}

static int
json_write(struct render *r, struct buf *b, const struct tv *v, const struct json_style *st,
           int level, const struct tpl_node *at)
{
    char num[64];
    work_add(r, 1);
    if (level > CHAT_TEMPLATE_MAX_NESTING)
        return rfail(r, at, AL_ELIMIT, "tojson: value nested too deeply");
    switch (v->kind) {
    case TV_NONE: buf_puts(b, "null"); break;
    case TV_BOOL: buf_puts(b, v->u.b ? "true" : "false"); break;
    case TV_INT: buf_append(b, num, fmt_int(v->u.i, num)); break;
    case TV_FLOAT:
        fmt_float(v->u.f, num, sizeof num, true);
        buf_puts(b, num);
        break;
    case TV_STR: json_str(b, v->u.s.p, v->u.s.n, st->ensure_ascii); break;
    case TV_LIST: {
        const struct tpl_list *l = v->u.l;
        if (l->n == 0) {
            buf_puts(b, "[]");
            break;
        }
        buf_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                buf_puts(b, st->item_sep);
            if (st->indent)
                json_newline(b, st, level + 1);
            if (json_write(r, b, &l->v[i], st, level + 1, at) < 0)
                return -1;
        }
        if (st->indent)
            json_newline(b, st, level);
        buf_putc(b, ']');
        break;
    }
    case TV_DICT: {
        const struct tpl_dict *d = v->u.d;
        if (d->n == 0) {
            buf_puts(b, "{}");
            break;
        }
        size_t *order = tpl_alloc_array(r->a, d->n, sizeof *order, r->e);
        if (!order)
            return -1;
        for (size_t i = 0; i < d->n; i++)
            order[i] = i;
        for (size_t i = 0; i < d->n; i++) {
            if (d->keys[i].kind != TV_STR)
                return rfail(r, at, AL_EUNSUPPORTED, "tojson: dict key of type %s",
                             tv_type_name(&d->keys[i]));
        }
        if (st->sort_keys) {
            for (size_t i = 1; i < d->n; i++) {
                size_t k = order[i], j = i;
                while (j > 0 && key_cmp(&d->keys[order[j - 1]], &d->keys[k]) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = k;
            }
        }
        buf_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                buf_puts(b, st->item_sep);
            if (st->indent)
                json_newline(b, st, level + 1);
            const struct tv *key = &d->keys[order[i]];
            json_str(b, key->u.s.p, key->u.s.n, st->ensure_ascii);
            buf_puts(b, st->key_sep);
            if (json_write(r, b, &d->vals[order[i]], st, level + 1, at) < 0)
                return -1;
        }
        if (st->indent)
            json_newline(b, st, level);
        buf_putc(b, '}');
        break;
    }
    default:
        return rfail(r, at, AL_EFORMAT, "tojson: object of type %s is not JSON serializable",
                     tv_type_name(v));
    }
    return buf_check(r, b);
}

/* ===== Truth, equality, ordering ================================================== */

static bool
tv_truthy(const struct tv *v)
{
    switch (v->kind) {
    case TV_UNDEF:
    case TV_NONE: return false;
    case TV_BOOL: return v->u.b;
    case TV_INT: return v->u.i != 0;
    case TV_FLOAT: return v->u.f != 0.0;
    case TV_STR: return v->u.s.n != 0;
    case TV_LIST: return v->u.l->n != 0;
    case TV_DICT: return v->u.d->n != 0;
    default: return true;
    }
}

static bool
tv_is_number(const struct tv *v)
{
    return v->kind == TV_INT || v->kind == TV_FLOAT || v->kind == TV_BOOL;
}

static double
tv_num(const struct tv *v)
{
    return v->kind == TV_FLOAT ? v->u.f : v->kind == TV_BOOL ? (double)v->u.b : (double)v->u.i;
}

/* Python treats bool as int. */
static bool
tv_is_intlike(const struct tv *v)
{
    return v->kind == TV_INT || v->kind == TV_BOOL;
}

static int64_t
tv_int_of(const struct tv *v)
{
    return v->kind == TV_BOOL ? (int64_t)v->u.b : v->u.i;
}

static bool tv_eq(const struct tv *a, const struct tv *b, int depth, size_t *steps);

static bool
dict_eq(const struct tpl_dict *a, const struct tpl_dict *b, int depth, size_t *steps)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        bool found = false;
        for (size_t j = 0; j < b->n && !found; j++) {
            if (tv_eq(&a->keys[i], &b->keys[j], depth + 1, steps)) {
                if (!tv_eq(&a->vals[i], &b->vals[j], depth + 1, steps))
                    return false;
                found = true;
            }
        }
        if (!found)
            return false;
    }
    return true;
}

/* *steps counts the values compared, so that the caller can charge the work. */
static bool
tv_eq(const struct tv *a, const struct tv *b, int depth, size_t *steps)
{
    ++*steps;
    if (depth > CHAT_TEMPLATE_MAX_NESTING)
        return false;
    if (tv_is_number(a) && tv_is_number(b)) {
        if (tv_is_intlike(a) && tv_is_intlike(b))
            return tv_int_of(a) == tv_int_of(b);
        return tv_num(a) == tv_num(b);
    }
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case TV_UNDEF:
    case TV_NONE: return true;
    case TV_STR: return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case TV_LIST:
        if (a->u.l == b->u.l)
            return true;
        if (a->u.l->tuple != b->u.l->tuple || a->u.l->n != b->u.l->n)
            return false;
        for (size_t i = 0; i < a->u.l->n; i++) {
            if (!tv_eq(&a->u.l->v[i], &b->u.l->v[i], depth + 1, steps))
                return false;
        }
        return true;
    case TV_DICT: return a->u.d == b->u.d || dict_eq(a->u.d, b->u.d, depth, steps);
    case TV_NS: return a->u.d == b->u.d;
    case TV_FUNC: return a->u.func == b->u.func;
    case TV_MACRO: return a->u.macro == b->u.macro;
    case TV_LOOP: return a->u.loop == b->u.loop;
    default: return false;
    }
}

/* Python ordering: numbers with numbers, strings with strings, sequences elementwise.
 * Returns -1 (and fills the error) when the types cannot be ordered. */
static int
tv_cmp(struct render *r, const struct tpl_node *at, const struct tv *a, const struct tv *b,
       int *res, int depth)
{
    if (depth > CHAT_TEMPLATE_MAX_NESTING)
        return rfail(r, at, AL_ELIMIT, "comparison nested too deeply");
    if (tv_is_number(a) && tv_is_number(b)) {
        if (tv_is_intlike(a) && tv_is_intlike(b)) {
            int64_t x = tv_int_of(a), y = tv_int_of(b);
            *res = x < y ? -1 : x > y;
        } else {
            double x = tv_num(a), y = tv_num(b);
            *res = x < y ? -1 : x > y;
        }
        return 0;
    }
    if (a->kind == TV_STR && b->kind == TV_STR) {
        *res = key_cmp(a, b);
        return 0;
    }
    if (a->kind == TV_LIST && b->kind == TV_LIST && a->u.l->tuple == b->u.l->tuple) {
        size_t n = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (tv_eq(&a->u.l->v[i], &b->u.l->v[i], depth + 1, &r->work))
                continue;
            return tv_cmp(r, at, &a->u.l->v[i], &b->u.l->v[i], res, depth + 1);
        }
        *res = a->u.l->n < b->u.l->n ? -1 : a->u.l->n > b->u.l->n;
        return 0;
    }
    return rfail(r, at, AL_EFORMAT, "cannot order values of type %s and %s", tv_type_name(a),
                 tv_type_name(b));
}

/* ===== Sequences ================================================================== */

/* The code points of a string as one-character strings. */
static int
str_chars(struct render *r, const struct tv *s, struct tpl_list **out)
{
    size_t count = utf8_len(s->u.s.p, s->u.s.n);
    struct tpl_list *l = list_new(r, count);
    if (!l)
        return -1;
    size_t i = 0;
    for (size_t k = 0; k < count; k++) {
        size_t start = i;
        utf8_next(s->u.s.p, s->u.s.n, &i);
        l->v[k] = tv_str(s->u.s.p + start, i - start);
    }
    *out = l;
    return 0;
}

/* What `for x in v` iterates over: lists as they are, dict keys, string characters; an
 * undefined value is empty. */
__attribute__((noinline)) static int
tv_iter(struct render *r, const struct tpl_node *at, const struct tv *v, struct tpl_list **out)
{
    /* callers walk what they get: charge it here, once */
    work_add(r, v->kind == TV_LIST ? v->u.l->n : v->kind == TV_DICT ? v->u.d->n
                : v->kind == TV_STR ? v->u.s.n : 0);
    switch (v->kind) {
    case TV_LIST: *out = v->u.l; return 0;
    case TV_UNDEF: return (*out = list_new(r, 0)) ? 0 : -1;
    case TV_STR: return str_chars(r, v, out);
    case TV_DICT: {
        struct tpl_list *l = list_new(r, v->u.d->n);
        if (!l)
            return -1;
        for (size_t i = 0; i < v->u.d->n; i++)
            l->v[i] = v->u.d->keys[i];
        *out = l;
        return 0;
    }
    default:
        return rfail(r, at, AL_EFORMAT, "'%s' object is not iterable", tv_type_name(v));
    }
}

static int
dict_items(struct render *r, const struct tpl_dict *d, struct tv *out)
{
    struct tpl_list *l = list_new(r, d->n);
    if (!l)
        return -1;
    for (size_t i = 0; i < d->n; i++) {
        struct tpl_list *pair = list_new(r, 2);
        if (!pair)
            return -1;
        pair->tuple = true;
        pair->v[0] = d->keys[i];
        pair->v[1] = d->vals[i];
        l->v[i] = tv_list(pair);
    }
    *out = tv_list(l);
    return 0;
}

/* len(): code points for strings. */
static int
tv_len(struct render *r, const struct tpl_node *at, const struct tv *v, int64_t *out)
{
    switch (v->kind) {
    case TV_STR: *out = (int64_t)utf8_len(v->u.s.p, v->u.s.n); return 0;
    case TV_LIST: *out = (int64_t)v->u.l->n; return 0;
    case TV_DICT: *out = (int64_t)v->u.d->n; return 0;
    case TV_UNDEF: *out = 0; return 0;
    default:
        return rfail(r, at, AL_EFORMAT, "object of type '%s' has no len()", tv_type_name(v));
    }
}

/* Python's slice.indices(): clamp start/stop for a sequence of length n. */
static void
slice_indices(int64_t n, bool has_start, int64_t start, bool has_stop, int64_t stop, int64_t step,
              int64_t *o_start, int64_t *o_stop)
{
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? n - 1 : n;
    if (!has_start) {
        start = step < 0 ? hi : lo;
    } else {
        if (start < 0)
            start += n;
        start = start < lo ? lo : start > hi ? hi : start;
    }
    if (!has_stop) {
        stop = step < 0 ? lo : hi;
    } else {
        if (stop < 0)
            stop += n;
        stop = stop < lo ? lo : stop > hi ? hi : stop;
    }
    *o_start = start;
    *o_stop = stop;
}

/* ===== Evaluator: expressions ===================================================== */

static int eval(struct render *r, const struct tpl_node *n, struct tv *out);
static int exec_body(struct render *r, struct tpl_node *const *body, size_t n);
static int apply_filter(struct render *r, const struct tpl_node *at, int id, const struct tv *in,
                        const struct args *a, struct tv *out);
static int apply_test(struct render *r, const struct tpl_node *at, int id, const struct tv *in,
                      const struct args *a, bool *out);

static bool
arg_get(const struct args *a, size_t idx, const char *name, struct tv *out)
{
    if (idx < a->n_pos) {
        *out = a->pos[idx];
        return true;
    }
    for (size_t k = 0; name && k < a->n_kw; k++) {
        if (name_eq(a->kw_names[k], a->kw_names_n[k], name)) {
            *out = a->kw[k];
            return true;
        }
    }
    return false;
}

__attribute__((noinline)) static int
eval_args(struct render *r, const struct tpl_node *n, struct args *a)
{
    memset(a, 0, sizeof *a);
    if (n->n_list) {
        a->pos = tpl_alloc_array(r->a, n->n_list, sizeof *a->pos, r->e);
        if (!a->pos)
            return -1;
        for (size_t i = 0; i < n->n_list; i++) {
            if (eval(r, n->list[i], &a->pos[i]) < 0)
                return -1;
        }
        a->n_pos = n->n_list;
    }
    if (n->n_list2) {
        a->kw = tpl_alloc_array(r->a, n->n_list2, sizeof *a->kw, r->e);
        if (!a->kw)
            return -1;
        for (size_t i = 0; i < n->n_list2; i++) {
            if (eval(r, n->list2[i], &a->kw[i]) < 0)
                return -1;
        }
        a->kw_names = n->names;
        a->kw_names_n = n->names_n;
        a->n_kw = n->n_list2;
    }
    return 0;
}

static bool
lookup_var(struct render *r, const char *name, size_t n, struct tv *out)
{
    for (struct scope *s = r->cur; s; s = s->parent) {
        long i = dict_find_str(&s->vars, name, n);
        if (i >= 0) {
            *out = s->vars.vals[i];
            return true;
        }
    }
    long i = dict_find_str(r->ctx, name, n);
    if (i >= 0) {
        *out = r->ctx->vals[i];
        return true;
    }
    static const struct {
        const char *name;
        enum tpl_func f;
    } funcs[] = {
        {"range", TF_RANGE},
        {"namespace", TF_NAMESPACE},
        {"raise_exception", TF_RAISE_EXCEPTION},
        {"strftime_now", TF_STRFTIME_NOW},
        {"dict", TF_DICT},
    };
    for (size_t k = 0; k < sizeof funcs / sizeof funcs[0]; k++) {
        if (name_eq(name, n, funcs[k].name)) {
            out->kind = TV_FUNC;
            out->u.func = (int)funcs[k].f;
            return true;
        }
    }
    return false;
}

static int
loop_attr(struct render *r, const struct tpl_node *at, const struct tpl_loop *lp,
          const char *name, size_t n, struct tv *out)
{
    int64_t len = (int64_t)lp->items->n, i0 = (int64_t)lp->index0;
    if (name_eq(name, n, "index"))
        *out = tv_int(i0 + 1);
    else if (name_eq(name, n, "index0"))
        *out = tv_int(i0);
    else if (name_eq(name, n, "revindex"))
        *out = tv_int(len - i0);
    else if (name_eq(name, n, "revindex0"))
        *out = tv_int(len - i0 - 1);
    else if (name_eq(name, n, "first"))
        *out = tv_bool(i0 == 0);
    else if (name_eq(name, n, "last"))
        *out = tv_bool(i0 == len - 1);
    else if (name_eq(name, n, "length"))
        *out = tv_int(len);
    else if (name_eq(name, n, "depth"))
        *out = tv_int(lp->depth0 + 1);
    else if (name_eq(name, n, "depth0"))
        *out = tv_int(lp->depth0);
    else if (name_eq(name, n, "previtem"))
        *out = i0 > 0 ? lp->items->v[i0 - 1] : tv_undef("previtem", 8);
    else if (name_eq(name, n, "nextitem"))
        *out = i0 + 1 < len ? lp->items->v[i0 + 1] : tv_undef("nextitem", 8);
    else
        return rfail(r, at, AL_EUNSUPPORTED, "unsupported loop attribute 'loop.%.*s'",
                     (int)(n > 60 ? 60 : n), name);
    return 0;
}

/* Jinja's getattr: attributes of the loop, members of dicts and namespaces; anything else
 * has no attribute and gives undefined. Undefined itself cannot be looked into. */
__attribute__((noinline)) static int
get_attr(struct render *r, const struct tpl_node *at, const struct tv *obj, const char *name,
         size_t n, struct tv *out)
{
    if (obj->kind == TV_UNDEF)
        return fail_undefined(r, at, obj);
    if (obj->kind == TV_LOOP)
        return loop_attr(r, at, obj->u.loop, name, n, out);
    if (obj->kind == TV_DICT || obj->kind == TV_NS) {
        long i = dict_find_str(obj->u.d, name, n);
        if (i >= 0) {
            *out = obj->u.d->vals[i];
            return 0;
        }
    }
    *out = tv_undef(name, n);
    return 0;
}

__attribute__((noinline)) static int
get_item(struct render *r, const struct tpl_node *at, const struct tv *obj, const struct tv *key,
         struct tv *out)
{
    if (obj->kind == TV_UNDEF)
        return fail_undefined(r, at, obj);
    if ((obj->kind == TV_LIST || obj->kind == TV_STR) && tv_is_intlike(key)) {
        int64_t len, i = tv_int_of(key);
        if (tv_len(r, at, obj, &len) < 0)
            return -1;
        if (i < 0)
            i += len;
        if (i < 0 || i >= len) {
            *out = tv_undef(NULL, 0);
            return 0;
        }
        if (obj->kind == TV_LIST) {
            *out = obj->u.l->v[i];
            return 0;
        }
        size_t pos = 0;
        for (int64_t k = 0; k < i; k++)
            utf8_next(obj->u.s.p, obj->u.s.n, &pos);
        size_t end = pos;
        utf8_next(obj->u.s.p, obj->u.s.n, &end);
        *out = tv_str(obj->u.s.p + pos, end - pos);
        return 0;
    }
    if (obj->kind == TV_DICT || obj->kind == TV_NS) {
        for (size_t i = 0; i < obj->u.d->n; i++) {
            if (tv_eq(&obj->u.d->keys[i], key, 0, &r->work)) {
                *out = obj->u.d->vals[i];
                return 0;
            }
        }
    }
    if (key->kind == TV_STR)
        return get_attr(r, at, obj, key->u.s.p, key->u.s.n, out);
    *out = tv_undef(NULL, 0);
    return 0;
}

static int
slice_bound(struct render *r, const struct tpl_node *n, bool *has, int64_t *v)
{
    *has = false;
    if (!n)
        return 0;
    struct tv t;
    if (eval(r, n, &t) < 0)
        return -1;
    if (t.kind == TV_NONE)
        return 0;
    if (!tv_is_intlike(&t))
        return rfail(r, n, AL_EFORMAT, "slice index must be an integer, not %s",
                     tv_type_name(&t));
    *has = true;
    *v = tv_int_of(&t);
    return 0;
}

__attribute__((noinline)) static int
eval_slice(struct render *r, const struct tpl_node *n, struct tv *out)
{
    struct tv obj;
    bool has_start, has_stop, has_step;
    int64_t start = 0, stop = 0, step = 1;
    if (eval(r, n->a, &obj) < 0 || slice_bound(r, n->b, &has_start, &start) < 0 ||
        slice_bound(r, n->c, &has_stop, &stop) < 0 || slice_bound(r, n->d, &has_step, &step) < 0)
        return -1;
    if (!has_step)
        step = 1;
    if (step == 0)
        return rfail(r, n, AL_EFORMAT, "slice step cannot be zero");
    if (obj.kind == TV_UNDEF)
        return fail_undefined(r, n, &obj);
    if (obj.kind == TV_STR && step == 1) {
        /* the common `s[:-1]` / `s[3:]`: a view into the string, no per-character list */
        int64_t b, e;
        size_t pb = 0, pe;
        slice_indices((int64_t)utf8_len(obj.u.s.p, obj.u.s.n), has_start, start, has_stop, stop,
                      1, &b, &e);
        for (int64_t k = 0; k < b; k++)
            utf8_next(obj.u.s.p, obj.u.s.n, &pb);
        pe = pb;
        for (int64_t k = b; k < e; k++)
            utf8_next(obj.u.s.p, obj.u.s.n, &pe);
        *out = tv_str(obj.u.s.p + pb, pe - pb);
        return 0;
    }
    struct tpl_list *src;
    if (obj.kind == TV_LIST) {
        src = obj.u.l;
    } else if (obj.kind == TV_STR) {
        if (str_chars(r, &obj, &src) < 0)
            return -1;
    } else if (n->a->kind == TN_LIT) {
        /* Jinja folds constants at compile time and a failed fold leaves undefined */
        *out = tv_undef(NULL, 0);
        return 0;
    } else {
        return rfail(r, n, AL_EFORMAT, "'%s' object is not subscriptable", tv_type_name(&obj));
    }
    int64_t b, e;
    slice_indices((int64_t)src->n, has_start, start, has_stop, stop, step, &b, &e);
    size_t count = 0;
    if (step > 0 && e > b)
        count = (size_t)((e - b + step - 1) / step);
    else if (step < 0 && b > e)
        count = (size_t)((b - e + (-step) - 1) / (-step));
    struct tpl_list *l = list_new(r, count);
    if (!l)
        return -1;
    l->tuple = obj.kind == TV_LIST && obj.u.l->tuple;
    for (size_t k = 0; k < count; k++)
        l->v[k] = src->v[b + (int64_t)k * step];
    if (obj.kind == TV_LIST) {
        *out = tv_list(l);
        return 0;
    }
    size_t total = 0;
    for (size_t k = 0; k < count; k++)
        total += l->v[k].u.s.n;
    char *d = str_alloc(r, total);
    if (!d)
        return -1;
    size_t o = 0;
    for (size_t k = 0; k < count; k++) {
        memcpy(d + o, l->v[k].u.s.p, l->v[k].u.s.n);
        o += l->v[k].u.s.n;
    }
    *out = tv_str(d, total);
    return 0;
}

static int
arith_int(struct render *r, const struct tpl_node *n, int op, int64_t x, int64_t y,
          struct tv *out)
{
    int64_t v = 0;
    bool ovf = false;
    switch (op) {
    case OP_ADD: ovf = __builtin_add_overflow(x, y, &v); break;
    case OP_SUB: ovf = __builtin_sub_overflow(x, y, &v); break;
    case OP_MUL: ovf = __builtin_mul_overflow(x, y, &v); break;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0)
            return rfail(r, n, AL_EFORMAT, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {
            ovf = op == OP_FLOORDIV;
            v = 0;
            break;
        }
        {
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q--;
                m += y;
            }
            v = op == OP_FLOORDIV ? q : m;
        }
        break;
    case OP_POW:
        if (y < 0) {
            *out = tv_float(pow((double)x, (double)y));
            return 0;
        }
        {
            int64_t base = x, ex = y;
            v = 1;
            while (ex > 0 && !ovf) {
                if (ex & 1)
                    ovf = __builtin_mul_overflow(v, base, &v);
                ex >>= 1;
                if (ex && !ovf)
                    ovf = __builtin_mul_overflow(base, base, &base);
            }
        }
        break;
    default: return rfail(r, n, AL_EINTERNAL, "bad integer operator");
    }
    if (ovf)
        return rfail(r, n, AL_ELIMIT, "integer result does not fit in 64 bits");
    *out = tv_int(v);
    return 0;
}

static int
arith_float(struct render *r, const struct tpl_node *n, int op, double x, double y,
            struct tv *out)
{
    double v;
    switch (op) {
    case OP_ADD: v = x + y; break;
    case OP_SUB: v = x - y; break;
    case OP_MUL: v = x * y; break;
    case OP_DIV:
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0.0)
            return rfail(r, n, AL_EFORMAT, "float division by zero");
        if (op == OP_DIV) {
            v = x / y;
        } else if (op == OP_FLOORDIV) {
            v = floor(x / y);
        } else {
            v = fmod(x, y);
            if (v != 0.0 && ((v < 0) != (y < 0)))
                v += y;
        }
        break;
    case OP_POW: v = pow(x, y); break;
    default: return rfail(r, n, AL_EINTERNAL, "bad float operator");
    }
    *out = tv_float(v);
    return 0;
}

static const char *const op_names[] = {"+", "-", "*", "/", "//", "%", "**", "~",
                                       "==", "!=", "<", "<=", ">", ">=", "in", "not in"};

/* "x" * 3 and [1] * 3, bounded before allocating. */
static int
repeat_seq(struct render *r, const struct tpl_node *n, const struct tv *seq, int64_t times,
           struct tv *out)
{
    if (times < 0)
        times = 0;
    size_t unit = seq->kind == TV_STR ? seq->u.s.n : seq->u.l->n * sizeof(struct tv);
    size_t total;
    if (!size_mul_ok(unit, (size_t)times, &total) || total > r->a->budget - r->a->used)
        return rfail(r, n, AL_ELIMIT, "repetition by %lld is too large", (long long)times);
    if (seq->kind == TV_STR) {
        char *d = str_alloc(r, total);
        if (!d)
            return -1;
        /* double the filled prefix: log(times) copies rather than times */
        size_t filled = total ? unit : 0;
        if (filled)
            memcpy(d, seq->u.s.p, unit);
        while (filled < total) {
            size_t chunk = filled < total - filled ? filled : total - filled;
            memcpy(d + filled, d, chunk);
            filled += chunk;
        }
        *out = tv_str(d, total);
        return 0;
    }
    size_t count = seq->u.l->n * (size_t)times;
    struct tpl_list *l = list_new(r, count);
    if (!l)
        return -1;
    l->tuple = seq->u.l->tuple;
    for (size_t k = 0; k < count; k++)
        l->v[k] = seq->u.l->v[k % seq->u.l->n];
    *out = tv_list(l);
    return 0;
}

/* Python's "fmt" % args for the conversions templates use: %s %r %d %i %f (with an optional
 * precision) and %%. Anything else is refused by name. */
static int
str_percent(struct render *r, const struct tpl_node *n, const struct tv *fmt,
            const struct tv *argv, struct tv *out)
{
    const struct tv *args = argv;
    size_t n_args = 1, used = 0;
    if (argv->kind == TV_LIST && argv->u.l->tuple) {
        args = argv->u.l->v;
        n_args = argv->u.l->n;
    }
    struct buf b;
    buf_init(&b);
    const char *p = fmt->u.s.p;
    size_t len = fmt->u.s.n;
    int rc = -1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '%') {
            buf_putc(&b, p[i]);
            continue;
        }
        if (++i >= len) {
            rfail(r, n, AL_EFORMAT, "'%%' formatting: incomplete format");
            goto out;
        }
        int prec = -1;
        if (p[i] == '.') {
            prec = 0;
            while (++i < len && p[i] >= '0' && p[i] <= '9' && prec < 100)
                prec = prec * 10 + (p[i] - '0');
            if (i >= len) {
                rfail(r, n, AL_EFORMAT, "'%%' formatting: incomplete format");
                goto out;
            }
        }
        char c = p[i];
        if (c == '%') {
            buf_putc(&b, '%');
            continue;
        }
        if (c != 's' && c != 'r' && c != 'd' && c != 'i' && c != 'f') {
            rfail(r, n, AL_EUNSUPPORTED, "unsupported '%%' conversion '%c'", c);
            goto out;
        }
        if (used >= n_args) {
            rfail(r, n, AL_EFORMAT, "not enough arguments for format string");
            goto out;
        }
        const struct tv *v = &args[used++];
        if (c == 's' || c == 'r') {
            if (tv_write(r, &b, v, c == 'r', 0) < 0)
                goto out;
        } else if (!tv_is_number(v)) {
            rfail(r, n, AL_EFORMAT, "%%%c format: a number is required, not %s", c,
                  tv_type_name(v));
            goto out;
        } else if (c == 'f') {
            buf_printf(&b, "%.*f", prec < 0 ? 6 : prec, tv_num(v));
        } else if (tv_is_intlike(v)) {
            buf_printf(&b, "%lld", (long long)tv_int_of(v));
        } else {
            buf_printf(&b, "%.0f", trunc(v->u.f));
        }
        if (buf_check(r, &b) < 0)
            goto out;
    }
    /* Python treats a list or dict operand as a mapping: unused is not an error */
    if (used < n_args && !(argv->kind == TV_DICT || (argv->kind == TV_LIST && !argv->u.l->tuple))) {
        rfail(r, n, AL_EFORMAT, "not all arguments converted during string formatting");
        goto out;
    }
    rc = buf_to_tv(r, &b, out);
out:
    buf_free(&b);
    return rc;
}

__attribute__((noinline)) static int
binop(struct render *r, const struct tpl_node *n, int op, const struct tv *a, const struct tv *b,
      struct tv *out)
{
    if (op == OP_CONCAT) {
        struct tv sa, sb;
        if (tv_to_str(r, a, &sa) < 0 || tv_to_str(r, b, &sb) < 0)
            return -1;
        return str_concat(r, sa.u.s.p, sa.u.s.n, sb.u.s.p, sb.u.s.n, out);
    }
    if (a->kind == TV_UNDEF)
        return fail_undefined(r, n, a);
    if (b->kind == TV_UNDEF)
        return fail_undefined(r, n, b);
    if (tv_is_number(a) && tv_is_number(b)) {
        if (tv_is_intlike(a) && tv_is_intlike(b) && op != OP_DIV)
            return arith_int(r, n, op, tv_int_of(a), tv_int_of(b), out);
        return arith_float(r, n, op, tv_num(a), tv_num(b), out);
    }
    if (op == OP_ADD && a->kind == TV_STR && b->kind == TV_STR)
        return str_concat(r, a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n, out);
    if (op == OP_ADD && a->kind == TV_LIST && b->kind == TV_LIST &&
        a->u.l->tuple == b->u.l->tuple) {
        struct tpl_list *l = list_new(r, a->u.l->n + b->u.l->n);
        if (!l)
            return -1;
        l->tuple = a->u.l->tuple;
        if (a->u.l->n)
            memcpy(l->v, a->u.l->v, a->u.l->n * sizeof *l->v);
        if (b->u.l->n)
            memcpy(l->v + a->u.l->n, b->u.l->v, b->u.l->n * sizeof *l->v);
        *out = tv_list(l);
        return 0;
    }
    if (op == OP_MUL && (a->kind == TV_STR || a->kind == TV_LIST) && tv_is_intlike(b))
        return repeat_seq(r, n, a, tv_int_of(b), out);
    if (op == OP_MUL && (b->kind == TV_STR || b->kind == TV_LIST) && tv_is_intlike(a))
        return repeat_seq(r, n, b, tv_int_of(a), out);
    if (op == OP_MOD && a->kind == TV_STR)
        return str_percent(r, n, a, b, out);
    return rfail(r, n, AL_EFORMAT, "unsupported operand types for %s: '%s' and '%s'",
                 op_names[op], tv_type_name(a), tv_type_name(b));
}

static int
contains(struct render *r, const struct tpl_node *n, const struct tv *item, const struct tv *seq,
         bool *out)
{
    switch (seq->kind) {
    case TV_STR:
        if (item->kind != TV_STR)
            return rfail(r, n, AL_EFORMAT, "'in <string>' requires string as left operand, not %s",
                         tv_type_name(item));
        *out = mem_find(seq->u.s.p, seq->u.s.n, item->u.s.p, item->u.s.n) != NULL;
        work_add(r, seq->u.s.n / 16);
        return 0;
    case TV_LIST:
        *out = false;
        for (size_t i = 0; i < seq->u.l->n && !*out; i++)
            *out = tv_eq(item, &seq->u.l->v[i], 0, &r->work);
        return 0;
    case TV_DICT:
    case TV_NS:
        *out = false;
        for (size_t i = 0; i < seq->u.d->n && !*out; i++)
            *out = tv_eq(item, &seq->u.d->keys[i], 0, &r->work);
        return 0;
    case TV_UNDEF: *out = false; return 0;
    default:
        return rfail(r, n, AL_EFORMAT, "argument of type '%s' is not iterable",
                     tv_type_name(seq));
    }
}

__attribute__((noinline)) static int
compare(struct render *r, const struct tpl_node *n, int op, const struct tv *a, const struct tv *b,
        bool *out)
{
    int c = 0;
    switch (op) {
    case OP_EQ: *out = tv_eq(a, b, 0, &r->work); return 0;
    case OP_NE: *out = !tv_eq(a, b, 0, &r->work); return 0;
    case OP_IN: return contains(r, n, a, b, out);
    case OP_NOTIN:
        if (contains(r, n, a, b, out) < 0)
            return -1;
        *out = !*out;
        return 0;
    default: break;
    }
    if (a->kind == TV_UNDEF)
        return fail_undefined(r, n, a);
    if (b->kind == TV_UNDEF)
        return fail_undefined(r, n, b);
    if (tv_cmp(r, n, a, b, &c, 0) < 0)
        return -1;
    *out = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
    return 0;
}

/* ===== Built-in functions, macros and methods ===================================== */

static int
call_range(struct render *r, const struct tpl_node *n, const struct args *a, struct tv *out)
{
    if (a->n_pos < 1 || a->n_pos > 3 || a->n_kw)
        return rfail(r, n, AL_EFORMAT, "range() takes 1 to 3 positional arguments");
    for (size_t k = 0; k < a->n_pos; k++) {
        if (!tv_is_intlike(&a->pos[k]))
            return rfail(r, n, AL_EFORMAT, "range() argument must be an integer, not %s",
                         tv_type_name(&a->pos[k]));
    }
    int64_t start = 0, stop, step = 1;
    if (a->n_pos == 1) {
        stop = tv_int_of(&a->pos[0]);
    } else {
        start = tv_int_of(&a->pos[0]);
        stop = tv_int_of(&a->pos[1]);
        if (a->n_pos == 3)
            step = tv_int_of(&a->pos[2]);
    }
    if (step == 0)
        return rfail(r, n, AL_EFORMAT, "range() step must not be zero");
    /* the sandbox Jinja uses caps ranges at 100000 items; so do we */
    double count_d = step > 0 ? ((double)stop - (double)start) / (double)step
                              : ((double)start - (double)stop) / (double)-step;
    size_t count = count_d <= 0 ? 0 : (size_t)ceil(count_d);
    if (count > 100000)
        return rfail(r, n, AL_ELIMIT, "range() of %zu items, limit 100000", count);
    struct tpl_list *l = list_new(r, count);
    if (!l)
        return -1;
    for (size_t k = 0; k < count; k++)
        l->v[k] = tv_int(start + (int64_t)k * step);
    *out = tv_list(l);
    return 0;
}

static int
dict_from_args(struct render *r, const struct tpl_node *n, const struct args *a, enum tv_kind kind,
               struct tv *out)
{
    struct tpl_dict *d = dict_new(r);
    if (!d)
        return -1;
    if (a->n_pos > 1)
        return rfail(r, n, AL_EFORMAT, "expected at most 1 positional argument");
    if (a->n_pos == 1) {
        if (a->pos[0].kind != TV_DICT)
            return rfail(r, n, AL_EUNSUPPORTED, "unsupported positional argument of type %s",
                         tv_type_name(&a->pos[0]));
        const struct tpl_dict *src = a->pos[0].u.d;
        for (size_t i = 0; i < src->n; i++) {
            if (src->keys[i].kind != TV_STR)
                return rfail(r, n, AL_EUNSUPPORTED, "non-string key");
            if (dict_set_str(r, d, src->keys[i].u.s.p, src->keys[i].u.s.n, src->vals[i]) < 0)
                return -1;
        }
    }
    for (size_t k = 0; k < a->n_kw; k++) {
        if (dict_set_str(r, d, a->kw_names[k], a->kw_names_n[k], a->kw[k]) < 0)
            return -1;
    }
    out->kind = kind;
    out->u.d = d;
    return 0;
}

static int
call_func(struct render *r, const struct tpl_node *n, int f, const struct args *a, struct tv *out)
{
    struct tv s;
    switch (f) {
    case TF_RANGE: return call_range(r, n, a, out);
    case TF_NAMESPACE: return dict_from_args(r, n, a, TV_NS, out);
    case TF_DICT: return dict_from_args(r, n, a, TV_DICT, out);
    case TF_RAISE_EXCEPTION: {
        struct tv msg;
        if (!arg_get(a, 0, "message", &msg))
            s = tv_str("raise_exception() called", 24);
        else if (tv_to_str(r, &msg, &s) < 0)
            return -1;
        return al_errf(r->e, AL_EUSAGE, "chat template %d:%d: %.*s", n->line, n->col,
                       (int)(s.u.s.n > 600 ? 600 : s.u.s.n), s.u.s.p);
    }
    case TF_STRFTIME_NOW: {
        struct tv fmt;
        if (!arg_get(a, 0, "format", &fmt) || fmt.kind != TV_STR)
            return rfail(r, n, AL_EFORMAT, "strftime_now() needs a format string");
        if (fmt.u.s.n > 256)
            return rfail(r, n, AL_ELIMIT, "strftime_now() format longer than 256 bytes");
        char f8[260], res[1024];
        memcpy(f8, fmt.u.s.p, fmt.u.s.n);
        f8[fmt.u.s.n] = '\0';
        struct tm tm;
        time_t t = r->now;
        if (!localtime_r(&t, &tm))
            return rfail(r, n, AL_EINTERNAL, "strftime_now(): clock out of range");
        size_t len = fmt.u.s.n ? strftime(res, sizeof res, f8, &tm) : 0;
        char *d = str_alloc(r, len);
        if (!d)
            return -1;
        memcpy(d, res, len);
        *out = tv_str(d, len);
        return 0;
    }
    default: return rfail(r, n, AL_EINTERNAL, "bad built-in function");
    }
}

__attribute__((noinline)) static int
call_macro(struct render *r, const struct tpl_node *call, const struct tpl_node *m,
           const struct args *a, struct tv *out)
{
    size_t n_params = m->n_names - 1;
    int rc = -1;
    struct buf b;
    buf_init(&b);
    struct scope *saved_scope = r->cur;
    struct buf *saved_out = r->out;
    enum ctl saved_ctl = r->ctl;
    if (a->n_pos > n_params) {
        rc = rfail(r, call, AL_EFORMAT, "macro '%.*s' takes no more than %zu argument(s)",
                   (int)m->names_n[0], m->names[0], n_params);
        goto out;
    }
    struct scope *sc = tpl_alloc(r->a, sizeof *sc, r->e);
    if (!sc)
        goto out;
    sc->parent = r->top;
    r->cur = sc;
    for (size_t k = 0; k < a->n_kw; k++) {
        bool known = false;
        for (size_t p = 0; p < n_params; p++)
            known |= a->kw_names_n[k] == m->names_n[p + 1] &&
                     memcmp(a->kw_names[k], m->names[p + 1], m->names_n[p + 1]) == 0;
        if (!known) {
            rc = rfail(r, call, AL_EFORMAT, "macro '%.*s' takes no keyword argument '%.*s'",
                       (int)m->names_n[0], m->names[0], (int)a->kw_names_n[k], a->kw_names[k]);
            goto out;
        }
    }
    for (size_t p = 0; p < n_params; p++) {
        struct tv v;
        const char *pname = m->names[p + 1];
        size_t pn = m->names_n[p + 1];
        bool have = p < a->n_pos;
        if (have)
            v = a->pos[p];
        for (size_t k = 0; !have && k < a->n_kw; k++) {
            if (a->kw_names_n[k] == pn && memcmp(a->kw_names[k], pname, pn) == 0) {
                v = a->kw[k];
                have = true;
            }
        }
        if (!have && m->list[p]) {
            if (eval(r, m->list[p], &v) < 0)
                goto out;
            have = true;
        }
        if (!have)
            v = tv_undef(pname, pn);
        if (dict_set_str(r, &sc->vars, pname, pn, v) < 0)
            goto out;
    }
    r->out = &b;
    r->ctl = CTL_NONE;
    if (exec_body(r, m->body, m->n_body) < 0)
        goto out;
    rc = buf_to_tv(r, &b, out);
out:
    buf_free(&b);
    r->cur = saved_scope;
    r->out = saved_out;
    r->ctl = saved_ctl;
    return rc;
}

static int
need_str_arg(struct render *r, const struct tpl_node *n, const struct args *a, size_t idx,
             const char *name, const char *what, struct tv *out)
{
    if (!arg_get(a, idx, name, out))
        return rfail(r, n, AL_EFORMAT, "%s: missing argument '%s'", what, name);
    if (out->kind != TV_STR)
        return rfail(r, n, AL_EFORMAT, "%s: argument '%s' must be a string, not %s", what, name,
                     tv_type_name(out));
    return 0;
}

/* Optional "chars" argument of strip and friends: NULL when absent or None. */
static int
strip_chars(struct render *r, const struct tpl_node *n, const struct args *a, const char *what,
            struct tv *chars, bool *have)
{
    *have = arg_get(a, 0, "chars", chars) && chars->kind != TV_NONE;
    if (*have && chars->kind != TV_STR)
        return rfail(r, n, AL_EFORMAT, "%s: argument must be a string, not %s", what,
                     tv_type_name(chars));
    return 0;
}

static int
str_split(struct render *r, const struct tpl_node *n, const struct tv *s, const struct args *a,
          struct tv *out)
{
    struct tv sep = tv_none(), maxv = tv_int(-1);
    arg_get(a, 0, "sep", &sep);
    arg_get(a, 1, "maxsplit", &maxv);
    if (!tv_is_intlike(&maxv))
        return rfail(r, n, AL_EFORMAT, "split(): maxsplit must be an integer");
    int64_t maxsplit = tv_int_of(&maxv);
    if (sep.kind != TV_NONE && (sep.kind != TV_STR || sep.u.s.n == 0))
        return rfail(r, n, AL_EFORMAT, "split(): separator must be a non-empty string or none");
    const char *p = s->u.s.p;
    size_t len = s->u.s.n;
    work_add(r, len / 8);
    /* two passes: count, then fill */
    struct tpl_list *l = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t count = 0, i = 0;
        int64_t splits = 0;
        if (sep.kind == TV_STR) {
            for (;;) {
                const char *hit = (maxsplit < 0 || splits < maxsplit)
                                      ? mem_find(p + i, len - i, sep.u.s.p, sep.u.s.n)
                                      : NULL;
                size_t end = hit ? (size_t)(hit - p) : len;
                if (pass)
                    l->v[count] = tv_str(p + i, end - i);
                count++;
                if (!hit)
                    break;
                i = end + sep.u.s.n;
                splits++;
            }
        } else {
            for (;;) {
                while (i < len) {
                    size_t k = i;
                    if (!py_isspace(utf8_next(p, len, &k)))
                        break;
                    i = k;
                }
                if (i >= len)
                    break;
                size_t start = i;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    if (pass)
                        l->v[count] = tv_str(p + start, len - start);
                    count++;
                    break;
                }
                while (i < len) {
                    size_t k = i;
                    if (py_isspace(utf8_next(p, len, &k)))
                        break;
                    i = k;
                }
                if (pass)
                    l->v[count] = tv_str(p + start, i - start);
                count++;
                splits++;
            }
        }
        if (!pass) {
            l = list_new(r, count);
            if (!l)
                return -1;
        }
    }
    *out = tv_list(l);
    return 0;
}

/* str.format with "{}", "{0}" and "{name}" fields; format specs are not supported. */
static int
str_format(struct render *r, const struct tpl_node *n, const struct tv *s, const struct args *a,
           struct tv *out)
{
    struct buf b;
    buf_init(&b);
    const char *p = s->u.s.p;
    size_t len = s->u.s.n, auto_idx = 0;
    int rc = -1;
    for (size_t i = 0; i < len; i++) {
        if ((p[i] == '{' || p[i] == '}') && i + 1 < len && p[i + 1] == p[i]) {
            buf_putc(&b, p[i]);
            i++;
            continue;
        }
        if (p[i] != '{') {
            buf_putc(&b, p[i]);
            continue;
        }
        size_t end = i + 1;
        while (end < len && p[end] != '}')
            end++;
        if (end >= len) {
            rfail(r, n, AL_EFORMAT, "format(): unmatched '{'");
            goto out;
        }
        const char *f = p + i + 1;
        size_t fn = end - i - 1;
        struct tv v;
        bool have = false;
        if (memchr(f, ':', fn) || memchr(f, '!', fn) || memchr(f, '.', fn) ||
            memchr(f, '[', fn)) {
            rfail(r, n, AL_EUNSUPPORTED, "format(): unsupported field '{%.*s}'",
                  (int)(fn > 40 ? 40 : fn), f);
            goto out;
        }
        if (fn == 0) {
            have = arg_get(a, auto_idx++, NULL, &v);
        } else if (f[0] >= '0' && f[0] <= '9') {
            size_t idx = 0;
            for (size_t k = 0; k < fn && idx < 1000; k++)
                idx = idx * 10 + (size_t)(f[k] - '0');
            have = arg_get(a, idx, NULL, &v);
        } else {
            for (size_t k = 0; k < a->n_kw && !have; k++) {
                if (a->kw_names_n[k] == fn && memcmp(a->kw_names[k], f, fn) == 0) {
                    v = a->kw[k];
                    have = true;
                }
            }
        }
        if (!have) {
            rfail(r, n, AL_EFORMAT, "format(): no argument for '{%.*s}'",
                  (int)(fn > 40 ? 40 : fn), f);
            goto out;
        }
        if (tv_write(r, &b, &v, false, 0) < 0)
            goto out;
        i = end;
    }
    rc = buf_to_tv(r, &b, out);
out:
    buf_free(&b);
    return rc;
}

static int
str_affix(struct render *r, const struct tpl_node *n, const struct tv *s, const struct args *a,
          bool suffix, struct tv *out)
{
    struct tv x;
    if (!arg_get(a, 0, "prefix", &x) && !arg_get(a, 0, "suffix", &x))
        return rfail(r, n, AL_EFORMAT, "startswith/endswith: missing argument");
    if (a->n_pos > 1)
        return rfail(r, n, AL_EUNSUPPORTED, "unsupported start/end arguments");
    const struct tv *cands = &x;
    size_t nc = 1;
    if (x.kind == TV_LIST) {
        cands = x.u.l->v;
        nc = x.u.l->n;
    }
    bool hit = false;
    for (size_t k = 0; k < nc && !hit; k++) {
        const struct tv *c = &cands[k];
        if (c->kind != TV_STR)
            return rfail(r, n, AL_EFORMAT, "startswith/endswith: argument must be a string");
        if (c->u.s.n <= s->u.s.n)
            hit = memcmp(suffix ? s->u.s.p + s->u.s.n - c->u.s.n : s->u.s.p, c->u.s.p,
                         c->u.s.n) == 0;
    }
    *out = tv_bool(hit);
    return 0;
}

static int
call_str_method(struct render *r, const struct tpl_node *n, const struct tv *s, const char *m,
                size_t mn, const struct args *a, struct tv *out)
{
    struct tv x, y, chars;
    bool have;
    if (name_eq(m, mn, "strip") || name_eq(m, mn, "lstrip") || name_eq(m, mn, "rstrip")) {
        if (strip_chars(r, n, a, "strip", &chars, &have) < 0)
            return -1;
        *out = str_strip(s, have ? chars.u.s.p : NULL, have ? chars.u.s.n : 0, m[0] != 'r',
                         m[0] != 'l');
        return 0;
    }
    if (name_eq(m, mn, "startswith"))
        return str_affix(r, n, s, a, false, out);
    if (name_eq(m, mn, "endswith"))
        return str_affix(r, n, s, a, true, out);
    if (name_eq(m, mn, "split"))
        return str_split(r, n, s, a, out);
    if (name_eq(m, mn, "upper"))
        return str_case(r, s, CASE_UPPER, out);
    if (name_eq(m, mn, "lower"))
        return str_case(r, s, CASE_LOWER, out);
    if (name_eq(m, mn, "title"))
        return str_case(r, s, CASE_PYTITLE, out);
    if (name_eq(m, mn, "capitalize"))
        return str_case(r, s, CASE_CAPITALIZE, out);
    if (name_eq(m, mn, "format"))
        return str_format(r, n, s, a, out);
    if (name_eq(m, mn, "replace")) {
        struct tv cnt = tv_int(-1);
        if (need_str_arg(r, n, a, 0, "old", "replace", &x) < 0 ||
            need_str_arg(r, n, a, 1, "new", "replace", &y) < 0)
            return -1;
        arg_get(a, 2, "count", &cnt);
        if (!tv_is_intlike(&cnt))
            return rfail(r, n, AL_EFORMAT, "replace: count must be an integer");
        return str_replace(r, s, &x, &y, tv_int_of(&cnt), out);
    }
    if (name_eq(m, mn, "find") || name_eq(m, mn, "rfind") || name_eq(m, mn, "count")) {
        if (need_str_arg(r, n, a, 0, "sub", "find", &x) < 0)
            return -1;
        if (a->n_pos > 1)
            return rfail(r, n, AL_EUNSUPPORTED, "unsupported start/end arguments");
        int64_t found = -1, count = 0;
        work_add(r, s->u.s.n / 16);
        for (size_t i = 0; i <= s->u.s.n;) {
            const char *hit = mem_find(s->u.s.p + i, s->u.s.n - i, x.u.s.p, x.u.s.n);
            if (!hit)
                break;
            size_t at = (size_t)(hit - s->u.s.p);
            if (found < 0 || m[0] == 'r')
                found = (int64_t)utf8_len(s->u.s.p, at);
            count++;
            if (m[0] == 'f')
                break;
            i = at + (x.u.s.n ? x.u.s.n : 1);
        }
        *out = tv_int(m[0] == 'c' ? count : found);
        return 0;
    }
    if (name_eq(m, mn, "join")) {
        struct tpl_list *items;
        struct buf b;
        if (!arg_get(a, 0, "iterable", &x))
            return rfail(r, n, AL_EFORMAT, "join: missing argument");
        if (tv_iter(r, n, &x, &items) < 0)
            return -1;
        buf_init(&b);
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].kind != TV_STR) {
                buf_free(&b);
                return rfail(r, n, AL_EFORMAT, "join: sequence item %zu: expected str, got %s",
                             i, tv_type_name(&items->v[i]));
            }
            if (i)
                buf_append(&b, s->u.s.p, s->u.s.n);
            buf_append(&b, items->v[i].u.s.p, items->v[i].u.s.n);
            if (buf_check(r, &b) < 0) {
                buf_free(&b);
                return -1;
            }
        }
        return buf_to_tv(r, &b, out);
    }
    if (name_eq(m, mn, "isdigit") || name_eq(m, mn, "isalpha") || name_eq(m, mn, "isspace") ||
        name_eq(m, mn, "isupper") || name_eq(m, mn, "islower")) {
        bool ok = s->u.s.n > 0, cased = false;
        for (size_t i = 0; i < s->u.s.n; i++) {
            char c = s->u.s.p[i];
            if (m[2] == 'd')
                ok &= c >= '0' && c <= '9';
            else if (m[2] == 'a')
                ok &= ascii_alpha(c);
            else if (m[2] == 's')
                ok &= py_isspace((unsigned char)c);
            else if (m[2] == 'u') {
                ok &= !(c >= 'a' && c <= 'z');
                cased |= c >= 'A' && c <= 'Z';
            } else {
                ok &= !(c >= 'A' && c <= 'Z');
                cased |= c >= 'a' && c <= 'z';
            }
        }
        if (m[2] == 'u' || m[2] == 'l')
            ok &= cased;
        *out = tv_bool(ok);
        return 0;
    }
    return rfail(r, n, AL_EUNSUPPORTED, "unsupported string method '%.*s'",
                 (int)(mn > 60 ? 60 : mn), m);
}

static int
call_method(struct render *r, const struct tpl_node *n, const struct tv *obj, const char *m,
            size_t mn, const struct args *a, struct tv *out)
{
    if (obj->kind == TV_UNDEF)
        return fail_undefined(r, n, obj);
    if (obj->kind == TV_STR)
        return call_str_method(r, n, obj, m, mn, a, out);
    if (obj->kind == TV_DICT) {
        const struct tpl_dict *d = obj->u.d;
        if (name_eq(m, mn, "items"))
            return dict_items(r, d, out);
        if (name_eq(m, mn, "keys") || name_eq(m, mn, "values")) {
            struct tpl_list *l = list_new(r, d->n);
            if (!l)
                return -1;
            for (size_t i = 0; i < d->n; i++)
                l->v[i] = m[0] == 'k' ? d->keys[i] : d->vals[i];
            *out = tv_list(l);
            return 0;
        }
        if (name_eq(m, mn, "get")) {
            struct tv key, def = tv_none();
            if (!arg_get(a, 0, "key", &key))
                return rfail(r, n, AL_EFORMAT, "get: missing key");
            arg_get(a, 1, "default", &def);
            for (size_t i = 0; i < d->n; i++) {
                if (tv_eq(&d->keys[i], &key, 0, &r->work)) {
                    *out = d->vals[i];
                    return 0;
                }
            }
            *out = def;
            return 0;
        }
    }
    if (obj->kind == TV_LIST && (name_eq(m, mn, "count") || name_eq(m, mn, "index"))) {
        struct tv x;
        int64_t count = 0, first = -1;
        if (!arg_get(a, 0, NULL, &x))
            return rfail(r, n, AL_EFORMAT, "%.*s: missing argument", (int)mn, m);
        for (size_t i = 0; i < obj->u.l->n; i++) {
            if (tv_eq(&obj->u.l->v[i], &x, 0, &r->work)) {
                count++;
                if (first < 0)
                    first = (int64_t)i;
            }
        }
        if (m[0] == 'i' && first < 0)
            return rfail(r, n, AL_EFORMAT, "index: value is not in list");
        *out = tv_int(m[0] == 'c' ? count : first);
        return 0;
    }
    if (obj->kind == TV_LOOP && name_eq(m, mn, "cycle")) {
        if (a->n_pos == 0)
            return rfail(r, n, AL_EFORMAT, "loop.cycle() needs at least one argument");
        *out = a->pos[obj->u.loop->index0 % a->n_pos];
        return 0;
    }
    if (obj->kind == TV_DICT || obj->kind == TV_LIST)
        return rfail(r, n, AL_EUNSUPPORTED, "unsupported method '%.*s' on %s",
                     (int)(mn > 60 ? 60 : mn), m, tv_type_name(obj));
    return rfail(r, n, AL_EFORMAT, "'%s' object has no method '%.*s'", tv_type_name(obj),
                 (int)(mn > 60 ? 60 : mn), m);
}

__attribute__((noinline)) static int
eval_call(struct render *r, const struct tpl_node *n, struct tv *out)
{
    struct args a;
    const struct tpl_node *callee = n->a;
    if (callee->kind == TN_ATTR) {
        struct tv obj;
        if (eval(r, callee->a, &obj) < 0)
            return -1;
        /* a dict member that is a macro is called as a value, everything else is a method */
        if (obj.kind == TV_DICT || obj.kind == TV_NS) {
            long i = dict_find_str(obj.u.d, callee->name, callee->name_n);
            if (i >= 0 && obj.u.d->vals[i].kind == TV_MACRO) {
                if (eval_args(r, n, &a) < 0)
                    return -1;
                return call_macro(r, n, obj.u.d->vals[i].u.macro, &a, out);
            }
        }
        if (eval_args(r, n, &a) < 0)
            return -1;
        return call_method(r, n, &obj, callee->name, callee->name_n, &a, out);
    }
    struct tv f;
    if (callee->kind == TN_NAME) {
        if (!lookup_var(r, callee->name, callee->name_n, &f))
            return rfail(r, n, AL_EUNSUPPORTED, "unsupported function '%.*s'",
                         (int)(callee->name_n > 60 ? 60 : callee->name_n), callee->name);
    } else if (eval(r, callee, &f) < 0) {
        return -1;
    }
    if (eval_args(r, n, &a) < 0)
        return -1;
    if (f.kind == TV_FUNC)
        return call_func(r, n, f.u.func, &a, out);
    if (f.kind == TV_MACRO)
        return call_macro(r, n, f.u.macro, &a, out);
    if (f.kind == TV_UNDEF)
        return fail_undefined(r, n, &f);
    return rfail(r, n, AL_EFORMAT, "'%s' object is not callable", tv_type_name(&f));
}

static int
eval_inner(struct render *r, const struct tpl_node *n, struct tv *out)
{
    struct tv a, b;
    bool res;
    switch (n->kind) {
    case TN_LIT: *out = n->lit; return 0;
    case TN_NAME:
        if (!lookup_var(r, n->name, n->name_n, out))
            *out = tv_undef(n->name, n->name_n);
        return 0;
    case TN_LIST: {
        struct tpl_list *l = list_new(r, n->n_list);
        if (!l)
            return -1;
        l->tuple = n->op == 1;
        for (size_t i = 0; i < n->n_list; i++) {
            if (eval(r, n->list[i], &l->v[i]) < 0)
                return -1;
        }
        *out = tv_list(l);
        return 0;
    }
    case TN_DICT: {
        struct tpl_dict *d = dict_new(r);
        if (!d)
            return -1;
        for (size_t i = 0; i < n->n_list; i++) {
            if (eval(r, n->list[i], &a) < 0 || eval(r, n->list2[i], &b) < 0)
                return -1;
            if (a.kind != TV_STR && a.kind != TV_INT && a.kind != TV_BOOL && a.kind != TV_NONE &&
                a.kind != TV_FLOAT)
                return rfail(r, n->list[i], AL_EFORMAT, "unhashable dict key of type %s",
                             tv_type_name(&a));
            size_t k = 0;
            while (k < d->n && !tv_eq(&d->keys[k], &a, 0, &r->work))
                k++;
            if (k == d->n) {
                if (dict_grow(r, d) < 0)
                    return -1;
                d->keys[d->n++] = a;
            }
            d->vals[k] = b;
        }
        *out = tv_dict(d);
        return 0;
    }
    case TN_ATTR:
        if (eval(r, n->a, &a) < 0)
            return -1;
        return get_attr(r, n, &a, n->name, n->name_n, out);
    case TN_ITEM:
        if (eval(r, n->a, &a) < 0 || eval(r, n->b, &b) < 0)
            return -1;
        return get_item(r, n, &a, &b, out);
    case TN_SLICE: return eval_slice(r, n, out);
    case TN_CALL: return eval_call(r, n, out);
    case TN_FILTER: {
        struct args args;
        if (eval(r, n->a, &a) < 0 || eval_args(r, n, &args) < 0)
            return -1;
        return apply_filter(r, n, n->op, &a, &args, out);
    }
    case TN_TEST: {
        struct args args;
        if (n->op == TE_DEFINED || n->op == TE_UNDEFINED) {
            if (n->n_list || n->n_list2)
                return rfail(r, n, AL_EFORMAT, "test takes no arguments");
            if (eval(r, n->a, &a) < 0)
                return -1;
            res = a.kind != TV_UNDEF;
            if (n->op == TE_UNDEFINED)
                res = !res;
        } else {
            if (eval(r, n->a, &a) < 0 || eval_args(r, n, &args) < 0 ||
                apply_test(r, n, n->op, &a, &args, &res) < 0)
                return -1;
        }
        *out = tv_bool(n->flag ? !res : res);
        return 0;
    }
    case TN_NEG:
    case TN_POS:
        if (eval(r, n->a, &a) < 0)
            return -1;
        if (a.kind == TV_UNDEF)
            return fail_undefined(r, n, &a);
        if (!tv_is_number(&a))
            return rfail(r, n, AL_EFORMAT, "bad operand type for unary %c: '%s'",
                         n->kind == TN_NEG ? '-' : '+', tv_type_name(&a));
        if (n->kind == TN_POS)
            *out = tv_is_intlike(&a) ? tv_int(tv_int_of(&a)) : a;
        else if (tv_is_intlike(&a)) {
            if (tv_int_of(&a) == INT64_MIN)
                return rfail(r, n, AL_ELIMIT, "integer result does not fit in 64 bits");
            *out = tv_int(-tv_int_of(&a));
        } else
            *out = tv_float(-a.u.f);
        return 0;
    case TN_NOT:
        if (eval(r, n->a, &a) < 0)
            return -1;
        *out = tv_bool(!tv_truthy(&a));
        return 0;
    case TN_AND:
    case TN_OR:
        /* Python returns the deciding operand, not a bool */
        if (eval(r, n->a, &a) < 0)
            return -1;
        if (tv_truthy(&a) == (n->kind == TN_OR)) {
            *out = a;
            return 0;
        }
        return eval(r, n->b, out);
    case TN_BINOP:
        if (eval(r, n->a, &a) < 0 || eval(r, n->b, &b) < 0)
            return -1;
        return binop(r, n, n->op, &a, &b, out);
    case TN_COMPARE:
        if (eval(r, n->a, &a) < 0 || eval(r, n->b, &b) < 0 || compare(r, n, n->op, &a, &b, &res) < 0)
            return -1;
        *out = tv_bool(res);
        return 0;
    case TN_COND:
        if (eval(r, n->a, &a) < 0)
            return -1;
        if (tv_truthy(&a))
            return eval(r, n->b, out);
        if (n->c)
            return eval(r, n->c, out);
        *out = tv_undef(NULL, 0);
        return 0;
    default: return rfail(r, n, AL_EINTERNAL, "statement node in expression");
    }
}

static int
eval(struct render *r, const struct tpl_node *n, struct tv *out)
{
    work_add(r, 1);
    if (r->work > r->max_work)
        return rfail(r, n, AL_ELIMIT, "more than %zu steps of work", r->max_work);
    if (++r->depth > CHAT_TEMPLATE_MAX_EVAL_DEPTH) {
        r->depth--;
        return rfail(r, n, AL_ELIMIT, "evaluation nested more than %d levels deep",
                     CHAT_TEMPLATE_MAX_EVAL_DEPTH);
    }
    int rc = eval_inner(r, n, out);
    r->depth--;
    return rc;
}

/* ===== Filters and tests ========================================================== */

/* Attribute paths of map/selectattr/sort: "a.b" and "0" (an index), as Jinja's attrgetter. */
static int
get_path(struct render *r, const struct tpl_node *at, const struct tv *obj, const struct tv *path,
         struct tv *out)
{
    if (tv_is_intlike(path))
        return get_item(r, at, obj, path, out);
    if (path->kind != TV_STR)
        return rfail(r, at, AL_EFORMAT, "attribute name must be a string, not %s",
                     tv_type_name(path));
    struct tv cur_v = *obj;
    const char *p = path->u.s.p;
    size_t n = path->u.s.n, i = 0;
    for (;;) {
        const char *dot = memchr(p + i, '.', n - i);
        size_t end = dot ? (size_t)(dot - p) : n;
        bool digits = end > i;
        int64_t idx = 0;
        for (size_t k = i; k < end && digits; k++) {
            digits = p[k] >= '0' && p[k] <= '9' && idx < INT64_MAX / 10;
            idx = idx * 10 + (p[k] - '0');
        }
        struct tv key = digits ? tv_int(idx) : tv_str(p + i, end - i);
        if (get_item(r, at, &cur_v, &key, &cur_v) < 0)
            return -1;
        if (!dot)
            break;
        i = end + 1;
    }
    *out = cur_v;
    return 0;
}

/* Sorting (sort, dictsort, min, max): stable merge sort, strings compared case-insensitively
 * unless asked otherwise, like Jinja's filters. */
struct sort_spec {
    bool case_sensitive;
    const struct tv *attr; /* NULL = the item itself */
    int tuple_idx;         /* >= 0: compare this element of a (key, value) pair */
};

static int
sort_key(struct render *r, const struct tpl_node *at, const struct sort_spec *sp,
         const struct tv *item, struct tv *out)
{
    if (sp->tuple_idx >= 0) {
        *out = item->u.l->v[sp->tuple_idx];
        return 0;
    }
    if (sp->attr)
        return get_path(r, at, item, sp->attr, out);
    *out = *item;
    return 0;
}

static int
sort_cmp(struct render *r, const struct tpl_node *at, const struct sort_spec *sp,
         const struct tv *a, const struct tv *b, int *res)
{
    struct tv ka, kb;
    if (sort_key(r, at, sp, a, &ka) < 0 || sort_key(r, at, sp, b, &kb) < 0)
        return -1;
    if (!sp->case_sensitive && ka.kind == TV_STR && kb.kind == TV_STR) {
        size_t n = ka.u.s.n < kb.u.s.n ? ka.u.s.n : kb.u.s.n;
        for (size_t i = 0; i < n; i++) {
            unsigned char x = (unsigned char)ascii_lower(ka.u.s.p[i]);
            unsigned char y = (unsigned char)ascii_lower(kb.u.s.p[i]);
            if (x != y) {
                *res = x < y ? -1 : 1;
                return 0;
            }
        }
        *res = ka.u.s.n < kb.u.s.n ? -1 : ka.u.s.n > kb.u.s.n;
        return 0;
    }
    if (ka.kind == TV_UNDEF)
        return fail_undefined(r, at, &ka);
    if (kb.kind == TV_UNDEF)
        return fail_undefined(r, at, &kb);
    return tv_cmp(r, at, &ka, &kb, res, 0);
}

static int
merge_sort(struct render *r, const struct tpl_node *at, const struct sort_spec *sp, struct tv *v,
           struct tv *tmp, size_t n)
{
    if (n < 2)
        return 0;
    size_t h = n / 2;
    if (merge_sort(r, at, sp, v, tmp, h) < 0 || merge_sort(r, at, sp, v + h, tmp, n - h) < 0)
        return -1;
    size_t i = 0, j = h, o = 0;
    work_add(r, n);
    while (i < h && j < n) {
        int c;
        if (sort_cmp(r, at, sp, &v[j], &v[i], &c) < 0)
            return -1;
        tmp[o++] = c < 0 ? v[j++] : v[i++];
    }
    while (i < h)
        tmp[o++] = v[i++];
    while (j < n)
        tmp[o++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
    return 0;
}

/* A sorted copy of items. */
static int
sorted_copy(struct render *r, const struct tpl_node *at, const struct sort_spec *sp,
            const struct tpl_list *items, bool reverse, struct tpl_list **out)
{
    struct tpl_list *l = list_new(r, items->n);
    struct tv *tmp = tpl_alloc_array(r->a, items->n, sizeof *tmp, r->e);
    if (!l || !tmp)
        return -1;
    if (items->n)
        memcpy(l->v, items->v, items->n * sizeof *l->v);
    if (merge_sort(r, at, sp, l->v, tmp, l->n) < 0)
        return -1;
    for (size_t i = 0; reverse && i < l->n / 2; i++) {
        struct tv t = l->v[i];
        l->v[i] = l->v[l->n - 1 - i];
        l->v[l->n - 1 - i] = t;
    }
    *out = l;
    return 0;
}

/* Arguments after the first `skip` positional ones, for tests and filters named by select,
 * selectattr and map. */
static struct args
args_rest(const struct args *a, size_t skip)
{
    struct args rest = *a;
    if (skip >= a->n_pos) {
        rest.pos = NULL;
        rest.n_pos = 0;
    } else {
        rest.pos = a->pos + skip;
        rest.n_pos = a->n_pos - skip;
    }
    return rest;
}

static int
lookup_named(struct render *r, const struct tpl_node *at, const struct tv *name, bool test,
             int *id)
{
    if (name->kind != TV_STR)
        return rfail(r, at, AL_EFORMAT, "%s name must be a string", test ? "test" : "filter");
    *id = test ? tpl_test_lookup(name->u.s.p, name->u.s.n)
               : tpl_filter_lookup(name->u.s.p, name->u.s.n);
    if (*id < 0)
        return rfail(r, at, AL_EUNSUPPORTED, "unsupported %s '%.*s'", test ? "test" : "filter",
                     (int)(name->u.s.n > 60 ? 60 : name->u.s.n), name->u.s.p);
    return 0;
}

/* select / reject / selectattr / rejectattr */
static int
filter_select(struct render *r, const struct tpl_node *at, const struct tv *in,
              const struct args *a, bool attr, bool keep, struct tv *out)
{
    struct tpl_list *items;
    struct tv attr_name, test_name;
    size_t first = 0;
    int test = -1;
    /* Jinja skips a falsy input without iterating it, so `false|select` is [] */
    if (!tv_truthy(in))
        return (items = list_new(r, 0)) ? (*out = tv_list(items), 0) : -1;
    if (tv_iter(r, at, in, &items) < 0)
        return -1;
    if (attr) {
        if (!arg_get(a, 0, NULL, &attr_name))
            return rfail(r, at, AL_EFORMAT, "selectattr/rejectattr: missing attribute name");
        first = 1;
    }
    if (arg_get(a, first, NULL, &test_name) && lookup_named(r, at, &test_name, true, &test) < 0)
        return -1;
    struct args rest = args_rest(a, first + 1);
    struct tpl_list *l = list_new(r, items->n);
    if (!l)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < items->n; i++) {
        struct tv v = items->v[i];
        bool ok;
        if (attr && get_path(r, at, &items->v[i], &attr_name, &v) < 0)
            return -1;
        if (test < 0)
            ok = tv_truthy(&v);
        else if (apply_test(r, at, test, &v, &rest, &ok) < 0)
            return -1;
        if (ok == keep)
            l->v[k++] = items->v[i];
    }
    l->n = k;
    *out = tv_list(l);
    return 0;
}

static int
filter_map(struct render *r, const struct tpl_node *at, const struct tv *in, const struct args *a,
           struct tv *out)
{
    struct tpl_list *items;
    struct tv attr, def, fname;
    if (!tv_truthy(in))
        return (items = list_new(r, 0)) ? (*out = tv_list(items), 0) : -1;
    if (tv_iter(r, at, in, &items) < 0)
        return -1;
    struct tpl_list *l = list_new(r, items->n);
    if (!l)
        return -1;
    if (arg_get(a, SIZE_MAX, "attribute", &attr)) {
        bool has_def = arg_get(a, SIZE_MAX, "default", &def);
        for (size_t i = 0; i < items->n; i++) {
            if (get_path(r, at, &items->v[i], &attr, &l->v[i]) < 0)
                return -1;
            if (has_def && l->v[i].kind == TV_UNDEF)
                l->v[i] = def;
        }
    } else {
        int id = -1;
        if (!arg_get(a, 0, NULL, &fname))
            return rfail(r, at, AL_EFORMAT, "map: needs a filter name or attribute=");
        if (lookup_named(r, at, &fname, false, &id) < 0)
            return -1;
        struct args rest = args_rest(a, 1);
        for (size_t i = 0; i < items->n; i++) {
            if (apply_filter(r, at, id, &items->v[i], &rest, &l->v[i]) < 0)
                return -1;
        }
    }
    *out = tv_list(l);
    return 0;
}

static int
filter_tojson(struct render *r, const struct tpl_node *at, const struct tv *in,
              const struct args *a, struct tv *out)
{
    struct json_style st = {NULL, ", ", ": ", false, false};
    struct tv v;
    char spaces[64];
    if (arg_get(a, 0, "indent", &v) && v.kind != TV_NONE) {
        if (v.kind == TV_STR) {
            if (v.u.s.n >= sizeof spaces)
                return rfail(r, at, AL_ELIMIT, "tojson: indent longer than 63 bytes");
            memcpy(spaces, v.u.s.p, v.u.s.n);
            spaces[v.u.s.n] = '\0';
        } else if (tv_is_intlike(&v)) {
            int64_t w = tv_int_of(&v);
            if (w > 63)
                return rfail(r, at, AL_ELIMIT, "tojson: indent wider than 63");
            w = w < 0 ? 0 : w;
            memset(spaces, ' ', (size_t)w);
            spaces[w] = '\0';
        } else {
            return rfail(r, at, AL_EFORMAT, "tojson: indent must be an integer or string");
        }
        st.indent = spaces;
        st.item_sep = ",";
    }
    if (arg_get(a, 1, "ensure_ascii", &v))
        st.ensure_ascii = tv_truthy(&v);
    if (arg_get(a, SIZE_MAX, "sort_keys", &v))
        st.sort_keys = tv_truthy(&v);
    char seps[2][16];
    if (arg_get(a, SIZE_MAX, "separators", &v) && v.kind != TV_NONE) {
        if (v.kind != TV_LIST || v.u.l->n != 2 || v.u.l->v[0].kind != TV_STR ||
            v.u.l->v[1].kind != TV_STR || v.u.l->v[0].u.s.n >= 16 || v.u.l->v[1].u.s.n >= 16)
            return rfail(r, at, AL_EFORMAT, "tojson: separators must be two short strings");
        for (int k = 0; k < 2; k++) {
            memcpy(seps[k], v.u.l->v[k].u.s.p, v.u.l->v[k].u.s.n);
            seps[k][v.u.l->v[k].u.s.n] = '\0';
        }
        st.item_sep = seps[0];
        st.key_sep = seps[1];
    }
    struct buf b;
    buf_init(&b);
    if (json_write(r, &b, in, &st, 0, at) < 0) {
        buf_free(&b);
        return -1;
    }
    return buf_to_tv(r, &b, out);
}

/* Python's str.splitlines() boundaries that matter for indent: \n, \r\n, \r, \v, \f, \x1c-\x1e. */
static size_t
line_break_len(const char *p, size_t n, size_t i)
{
    unsigned char c = (unsigned char)p[i];
    if (c == '\r')
        return (i + 1 < n && p[i + 1] == '\n') ? 2 : 1;
    if (c == '\n' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e))
        return 1;
    return 0;
}

static int
filter_indent(struct render *r, const struct tpl_node *at, const struct tv *in,
              const struct args *a, struct tv *out)
{
    struct tv s = *in, w = tv_int(4), first = tv_bool(false), blank = tv_bool(false), ind;
    if (in->kind == TV_UNDEF)
        return fail_undefined(r, at, in);
    if (in->kind != TV_STR)
        return rfail(r, at, AL_EFORMAT, "indent: expected a string, got %s", tv_type_name(in));
    arg_get(a, 0, "width", &w);
    arg_get(a, 1, "first", &first);
    arg_get(a, 2, "blank", &blank);
    if (w.kind == TV_STR) {
        ind = w;
    } else if (tv_is_intlike(&w)) {
        int64_t width = tv_int_of(&w);
        if (width > 1024)
            return rfail(r, at, AL_ELIMIT, "indent: width over 1024");
        width = width < 0 ? 0 : width;
        char *d = str_alloc(r, (size_t)width);
        if (!d)
            return -1;
        memset(d, ' ', (size_t)width);
        ind = tv_str(d, (size_t)width);
    } else {
        return rfail(r, at, AL_EFORMAT, "indent: width must be an integer or string");
    }
    /* Jinja appends "\n" and splits into lines, then joins them with "\n" + indent, skipping
     * the indent on blank lines unless blank=True */
    struct buf b;
    buf_init(&b);
    if (tv_truthy(&first))
        buf_append(&b, ind.u.s.p, ind.u.s.n);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0, line = 0;
    for (;;) {
        size_t start = i;
        while (i < n && !line_break_len(p, n, i))
            i++;
        if (line > 0) {
            buf_putc(&b, '\n');
            if (i > start || tv_truthy(&blank))
                buf_append(&b, ind.u.s.p, ind.u.s.n);
        }
        buf_append(&b, p + start, i - start);
        line++;
        if (i >= n)
            break;
        i += line_break_len(p, n, i);
        if (buf_check(r, &b) < 0) {
            buf_free(&b);
            return -1;
        }
    }
    return buf_to_tv(r, &b, out);
}

/* int(): strings may carry blanks, a sign and '_' separators; floats are truncated. */
static bool
parse_py_int(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    while (i < n && py_isspace((unsigned char)p[i]))
        i++;
    while (n > i && py_isspace((unsigned char)p[n - 1]))
        n--;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-'))
        neg = p[i++] == '-';
    if (i >= n)
        return false;
    int64_t v = 0;
    for (; i < n; i++) {
        if (p[i] == '_' && i + 1 < n && p[i + 1] != '_')
            continue;
        if (p[i] < '0' || p[i] > '9')
            return false;
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, neg ? -(p[i] - '0') : (p[i] - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

static bool
parse_py_float(const char *p, size_t n, double *out)
{
    char tmp[64];
    size_t i = 0;
    while (i < n && py_isspace((unsigned char)p[i]))
        i++;
    while (n > i && py_isspace((unsigned char)p[n - 1]))
        n--;
    if (n - i == 0 || n - i >= sizeof tmp)
        return false;
    memcpy(tmp, p + i, n - i);
    tmp[n - i] = '\0';
    struct al_err ignored;
    return parse_double(tmp, -INFINITY, INFINITY, "float", out, &ignored) == 0;
}

static int
filter_number(struct render *r, const struct tpl_node *at, const struct tv *in,
              const struct args *a, bool want_int, struct tv *out)
{
    struct tv def = want_int ? tv_int(0) : tv_float(0.0);
    arg_get(a, 0, "default", &def);
    if (want_int && arg_get(a, 1, "base", &(struct tv){0}))
        return rfail(r, at, AL_EUNSUPPORTED, "unsupported int filter base argument");
    int64_t i;
    double f;
    if (in->kind == TV_UNDEF)
        return fail_undefined(r, at, in);
    if (tv_is_intlike(in)) {
        *out = want_int ? tv_int(tv_int_of(in)) : tv_float((double)tv_int_of(in));
    } else if (in->kind == TV_FLOAT) {
        if (want_int && !(in->u.f > -9.2e18 && in->u.f < 9.2e18))
            *out = def;
        else
            *out = want_int ? tv_int((int64_t)in->u.f) : *in;
    } else if (in->kind == TV_STR && want_int && parse_py_int(in->u.s.p, in->u.s.n, &i)) {
        *out = tv_int(i);
    } else if (in->kind == TV_STR && parse_py_float(in->u.s.p, in->u.s.n, &f)) {
        if (want_int && !(f > -9.2e18 && f < 9.2e18))
            *out = def;
        else
            *out = want_int ? tv_int((int64_t)f) : tv_float(f);
    } else {
        *out = def;
    }
    return 0;
}

static int
filter_join(struct render *r, const struct tpl_node *at, const struct tv *in,
            const struct args *a, struct tv *out)
{
    struct tpl_list *items;
    struct tv sep = tv_str("", 0), attr;
    bool has_attr = arg_get(a, 1, "attribute", &attr);
    if (tv_iter(r, at, in, &items) < 0)
        return -1;
    if (arg_get(a, 0, "d", &sep) && tv_to_str(r, &sep, &sep) < 0)
        return -1;
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < items->n; i++) {
        struct tv v = items->v[i];
        if (i)
            buf_append(&b, sep.u.s.p, sep.u.s.n);
        /* str() of each item, written straight into the result */
        if ((has_attr && get_path(r, at, &items->v[i], &attr, &v) < 0) ||
            tv_write(r, &b, &v, false, 0) < 0) {
            buf_free(&b);
            return -1;
        }
    }
    return buf_to_tv(r, &b, out);
}

static int
filter_minmax(struct render *r, const struct tpl_node *at, const struct tv *in,
              const struct args *a, bool want_max, struct tv *out)
{
    struct tpl_list *items, *sorted;
    struct tv cs = tv_bool(false), attr;
    struct sort_spec sp = {false, NULL, -1};
    if (tv_iter(r, at, in, &items) < 0)
        return -1;
    arg_get(a, 0, "case_sensitive", &cs);
    sp.case_sensitive = tv_truthy(&cs);
    if (arg_get(a, 1, "attribute", &attr))
        sp.attr = &attr;
    if (items->n == 0) {
        *out = tv_undef(NULL, 0);
        return 0;
    }
    if (sorted_copy(r, at, &sp, items, false, &sorted) < 0)
        return -1;
    *out = want_max ? sorted->v[sorted->n - 1] : sorted->v[0];
    return 0;
}

__attribute__((noinline)) static int
apply_filter(struct render *r, const struct tpl_node *at, int id, const struct tv *in,
             const struct args *a, struct tv *out)
{
    struct tv s, x, y;
    struct tpl_list *items;
    switch (id) {
    case FI_SAFE: return tv_to_str(r, in, out); /* Markup is a str */
    case FI_ATTR:
        if (!arg_get(a, 0, "name", &x) || x.kind != TV_STR)
            return rfail(r, at, AL_EFORMAT, "attr: needs an attribute name");
        if (in->kind == TV_DICT) {
            /* attr() looks at Python attributes only, and a dict's keys are not attributes */
            *out = tv_undef(x.u.s.p, x.u.s.n);
            return 0;
        }
        return get_attr(r, at, in, x.u.s.p, x.u.s.n, out);
    case FI_STRING: return tv_to_str(r, in, out);
    case FI_TRIM: {
        bool have;
        struct tv chars;
        if (tv_to_str(r, in, &s) < 0 || strip_chars(r, at, a, "trim", &chars, &have) < 0)
            return -1;
        *out = str_strip(&s, have ? chars.u.s.p : NULL, have ? chars.u.s.n : 0, true, true);
        return 0;
    }
    case FI_UPPER:
    case FI_LOWER:
    case FI_CAPITALIZE:
    case FI_TITLE:
        if (tv_to_str(r, in, &s) < 0)
            return -1;
        return str_case(r, &s,
                        id == FI_UPPER   ? CASE_UPPER
                        : id == FI_LOWER ? CASE_LOWER
                        : id == FI_TITLE ? CASE_JTITLE
                                         : CASE_CAPITALIZE,
                        out);
    case FI_LENGTH:
    case FI_COUNT: {
        int64_t len;
        if (tv_len(r, at, in, &len) < 0)
            return -1;
        *out = tv_int(len);
        return 0;
    }
    case FI_DEFAULT: {
        struct tv def = tv_str("", 0), boolean = tv_bool(false);
        arg_get(a, 0, "default_value", &def);
        arg_get(a, 1, "boolean", &boolean);
        bool use = in->kind == TV_UNDEF || (tv_truthy(&boolean) && !tv_truthy(in));
        *out = use ? def : *in;
        return 0;
    }
    case FI_FIRST:
    case FI_LAST:
        if (tv_iter(r, at, in, &items) < 0)
            return -1;
        if (items->n == 0)
            *out = tv_undef(NULL, 0);
        else
            *out = id == FI_FIRST ? items->v[0] : items->v[items->n - 1];
        return 0;
    case FI_LIST: {
        if (tv_iter(r, at, in, &items) < 0)
            return -1;
        struct tpl_list *l = list_new(r, items->n);
        if (!l)
            return -1;
        if (items->n)
            memcpy(l->v, items->v, items->n * sizeof *l->v);
        *out = tv_list(l);
        return 0;
    }
    case FI_ITEMS:
        if (in->kind == TV_UNDEF) {
            struct tpl_list *l = list_new(r, 0);
            if (!l)
                return -1;
            *out = tv_list(l);
            return 0;
        }
        if (in->kind != TV_DICT)
            return rfail(r, at, AL_EFORMAT, "items: expected a mapping, got %s",
                         tv_type_name(in));
        return dict_items(r, in->u.d, out);
    case FI_DICTSORT: {
        struct tv cs = tv_bool(false), by = tv_str("key", 3), rev = tv_bool(false), pairs;
        if (in->kind != TV_DICT)
            return rfail(r, at, AL_EFORMAT, "dictsort: expected a mapping, got %s",
                         tv_type_name(in));
        arg_get(a, 0, "case_sensitive", &cs);
        arg_get(a, 1, "by", &by);
        arg_get(a, 2, "reverse", &rev);
        struct sort_spec sp = {tv_truthy(&cs), NULL, tv_is_str(&by, "value") ? 1 : 0};
        if (dict_items(r, in->u.d, &pairs) < 0 ||
            sorted_copy(r, at, &sp, pairs.u.l, tv_truthy(&rev), &items) < 0)
            return -1;
        *out = tv_list(items);
        return 0;
    }
    case FI_SORT: {
        struct tv rev = tv_bool(false), cs = tv_bool(false), attr;
        arg_get(a, 0, "reverse", &rev);
        arg_get(a, 1, "case_sensitive", &cs);
        struct sort_spec sp = {tv_truthy(&cs), NULL, -1};
        if (arg_get(a, 2, "attribute", &attr))
            sp.attr = &attr;
        if (tv_iter(r, at, in, &items) < 0 ||
            sorted_copy(r, at, &sp, items, tv_truthy(&rev), &items) < 0)
            return -1;
        *out = tv_list(items);
        return 0;
    }
    case FI_UNIQUE: {
        struct tv cs = tv_bool(false), attr;
        arg_get(a, 0, "case_sensitive", &cs);
        struct sort_spec sp = {tv_truthy(&cs), NULL, -1};
        if (arg_get(a, 1, "attribute", &attr))
            sp.attr = &attr;
        if (tv_iter(r, at, in, &items) < 0)
            return -1;
        struct tpl_list *l = list_new(r, items->n);
        if (!l)
            return -1;
        size_t k = 0;
        for (size_t i = 0; i < items->n; i++) {
            bool dup = false;
            /* quadratic: the comparisons count against the iteration limit */
            r->iters += k;
            if (r->iters > r->max_iters)
                return rfail(r, at, AL_ELIMIT, "unique: more than %zu comparisons",
                             r->max_iters);
            for (size_t j = 0; j < k && !dup; j++) {
                int c;
                struct tv ka, kb;
                if (sort_key(r, at, &sp, &items->v[i], &ka) < 0 ||
                    sort_key(r, at, &sp, &l->v[j], &kb) < 0)
                    return -1;
                if (ka.kind == TV_STR && kb.kind == TV_STR) {
                    if (sort_cmp(r, at, &sp, &items->v[i], &l->v[j], &c) < 0)
                        return -1;
                    dup = c == 0;
                } else {
                    dup = tv_eq(&ka, &kb, 0, &r->work);
                }
            }
            if (!dup)
                l->v[k++] = items->v[i];
        }
        l->n = k;
        *out = tv_list(l);
        return 0;
    }
    case FI_REVERSE:
        if (in->kind == TV_STR || in->kind == TV_LIST || in->kind == TV_DICT ||
            in->kind == TV_UNDEF) {
            if (tv_iter(r, at, in, &items) < 0)
                return -1;
            struct tpl_list *l = list_new(r, items->n);
            if (!l)
                return -1;
            for (size_t i = 0; i < items->n; i++)
                l->v[i] = items->v[items->n - 1 - i];
            if (in->kind != TV_STR) {
                *out = tv_list(l);
                return 0;
            }
            struct buf b;
            buf_init(&b);
            for (size_t i = 0; i < l->n; i++)
                buf_append(&b, l->v[i].u.s.p, l->v[i].u.s.n);
            return buf_to_tv(r, &b, out);
        }
        return rfail(r, at, AL_EFORMAT, "reverse: cannot reverse %s", tv_type_name(in));
    case FI_JOIN: return filter_join(r, at, in, a, out);
    case FI_MAP: return filter_map(r, at, in, a, out);
    case FI_SELECT: return filter_select(r, at, in, a, false, true, out);
    case FI_REJECT: return filter_select(r, at, in, a, false, false, out);
    case FI_SELECTATTR: return filter_select(r, at, in, a, true, true, out);
    case FI_REJECTATTR: return filter_select(r, at, in, a, true, false, out);
    case FI_TOJSON: return filter_tojson(r, at, in, a, out);
    case FI_INDENT: return filter_indent(r, at, in, a, out);
    case FI_INT: return filter_number(r, at, in, a, true, out);
    case FI_FLOAT: return filter_number(r, at, in, a, false, out);
    case FI_MAX: return filter_minmax(r, at, in, a, true, out);
    case FI_MIN: return filter_minmax(r, at, in, a, false, out);
    case FI_REPLACE: {
        struct tv cnt = tv_none();
        if (tv_to_str(r, in, &s) < 0)
            return -1;
        if (!arg_get(a, 0, "old", &x) || !arg_get(a, 1, "new", &y))
            return rfail(r, at, AL_EFORMAT, "replace: needs old and new strings");
        if (tv_to_str(r, &x, &x) < 0 || tv_to_str(r, &y, &y) < 0)
            return -1;
        arg_get(a, 2, "count", &cnt);
        if (cnt.kind != TV_NONE && !tv_is_intlike(&cnt))
            return rfail(r, at, AL_EFORMAT, "replace: count must be an integer");
        return str_replace(r, &s, &x, &y, cnt.kind == TV_NONE ? -1 : tv_int_of(&cnt), out);
    }
    case FI_ABS:
        if (tv_is_intlike(in)) {
            int64_t v = tv_int_of(in);
            if (v == INT64_MIN)
                return rfail(r, at, AL_ELIMIT, "integer result does not fit in 64 bits");
            *out = tv_int(v < 0 ? -v : v);
            return 0;
        }
        if (in->kind == TV_FLOAT) {
            *out = tv_float(fabs(in->u.f));
            return 0;
        }
        return rfail(r, at, AL_EFORMAT, "abs: bad operand type %s", tv_type_name(in));
    case FI_ROUND: {
        struct tv prec = tv_int(0), method = tv_str("common", 6);
        arg_get(a, 0, "precision", &prec);
        arg_get(a, 1, "method", &method);
        if (!tv_is_number(in) || !tv_is_intlike(&prec))
            return rfail(r, at, AL_EFORMAT, "round: needs a number and an integer precision");
        int64_t pr = tv_int_of(&prec);
        if (pr < -300 || pr > 300)
            return rfail(r, at, AL_ELIMIT, "round: precision out of range");
        if (tv_is_intlike(in) && pr >= 0 && tv_is_str(&method, "common")) {
            *out = tv_int(tv_int_of(in)); /* Python's round() keeps ints as they are */
            return 0;
        }
        double m = pow(10.0, (double)pr), v = tv_num(in) * m;
        if (tv_is_str(&method, "ceil"))
            v = ceil(v);
        else if (tv_is_str(&method, "floor"))
            v = floor(v);
        else if (tv_is_str(&method, "common"))
            v = nearbyint(v); /* Python's round(): halves go to the even neighbour */
        else
            return rfail(r, at, AL_EFORMAT, "round: method must be common, ceil or floor");
        *out = tv_float(v / m);
        return 0;
    }
    case FI_SUM: {
        struct tv attr, total = tv_int(0);
        bool has_attr = arg_get(a, 0, "attribute", &attr);
        arg_get(a, 1, "start", &total);
        if (tv_iter(r, at, in, &items) < 0)
            return -1;
        for (size_t i = 0; i < items->n; i++) {
            struct tv v = items->v[i];
            if ((has_attr && get_path(r, at, &items->v[i], &attr, &v) < 0) ||
                binop(r, at, OP_ADD, &total, &v, &total) < 0)
                return -1;
        }
        *out = total;
        return 0;
    }
    case FI_WORDCOUNT: {
        int64_t words = 0;
        bool in_word = false;
        if (tv_to_str(r, in, &s) < 0)
            return -1;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char c = s.u.s.p[i];
            bool w = ascii_alpha(c) || (c >= '0' && c <= '9') || c == '_' || (c & 0x80);
            if (w && !in_word)
                words++;
            in_word = w;
        }
        *out = tv_int(words);
        return 0;
    }
    default: return rfail(r, at, AL_EINTERNAL, "filter %d has no implementation", id);
    }
}

static int
test_arg(struct render *r, const struct tpl_node *at, const struct args *a, struct tv *out)
{
    if (!arg_get(a, 0, NULL, out))
        return rfail(r, at, AL_EFORMAT, "test needs an argument");
    return 0;
}

__attribute__((noinline)) static int
apply_test(struct render *r, const struct tpl_node *at, int id, const struct tv *in,
           const struct args *a, bool *out)
{
    struct tv x;
    bool takes_arg = id == TE_DIVISIBLEBY || id == TE_EQ || id == TE_NE || id == TE_LT ||
                     id == TE_LE || id == TE_GT || id == TE_GE || id == TE_IN || id == TE_SAMEAS;
    if (a->n_pos + a->n_kw > (takes_arg ? 1u : 0u))
        return rfail(r, at, AL_EFORMAT, "test takes %s", takes_arg ? "one argument" : "no arguments");
    switch (id) {
    case TE_DEFINED: *out = in->kind != TV_UNDEF; return 0;
    case TE_UNDEFINED: *out = in->kind == TV_UNDEF; return 0;
    case TE_NONE: *out = in->kind == TV_NONE; return 0;
    case TE_BOOLEAN: *out = in->kind == TV_BOOL; return 0;
    case TE_TRUE: *out = in->kind == TV_BOOL && in->u.b; return 0;
    case TE_FALSE: *out = in->kind == TV_BOOL && !in->u.b; return 0;
    case TE_STRING: *out = in->kind == TV_STR; return 0;
    case TE_MAPPING: *out = in->kind == TV_DICT; return 0;
    case TE_NUMBER: *out = tv_is_number(in); return 0;
    case TE_INTEGER: *out = in->kind == TV_INT; return 0;
    case TE_FLOAT: *out = in->kind == TV_FLOAT; return 0;
    case TE_CALLABLE: *out = in->kind == TV_FUNC || in->kind == TV_MACRO; return 0;
    case TE_ITERABLE:
    case TE_SEQUENCE:
        /* Jinja's Undefined is iterable and has a length */
        *out = in->kind == TV_STR || in->kind == TV_LIST || in->kind == TV_DICT ||
               in->kind == TV_UNDEF;
        return 0;
    case TE_LOWER:
    case TE_UPPER: {
        /* Jinja tests str(value) */
        if (tv_to_str(r, in, &x) < 0)
            return -1;
        bool cased = false, ok = true;
        for (size_t i = 0; ok && i < x.u.s.n; i++) {
            char c = x.u.s.p[i];
            bool lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
            cased |= lo || up;
            ok = id == TE_LOWER ? !up : !lo;
        }
        *out = ok && cased;
        return 0;
    }
    case TE_ODD:
    case TE_EVEN:
    case TE_DIVISIBLEBY: {
        /* Jinja: value % 2 == 1, value % 2 == 0, value % num == 0, with Python's modulo */
        struct tv d = tv_int(2), m;
        if (id == TE_DIVISIBLEBY && test_arg(r, at, a, &d) < 0)
            return -1;
        if (binop(r, at, OP_MOD, in, &d, &m) < 0)
            return -1;
        if (!tv_is_number(&m))
            return rfail(r, at, AL_EFORMAT, "test needs a number, got %s", tv_type_name(in));
        *out = tv_num(&m) == (id == TE_ODD ? 1.0 : 0.0);
        return 0;
    }
    case TE_EQ:
    case TE_NE:
    case TE_LT:
    case TE_LE:
    case TE_GT:
    case TE_GE: {
        static const int ops[] = {[TE_EQ] = OP_EQ, [TE_NE] = OP_NE, [TE_LT] = OP_LT,
                                  [TE_LE] = OP_LE, [TE_GT] = OP_GT, [TE_GE] = OP_GE};
        if (test_arg(r, at, a, &x) < 0)
            return -1;
        return compare(r, at, ops[id], in, &x, out);
    }
    case TE_IN:
        if (test_arg(r, at, a, &x) < 0)
            return -1;
        return contains(r, at, in, &x, out);
    case TE_SAMEAS:
        if (test_arg(r, at, a, &x) < 0)
            return -1;
        if (in->kind == TV_LIST || in->kind == TV_DICT || in->kind == TV_NS)
            *out = in->kind == x.kind && (in->kind == TV_LIST ? in->u.l == x.u.l : in->u.d == x.u.d);
        else
            *out = in->kind == x.kind && tv_eq(in, &x, 0, &r->work);
        return 0;
    default: return rfail(r, at, AL_EINTERNAL, "test %d has no implementation", id);
    }
}

/* ===== Evaluator: statements ====================================================== */

__attribute__((noinline)) static int
emit(struct render *r, const struct tpl_node *at, const char *p, size_t n)
{
    if (n > r->max_output || r->out->len > r->max_output - n)
        return rfail(r, at, AL_ELIMIT, "output exceeds %zu bytes", r->max_output);
    buf_append(r->out, p, n);
    work_add(r, n / 16);
    return 0;
}

static int
bind_targets(struct render *r, const struct tpl_node *n, struct scope *sc, const struct tv *v)
{
    if (n->n_names == 1)
        return dict_set_str(r, &sc->vars, n->names[0], n->names_n[0], *v);
    struct tpl_list *items;
    /* Python unpacks any iterable: lists, strings, and dicts by key */
    if (v->kind != TV_LIST && v->kind != TV_STR && v->kind != TV_DICT)
        return rfail(r, n, AL_EFORMAT, "cannot unpack a value of type %s", tv_type_name(v));
    if (tv_iter(r, n, v, &items) < 0)
        return -1;
    if (items->n != n->n_names)
        return rfail(r, n, AL_EFORMAT, "cannot unpack %zu values into %zu names", items->n,
                     n->n_names);
    for (size_t k = 0; k < n->n_names; k++) {
        if (dict_set_str(r, &sc->vars, n->names[k], n->names_n[k], items->v[k]) < 0)
            return -1;
    }
    return 0;
}

static struct scope *
scope_push(struct render *r)
{
    struct scope *sc = tpl_alloc(r->a, sizeof *sc, r->e);
    if (!sc)
        return NULL;
    sc->parent = r->cur;
    r->cur = sc;
    return sc;
}

static int
count_iteration(struct render *r, const struct tpl_node *n)
{
    if (++r->iters > r->max_iters)
        return rfail(r, n, AL_ELIMIT, "more than %zu loop iterations", r->max_iters);
    work_add(r, 1);
    if (r->work > r->max_work)
        return rfail(r, n, AL_ELIMIT, "more than %zu steps of work", r->max_work);
    return 0;
}

/* Each iteration runs in an emptied scope, so assignments in the body neither survive to the
 * next iteration nor leak out of the loop (Jinja's scoping). */
__attribute__((noinline)) static int
exec_for(struct render *r, const struct tpl_node *n)
{
    struct tv seq;
    struct tpl_list *items;
    struct scope *saved = r->cur;
    int rc = -1;
    if (eval(r, n->a, &seq) < 0 || tv_iter(r, n->a, &seq, &items) < 0)
        return -1;
    /* one scope per loop, emptied for each iteration: nothing can keep a reference to it */
    struct scope *sc = scope_push(r);
    r->cur = saved;
    if (!sc)
        return -1;
    if (n->b) {
        struct tpl_list *kept = list_new(r, items->n);
        if (!kept)
            return -1;
        size_t k = 0;
        for (size_t i = 0; i < items->n; i++) {
            struct tv cond;
            sc->vars.n = 0;
            r->cur = sc;
            if (count_iteration(r, n) < 0 || bind_targets(r, n, sc, &items->v[i]) < 0 ||
                eval(r, n->b, &cond) < 0)
                goto out;
            r->cur = saved;
            if (tv_truthy(&cond))
                kept->v[k++] = items->v[i];
        }
        kept->n = k;
        items = kept;
    }
    struct tpl_loop *lp = tpl_alloc(r->a, sizeof *lp, r->e);
    if (!lp)
        goto out;
    lp->items = items;
    lp->depth0 = 0; /* only recursive loops (not supported) nest depth */
    /* Jinja runs the else block unless some iteration ran to its end without break/continue */
    bool completed = false;
    for (size_t i = 0; i < items->n; i++) {
        lp->index0 = i;
        sc->vars.n = 0;
        r->cur = sc;
        struct tv lv = {.kind = TV_LOOP};
        lv.u.loop = lp;
        if (count_iteration(r, n) < 0 || bind_targets(r, n, sc, &items->v[i]) < 0 ||
            dict_set_str(r, &sc->vars, "loop", 4, lv) < 0 || exec_body(r, n->body, n->n_body) < 0)
            goto out;
        r->cur = saved;
        enum ctl c = r->ctl;
        r->ctl = CTL_NONE;
        completed |= c == CTL_NONE;
        if (c == CTL_BREAK)
            break;
    }
    rc = completed ? 0 : exec_body(r, n->body2, n->n_body2);
out:
    r->cur = saved;
    return rc;
}

__attribute__((noinline)) static int
exec_set(struct render *r, const struct tpl_node *n)
{
    struct tv v;
    if (eval(r, n->a, &v) < 0)
        return -1;
    if (!n->flag)
        return bind_targets(r, n, r->cur, &v);
    struct tv ns;
    if (!lookup_var(r, n->names[0], n->names_n[0], &ns) || ns.kind != TV_NS)
        return rfail(r, n, AL_EFORMAT, "cannot assign attribute on '%.*s': not a namespace",
                     (int)(n->names_n[0] > 60 ? 60 : n->names_n[0]), n->names[0]);
    return dict_set_str(r, ns.u.d, n->names[1], n->names_n[1], v);
}

__attribute__((noinline)) static int
exec_setblock(struct render *r, const struct tpl_node *n)
{
    struct buf b;
    struct buf *saved = r->out;
    struct tv v;
    int rc = -1;
    buf_init(&b);
    r->out = &b;
    if (exec_body(r, n->body, n->n_body) < 0)
        goto out;
    r->out = saved;
    if (buf_to_tv(r, &b, &v) < 0)
        goto out;
    rc = dict_set_str(r, &r->cur->vars, n->names[0], n->names_n[0], v);
out:
    r->out = saved;
    buf_free(&b);
    return rc;
}

static int
exec_stmt(struct render *r, const struct tpl_node *n)
{
    struct tv v, s;
    switch (n->kind) {
    case TN_TEXT: return emit(r, n, n->lit.u.s.p, n->lit.u.s.n);
    case TN_OUTPUT:
        if (eval(r, n->a, &v) < 0 || tv_to_str(r, &v, &s) < 0)
            return -1;
        return emit(r, n, s.u.s.p, s.u.s.n);
    case TN_IF:
        if (eval(r, n->a, &v) < 0)
            return -1;
        if (tv_truthy(&v))
            return exec_body(r, n->body, n->n_body);
        return exec_body(r, n->body2, n->n_body2);
    case TN_FOR: return exec_for(r, n);
    case TN_SET: return exec_set(r, n);
    case TN_SETBLOCK: return exec_setblock(r, n);
    case TN_MACRO:
        v.kind = TV_MACRO;
        v.u.macro = n;
        return dict_set_str(r, &r->cur->vars, n->names[0], n->names_n[0], v);
    case TN_BREAK: r->ctl = CTL_BREAK; return 0;
    case TN_CONTINUE: r->ctl = CTL_CONTINUE; return 0;
    case TN_BODY: return exec_body(r, n->body, n->n_body);
    default: return rfail(r, n, AL_EINTERNAL, "expression node in statement position");
    }
}

static int
exec_body(struct render *r, struct tpl_node *const *body, size_t n)
{
    if (++r->depth > CHAT_TEMPLATE_MAX_EVAL_DEPTH) {
        r->depth--;
        return rfail(r, n ? body[0] : NULL, AL_ELIMIT, "evaluation nested more than %d levels deep",
                     CHAT_TEMPLATE_MAX_EVAL_DEPTH);
    }
    int rc = 0;
    for (size_t i = 0; i < n && r->ctl == CTL_NONE; i++) {
        if (exec_stmt(r, body[i]) < 0) {
            rc = -1;
            break;
        }
    }
    r->depth--;
    return rc;
}

/* ===== JSON variables ============================================================= */

static int
tv_from_json(struct render *r, const json_t *j, struct tv *out, int depth)
{
    if (depth > CHAT_TEMPLATE_MAX_NESTING)
        return al_errf(r->e, AL_ELIMIT, "chat template: variables nested more than %d deep",
                       CHAT_TEMPLATE_MAX_NESTING);
    switch (json_typeof(j)) {
    case JSON_NULL: *out = tv_none(); return 0;
    case JSON_TRUE: *out = tv_bool(true); return 0;
    case JSON_FALSE: *out = tv_bool(false); return 0;
    case JSON_INTEGER: *out = tv_int((int64_t)json_integer_value(j)); return 0;
    case JSON_REAL: *out = tv_float(json_real_value(j)); return 0;
    case JSON_STRING: *out = tv_str(json_string_value(j), json_string_length(j)); return 0;
    case JSON_ARRAY: {
        struct tpl_list *l = list_new(r, json_array_size(j));
        if (!l)
            return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (tv_from_json(r, json_array_get(j, i), &l->v[i], depth + 1) < 0)
                return -1;
        }
        *out = tv_list(l);
        return 0;
    }
    case JSON_OBJECT: {
        struct tpl_dict *d = dict_new(r);
        if (!d)
            return -1;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val) {
            struct tv v;
            /* jansson keys are unique already: append without the linear duplicate search */
            if (tv_from_json(r, val, &v, depth + 1) < 0 || dict_grow(r, d) < 0)
                return -1;
            d->keys[d->n] = tv_str(key, strlen(key));
            d->vals[d->n] = v;
            d->n++;
        }
        *out = tv_dict(d);
        return 0;
    }
    }
    return al_errf(r->e, AL_EINTERNAL, "chat template: unknown JSON type");
}

/* ===== Public ===================================================================== */

int
chat_template_render_json(const char *tmpl, const json_t *vars,
                          const struct chat_template_opts *opts, struct buf *out,
                          struct al_err *e)
{
    static const struct chat_template_opts defaults = {0};
    struct tpl_arena arena;
    struct buf result;
    int rc = -1;
    if (!opts)
        opts = &defaults;
    tpl_arena_init(&arena, opts->max_memory ? opts->max_memory : CHAT_TEMPLATE_MAX_MEMORY);
    buf_init(&result);
    if (!tmpl || !vars || !json_is_object(vars)) {
        al_errf(e, AL_EUSAGE, "chat template: need a template and a JSON object of variables");
        goto out;
    }
    struct render r = {
        .a = &arena,
        .e = e,
        .out = &result,
        .max_output = opts->max_output ? opts->max_output : CHAT_TEMPLATE_MAX_OUTPUT,
        .max_iters = opts->max_iterations ? opts->max_iterations : CHAT_TEMPLATE_MAX_ITERATIONS,
        .max_work = opts->max_work ? opts->max_work : CHAT_TEMPLATE_MAX_WORK,
        .now = opts->now ? opts->now : time(NULL),
    };
    struct tpl_node *root = tpl_parse(&arena, tmpl, strlen(tmpl), e);
    if (!root)
        goto out;
    struct tv ctx = tv_none();
    if (tv_from_json(&r, vars, &ctx, 0) < 0)
        goto out;
    r.ctx = ctx.u.d;
    r.top = tpl_alloc(&arena, sizeof *r.top, e);
    if (!r.top)
        goto out;
    r.cur = r.top;
    if (exec_body(&r, root->body, root->n_body) < 0)
        goto out;
    buf_append(out, result.data ? result.data : "", result.len);
    rc = 0;
out:
    buf_free(&result);
    tpl_arena_free(&arena);
    return rc;
}

int
chat_template_render_ex(const char *tmpl, const struct chat_msg *msgs, size_t n_msgs,
                        bool add_generation_prompt, const char *bos_token, const char *eos_token,
                        const json_t *extra, const struct chat_template_opts *opts,
                        struct buf *out, struct al_err *e)
{
    int rc = -1;
    json_t *vars = json_object();
    json_t *list = json_array();
    if (!vars || !list) {
        json_decref(list);
        al_errf(e, AL_EINTERNAL, "chat template: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_msgs; i++) {
        /* json_string() refuses text that is not UTF-8; set_new/append_new take the value
         * even when they fail, so only what was never handed over is released here */
        json_t *m = json_object();
        json_t *role = msgs[i].role ? json_string(msgs[i].role) : json_null();
        json_t *content = msgs[i].content ? json_string(msgs[i].content) : json_null();
        bool bad = !m || !role || !content;
        if (!bad) {
            bad = json_object_set_new(m, "role", role) < 0;
            bad |= json_object_set_new(m, "content", content) < 0;
            role = content = NULL;
            bad |= json_array_append_new(list, m) < 0;
            m = NULL;
        }
        if (bad) {
            json_decref(role);
            json_decref(content);
            json_decref(m);
            json_decref(list);
            al_errf(e, AL_EFORMAT, "chat template: message %zu: role or content is not valid UTF-8",
                    i);
            goto out;
        }
    }
    /* transformers passes tools=None and the tokenizer's special tokens */
    if (json_object_set_new(vars, "messages", list) < 0 ||
        json_object_set_new(vars, "add_generation_prompt", json_boolean(add_generation_prompt)) <
            0 ||
        json_object_set_new(vars, "bos_token", json_string(bos_token ? bos_token : "")) < 0 ||
        json_object_set_new(vars, "eos_token", json_string(eos_token ? eos_token : "")) < 0 ||
        json_object_set_new(vars, "tools", json_null()) < 0 ||
        json_object_set_new(vars, "documents", json_null()) < 0) {
        al_errf(e, AL_EFORMAT, "chat template: bos/eos token is not valid UTF-8");
        goto out;
    }
    if (extra && (!json_is_object(extra) || json_object_update(vars, (json_t *)extra) < 0)) {
        al_errf(e, AL_EUSAGE, "chat template: extra variables must be a JSON object");
        goto out;
    }
    rc = chat_template_render_json(tmpl, vars, opts, out, e);
out:
    json_decref(vars);
    return rc;
}

int
chat_template_render(const char *tmpl, const struct chat_msg *msgs, size_t n_msgs,
                     bool add_generation_prompt, const char *bos_token, const char *eos_token,
                     struct buf *out, struct al_err *e)
{
    return chat_template_render_ex(tmpl, msgs, n_msgs, add_generation_prompt, bos_token,
                                   eos_token, NULL, NULL, out, e);
}

int
chat_template_check(const char *tmpl, struct al_err *e)
{
    struct tpl_arena arena;
    if (!tmpl)
        return al_errf(e, AL_EUSAGE, "chat template: no template");
    tpl_arena_init(&arena, CHAT_TEMPLATE_MAX_MEMORY);
    int rc = tpl_parse(&arena, tmpl, strlen(tmpl), e) ? 0 : -1;
    tpl_arena_free(&arena);
    return rc;
}

const char *
chat_template_fallback(void)
{
    return "{%- for message in messages -%}\n"
           "{{- message.role | capitalize }}: {{ (message.content or '') | trim }}\n"
           "\n"
           "{% endfor -%}\n"
           "{%- if add_generation_prompt -%}Assistant:{%- endif -%}\n";
}
