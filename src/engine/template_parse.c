/* template_parse.c -- chat templates, front half: the lexer (text, {{ }}, {% %}, {# #} with
 * Jinja2's trim_blocks / lstrip_blocks / "-" whitespace control) and a recursive-descent parser
 * that builds the syntax tree of template_int.h in the render arena.
 * Does not evaluate anything (template.c). The grammar and operator precedence follow Jinja2
 * 3.1's parser; constructs outside the subset are refused here with AL_EUNSUPPORTED and their
 * line:column, so evaluation never meets an unknown node. Input is untrusted: nesting is
 * bounded by CHAT_TEMPLATE_MAX_NESTING and every allocation by the arena budget. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/template.h"
#include "engine/template_int.h"
#include "util/utf8.h"
#include "util/parse.h"
#include "util/xalloc.h"

/* ===== Types ====================================================================== */

enum tok_kind {
    TK_TEXT,        /* template data between tags, already whitespace-controlled */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,
    TK_STRING,      /* p/n: the decoded value */
    TK_INT,
    TK_FLOAT,
    TK_OP,          /* p/n: the operator's spelling */
    TK_EOF,
};

struct tok {
    enum tok_kind kind;
    const char *p; /* borrowed: source text, or arena for decoded strings */
    size_t n;      /* bytes at p */
    int64_t i;     /* TK_INT value */
    double f;      /* TK_FLOAT value */
    int line, col; /* 1-based start position */
};

struct lexer {
    const char *src;      /* borrowed normalized source, NUL-terminated at len */
    size_t len;
    size_t pos;           /* next byte to read */
    struct tok *toks;     /* owned (xrealloc); moved to the parser */
    size_t n, cap;
    size_t lc_off;        /* position cache: offset already converted to line/col */
    int lc_line, lc_col;
    struct tpl_arena *a;  /* borrowed */
    struct al_err *e;     /* borrowed */
};

/* A growable array of node pointers kept in the arena; a grown copy abandons the old one,
 * which at most doubles the memory such arrays use. */
struct nvec {
    struct tpl_node **v; /* arena array */
    size_t n, cap;       /* used / allocated entries */
};

struct parser {
    const struct tok *t;  /* borrowed token array, ends with TK_EOF */
    size_t n;
    size_t i;             /* current token */
    int depth;            /* guard: CHAT_TEMPLATE_MAX_NESTING */
    int loops;            /* enclosing for-loops, so break/continue can be checked */
    struct tpl_arena *a;  /* borrowed */
    struct al_err *e;     /* borrowed */
};

/* ===== Filter and test names ====================================================== */

struct name_id {
    const char *name; /* as written in templates */
    int id;           /* enum tpl_filter or enum tpl_test */
};

static const struct name_id filter_names[] = {
    {"abs", FI_ABS},         {"attr", FI_ATTR},             {"capitalize", FI_CAPITALIZE}, {"count", FI_COUNT},
    {"d", FI_DEFAULT},       {"default", FI_DEFAULT},       {"dictsort", FI_DICTSORT},
    {"first", FI_FIRST},     {"float", FI_FLOAT},           {"indent", FI_INDENT},
    {"int", FI_INT},         {"items", FI_ITEMS},           {"join", FI_JOIN},
    {"last", FI_LAST},       {"length", FI_LENGTH},         {"list", FI_LIST},
    {"lower", FI_LOWER},     {"map", FI_MAP},               {"max", FI_MAX},
    {"min", FI_MIN},         {"reject", FI_REJECT},         {"rejectattr", FI_REJECTATTR},
    {"replace", FI_REPLACE}, {"reverse", FI_REVERSE},       {"round", FI_ROUND},
    {"safe", FI_SAFE},       {"select", FI_SELECT},         {"selectattr", FI_SELECTATTR},
    {"sort", FI_SORT},       {"string", FI_STRING},         {"sum", FI_SUM},
    {"title", FI_TITLE},     {"tojson", FI_TOJSON},         {"trim", FI_TRIM},
    {"unique", FI_UNIQUE},   {"upper", FI_UPPER},           {"wordcount", FI_WORDCOUNT},
};

static const struct name_id test_names[] = {
    {"boolean", TE_BOOLEAN},   {"callable", TE_CALLABLE}, {"defined", TE_DEFINED},
    {"divisibleby", TE_DIVISIBLEBY}, {"eq", TE_EQ},       {"equalto", TE_EQ},
    {"==", TE_EQ},             {"even", TE_EVEN},         {"false", TE_FALSE},
    {"float", TE_FLOAT},       {"ge", TE_GE},             {">=", TE_GE},
    {"gt", TE_GT},             {">", TE_GT},              {"greaterthan", TE_GT},
    {"in", TE_IN},             {"integer", TE_INTEGER},   {"iterable", TE_ITERABLE},
    {"le", TE_LE},             {"<=", TE_LE},             {"lower", TE_LOWER},
    {"lt", TE_LT},             {"<", TE_LT},              {"lessthan", TE_LT},
    {"mapping", TE_MAPPING},   {"ne", TE_NE},             {"!=", TE_NE},
    {"none", TE_NONE},         {"number", TE_NUMBER},     {"odd", TE_ODD},
    {"sameas", TE_SAMEAS},     {"sequence", TE_SEQUENCE}, {"string", TE_STRING},
    {"true", TE_TRUE},         {"undefined", TE_UNDEFINED}, {"upper", TE_UPPER},
};

static int
name_table_lookup(const struct name_id *t, size_t count, const char *name, size_t n)
{
    for (size_t k = 0; k < count; k++) {
        if (strlen(t[k].name) == n && memcmp(t[k].name, name, n) == 0)
            return t[k].id;
    }
    return -1;
}

int
tpl_filter_lookup(const char *name, size_t n)
{
    return name_table_lookup(filter_names, sizeof filter_names / sizeof filter_names[0], name,
                             n);
}

int
tpl_test_lookup(const char *name, size_t n)
{
    return name_table_lookup(test_names, sizeof test_names / sizeof test_names[0], name, n);
}

/* ===== Lexer ====================================================================== */

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool
is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Offsets only grow while lexing, so line/col are found by scanning forward from the last
 * answer rather than from the start: linear in the template size overall. */
static void
lx_where(struct lexer *lx, size_t off, int *line, int *col)
{
    if (off < lx->lc_off) {
        lx->lc_off = 0;
        lx->lc_line = 1;
        lx->lc_col = 1;
    }
    while (lx->lc_off < off && lx->lc_off < lx->len) {
        if (lx->src[lx->lc_off] == '\n') {
            lx->lc_line++;
            lx->lc_col = 1;
        } else {
            lx->lc_col++;
        }
        lx->lc_off++;
    }
    *line = lx->lc_line;
    *col = lx->lc_col;
}

static struct tok *
lx_push(struct lexer *lx, enum tok_kind kind, size_t off, const char *p, size_t n)
{
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        size_t bytes;
        if (!size_mul_ok(cap, sizeof *lx->toks, &bytes))
            abort();
        lx->toks = xrealloc(lx->toks, bytes);
        lx->cap = cap;
    }
    struct tok *t = &lx->toks[lx->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->p = p;
    t->n = n;
    lx_where(lx, off, &t->line, &t->col);
    return t;
}

