/* store/etcd_http.c — etcd 3.4's JSON gateway over libcurl (HTTP/1.1), with jansson.
 *
 * Every call is a POST of a JSON object; keys and values travel as base64, int64 fields as
 * JSON strings.  A call fails over round-robin between the configured members until
 * request_ms has passed, and authenticates again when the token is gone or refused.  The
 * watch is one streaming POST whose answer is a sequence of newline-terminated JSON objects.
 * The only file that includes curl.h.
 *
 * Credentials: the password (in the store's secure memory) and the token it buys never sit
 * in ordinary memory.  The authenticate request is built, and its answer read and parsed,
 * in the connection's own secure arena (no JSON library copy); the Authorization header is
 * a curl_slist node of ours pointing into it; and libcurl's own heap, where it copies every
 * header and a POST body under 64 KiB before sending them, is zeroed block by block as it
 * is freed (curl_global_init_mem), its receive buffer right after an answer is copied out.
 */
#include "store/etcd.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "crypto/secmem.h"

struct buf {
    char *p;
    size_t n, cap;
};

#define TOKEN_MAX 2048          /* etcd's JWT tokens are a few hundred bytes */
#define AUTH_ANSWER_MAX 8192

struct sfs_etcd_conn {
    const struct sfs_etcd_cfg *cfg;
    CURL *easy;
    CURLM *multi;              /* the watch stream runs here, so a wakeup can interrupt it */
    size_t cur;                /* index into cfg->endpoints */
    sfs_arena *secure;         /* with a user: the four buffers below */
    char *token;               /* the auth token ("": none) */
    char *auth_hdr;            /* "Authorization: TOKEN", the data of auth_node */
    char *auth_body;           /* the authenticate request while it is sent */
    size_t auth_body_cap;
    char *answer;              /* the authenticate answer while it is read */
    struct curl_slist auth_node;
    uint64_t received;
    unsigned budget_ms;        /* overrides cfg->request_ms for a call when nonzero */
    bool maybe_applied;        /* the last attempt may have reached etcd, answer lost */
    bool unsure;               /* an attempt of the last call may have been applied */
    bool fresh;                /* every attempt of this call on a new connection */
    char curl_msg[CURL_ERROR_SIZE];
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- libcurl's heap, zeroed as it is freed ---- */

static void *wiped_malloc(size_t n)
{
    return malloc(n);
}

static void wiped_free(void *p)
{
    if (p) {
        sfs_wipe(p, malloc_usable_size(p));
        free(p);
    }
}

/* Never glibc's realloc, which may move a block and leave the old bytes behind. */
static void *wiped_realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q;

    if (p && n <= old)
        return p;
    q = malloc(n ? n : 1);
    if (q && p) {
        memcpy(q, p, old);
        wiped_free(p);
    }
    return q;
}

static char *wiped_strdup(const char *str)
{
    return strdup(str);
}

static void *wiped_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

/* Sets up the secure arena of a connection with a user: token, header, request, answer. */
static int secure_parts(sfs_etcd_conn *c)
{
    const struct sfs_etcd_cfg *cfg = c->cfg;
    size_t pw = cfg->password ? strlen(cfg->password) : 0;

    c->auth_body_cap = 6 * (strlen(cfg->user) + pw) + 32;
    c->secure = sfs_arena_new(2 * TOKEN_MAX + AUTH_ANSWER_MAX + c->auth_body_cap + 256);
    c->token = c->secure ? sfs_arena_alloc(c->secure, TOKEN_MAX + 1) : NULL;
    c->auth_hdr = c->token ? sfs_arena_alloc(c->secure, TOKEN_MAX + 32) : NULL;
    c->auth_body = c->auth_hdr ? sfs_arena_alloc(c->secure, c->auth_body_cap) : NULL;
    c->answer = c->auth_body ? sfs_arena_alloc(c->secure, AUTH_ANSWER_MAX + 1) : NULL;
    return c->answer ? 0 : -ENOMEM;
}

sfs_etcd_conn *sfs_etcd_conn_new(const struct sfs_etcd_cfg *cfg)
{
    static bool curl_ready;
    sfs_etcd_conn *c;

    if (!curl_ready) {
        /* First use is from the thread that opens the store, before any watch thread. */
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, wiped_malloc, wiped_free,
                                 wiped_realloc, wiped_strdup, wiped_calloc) != CURLE_OK)
            return NULL;
        curl_ready = true;
    }
    c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = cfg;
    c->easy = curl_easy_init();
    c->multi = curl_multi_init();
    if (!c->easy || !c->multi || (cfg->user && secure_parts(c) < 0)) {
        sfs_etcd_conn_free(c);
        return NULL;
    }
    return c;
}

