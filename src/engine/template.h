/* template.h -- chat templates: render a model's tokenizer.chat_template (a Jinja subset) for a
 * list of chat messages, the way Hugging Face transformers renders it with Jinja2 3.1
 * (trim_blocks, lstrip_blocks, loopcontrols, tojson without HTML escaping, raise_exception,
 * strftime_now). Templates come from untrusted GGUF files: every construct outside the subset
 * fails with AL_EUNSUPPORTED naming it and its line:column, and nesting, loop iterations,
 * working memory, work and output size are bounded by the limits below (at the deepest allowed
 * nesting a render needs about 512 KiB of stack). No global state: renders may run in parallel.
 * Does not tokenize the result (engine/tokenizer) or read GGUF metadata (format/gguf).
 * The supported subset and the fallback template are documented in docs/chat-templates.md. */
#ifndef AIRLOCK_ENGINE_TEMPLATE_H
#define AIRLOCK_ENGINE_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"

#define CHAT_TEMPLATE_MAX_SOURCE (1u << 20)      /* template text bytes */
#define CHAT_TEMPLATE_MAX_NESTING 128            /* parser: nested blocks, brackets, unary ops */
#define CHAT_TEMPLATE_MAX_EVAL_DEPTH 1000        /* evaluator recursion incl. macro calls */
#define CHAT_TEMPLATE_MAX_ITERATIONS 1000000u    /* loop iterations summed over one render */
/* Work per render, in steps: one per expression evaluated, loop iteration, list element
 * walked, compared or created, and per 16 string bytes searched, built or written. Without it
 * `{% for i in range(99999) %}{% if 0 in big %}` over a huge list would run for hours. A
 * 1000-message conversation takes about 350000 steps with the published templates. */
#define CHAT_TEMPLATE_MAX_WORK (1u << 24)
#define CHAT_TEMPLATE_MAX_OUTPUT (16u << 20)     /* rendered bytes */
#define CHAT_TEMPLATE_MAX_MEMORY (256u << 20)    /* working memory: syntax tree, strings, lists */

/* One chat message. Room is left for tool calls: callers that need them (the server) pass the
 * whole message list as JSON through chat_template_render_json(). */
struct chat_msg {
    const char *role;    /* borrowed; "system", "user", "assistant", "tool", ... */
    const char *content; /* borrowed UTF-8; NULL renders as Jinja's none */
};

/* Knobs for one render; a zeroed struct means production defaults. */
struct chat_template_opts {
    time_t now;            /* clock for strftime_now(), local time; 0 = time(NULL) */
    size_t max_output;     /* bytes; 0 = CHAT_TEMPLATE_MAX_OUTPUT */
    size_t max_iterations; /* 0 = CHAT_TEMPLATE_MAX_ITERATIONS */
    size_t max_memory;     /* bytes; 0 = CHAT_TEMPLATE_MAX_MEMORY */
    size_t max_work;       /* steps; 0 = CHAT_TEMPLATE_MAX_WORK */
};

/* Render tmpl (borrowed, NUL-terminated) with the variables messages, add_generation_prompt,
 * bos_token and eos_token (NULL = ""). Appends to out only on success. On failure returns -1:
 * AL_EFORMAT for syntax and type errors, AL_EUNSUPPORTED for constructs outside the subset,
 * AL_ELIMIT for exceeded limits, AL_EUSAGE when the template calls raise_exception (the message
 * contains the template's own text, e.g. "System role not supported"). */
int chat_template_render(const char *tmpl, const struct chat_msg *msgs, size_t n_msgs,
                         bool add_generation_prompt, const char *bos_token, const char *eos_token,
                         struct buf *out, struct al_err *e);

/* Same, with extra template variables: extra (borrowed, may be NULL) is a JSON object whose
 * members are added after the standard ones and override them (e.g. "tools",
 * "enable_thinking"). opts (borrowed) may be NULL. */
int chat_template_render_ex(const char *tmpl, const struct chat_msg *msgs, size_t n_msgs,
                            bool add_generation_prompt, const char *bos_token,
                            const char *eos_token, const json_t *extra,
                            const struct chat_template_opts *opts, struct buf *out,
                            struct al_err *e);

/* The general form: vars (borrowed) is a JSON object whose members are the template's
 * variables, e.g. {"messages": [...], "add_generation_prompt": true, "bos_token": "<s>",
 * "tools": [...]}. Messages may carry any JSON (tool_calls, reasoning_content). */
int chat_template_render_json(const char *tmpl, const json_t *vars,
                              const struct chat_template_opts *opts, struct buf *out,
                              struct al_err *e);

/* Check that tmpl parses within the subset, without rendering it; for `airlock inspect`. */
int chat_template_check(const char *tmpl, struct al_err *e);

/* A plain-text template for models without tokenizer.chat_template (static, never freed):
 * "System: ...\n\nUser: ...\n\nAssistant: ...\n\n", ending in "Assistant:" when
 * add_generation_prompt is set. Documented in docs/chat-templates.md. */
const char *chat_template_fallback(void);

#endif
