/* grammar.c -- compiles a JSON-schema subset into nodes and recognises JSON incrementally,
 * byte by byte, for grammar-constrained sampling (contract: grammar.h; user docs:
 * docs/json-mode.md). The schema is untrusted request input: nodes, properties, literals,
 * key lengths and compile recursion are all bounded before anything is allocated for them.
 * Does not sample or change logits (the scheduler does), does not validate finished documents.
 *
 * Recogniser: a pushdown automaton whose stack holds one frame per open value. A frame is
 * converted in place when its value starts ('{' turns a VALUE frame into an OBJECT frame) and
 * popped when it ends. Numbers and bare literals have no closing byte: they stay on the stack
 * until a byte arrives that cannot extend them, which is then fed to the parent. anyOf is
 * handled by forking the parse into threads (at most JGRAM_MAX_THREADS, identical ones merged),
 * so alternatives that share a prefix, such as two object shapes, stay open until they differ.
 * Liveness: every state the recogniser accepts can be completed. Each node knows the fewest
 * stack frames it needs (a fixpoint over the node graph, so recursive $ref schemas that can
 * never terminate are refused), and a value or key is only started if it fits the stack;
 * strings and numbers only take a byte if what it leaves unfinished (an escape, a UTF-8
 * sequence, a surrogate pair, an exponent digit) still fits under the length cap. */
#include "engine/grammar.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* ===== Compiled schema ================================================================= */

#define JG_MAX_NODES 4096         /* compiled nodes per schema */
#define JG_MAX_PROPS 4096         /* properties, all objects together */
#define JG_MAX_LITS 4096          /* enum/const values and true/false/null, all together */
#define JG_MAX_LIT_BYTES (256u << 10)
#define JG_MAX_LIT_LEN 4096       /* one literal or property name, as JSON text */
#define JG_MAX_COMPILE_DEPTH 64   /* schema nesting while compiling */
#define JG_MAX_REFS 512           /* distinct $ref targets */
#define JG_MAX_FORK 8             /* nested anyOf levels expanded for one byte */
#define JG_FORK_BUDGET 256        /* alternative copies tried for one byte, all threads */
#define JG_MAX_INT_DIGITS 18      /* integer part of a number: fits int64 */
#define JG_MAX_EXP_DIGITS 2       /* exponent: |e| <= 99, so 18 digits e99 fits a double */
#define JG_INF 0xffffu            /* "cannot be completed in any depth" */

enum {
    T_OBJ = 1 << 0,
    T_ARR = 1 << 1,
    T_STR = 1 << 2,
    T_NUM = 1 << 3,
    T_INT = 1 << 4,
    T_BOOL = 1 << 5,
    T_NULL = 1 << 6,
    T_ALL = 0x7f,
};

struct jg_lit {
    char *s;       /* owned JSON text of the value, e.g. "\"red\"", "1.5", "true" */
    uint32_t len;  /* bytes of s, <= JG_MAX_LIT_LEN */
};

struct jg_prop {
    char *key;          /* owned JSON text of the name including quotes */
    uint32_t key_len;   /* bytes of key, <= JG_MAX_LIT_LEN */
    uint32_t node;      /* schema of the value */
    bool required;      /* listed in "required": must appear */
    uint32_t next_req;  /* index (within the object) of the first required property >= this */
};

struct jg_node {
    uint32_t types;      /* T_* allowed when there are no alternatives */
    bool lits_only;      /* enum/const: only the literals below */
    uint32_t lit_lo;     /* literals g->lits[lit_lo .. lit_lo+lit_n), sorted bytewise */
    uint32_t lit_n;      /* 0: none */
    bool free_obj;       /* object with any keys, values of node free_val */
    uint32_t free_val;   /* additionalProperties schema; 0 (any JSON) unless given */
    uint32_t prop_lo;    /* properties g->props[prop_lo .. prop_lo+prop_n), schema order */
    uint32_t prop_n;     /* 0 with !free_obj: only {} */
    uint32_t items;      /* node of array items */
    uint32_t min_items, max_items; /* item counts; max_items <= lim.max_items */
    uint32_t alt_lo;     /* anyOf alternatives g->alts[alt_lo .. alt_lo+alt_n) */
    uint32_t alt_n;      /* 0: not an anyOf node; else only alternatives count */
    uint32_t min_len;    /* minLength of strings, characters */
    uint32_t max_len;    /* maxLength of strings, characters; UINT32_MAX: none */
    uint32_t md;         /* fewest frames a value of this node needs (JG_INF: impossible) */
    uint32_t md_obj;     /* ... when it is an object */
    uint32_t md_arr;     /* ... when it is an array */
};

struct jg_ref {
    const json_t *target; /* borrowed from the schema being compiled */
    uint32_t node;        /* its node, reserved before compiling it so recursion ends */
};

struct jgram {
    struct jg_node *nodes;   /* owned, n_nodes; node 0 is "any JSON value" */
    uint32_t n_nodes;        /* <= JG_MAX_NODES */
    struct jg_prop *props;   /* owned, n_props <= JG_MAX_PROPS, grouped by object */
    uint32_t n_props;
    struct jg_lit *lits;     /* owned, n_lits <= JG_MAX_LITS, grouped by node */
    uint32_t n_lits;
    size_t lit_bytes;        /* sum of lits[].len, <= JG_MAX_LIT_BYTES */
    uint32_t *alts;          /* owned node indices, grouped by anyOf node */
    uint32_t n_alts;
    uint32_t root;           /* node of the whole document */
    bool root_is_object;     /* json_object mode: the document must be an object */
    struct jgram_limits lim; /* effective caps */
};

/* compile-time context, gone once jgram_new returns */
struct jg_cc {
    struct jgram *g;         /* being built; freed by jgram_new on failure */
    const json_t *root;      /* borrowed schema, for $ref */
    struct jg_ref *refs;     /* owned, n_refs <= JG_MAX_REFS */
    uint32_t n_refs;
    uint32_t cap_nodes, cap_props, cap_lits, cap_alts; /* allocated entries of g's arrays */
    struct al_err *e;        /* borrowed; where the first failure is reported */
};

static int
new_node(struct jg_cc *c, uint32_t *out)
{
    struct jgram *g = c->g;
    if (g->n_nodes >= JG_MAX_NODES)
        return al_errf(c->e, AL_ELIMIT, "schema: more than %d nodes", JG_MAX_NODES);
    if (g->n_nodes == c->cap_nodes) {
        c->cap_nodes = c->cap_nodes ? c->cap_nodes * 2 : 16;
        g->nodes = xrealloc(g->nodes, c->cap_nodes * sizeof *g->nodes);
    }
    memset(&g->nodes[g->n_nodes], 0, sizeof g->nodes[0]);
    g->nodes[g->n_nodes].max_len = UINT32_MAX;
    *out = g->n_nodes++;
    return 0;
}

static int
add_lit(struct jg_cc *c, const char *s, size_t len, const char *where)
{
    struct jgram *g = c->g;
    if (len > JG_MAX_LIT_LEN)
        return al_errf(c->e, AL_ELIMIT, "schema: %s: value of %zu bytes, limit %d", where, len,
                       JG_MAX_LIT_LEN);
    if (g->n_lits >= JG_MAX_LITS || g->lit_bytes + len > JG_MAX_LIT_BYTES)
        return al_errf(c->e, AL_ELIMIT, "schema: %s: too many enum/const values", where);
    if (g->n_lits == c->cap_lits) {
        c->cap_lits = c->cap_lits ? c->cap_lits * 2 : 16;
        g->lits = xrealloc(g->lits, c->cap_lits * sizeof *g->lits);
    }
    g->lits[g->n_lits].s = xstrndup(s, len);
    g->lits[g->n_lits].len = (uint32_t)len;
    g->n_lits++;
    g->lit_bytes += len;
    return 0;
}

static int
lit_cmp(const void *a, const void *b)
{
    const struct jg_lit *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->s, y->s, n);
    if (r)
        return r;
    return (x->len > y->len) - (x->len < y->len);
}

/* JSON text of a scalar: reals as short as round-trips, so an enum 0.1 reads "0.1". */
static char *
dump_scalar(const json_t *v)
{
    size_t flags = JSON_ENCODE_ANY | JSON_COMPACT;
    if (json_is_real(v)) {
        char *s = json_dumps(v, flags | JSON_REAL_PRECISION(15));
        json_t *back = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
        bool same = back && json_equal(back, v);
        json_decref(back);
        if (same)
            return s;
        free(s);
    }
    return json_dumps(v, flags);
}