static bool has_token(const sfs_etcd_conn *c)
{
    return c->token && c->token[0];
}

static void drop_token(sfs_etcd_conn *c)
{
    if (c->token)
        sfs_wipe(c->token, TOKEN_MAX + 1);
}

void sfs_etcd_conn_free(sfs_etcd_conn *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    sfs_arena_free(c->secure);
    free(c);
}

const char *sfs_etcd_conn_endpoint(const sfs_etcd_conn *c)
{
    return c->cfg->endpoints[c->cur];
}

uint64_t sfs_etcd_conn_received(const sfs_etcd_conn *c)
{
    return c->received;
}

bool sfs_etcd_conn_unsure(const sfs_etcd_conn *c)
{
    return c->unsure;
}

void sfs_etcd_conn_budget(sfs_etcd_conn *c, unsigned ms)
{
    c->budget_ms = ms;
}

void sfs_etcd_conn_next(sfs_etcd_conn *c)
{
    c->cur = (c->cur + 1) % c->cfg->n_endpoints;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct buf *b = ctx;
    size_t n = size * nmemb;

    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->n + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* Sets what every request on the handle shares: URL, TLS, headers. */
static struct curl_slist *setup(sfs_etcd_conn *c, const char *path, struct curl_slist *h)
{
    const struct sfs_etcd_cfg *cfg = c->cfg;
    char url[512];

    snprintf(url, sizeof url, "%s://%s%s", cfg->tls_at[c->cur] ? "https" : "http",
             cfg->endpoints[c->cur], path);
    curl_easy_reset(c->easy);
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->curl_msg);
    /* A member that vanishes without a reset (a silent partition) ends the watch within
     * about a minute: etcd's own progress notifications come only every 10 minutes. */
    curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(c->easy, CURLOPT_PROXY, "");
    if (cfg->ca_file)
        curl_easy_setopt(c->easy, CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->cert_file)
        curl_easy_setopt(c->easy, CURLOPT_SSLCERT, cfg->cert_file);
    if (cfg->key_file)
        curl_easy_setopt(c->easy, CURLOPT_SSLKEY, cfg->key_file);
    h = curl_slist_append(h, "Content-Type: application/json");
    /* etcd refuses requests on a member that has lost its leader instead of hanging. */
    h = h ? curl_slist_append(h, "Grpc-Metadata-hasleader: true") : NULL;
    if (h && has_token(c)) {
        /* our own node, in secure memory, ahead of curl's (which the caller frees) */
        snprintf(c->auth_hdr, TOKEN_MAX + 32, "Authorization: %s", c->token);
        c->auth_node.data = c->auth_hdr;
        c->auth_node.next = h;
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, &c->auth_node);
    } else {
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, h);
    }
    c->curl_msg[0] = '\0';
    return h;
}

static int curl_errno(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
        return -EHOSTUNREACH;
    default:
        return -EIO;
    }
}

/* Whether a failure is our TLS configuration (or the member's certificate), which no other
 * endpoint or retry will fix. */
static bool tls_setup_error(CURLcode cc)
{
    return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CERTPROBLEM ||
           cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CIPHER ||
           cc == CURLE_SSL_CRL_BADFILE || cc == CURLE_SSL_ISSUER_ERROR;
}

/* One POST to the current endpoint within `timeout_ms`; the answer goes to write(ctx).
 * Returns 0 with *http, or a network -errno with err set. */
