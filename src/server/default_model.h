/* default_model.h -- the small trained model compiled into the binary (models/stories260K), so
 * a fresh install can serve and chat with no download. Its bytes are checked against a pinned
 * SHA-256 before use: a corrupted binary is refused, not run. */
#ifndef AIRLOCK_SERVER_DEFAULT_MODEL_H
#define AIRLOCK_SERVER_DEFAULT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define DEFAULT_MODEL_ID "stories260K"
#define DEFAULT_MODEL_SHA256 "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
#define DEFAULT_MODEL_NOTE                                                                     \
    "The built-in model is stories260K, a tiny model trained on children's stories: it "     \
    "continues stories and does not follow instructions. Bring a real instruct model across " \
    "with airlock pack / verify (see the README)."

/* Point *p and *n at the embedded GGUF bytes (static, 64-byte aligned) after checking their
 * SHA-256 against DEFAULT_MODEL_SHA256 (AL_EVERIFY on mismatch). */
int default_model_get(const uint8_t **p, size_t *n, struct al_err *e);

#endif