static int
lx_fail(struct lexer *lx, enum al_code code, size_t off, const char *what)
{
    int line, col;
    lx_where(lx, off, &line, &col);
    return al_errf(lx->e, code, "chat template %d:%d: %s", line, col, what);
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string literal, decoded the way Jinja does it (Python's unicode-escape rules). Escapes
 * never lengthen the text beyond 4 bytes per 2 source bytes, so 2 * raw length suffices. */
static int
lx_string(struct lexer *lx)
{
    size_t start = lx->pos;
    char q = lx->src[lx->pos++];
    size_t end = lx->pos;
    while (end < lx->len && lx->src[end] != q) {
        if (lx->src[end] == '\\' && end + 1 < lx->len)
            end++;
        end++;
    }
    if (end >= lx->len)
        return lx_fail(lx, AL_EFORMAT, start, "unterminated string literal");
    size_t raw = end - lx->pos;
    char *d = tpl_alloc(lx->a, raw * 2 + 1, lx->e);
    if (!d)
        return -1;
    size_t o = 0;
    const char *s = lx->src;
    for (size_t k = lx->pos; k < end; k++) {
        if (s[k] != '\\') {
            d[o++] = s[k];
            continue;
        }
        char c = s[++k];
        uint32_t cp = 0;
        int digits = 0;
        switch (c) {
        case '\\': d[o++] = '\\'; break;
        case '\'': d[o++] = '\''; break;
        case '"': d[o++] = '"'; break;
        case 'a': d[o++] = '\a'; break;
        case 'b': d[o++] = '\b'; break;
        case 'f': d[o++] = '\f'; break;
        case 'n': d[o++] = '\n'; break;
        case 'r': d[o++] = '\r'; break;
        case 't': d[o++] = '\t'; break;
        case 'v': d[o++] = '\v'; break;
        case '\n': break; /* line continuation */
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                int m = 0;
                while (m < 3 && k < end && s[k] >= '0' && s[k] <= '7') {
                    cp = cp * 8 + (uint32_t)(s[k] - '0');
                    k++;
                    m++;
                }
                k--;
                o += utf8_encode(cp, d + o);
            } else {
                d[o++] = '\\';
                d[o++] = c;
            }
            break;
        }
        if (digits) {
            for (int m = 0; m < digits; m++) {
                int h = k + 1 < end ? hex_val(s[k + 1]) : -1;
                if (h < 0)
                    return lx_fail(lx, AL_EFORMAT, k, "truncated \\x, \\u or \\U escape");
                cp = cp * 16 + (uint32_t)h;
                k++;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return lx_fail(lx, AL_EFORMAT, k, "escape is not a Unicode scalar value");
            o += utf8_encode(cp, d + o);
        }
    }
    d[o] = '\0';
    lx_push(lx, TK_STRING, start, d, o);
    lx->pos = end + 1;
    return 0;
}

/* Digits with optional '_' separators; returns the end. */
static size_t
scan_digits(const char *s, size_t k, size_t len)
{
    while (k < len && (is_digit(s[k]) || (s[k] == '_' && k + 1 < len && is_digit(s[k + 1]))))
        k++;
    return k;
}

static int
lx_number(struct lexer *lx)
{
    const char *s = lx->src;
    size_t start = lx->pos;
    size_t k = scan_digits(s, start, lx->len);
    bool is_float = false;
    if (k + 1 < lx->len && s[k] == '.' && is_digit(s[k + 1])) {
        k = scan_digits(s, k + 1, lx->len);
        is_float = true;
    }
    if (k < lx->len && (s[k] == 'e' || s[k] == 'E')) {
        size_t m = k + 1;
        if (m < lx->len && (s[m] == '+' || s[m] == '-'))
            m++;
        if (m < lx->len && is_digit(s[m])) {
            k = scan_digits(s, m, lx->len);
            is_float = true;
        }
    }
    char tmp[64];
    size_t o = 0;
    for (size_t m = start; m < k; m++) {
        if (s[m] == '_')
            continue;
        if (o + 1 >= sizeof tmp)
            return lx_fail(lx, AL_ELIMIT, start, "number literal too long");
        tmp[o++] = s[m];
    }
    tmp[o] = '\0';
    struct tok *t = lx_push(lx, is_float ? TK_FLOAT : TK_INT, start, s + start, k - start);
    if (is_float) {
        struct al_err ignored;
        if (parse_double(tmp, -1.7976931348623157e308, 1.7976931348623157e308, "float",
                         &t->f, &ignored) < 0)
            return lx_fail(lx, AL_EFORMAT, start, "float literal out of range");
    } else {
        int64_t v = 0;
        for (size_t m = 0; m < o; m++) {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, tmp[m] - '0', &v))
                return lx_fail(lx, AL_ELIMIT, start, "integer literal does not fit in 64 bits");
        }
        t->i = v;
    }
    lx->pos = k;
    return 0;
}

static const char *const two_char_ops[] = {"//", "**", "==", "!=", "<=", ">="};

/* Tokens of one {{ }} or {% %} tag up to and including its end marker. Brackets are balanced
 * so that "}}" inside a dict literal does not end a {{ }} tag, as in Jinja's lexer. Returns the
 * whitespace sign of the end marker in *sign ('-', '+' or 0). */
static int
lx_tag(struct lexer *lx, bool is_block, size_t tag_off, char *sign)
{
    const char *s = lx->src;
    const char endc = is_block ? '%' : '}';
    int depth = 0;
    for (;;) {
        while (lx->pos < lx->len && is_ws(s[lx->pos]))
            lx->pos++;
        if (lx->pos >= lx->len)
            return lx_fail(lx, AL_EFORMAT, tag_off,
                           is_block ? "unterminated {% tag" : "unterminated {{ tag");
        size_t k = lx->pos;
        if (depth == 0) {
            size_t m = k;
            char sg = 0;
            if ((s[m] == '-' || (is_block && s[m] == '+')) && m + 1 < lx->len) {
                sg = s[m];
                m++;
            }
            if (m + 1 < lx->len && s[m] == endc && s[m + 1] == '}') {
                lx_push(lx, is_block ? TK_BLOCK_END : TK_VAR_END, k, s + k, m + 2 - k);
                lx->pos = m + 2;
                *sign = sg;
                return 0;
            }
        }
        char c = s[k];
        if (is_name_start(c)) {
            size_t m = k + 1;
            while (m < lx->len && (is_name_start(s[m]) || is_digit(s[m])))
                m++;
            lx_push(lx, TK_NAME, k, s + k, m - k);
            lx->pos = m;
            continue;
        }
        if (is_digit(c)) {
            if (lx_number(lx) < 0)
                return -1;
            continue;
        }
        if (c == '\'' || c == '"') {
            if (lx_string(lx) < 0)
                return -1;
            continue;
        }
        size_t oplen = 0;
        for (size_t q = 0; q < sizeof two_char_ops / sizeof two_char_ops[0]; q++) {
            if (k + 1 < lx->len && s[k] == two_char_ops[q][0] && s[k + 1] == two_char_ops[q][1])
                oplen = 2;
        }
        if (!oplen && c && strchr("+-*/%~<>()[]{},.:|=;", c))
            oplen = 1;
        if (!oplen) {
            char msg[64];
            if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
                snprintf(msg, sizeof msg, "unexpected character '%c' in tag", c);
            else
                snprintf(msg, sizeof msg, "unexpected byte 0x%02x in tag", (unsigned char)c);
            return lx_fail(lx, AL_EFORMAT, k, msg);
        }
        if (oplen == 1 && (c == '(' || c == '[' || c == '{')) {
            if (++depth > CHAT_TEMPLATE_MAX_NESTING)
                return lx_fail(lx, AL_ELIMIT, k, "brackets nested too deeply");
        } else if (oplen == 1 && (c == ')' || c == ']' || c == '}')) {
            if (depth == 0)
                return lx_fail(lx, AL_EFORMAT, k, "unbalanced closing bracket");
            depth--;
        }
        lx_push(lx, TK_OP, k, s + k, oplen);
        lx->pos = k + oplen;
    }
}