static int post_once(sfs_etcd_conn *c, const char *path, const char *body, size_t blen,
                     long timeout_ms, long *http, curl_write_callback write, void *ctx,
                     struct sfs_err *err)
{
    struct curl_slist *h = setup(c, path, NULL);
    long dial = c->cfg->dial_ms < (unsigned long)timeout_ms ? (long)c->cfg->dial_ms
                                                             : timeout_ms;
    CURLcode cc;
    int rc = 0;

    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)blen);
    if (c->fresh)
        curl_easy_setopt(c->easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, dial);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, ctx);
    cc = h ? curl_easy_perform(c->easy) : CURLE_OUT_OF_MEMORY;
    if (cc != CURLE_OK) {
        long sent = 0;
        curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &sent);
        c->maybe_applied = sent > 0 && !tls_setup_error(cc);
        rc = sfs_err_set(err, curl_errno(cc), "%s: %s%s", sfs_etcd_conn_endpoint(c),
                         c->curl_msg[0] ? c->curl_msg : curl_easy_strerror(cc),
                         cc == CURLE_GOT_NOTHING && !c->cfg->tls_at[c->cur]
                         ? " (an https member? write https://HOST:PORT or set [etcd] ca_file)"
                         : "");
        if (tls_setup_error(cc))
            rc = sfs_err_set(err, -EACCES, "%s: TLS: %s; check [etcd] ca_file (the CA that "
                             "signed the members' certificates), cert_file and key_file",
                             sfs_etcd_conn_endpoint(c),
                             c->curl_msg[0] ? c->curl_msg : curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, http);
    }
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (c->secure)
        sfs_wipe_registers();   /* the token (or password) went through them */
    return rc;
}

/* What to do with an error answer. */
enum verdict { V_FAIL, V_NEXT, V_REAUTH };

static enum verdict classify(const char *msg, int *rc)
{
    if (strstr(msg, "invalid auth token") || strstr(msg, "user name is empty") ||
        strstr(msg, "auth token") || strstr(msg, "invalid auth"))
        return V_REAUTH;
    if (strstr(msg, "no leader") || strstr(msg, "request timed out") ||
        strstr(msg, "leader changed") || strstr(msg, "not capable") ||
        strstr(msg, "too many requests") || strstr(msg, "unavailable") ||
        strstr(msg, "stopped") || strstr(msg, "timed out"))
        return V_NEXT;
    if (strstr(msg, "permission denied") || strstr(msg, "authentication failed"))
        *rc = -EACCES;
    else if (strstr(msg, "compacted"))
        *rc = -ESTALE;
    else if (strstr(msg, "larger than max") || strstr(msg, "too large"))
        *rc = -EMSGSIZE;
    else
        *rc = -EIO;
    return V_FAIL;
}

/* Error answers that etcd gives before it proposes a request (so it was not applied); any
 * other answer that sends a call to the next member ("request timed out", "leader
 * changed") may come after it applied it. */
static bool refused_before_applying(const char *msg)
{
    return strstr(msg, "no leader") || strstr(msg, "too many requests") ||
           strstr(msg, "not capable");
}

static const char *error_text(json_t *j)
{
    const char *m = json_string_value(json_object_get(j, "message"));

    if (!m)
        m = json_string_value(json_object_get(j, "error"));
    return m ? m : "an error answer without a message";
}

static int authenticate(sfs_etcd_conn *c, long timeout_ms, struct sfs_err *err);

/* Parses an answer; 0 with *resp, or a verdict for the retry loop. */
static int judge(sfs_etcd_conn *c, long http, struct buf *b, json_t **resp,
                 enum verdict *v, struct sfs_err *err)
{
    json_t *j = b->p ? json_loadb(b->p, b->n, 0, NULL) : NULL;
    int rc = 0;

    *v = V_FAIL;
    c->maybe_applied = true;
    if (!j || !json_is_object(j)) {
        rc = sfs_err_set(err, -EPROTO, "%s: HTTP %ld with an answer that is not etcd's JSON; "
                         "is this an etcd 3.4+ client URL?", sfs_etcd_conn_endpoint(c), http);
        *v = V_NEXT;
        json_decref(j);
        return rc;
    }
    if (http == 200) {
        *resp = j;
        return 0;
    }
    *v = classify(error_text(j), &rc);
    c->maybe_applied = *v == V_NEXT && !refused_before_applying(error_text(j));
    if (*v == V_REAUTH && !c->cfg->user) {
        *v = V_FAIL;
        rc = sfs_err_set(err, -EACCES, "%s: etcd requires authentication (%s); set user and "
                         "password_file in the [etcd] section", sfs_etcd_conn_endpoint(c),
                         error_text(j));
    } else if (rc == -EACCES && c->cfg->user)
        sfs_err_set(err, rc, "%s: etcd refused user '%s': %s; give the user a role that may "
                    "do this on the prefix (a daemon only needs read)",
                    sfs_etcd_conn_endpoint(c), c->cfg->user, error_text(j));
    else
        sfs_err_set(err, rc ? rc : -EIO, "%s: %s", sfs_etcd_conn_endpoint(c), error_text(j));
    if (!rc)
        rc = -EIO;
    json_decref(j);
    return rc;
}

