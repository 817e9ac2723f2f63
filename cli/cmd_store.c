/* cli/cmd_store.c — the commands that manage the store: update-secrets, set, rm, list, get
 * (keygen and rekey are in cli/cmd_keys.c).  Every change is read-modify-write under the store's writer lock, validated
 * whole before anything is written. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "util/fileio.h"
#include "crypto/secmem.h"
#include "secrets/dotenv.h"
#include "secrets/names.h"

#define RELOAD_OPTION {"reload", optional_argument, NULL, OPT_RELOAD}, \
    {"lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT}
#define RELOAD_HELP \
    "  --reload[=MOUNTPOINT]  then make the daemon serving MOUNTPOINT (default: [mount]\n" \
    "                         mountpoint, then " SFS_DEFAULT_MOUNTPOINT ") serve the change\n" \
    "  --lock-timeout SECONDS wait at most this long for another command's store lock\n" \
    "                         (default 30; after a second it says that it waits)\n"

static const char update_help[] =
    "usage: secretfs update-secrets [--secrets K=V|NAME]... [--secrets-file FILE|-]\n"
    "                               [--secret-mount PATH]... [--overwrite]\n"
    "                               [--ignore-empty-secrets] [--reload[=MOUNTPOINT]]\n"
    "                               [store options]\n"
    "\n"
    "Import secrets, as `lk agent update-secrets` does.\n"
    "  --secrets K=V          one secret; parsed as one dotenv line (quoting works as in\n"
    "                         the file); repeatable; never split on commas.  The value is\n"
    "                         blanked in the process's argv at once, but was visible to\n"
    "                         other users until then: prefer the two forms below\n"
    "  --secrets NAME         the value of the environment variable NAME, byte for byte\n"
    "  --secrets-file FILE    a dotenv file, parsed exactly as godotenv 1.5.1 (lk) does;\n"
    "                         - reads standard input\n"
    "  --secret-mount PATH    store the file's bytes under its base name (at most 1 MiB)\n"
    "  --overwrite            make the store exactly the given set (default: merge)\n"
    "  --ignore-empty-secrets skip empty values (each is named) instead of failing\n"
    "Precedence: --secret-mount, then --secrets overrides, then --secrets-file fills only\n"
    "names not already given.  LIVEKIT_* names are supplied by the platform and dropped\n"
    "with a warning.  Nothing is written unless the whole input is valid.\n"
    RELOAD_HELP;

static const char set_help[] =
    "usage: secretfs set NAME [--from-file FILE] [--reload[=MOUNTPOINT]] [store options]\n"
    "\n"
    "Store stdin's bytes (or FILE's) exactly as the value of NAME.\n"
    RELOAD_HELP;

static const char rm_help[] =
    "usage: secretfs rm NAME... [--reload[=MOUNTPOINT]] [store options]\n"
    "\n"
    "Remove the named secrets.  If any is missing, nothing is removed.\n"
    RELOAD_HELP;

static const char list_help[] =
    "usage: secretfs list [--json] [store options]\n"
    "\n"
    "List name, size, created and updated time of every secret.  Never prints values.\n";

static const char get_help[] =
    "usage: secretfs get NAME [store options]\n"
    "\n"
    "Write the exact bytes of NAME to stdout, nothing else.\n";

static const char *reserved_prefix(const struct cli *cli)
{
    return cli->cfg.reserved_prefix ? cli->cfg.reserved_prefix : SFS_DEFAULT_RESERVED_PREFIX;
}

static int64_t now_seconds(void)
{
    return (int64_t)time(NULL);
}

/* Parses the common options plus `extra` ones; the command's own options come back through
 * `handle`.  Returns -1 to go on, or an exit code. */
typedef int (*option_fn)(struct cli *cli, int opt, const char *arg, void *ctx);