static int
add_value_lit(struct jg_cc *c, const json_t *v, const char *where)
{
    if (json_is_object(v) || json_is_array(v))
        return al_errf(c->e, AL_EUNSUPPORTED,
                       "schema: %s: only string, number, boolean and null values are supported",
                       where);
    char *s = dump_scalar(v);
    if (!s)
        return al_errf(c->e, AL_EFORMAT, "schema: %s: value cannot be written as JSON", where);
    int rc = add_lit(c, s, strlen(s), where);
    free(s);
    return rc;
}

/* Remove adjacent duplicates of a sorted literal range; returns the new count. */
static uint32_t
lits_sort_unique(struct jgram *g, uint32_t lo, uint32_t n)
{
    qsort(g->lits + lo, n, sizeof *g->lits, lit_cmp);
    uint32_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct jg_lit *l = &g->lits[lo + i];
        if (w > 0 && lit_cmp(&g->lits[lo + w - 1], l) == 0) {
            g->lit_bytes -= l->len;
            free(l->s);
            continue;
        }
        g->lits[lo + w++] = *l;
    }
    g->n_lits = lo + w;
    return w;
}

static const char *const annotations[] = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "format",
    "deprecated", "readOnly", "writeOnly", "$defs", "definitions", NULL,
};

static bool
is_annotation(const char *k)
{
    for (size_t i = 0; annotations[i]; i++)
        if (strcmp(k, annotations[i]) == 0)
            return true;
    return false;
}

static int
type_bit(const char *name)
{
    static const struct { const char *name; int bit; } tab[] = {
        {"object", T_OBJ}, {"array", T_ARR}, {"string", T_STR}, {"number", T_NUM},
        {"integer", T_INT}, {"boolean", T_BOOL}, {"null", T_NULL},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(name, tab[i].name) == 0)
            return tab[i].bit;
    return 0;
}

/* Decode one JSON-pointer token (~1 -> '/', ~0 -> '~') of p[0..n) into out. */
static int
ptr_token(const char *p, size_t n, char *out, size_t cap)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '~') {
            if (i + 1 >= n || (p[i + 1] != '0' && p[i + 1] != '1'))
                return -1;
            ch = p[i + 1] == '0' ? '~' : '/';
            i++;
        }
        if (w + 1 >= cap)
            return -1;
        out[w++] = ch;
    }
    out[w] = '\0';
    return 0;
}

static int
resolve_ref(struct jg_cc *c, const char *ref, const json_t **out)
{
    char tok[256];
    const json_t *cur = c->root;
    if (ref[0] != '#')
        return al_errf(c->e, AL_EUNSUPPORTED, "schema: $ref \"%.64s\": only local references "
                       "(#/$defs/..., #/definitions/...) are supported", ref);
    const char *p = ref + 1;
    while (*p) {
        if (*p != '/' || !json_is_object(cur))
            return al_errf(c->e, AL_EFORMAT, "schema: $ref \"%.64s\" does not resolve", ref);
        p++;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (ptr_token(p, n, tok, sizeof tok) != 0)
            return al_errf(c->e, AL_EFORMAT, "schema: $ref \"%.64s\": bad pointer", ref);
        cur = json_object_get(cur, tok);
        if (!cur)
            return al_errf(c->e, AL_EFORMAT, "schema: $ref \"%.64s\" does not resolve", ref);
        p += n;
    }
    *out = cur;
    return 0;
}

static int compile_into(struct jg_cc *c, const json_t *s, uint32_t idx, int depth);

/* Node index for schema s (a fresh node, or the shared one of a $ref target). */
static int
compile(struct jg_cc *c, const json_t *s, int depth, uint32_t *out)
{
    if (depth > JG_MAX_COMPILE_DEPTH)
        return al_errf(c->e, AL_ELIMIT, "schema: nested deeper than %d", JG_MAX_COMPILE_DEPTH);
    if (json_is_true(s)) {
        *out = 0;
        return 0;
    }
    if (!json_is_object(s))
        return al_errf(c->e, AL_EUNSUPPORTED, "schema: a schema must be an object or true");
    const json_t *ref = json_object_get(s, "$ref");
    if (ref) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)s, k, v) {
            if (strcmp(k, "$ref") != 0 && !is_annotation(k))
                return al_errf(c->e, AL_EUNSUPPORTED, "schema: \"%.64s\" beside $ref", k);
        }
        if (!json_is_string(ref))
            return al_errf(c->e, AL_EFORMAT, "schema: $ref must be a string");
        const json_t *target;
        if (resolve_ref(c, json_string_value(ref), &target) != 0)
            return -1;
        for (uint32_t i = 0; i < c->n_refs; i++) {
            if (c->refs[i].target == target) {
                *out = c->refs[i].node;
                return 0;
            }
        }
        if (c->n_refs >= JG_MAX_REFS)
            return al_errf(c->e, AL_ELIMIT, "schema: more than %d $ref targets", JG_MAX_REFS);
        if (json_is_true(target)) {
            *out = 0;
            return 0;
        }
        uint32_t idx;
        if (new_node(c, &idx) != 0)
            return -1;
        c->refs = xrealloc(c->refs, (c->n_refs + 1) * sizeof *c->refs);
        c->refs[c->n_refs].target = target;
        c->refs[c->n_refs].node = idx;
        c->n_refs++;
        *out = idx;
        return compile_into(c, target, idx, depth + 1);
    }
    uint32_t idx;
    if (new_node(c, &idx) != 0)
        return -1;
    *out = idx;
    return compile_into(c, s, idx, depth);
}

static int
get_count(struct jg_cc *c, const json_t *s, const char *key, uint32_t dflt, uint32_t *out)
{
    const json_t *v = json_object_get(s, key);
    *out = dflt;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return al_errf(c->e, AL_EFORMAT, "schema: %s must be a non-negative integer", key);
    json_int_t x = json_integer_value(v);
    *out = x > 0x7fffffff ? 0x7fffffff : (uint32_t)x;
    return 0;
}

#define JG_MAX_ALTS 64 /* alternatives of one anyOf/oneOf, after flattening */

/* Only literals (enum, const, true/false/null types)? */
static bool
literal_like(const struct jg_node *n)
{
    return n->alt_n == 0 && n->lit_n > 0 &&
           (n->lits_only || (n->types & ~(uint32_t)(T_BOOL | T_NULL)) == 0);
}

/* Alternatives that are all literals become one literal node, so anyOf [{"const":"a"},
 * {"const":"b"}, {"type":"null"}] reads like one enum instead of forking three ways. */
static int
merge_literal_alts(struct jg_cc *c, uint32_t *alts, size_t *n)
{
    struct jgram *g = c->g;
    size_t nlit = 0, first = 0;
    for (size_t i = 0; i < *n; i++) {
        if (!literal_like(&g->nodes[alts[i]]))
            continue;
        if (nlit == 0)
            first = i;
        nlit++;
    }
    if (nlit < 2)
        return 0;
    uint32_t m;
    if (new_node(c, &m) != 0)
        return -1;
    uint32_t lo = g->n_lits;
    for (size_t i = 0; i < *n; i++) {
        const struct jg_node *a = &g->nodes[alts[i]];
        if (!literal_like(a))
            continue;
        for (uint32_t k = 0; k < a->lit_n; k++) {
            /* copy first: add_lit may move g->lits */
            char *dup = xstrndup(g->lits[a->lit_lo + k].s, g->lits[a->lit_lo + k].len);
            size_t len = g->lits[a->lit_lo + k].len;
            int rc = add_lit(c, dup, len, "anyOf");
            free(dup);
            if (rc != 0)
                return -1;
        }
    }
    g->nodes[m].lits_only = true;
    g->nodes[m].lit_lo = lo;
    g->nodes[m].lit_n = lits_sort_unique(g, lo, g->n_lits - lo);
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (i == first)
            alts[w++] = m;
        else if (!literal_like(&g->nodes[alts[i]]))
            alts[w++] = alts[i];
    }
    *n = w;
    return 0;
}

/* Alternatives that are themselves finished anyOf nodes are spliced in, and repeats dropped,
 * so that one level of forking covers non-recursive nesting. */