/* The message for a call that ran out of time. */
static int give_up(sfs_etcd_conn *c, int rc, const char *last, struct sfs_err *err)
{
    char list[512] = "";
    size_t i, n = 0;

    for (i = 0; i < c->cfg->n_endpoints && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? "," : "",
                              c->cfg->endpoints[i]);
    return sfs_err_set(err, rc, "etcd at %s: no member answered within %u ms (last: %s); "
                       "is a quorum of the cluster up and reachable?", list,
                       c->budget_ms ? c->budget_ms : c->cfg->request_ms, last);
}

/* One attempt: authenticate if needed, POST, judge.  Returns 0, or -errno with *v. */
static int attempt(sfs_etcd_conn *c, const char *path, const char *body, size_t blen,
                   long left, json_t **resp, enum verdict *v, struct sfs_err *err)
{
    struct buf b = { 0 };
    long http = 0;
    int rc;

    *v = V_NEXT;
    if (c->cfg->user && !has_token(c)) {
        rc = authenticate(c, left, err);
        if (rc < 0) {
            if (rc == -EACCES)
                *v = V_FAIL;
            c->maybe_applied = false;   /* the request itself was not sent */
            return rc;
        }
    }
    rc = post_once(c, path, body, blen, left, &http, collect, &b, err);
    c->received += b.n;
    if (rc == -EACCES)
        *v = V_FAIL;   /* TLS set up wrong: no retry helps */
    if (rc == 0)
        rc = judge(c, http, &b, resp, v, err);
    free(b.p);
    return rc;
}

static int call_body(sfs_etcd_conn *c, const char *path, const char *body, size_t blen,
                     json_t **resp, struct sfs_err *err)
{
    int64_t deadline = now_ms() + (c->budget_ms ? c->budget_ms : c->cfg->request_ms);
    struct sfs_err last = { "no attempt made" };
    size_t tried = 0;
    bool reauthed = false;
    enum verdict v;
    int rc = -ETIMEDOUT;

    c->unsure = false;
    for (;;) {
        long left = (long)(deadline - now_ms());
        if (left <= 0)
            return give_up(c, rc, last.msg, err);
        c->maybe_applied = false;
        rc = attempt(c, path, body, blen, left, resp, &v, &last);
        if (rc == 0)
            return 0;
        c->unsure = c->unsure || c->maybe_applied;
        if (v == V_REAUTH && !reauthed) {
            drop_token(c);
            reauthed = true;
            continue;
        }
        if (v != V_NEXT) {
            if (err)
                *err = last;
            return rc;
        }
        sfs_etcd_conn_next(c);
        if (++tried % c->cfg->n_endpoints == 0)
            sleep_ms(100 + (long)(now_ms() % 100));
    }
}

int sfs_etcd_call(sfs_etcd_conn *c, const char *path, json_t *req, json_t **resp,
                  struct sfs_err *err)
{
    char *body = json_dumps(req, JSON_COMPACT);
    size_t blen;
    int rc;

    *resp = NULL;
    if (!body)
        return sfs_err_set(err, -ENOMEM, "out of memory building an etcd request");
    blen = strlen(body);
    if (blen > SFS_ETCD_MAX_REQUEST)
        rc = sfs_err_set(err, -EMSGSIZE, "an etcd request of %zu bytes is over etcd's limit of "
                         "%d; not sent", blen, SFS_ETCD_MAX_REQUEST);
    else
        rc = call_body(c, path, body, blen, resp, err);
    free(body);
    return rc;
}

/* Appends `str` to b + *n as a JSON string (quotes, backslashes and control characters
 * escaped; b has room for 6 bytes per byte of str, plus 2). */
static void json_quote(char *b, size_t *n, const char *str)
{
    static const char hex[] = "0123456789abcdef";

    b[(*n)++] = '"';
    for (; *str; str++) {
        unsigned char ch = (unsigned char)*str;
        if (ch == '"' || ch == '\\') {
            b[(*n)++] = '\\';
            b[(*n)++] = (char)ch;
        } else if (ch < 0x20) {
            memcpy(b + *n, "\\u00", 4);
            *n += 4;
            b[(*n)++] = hex[ch >> 4];
            b[(*n)++] = hex[ch & 15];
        } else {
            b[(*n)++] = (char)ch;
        }
    }
    b[(*n)++] = '"';
}

