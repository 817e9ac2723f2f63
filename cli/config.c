#include "cli/config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "secrets/names.h"

/* Debian's inih r55 reads at most INI_MAX_LINE (200) bytes a line including "\r\n\0" and
 * silently parses the rest as a new line; we refuse anything it could split. */
#define CONFIG_MAX_LINE 196
#define CONFIG_MAX_BYTES (1u << 20)
/* inih r55's MAX_SECTION, counting the NUL: longer section names are cut */
#define CONFIG_MAX_SECTION 50

struct load_ctx {
    struct sfs_config *cfg;
    const char *file;
    struct sfs_err *err;
    int rc;
    int err_line;       /* the line ctx->rc is about */
    /* names of keys seen so far, as "section\nkey", to refuse repeats */
    char **seen;
    size_t n_seen;
    /* the reader's position: inih r55 does not pass line numbers to handlers */
    const char *buf;
    size_t len, pos;
    int line;
};

int sfs_parse_mode(const char *s, mode_t *out)
{
    char *end;
    unsigned long v;

    if (!*s || s[0] == '-' || s[0] == '+')
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 8);
    if (errno || *end || v > 0777)
        return -EINVAL;
    *out = (mode_t)v;
    return 0;
}

static int parse_id(const char *s, unsigned long *out)
{
    char *end;
    unsigned long v;

    if (!*s || s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v >= (unsigned long)UINT_MAX)
        return -EINVAL;
    *out = v;
    return 0;
}

int sfs_parse_uid(const char *s, uid_t *out)
{
    unsigned long v;
    struct passwd *pw;

    if (parse_id(s, &v) == 0) {
        *out = (uid_t)v;
        return 0;
    }
    pw = getpwnam(s);
    if (!pw)
        return -ENOENT;
    *out = pw->pw_uid;
    return 0;
}

int sfs_parse_gid(const char *s, gid_t *out)
{
    unsigned long v;
    struct group *gr;

    if (parse_id(s, &v) == 0) {
        *out = (gid_t)v;
        return 0;
    }
    gr = getgrnam(s);
    if (!gr)
        return -ENOENT;
    *out = gr->gr_gid;
    return 0;
}

int sfs_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"yes", "true", "on", "1"};
    static const char *no[] = {"no", "false", "off", "0"};
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int sfs_parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v, mult = 1;

    if (!*s || s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    if (*end == 'K' || *end == 'k')
        mult = 1ull << 10;
    else if (*end == 'M' || *end == 'm')
        mult = 1ull << 20;
    else if (*end == 'G' || *end == 'g')
        mult = 1ull << 30;
    else if (*end)
        return -EINVAL;
    if (*end && end[1])
        return -EINVAL;
    if (v > SIZE_MAX / mult)
        return -ERANGE;
    *out = (size_t)(v * mult);
    return 0;
}

static void config_defaults(struct sfs_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_secret_size = SFS_DEFAULT_MAX_SECRET;
    cfg->max_store_size = SFS_DEFAULT_MAX_STORE;
    cfg->allow_other = -1;
}

void sfs_config_free(struct sfs_config *cfg)
{
    size_t i;

    free(cfg->path);
    free(cfg->store_path);
    free(cfg->key_file);
    free(cfg->key_credential);
    free(cfg->state_dir);
    free(cfg->mountpoint);
    free(cfg->cache);
    free(cfg->audit);
    free(cfg->only);
    free(cfg->platform_env);
    free(cfg->platform_file);
    free(cfg->reserved_prefix);
    free(cfg->docker_audit);
    free(cfg->etcd_ca_file);
    free(cfg->etcd_cert_file);
    free(cfg->etcd_key_file);
    free(cfg->etcd_user);
    free(cfg->etcd_password_file);
    free(cfg->etcd_cache_file);
    for (i = 0; i < cfg->n_secrets; i++)
        free(cfg->secrets[i].name);
    free(cfg->secrets);
    config_defaults(cfg);
}

const struct sfs_config_secret *sfs_config_secret(const struct sfs_config *cfg,
                                                  const char *name)
{
    size_t i;

    for (i = 0; i < cfg->n_secrets; i++)
        if (strcmp(cfg->secrets[i].name, name) == 0)
            return &cfg->secrets[i];
    return NULL;
}

static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);

    if (!copy)
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

/* Returns 0, or a negative errno with ctx->err filled. */
static int fail(struct load_ctx *ctx, int line, const char *fmt, const char *a, const char *b)
{
    char what[SFS_ERR_MAX];

    snprintf(what, sizeof what, fmt, a, b);
    return sfs_err_set(ctx->err, -EINVAL, "%s:%d: %s", ctx->file, line, what);
}

