/* web.c -- the offline chat page at / and the /status document it shows.
 * The page's files (web/index.html, app.js, style.css) are compiled into the binary with the
 * assembler's .incbin, so serving them touches no file system and a deployed server cannot be
 * made to serve something else. Every page response carries a Content-Security-Policy that
 * allows this origin only: no CDN, no web fonts, no third-party connection of any kind. */
#include <string.h>
#include <time.h>

#include "server/server.h"

#define ASSET(sym, path)                                                                       \
    __asm__(".section .rodata\n.balign 16\n.global " #sym "\n" #sym ":\n.incbin \"" path     \
            "\"\n.global " #sym "_end\n" #sym "_end:\n.byte 0\n.previous\n");                  \
    extern const char sym[], sym##_end[]

ASSET(web_index_html, "web/index.html");
ASSET(web_app_js, "web/app.js");
ASSET(web_style_css, "web/style.css");

static const struct {
    const char *path;
    const char *type;
    const char *start, *end;
} assets[] = {
    {"/", "text/html; charset=utf-8", web_index_html, web_index_html_end},
    {"/index.html", "text/html; charset=utf-8", web_index_html, web_index_html_end},
    {"/app.js", "text/javascript; charset=utf-8", web_app_js, web_app_js_end},
    {"/style.css", "text/css; charset=utf-8", web_style_css, web_style_css_end},
};

#define CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "            \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

bool
srv_is_web_path(const char *path)
{
    if (!strcmp(path, "/status"))
        return true;
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (!strcmp(path, assets[i].path))
            return true;
    return false;
}

static void
handle_status(struct server *s, struct http_req *r)
{
    struct sched_stats st;
    sched_get_stats(&s->sched, &st);
    json_t *audit = json_object();
    if (s->audit) {
        struct audit_stats as;
        audit_stats_get(s->audit, &as);
        json_object_set_new(audit, "records", json_integer((json_int_t)as.records));
        json_object_set_new(audit, "head_seq", json_integer((json_int_t)as.last_seq));
        json_object_set_new(audit, "head", json_string(as.head));
    } else {
        json_object_set_new(audit, "records", json_integer(0));
        json_object_set_new(audit, "head", json_null());
    }
    json_t *model = json_pack("{s:s,s:s,s:s,s:I,s:I}", "id", s->model_id, "type",
                              s->model.type_name, "sha256", s->model_sha256, "parameters",
                              (json_int_t)s->model.n_params, "context", (json_int_t)sched_n_ctx(&s->sched));
    json_object_set_new(model, "signer", s->signer[0] ? json_string(s->signer) : json_null());
    json_object_set_new(model, "version",
                        s->model_version[0] ? json_string(s->model_version) : json_null());
    if (s->model_note[0])
        json_object_set_new(model, "note", json_string(s->model_note));
    json_t *o = json_pack("{s:s,s:o,s:I,s:f,s:s,s:o,s:{s:i,s:i,s:i,s:i}}", "version",
                          AIRLOCK_VERSION, "model", model, "uptime_s",
                          (json_int_t)(time(NULL) - s->started), "tokens_per_second",
                          s->last_tps, "lockdown",
                          "no outbound connections are made by this server (no lockdown "
                          "sandbox in this build)",
                          "audit", audit, "slots", "total", st.n_slots, "active", st.active,
                          "queued", st.queued, "kv_used", st.kv_used);
    http_reply_json(r, 200, o);
}

void
srv_handle_web(struct server *s, struct http_req *r)
{
    const char *p = http_path(r);
    if (!strcmp(p, "/status")) {
        handle_status(s, r);
        return;
    }
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++) {
        if (strcmp(p, assets[i].path) != 0)
            continue;
        http_add_header(r, "Content-Security-Policy", CSP);
        http_add_header(r, "Referrer-Policy", "no-referrer");
        http_add_header(r, "X-Frame-Options", "DENY");
        http_reply(r, 200, assets[i].type, assets[i].start,
                   (size_t)(assets[i].end - assets[i].start));
        return;
    }
    http_reply_error(r, 404, "invalid_request_error", NULL, "not_found", "no such page");
}