/* {"name":USER,"password":PASSWORD} in c->auth_body (secure memory); returns its length. */
static size_t auth_body(sfs_etcd_conn *c)
{
    size_t n = 0;

    memcpy(c->auth_body, "{\"name\":", 8);
    n = 8;
    json_quote(c->auth_body, &n, c->cfg->user);
    memcpy(c->auth_body + n, ",\"password\":", 12);
    n += 12;
    json_quote(c->auth_body, &n, c->cfg->password ? c->cfg->password : "");
    c->auth_body[n++] = '}';
    c->auth_body[n] = '\0';
    return n;
}

/* The authenticate answer, collected in c->answer; libcurl's receive buffer is zeroed as
 * soon as its bytes are copied out (it would keep the token until overwritten). */
struct answer {
    sfs_etcd_conn *c;
    size_t n;
    bool too_big;
};

static size_t collect_secret(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct answer *a = ctx;
    size_t n = size * nmemb;

    if (a->n + n > AUTH_ANSWER_MAX) {
        a->too_big = true;
    } else {
        memcpy(a->c->answer + a->n, data, n);
        a->n += n;
        a->c->answer[a->n] = '\0';
    }
    sfs_wipe(data, n);
    return a->too_big ? 0 : n;
}

/* Copies the "token" string of etcd's authenticate answer (`{"header":{...},"token":"..."}`,
 * in c->answer) into c->token, and nowhere else.  Returns 0 or -EPROTO. */
static int take_token(sfs_etcd_conn *c)
{
    const char *p = strstr(c->answer, "\"token\"");
    size_t n = 0;

    if (!p)
        return -EPROTO;
    p += 7 + strspn(p + 7, " \t\r\n");
    if (*p++ != ':')
        return -EPROTO;
    p += strspn(p, " \t\r\n");
    if (*p++ != '"')
        return -EPROTO;
    while (n < TOKEN_MAX && p[n] && p[n] != '"' && p[n] != '\\' && (unsigned char)p[n] >= 0x20)
        n++;
    if (n == 0 || p[n] != '"')
        return -EPROTO;
    memcpy(c->token, p, n);
    c->token[n] = '\0';
    return 0;
}

/* Judges an authenticate answer that is not a token: etcd's error, which holds no secret. */
static int auth_refused(sfs_etcd_conn *c, long http, size_t n, struct sfs_err *err)
{
    struct buf b = { c->answer, n, AUTH_ANSWER_MAX + 1 };
    json_t *resp = NULL;
    enum verdict v;
    int rc = judge(c, http, &b, &resp, &v, err);

    json_decref(resp);
    if (rc == -EACCES)
        sfs_err_set(err, rc, "%s: etcd refused the password of user '%s'; check [etcd] "
                    "password_file", sfs_etcd_conn_endpoint(c), c->cfg->user);
    return rc < 0 ? rc : -EIO;
}

static int authenticate(sfs_etcd_conn *c, long timeout_ms, struct sfs_err *err)
{
    struct answer a = { c, 0, false };
    size_t blen;
    long http = 0;
    int rc;

    if (!c->secure)
        return sfs_err_set(err, -ENOMEM, "no secure memory for the etcd token");
    drop_token(c);
    blen = auth_body(c);
    rc = post_once(c, "/v3/auth/authenticate", c->auth_body, blen, timeout_ms, &http,
                   collect_secret, &a, err);
    sfs_wipe(c->auth_body, blen);
    c->received += a.n;
    if (a.too_big)
        rc = sfs_err_set(err, -EPROTO, "%s: an authenticate answer of over %d bytes; is this "
                         "etcd?", sfs_etcd_conn_endpoint(c), AUTH_ANSWER_MAX);
    else if (rc == 0 && http != 200)
        rc = auth_refused(c, http, a.n, err);
    else if (rc == 0 && take_token(c) < 0)
        rc = sfs_err_set(err, -EPROTO, "%s: etcd's authenticate answer has no token; is auth "
                         "enabled on the cluster?", sfs_etcd_conn_endpoint(c));
    sfs_wipe(c->answer, AUTH_ANSWER_MAX + 1);
    sfs_wipe_registers();
    return rc;
}

