/* cmd_chat.c -- `airlock chat MODEL`: a terminal chat. Each user line is added to the
 * conversation, the whole conversation is rendered with the model's chat template (the fallback
 * template when the file has none), and the reply is streamed to stdout. The KV cache keeps the
 * common prefix between turns, so only the new text is evaluated. Ends at EOF or "/exit". */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"
#include "engine/template.h"
#include "util/buf.h"
#include "util/xalloc.h"

const char cmd_chat_usage[] =
    "Usage: airlock chat MODEL.gguf [--system TEXT] [options]\n"
    "\n"
    "Chat with a model in the terminal. Type a message and press Enter; the reply streams to\n"
    "stdout. The conversation is formatted with the model's own chat template\n"
    "(tokenizer.chat_template), or a plain 'System:/User:/Assistant:' template when the file\n"
    "has none. Ends at end of input (Ctrl-D) or on a line '/exit'; '/reset' starts over.\n"
    "\n"
    "Options:\n"
    "  -s, --system TEXT      system message for the conversation\n"
    "  -v, --verbose          print the rendered prompt size and speed after each reply\n"
    ENGINE_CLI_USAGE_SAMPLER ENGINE_CLI_USAGE_ENGINE
    "  (in chat, -n defaults to -1: reply until the model ends its turn)\n"
    "\n"
    "Example:\n"
    "  airlock chat model.gguf --system 'You are terse.' --temp 0.7\n"
    "\n"
    "Exit status: 0 ok, 2 usage, 3 I/O or internal error, 4 malformed or unsupported model.\n";

#define MAX_LINE (1u << 20)

struct turn_out {
    struct buf *reply; /* borrowed: the assistant text collected for the history */
};

static int
emit_chat(void *ud, const char *text, size_t len)
{
    struct turn_out *t = ud;
    buf_append(t->reply, text, len);
    if (fwrite(text, 1, len, stdout) != len)
        return 1;
    fflush(stdout);
    return 0;
}

/* Read one line from stdin without its newline into b; 0 at EOF with nothing read. */
static int
read_line(struct buf *b)
{
    buf_reset(b);
    int ch;
    int any = 0;
    while ((ch = fgetc(stdin)) != EOF) {
        any = 1;
        if (ch == '\n')
            break;
        if (b->len < MAX_LINE)
            buf_putc(b, (char)ch);
    }
    return any;
}

int
cmd_chat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"system", required_argument, NULL, 's'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        ENGINE_CLI_OPTIONS,
        SAMPLER_CLI_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct engine_cli ec;
    struct al_err e = {0};
    struct llm l;
    struct gen_session g;
    struct buf line, prompt, reply;
    struct chat_msg *msgs = NULL;
    char **owned = NULL; /* message texts we allocated, parallel to msgs */
    size_t n_msgs = 0, cap_msgs = 0;
    const char *system = NULL;
    bool verbose = false, n_given = false;
    int rc = AL_EXIT_USAGE;
    int c;

    memset(&l, 0, sizeof l);
    memset(&g, 0, sizeof g);
    buf_init(&line);
    buf_init(&prompt);
    buf_init(&reply);
    engine_cli_defaults(&ec);
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:n:t:c:vh", opts, NULL)) != -1) {
        if (c == 'n')
            n_given = true;
        int r = engine_cli_option(&ec, c == 'c' ? OPT_CTX : c, optarg, &e);
        if (r < 0)
            return cli_usage_error("chat", "%s", e.msg);
        if (r > 0)
            continue;
        switch (c) {
        case 's':
            system = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            cli_print_usage("chat", stdout);
            return AL_EXIT_OK;
        default:
            return cli_usage_error("chat", "unknown or incomplete option");
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("chat", "one MODEL.gguf is required");
    if (!n_given)
        ec.gp.n_predict = -1;
    const char *path = argv[optind];

    if (engine_cli_open(&ec, &l, path, &e) < 0)
        goto fail;
    if (gen_init(&g, &l.en, l.tok, 0, &e) < 0)
        goto fail;
    const char *tmpl = tokenizer_chat_template(l.tok);
    if (!tmpl)
        tmpl = chat_template_fallback();
    size_t tl;
    int32_t bos = tokenizer_bos(l.tok), eos = tokenizer_eos(l.tok);
    const char *bos_text = bos != TOKENIZER_NULL ? tokenizer_token_text(l.tok, bos, &tl) : "";
    const char *eos_text = eos != TOKENIZER_NULL ? tokenizer_token_text(l.tok, eos, &tl) : "";
    bool tty = isatty(STDIN_FILENO);

    for (;;) {
        if (n_msgs + 2 > cap_msgs) {
            cap_msgs = cap_msgs ? cap_msgs * 2 : 16;
            msgs = xrealloc(msgs, cap_msgs * sizeof *msgs);
            owned = xrealloc(owned, cap_msgs * sizeof *owned);
        }
        if (n_msgs == 0 && system) {
            msgs[0] = (struct chat_msg){"system", system};
            owned[0] = NULL;
            n_msgs = 1;
        }
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        if (!read_line(&line))
            break;
        if (strcmp(line.data ? line.data : "", "/exit") == 0)
            break;
        if (strcmp(line.data ? line.data : "", "/reset") == 0) {
            for (size_t i = 0; i < n_msgs; i++)
                free(owned[i]);
            n_msgs = 0;
            continue;
        }
        owned[n_msgs] = xstrdup(line.data ? line.data : "");
        msgs[n_msgs] = (struct chat_msg){"user", owned[n_msgs]};
        n_msgs++;

        buf_reset(&prompt);
        if (chat_template_render(tmpl, msgs, n_msgs, true, bos_text, eos_text, &prompt, &e) < 0)
            goto fail;
        /* the template writes BOS itself when it wants one; add it only when it did not */
        bool has_bos = bos_text[0] && prompt.len >= strlen(bos_text) &&
                       memcmp(prompt.data, bos_text, strlen(bos_text)) == 0;
        if (gen_prompt_text(&g, prompt.data, prompt.len, !has_bos, true, &e) < 0)
            goto fail;
        buf_reset(&reply);
        struct turn_out to = {&reply};
        struct gen_stats st;
        if (gen_generate(&g, &ec.gp, emit_chat, &to, &st, &e) < 0)
            goto fail;
        fputc('\n', stdout);
        fflush(stdout);
        if (verbose)
            fprintf(stderr, "[prompt %d new + %d cached tokens, %d generated, %.2f t/s, %s]\n",
                    st.n_prompt, st.n_reused, st.n_gen,
                    st.gen_ms > 0 ? st.n_gen * 1e3 / st.gen_ms : 0.0, gen_stop_name(st.stop));
        owned[n_msgs] = xstrdup(reply.data ? reply.data : "");
        msgs[n_msgs] = (struct chat_msg){"assistant", owned[n_msgs]};
        n_msgs++;
    }
    rc = AL_EXIT_OK;
    goto out;
fail:
    rc = cli_fail("chat", &e, false);
out:
    for (size_t i = 0; i < n_msgs; i++)
        free(owned[i]);
    free(owned);
    free(msgs);
    buf_free(&line);
    buf_free(&prompt);
    buf_free(&reply);
    gen_free(&g);
    llm_close(&l);
    return rc;
}
