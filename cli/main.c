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
#include "crypto/secmem.h"
#include "util/err.h"

static const char main_help[] =
    "usage: secretfs COMMAND [OPTIONS]\n"
    "\n"
    "Serve secrets as files from an encrypted store.\n"
    "\n"
    "Commands:\n"
    "  keygen [PATH]        create a new master key file (mode 0600; never overwrites)\n"
    "  update-secrets       import secrets (--secrets K=V, --secrets-file F, --secret-mount P)\n"
    "  set NAME             store stdin's bytes (or --from-file F) as NAME\n"
    "  rm NAME...           remove secrets (all or nothing)\n"
    "  list [--json]        list names, sizes and times (never values)\n"
    "  get NAME             write NAME's exact bytes to stdout\n"
    "  mount [MOUNTPOINT]   mount the secrets read-only (default " SFS_DEFAULT_MOUNTPOINT ")\n"
    "  reload [MOUNTPOINT]  make the daemon serve the store's current contents\n"
    "  run -- COMMAND...    run COMMAND with the mount's secrets in its environment\n"
    "  docker-plugin        serve Docker's volume plugin API (volumes of secrets)\n"
    "\n"
    "Options every store command takes:\n"
    "  --store PATH         store file   (env SECRETFS_STORE, [store] path,\n"
    "                       default " SFS_DEFAULT_STORE ")\n"
    "  --key-file PATH      master key   (env SECRETFS_KEY_FILE, [store] key_file,\n"
    "                       default " SFS_DEFAULT_KEY_FILE ")\n"
    "  --config PATH        config file  (env SECRETFS_CONFIG,\n"
    "                       default " SFS_DEFAULT_CONFIG ")\n"
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
    {"update-secrets", cmd_update_secrets},
    {"set", cmd_set},
    {"rm", cmd_rm},
    {"list", cmd_list},
    {"get", cmd_get},
    {"mount", cmd_mount},
    {"reload", cmd_reload},
    {"run", cmd_run},
    {"docker-plugin", cmd_docker_plugin},
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
    struct sfs_err err;

    if (sfs_config_load(path, explicit_path, &cli->cfg, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        return EXIT_FAIL;
    }
    cli->store_path = pick(cli->flag_store, "SECRETFS_STORE", cli->cfg.store_path,
                           SFS_DEFAULT_STORE);
    cli->key_file = pick(cli->flag_key_file, "SECRETFS_KEY_FILE", cli->cfg.key_file,
                         SFS_DEFAULT_KEY_FILE);
    return EXIT_OK;
}

int cli_store_open(struct cli *cli, sfs_store **out)
{
    struct sfs_store_options o = {
        .watch = cli->cfg.watch,
        .lock_timeout_ms = cli->lock_timeout_ms,
    };
    struct sfs_err err;

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
    *key = sfs_key_load(cli->key_file, &err);
    if (!*key) {
        cli_error(cli, "%s", err.msg);
        sfs_store_close(store);
        return EXIT_FAIL;
    }
    rc = sfs_store_load(store, *key, SFS_LOAD_FRESH, set, NULL, &err);
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
        printf("secretfs %s\n", SFS_VERSION);
        return EXIT_OK;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            cli.command = commands[i].name;
            rc = commands[i].run(&cli, argc - 1, argv + 1);
            sfs_config_free(&cli.cfg);
            return rc;
        }
    }
    if (argc >= 3 && argv[1][0] != '-' && argv[2][0] == '/') {
        rc = cmd_mount_helper(&cli, argc, argv);
        sfs_config_free(&cli.cfg);
        return rc;
    }
    fprintf(stderr, "secretfs: unknown command '%s'\nTry 'secretfs --help'.\n", argv[1]);
    return EXIT_USAGE;
}