/* ---- encoding helpers ---- */

json_t *sfs_etcd_b64(const void *bytes, size_t len)
{
    size_t cap = sfs_base64_len(len);
    char *s = malloc(cap);
    json_t *j = NULL;

    if (s && sfs_base64_encode(s, cap, bytes, len) == 0)
        j = json_string(s);
    free(s);
    return j;
}

int sfs_etcd_unb64(const json_t *s, unsigned char **out, size_t *len)
{
    const char *in = json_string_value(s);
    size_t n = in ? strlen(in) : 0, cap = n / 4 * 3 + 1;
    unsigned char *p;

    *out = NULL;
    *len = 0;
    if (!in && s)
        return -EPROTO;
    p = malloc(cap);
    if (!p)
        return -ENOMEM;
    if (n && sfs_base64_decode(p, cap, len, in, n) != 0) {
        free(p);
        return -EPROTO;
    }
    p[*len] = '\0';
    *out = p;
    return 0;
}

int64_t sfs_etcd_int(const json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);

    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static json_t *int_str(int64_t v)
{
    char s[24];

    snprintf(s, sizeof s, "%lld", (long long)v);
    return json_string(s);
}

/* The first key after every key that starts with `prefix` (etcd's range_end). */
static size_t prefix_end(const char *prefix, char *out)
{
    size_t n = strlen(prefix);

    memcpy(out, prefix, n);
    while (n > 0 && (unsigned char)out[n - 1] == 0xff)
        n--;
    if (n > 0)
        out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    return n;
}

json_t *sfs_etcd_put_op(const char *key, size_t klen, const unsigned char *val, size_t vlen)
{
    return json_pack("{s:{s:o,s:o}}", "request_put", "key", sfs_etcd_b64(key, klen), "value",
                     sfs_etcd_b64(val, vlen));
}

json_t *sfs_etcd_delete_prefix_op(const char *prefix)
{
    char end[1024];
    size_t n = strlen(prefix) < sizeof end ? prefix_end(prefix, end) : 0;

    return n ? json_pack("{s:{s:o,s:o}}", "request_delete_range", "key",
                         sfs_etcd_b64(prefix, strlen(prefix)), "range_end",
                         sfs_etcd_b64(end, n))
             : NULL;
}

json_t *sfs_etcd_cmp_mod(const char *key, int64_t mod)
{
    return json_pack("{s:o,s:s,s:s,s:o}", "key", sfs_etcd_b64(key, strlen(key)), "target",
                     mod ? "MOD" : "CREATE", "result", "EQUAL",
                     mod ? "mod_revision" : "create_revision", int_str(mod));
}

json_t *sfs_etcd_cmp_exists(const char *key)
{
    return json_pack("{s:o,s:s,s:s,s:o}", "key", sfs_etcd_b64(key, strlen(key)), "target",
                     "CREATE", "result", "GREATER", "create_revision", int_str(0));
}

/* ---- range and txn ---- */

void sfs_etcd_kvs_clear(struct sfs_etcd_kvs *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].val);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