static int
compile_alts(struct jg_cc *c, const json_t *arr, const char *kw, uint32_t idx, int depth)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0)
        return al_errf(c->e, AL_EFORMAT, "schema: %s must be a non-empty array", kw);
    uint32_t tmp[JG_MAX_ALTS];
    size_t nt = 0;
    struct jgram *g = c->g;
    for (size_t i = 0; i < n; i++) {
        uint32_t a;
        if (compile(c, json_array_get(arr, i), depth + 1, &a) != 0)
            return -1;
        const struct jg_node *an = &g->nodes[a];
        uint32_t lo = an->alt_n ? an->alt_lo : 0, cnt = an->alt_n ? an->alt_n : 1;
        for (uint32_t k = 0; k < cnt; k++) {
            uint32_t x = an->alt_n ? g->alts[lo + k] : a;
            bool seen = false;
            for (size_t j = 0; j < nt && !seen; j++)
                seen = tmp[j] == x;
            if (seen)
                continue;
            if (nt == JG_MAX_ALTS)
                return al_errf(c->e, AL_ELIMIT, "schema: %s: more than %d alternatives", kw,
                               JG_MAX_ALTS);
            tmp[nt++] = x;
        }
    }
    if (merge_literal_alts(c, tmp, &nt) != 0)
        return -1;
    if (g->n_alts + nt > JG_MAX_NODES)
        return al_errf(c->e, AL_ELIMIT, "schema: too many %s alternatives", kw);
    if (g->n_alts + nt > c->cap_alts) {
        c->cap_alts = (g->n_alts + (uint32_t)nt) * 2;
        g->alts = xrealloc(g->alts, c->cap_alts * sizeof *g->alts);
    }
    memcpy(g->alts + g->n_alts, tmp, nt * sizeof tmp[0]);
    g->nodes[idx].alt_lo = g->n_alts;
    g->nodes[idx].alt_n = (uint32_t)nt;
    g->n_alts += (uint32_t)nt;
    return 0;
}

static int
compile_props(struct jg_cc *c, const json_t *s, uint32_t idx, int depth)
{
    const json_t *props = json_object_get(s, "properties");
    const json_t *req = json_object_get(s, "required");
    struct jgram *g = c->g;
    if (props && !json_is_object(props))
        return al_errf(c->e, AL_EFORMAT, "schema: properties must be an object");
    if (req && !json_is_array(req))
        return al_errf(c->e, AL_EFORMAT, "schema: required must be an array");
    size_t np = props ? json_object_size(props) : 0;
    /* required names missing from properties become extra properties of any value */
    size_t nreq = req ? json_array_size(req) : 0;
    for (size_t i = 0; i < nreq; i++)
        if (!json_is_string(json_array_get(req, i)))
            return al_errf(c->e, AL_EFORMAT, "schema: required[%zu] must be a string", i);
    if (np + nreq + g->n_props > JG_MAX_PROPS)
        return al_errf(c->e, AL_ELIMIT, "schema: more than %d properties", JG_MAX_PROPS);
    /* compile the value schemas first: they may add properties of their own */
    uint32_t *vals = xcalloc(np + nreq + 1, sizeof *vals);
    char **names = xcalloc(np + nreq + 1, sizeof *names);
    bool *isreq = xcalloc(np + nreq + 1, sizeof *isreq);
    size_t n = 0;
    int rc = -1;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)props, k, v) {
        if (compile(c, v, depth + 1, &vals[n]) != 0)
            goto out;
        names[n++] = (char *)k;
    }
    for (size_t i = 0; i < nreq; i++) {
        const char *r = json_string_value(json_array_get(req, i));
        size_t j;
        for (j = 0; j < n; j++)
            if (strcmp(names[j], r) == 0)
                break;
        if (j == n) {
            names[n] = (char *)r;
            vals[n++] = 0;
        }
        isreq[j] = true;
    }
    if (g->n_props + n > JG_MAX_PROPS) {
        al_errf(c->e, AL_ELIMIT, "schema: more than %d properties", JG_MAX_PROPS);
        goto out;
    }
    if (g->n_props + n > c->cap_props) {
        c->cap_props = (g->n_props + (uint32_t)n) * 2;
        g->props = xrealloc(g->props, c->cap_props * sizeof *g->props);
    }
    g->nodes[idx].prop_lo = g->n_props;
    g->nodes[idx].prop_n = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        json_t *js = json_string(names[i]);
        char *key = js ? json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        json_decref(js);
        if (!key || strlen(key) > JG_MAX_LIT_LEN) {
            free(key);
            al_errf(c->e, AL_ELIMIT, "schema: property name \"%.32s\" too long or not UTF-8",
                    names[i]);
            goto out;
        }
        struct jg_prop *p = &g->props[g->n_props++];
        p->key = key;
        p->key_len = (uint32_t)strlen(key);
        p->node = vals[i];
        p->required = isreq[i];
    }
    uint32_t nr = (uint32_t)n;
    for (size_t i = n; i-- > 0;) {
        struct jg_prop *p = &g->props[g->nodes[idx].prop_lo + i];
        if (p->required)
            nr = (uint32_t)i;
        p->next_req = nr;
    }
    rc = 0;
out:
    free(vals);
    free(names);
    free(isreq);
    return rc;
}

static const char *const known_keywords[] = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "minItems", "maxItems", "minLength", "maxLength", "anyOf", "oneOf", NULL,
};

static int
compile_into(struct jg_cc *c, const json_t *s, uint32_t idx, int depth)
{
    struct jgram *g = c->g;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        bool known = is_annotation(k);
        for (size_t i = 0; !known && known_keywords[i]; i++)
            known = strcmp(k, known_keywords[i]) == 0;
        if (!known)
            return al_errf(c->e, AL_EUNSUPPORTED, "schema: keyword \"%.64s\" is not supported",
                           k);
    }
    const json_t *any = json_object_get(s, "anyOf");
    const json_t *one = json_object_get(s, "oneOf");
    if (any || one) {
        json_object_foreach((json_t *)s, k, v) {
            if (strcmp(k, "anyOf") != 0 && strcmp(k, "oneOf") != 0 && !is_annotation(k))
                return al_errf(c->e, AL_EUNSUPPORTED, "schema: \"%.64s\" beside %s", k,
                               any ? "anyOf" : "oneOf");
        }
        if (any && one)
            return al_errf(c->e, AL_EUNSUPPORTED, "schema: anyOf together with oneOf");
        return compile_alts(c, any ? any : one, any ? "anyOf" : "oneOf", idx, depth);
    }

    uint32_t types = 0;
    const json_t *type = json_object_get(s, "type");
    if (json_is_string(type)) {
        types = (uint32_t)type_bit(json_string_value(type));
        if (!types)
            return al_errf(c->e, AL_EFORMAT, "schema: unknown type \"%.32s\"",
                           json_string_value(type));
    } else if (json_is_array(type)) {
        size_t i;
        json_t *t;
        json_array_foreach(type, i, t) {
            int b = json_is_string(t) ? type_bit(json_string_value(t)) : 0;
            if (!b)
                return al_errf(c->e, AL_EFORMAT, "schema: type[%zu] is not a JSON type", i);
            types |= (uint32_t)b;
        }
        if (!types)
            return al_errf(c->e, AL_EFORMAT, "schema: type is an empty list");
    } else if (type) {
        return al_errf(c->e, AL_EFORMAT, "schema: type must be a string or a list");
    } else if (json_object_get(s, "properties") || json_object_get(s, "required")) {
        types = T_OBJ;
    } else if (json_object_get(s, "items") || json_object_get(s, "minItems") ||
               json_object_get(s, "maxItems")) {
        types = T_ARR;
    } else {
        types = T_ALL;
    }
    if (types & T_NUM)
        types |= T_INT;

    const json_t *en = json_object_get(s, "enum");
    const json_t *cn = json_object_get(s, "const");
    uint32_t lit_lo = g->n_lits;
    if (en || cn) {
        if (en && (!json_is_array(en) || json_array_size(en) == 0))
            return al_errf(c->e, AL_EFORMAT, "schema: enum must be a non-empty array");
        if (cn && add_value_lit(c, cn, "const") != 0)
            return -1;
        if (en && !cn) {
            size_t i;
            json_t *x;
            json_array_foreach(en, i, x) {
                if (add_value_lit(c, x, "enum") != 0)
                    return -1;
            }
        }
        g->nodes[idx].lits_only = true;
    } else {
        if ((types & T_BOOL) && (add_lit(c, "true", 4, "type") != 0 ||
                                 add_lit(c, "false", 5, "type") != 0))
            return -1;
        if ((types & T_NULL) && add_lit(c, "null", 4, "type") != 0)
            return -1;
    }
    g->nodes[idx].lit_lo = lit_lo;
    g->nodes[idx].lit_n = lits_sort_unique(g, lit_lo, g->n_lits - lit_lo);
    g->nodes[idx].types = types;
    if (g->nodes[idx].lits_only)
        return 0;

    if (types & T_OBJ) {
        const json_t *ap = json_object_get(s, "additionalProperties");
        if (ap && !json_is_boolean(ap) && !json_is_object(ap))
            return al_errf(c->e, AL_EFORMAT, "schema: additionalProperties must be a boolean "
                           "or a schema");
        bool has_props = json_object_get(s, "properties") || json_object_get(s, "required");
        if (has_props) {
            if (compile_props(c, s, idx, depth) != 0)
                return -1;
        } else if (!json_is_false(ap)) {
            /* no properties named: any keys, values as additionalProperties says */
            uint32_t fv = 0;
            if (json_is_object(ap) && compile(c, ap, depth + 1, &fv) != 0)
                return -1;
            g->nodes[idx].free_obj = true;
            g->nodes[idx].free_val = fv;
        }
    }
    if (types & T_STR) {
        uint32_t mn, mx;
        if (get_count(c, s, "minLength", 0, &mn) != 0 ||
            get_count(c, s, "maxLength", UINT32_MAX, &mx) != 0)
            return -1;
        if (mn > mx)
            return al_errf(c->e, AL_ELIMIT, "schema: minLength %u is above maxLength %u", mn, mx);
        if (mn > g->lim.max_string)
            return al_errf(c->e, AL_ELIMIT, "schema: minLength %u is above the string limit %u",
                           mn, g->lim.max_string);
        g->nodes[idx].min_len = mn;
        g->nodes[idx].max_len = mx;
    }
    if (types & T_ARR) {
        const json_t *items = json_object_get(s, "items");
        uint32_t it = 0;
        if (items && compile(c, items, depth + 1, &it) != 0)
            return -1;
        uint32_t mn, mx;
        if (get_count(c, s, "minItems", 0, &mn) != 0 ||
            get_count(c, s, "maxItems", g->lim.max_items, &mx) != 0)
            return -1;
        if (mx > g->lim.max_items)
            mx = g->lim.max_items;
        if (mn > mx)
            return al_errf(c->e, AL_ELIMIT, "schema: minItems %u is above maxItems %u (or the "
                           "item limit)", mn, mx);
        g->nodes[idx].items = it;
        g->nodes[idx].min_items = mn;
        g->nodes[idx].max_items = mx;
    }
    return 0;
}

