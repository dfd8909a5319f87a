/* fuzz_template.c -- libFuzzer target for chat templates (engine/template.c): the input is an
 * untrusted template, rendered against a fixed conversation with tools, as a GGUF file's
 * tokenizer.chat_template would be. Limits are lowered so each input finishes quickly; any
 * failure must be a clean al_err. Prints nothing (AIRLOCK_FUZZ). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/template.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/xalloc.h"

static const char vars_json[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"Be brief.\"},"
    "{\"role\": \"user\", \"content\": \"D\\u00e9j\\u00e0 vu \\ud83e\\udd99\"},"
    "{\"role\": \"assistant\", \"content\": \"<think>hm</think>ok\", \"tool_calls\": "
    "[{\"id\": \"abcdefghi\", \"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1.5}}}]},"
    "{\"role\": \"tool\", \"content\": \"{\\\"r\\\": [1, 2]}\", \"tool_call_id\": \"abcdefghi\"},"
    "{\"role\": \"user\", \"content\": \"\"}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
    "\"parameters\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"number\"}}}}}],"
    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
    "\"enable_thinking\": false}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *vars = json_loads(vars_json, 0, &je);
    if (!vars)
        abort();
    char *tmpl = xmalloc(size + 1);
    memcpy(tmpl, data, size);
    tmpl[size] = '\0';
    struct chat_template_opts o = {
        .now = 1768478400,
        .max_output = 1u << 20,
        .max_iterations = 20000,
        .max_memory = 32u << 20,
    };
    struct buf out;
    struct al_err e = {0};
    buf_init(&out);
    if (chat_template_render_json(tmpl, vars, &o, &out, &e) < 0) {
        if (e.code == AL_OK || e.code == AL_EINTERNAL || e.msg[0] == '\0')
            abort(); /* every failure must say what went wrong, and never be a bug */
    }
    (void)chat_template_check(tmpl, &e);
    buf_free(&out);
    free(tmpl);
    json_decref(vars);
    return 0;
}