/* Is `{% raw %}` (with optional whitespace signs) at off? Returns the offset after it. */
static size_t
lx_match_word_tag(const struct lexer *lx, size_t off, const char *word)
{
    const char *s = lx->src;
    size_t k = off + 2;
    if (k < lx->len && (s[k] == '-' || s[k] == '+'))
        k++;
    while (k < lx->len && is_ws(s[k]))
        k++;
    size_t wl = strlen(word);
    if (k + wl > lx->len || memcmp(s + k, word, wl) != 0)
        return 0;
    k += wl;
    while (k < lx->len && is_ws(s[k]))
        k++;
    if (k < lx->len && (s[k] == '-' || s[k] == '+'))
        k++;
    if (k + 1 < lx->len && s[k] == '%' && s[k + 1] == '}')
        return k + 2;
    return 0;
}

static void
lx_text(struct lexer *lx, size_t off, size_t n)
{
    if (n)
        lx_push(lx, TK_TEXT, off, lx->src + off, n);
}

/* The whole template: text and tags in order, then TK_EOF. */
static int
lx_run(struct lexer *lx)
{
    const char *s = lx->src;
    bool line_starting = true; /* Jinja: the previous match ended in a newline */
    size_t text_start = 0;
    while (lx->pos <= lx->len) {
        size_t k = lx->pos;
        while (k + 1 < lx->len &&
               !(s[k] == '{' && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')))
            k++;
        if (k + 1 >= lx->len) {
            lx_text(lx, text_start, lx->len - text_start);
            break;
        }
        char kind = s[k + 1];
        char open_sign = (k + 2 < lx->len && (s[k + 2] == '-' || s[k + 2] == '+')) ? s[k + 2] : 0;
        size_t text_end = k;
        if (open_sign == '-') {
            while (text_end > text_start && is_ws(s[text_end - 1]))
                text_end--;
        } else if (open_sign != '+' && kind != '{') {
            /* lstrip_blocks: drop blanks between the line start and a block or comment */
            size_t l = text_end;
            while (l > text_start && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r' ||
                                      s[l - 1] == '\f' || s[l - 1] == '\v'))
                l--;
            if ((l > text_start && s[l - 1] == '\n') || (l == text_start && line_starting))
                text_end = l;
        }
        lx_text(lx, text_start, text_end - text_start);
        size_t after = k + 2 + (open_sign ? 1 : 0);
        char end_sign = 0;
        size_t trail;
        if (kind == '#') {
            size_t m = after;
            while (m + 1 < lx->len && !(s[m] == '#' && s[m + 1] == '}'))
                m++;
            if (m + 1 >= lx->len)
                return lx_fail(lx, AL_EFORMAT, k, "unterminated {# comment");
            if (m > after && (s[m - 1] == '-' || s[m - 1] == '+'))
                end_sign = s[m - 1];
            trail = m + 2;
        } else if (kind == '%' && lx_match_word_tag(lx, k, "raw")) {
            size_t m = lx_match_word_tag(lx, k, "raw");
            bool raw_line_start = false;
            if (s[m - 3] == '-') {
                while (m < lx->len && is_ws(s[m]))
                    raw_line_start = s[m++] == '\n';
            }
            size_t r = m;
            size_t close = 0;
            for (; r + 1 < lx->len; r++) {
                if (s[r] == '{' && s[r + 1] == '%') {
                    close = lx_match_word_tag(lx, r, "endraw");
                    if (close)
                        break;
                }
            }
            if (!close)
                return lx_fail(lx, AL_EFORMAT, k, "{% raw %} without {% endraw %}");
            size_t raw_end = r;
            if (s[r + 2] == '-') {
                while (raw_end > m && is_ws(s[raw_end - 1]))
                    raw_end--;
            } else if (s[r + 2] != '+') {
                /* lstrip_blocks applies to {% endraw %} like any block tag */
                size_t l = raw_end;
                while (l > m && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r' ||
                                 s[l - 1] == '\f' || s[l - 1] == '\v'))
                    l--;
                if ((l > m && s[l - 1] == '\n') || (l == m && raw_line_start))
                    raw_end = l;
            }
            lx_text(lx, m, raw_end - m);
            if (s[close - 3] == '-')
                end_sign = '-';
            else if (s[close - 3] == '+')
                end_sign = '+';
            trail = close;
        } else {
            bool is_block = kind == '%';
            lx_push(lx, is_block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, k, s + k, after - k);
            lx->pos = after;
            if (lx_tag(lx, is_block, k, &end_sign) < 0)
                return -1;
            trail = lx->pos;
        }
        line_starting = false;
        if (end_sign == '-') {
            while (trail < lx->len && is_ws(s[trail])) {
                line_starting = s[trail] == '\n';
                trail++;
            }
        } else if (end_sign != '+' && kind != '{' && trail < lx->len && s[trail] == '\n') {
            trail++; /* trim_blocks */
            line_starting = true;
        }
        lx->pos = trail;
        text_start = trail;
    }
    lx_push(lx, TK_EOF, lx->len, lx->src + lx->len, 0);
    return 0;
}

/* ===== Parser helpers ============================================================= */

static const struct tok *
cur(const struct parser *p)
{
    return &p->t[p->i];
}

static const struct tok *
peek(const struct parser *p, size_t ahead)
{
    size_t k = p->i + ahead;
    return &p->t[k < p->n ? k : p->n - 1];
}

static void
advance(struct parser *p)
{
    if (p->t[p->i].kind != TK_EOF)
        p->i++;
}

static bool
tok_is(const struct tok *t, enum tok_kind kind, const char *s)
{
    if (t->kind != kind)
        return false;
    if (!s)
        return true;
    return strlen(s) == t->n && memcmp(t->p, s, t->n) == 0;
}

static bool
is_op(const struct parser *p, const char *s)
{
    return tok_is(cur(p), TK_OP, s);
}

static bool
is_name(const struct parser *p, const char *s)
{
    return tok_is(cur(p), TK_NAME, s);
}

