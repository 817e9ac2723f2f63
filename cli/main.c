/* cli/main.c — `secretfs`: dispatch to subcommands, shared option and path handling. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crypto/aead.h"
#include "crypto/secmem.h"
#include "fs/daemon.h"
#include "util/err.h"

static const char main_help[] =
    "usage: secretfs COMMAND [OPTIONS]\n"
    "\n"
    "Serve secrets as files from an encrypted store.\n"
    "\n"
    "Commands:\n"
    "  keygen [PATH]        create a new master key file (mode 0600; never overwrites;\n"
    "                       --passphrase protects it with a passphrase)\n"
    "  rekey                rotate: a new key seals the store (--stage, --promote, --finish)\n"
    "  update-secrets       import secrets (--secrets K=V, --secrets-file F, --secret-mount P)\n"
    "  set NAME             store stdin's bytes (or --from-file F) as NAME\n"
    "  rm NAME...           remove secrets (all or nothing)\n"
    "  list [--json]        list names, sizes and times (never values)\n"
    "  get NAME             write NAME's exact bytes to stdout\n"
    "  mount [MOUNTPOINT]   mount the secrets read-only (default " SFS_DEFAULT_MOUNTPOINT ")\n"
    "  reload [MOUNTPOINT]  make the daemon serve the store's current contents\n"
    "  run -- COMMAND...    run COMMAND with the mount's secrets in its environment\n"
    "  audit [PATH]         who read which secret: a mount's audit log (audit=PATH)\n"
    "  docker-plugin        serve Docker's volume plugin API (volumes of secrets)\n"
    "  copy --from L --to L copy a whole set between stores (file, etcd://), atomically\n"
    "\n"
    "Options every store command takes:\n"
    "  --store LOCATION     store file, or etcd://HOST:PORT[,...]/PREFIX\n"
    "                       (env SECRETFS_STORE, [store] path,\n"
    "                       default " SFS_DEFAULT_STORE ")\n"
    "  --key-file PATH      master key   (env SECRETFS_KEY_FILE, [store] key_file,\n"
    "                       default " SFS_DEFAULT_KEY_FILE ")\n"
    "  --config PATH        config file  (env SECRETFS_CONFIG,\n"
    "                       default " SFS_DEFAULT_CONFIG ")\n"
    "  --passphrase-file F  the passphrase of a protected key file (else the descriptor\n"
    "                       in SECRETFS_PASSPHRASE_FD, else the terminal; never argv)\n"
    "  A flag wins over the environment, which wins over the config file.\n"
    "\n"
    "  secretfs COMMAND --help   details of one command\n"
    "  secretfs --version        print the version\n"
    "\n"
    "Exit status: 0 success, 1 operational failure (missing secret, bad store, wrong key,\n"
    "...), 2 usage error.\n";

struct command {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
};

static const struct command commands[] = {
    {"keygen", cmd_keygen},
    {"rekey", cmd_rekey},
    {"update-secrets", cmd_update_secrets},
    {"set", cmd_set},
    {"rm", cmd_rm},
    {"list", cmd_list},
    {"get", cmd_get},
    {"mount", cmd_mount},
    {"reload", cmd_reload},
    {"run", cmd_run},
    {"audit", cmd_audit},
    {"docker-plugin", cmd_docker_plugin},
    {"copy", cmd_copy},
};

static void vreport(const struct cli *cli, const char *level, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s %s: %s: ", cli->prog, cli->command ? cli->command : "", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(cli, "error", fmt, ap);
    va_end(ap);
}

void cli_warn(const struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(cli, "warning", fmt, ap);
    va_end(ap);
}

int cli_usage(const struct cli *cli, const char *text, bool asked)
{
    if (asked) {
        fputs(text, stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "Try '%s %s --help' for more information.\n", cli->prog, cli->command);
    return EXIT_USAGE;
}

bool cli_common_option(struct cli *cli, int opt, const char *arg)
{
    switch (opt) {
    case OPT_STORE:
        cli->flag_store = arg;
        return true;
    case OPT_KEY_FILE:
        cli->flag_key_file = arg;
        return true;
    case OPT_CONFIG:
        cli->flag_config = arg;
        return true;
    case OPT_PASSPHRASE_FILE:
        cli->flag_passphrase_file = arg;
        return true;
    default:
        return false;
    }
}

static const char *pick(const char *flag, const char *env_name, const char *from_config,
                        const char *fallback)
{
    const char *env = getenv(env_name);

    if (flag)
        return flag;
    if (env && *env)
        return env;
    if (from_config)
        return from_config;
    return fallback;
}

int cli_load_config(struct cli *cli)
{
    const char *env = getenv("SECRETFS_CONFIG");
    const char *path = cli->flag_config ? cli->flag_config
                       : (env && *env) ? env
                                       : SFS_DEFAULT_CONFIG;
    bool explicit_path = cli->flag_config || (env && *env);
    char credential[300];
    struct sfs_err err;

    if (sfs_config_load(path, explicit_path, &cli->cfg, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        return EXIT_FAIL;
    }
    cli->store_path = pick(cli->flag_store, "SECRETFS_STORE", cli->cfg.store_path,
                           SFS_DEFAULT_STORE);
    if (!cli->lock_timeout_ms)  /* --lock-timeout, else [store] lock_timeout */
        cli->lock_timeout_ms = cli->cfg.lock_timeout_ms;
    if (cli->cfg.key_credential)
        snprintf(credential, sizeof credential, "%%credential/%s", cli->cfg.key_credential);
    return cli_resolve_key_file(cli, pick(cli->flag_key_file, "SECRETFS_KEY_FILE",
                                          cli->cfg.key_credential ? credential
                                                                  : cli->cfg.key_file,
                                          SFS_DEFAULT_KEY_FILE));
}