static int seen_before(struct load_ctx *ctx, const char *section, const char *name)
{
    size_t i, len = strlen(section) + strlen(name) + 2;
    char *key = malloc(len), **grown;

    if (!key)
        return -ENOMEM;
    snprintf(key, len, "%s\n%s", section, name);
    for (i = 0; i < ctx->n_seen; i++) {
        if (strcmp(ctx->seen[i], key) == 0) {
            free(key);
            return 1;
        }
    }
    grown = realloc(ctx->seen, (ctx->n_seen + 1) * sizeof *grown);
    if (!grown) {
        free(key);
        return -ENOMEM;
    }
    ctx->seen = grown;
    ctx->seen[ctx->n_seen++] = key;
    return 0;
}

static struct sfs_config_secret *secret_section(struct sfs_config *cfg, const char *name)
{
    struct sfs_config_secret *grown;
    size_t i;

    for (i = 0; i < cfg->n_secrets; i++)
        if (strcmp(cfg->secrets[i].name, name) == 0)
            return &cfg->secrets[i];
    grown = realloc(cfg->secrets, (cfg->n_secrets + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    cfg->secrets = grown;
    memset(&grown[cfg->n_secrets], 0, sizeof *grown);
    grown[cfg->n_secrets].name = strdup(name);
    if (!grown[cfg->n_secrets].name)
        return NULL;
    return &grown[cfg->n_secrets++];
}

static int apply_owner_mode(struct load_ctx *ctx, int line, const char *name, const char *value,
                            bool *has_uid, uid_t *uid, bool *has_gid, gid_t *gid,
                            bool *has_mode, mode_t *mode)
{
    if (strcmp(name, "uid") == 0) {
        if (sfs_parse_uid(value, uid) < 0)
            return fail(ctx, line, "uid '%s' is neither a number nor a known user%s", value, "");
        *has_uid = true;
    } else if (strcmp(name, "gid") == 0) {
        if (sfs_parse_gid(value, gid) < 0)
            return fail(ctx, line, "gid '%s' is neither a number nor a known group%s", value,
                        "");
        *has_gid = true;
    } else if (strcmp(name, "mode") == 0) {
        if (sfs_parse_mode(value, mode) < 0)
            return fail(ctx, line, "mode '%s' is not an octal mode such as 0400%s", value, "");
        *has_mode = true;
    } else {
        return 1;
    }
    return 0;
}

/* "5", "0.5" or "2.5" seconds into milliseconds (1 ms to 1 hour). */
static int parse_seconds(const char *s, unsigned *ms)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.001 && v <= 3600))
        return -EINVAL;
    *ms = (unsigned)(v * 1000 + 0.5);
    return 0;
}