static const char *
tok_desc(const struct tok *t)
{
    switch (t->kind) {
    case TK_TEXT: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "end of tag '}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "end of tag '%}'";
    case TK_NAME: return "a name";
    case TK_STRING: return "a string";
    case TK_INT: return "an integer";
    case TK_FLOAT: return "a float";
    case TK_OP: return "an operator";
    case TK_EOF: return "end of template";
    }
    return "a token";
}

static int
fail_at(struct parser *p, const struct tok *t, enum al_code code, const char *fmt, const char *a1,
        size_t a1n)
{
    char what[160];
    snprintf(what, sizeof what, fmt, (int)(a1n > 60 ? 60 : a1n), a1 ? a1 : "");
    return al_errf(p->e, code, "chat template %d:%d: %s", t->line, t->col, what);
}

static int
fail_expected(struct parser *p, const char *expected)
{
    const struct tok *t = cur(p);
    if (t->kind == TK_NAME || t->kind == TK_OP)
        return al_errf(p->e, AL_EFORMAT, "chat template %d:%d: expected %s, got '%.*s'", t->line,
                       t->col, expected, (int)(t->n > 60 ? 60 : t->n), t->p);
    return al_errf(p->e, AL_EFORMAT, "chat template %d:%d: expected %s, got %s", t->line, t->col,
                   expected, tok_desc(t));
}

static int
expect_op(struct parser *p, const char *op)
{
    if (!is_op(p, op)) {
        char what[16];
        snprintf(what, sizeof what, "'%s'", op);
        return fail_expected(p, what);
    }
    advance(p);
    return 0;
}

static int
expect_block_end(struct parser *p)
{
    if (cur(p)->kind != TK_BLOCK_END)
        return fail_expected(p, "'%}'");
    advance(p);
    return 0;
}

static struct tpl_node *
node_new(struct parser *p, enum tpl_node_kind kind, const struct tok *at)
{
    struct tpl_node *n = tpl_alloc(p->a, sizeof *n, p->e);
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static int
nvec_push(struct parser *p, struct nvec *v, struct tpl_node *n)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        struct tpl_node **nv = tpl_alloc_array(p->a, cap, sizeof *nv, p->e);
        if (!nv)
            return -1;
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return 0;
}

/* Names (targets, parameters, kwarg names) collected into parallel arena arrays. */
struct svec {
    const char **s;  /* arena array of names, borrowed from the source, not NUL-terminated */
    size_t *n;       /* arena array: bytes of each name */
    size_t len, cap; /* used / allocated entries */
};

static int
svec_push(struct parser *p, struct svec *v, const char *s, size_t n)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        const char **ns = tpl_alloc_array(p->a, cap, sizeof *ns, p->e);
        size_t *nn = tpl_alloc_array(p->a, cap, sizeof *nn, p->e);
        if (!ns || !nn)
            return -1;
        if (v->len) {
            memcpy(ns, v->s, v->len * sizeof *ns);
            memcpy(nn, v->n, v->len * sizeof *nn);
        }
        v->s = ns;
        v->n = nn;
        v->cap = cap;
    }
    v->s[v->len] = s;
    v->n[v->len] = n;
    v->len++;
    return 0;
}

static int
enter(struct parser *p)
{
    if (++p->depth > CHAT_TEMPLATE_MAX_NESTING) {
        const struct tok *t = cur(p);
        return al_errf(p->e, AL_ELIMIT, "chat template %d:%d: nested more than %d levels deep",
                       t->line, t->col, CHAT_TEMPLATE_MAX_NESTING);
    }
    return 0;
}

/* ===== Expressions ================================================================ */

static struct tpl_node *parse_expr(struct parser *p);
static struct tpl_node *parse_or(struct parser *p);
static struct tpl_node *parse_unary(struct parser *p, bool with_filter);
static struct tpl_node *parse_primary(struct parser *p);
static struct tpl_node *parse_postfix(struct parser *p, struct tpl_node *n);

/* "(a, b=c)" after the '(' was seen; fills n->list (positional) and n->list2/names (kw). */
static int
parse_call_args(struct parser *p, struct tpl_node *n)
{
    struct nvec pos = {0}, kw = {0};
    struct svec names = {0};
    if (expect_op(p, "(") < 0)
        return -1;
    while (!is_op(p, ")")) {
        if (pos.n + kw.n > 0 && expect_op(p, ",") < 0)
            return -1;
        if (is_op(p, ")"))
            break;
        if (is_op(p, "*") || is_op(p, "**"))
            return fail_at(p, cur(p), AL_EUNSUPPORTED, "unsupported *args / **kwargs in call%.*s",
                           "", 0);
        if (cur(p)->kind == TK_NAME && tok_is(peek(p, 1), TK_OP, "=")) {
            const struct tok *nt = cur(p);
            advance(p);
            advance(p);
            struct tpl_node *v = parse_expr(p);
            if (!v || svec_push(p, &names, nt->p, nt->n) < 0 || nvec_push(p, &kw, v) < 0)
                return -1;
        } else {
            if (kw.n)
                return fail_expected(p, "a keyword argument after keyword arguments");
            struct tpl_node *v = parse_expr(p);
            if (!v || nvec_push(p, &pos, v) < 0)
                return -1;
        }
    }
    advance(p);
    n->list = pos.v;
    n->n_list = pos.n;
    n->list2 = kw.v;
    n->n_list2 = kw.n;
    n->names = names.s;
    n->names_n = names.n;
    n->n_names = names.len;
    return 0;
}

static struct tpl_node *
parse_subscript(struct parser *p, struct tpl_node *obj, const struct tok *at)
{
    struct tpl_node *parts[3] = {NULL, NULL, NULL};
    bool slice = false;
    if (!is_op(p, ":")) {
        parts[0] = parse_expr(p);
        if (!parts[0])
            return NULL;
    }
    if (is_op(p, ":")) {
        slice = true;
        advance(p);
        if (!is_op(p, "]") && !is_op(p, ":")) {
            parts[1] = parse_expr(p);
            if (!parts[1])
                return NULL;
        }
        if (is_op(p, ":")) {
            advance(p);
            if (!is_op(p, "]")) {
                parts[2] = parse_expr(p);
                if (!parts[2])
                    return NULL;
            }
        }
    }
    if (is_op(p, ","))
        return fail_at(p, cur(p), AL_EUNSUPPORTED, "unsupported tuple subscript%.*s", "", 0),
               NULL;
    if (expect_op(p, "]") < 0)
        return NULL;
    struct tpl_node *n = node_new(p, slice ? TN_SLICE : TN_ITEM, at);
    if (!n)
        return NULL;
    n->a = obj;
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
    return n;
}