static uint32_t
sat_add(uint32_t a, uint32_t b)
{
    uint32_t s = a + b;
    return s >= JG_INF ? JG_INF : s;
}

/* Fewest frames each node needs, to a fixpoint (recursive schemas converge or stay JG_INF). */
static void
compute_min_depth(struct jgram *g)
{
    for (uint32_t i = 0; i < g->n_nodes; i++)
        g->nodes[i].md = g->nodes[i].md_obj = g->nodes[i].md_arr = JG_INF;
    bool changed = true;
    for (uint32_t iter = 0; changed && iter <= g->n_nodes + 1; iter++) {
        changed = false;
        for (uint32_t i = 0; i < g->n_nodes; i++) {
            struct jg_node *n = &g->nodes[i];
            uint32_t m = JG_INF, mo = JG_INF, ma = JG_INF;
            if (n->alt_n) {
                for (uint32_t a = 0; a < n->alt_n; a++) {
                    uint32_t x = g->nodes[g->alts[n->alt_lo + a]].md;
                    m = x < m ? x : m;
                }
            } else if (n->lits_only) {
                m = 1;
            } else {
                if (n->types & (T_STR | T_NUM | T_INT) || n->lit_n)
                    m = 1;
                if (n->types & T_OBJ) {
                    mo = 1;
                    for (uint32_t p = 0; p < n->prop_n; p++) {
                        const struct jg_prop *pp = &g->props[n->prop_lo + p];
                        if (pp->required)
                            mo = mo > sat_add(1, g->nodes[pp->node].md)
                                     ? mo : sat_add(1, g->nodes[pp->node].md);
                    }
                }
                if (n->types & T_ARR)
                    ma = n->min_items ? sat_add(1, g->nodes[n->items].md) : 1;
                m = mo < m ? mo : m;
                m = ma < m ? ma : m;
            }
            if (m != n->md || mo != n->md_obj || ma != n->md_arr) {
                n->md = m;
                n->md_obj = mo;
                n->md_arr = ma;
                changed = true;
            }
        }
    }
}

void
jgram_free(struct jgram *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; i < g->n_props; i++)
        free(g->props[i].key);
    for (uint32_t i = 0; i < g->n_lits; i++)
        free(g->lits[i].s);
    free(g->nodes);
    free(g->props);
    free(g->lits);
    free(g->alts);
    free(g);
}

static int
limits_fill(const struct jgram_limits *in, struct jgram_limits *out, struct al_err *e)
{
    struct jgram_limits d = {.max_string = 4096, .max_items = 1024, .max_number = 32,
                             .max_ws = 24, .max_depth = JGRAM_MAX_DEPTH};
    if (in) {
        if (in->max_string)
            d.max_string = in->max_string;
        if (in->max_items)
            d.max_items = in->max_items;
        if (in->max_number)
            d.max_number = in->max_number;
        if (in->max_ws)
            d.max_ws = in->max_ws;
        if (in->max_depth)
            d.max_depth = in->max_depth;
    }
    if (d.max_string > 65000 || d.max_items > 65000 || d.max_number > 255 || d.max_ws > 64 ||
        d.max_number < 2 || d.max_string < 12 || d.max_depth > JGRAM_MAX_DEPTH)
        return al_errf(e, AL_EUSAGE, "grammar limits out of range (max_string 12..65000, "
                       "max_items ..65000, max_number 2..255, max_ws ..64, max_depth ..%d)",
                       JGRAM_MAX_DEPTH);
    *out = d;
    return 0;
}

int
jgram_new(const json_t *schema, const struct jgram_limits *lim, struct jgram **out,
          struct al_err *e)
{
    struct jgram *g = xcalloc(1, sizeof *g);
    struct jg_cc c = {.g = g, .root = schema, .e = e};
    int rc = -1;
    *out = NULL;
    if (limits_fill(lim, &g->lim, e) != 0)
        goto out;
    uint32_t any;
    if (new_node(&c, &any) != 0)
        goto out;
    g->nodes[0].types = T_ALL;
    g->nodes[0].free_obj = true;
    g->nodes[0].items = 0;
    g->nodes[0].max_items = g->lim.max_items;
    if (add_lit(&c, "true", 4, "any") != 0 || add_lit(&c, "false", 5, "any") != 0 ||
        add_lit(&c, "null", 4, "any") != 0)
        goto out;
    g->nodes[0].lit_n = lits_sort_unique(g, 0, 3);
    if (!schema) {
        uint32_t r;
        if (new_node(&c, &r) != 0)
            goto out;
        g->nodes[r].types = T_OBJ;
        g->nodes[r].free_obj = true;
        g->root = r;
        g->root_is_object = true;
    } else if (compile(&c, schema, 0, &g->root) != 0) {
        goto out;
    }
    compute_min_depth(g);
    if (g->nodes[g->root].md > g->lim.max_depth) {
        al_errf(e, g->nodes[g->root].md == JG_INF ? AL_EUNSUPPORTED : AL_ELIMIT,
                "schema: no finite document satisfies it within %d levels of nesting",
                (int)g->lim.max_depth);
        goto out;
    }
    *out = g;
    g = NULL;
    rc = 0;
out:
    free(c.refs);
    jgram_free(g);
    return rc;
}

int
jgram_from_response_format(const json_t *rf, const struct jgram_limits *lim,
                           struct jgram **out, struct al_err *e)
{
    *out = NULL;
    if (!json_is_object(rf))
        return al_errf(e, AL_EUSAGE, "response_format must be an object");
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!type)
        return al_errf(e, AL_EUSAGE, "response_format.type must be a string");
    if (strcmp(type, "text") == 0)
        return 0;
    int rc;
    if (strcmp(type, "json_object") == 0) {
        rc = jgram_new(NULL, lim, out, e);
    } else if (strcmp(type, "json_schema") == 0) {
        const json_t *js = json_object_get(rf, "json_schema");
        if (!json_is_object(js))
            return al_errf(e, AL_EUSAGE, "response_format.json_schema must be an object");
        const json_t *schema = json_object_get(js, "schema");
        if (!schema)
            return al_errf(e, AL_EUSAGE, "response_format.json_schema.schema is missing");
        rc = jgram_new(schema, lim, out, e);
    } else {
        return al_errf(e, AL_EUSAGE, "response_format.type \"%.32s\" is not one of text, "
                       "json_object, json_schema", type);
    }
    if (rc != 0) {
        /* a schema the server cannot enforce is the client's problem: 400 */
        if (e)
            e->code = AL_EUSAGE;
        return al_errctx(e, "response_format");
    }
    return 0;
}