static int handle_store(struct load_ctx *ctx, int line, const char *name, const char *value)
{
    struct sfs_config *cfg = ctx->cfg;

    if ((strcmp(name, "path") == 0 || strcmp(name, "key_file") == 0 ||
         strcmp(name, "key_credential") == 0 || strcmp(name, "state_dir") == 0) && !*value)
        return fail(ctx, line, "%s is empty; give a path or remove the line%s", name, "");
    if (strcmp(name, "path") == 0)
        return set_string(&cfg->store_path, value);
    if (strcmp(name, "state_dir") == 0)
        return set_string(&cfg->state_dir, value);
    if ((strcmp(name, "key_file") == 0 && cfg->key_credential) ||
        (strcmp(name, "key_credential") == 0 && cfg->key_file))
        return fail(ctx, line, "key_file and key_credential both name the key; keep one%s%s",
                    "", "");
    if (strcmp(name, "key_file") == 0)
        return set_string(&cfg->key_file, value);
    if (strcmp(name, "key_credential") == 0) {
        if (strchr(value, '/') || strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
            return fail(ctx, line, "key_credential '%s' is not a credential name (no '/'); "
                        "give the name from LoadCredentialEncrypted=NAME:...%s", value, "");
        return set_string(&cfg->key_credential, value);
    }
    if (strcmp(name, "max_secret_size") == 0 || strcmp(name, "max_store_size") == 0) {
        size_t *slot = name[4] == 's' && name[5] == 'e' ? &cfg->max_secret_size
                                                        : &cfg->max_store_size;
        if (sfs_parse_size(value, slot) < 0 || *slot == 0)
            return fail(ctx, line, "%s '%s' is not a size such as 1M or 65536", name, value);
        return 0;
    }
    if (strcmp(name, "lock_timeout") == 0) {
        if (parse_seconds(value, &cfg->lock_timeout_ms) < 0)
            return fail(ctx, line, "lock_timeout '%s' is not a number of seconds such as 30 "
                        "(at most 3600)%s", value, "");
        return 0;
    }
    if (strcmp(name, "watch") == 0) {
        if (sfs_parse_bool(value, &cfg->watch) < 0)
            return fail(ctx, line, "watch '%s' is not yes or no%s", value, "");
        return 0;
    }
    return 1;
}

static int handle_mount(struct load_ctx *ctx, int line, const char *name, const char *value)
{
    struct sfs_config *cfg = ctx->cfg;
    int rc;
    bool b;

    if (strcmp(name, "mountpoint") == 0 && !*value)
        return fail(ctx, line, "%s is empty; give a path or remove the line%s", name, "");
    if (strcmp(name, "mountpoint") == 0)
        return set_string(&cfg->mountpoint, value);
    if (strcmp(name, "cache") == 0) {
        if (strcmp(value, "kernel") != 0 && strcmp(value, "none") != 0)
            return fail(ctx, line, "cache '%s' must be kernel or none%s", value, "");
        return set_string(&cfg->cache, value);
    }
    if (strcmp(name, "only") == 0)
        return set_string(&cfg->only, value);
    if (strcmp(name, "audit") == 0 && !*value)
        return fail(ctx, line, "%s is empty; give a path or 'journal', or remove the line%s",
                    name, "");
    if (strcmp(name, "audit") == 0)
        return set_string(&cfg->audit, value);
    if (strcmp(name, "allow_other") == 0) {
        if (sfs_parse_bool(value, &b) < 0)
            return fail(ctx, line, "allow_other '%s' is not yes or no%s", value, "");
        cfg->allow_other = b;
        return 0;
    }
    rc = apply_owner_mode(ctx, line, name, value, &cfg->has_uid, &cfg->uid, &cfg->has_gid,
                          &cfg->gid, &cfg->has_mode, &cfg->mode);
    return rc;
}

static int handle_platform(struct load_ctx *ctx, int line, const char *name, const char *value)
{
    struct sfs_config *cfg = ctx->cfg;

    if (strcmp(name, "file") == 0 && !*value)
        return fail(ctx, line, "%s is empty; give a path or remove the line%s", name, "");
    if (strcmp(name, "env") == 0)
        return set_string(&cfg->platform_env, value);
    if (strcmp(name, "file") == 0)
        return set_string(&cfg->platform_file, value);
    if (strcmp(name, "reserved_prefix") == 0)
        return set_string(&cfg->reserved_prefix, value);
    return 1;
}

static int handle_etcd(struct load_ctx *ctx, int line, const char *name, const char *value)
{
    struct sfs_config *cfg = ctx->cfg;
    static const char *const paths[] = {"ca_file", "cert_file", "key_file", "password_file",
                                        "cache_file", "user"};
    char **slots[] = {&cfg->etcd_ca_file, &cfg->etcd_cert_file, &cfg->etcd_key_file,
                      &cfg->etcd_password_file, &cfg->etcd_cache_file, &cfg->etcd_user};
    size_t i;

    for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (strcmp(name, paths[i]) != 0)
            continue;
        if (!*value)
            return fail(ctx, line, "%s is empty; give a value or remove the line%s", name, "");
        return set_string(slots[i], value);
    }
    if (strcmp(name, "dial_timeout") == 0 || strcmp(name, "request_timeout") == 0) {
        unsigned *slot = name[0] == 'd' ? &cfg->etcd_dial_timeout_ms
                                        : &cfg->etcd_request_timeout_ms;
        if (parse_seconds(value, slot) < 0)
            return fail(ctx, line, "%s '%s' is not a number of seconds such as 5 or 0.5",
                        name, value);
        return 0;
    }
    return 1;
}