static struct tpl_node *
parse_postfix(struct parser *p, struct tpl_node *n)
{
    for (;;) {
        const struct tok *at = cur(p);
        if (is_op(p, ".")) {
            advance(p);
            const struct tok *t = cur(p);
            struct tpl_node *m;
            if (t->kind == TK_NAME) {
                m = node_new(p, TN_ATTR, at);
                if (!m)
                    return NULL;
                m->name = t->p;
                m->name_n = t->n;
            } else if (t->kind == TK_INT) {
                struct tpl_node *idx = node_new(p, TN_LIT, t);
                m = node_new(p, TN_ITEM, at);
                if (!idx || !m)
                    return NULL;
                idx->lit.kind = TV_INT;
                idx->lit.u.i = t->i;
                m->b = idx;
            } else {
                fail_expected(p, "a name after '.'");
                return NULL;
            }
            advance(p);
            m->a = n;
            n = m;
        } else if (is_op(p, "[")) {
            advance(p);
            n = parse_subscript(p, n, at);
            if (!n)
                return NULL;
        } else if (is_op(p, "(")) {
            struct tpl_node *m = node_new(p, TN_CALL, at);
            if (!m || parse_call_args(p, m) < 0)
                return NULL;
            m->line = n->line; /* errors in a call point at what is called */
            m->col = n->col;
            m->a = n;
            n = m;
        } else {
            return n;
        }
    }
}

/* A dotted filter or test name; only plain names exist in the subset. */
static int
parse_dotted_name(struct parser *p, const char **name, size_t *n)
{
    const struct tok *t = cur(p);
    if (t->kind != TK_NAME)
        return fail_expected(p, "a filter or test name");
    *name = t->p;
    *n = t->n;
    advance(p);
    if (is_op(p, "."))
        return fail_at(p, cur(p), AL_EUNSUPPORTED, "unsupported dotted filter or test name%.*s",
                       "", 0);
    return 0;
}

static struct tpl_node *
parse_filter_expr(struct parser *p, struct tpl_node *n)
{
    for (;;) {
        const struct tok *at = cur(p);
        if (is_op(p, "|")) {
            advance(p);
            const struct tok *nt = cur(p);
            struct tpl_node *f = node_new(p, TN_FILTER, at);
            if (!f || parse_dotted_name(p, &f->name, &f->name_n) < 0)
                return NULL;
            f->op = tpl_filter_lookup(f->name, f->name_n);
            if (f->op < 0) {
                fail_at(p, nt, AL_EUNSUPPORTED, "unsupported filter '%.*s'", f->name, f->name_n);
                return NULL;
            }
            if (is_op(p, "(") && parse_call_args(p, f) < 0)
                return NULL;
            f->a = n;
            n = f;
        } else if (is_name(p, "is")) {
            advance(p);
            struct tpl_node *t = node_new(p, TN_TEST, at);
            if (!t)
                return NULL;
            if (is_name(p, "not")) {
                t->flag = true;
                advance(p);
            }
            const struct tok *nt = cur(p);
            /* tests may be named by keywords/operators: "is none", "is true", "is ==" */
            if (nt->kind == TK_OP && tpl_test_lookup(nt->p, nt->n) >= 0) {
                t->name = nt->p;
                t->name_n = nt->n;
                advance(p);
            } else if (parse_dotted_name(p, &t->name, &t->name_n) < 0) {
                return NULL;
            }
            t->op = tpl_test_lookup(t->name, t->name_n);
            if (t->op < 0) {
                fail_at(p, nt, AL_EUNSUPPORTED, "unsupported test '%.*s'", t->name, t->name_n);
                return NULL;
            }
            const struct tok *c = cur(p);
            if (is_op(p, "(")) {
                if (parse_call_args(p, t) < 0)
                    return NULL;
            } else if ((c->kind == TK_NAME || c->kind == TK_STRING || c->kind == TK_INT ||
                        c->kind == TK_FLOAT || is_op(p, "[") || is_op(p, "{")) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                /* Jinja takes one argument without parentheses: `is divisibleby 3` */
                if (is_name(p, "is")) {
                    fail_at(p, c, AL_EFORMAT, "cannot chain tests with 'is'%.*s", "", 0);
                    return NULL;
                }
                struct tpl_node *arg = parse_primary(p);
                if (arg)
                    arg = parse_postfix(p, arg);
                struct tpl_node **one = tpl_alloc(p->a, sizeof *one, p->e);
                if (!arg || !one)
                    return NULL;
                one[0] = arg;
                t->list = one;
                t->n_list = 1;
            }
            t->a = n;
            n = t;
        } else if (is_op(p, "(")) {
            struct tpl_node *m = node_new(p, TN_CALL, at);
            if (!m || parse_call_args(p, m) < 0)
                return NULL;
            m->line = n->line; /* errors in a call point at what is called */
            m->col = n->col;
            m->a = n;
            n = m;
        } else {
            return n;
        }
    }
}

static struct tpl_node *
parse_seq_literal(struct parser *p, const struct tok *at, const char *close, bool tuple,
                  struct tpl_node *first)
{
    struct nvec items = {0};
    struct tpl_node *n = node_new(p, TN_LIST, at);
    if (!n)
        return NULL;
    n->op = tuple;
    if (first && nvec_push(p, &items, first) < 0)
        return NULL;
    while (!is_op(p, close)) {
        if (items.n > 0 && expect_op(p, ",") < 0)
            return NULL;
        if (is_op(p, close))
            break;
        struct tpl_node *v = parse_expr(p);
        if (!v || nvec_push(p, &items, v) < 0)
            return NULL;
    }
    advance(p);
    n->list = items.v;
    n->n_list = items.n;
    return n;
}

static struct tpl_node *
parse_primary(struct parser *p)
{
    const struct tok *t = cur(p);
    struct tpl_node *n = NULL;
    if (enter(p) < 0)
        return NULL;
    switch (t->kind) {
    case TK_NAME:
        n = node_new(p, TN_LIT, t);
        if (!n)
            break;
        if (tok_is(t, TK_NAME, "true") || tok_is(t, TK_NAME, "True")) {
            n->lit.kind = TV_BOOL;
            n->lit.u.b = true;
        } else if (tok_is(t, TK_NAME, "false") || tok_is(t, TK_NAME, "False")) {
            n->lit.kind = TV_BOOL;
        } else if (tok_is(t, TK_NAME, "none") || tok_is(t, TK_NAME, "None")) {
            n->lit.kind = TV_NONE;
        } else {
            n->kind = TN_NAME;
            n->name = t->p;
            n->name_n = t->n;
        }
        advance(p);
        break;
    case TK_STRING: {
        /* adjacent literals concatenate, as in Python */
        size_t total = 0, k = p->i;
        while (p->t[k].kind == TK_STRING)
            total += p->t[k++].n;
        n = node_new(p, TN_LIT, t);
        char *d = n ? tpl_alloc(p->a, total + 1, p->e) : NULL;
        if (!d) {
            n = NULL;
            break;
        }
        size_t o = 0;
        while (cur(p)->kind == TK_STRING) {
            memcpy(d + o, cur(p)->p, cur(p)->n);
            o += cur(p)->n;
            advance(p);
        }
        n->lit.kind = TV_STR;
        n->lit.u.s.p = d;
        n->lit.u.s.n = o;
        break;
    }
    case TK_INT:
    case TK_FLOAT:
        n = node_new(p, TN_LIT, t);
        if (!n)
            break;
        if (t->kind == TK_INT) {
            n->lit.kind = TV_INT;
            n->lit.u.i = t->i;
        } else {
            n->lit.kind = TV_FLOAT;
            n->lit.u.f = t->f;
        }
        advance(p);
        break;
    case TK_OP:
        if (is_op(p, "(")) {
            advance(p);
            if (is_op(p, ")")) {
                advance(p);
                n = node_new(p, TN_LIST, t);
                if (n)
                    n->op = 1;
                break;
            }
            struct tpl_node *first = parse_expr(p);
            if (!first)
                break;
            if (is_op(p, ",")) {
                n = parse_seq_literal(p, t, ")", true, first);
            } else if (expect_op(p, ")") == 0) {
                n = first;
            }
        } else if (is_op(p, "[")) {
            advance(p);
            n = parse_seq_literal(p, t, "]", false, NULL);
        } else if (is_op(p, "{")) {
            advance(p);
            struct nvec keys = {0}, vals = {0};
            while (!is_op(p, "}")) {
                if (keys.n > 0 && expect_op(p, ",") < 0)
                    goto out;
                if (is_op(p, "}"))
                    break;
                struct tpl_node *k = parse_expr(p);
                if (!k || expect_op(p, ":") < 0)
                    goto out;
                struct tpl_node *v = parse_expr(p);
                if (!v || nvec_push(p, &keys, k) < 0 || nvec_push(p, &vals, v) < 0)
                    goto out;
            }
            advance(p);
            n = node_new(p, TN_DICT, t);
            if (n) {
                n->list = keys.v;
                n->n_list = keys.n;
                n->list2 = vals.v;
                n->n_list2 = vals.n;
            }
        } else {
            fail_expected(p, "an expression");
        }
        break;
    default:
        fail_expected(p, "an expression");
        break;
    }
out:
    p->depth--;
    return n;
}