/* ===== Recogniser ====================================================================== */

enum phase {
    P_VALUE,      /* before a value: whitespace, then its first byte */
    P_LIT,        /* inside an enum/const/true/false/null literal: v = lo | hi << 16, n = pos */
    P_STR,        /* inside a free string: n = body bytes, sub = enum str_state */
    P_NUM,        /* inside a number: n = chars, sub = enum num_state */
    P_OBJ_FIRST,  /* after '{' */
    P_OBJ_KEY,    /* inside a schema key: n = next property, v = candidate | pos << 16 */
    P_OBJ_COLON,  /* after a key: n = next property (schema) or members (free), v = property */
    P_OBJ_AFTER,  /* after a member's value */
    P_OBJ_NEXT,   /* after ',' in an object */
    P_ARR_FIRST,  /* after '[': n = items so far */
    P_ARR_AFTER,  /* after an item */
    P_ARR_NEXT,   /* after ',' in an array */
};

/* String body states; 0..7 double as the UTF-8 contexts of the vocabulary fast path. */
enum str_state {
    S_CH,       /* at a character boundary */
    S_U1,       /* one continuation byte 80-BF missing */
    S_U2,       /* two missing, any */
    S_U2_E0,    /* two missing, first A0-BF (no overlong) */
    S_U2_ED,    /* two missing, first 80-9F (no surrogates) */
    S_U3,       /* three missing, any */
    S_U3_F0,    /* three missing, first 90-BF */
    S_U3_F4,    /* three missing, first 80-8F (<= U+10FFFF) */
    S_ESC,      /* after '\' */
    S_HEX,      /* k & 7 digits of \uXXXX read into v; k & 8: this is the low surrogate */
    S_LOW_BS,   /* high surrogate read: '\' of the low one expected */
    S_LOW_U,    /* ... then 'u' */
};
#define N_UTF8_CTX 8