/* [docker]: what `secretfs docker-plugin` takes from the config (its flags win). */
static int handle_docker(struct load_ctx *ctx, int line, const char *name, const char *value)
{
    if (strcmp(name, "audit") != 0)
        return 1;
    if (!*value)
        return fail(ctx, line, "audit is empty; give 'journal' or a directory, or remove the "
                    "line%s%s", "", "");
    return set_string(&ctx->cfg->docker_audit, value);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *ctx = user;
    int line = ctx->line;
    int rc;

    if (ctx->rc)
        return 0; /* inih keeps going after an error; the first one is what we report */
    rc = seen_before(ctx, section, name);
    if (rc > 0)
        rc = fail(ctx, line, "'%s' is set twice in [%s]; keep one", name, section);
    if (rc == 0) {
        if (strcmp(section, "store") == 0) {
            rc = handle_store(ctx, line, name, value);
        } else if (strcmp(section, "mount") == 0) {
            rc = handle_mount(ctx, line, name, value);
        } else if (strcmp(section, "platform") == 0) {
            rc = handle_platform(ctx, line, name, value);
        } else if (strcmp(section, "etcd") == 0) {
            rc = handle_etcd(ctx, line, name, value);
        } else if (strcmp(section, "docker") == 0) {
            rc = handle_docker(ctx, line, name, value);
        } else if (strncmp(section, "secret:", 7) == 0) {
            const char *sname = section + 7, *why;
            struct sfs_config_secret *s;
            if (!sfs_name_valid(sname, &why)) {
                rc = fail(ctx, line, "section [%s]: the secret name %s", section, why);
            } else if (!(s = secret_section(ctx->cfg, sname))) {
                rc = -ENOMEM;
            } else {
                rc = apply_owner_mode(ctx, line, name, value, &s->has_uid, &s->uid,
                                      &s->has_gid, &s->gid, &s->has_mode, &s->mode);
            }
        } else if (!*section) {
            rc = fail(ctx, line, "'%s' is outside any section; put it under [store], [mount] "
                      "or [platform]%s", name, "");
        } else {
            rc = fail(ctx, line,
                      "unknown section [%s]; known: [store], [mount], [platform], "
                      "[etcd], [docker], [secret:NAME]%s", section, "");
        }
    }
    if (rc > 0)
        rc = fail(ctx, line, "unknown key '%s' in [%s]; see examples/secretfs.ini", name,
                  section);
    if (rc == -ENOMEM)
        sfs_err_set(ctx->err, rc, "%s: out of memory", ctx->file);
    ctx->rc = rc;
    if (rc)
        ctx->err_line = line;
    return rc == 0;
}