static struct tpl_node *
parse_unary(struct parser *p, bool with_filter)
{
    const struct tok *t = cur(p);
    struct tpl_node *n = NULL;
    if (enter(p) < 0)
        return NULL;
    if (is_op(p, "-") || is_op(p, "+")) {
        advance(p);
        struct tpl_node *a = parse_unary(p, false);
        n = a ? node_new(p, tok_is(t, TK_OP, "-") ? TN_NEG : TN_POS, t) : NULL;
        if (n)
            n->a = a;
    } else {
        n = parse_primary(p);
    }
    if (n)
        n = parse_postfix(p, n);
    if (n && with_filter)
        n = parse_filter_expr(p, n);
    p->depth--;
    return n;
}

static struct tpl_node *
binop_new(struct parser *p, enum tpl_node_kind kind, int op, const struct tok *at,
          struct tpl_node *l, struct tpl_node *r)
{
    if (!l || !r)
        return NULL;
    struct tpl_node *n = node_new(p, kind, at);
    if (!n)
        return NULL;
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static struct tpl_node *
parse_pow(struct parser *p)
{
    struct tpl_node *n = parse_unary(p, true);
    while (n && is_op(p, "**")) {
        const struct tok *at = cur(p);
        advance(p);
        n = binop_new(p, TN_BINOP, OP_POW, at, n, parse_unary(p, true));
    }
    return n;
}

static struct tpl_node *
parse_math2(struct parser *p)
{
    struct tpl_node *n = parse_pow(p);
    for (;;) {
        const struct tok *at = cur(p);
        int op = is_op(p, "*") ? OP_MUL : is_op(p, "/") ? OP_DIV
                 : is_op(p, "//")                       ? OP_FLOORDIV
                 : is_op(p, "%")                        ? OP_MOD
                                                        : -1;
        if (!n || op < 0)
            return n;
        advance(p);
        n = binop_new(p, TN_BINOP, op, at, n, parse_pow(p));
    }
}

static struct tpl_node *
parse_concat(struct parser *p)
{
    struct tpl_node *n = parse_math2(p);
    while (n && is_op(p, "~")) {
        const struct tok *at = cur(p);
        advance(p);
        n = binop_new(p, TN_BINOP, OP_CONCAT, at, n, parse_math2(p));
    }
    return n;
}

static struct tpl_node *
parse_math1(struct parser *p)
{
    struct tpl_node *n = parse_concat(p);
    for (;;) {
        const struct tok *at = cur(p);
        int op = is_op(p, "+") ? OP_ADD : is_op(p, "-") ? OP_SUB : -1;
        if (!n || op < 0)
            return n;
        advance(p);
        n = binop_new(p, TN_BINOP, op, at, n, parse_concat(p));
    }
}

static struct tpl_node *
parse_compare(struct parser *p)
{
    struct tpl_node *left = parse_math1(p);
    struct tpl_node *result = NULL;
    for (;;) {
        const struct tok *at = cur(p);
        int op = is_op(p, "==") ? OP_EQ : is_op(p, "!=") ? OP_NE
                 : is_op(p, "<")                         ? OP_LT
                 : is_op(p, "<=")                        ? OP_LE
                 : is_op(p, ">")                         ? OP_GT
                 : is_op(p, ">=")                        ? OP_GE
                 : is_name(p, "in")                      ? OP_IN
                 : (is_name(p, "not") && tok_is(peek(p, 1), TK_NAME, "in")) ? OP_NOTIN
                                                                            : -1;
        if (!left)
            return NULL;
        if (op < 0)
            return result ? result : left;
        advance(p);
        if (op == OP_NOTIN)
            advance(p);
        struct tpl_node *right = parse_math1(p);
        struct tpl_node *cmp = binop_new(p, TN_COMPARE, op, at, left, right);
        if (!cmp)
            return NULL;
        /* a < b < c means (a < b) and (b < c) */
        result = result ? binop_new(p, TN_AND, 0, at, result, cmp) : cmp;
        if (!result)
            return NULL;
        left = right;
    }
}

static struct tpl_node *
parse_not(struct parser *p)
{
    if (is_name(p, "not")) {
        const struct tok *at = cur(p);
        advance(p);
        if (enter(p) < 0)
            return NULL;
        struct tpl_node *a = parse_not(p);
        p->depth--;
        struct tpl_node *n = a ? node_new(p, TN_NOT, at) : NULL;
        if (n)
            n->a = a;
        return n;
    }
    return parse_compare(p);
}

static struct tpl_node *
parse_and(struct parser *p)
{
    struct tpl_node *n = parse_not(p);
    while (n && is_name(p, "and")) {
        const struct tok *at = cur(p);
        advance(p);
        n = binop_new(p, TN_AND, 0, at, n, parse_not(p));
    }
    return n;
}

static struct tpl_node *
parse_or(struct parser *p)
{
    struct tpl_node *n = parse_and(p);
    while (n && is_name(p, "or")) {
        const struct tok *at = cur(p);
        advance(p);
        n = binop_new(p, TN_OR, 0, at, n, parse_and(p));
    }
    return n;
}

static struct tpl_node *
parse_expr(struct parser *p)
{
    if (enter(p) < 0)
        return NULL;
    struct tpl_node *n = parse_or(p);
    while (n && is_name(p, "if")) {
        const struct tok *at = cur(p);
        advance(p);
        struct tpl_node *cond = parse_or(p);
        struct tpl_node *other = NULL;
        if (!cond) {
            n = NULL;
            break;
        }
        if (is_name(p, "else")) {
            advance(p);
            other = parse_expr(p);
            if (!other) {
                n = NULL;
                break;
            }
        }
        struct tpl_node *c = node_new(p, TN_COND, at);
        if (!c) {
            n = NULL;
            break;
        }
        c->a = cond;
        c->b = n;
        c->c = other;
        n = c;
    }
    p->depth--;
    return n;
}

/* ===== Statements ================================================================= */

static int parse_body(struct parser *p, const struct tok *opened, const char *const *ends,
                      struct nvec *body, int *which);

static bool
is_keyword(const struct tok *t)
{
    static const char *const kw[] = {"and", "or", "not", "in", "is", "if", "else",
                                     "true", "false", "none", "True", "False", "None"};
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++) {
        if (tok_is(t, TK_NAME, kw[k]))
            return true;
    }
    return false;
}

