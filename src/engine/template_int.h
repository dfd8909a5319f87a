/* template_int.h -- shared between the chat-template parser (template_parse.c) and evaluator
 * (template.c); not for other modules. Defines the render arena, the value type and the syntax
 * tree. Everything here lives in one arena that is freed as a whole after a render, so nodes
 * and values never own memory individually. */
#ifndef AIRLOCK_ENGINE_TEMPLATE_INT_H
#define AIRLOCK_ENGINE_TEMPLATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* ===== Arena ====================================================================== */

struct tpl_chunk;

struct tpl_arena {
    struct tpl_chunk *head; /* owned list of chunks, newest first */
    size_t used;            /* bytes handed out so far, all chunks */
    size_t budget;          /* guard: allocation fails once used would pass this */
};

void tpl_arena_init(struct tpl_arena *a, size_t budget);
void tpl_arena_free(struct tpl_arena *a); /* safe on a zeroed arena */
/* Returns zeroed memory owned by the arena, or NULL (and fills e with AL_ELIMIT) when the
 * budget would be exceeded. */
void *tpl_alloc(struct tpl_arena *a, size_t n, struct al_err *e);
void *tpl_alloc_array(struct tpl_arena *a, size_t count, size_t size, struct al_err *e);

/* ===== Values ===================================================================== */

enum tv_kind {
    TV_UNDEF, /* Jinja's default Undefined: falsy, prints "", iterates as empty */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST,  /* also tuples, see tpl_list.tuple */
    TV_DICT,
    TV_NS,    /* namespace(): a dict whose attributes may be assigned */
    TV_FUNC,  /* a built-in global function (range, namespace, raise_exception, ...) */
    TV_MACRO, /* a macro defined by the template */
    TV_LOOP,  /* the `loop` variable of a for loop */
};

struct tpl_list;
struct tpl_dict;
struct tpl_loop;
struct tpl_node;

/* A value is small and copied freely; anything it points at lives in the arena or in borrowed
 * input (template source, JSON variables) that outlives the render. */
struct tv {
    enum tv_kind kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p; /* UTF-8, not NUL-terminated; for TV_UNDEF the missing name or NULL */
            size_t n;      /* bytes */
        } s;
        struct tpl_list *l;
        struct tpl_dict *d;          /* TV_DICT and TV_NS */
        int func;                    /* enum tpl_func */
        const struct tpl_node *macro;
        struct tpl_loop *loop;
    } u;
};

struct tpl_list {
    struct tv *v; /* arena array of n items */
    size_t n;
    bool tuple;   /* prints as (a, b) and never equals a list */
};

struct tpl_dict {
    struct tv *keys; /* arena arrays of n entries, insertion order (Python dicts keep it) */
    struct tv *vals;
    size_t n;
    size_t cap;      /* entries allocated; namespaces grow by reallocating in the arena */
};

struct tpl_loop {
    const struct tpl_list *items; /* the (filtered) sequence being iterated */
    size_t index0;                /* current position */
    int depth0;                   /* always 0: only recursive loops (unsupported) nest */
};

enum tpl_func {
    TF_RANGE,
    TF_NAMESPACE,
    TF_RAISE_EXCEPTION,
    TF_STRFTIME_NOW,
    TF_DICT,
};

/* ===== Syntax tree ================================================================ */