enum num_state { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

enum feed_result {
    F_FAIL,
    F_OK,          /* consumed, frame stays */
    F_DONE,        /* consumed, value complete: pop */
    F_POP_REFEED,  /* value complete before this byte: pop, give the byte to the parent */
    F_PUSHED,      /* a child frame was pushed: give it the byte */
    F_FORKED,      /* the byte went to copies of the thread; drop this one */
};

static bool
is_ws(uint8_t b)
{
    return b == ' ' || b == '\n' || b == '\t' || b == '\r'; /* '\r' only to refuse it */
}

/* UTF-8 step for string bodies: next state, or -1. Only states S_CH..S_U3_F4. */
static int
utf8_step(int st, uint8_t b)
{
    switch (st) {
    case S_CH:
        if (b < 0x80)
            return S_CH;
        if (b >= 0xc2 && b <= 0xdf)
            return S_U1;
        if (b == 0xe0)
            return S_U2_E0;
        if (b == 0xed)
            return S_U2_ED;
        if (b >= 0xe1 && b <= 0xef)
            return S_U2;
        if (b == 0xf0)
            return S_U3_F0;
        if (b >= 0xf1 && b <= 0xf3)
            return S_U3;
        if (b == 0xf4)
            return S_U3_F4;
        return -1;
    case S_U1:
        return b >= 0x80 && b <= 0xbf ? S_CH : -1;
    case S_U2:
        return b >= 0x80 && b <= 0xbf ? S_U1 : -1;
    case S_U2_E0:
        return b >= 0xa0 && b <= 0xbf ? S_U1 : -1;
    case S_U2_ED:
        return b >= 0x80 && b <= 0x9f ? S_U1 : -1;
    case S_U3:
        return b >= 0x80 && b <= 0xbf ? S_U2 : -1;
    case S_U3_F0:
        return b >= 0x90 && b <= 0xbf ? S_U2 : -1;
    case S_U3_F4:
        return b >= 0x80 && b <= 0x8f ? S_U2 : -1;
    default:
        return -1;
    }
}

/* A byte of plain string text: no quote, backslash or control byte; UTF-8 checked apart. */
static int
plain_step(int st, uint8_t b)
{
    if (b == '"' || b == '\\' || b < 0x20)
        return -1;
    return utf8_step(st, b);
}

static int
hexval(uint8_t b)
{
    if (b >= '0' && b <= '9')
        return b - '0';
    if (b >= 'a' && b <= 'f')
        return b - 'a' + 10;
    if (b >= 'A' && b <= 'F')
        return b - 'A' + 10;
    return -1;
}

/* Fewest bytes that can finish a \u escape whose first k digits are v (after low: the low half
 * of a pair), or -1 when none can: \u0000 and unpaired surrogates break jansson's parser. */
static int
hex_need(uint32_t v, int k, bool low)
{
    uint32_t span = 1u << (4 * (4 - k));
    uint32_t lo = v * span, hi = lo + span - 1;
    if (low)
        return lo <= 0xdfff && hi >= 0xdc00 ? 4 - k : -1;
    /* a single code unit: 0001-D7FF or E000-FFFF */
    bool single = (lo <= 0xd7ff && hi >= 1) || hi >= 0xe000;
    if (single)
        return 4 - k;
    if (lo <= 0xdbff && hi >= 0xd800)
        return 4 - k + 6;
    return -1;
}

/* One byte of a string body. f->v holds the characters started so far (high 16 bits, for
 * minLength/maxLength) and the \u digits read (low 16 bits); f->k the digit count. */
static int
str_feed(const struct jgram *g, struct jgram_frame *f, uint8_t b)
{
    const struct jg_node *nd = &g->nodes[f->node];
    uint32_t chars = f->v >> 16, hex = f->v & 0xffff;
    int st = f->sub;
    int next;
    uint32_t need;   /* bytes that must still follow to finish the current character */
    uint8_t k = 0;
    switch (st) {
    case S_CH:
        if (b == '"')
            return chars >= nd->min_len ? F_DONE : F_FAIL;
        /* any other byte starts a character */
        if (chars >= nd->max_len)
            return F_FAIL;
        chars++;
        if (b == '\\') {
            next = S_ESC;
            need = 1;
            break;
        }
        /* fallthrough */
    case S_U1: case S_U2: case S_U2_E0: case S_U2_ED: case S_U3: case S_U3_F0: case S_U3_F4:
        next = plain_step(st, b);
        if (next < 0)
            return F_FAIL;
        /* S_U1 needs 1, S_U2* 2, S_U3* 3 */
        need = next == S_CH ? 0 : next == S_U1 ? 1 : next <= S_U2_ED ? 2 : 3;
        break;
    case S_ESC:
        if (b == 'u') {
            next = S_HEX;
            need = 4;
            hex = 0;
            break;
        }
        if (!strchr("\"\\/bfnrt", b) || b == 0)
            return F_FAIL;
        next = S_CH;
        need = 0;
        break;
    case S_HEX: {
        int d = hexval(b);
        if (d < 0)
            return F_FAIL;
        bool low = f->k & 8;
        int nk = (f->k & 7) + 1;
        uint32_t v = hex * 16 + (uint32_t)d;
        int hn = hex_need(v, nk, low);
        if (hn < 0)
            return F_FAIL;
        need = (uint32_t)hn;
        if (nk < 4) {
            next = S_HEX;
            k = (uint8_t)(nk | (low ? 8 : 0));
            hex = v;
        } else {
            next = (!low && v >= 0xd800 && v <= 0xdbff) ? S_LOW_BS : S_CH;
            hex = 0;
        }
        break;
    }
    case S_LOW_BS:
        if (b != '\\')
            return F_FAIL;
        next = S_LOW_U;
        need = 5;
        break;
    case S_LOW_U:
        if (b != 'u')
            return F_FAIL;
        next = S_HEX;
        need = 4;
        k = 8;
        hex = 0;
        break;
    default:
        return F_FAIL;
    }
    if (chars < nd->min_len)
        need += nd->min_len - chars; /* one byte per missing character */
    if ((uint32_t)f->n + 1 + need > g->lim.max_string)
        return F_FAIL;
    f->n++;
    f->sub = (uint8_t)next;
    f->k = k;
    f->v = chars << 16 | hex;
    return F_OK;
}

static bool
num_terminal(int st)
{
    return st == N_ZERO || st == N_INT || st == N_FRAC || st == N_EXP;
}

static int
num_step(int st, uint8_t b, bool integer)
{
    bool digit = b >= '0' && b <= '9';
    switch (st) {
    case N_MINUS:
        return b == '0' ? N_ZERO : digit ? N_INT : -1;
    case N_ZERO:
    case N_INT:
        if (digit && st == N_INT)
            return N_INT;
        if (integer)
            return -1;
        if (b == '.')
            return N_DOT;
        if (b == 'e' || b == 'E')
            return N_E;
        return -1;
    case N_DOT:
    case N_FRAC:
        if (digit)
            return N_FRAC;
        if (st == N_FRAC && (b == 'e' || b == 'E'))
            return N_E;
        return -1;
    case N_E:
        if (b == '+' || b == '-')
            return N_ESIGN;
        /* fallthrough */
    case N_ESIGN:
    case N_EXP:
        return digit ? N_EXP : -1;
    default:
        return -1;
    }
}

/* Does literal range [lo, hi) of node lits have a complete one at pos? The shortest sorts
 * first, so only lo can be. */
static bool
lit_complete(const struct jgram *g, uint32_t lo, uint32_t pos)
{
    return g->lits[lo].len == pos;
}

static int
lit_feed(const struct jgram *g, struct jgram_frame *f, uint8_t b)
{
    uint32_t lo = f->v & 0xffff, hi = f->v >> 16, pos = f->n;
    uint32_t nlo = hi, nhi = hi;
    for (uint32_t i = lo; i < hi; i++) {
        const struct jg_lit *l = &g->lits[i];
        if (l->len > pos && (uint8_t)l->s[pos] == b) {
            if (nlo == hi)
                nlo = i;
            nhi = i + 1;
        } else if (nlo != hi) {
            break;
        }
    }
    if (nlo == hi)
        return lit_complete(g, lo, pos) ? F_POP_REFEED : F_FAIL;
    f->v = nlo | (nhi << 16);
    f->n = (uint16_t)(pos + 1);
    return F_OK;
}

/* Can a value of node fit when its frame sits at stack index i? */
static bool
fits(const struct jgram *g, uint32_t node, uint32_t i)
{
    return i + g->nodes[node].md <= g->lim.max_depth;
}

/* Smallest eligible key candidate j >= from of object node (whose frame is at index i) whose
 * key starts with the first pos bytes of ref (NULL: any) and has byte b at pos. */
static int
key_find(const struct jgram *g, const struct jg_node *nd, uint32_t i, uint32_t next,
         uint32_t from, const struct jg_prop *ref, uint32_t pos, uint8_t b)
{
    if (next >= nd->prop_n)
        return -1;
    uint32_t last = g->props[nd->prop_lo + next].next_req;
    if (last >= nd->prop_n)
        last = nd->prop_n - 1;
    for (uint32_t j = from; j <= last; j++) {
        const struct jg_prop *p = &g->props[nd->prop_lo + j];
        if (p->key_len <= pos || (uint8_t)p->key[pos] != b)
            continue;
        if (ref && memcmp(p->key, ref->key, pos) != 0)
            continue;
        if (!fits(g, p->node, i + 1))
            continue;
        return (int)j;
    }
    return -1;
}

static void
push(struct jgram_thread *t, uint32_t node, uint8_t phase, uint8_t ws)
{
    t->f[t->depth] = (struct jgram_frame){.node = (uint16_t)node, .phase = phase, .ws = ws};
    t->depth++;
}

/* First byte of a value of f's node (not whitespace, no alternatives). */
static int
value_start(const struct jgram *g, struct jgram_thread *t, struct jgram_frame *f, uint8_t b)
{
    const struct jg_node *nd = &g->nodes[f->node];
    uint32_t i = t->depth - 1;
    if (nd->lit_n) {
        uint32_t lo = nd->lit_lo, hi = nd->lit_lo + nd->lit_n;
        f->phase = P_LIT;
        f->v = lo | (hi << 16);
        f->n = 0;
        int r = lit_feed(g, f, b);
        if (r == F_OK)
            return F_OK;
        f->phase = P_VALUE;
        f->v = 0;
        if (nd->lits_only)
            return F_FAIL;
    }
    uint16_t node = f->node;
    if (b == '{' && (nd->types & T_OBJ) && i + nd->md_obj <= g->lim.max_depth) {
        *f = (struct jgram_frame){.node = node, .phase = P_OBJ_FIRST};
        return F_OK;
    }
    if (b == '[' && (nd->types & T_ARR) && i + nd->md_arr <= g->lim.max_depth) {
        *f = (struct jgram_frame){.node = node, .phase = P_ARR_FIRST};
        return F_OK;
    }
    if (b == '"' && (nd->types & T_STR)) {
        *f = (struct jgram_frame){.node = node, .phase = P_STR, .sub = S_CH};
        return F_OK;
    }
    if ((b == '-' || (b >= '0' && b <= '9')) && (nd->types & (T_NUM | T_INT))) {
        int st = num_step(N_MINUS, b, true);
        if (b == '-')
            st = N_MINUS;
        *f = (struct jgram_frame){.node = node, .phase = P_NUM, .sub = (uint8_t)st, .n = 1,
                                  .k = b != '-'};
        return F_OK;
    }
    return F_FAIL;
}

/* One gap between tokens may hold at most one space or tab, then at most one newline followed
 * by indentation (spaces and tabs), max_ws bytes in all: compact and pretty-printed JSON both
 * fit, while runs of blank lines, which small models fall into, do not. f->ws: bit 7 = newline
 * seen, bits 0-6 = bytes so far. */
static int
ws_take(const struct jgram *g, struct jgram_frame *f, uint8_t b)
{
    uint8_t nl = f->ws & 0x80, count = f->ws & 0x7f;
    if (count >= g->lim.max_ws)
        return F_FAIL;
    if (b == '\n') {
        if (nl)
            return F_FAIL;
        f->ws = (uint8_t)(0x80 | (count + 1));
        return F_OK;
    }
    if ((b != ' ' && b != '\t') || (!nl && count > 0))
        return F_FAIL;
    f->ws = (uint8_t)(nl | (count + 1));
    return F_OK;
}

/* Bounds the work one byte can cause through anyOf forks (recursive alternatives would
 * otherwise multiply): each fork level is counted, and so is each copy made. */
struct fork_ctx {
    int level;   /* anyOf expansions above this call */
    int *budget; /* copies left for this byte, shared by the whole step */
};

static void thread_feed(const struct jgram *g, struct jgram_thread *t, uint8_t b,
                        struct jgram_state *out, struct fork_ctx fk);

/* Offer byte b to the innermost frame of t. */
static int
frame_feed(const struct jgram *g, struct jgram_thread *t, uint8_t b, struct jgram_state *out,
           struct fork_ctx fk)
{
    uint32_t i = t->depth - 1;
    struct jgram_frame *f = &t->f[i];
    const struct jg_node *nd = &g->nodes[f->node];
    switch (f->phase) {
    case P_VALUE:
        if (is_ws(b))
            return ws_take(g, f, b);
        if (nd->alt_n) {
            if (fk.level >= JG_MAX_FORK)
                return F_FAIL;
            struct fork_ctx sub = {.level = fk.level + 1, .budget = fk.budget};
            /* plain alternatives first, so a tight budget is spent on them before recursion */
            for (uint32_t a = 0; a < 2 * nd->alt_n; a++) {
                uint32_t alt = g->alts[nd->alt_lo + a % nd->alt_n];
                if ((a < nd->alt_n) != (g->nodes[alt].alt_n == 0) || !fits(g, alt, i))
                    continue;
                if (*fk.budget <= 0)
                    break;
                --*fk.budget;
                struct jgram_thread c;
                c.depth = t->depth;
                memcpy(c.f, t->f, t->depth * sizeof t->f[0]);
                c.f[i].node = (uint16_t)alt;
                thread_feed(g, &c, b, out, sub);
            }
            return F_FORKED;
        }
        return value_start(g, t, f, b);
    case P_LIT:
        return lit_feed(g, f, b);
    case P_STR:
        return str_feed(g, f, b);
    case P_NUM: {
        bool integer = !(nd->types & T_NUM);
        int st = num_step(f->sub, b, integer);
        if (st < 0)
            return num_terminal(f->sub) ? F_POP_REFEED : F_FAIL;
        uint32_t len = (uint32_t)f->n + 1;
        if (len + (num_terminal(st) ? 0 : 1) > g->lim.max_number)
            return F_FAIL;
        /* k counts integer-part digits, v exponent digits: parsers such as jansson refuse
         * integers beyond int64 and reals beyond double, so keep well inside both */
        if (st == N_INT || st == N_ZERO) {
            if (f->k >= JG_MAX_INT_DIGITS)
                return F_FAIL;
            f->k++;
        } else if (st == N_EXP) {
            if (f->v >= JG_MAX_EXP_DIGITS)
                return F_FAIL;
            f->v++;
        }
        f->n = (uint16_t)len;
        f->sub = (uint8_t)st;
        return F_OK;
    }
    case P_OBJ_FIRST:
    case P_OBJ_NEXT:
        if (is_ws(b))
            return ws_take(g, f, b);
        if (b == '}' && f->phase == P_OBJ_FIRST) {
            if (!nd->free_obj && nd->prop_n && g->props[nd->prop_lo].next_req < nd->prop_n)
                return F_FAIL;
            return F_DONE;
        }
        if (b != '"')
            return F_FAIL;
        if (nd->free_obj) {
            if (f->n >= g->lim.max_items || !fits(g, nd->free_val, i + 1))
                return F_FAIL;
            f->n++;
            f->phase = P_OBJ_COLON;
            f->ws = 0;
            t->f[t->depth++] = (struct jgram_frame){.node = 0, .phase = P_STR, .sub = S_CH};
            return F_OK;
        } else {
            int j = key_find(g, nd, i, f->n, f->n, NULL, 0, '"');
            if (j < 0)
                return F_FAIL;
            f->phase = P_OBJ_KEY;
            f->ws = 0;
            f->v = (uint32_t)j | (1u << 16);
            return F_OK;
        }
    case P_OBJ_KEY: {
        uint32_t cand = f->v & 0xffff, pos = f->v >> 16;
        const struct jg_prop *ref = &g->props[nd->prop_lo + cand];
        int j = key_find(g, nd, i, f->n, cand, ref, pos, b);
        if (j < 0)
            return F_FAIL;
        const struct jg_prop *p = &g->props[nd->prop_lo + j];
        if (pos + 1 == p->key_len) {
            f->phase = P_OBJ_COLON;
            f->n = (uint16_t)(j + 1);
            f->v = (uint32_t)j;
        } else {
            f->v = (uint32_t)j | ((pos + 1) << 16);
        }
        return F_OK;
    }
    case P_OBJ_COLON: {
        if (is_ws(b))
            return ws_take(g, f, b);
        if (b != ':')
            return F_FAIL;
        uint32_t child = nd->free_obj ? nd->free_val : g->props[nd->prop_lo + f->v].node;
        f->phase = P_OBJ_AFTER;
        f->ws = 0;
        push(t, child, P_VALUE, 0);
        return F_OK;
    }
    case P_OBJ_AFTER:
        if (is_ws(b))
            return ws_take(g, f, b);
        if (b == '}') {
            if (!nd->free_obj && f->n < nd->prop_n && g->props[nd->prop_lo + f->n].next_req <
                nd->prop_n)
                return F_FAIL;
            return F_DONE;
        }
        if (b != ',')
            return F_FAIL;
        if (nd->free_obj ? (f->n >= g->lim.max_items || !fits(g, nd->free_val, i + 1))
                         : key_find(g, nd, i, f->n, f->n, NULL, 0, '"') < 0)
            return F_FAIL;
        f->phase = P_OBJ_NEXT;
        f->ws = 0;
        return F_OK;
    case P_ARR_FIRST:
    case P_ARR_NEXT:
        if (is_ws(b))
            return ws_take(g, f, b);
        if (b == ']' && f->phase == P_ARR_FIRST) {
            if (nd->min_items > 0)
                return F_FAIL;
            return F_DONE;
        }
        if (f->n >= nd->max_items || !fits(g, nd->items, i + 1))
            return F_FAIL;
        f->n++;
        f->phase = P_ARR_AFTER;
        {
            uint8_t ws = f->ws;
            f->ws = 0;
            push(t, nd->items, P_VALUE, ws);
        }
        return F_PUSHED;
    case P_ARR_AFTER:
        if (is_ws(b))
            return ws_take(g, f, b);
        if (b == ']') {
            if (f->n < nd->min_items)
                return F_FAIL;
            return F_DONE;
        }
        if (b != ',' || f->n >= nd->max_items || !fits(g, nd->items, i + 1))
            return F_FAIL;
        f->phase = P_ARR_NEXT;
        f->ws = 0;
        return F_OK;
    default:
        return F_FAIL;
    }
}

static void
state_add(struct jgram_state *out, const struct jgram_thread *t)
{
    for (uint32_t i = 0; i < out->n_threads; i++) {
        const struct jgram_thread *o = &out->t[i];
        if (o->depth == t->depth && memcmp(o->f, t->f, t->depth * sizeof t->f[0]) == 0)
            return;
    }
    if (out->n_threads >= JGRAM_MAX_THREADS)
        return; /* keep the first parses: each alone can still finish a valid document */
    struct jgram_thread *d = &out->t[out->n_threads++];
    d->depth = t->depth;
    memcpy(d->f, t->f, t->depth * sizeof t->f[0]);
}

/* Feed b to t (scratch, modified); every surviving parse is added to out. */
static void
thread_feed(const struct jgram *g, struct jgram_thread *t, uint8_t b, struct jgram_state *out,
            struct fork_ctx fk)
{
    for (;;) {
        if (t->depth == 0)
            return; /* the document is complete: nothing may follow */
        switch (frame_feed(g, t, b, out, fk)) {
        case F_OK:
            state_add(out, t);
            return;
        case F_DONE:
            t->depth--;
            state_add(out, t);
            return;
        case F_POP_REFEED:
            t->depth--;
            continue;
        case F_PUSHED:
            continue;
        default: /* F_FAIL, F_FORKED */
            return;
        }
    }
}

/* out = in advanced by b; false when no parse survives (out is then garbage). */
static bool
state_step(const struct jgram *g, const struct jgram_state *in, uint8_t b,
           struct jgram_state *out)
{
    int budget = JG_FORK_BUDGET;
    out->n_threads = 0;
    for (uint32_t i = 0; i < in->n_threads; i++) {
        struct jgram_thread t;
        t.depth = in->t[i].depth;
        memcpy(t.f, in->t[i].f, t.depth * sizeof t.f[0]);
        thread_feed(g, &t, b, out, (struct fork_ctx){.level = 0, .budget = &budget});
    }
    return out->n_threads > 0;
}

void
jgram_state_init(const struct jgram *g, struct jgram_state *st)
{
    memset(st, 0, sizeof *st);
    st->n_threads = 1;
    st->t[0].depth = 1;
    st->t[0].f[0] = (struct jgram_frame){.node = (uint16_t)g->root, .phase = P_VALUE};
}

bool
jgram_state_feed(const struct jgram *g, struct jgram_state *st, const char *bytes, size_t n)
{
    if (n == 0)
        return true;
    struct jgram_state buf_a, buf_b; /* about 3 KiB each */
    struct jgram_state *a = &buf_a, *b = &buf_b;
    const struct jgram_state *cur = st;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        ok = state_step(g, cur, (uint8_t)bytes[i], a);
        cur = a;
        struct jgram_state *tmp = a;
        a = b;
        b = tmp;
    }
    if (ok) {
        st->n_threads = cur->n_threads;
        for (uint32_t i = 0; i < cur->n_threads; i++) {
            st->t[i].depth = cur->t[i].depth;
            memcpy(st->t[i].f, cur->t[i].f, cur->t[i].depth * sizeof cur->t[i].f[0]);
        }
    }
    return ok;
}