/* --lock-timeout SECONDS (a positive number, at most a day) into cli->lock_timeout_ms. */
static int parse_lock_timeout(struct cli *cli, const char *arg)
{
    char *end;
    double seconds = strtod(arg, &end);

    if (end == arg || *end || !(seconds > 0) || seconds > 86400) {
        cli_error(cli, "--lock-timeout %s: give a number of seconds, such as 30", arg);
        return -EINVAL;
    }
    cli->lock_timeout_ms = (unsigned)(seconds * 1000.0);
    if (cli->lock_timeout_ms == 0)
        cli->lock_timeout_ms = 1;
    return 0;
}

static int parse_options(struct cli *cli, int argc, char **argv, const struct option *extra,
                         size_t n_extra, const char *help, option_fn handle, void *ctx)
{
    struct option opts[16] = {CLI_COMMON_OPTIONS};
    size_t n_common = CLI_N_COMMON_OPTIONS, i;
    int opt;

    for (i = 0; i < n_extra && n_common + i < 15; i++)
        opts[n_common + i] = extra[i];
    optind = 1;
    opterr = 1;
    /* options may follow operands (secretfs get NAME --store S) */
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, help, true);
        if (opt == '?')
            return cli_usage(cli, help, false);
        if (cli_common_option(cli, opt, optarg))
            continue;
        if (opt == OPT_RELOAD) {
            cli->want_reload = true;
            cli->reload_mount = optarg;
            continue;
        }
        if (opt == OPT_LOCK_TIMEOUT) {
            if (parse_lock_timeout(cli, optarg) < 0)
                return cli_usage(cli, help, false);
            continue;
        }
        if (!handle || handle(cli, opt, optarg, ctx) != 0)
            return cli_usage(cli, help, false);
    }
    return -1;
}