static int
parse_target_names(struct parser *p, struct svec *names)
{
    bool paren = false;
    if (is_op(p, "(")) {
        paren = true;
        advance(p);
    }
    for (;;) {
        const struct tok *t = cur(p);
        if (t->kind != TK_NAME || is_keyword(t))
            return fail_expected(p, "a variable name");
        if (svec_push(p, names, t->p, t->n) < 0)
            return -1;
        advance(p);
        if (!is_op(p, ","))
            break;
        advance(p);
    }
    if (paren && expect_op(p, ")") < 0)
        return -1;
    return 0;
}

static void
set_body(struct tpl_node *n, const struct nvec *v, bool second)
{
    if (second) {
        n->body2 = v->v;
        n->n_body2 = v->n;
    } else {
        n->body = v->v;
        n->n_body = v->n;
    }
}

static struct tpl_node *
parse_if(struct parser *p, const struct tok *at)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    struct tpl_node *n = node_new(p, TN_IF, at);
    if (!n)
        return NULL;
    n->a = parse_expr(p);
    if (!n->a || expect_block_end(p) < 0)
        return NULL;
    struct nvec then = {0};
    int which;
    if (parse_body(p, at, ends, &then, &which) < 0)
        return NULL;
    set_body(n, &then, false);
    if (which == 0) {
        const struct tok *elif_at = &p->t[p->i - 1];
        struct tpl_node *inner = parse_if(p, elif_at);
        if (!inner)
            return NULL;
        struct tpl_node **one = tpl_alloc(p->a, sizeof *one, p->e);
        if (!one)
            return NULL;
        one[0] = inner;
        n->body2 = one;
        n->n_body2 = 1;
        return n;
    }
    if (which == 1) {
        static const char *const end_only[] = {"endif", NULL};
        struct nvec other = {0};
        if (expect_block_end(p) < 0 || parse_body(p, at, end_only, &other, &which) < 0)
            return NULL;
        set_body(n, &other, true);
    }
    if (expect_block_end(p) < 0)
        return NULL;
    return n;
}

static struct tpl_node *
parse_for(struct parser *p, const struct tok *at)
{
    static const char *const ends[] = {"else", "endfor", NULL};
    static const char *const end_only[] = {"endfor", NULL};
    struct tpl_node *n = node_new(p, TN_FOR, at);
    struct svec names = {0};
    if (!n || parse_target_names(p, &names) < 0)
        return NULL;
    n->names = names.s;
    n->names_n = names.n;
    n->n_names = names.len;
    if (!is_name(p, "in")) {
        fail_expected(p, "'in'");
        return NULL;
    }
    advance(p);
    /* the iterable has no conditional expression: a following `if` filters the loop */
    n->a = parse_or(p);
    if (!n->a)
        return NULL;
    if (is_name(p, "if")) {
        advance(p);
        n->b = parse_expr(p);
        if (!n->b)
            return NULL;
    }
    if (is_name(p, "recursive")) {
        fail_at(p, cur(p), AL_EUNSUPPORTED, "unsupported recursive for loop%.*s", "", 0);
        return NULL;
    }
    if (expect_block_end(p) < 0)
        return NULL;
    struct nvec body = {0}, other = {0};
    int which;
    p->loops++;
    int rc = parse_body(p, at, ends, &body, &which);
    p->loops--;
    if (rc < 0)
        return NULL;
    set_body(n, &body, false);
    if (which == 0) {
        /* the else block runs outside the loop: break there is an error */
        int saved = p->loops;
        p->loops = 0;
        rc = expect_block_end(p) < 0 ? -1 : parse_body(p, at, end_only, &other, &which);
        p->loops = saved;
        if (rc < 0)
            return NULL;
        set_body(n, &other, true);
    }
    if (expect_block_end(p) < 0)
        return NULL;
    return n;
}

static struct tpl_node *
parse_set(struct parser *p, const struct tok *at)
{
    static const char *const ends[] = {"endset", NULL};
    struct tpl_node *n = node_new(p, TN_SET, at);
    struct svec names = {0};
    if (!n)
        return NULL;
    const struct tok *t = cur(p);
    if (t->kind == TK_NAME && !is_keyword(t) && tok_is(peek(p, 1), TK_OP, ".")) {
        const struct tok *attr = peek(p, 2);
        if (attr->kind != TK_NAME) {
            p->i += 2;
            fail_expected(p, "an attribute name");
            return NULL;
        }
        if (svec_push(p, &names, t->p, t->n) < 0 || svec_push(p, &names, attr->p, attr->n) < 0)
            return NULL;
        p->i += 3;
        n->flag = true;
    } else if (parse_target_names(p, &names) < 0) {
        return NULL;
    }
    n->names = names.s;
    n->names_n = names.n;
    n->n_names = names.len;
    if (is_op(p, "=")) {
        advance(p);
        n->a = parse_expr(p);
        if (!n->a)
            return NULL;
        if (is_op(p, ",")) {
            fail_at(p, cur(p), AL_EUNSUPPORTED, "unsupported tuple without parentheses%.*s", "",
                    0);
            return NULL;
        }
        if (expect_block_end(p) < 0)
            return NULL;
        return n;
    }
    if (is_op(p, "|")) {
        fail_at(p, cur(p), AL_EUNSUPPORTED, "unsupported filter on a block set%.*s", "", 0);
        return NULL;
    }
    if (n->flag || n->n_names != 1) {
        fail_expected(p, "'='");
        return NULL;
    }
    struct nvec body = {0};
    int which;
    if (expect_block_end(p) < 0 || parse_body(p, at, ends, &body, &which) < 0 ||
        expect_block_end(p) < 0)
        return NULL;
    n->kind = TN_SETBLOCK;
    set_body(n, &body, false);
    return n;
}