static bool
thread_done(const struct jgram *g, const struct jgram_thread *t)
{
    if (t->depth == 0)
        return true;
    if (t->depth != 1)
        return false;
    const struct jgram_frame *f = &t->f[0];
    if (f->phase == P_NUM)
        return num_terminal(f->sub);
    if (f->phase == P_LIT)
        return lit_complete(g, f->v & 0xffff, f->n);
    return false;
}

bool
jgram_state_done(const struct jgram *g, const struct jgram_state *st)
{
    for (uint32_t i = 0; i < st->n_threads; i++)
        if (thread_done(g, &st->t[i]))
            return true;
    return false;
}

bool
jgram_state_closed(const struct jgram *g, const struct jgram_state *st)
{
    for (uint32_t i = 0; i < st->n_threads; i++)
        if (st->t[i].depth != 0)
            return false;
    return true;
}

/* ===== Vocabulary trie and masking ===================================================== */

#define TRIE_NONE 0xffffffffu
#define JG_MAX_PIECE 1024 /* bytes; longer token pieces are left out of the trie */

struct trie_node {
    uint32_t first_child;  /* TRIE_NONE for a leaf */
    uint32_t next_sibling; /* TRIE_NONE for the last child; siblings in byte order */
    uint32_t sub_lo;       /* tokens of the subtree: v->order[sub_lo .. sub_hi) */
    uint32_t sub_hi;
    uint32_t own_n;        /* the first own_n of them end exactly here */
    uint16_t max_depth;    /* longest path below this node, bytes (saturates) */
    uint8_t byte;          /* edge label from the parent */
    uint8_t plain;         /* bit c: every path below is plain string text from UTF-8 ctx c */
};