/* After a successful write: --reload, if it was asked for. */
static int maybe_reload(struct cli *cli)
{
    if (!cli->want_reload)
        return EXIT_OK;
    if (cli_reload_mount(cli, cli->reload_mount ? cli->reload_mount
                                                : cli_default_mountpoint(cli), 10.0) != EXIT_OK) {
        cli_error(cli, "the store was updated, but the mount still serves the previous "
                  "secrets; run 'secretfs reload' once the problem above is fixed");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Applies `edit` to the store as one read-modify-write (store/store.h), then --reload.
 * Prints the error; returns an exit code. */
static int change_store(struct cli *cli, sfs_store_edit_fn edit, void *ctx)
{
    struct sfs_err err;
    sfs_store *store = NULL;
    sfs_key *key = NULL;
    int rc = EXIT_FAIL;

    if (cli_store_open(cli, &store) != EXIT_OK)
        return EXIT_FAIL;
    if (cli_key_load(cli, &key) != EXIT_OK)
        goto out;
    /* past RLIMIT_FSIZE, write() must fail with EFBIG (and the temp file go) rather than
     * SIGXFSZ kill us with no message */
    signal(SIGXFSZ, SIG_IGN);
    rc = sfs_store_update(store, key, edit, ctx, &err);
    if (rc == -EKEYREJECTED) {
        /* `secretfs rekey` writes the key file before it reseals: read the key file again */
        sfs_key_free(key);
        key = NULL;
        if (cli_key_load(cli, &key) != EXIT_OK) {
            rc = EXIT_FAIL;
            goto out;
        }
        rc = sfs_store_update(store, key, edit, ctx, &err);
    }
    if (rc < 0) {
        cli_error(cli, "%s", err.msg);
        rc = EXIT_FAIL;
        goto out;
    }
    rc = maybe_reload(cli);
out:
    sfs_key_free(key);
    sfs_store_close(store);
    return rc;
}

/* The store's size limit, checked on the set about to be written. */
static int check_store_size(const struct cli *cli, const sfs_set *set, struct sfs_err *err)
{
    if (sfs_set_value_bytes(set) <= cli->cfg.max_store_size)
        return 0;
    return sfs_err_set(err, -EFBIG, "the store would hold %zu bytes of values, over the "
                       "%zu-byte limit ([store] max_store_size); nothing was written",
                       sfs_set_value_bytes(set), cli->cfg.max_store_size);
}

/* ---- update-secrets ---- */

enum { OPT_SECRETS = OPT_FIRST_COMMAND_OPTION, OPT_SECRETS_FILE, OPT_SECRET_MOUNT,
       OPT_OVERWRITE, OPT_IGNORE_EMPTY, OPT_FROM_FILE, OPT_JSON };

struct update_args {
    const char **secrets;
    size_t n_secrets;
    const char **mounts;
    size_t n_mounts;
    const char *secrets_file;
    bool overwrite;
    bool ignore_empty;
};

static int push(const char ***list, size_t *n, const char *value)
{
    const char **grown = realloc(*list, (*n + 1) * sizeof *grown);

    if (!grown)
        return -ENOMEM;
    grown[(*n)++] = value;
    *list = grown;
    return 0;
}

static int update_option(struct cli *cli, int opt, const char *arg, void *ctx)
{
    struct update_args *a = ctx;

    switch (opt) {
    case OPT_SECRETS:
        return push(&a->secrets, &a->n_secrets, arg);
    case OPT_SECRET_MOUNT:
        return push(&a->mounts, &a->n_mounts, arg);
    case OPT_SECRETS_FILE:
        if (a->secrets_file) {
            cli_error(cli, "--secrets-file given twice; merge the files first");
            return -EINVAL;
        }
        a->secrets_file = arg;
        return 0;
    case OPT_OVERWRITE:
        a->overwrite = true;
        return 0;
    case OPT_IGNORE_EMPTY:
        a->ignore_empty = true;
        return 0;
    default:
        return -EINVAL;
    }
}

static void print_warning(void *ctx, const char *msg)
{
    cli_warn(ctx, "%s", msg);
}

/* Copies every entry of `src` into `dst`; when `fill_only`, only names dst lacks.  Source
 * lines are kept only when `keep_lines` (they then point into the --secrets-file). */
static int merge_into(sfs_set *dst, const sfs_set *src, bool fill_only, bool keep_lines)
{
    size_t i;

    for (i = 0; i < sfs_set_count(src); i++) {
        const sfs_entry *e = sfs_set_at(src, i);
        int rc;
        if (fill_only && sfs_set_get(dst, e->name))
            continue;
        rc = sfs_set_put_line(dst, e->name, e->value, e->len, 0, 0, keep_lines ? e->line : 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* `--secrets NAME` (the `nth` --secrets, NAME a valid name): the value of the environment
 * variable NAME, byte for byte (as `docker run -e NAME` does), so it never appears on a
 * command line.  Prints errors. */
static int secret_from_env(struct cli *cli, const char *name, size_t nth, sfs_set *in)
{
    const char *value = getenv(name);

    /* the argument is not quoted: it may be a value given without its NAME= */
    if (!value) {
        cli_error(cli, "--secrets #%zu has no '=' and names no variable of the environment; "
                  "write --secrets NAME=VALUE, or export NAME and write --secrets NAME", nth);
        return EXIT_FAIL;
    }
    if (sfs_set_put(in, name, value, strlen(value), 0, 0) < 0) {
        cli_error(cli, "out of memory");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Reads the inputs in lk's precedence order into `in`; prints errors.  `origin_file` is
 * the --secrets-file path, for messages about entries that came from it. */
static int gather_inputs(struct cli *cli, const struct update_args *a, sfs_set *in)
{
    struct sfs_err err;
    sfs_set *one = NULL, *file_set = NULL, *raw = NULL;
    const char *why;
    size_t i;
    int rc = EXIT_FAIL;

    for (i = 0; i < a->n_mounts; i++) {
        char *copy = strdup(a->mounts[i]);
        int r = copy ? cli_read_value_file(a->mounts[i], cli->cfg.max_secret_size, in,
                                           basename(copy), 0, &err)
                     : sfs_err_set(&err, -ENOMEM, "out of memory");
        free(copy);
        if (r < 0) {
            cli_error(cli, "--secret-mount %s", err.msg);
            goto out;
        }
    }
    for (i = 0; i < a->n_secrets; i++) {
        const char *s = a->secrets[i];
        int r;
        if (!strpbrk(s, "=:") && sfs_name_valid(s, &why)) {
            if (secret_from_env(cli, s, i + 1, in) != EXIT_OK)
                goto out;
            continue;
        }
        r = sfs_dotenv_parse(s, strlen(s), "--secrets", &one, print_warning, cli, &err);
        sfs_wipe((char *)s, strlen(s)); /* main's heap copy of the argument (cli/main.c) */
        if (r < 0) {
            cli_error(cli, "%s (write --secrets NAME=VALUE)", err.msg);
            goto out;
        }
        if (sfs_set_count(one) != 1) {
            cli_error(cli, "--secrets #%zu holds %zu pairs; give exactly one NAME=VALUE per "
                      "--secrets", i + 1, sfs_set_count(one));
            goto out;
        }
        if (!sfs_set_at(one, 0)->name[0]) {
            cli_error(cli, "--secrets #%zu has no name; write --secrets NAME=VALUE",
                      i + 1);
            goto out;
        }
        if (merge_into(in, one, false, false) < 0)
            goto out;
        sfs_set_free(one);
        one = NULL;
    }
    if (a->secrets_file) {
        const sfs_entry *text;
        raw = sfs_set_new(0);
        if (!raw || cli_read_value_file(a->secrets_file, cli->cfg.max_store_size, raw, "f", 0,
                                        &err) < 0) {
            cli_error(cli, "%s", raw ? err.msg : "out of memory");
            goto out;
        }
        text = sfs_set_get(raw, "f");
        if (sfs_dotenv_parse((const char *)text->value, text->len, a->secrets_file, &file_set,
                             print_warning, cli, &err) < 0) {
            cli_error(cli, "%s; nothing was stored", err.msg);
            goto out;
        }
        if (merge_into(in, file_set, true, true) < 0)
            goto out;
    }
    rc = EXIT_OK;
out:
    sfs_set_free(one);
    sfs_set_free(file_set);
    sfs_set_free(raw);
    return rc;
}

/* Applies secretfs's own rules on top of the parsed input: reserved names dropped, names
 * that cannot be stored and empty values refused.  Prints every problem. */
static int apply_rules(struct cli *cli, const struct update_args *a, sfs_set *in)
{
    const char *prefix = reserved_prefix(cli), *why;
    size_t i, dropped = 0, errors = 0;
    char where[300];

    for (i = 0; i < sfs_set_count(in);) {
        const sfs_entry *e = sfs_set_at(in, i);
        if (e->line)
            snprintf(where, sizeof where, " (%.256s:%u)", a->secrets_file, e->line);
        else
            where[0] = '\0';
        if (sfs_name_reserved(e->name, prefix)) {
            cli_warn(cli, "%s is supplied by the platform; not stored", e->name);
            dropped++;
            sfs_set_remove(in, e->name);
            continue;
        }
        if (!sfs_name_valid(e->name, &why)) {
            cli_error(cli, "the name '%s'%s %s; names use A-Z a-z 0-9 . _ - and do not "
                      "start with '.'", e->name, where, why);
            errors++;
        } else if (e->len == 0 && a->ignore_empty) {
            printf("skipped %s: empty value\n", e->name);
            sfs_set_remove(in, e->name);
            continue;
        } else if (e->len == 0) {
            cli_error(cli, "%s%s has an empty value; give it a value or pass "
                      "--ignore-empty-secrets", e->name, where);
            errors++;
        } else if (e->len > cli->cfg.max_secret_size) {
            cli_error(cli, "%s%s is %u bytes, over the %zu-byte limit ([store] "
                      "max_secret_size)", e->name, where, e->len, cli->cfg.max_secret_size);
            errors++;
        }
        i++;
    }
    if (errors) {
        cli_error(cli, "%zu problem%s above; nothing was stored", errors,
                  errors == 1 ? "" : "s");
        return EXIT_FAIL;
    }
    if (sfs_set_count(in) == 0) {
        if (dropped)
            cli_error(cli, "no valid secrets provided; %s* are supplied by the platform",
                      prefix);
        else
            cli_error(cli, "no secrets provided; use --secrets, --secrets-file or "
                      "--secret-mount");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

struct change_counts {
    size_t added, changed, unchanged, removed;
};

/* Builds the next store from `old` and `in`, with created/updated times. */
/* A change of the store by a set of inputs: update-secrets and set. */
struct merge {
    const struct cli *cli;
    const sfs_set *in;
    bool overwrite;             /* names not in `in` are removed */
    struct change_counts counts;
};

static bool in_input(const sfs_entry *e, void *ctx)
{
    return sfs_set_get(ctx, e->name) != NULL;
}

/* sfs_store_edit_fn: merges the inputs into the current set, as lk does (created is kept;
 * updated only moves when the bytes change). */
static int merge_inputs(sfs_set *set, void *ctx, struct sfs_err *err)
{
    struct merge *m = ctx;
    int64_t now = now_seconds();
    size_t i;

    memset(&m->counts, 0, sizeof m->counts);
    if (m->overwrite)
        m->counts.removed = sfs_set_filter(set, in_input, (void *)m->in);
    for (i = 0; i < sfs_set_count(m->in); i++) {
        const sfs_entry *e = sfs_set_at(m->in, i);
        const sfs_entry *was = sfs_set_get(set, e->name);
        int64_t created = was ? was->created : now, updated = now;
        if (was && was->len == e->len && sfs_equal_ct(was->value, e->value, e->len)) {
            updated = was->updated;
            m->counts.unchanged++;
        } else if (was) {
            m->counts.changed++;
        } else {
            m->counts.added++;
        }
        if (sfs_set_put(set, e->name, e->value, e->len, created, updated) < 0)
            return sfs_err_set(err, -ENOMEM, "out of memory; nothing was stored");
    }
    return check_store_size(m->cli, set, err);
}

int cmd_update_secrets(struct cli *cli, int argc, char **argv)
{
    static const struct option extra[] = {
        {"secrets", required_argument, NULL, OPT_SECRETS},
        {"secrets-file", required_argument, NULL, OPT_SECRETS_FILE},
        {"secret-mount", required_argument, NULL, OPT_SECRET_MOUNT},
        {"overwrite", no_argument, NULL, OPT_OVERWRITE},
        {"ignore-empty-secrets", no_argument, NULL, OPT_IGNORE_EMPTY},
        RELOAD_OPTION,
    };
    struct update_args a = {0};
    struct merge m = {.cli = cli};
    sfs_set *in = NULL;
    int rc = parse_options(cli, argc, argv, extra, 7, update_help, update_option, &a);

    if (rc >= 0)
        goto out;
    rc = EXIT_USAGE;
    if (optind != argc) {
        cli_error(cli, "unexpected argument '%s'", argv[optind]);
        rc = cli_usage(cli, update_help, false);
        goto out;
    }
    rc = EXIT_FAIL;
    if (cli_load_config(cli) != EXIT_OK)
        goto out;
    in = sfs_set_new(0);
    if (!in || gather_inputs(cli, &a, in) != EXIT_OK || apply_rules(cli, &a, in) != EXIT_OK)
        goto out;
    m.in = in;
    m.overwrite = a.overwrite;
    rc = change_store(cli, merge_inputs, &m);
    if (rc == EXIT_OK)
        printf("%s: %zu added, %zu changed, %zu unchanged, %zu removed\n", cli->store_path,
               m.counts.added, m.counts.changed, m.counts.unchanged, m.counts.removed);
out:
    sfs_set_free(in);
    free(a.secrets);
    free(a.mounts);
    return rc;
}

/* ---- set ---- */

static int set_option(struct cli *cli, int opt, const char *arg, void *ctx)
{
    (void)cli;
    if (opt != OPT_FROM_FILE)
        return -EINVAL;
    *(const char **)ctx = arg;
    return 0;
}

int cmd_set(struct cli *cli, int argc, char **argv)
{
    static const struct option extra[] = {
        {"from-file", required_argument, NULL, OPT_FROM_FILE},
        RELOAD_OPTION,
    };
    const char *from = "-", *name, *why;
    struct sfs_err err;
    struct merge m = {.cli = cli};
    sfs_set *in = NULL;
    int rc = parse_options(cli, argc, argv, extra, 3, set_help, set_option, &from);

    if (rc >= 0)
        return rc;
    if (argc - optind != 1) {
        cli_error(cli, "expected one NAME");
        return cli_usage(cli, set_help, false);
    }
    name = argv[optind];
    rc = EXIT_FAIL;
    if (cli_load_config(cli) != EXIT_OK)
        goto out;
    if (!sfs_name_valid(name, &why)) {
        cli_error(cli, "the name '%s' %s; names use A-Z a-z 0-9 . _ - and do not start with "
                  "'.'", name, why);
        goto out;
    }
    if (sfs_name_reserved(name, reserved_prefix(cli))) {
        cli_error(cli, "%s is supplied by the platform; it cannot be stored", name);
        goto out;
    }
    in = sfs_set_new(0);
    if (!in || cli_read_value_file(from, cli->cfg.max_secret_size, in, name, 0, &err) < 0) {
        cli_error(cli, "%s", in ? err.msg : "out of memory");
        goto out;
    }
    if (sfs_set_get(in, name)->len == 0) {
        cli_error(cli, "%s: empty value; a secret needs at least one byte",
                  strcmp(from, "-") == 0 ? "stdin" : from);
        goto out;
    }
    m.in = in;
    rc = change_store(cli, merge_inputs, &m);
out:
    sfs_set_free(in);
    return rc;
}

/* ---- rm ---- */

/* sfs_store_edit_fn for rm: removes every name of the command line, or none if one is
 * missing (the message names each missing one). */
struct removal {
    const struct cli *cli;
    char *const *names;
    int n;
};

static int remove_names(sfs_set *set, void *ctx, struct sfs_err *err)
{
    struct removal *r = ctx;
    char missing[SFS_ERR_MAX / 2] = "";
    int i, n_missing = 0;

    for (i = 0; i < r->n; i++) {
        size_t used = strlen(missing);
        if (sfs_set_get(set, r->names[i]))
            continue;
        if (used + strlen(r->names[i]) + 8 < sizeof missing)
            snprintf(missing + used, sizeof missing - used, "%s'%s'", n_missing ? ", " : "",
                     r->names[i]);
        n_missing++;
    }
    if (n_missing)
        return sfs_err_set(err, -ENOENT, "no secret named %s in %s; nothing was removed",
                           missing, r->cli->store_path);
    for (i = 0; i < r->n; i++)
        (void)sfs_set_remove(set, r->names[i]);
    return 0;
}

int cmd_rm(struct cli *cli, int argc, char **argv)
{
    static const struct option extra[] = {RELOAD_OPTION};
    struct removal r = {.cli = cli};
    int rc = parse_options(cli, argc, argv, extra, 2, rm_help, NULL, NULL);

    if (rc >= 0)
        return rc;
    if (optind >= argc) {
        cli_error(cli, "expected at least one NAME");
        return cli_usage(cli, rm_help, false);
    }
    if (cli_load_config(cli) != EXIT_OK)
        return EXIT_FAIL;
    r.names = argv + optind;
    r.n = argc - optind;
    return change_store(cli, remove_names, &r);
}

/* ---- list ---- */

static void format_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%lld", (long long)t);
}

static int list_option(struct cli *cli, int opt, const char *arg, void *ctx)
{
    (void)cli;
    (void)arg;
    if (opt != OPT_JSON)
        return -EINVAL;
    *(bool *)ctx = true;
    return 0;
}

static int print_json_list(const sfs_set *set)
{
    json_t *arr = json_array();
    size_t i;
    int rc = EXIT_FAIL;

    if (!arr)
        return EXIT_FAIL;
    for (i = 0; i < sfs_set_count(set); i++) {
        const sfs_entry *e = sfs_set_at(set, i);
        char created[32], updated[32];
        format_time(e->created, created, sizeof created);
        format_time(e->updated, updated, sizeof updated);
        if (json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s}", "name", e->name,
                                                 "size", (json_int_t)e->len, "created",
                                                 created, "updated", updated)) < 0)
            goto out;
    }
    if (json_dumpf(arr, stdout, JSON_INDENT(2)) == 0) {
        putchar('\n');
        rc = EXIT_OK;
    }
out:
    json_decref(arr);
    return rc;
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
    static const struct option extra[] = {
        {"json", no_argument, NULL, OPT_JSON},
    };
    bool json = false;
    sfs_set *set = NULL;
    sfs_key *key = NULL;
    size_t i;
    int rc = parse_options(cli, argc, argv, extra, 1, list_help, list_option, &json);

    if (rc >= 0)
        return rc;
    if (optind != argc) {
        cli_error(cli, "unexpected argument '%s'", argv[optind]);
        return cli_usage(cli, list_help, false);
    }
    if (cli_load_config(cli) != EXIT_OK || cli_open_store(cli, false, &key, &set) != EXIT_OK)
        return EXIT_FAIL;
    if (json) {
        rc = print_json_list(set);
    } else {
        printf("%-32s %8s  %-20s  %-20s\n", "NAME", "SIZE", "CREATED", "UPDATED");
        for (i = 0; i < sfs_set_count(set); i++) {
            const sfs_entry *e = sfs_set_at(set, i);
            char created[32], updated[32];
            format_time(e->created, created, sizeof created);
            format_time(e->updated, updated, sizeof updated);
            printf("%-32s %8u  %-20s  %-20s\n", e->name, e->len, created, updated);
        }
        rc = EXIT_OK;
    }
    if (fflush(stdout) != 0)
        rc = EXIT_FAIL;
    sfs_set_free(set);
    sfs_key_free(key);
    return rc;
}

/* ---- get ---- */

int cmd_get(struct cli *cli, int argc, char **argv)
{
    sfs_set *set = NULL;
    sfs_key *key = NULL;
    const sfs_entry *e;
    size_t off = 0;
    int rc = parse_options(cli, argc, argv, NULL, 0, get_help, NULL, NULL);

    if (rc >= 0)
        return rc;
    if (argc - optind != 1) {
        cli_error(cli, "expected one NAME");
        return cli_usage(cli, get_help, false);
    }
    if (cli_load_config(cli) != EXIT_OK || cli_open_store(cli, false, &key, &set) != EXIT_OK)
        return EXIT_FAIL;
    rc = EXIT_FAIL;
    e = sfs_set_get(set, argv[optind]);
    if (!e) {
        cli_error(cli, "no secret named '%s' in %s", argv[optind], cli->store_path);
        goto out;
    }
    while (off < e->len) {
        ssize_t n = write(STDOUT_FILENO, e->value + off, e->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            cli_error(cli, "writing to stdout: %s", strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    rc = EXIT_OK;
out:
    sfs_set_free(set);
    sfs_key_free(key);
    return rc;
}