void cli_etcd_options(const struct cli *cli, struct sfs_store_options *o)
{
    const struct sfs_config *c = &cli->cfg;

    o->ca_file = c->etcd_ca_file;
    o->cert_file = c->etcd_cert_file;
    o->key_file = c->etcd_key_file;
    o->user = c->etcd_user;
    o->password_file = c->etcd_password_file;
    o->dial_timeout_ms = c->etcd_dial_timeout_ms;
    o->request_timeout_ms = c->etcd_request_timeout_ms;
}

char *cli_etcd_cache_path(const struct cli *cli, const char *location)
{
    unsigned char h[8];
    char dir[4096], *path = NULL;
    const char *home = getenv("HOME");
    size_t i;
    int n;

    if (cli->cfg.etcd_cache_file)
        return strdup(cli->cfg.etcd_cache_file);
    if (geteuid() == 0)
        n = snprintf(dir, sizeof dir, "/var/cache/secretfs");
    else if (home && home[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/.cache/secretfs", home);
    else
        return NULL;
    if (n < 0 || (size_t)n >= sizeof dir)
        return NULL;
    if (geteuid() != 0) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s/.cache", home);
        (void)mkdir(parent, 0700);
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return NULL;
    sfs_hash(h, sizeof h, location, strlen(location), NULL, 0);
    if (asprintf(&path, "%s/etcd-", dir) < 0)
        return NULL;
    for (i = 0; i < sizeof h && path; i++) {
        char *grown;
        if (asprintf(&grown, "%s%02x", path, h[i]) < 0)
            grown = NULL;
        free(path);
        path = grown;
    }
    if (path) {
        char *full;
        if (asprintf(&full, "%s.store", path) < 0)
            full = NULL;
        free(path);
        path = full;
    }
    return path;
}

int cli_store_open(struct cli *cli, sfs_store **out)
{
    struct sfs_store_options o = {
        .watch = cli->cfg.watch,
        .lock_timeout_ms = cli->lock_timeout_ms,
    };
    struct sfs_err err;

    cli_etcd_options(cli, &o);
    if (sfs_store_open(cli->store_path, &o, out, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int cli_open_store(struct cli *cli, bool missing_ok, sfs_key **key, sfs_set **set)
{
    struct sfs_err err;
    sfs_store *store = NULL;
    int rc;

    *set = NULL;
    *key = NULL;
    if (cli_store_open(cli, &store) != EXIT_OK)
        return EXIT_FAIL;
    if (cli_key_load(cli, key) != EXIT_OK) {
        sfs_store_close(store);
        return EXIT_FAIL;
    }
    rc = sfs_store_load(store, *key, SFS_LOAD_FRESH, set, NULL, &err);
    if (rc == -EKEYREJECTED) {
        /* `secretfs rekey` writes the key file before it reseals: read the key file again */
        sfs_key_free(*key);
        *key = NULL;
        if (cli_key_load(cli, key) == EXIT_OK)
            rc = sfs_store_load(store, *key, SFS_LOAD_FRESH, set, NULL, &err);
        else
            rc = sfs_err_set(&err, -EKEYREJECTED, "%s", "the key file changed and no longer "
                             "loads");
    }
    sfs_store_close(store);
    if (rc == -ENOENT && missing_ok) {
        *set = sfs_set_new(0);
        if (*set)
            return EXIT_OK;
        rc = sfs_err_set(&err, -ENOMEM, "out of memory");
    } else if (rc == -ENOENT) {
        sfs_err_set(&err, rc,
                    "%s: no store there yet; create it with 'secretfs update-secrets' or "
                    "'secretfs set', or point --store at it", cli->store_path);
    }
    if (rc < 0) {
        cli_error(cli, "%s", err.msg);
        sfs_key_free(*key);
        *key = NULL;
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int cli_read_value_file(const char *path, size_t max, sfs_set *dst, const char *name,
                        int64_t now, struct sfs_err *err)
{
    sfs_arena *scratch = NULL;
    unsigned char *buf;
    size_t len;
    int fd, rc;

    fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sfs_err_set(err, -errno, "%s: %s", path, strerror(errno));
    rc = sfs_arena_read_fd(fd, max, &scratch, &buf, &len);
    close(fd);
    if (rc == -EFBIG)
        return sfs_err_set(err, rc, "%s: larger than the %zu-byte limit for one secret "
                           "([store] max_secret_size)", path, max);
    if (rc < 0)
        return sfs_err_set(err, rc, "%s: %s", path, strerror(-rc));
    rc = sfs_set_put(dst, name, buf, len, 0, now);
    if (rc < 0)
        sfs_err_set(err, rc, "%s: out of memory", path);
    sfs_arena_free(scratch);
    return rc;
}

/* `secretfs --version`: ours, then the libraries' as loaded at run time, then the FUSE
 * protocol version the running kernel offers, read from the INIT of a probe mount (or why it
 * could not be read: that line is informational, the exit status stays 0). */
static void print_version(void)
{
    struct sfs_err err = {0};
    unsigned major, minor;

    printf("secretfs %s\n", SFS_VERSION);
    printf("libfuse %s\n", sfs_fuse_version());
    printf("libsodium %s\n", sfs_crypto_version());
    fflush(stdout);
    if (sfs_fuse_probe_proto(&major, &minor, &err) == 0)
        printf("kernel FUSE protocol %u.%u\n", major, minor);
    else
        printf("kernel FUSE protocol unknown: %s\n", err.msg);
}

/* Where a --secrets argument's value starts ("K=V", "K: V": after the first '=' or ':'),
 * or NULL for the NAME form (the value comes from the environment). */
static char *value_part(char *arg)
{
    char *sep = strpbrk(arg, "=:");

    return sep ? sep + 1 : NULL;
}

/* Moves `*slot`'s string to the heap and blanks the value in the original, which is what
 * /proc/PID/cmdline shows every local user.  Out of memory: the argument is blanked all the
 * same (the command then fails on it) rather than left readable. */
static void hide_value(char **slot, char *arg)
{
    char *value = value_part(arg), *copy;

    if (!value || !*value)
        return;
    copy = strdup(*slot);
    if (copy)
        *slot = copy;
    memset(value, 0, strlen(value));
}

/* The first thing secretfs does: values given as `update-secrets --secrets K=V` (or
 * --secrets=K=V) are copied to the heap for the command (which wipes them once parsed) and
 * blanked in argv's own memory.  Only names stay visible to `ps`.  What remains: the moments
 * between exec and this call. */
static void hide_argv_values(int argc, char **argv)
{
    int i;

    if (argc < 3 || strcmp(argv[1], "update-secrets") != 0)
        return;
    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return;
        if (strcmp(argv[i], "--secrets") == 0 && i + 1 < argc) {
            i++;
            hide_value(&argv[i], argv[i]);
        } else if (strncmp(argv[i], "--secrets=", 10) == 0) {
            hide_value(&argv[i], argv[i] + 10);
        }
    }
}

int main(int argc, char **argv)
{
    struct cli cli = {.prog = "secretfs"};
    size_t i;
    int rc;

    hide_argv_values(argc, argv);
    if (sfs_crypto_init() < 0) {
        fprintf(stderr, "secretfs: error: libsodium failed to initialize\n");
        return EXIT_FAIL;
    }
    if (argc < 2) {
        fputs(main_help, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(main_help, stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        print_version();
        return EXIT_OK;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            cli.command = commands[i].name;
            rc = commands[i].run(&cli, argc - 1, argv + 1);
            sfs_config_free(&cli.cfg);
            sfs_key_unlock_free(cli.unlock);
            return rc;
        }
    }
    if (argc >= 3 && argv[1][0] != '-' && argv[2][0] == '/') {
        rc = cmd_mount_helper(&cli, argc, argv);
        sfs_config_free(&cli.cfg);
        sfs_key_unlock_free(cli.unlock);
        return rc;
    }
    fprintf(stderr, "secretfs: unknown command '%s'\nTry 'secretfs --help'.\n", argv[1]);
    return EXIT_USAGE;
}