struct jgram_vocab {
    const struct tokenizer *tok; /* borrowed */
    int32_t n_vocab;
    int32_t *order;        /* owned: token ids with a non-empty piece, sorted by piece */
    uint32_t n_order;
    struct trie_node *nodes; /* owned; node 0 is the root */
    uint32_t n_nodes;
    int32_t *eog;          /* owned: end-of-generation ids */
    uint32_t n_eog;
};

struct piece_ref {
    const char *p;  /* borrowed from the tokenizer */
    uint32_t len;
    int32_t id;
};

static int
piece_cmp(const void *a, const void *b)
{
    const struct piece_ref *x = a, *y = b;
    int r = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    if (r)
        return r;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static uint32_t
trie_add(struct jgram_vocab *v, uint32_t *cap, uint8_t byte, uint32_t sub_lo)
{
    if (v->n_nodes == *cap) {
        *cap *= 2;
        v->nodes = xrealloc(v->nodes, *cap * sizeof *v->nodes);
    }
    v->nodes[v->n_nodes] = (struct trie_node){.first_child = TRIE_NONE,
                                              .next_sibling = TRIE_NONE,
                                              .sub_lo = sub_lo, .sub_hi = sub_lo,
                                              .byte = byte, .plain = 0xff};
    return v->n_nodes++;
}

struct jgram_vocab *
jgram_vocab_new(const struct tokenizer *t)
{
    struct jgram_vocab *v = xcalloc(1, sizeof *v);
    v->tok = t;
    v->n_vocab = tokenizer_n_vocab(t);
    size_t nv = v->n_vocab > 0 ? (size_t)v->n_vocab : 0;
    v->order = xcalloc(nv + 1, sizeof *v->order);
    v->eog = xcalloc(nv + 1, sizeof *v->eog);
    struct piece_ref *pr = xcalloc(nv + 1, sizeof *pr);
    size_t maxlen = 0;
    for (int32_t id = 0; id < v->n_vocab; id++) {
        size_t len;
        if (tokenizer_is_eog(t, id)) {
            v->eog[v->n_eog++] = id;
            continue;
        }
        const char *p = tokenizer_piece(t, id, &len);
        /* over-long pieces are never allowed: they would only deepen the walk's stack */
        if (len == 0 || len > JG_MAX_PIECE || tokenizer_is_control(t, id))
            continue;
        pr[v->n_order++] = (struct piece_ref){.p = p, .len = (uint32_t)len, .id = id};
        maxlen = len > maxlen ? len : maxlen;
    }
    qsort(pr, v->n_order, sizeof *pr, piece_cmp);
    for (uint32_t k = 0; k < v->n_order; k++)
        v->order[k] = pr[k].id;

    uint32_t cap = 1024;
    v->nodes = xmalloc(cap * sizeof *v->nodes);
    trie_add(v, &cap, 0, 0);
    uint32_t *path = xcalloc(maxlen + 1, sizeof *path);   /* node at each depth */
    uint32_t *last = NULL;                                 /* last child of each node */
    size_t last_cap = 0;
    uint32_t *parent = NULL;
    size_t plen = 0;
    const char *prev = NULL;
    path[0] = 0;
    for (uint32_t k = 0; k < v->n_order; k++) {
        size_t len = pr[k].len;
        const char *p = pr[k].p;
        size_t l = 0;
        while (prev && l < plen && l < len && p[l] == prev[l])
            l++;
        for (size_t d = l; d < len; d++) {
            uint32_t par = path[d];
            uint32_t n = trie_add(v, &cap, (uint8_t)p[d], k);
            if (v->n_nodes > last_cap) {
                size_t nc = last_cap ? last_cap * 2 : 1024;
                last = xrealloc(last, nc * sizeof *last);
                parent = xrealloc(parent, nc * sizeof *parent);
                for (size_t z = last_cap; z < nc; z++)
                    last[z] = TRIE_NONE;
                last_cap = nc;
            }
            parent[n] = par;
            if (last[par] == TRIE_NONE)
                v->nodes[par].first_child = n;
            else
                v->nodes[last[par]].next_sibling = n;
            last[par] = n;
            path[d + 1] = n;
        }
        for (size_t d = 0; d <= len; d++)
            v->nodes[path[d]].sub_hi = k + 1;
        v->nodes[path[len]].own_n++;
        prev = p;
        plen = len;
    }
    /* children always have higher indices than their parent: fold bottom-up */
    for (uint32_t n = v->n_nodes; n-- > 1;) {
        struct trie_node *c = &v->nodes[n], *par = &v->nodes[parent[n]];
        uint16_t d = c->max_depth >= 0xfffe ? 0xffff : (uint16_t)(c->max_depth + 1);
        if (d > par->max_depth)
            par->max_depth = d;
        for (int ctx = 0; ctx < N_UTF8_CTX; ctx++) {
            int nx = plain_step(ctx, c->byte);
            if (nx < 0 || !(c->plain & (1u << nx)))
                par->plain &= (uint8_t)~(1u << ctx);
        }
    }
    free(path);
    free(last);
    free(parent);
    free(pr);
    return v;
}

void
jgram_vocab_free(struct jgram_vocab *v)
{
    if (!v)
        return;
    free(v->order);
    free(v->nodes);
    free(v->eog);
    free(v);
}

static void
mark_range(const struct jgram_vocab *v, uint32_t lo, uint32_t hi, uint8_t *allowed)
{
    for (uint32_t k = lo; k < hi; k++)
        allowed[v->order[k]] = 1;
}

/* Whole subtree of n acceptable from st without walking it: st is one parse inside a free
 * string at a UTF-8 context from which every path below n is plain text, with room for the
 * longest path plus an unfinished character. */
static bool
subtree_plain(const struct jgram *g, const struct jgram_state *st, const struct trie_node *n)
{
    if (st->n_threads != 1 || st->t[0].depth == 0)
        return false;
    const struct jgram_frame *f = &st->t[0].f[st->t[0].depth - 1];
    if (f->phase != P_STR || f->sub >= N_UTF8_CTX || !(n->plain & (1u << f->sub)))
        return false;
    /* each byte below starts at most one character; minLength may still want some */
    const struct jg_node *nd = &g->nodes[f->node];
    uint64_t chars = f->v >> 16;
    if (chars + n->max_depth > nd->max_len)
        return false;
    return (uint64_t)f->n + n->max_depth + 3 + nd->min_len <= g->lim.max_string;
}

void
jgram_mask(const struct jgram *g, const struct jgram_vocab *v, const struct jgram_state *st,
           uint8_t *allowed)
{
    memset(allowed, 0, v->n_vocab > 0 ? (size_t)v->n_vocab : 0);
    bool done = jgram_state_done(g, st);
    for (uint32_t i = 0; i < v->n_eog; i++)
        allowed[v->eog[i]] = done;
    const struct trie_node *root = &v->nodes[0];
    if (subtree_plain(g, st, root)) {
        mark_range(v, root->sub_lo, root->sub_hi, allowed);
        return;
    }
    size_t depth_cap = (size_t)root->max_depth + 1;
    struct jgram_state *states = xmalloc(depth_cap * sizeof *states);
    uint32_t *it = xmalloc(depth_cap * sizeof *it);
    /* states[d] is st advanced by the d bytes on the path to the node whose children it[d]
     * iterates; only the live frames of each are ever written */
    states[0].n_threads = st->n_threads;
    for (uint32_t i = 0; i < st->n_threads; i++) {
        states[0].t[i].depth = st->t[i].depth;
        memcpy(states[0].t[i].f, st->t[i].f, st->t[i].depth * sizeof st->t[i].f[0]);
    }
    size_t d = 0;
    it[0] = root->first_child;
    for (;;) {
        uint32_t c = it[d];
        if (c == TRIE_NONE) {
            if (d == 0)
                break;
            d--;
            continue;
        }
        const struct trie_node *n = &v->nodes[c];
        it[d] = n->next_sibling;
        if (!state_step(g, &states[d], n->byte, &states[d + 1]))
            continue;
        if (subtree_plain(g, &states[d + 1], n)) {
            mark_range(v, n->sub_lo, n->sub_hi, allowed);
            continue;
        }
        mark_range(v, n->sub_lo, n->sub_lo + n->own_n, allowed);
        if (n->first_child != TRIE_NONE) {
            d++;
            it[d] = n->first_child;
        }
    }
    free(states);
    free(it);
}