int sfs_etcd_kvs_reserve(struct sfs_etcd_kvs *l)
{
    size_t cap;
    struct sfs_etcd_kv *v;

    if (l->n < l->cap)
        return 0;
    cap = l->cap ? 2 * l->cap : 256;
    v = realloc(l->v, cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

static int append_kv(struct sfs_etcd_kvs *l, json_t *kv)
{
    struct sfs_etcd_kv *e;
    unsigned char *k;

    if (sfs_etcd_kvs_reserve(l) < 0)
        return -ENOMEM;
    e = &l->v[l->n];
    memset(e, 0, sizeof *e);
    if (sfs_etcd_unb64(json_object_get(kv, "key"), &k, &e->klen) < 0)
        return -EPROTO;
    e->key = (char *)k;
    if (sfs_etcd_unb64(json_object_get(kv, "value"), &e->val, &e->vlen) < 0) {
        free(e->key);
        return -EPROTO;
    }
    e->mod_rev = sfs_etcd_int(kv, "mod_revision");
    l->n++;
    return 0;
}

/* One page from `from` (klen bytes) at revision *rev (0: the latest; set from the answer). */
static int range_page(sfs_etcd_conn *c, const char *from, size_t flen, const char *end,
                      size_t elen, long limit, int64_t *rev, struct sfs_etcd_kvs *out,
                      bool *more, struct sfs_err *err)
{
    json_t *req = json_pack("{s:o,s:o,s:o}", "key", sfs_etcd_b64(from, flen), "range_end",
                            sfs_etcd_b64(end, elen), "limit", int_str(limit));
    json_t *resp = NULL, *kvs, *kv;
    size_t i;
    int rc;

    if (req && *rev)
        json_object_set_new(req, "revision", int_str(*rev));
    rc = req ? sfs_etcd_call(c, "/v3/kv/range", req, &resp, err)
             : sfs_err_set(err, -ENOMEM, "out of memory building an etcd range");
    json_decref(req);
    if (rc < 0)
        return rc;
    if (!*rev)
        *rev = sfs_etcd_int(json_object_get(resp, "header"), "revision");
    kvs = json_object_get(resp, "kvs");
    json_array_foreach(kvs, i, kv) {
        rc = append_kv(out, kv);
        if (rc < 0) {
            sfs_err_set(err, rc, "%s: a range answer with a malformed key or value",
                        sfs_etcd_conn_endpoint(c));
            break;
        }
    }
    *more = json_is_true(json_object_get(resp, "more"));
    json_decref(resp);
    return rc;
}

/* A page size that keeps answers near 8 MiB, from the sizes of the page just read (values
 * run from a few bytes to 1 MiB; a page of 1,000 large ones would be a gigabyte). */
static long next_limit(const struct sfs_etcd_kvs *l, size_t from)
{
    size_t i, bytes = 0, n = l->n - from;
    long limit;

    for (i = from; i < l->n; i++)
        bytes += l->v[i].klen + l->v[i].vlen + 64;
    if (!n)
        return 100;
    limit = (long)((8u << 20) / (bytes / n * 4 / 3 + 1));
    return limit < 1 ? 1 : limit > 1000 ? 1000 : limit;
}

int sfs_etcd_range_prefix(sfs_etcd_conn *c, const char *prefix, struct sfs_etcd_kvs *out,
                          struct sfs_err *err)
{
    char end[1024], *from = NULL;
    size_t elen, flen, before, restarts = 0;
    long limit = 100;
    bool more = true;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (strlen(prefix) >= sizeof end)
        return sfs_err_set(err, -ENAMETOOLONG, "the etcd prefix is too long");
    elen = prefix_end(prefix, end);
    while (more) {
        const char *k = out->n ? out->v[out->n - 1].key : prefix;
        size_t kl = out->n ? out->v[out->n - 1].klen : strlen(prefix);
        free(from);
        from = malloc(kl + 1);
        if (!from) {
            rc = sfs_err_set(err, -ENOMEM, "out of memory reading etcd");
            break;
        }
        memcpy(from, k, kl);
        from[kl] = '\0';
        flen = out->n ? kl + 1 : kl;      /* after the last key: the key + "\0" */
        before = out->n;
        rc = range_page(c, from, flen, end, elen, limit, &out->revision, out, &more, err);
        if (rc == 0)
            limit = next_limit(out, before);
        if (rc == -EMSGSIZE && limit > 1) {
            limit = limit / 4 ? limit / 4 : 1;
            rc = 0;
            more = true;
        } else if (rc == -ESTALE && restarts++ < 3) {
            sfs_etcd_kvs_clear(out);
            rc = 0;
            more = true;
        } else if (rc < 0) {
            break;
        }
    }
    free(from);
    if (rc < 0)
        sfs_etcd_kvs_clear(out);
    return rc;
}

int sfs_etcd_txn(sfs_etcd_conn *c, json_t *txn, bool *succeeded, int64_t *revision,
                 struct sfs_err *err)
{
    json_t *resp = NULL;
    int rc = sfs_etcd_call(c, "/v3/kv/txn", txn, &resp, err);

    if (rc == 0) {
        *succeeded = json_is_true(json_object_get(resp, "succeeded"));
        if (revision)
            *revision = sfs_etcd_int(json_object_get(resp, "header"), "revision");
    }
    json_decref(resp);
    return rc;
}

int sfs_etcd_txn_once(sfs_etcd_conn *c, json_t *txn, bool *succeeded, int64_t *revision,
                      struct sfs_err *err)
{
    int rc;

    c->fresh = true;
    rc = sfs_etcd_txn(c, txn, succeeded, revision, err);
    c->fresh = false;
    return rc;
}

/* ---- the watch stream ---- */

struct stream {
    sfs_etcd_conn *c;
    struct buf line;
    sfs_etcd_watch_fn fn;
    void *ctx;
    int fn_rc;
};

static int deliver(struct stream *st, const char *p, size_t n)
{
    json_t *j = json_loadb(p, n, 0, NULL), *r;
    int rc = 0;

    if (!j)
        return 0;   /* a blank keep-alive line */
    r = json_object_get(j, "result");
    if (r)
        rc = st->fn(r, false, st->ctx);
    else
        rc = st->fn(json_object_get(j, "error") ? json_object_get(j, "error") : j, true,
                    st->ctx);
    json_decref(j);
    return rc;
}

static size_t on_stream(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct stream *st = ctx;
    size_t n = size * nmemb, start = 0, i;

    if (st->c->secure)
        sfs_wipe_registers();   /* before the JSON library: the request's token */
    st->c->received += n;
    if (collect(data, size, nmemb, &st->line) != n)
        return 0;
    for (i = 0; i < st->line.n; i++) {
        if (st->line.p[i] != '\n')
            continue;
        st->fn_rc = deliver(st, st->line.p + start, i - start);
        start = i + 1;
        if (st->fn_rc)
            return 0;
    }
    memmove(st->line.p, st->line.p + start, st->line.n - start);
    st->line.n -= start;
    return n;
}

static json_t *watch_request(const char *prefix, int64_t start_rev)
{
    char end[1024];
    size_t n = strlen(prefix) < sizeof end ? prefix_end(prefix, end) : 0;

    return n ? json_pack("{s:{s:o,s:o,s:o,s:b}}", "create_request", "key",
                         sfs_etcd_b64(prefix, strlen(prefix)), "range_end",
                         sfs_etcd_b64(end, n), "start_revision", int_str(start_rev),
                         "progress_notify", 1)
             : NULL;
}

/* Runs the transfer on the multi handle until it ends or *stop. */
static CURLcode pump(sfs_etcd_conn *c, const volatile bool *stop)
{
    CURLcode cc = CURLE_OK;
    int running = 1;

    curl_multi_add_handle(c->multi, c->easy);
    while (running && !*stop) {
        CURLMsg *m;
        int q;
        if (curl_multi_perform(c->multi, &running) != CURLM_OK)
            break;
        while ((m = curl_multi_info_read(c->multi, &q)))
            if (m->msg == CURLMSG_DONE)
                cc = m->data.result;
        if (running)
            curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
    }
    curl_multi_remove_handle(c->multi, c->easy);
    return cc;
}

int sfs_etcd_watch(sfs_etcd_conn *c, const char *prefix, int64_t start_rev,
                   sfs_etcd_watch_fn fn, void *ctx, const volatile bool *stop,
                   struct sfs_err *err)
{
    struct stream st = { c, { 0 }, fn, ctx, 0 };
    json_t *req = watch_request(prefix, start_rev);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    struct curl_slist *h = NULL;
    CURLcode cc;
    int rc = 0;

    json_decref(req);
    if (!body)
        return sfs_err_set(err, -ENOMEM, "out of memory building the etcd watch");
    drop_token(c);
    if (c->cfg->user && (rc = authenticate(c, (long)c->cfg->request_ms, err)) < 0)
        goto out;
    h = setup(c, "/v3/watch", NULL);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)c->cfg->dial_ms);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &st);
    cc = pump(c, stop);
    if (!st.fn_rc && !*stop && st.line.n)
        st.fn_rc = deliver(&st, st.line.p, st.line.n);   /* an error answer without "\n" */
    if (st.fn_rc)
        rc = st.fn_rc;
    else if (!*stop)
        rc = sfs_err_set(err, cc == CURLE_OK ? -EPIPE : curl_errno(cc), "%s: %s",
                         sfs_etcd_conn_endpoint(c),
                         cc == CURLE_OK ? "the watch stream ended"
                         : c->curl_msg[0] ? c->curl_msg : curl_easy_strerror(cc));
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
out:
    free(st.line.p);
    free(body);
    return rc;
}

void sfs_etcd_watch_wakeup(sfs_etcd_conn *c)
{
    curl_multi_wakeup(c->multi);
}