static struct tpl_node *
parse_macro(struct parser *p, const struct tok *at)
{
    static const char *const ends[] = {"endmacro", NULL};
    struct tpl_node *n = node_new(p, TN_MACRO, at);
    struct svec names = {0};
    struct nvec defaults = {0};
    if (!n)
        return NULL;
    const struct tok *t = cur(p);
    if (t->kind != TK_NAME || is_keyword(t)) {
        fail_expected(p, "a macro name");
        return NULL;
    }
    if (svec_push(p, &names, t->p, t->n) < 0)
        return NULL;
    advance(p);
    if (expect_op(p, "(") < 0)
        return NULL;
    while (!is_op(p, ")")) {
        if (defaults.n > 0 && expect_op(p, ",") < 0)
            return NULL;
        const struct tok *pt = cur(p);
        if (pt->kind != TK_NAME || is_keyword(pt)) {
            fail_expected(p, "a parameter name");
            return NULL;
        }
        if (svec_push(p, &names, pt->p, pt->n) < 0)
            return NULL;
        advance(p);
        struct tpl_node *def = NULL;
        if (is_op(p, "=")) {
            advance(p);
            def = parse_expr(p);
            if (!def)
                return NULL;
        }
        if (nvec_push(p, &defaults, def) < 0)
            return NULL;
    }
    advance(p);
    if (expect_block_end(p) < 0)
        return NULL;
    struct nvec body = {0};
    int which;
    int saved = p->loops;
    p->loops = 0;
    int rc = parse_body(p, at, ends, &body, &which);
    p->loops = saved;
    if (rc < 0)
        return NULL;
    /* Jinja allows the macro name after endmacro */
    if (cur(p)->kind == TK_NAME)
        advance(p);
    if (expect_block_end(p) < 0)
        return NULL;
    n->names = names.s;
    n->names_n = names.n;
    n->n_names = names.len;
    n->list = defaults.v;
    n->n_list = defaults.n;
    set_body(n, &body, false);
    return n;
}

static struct tpl_node *
parse_statement(struct parser *p)
{
    const struct tok *at = cur(p); /* the {% token */
    advance(p);
    const struct tok *t = cur(p);
    if (t->kind != TK_NAME) {
        fail_expected(p, "a tag name");
        return NULL;
    }
    advance(p);
    if (tok_is(t, TK_NAME, "if"))
        return parse_if(p, at);
    if (tok_is(t, TK_NAME, "for"))
        return parse_for(p, at);
    if (tok_is(t, TK_NAME, "set"))
        return parse_set(p, at);
    if (tok_is(t, TK_NAME, "macro"))
        return parse_macro(p, at);
    if (tok_is(t, TK_NAME, "break") || tok_is(t, TK_NAME, "continue")) {
        if (p->loops == 0) {
            fail_at(p, t, AL_EFORMAT, "'%.*s' outside of a for loop", t->p, t->n);
            return NULL;
        }
        struct tpl_node *n =
            node_new(p, tok_is(t, TK_NAME, "break") ? TN_BREAK : TN_CONTINUE, at);
        if (!n || expect_block_end(p) < 0)
            return NULL;
        return n;
    }
    if (tok_is(t, TK_NAME, "generation")) {
        /* transformers' marker for assistant-token masks: renders its body unchanged */
        static const char *const ends[] = {"endgeneration", NULL};
        struct tpl_node *n = node_new(p, TN_BODY, at);
        struct nvec body = {0};
        int which;
        if (!n || expect_block_end(p) < 0 || parse_body(p, at, ends, &body, &which) < 0 ||
            expect_block_end(p) < 0)
            return NULL;
        set_body(n, &body, false);
        return n;
    }
    fail_at(p, t, AL_EUNSUPPORTED, "unsupported tag '%.*s'", t->p, t->n);
    return NULL;
}

/* Statements until one of ends (NULL-terminated; NULL array = until end of template). On
 * return the parser stands after the end tag's name and *which is its index. */
static int
parse_body(struct parser *p, const struct tok *opened, const char *const *ends,
           struct nvec *body, int *which)
{
    if (enter(p) < 0)
        return -1;
    int rc = -1;
    for (;;) {
        const struct tok *t = cur(p);
        struct tpl_node *n = NULL;
        if (t->kind == TK_EOF) {
            if (ends) {
                size_t last = 0;
                while (ends[last + 1])
                    last++;
                al_errf(p->e, AL_EFORMAT,
                        "chat template %d:%d: missing {%% %s %%} for the tag opened here",
                        opened->line, opened->col, ends[last]);
                goto out;
            }
            break;
        }
        if (t->kind == TK_TEXT) {
            n = node_new(p, TN_TEXT, t);
            if (!n)
                goto out;
            n->lit.kind = TV_STR;
            n->lit.u.s.p = t->p;
            n->lit.u.s.n = t->n;
            advance(p);
        } else if (t->kind == TK_VAR_BEGIN) {
            advance(p);
            n = node_new(p, TN_OUTPUT, t);
            if (!n)
                goto out;
            n->a = parse_expr(p);
            if (!n->a)
                goto out;
            if (cur(p)->kind != TK_VAR_END) {
                fail_expected(p, "'}}'");
                goto out;
            }
            advance(p);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            const struct tok *name = peek(p, 1);
            bool is_end = false;
            for (int k = 0; ends && ends[k]; k++) {
                if (tok_is(name, TK_NAME, ends[k])) {
                    *which = k;
                    is_end = true;
                }
            }
            if (is_end) {
                p->i += 2;
                break;
            }
            if (name->kind == TK_NAME &&
                (tok_is(name, TK_NAME, "endif") || tok_is(name, TK_NAME, "endfor") ||
                 tok_is(name, TK_NAME, "else") || tok_is(name, TK_NAME, "elif") ||
                 tok_is(name, TK_NAME, "endset") || tok_is(name, TK_NAME, "endmacro") ||
                 tok_is(name, TK_NAME, "endgeneration"))) {
                fail_at(p, name, AL_EFORMAT, "unexpected '%.*s'", name->p, name->n);
                goto out;
            }
            n = parse_statement(p);
            if (!n)
                goto out;
        } else {
            fail_expected(p, "template text or a tag");
            goto out;
        }
        if (nvec_push(p, body, n) < 0)
            goto out;
    }
    rc = 0;
out:
    p->depth--;
    return rc;
}

/* ===== Public ===================================================================== */

struct tpl_node *
tpl_parse(struct tpl_arena *a, const char *src, size_t len, struct al_err *e)
{
    struct tpl_node *root = NULL;
    struct lexer lx = {0};
    if (len > CHAT_TEMPLATE_MAX_SOURCE) {
        al_errf(e, AL_ELIMIT, "chat template: %zu bytes, limit %u", len,
                CHAT_TEMPLATE_MAX_SOURCE);
        goto out;
    }
    /* Jinja normalizes \r\n and \r to \n and drops one trailing newline before lexing */
    char *norm = tpl_alloc(a, len + 1, e);
    if (!norm)
        goto out;
    size_t o = 0;
    for (size_t k = 0; k < len; k++) {
        if (src[k] == '\r') {
            norm[o++] = '\n';
            if (k + 1 < len && src[k + 1] == '\n')
                k++;
        } else {
            norm[o++] = src[k];
        }
    }
    if (o > 0 && norm[o - 1] == '\n')
        o--;
    norm[o] = '\0';
    lx.src = norm;
    lx.len = o;
    lx.lc_line = 1;
    lx.lc_col = 1;
    lx.a = a;
    lx.e = e;
    if (lx_run(&lx) < 0)
        goto out;
    struct parser p = {.t = lx.toks, .n = lx.n, .a = a, .e = e};
    struct nvec body = {0};
    int which = -1;
    if (parse_body(&p, NULL, NULL, &body, &which) < 0)
        goto out;
    root = node_new(&p, TN_BODY, &lx.toks[0]);
    if (root)
        set_body(root, &body, false);
out:
    free(lx.toks);
    return root;
}