/* Refuses what Debian's inih would misread instead of rejecting. */
static int prevalidate(const char *file, const char *buf, size_t len, struct sfs_err *err)
{
    size_t i, start = 0;
    int line = 1;

    for (i = 0; i <= len; i++) {
        if (i < len && buf[i] == '\0')
            return sfs_err_set(err, -EINVAL, "%s:%d: contains a NUL byte; the file must be text",
                               file, line);
        if (i < len && (((unsigned char)buf[i] < 0x20 && buf[i] != '\t' && buf[i] != '\n' &&
                         !(buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n')) ||
                        buf[i] == 0x7f))
            return sfs_err_set(err, -EINVAL, "%s:%d: contains the control character 0x%02x; "
                               "the file must be plain text", file, line,
                               (unsigned char)buf[i]);
        if (i == len || buf[i] == '\n') {
            size_t n = i - start;
            const char *l = buf + start;
            if (n && l[n - 1] == '\r')
                n--;
            if (n > CONFIG_MAX_LINE)
                return sfs_err_set(err, -EINVAL,
                                   "%s:%d: line is %zu bytes long; at most %d are allowed "
                                   "(inih would split it)", file, line, n, CONFIG_MAX_LINE);
            if (n && (l[0] == ' ' || l[0] == '\t')) {
                size_t j = 0;
                while (j < n && (l[j] == ' ' || l[j] == '\t'))
                    j++;
                if (j < n && l[j] != ';' && l[j] != '#')
                    return sfs_err_set(err, -EINVAL,
                                       "%s:%d: line starts with whitespace (inih would append "
                                       "it to the previous value); remove the indentation",
                                       file, line);
            }
            start = i + 1;
            line++;
        }
    }
    return 0;
}

/* Checks a "[section]" line as inih r55 will read it, since inih itself ignores text after
 * the ']', cuts names to 49 bytes and never tells the handler about a section without keys.
 * Lines that are not section headers, or that inih will reject anyway, pass. */
static int check_section_line(struct load_ctx *ctx, const char *l, size_t n)
{
    char section[CONFIG_MAX_LINE + 1];
    const char *why;
    bool was_space = false;
    size_t k;

    if (ctx->line == 1 && n >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0) {
        l += 3;
        n -= 3;
    }
    while (n && isspace((unsigned char)l[n - 1]))
        n--;
    if (!n || l[0] != '[')
        return 0;
    for (k = 1; k < n && l[k] != ']' && !(was_space && l[k] == ';'); k++)
        was_space = isspace((unsigned char)l[k]);
    if (k >= n || l[k] != ']')
        return 0;
    memcpy(section, l + 1, k - 1);
    section[k - 1] = '\0';
    for (k++; k < n && isspace((unsigned char)l[k]); k++)
        ;
    if (k < n && l[k] != ';' && l[k] != '#')
        return fail(ctx, ctx->line, "text after the ']' of [%s]; remove it or start a comment "
                    "with ';'%s", section, "");
    if (strlen(section) >= CONFIG_MAX_SECTION)
        return fail(ctx, ctx->line, "section [%.60s...] is too long; section names have at "
                    "most 49 bytes%s", section, "");
    if (strcmp(section, "store") == 0 || strcmp(section, "mount") == 0 ||
        strcmp(section, "platform") == 0 || strcmp(section, "etcd") == 0 ||
        strcmp(section, "docker") == 0)
        return 0;
    if (strncmp(section, "secret:", 7) == 0) {
        if (!sfs_name_valid(section + 7, &why))
            return fail(ctx, ctx->line, "section [%s]: the secret name %s", section, why);
        return 0;
    }
    return fail(ctx, ctx->line, "unknown section [%s]; known: [store], [mount], [platform], "
                "[etcd], [docker], [secret:NAME]%s", section, "");
}

/* ini_reader over the validated buffer, one line per call, counting lines. */
static char *reader(char *str, int num, void *stream)
{
    struct load_ctx *ctx = stream;
    size_t n = 0;

    if (ctx->pos >= ctx->len || num < 2)
        return NULL;
    while (ctx->pos < ctx->len && n < (size_t)num - 1) {
        char c = ctx->buf[ctx->pos++];
        str[n++] = c;
        if (c == '\n')
            break;
    }
    str[n] = '\0';
    ctx->line++;
    if (!ctx->rc) {
        ctx->rc = check_section_line(ctx, str, n);
        if (ctx->rc) {
            ctx->err_line = ctx->line;
            return NULL;
        }
    }
    return str;
}

static int read_file(const char *path, char **out, size_t *out_len, struct sfs_err *err)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    int rc = 0;

    if (!f)
        return sfs_err_set(err, -errno, "%s: %s", path, strerror(errno));
    for (;;) {
        if (cap - len < 4096) {
            char *grown;
            cap = cap ? cap * 2 : 8192;
            grown = realloc(buf, cap + 1);
            if (!grown) {
                rc = sfs_err_set(err, -ENOMEM, "%s: out of memory", path);
                goto out;
            }
            buf = grown;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len > CONFIG_MAX_BYTES) {
            rc = sfs_err_set(err, -EFBIG, "%s: larger than 1 MiB; is this the config file?",
                             path);
            goto out;
        }
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = sfs_err_set(err, -EIO, "%s: read error", path);
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

int sfs_config_load(const char *path, bool explicit_path, struct sfs_config *cfg,
                    struct sfs_err *err)
{
    struct load_ctx ctx = {.cfg = cfg, .file = path, .err = err};
    struct stat st;
    char *buf = NULL;
    size_t len = 0, i;
    int rc;

    config_defaults(cfg);
    if (stat(path, &st) < 0) {
        if (errno == ENOENT && !explicit_path)
            return 0;
    } else if (S_ISDIR(st.st_mode)) {
        return sfs_err_set(err, -EISDIR, "%s: is a directory, not a config file; point "
                           "--config or SECRETFS_CONFIG at the file", path);
    }
    rc = read_file(path, &buf, &len, err);
    if (rc < 0)
        goto out;
    rc = prevalidate(path, buf, len, err);
    if (rc < 0)
        goto out;
    ctx.buf = buf;
    ctx.len = len;
    rc = ini_parse_stream(reader, &ctx, handler, &ctx);
    if (ctx.rc && !(rc > 0 && rc < ctx.err_line)) {
        rc = ctx.rc; /* else inih found a bad line before the one we refused */
    } else if (rc > 0) {
        rc = sfs_err_set(err, -EINVAL,
                         "%s:%d: not a [section] or key = value line", path, rc);
    } else if (rc < 0) {
        rc = sfs_err_set(err, -ENOMEM, "%s: out of memory", path);
    } else {
        rc = set_string(&cfg->path, path);
    }
out:
    for (i = 0; i < ctx.n_seen; i++)
        free(ctx.seen[i]);
    free(ctx.seen);
    free(buf);
    return rc;
}