enum tpl_node_kind {
    /* statements */
    TN_TEXT,     /* lit: the text */
    TN_OUTPUT,   /* a: expression */
    TN_IF,       /* a: cond, body: then, body2: else (an elif is a nested TN_IF) */
    TN_FOR,      /* names: targets, a: iterable, b: filter or NULL, body, body2: else */
    TN_SET,      /* names[0] (and attr: names[1] when ns.attr), or names as a tuple; a: value */
    TN_SETBLOCK, /* names[0]; body captured as a string */
    TN_MACRO,    /* names[0]: macro name, names[1..]: params; list: defaults (NULL = none) */
    TN_BREAK,
    TN_CONTINUE,
    TN_BODY,     /* body: statements in order (template root, {% generation %}) */
    /* expressions */
    TN_LIT,      /* lit */
    TN_NAME,     /* name */
    TN_LIST,     /* list: items; op = 1 for a tuple */
    TN_DICT,     /* list: keys, list2: values */
    TN_ATTR,     /* a.name */
    TN_ITEM,     /* a[b] */
    TN_SLICE,    /* a[b:c:d], NULL parts omitted */
    TN_CALL,     /* a(list..., names=list2...) */
    TN_FILTER,   /* a | op(list..., names=list2...) */
    TN_TEST,     /* a is [not] op(list...); flag: negated */
    TN_NEG,      /* -a */
    TN_POS,      /* +a */
    TN_NOT,      /* not a */
    TN_AND,      /* a and b */
    TN_OR,       /* a or b */
    TN_BINOP,    /* a op b, op: enum tpl_op */
    TN_COMPARE,  /* a op b, op: enum tpl_op (chains are split into TN_AND of pairs) */
    TN_COND,     /* b if a else c (c NULL = undefined) */
};

enum tpl_op {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN,
};

enum tpl_filter {
    FI_ABS, FI_ATTR, FI_CAPITALIZE, FI_COUNT, FI_DEFAULT, FI_DICTSORT, FI_FIRST, FI_FLOAT, FI_INDENT,
    FI_INT, FI_ITEMS, FI_JOIN, FI_LAST, FI_LENGTH, FI_LIST, FI_LOWER, FI_MAP, FI_MAX, FI_MIN,
    FI_REJECT, FI_REJECTATTR, FI_REPLACE, FI_REVERSE, FI_ROUND, FI_SAFE, FI_SELECT,
    FI_SELECTATTR, FI_SORT, FI_STRING, FI_SUM, FI_TITLE, FI_TOJSON, FI_TRIM, FI_UNIQUE, FI_UPPER,
    FI_WORDCOUNT,
};

enum tpl_test {
    TE_BOOLEAN, TE_CALLABLE, TE_DEFINED, TE_DIVISIBLEBY, TE_EQ, TE_EVEN, TE_FALSE, TE_FLOAT,
    TE_GE, TE_GT, TE_IN, TE_INTEGER, TE_ITERABLE, TE_LE, TE_LOWER, TE_LT, TE_MAPPING, TE_NE,
    TE_NONE, TE_NUMBER, TE_ODD, TE_SAMEAS, TE_SEQUENCE, TE_STRING, TE_TRUE, TE_UNDEFINED,
    TE_UPPER,
};

/* Look up a filter or test by name; -1 when the subset has none of that name. Used by the
 * parser (filters and tests are resolved when the template is parsed, as Jinja does) and by
 * select/map, which name tests and filters in string arguments. */
int tpl_filter_lookup(const char *name, size_t n);
int tpl_test_lookup(const char *name, size_t n);

struct tpl_node {
    enum tpl_node_kind kind;
    int line, col;               /* 1-based position in the template, for messages */
    int op;                      /* operator, filter or test id; TN_LIST: 1 = tuple */
    bool flag;                   /* TN_TEST: negated; TN_SET: target is ns.attr */
    struct tv lit;               /* TN_TEXT, TN_LIT */
    const char *name;            /* TN_NAME, TN_ATTR, TN_FILTER/TEST name; in the source */
    size_t name_n;
    struct tpl_node *a, *b, *c, *d;
    struct tpl_node **list;      /* arena array: args, items, keys, defaults */
    size_t n_list;
    struct tpl_node **list2;     /* arena array: kwarg values, dict values */
    size_t n_list2;
    struct tpl_node **body;      /* arena array of statements */
    size_t n_body;
    struct tpl_node **body2;
    size_t n_body2;
    const char **names;          /* arena array: targets, kwarg names, macro params */
    size_t *names_n;
    size_t n_names;
};

/* Parse src (len bytes, borrowed; must outlive the tree) into a TN_BODY node allocated in a.
 * Returns NULL and fills e on a syntax error (AL_EFORMAT), an unsupported construct
 * (AL_EUNSUPPORTED) or an exceeded limit (AL_ELIMIT). */
struct tpl_node *tpl_parse(struct tpl_arena *a, const char *src, size_t len, struct al_err *e);

#endif
