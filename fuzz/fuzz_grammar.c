/* fuzz_grammar.c -- libFuzzer target for the JSON grammar (engine/grammar.c).
 * Input: an untrusted schema as JSON text, a NUL byte, then bytes to feed (no NUL: the whole
 * input is the feed in json_object mode; a schema that does not parse also means json_object
 * mode). Byte 0 of the feed part picks lowered caps. Every feed byte is offered on its own;
 * refused ones must leave the state untouched and are skipped. Oracles, any failure aborts:
 *  - liveness: while the document is not done, some byte must still be accepted;
 *  - soundness: when done, the accepted bytes must parse with jansson.
 * Seeds: fuzz/corpus/grammar/. Prints nothing (AIRLOCK_FUZZ). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/grammar.h"
#include "util/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FEED 512

static bool
some_byte_accepted(const struct jgram *g, const struct jgram_state *st)
{
    for (int b = 1; b < 256; b++) {
        struct jgram_state tmp = *st;
        char c = (char)b;
        if (jgram_state_feed(g, &tmp, &c, 1))
            return true;
    }
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    const uint8_t *feed = nul ? nul + 1 : data;
    size_t nfeed = nul ? size - (size_t)(feed - data) : size;
    json_t *schema = nul ? json_loadb((const char *)data, (size_t)(nul - data), 0, NULL) : NULL;
    struct jgram_limits lim = {0};
    if (nfeed > 0 && (feed[0] & 0x80)) {
        lim = (struct jgram_limits){.max_string = 12 + (feed[0] & 7), .max_items = 2,
                                    .max_number = 3, .max_ws = 1,
                                    .max_depth = 1 + ((feed[0] >> 3) & 3)};
        feed++;
        nfeed--;
    }
    if (nfeed > FUZZ_MAX_FEED)
        nfeed = FUZZ_MAX_FEED;
    struct jgram *g = NULL;
    struct al_err e = {0};
    if (jgram_new(schema, &lim, &g, &e) != 0) {
        if (e.code == AL_OK || e.msg[0] == '\0')
            abort(); /* a refusal must say why */
        json_decref(schema);
        return 0;
    }
    struct jgram_state st, before;
    jgram_state_init(g, &st);
    char *text = xmalloc(nfeed + 1);
    size_t ntext = 0;
    for (size_t i = 0; i < nfeed; i++) {
        before = st;
        if (!jgram_state_feed(g, &st, (const char *)feed + i, 1)) {
            if (memcmp(&before, &st, sizeof st) != 0)
                abort();
            continue;
        }
        text[ntext++] = (char)feed[i];
        if (!jgram_state_done(g, &st) && !some_byte_accepted(g, &st))
            abort();
    }
    text[ntext] = '\0';
    if (jgram_state_done(g, &st)) {
        json_t *doc = json_loadb(text, ntext, JSON_DECODE_ANY, NULL);
        if (!doc)
            abort();
        if (!schema && !json_is_object(doc))
            abort();
        json_decref(doc);
    }
    free(text);
    jgram_free(g);
    json_decref(schema);
    return 0;
}
