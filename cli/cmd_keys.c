/* cli/cmd_keys.c — keys over their lifetime: where the key comes from (a file, a systemd
 * credential), its passphrase (a file, a descriptor, the terminal; never argv), `keygen`,
 * and `rekey` (stage, promote and reseal, finish). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crypto/aead.h"
#include "crypto/secmem.h"
#include "util/fileio.h"

#define CREDENTIAL_PREFIX "%credential/"

static const char keygen_help[] =
    "usage: secretfs keygen [--key-file PATH | PATH] [--passphrase] [--kdf LEVEL]\n"
    "                       [--passphrase-file F] [--config PATH]\n"
    "\n"
    "Write a new random 32-byte master key to PATH (default: the key file the other\n"
    "commands use).  The file is created with mode 0600 and never overwritten.\n"
    "  --passphrase     protect the key with a passphrase (Argon2id): from\n"
    "                   --passphrase-file, SECRETFS_PASSPHRASE_FD, or the terminal (asked\n"
    "                   twice); every command, and the daemon once at start, then needs it\n"
    "  --kdf LEVEL      Argon2id cost: interactive (2 passes, 64 MiB), moderate (default:\n"
    "                   3 passes, 256 MiB) or sensitive (4 passes, 1 GiB)\n";

static const char rekey_help[] =
    "usage: secretfs rekey [--stage | --promote | --finish] [store options]\n"
    "\n"
    "Rotate the master key with no failed read, reload or get.  The key file holds a ring\n"
    "of keys: the first seals, every one opens.\n"
    "  (no option)  add a new key first in the key file, then reseal the store under it\n"
    "  --stage      add a new key second (it opens, does not seal yet): copy the key file\n"
    "               to every host of a fleet before --promote\n"
    "  --promote    make the staged (second) key the first, then reseal the store\n"
    "  --finish     drop every key but the first, once the store uses only it (refused\n"
    "               while the store is sealed under another key)\n";

/* ---- where the key is ---- */

int cli_resolve_key_file(struct cli *cli, const char *picked)
{
    static char path[PATH_MAX];
    const char *dir = getenv("CREDENTIALS_DIRECTORY"), *name;

    cli->key_is_credential = false;
    cli->key_file = picked;
    if (strncmp(picked, CREDENTIAL_PREFIX, sizeof CREDENTIAL_PREFIX - 1) != 0)
        return EXIT_OK;
    name = picked + sizeof CREDENTIAL_PREFIX - 1;
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        cli_error(cli, "%s: not a credential name; write %%credential/NAME with the NAME of "
                  "LoadCredentialEncrypted=NAME:...", picked);
        return EXIT_FAIL;
    }
    if (!dir || dir[0] != '/') {
        cli_error(cli, "the key is the systemd credential '%s', but $CREDENTIALS_DIRECTORY is "
                  "%s; run under systemd with LoadCredentialEncrypted=%s:... (or set "
                  "--key-file to a key file)", name, dir ? "not an absolute path" : "not set",
                  name);
        return EXIT_FAIL;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        cli_error(cli, "$CREDENTIALS_DIRECTORY is too long");
        return EXIT_FAIL;
    }
    cli->key_file = path;
    cli->key_is_credential = true;
    return EXIT_OK;
}

const char *cli_state_dir(struct cli *cli, const char *flag, bool *explicit_dir)
{
    static char path[PATH_MAX];
    const char *env = getenv("SECRETFS_STATE_DIR"), *xdg = getenv("XDG_STATE_HOME"),
               *home = getenv("HOME");

    *explicit_dir = true;
    if (flag)
        return flag;
    if (env && *env)
        return env;
    if (cli->cfg.state_dir)
        return cli->cfg.state_dir;
    *explicit_dir = false;
    if (geteuid() == 0)
        return SFS_DEFAULT_STATE_DIR;
    if (xdg && xdg[0] == '/')
        snprintf(path, sizeof path, "%s/secretfs", xdg);
    else if (home && home[0] == '/')
        snprintf(path, sizeof path, "%s/.local/state/secretfs", home);
    else
        return NULL;
    return path;
}

/* ---- the passphrase ---- */

struct passphrase_source {
    const char *file;   /* --passphrase-file */
    int fd;             /* SECRETFS_PASSPHRASE_FD, or -1 */
    bool fd_used;       /* a descriptor is read once */
    int tty;            /* /dev/tty, or -1 */
};

static struct passphrase_source source = {NULL, -1, false, -1};

/* Reads from `fd` until EOF or a newline (terminal) into buf; drops one trailing "\n"
 * (or "\r\n").  Returns 0 or -errno (-E2BIG: longer than cap). */
static int read_secret(int fd, bool line, char *buf, size_t cap, size_t *len)
{
    size_t got = 0;

    for (;;) {
        ssize_t n = read(fd, buf + got, line ? 1 : cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0 || (line && buf[got] == '\n'))
            break;
        got += (size_t)n;
        if (got == cap)
            return -E2BIG;
    }
    if (!line && got && buf[got - 1] == '\n')
        got--;
    if (got && buf[got - 1] == '\r')
        got--;
    *len = got;
    return 0;
}

static int ask_file(const char *path, char *buf, size_t cap, size_t *len, struct sfs_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), rc;
    struct stat st;

    if (fd < 0)
        return sfs_err_set(err, -errno, "--passphrase-file %s: %s", path, strerror(errno));
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        close(fd);
        return sfs_err_set(err, -EPERM, "--passphrase-file %s: mode %04o lets group or others "
                           "read it; chmod 600 it", path, (unsigned)(st.st_mode & 07777));
    }
    rc = read_secret(fd, false, buf, cap, len);
    close(fd);
    if (rc < 0)
        return sfs_err_set(err, rc, "--passphrase-file %s: %s", path,
                           rc == -E2BIG ? "longer than 1024 bytes" : strerror(-rc));
    return 0;
}

/* Prompts on the terminal with echo off. */
static int ask_tty(int tty, const char *prompt, char *buf, size_t cap, size_t *len,
                   struct sfs_err *err)
{
    struct termios old, quiet;
    bool restore = tcgetattr(tty, &old) == 0;
    int rc;

    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        (void)tcsetattr(tty, TCSAFLUSH, &quiet);
    }
    if (write(tty, prompt, strlen(prompt)) < 0)
        rc = -errno;
    else
        rc = read_secret(tty, true, buf, cap, len);
    if (restore)
        (void)tcsetattr(tty, TCSAFLUSH, &old);
    if (rc < 0)
        return sfs_err_set(err, rc, "cannot read the passphrase from the terminal: %s",
                           strerror(-rc));
    return 0;
}

static int ask_terminal(const char *path, bool confirm, char *buf, size_t cap, size_t *len,
                        struct sfs_err *err)
{
    char prompt[PATH_MAX + 64], *second;
    sfs_arena *scratch;
    size_t len2 = 0;
    int rc;

    snprintf(prompt, sizeof prompt, "%s passphrase for %s: ", confirm ? "New" : "The", path);
    rc = ask_tty(source.tty, prompt, buf, cap, len, err);
    if (rc < 0 || !confirm)
        return rc;
    scratch = sfs_arena_new(SFS_PASSPHRASE_MAX);
    second = scratch ? sfs_arena_alloc(scratch, SFS_PASSPHRASE_MAX) : NULL;
    if (!second)
        rc = sfs_err_set(err, -ENOMEM, "out of secure memory");
    else
        rc = ask_tty(source.tty, "The same passphrase again: ", second, SFS_PASSPHRASE_MAX,
                     &len2, err);
    if (rc == 0 && (len2 != *len || !sfs_equal_ct(second, buf, *len)))
        rc = sfs_err_set(err, -EINVAL, "the two passphrases differ; nothing was written");
    sfs_arena_free(scratch);
    return rc;
}

/* The sfs_passphrase_fn every command and the daemon use. */
static int ask_passphrase(void *ctx, const char *path, bool confirm, char *buf, size_t cap,
                          size_t *len, struct sfs_err *err)
{
    int rc;

    (void)ctx;
    if (source.file)
        rc = ask_file(source.file, buf, cap, len, err);
    else if (source.fd >= 0 && !source.fd_used) {
        source.fd_used = true;
        rc = read_secret(source.fd, false, buf, cap, len);
        if (source.fd > STDERR_FILENO) /* read once: a daemon keeps no copy of it open */
            close(source.fd);
        if (rc < 0)
            sfs_err_set(err, rc, "SECRETFS_PASSPHRASE_FD=%d: %s", source.fd,
                        rc == -E2BIG ? "longer than 1024 bytes" : strerror(-rc));
    } else if (source.fd >= 0)
        rc = sfs_err_set(err, -ENOKEY, "%s: the passphrase from SECRETFS_PASSPHRASE_FD was "
                         "already used and does not unlock this key file", path);
    else if (source.tty >= 0)
        rc = ask_terminal(path, confirm, buf, cap, len, err);
    else
        rc = sfs_err_set(err, -ENOKEY, "%s: the key file is protected by a passphrase; give it "
                         "with --passphrase-file FILE or SECRETFS_PASSPHRASE_FD, or run on a "
                         "terminal", path);
    if (rc == 0 && *len == 0)
        rc = sfs_err_set(err, -EINVAL, "%s: the passphrase is empty", path);
    return rc;
}

/* Decides where passphrases come from (once per process). */
static void choose_source(struct cli *cli)
{
    static bool chosen;
    const char *fd = getenv("SECRETFS_PASSPHRASE_FD");
    char *end;

    if (chosen)
        return;
    chosen = true;
    source.file = cli->flag_passphrase_file;
    if (!source.file && fd && *fd) {
        long v = strtol(fd, &end, 10);
        if (!*end && v >= 0 && v <= INT_MAX && fcntl((int)v, F_GETFD) >= 0)
            source.fd = (int)v;
        else
            cli_warn(cli, "SECRETFS_PASSPHRASE_FD=%s is not an open descriptor; ignored", fd);
    }
    if (!source.file && source.fd < 0 && cli->key_file && sfs_key_file_protected(cli->key_file))
        source.tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
}

sfs_passphrase_fn cli_passphrase_source(struct cli *cli, void **ctx)
{
    choose_source(cli);
    *ctx = NULL;
    return ask_passphrase;
}

int cli_key_load(struct cli *cli, sfs_key **out)
{
    struct sfs_err err;
    void *ctx = NULL;
    sfs_passphrase_fn ask;

    *out = NULL;
    if (!cli->unlock) {
        ask = cli_passphrase_source(cli, &ctx);
        cli->unlock = sfs_key_unlock_new(ask, ctx);
    }
    if (!cli->unlock) {
        cli_error(cli, "out of secure memory");
        return EXIT_FAIL;
    }
    if (sfs_key_load_with(cli->key_file, cli->unlock,
                          cli->key_is_credential ? SFS_KEY_CREDENTIAL : 0, out, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* ---- a passphrase kept for child processes ---- */

struct kept_passphrase {
    const char *pass;
    size_t len;
};

/* An sfs_passphrase_fn that answers with a passphrase already read. */
static int give_kept(void *ctx, const char *path, bool confirm, char *buf, size_t cap,
                     size_t *len, struct sfs_err *err)
{
    const struct kept_passphrase *k = ctx;

    (void)confirm;
    if (k->len > cap)
        return sfs_err_set(err, -E2BIG, "%s: the passphrase is longer than %zu bytes", path, cap);
    memcpy(buf, k->pass, k->len);
    *len = k->len;
    return 0;
}

/* Whether the passphrase in `k` unlocks the key file (one Argon2id derivation). */
static int check_kept(struct cli *cli, const struct kept_passphrase *k, struct sfs_err *err)
{
    sfs_key_unlock *u = sfs_key_unlock_new(give_kept, (void *)k);
    sfs_key *ring = NULL;
    int rc;

    if (!u)
        return sfs_err_set(err, -ENOMEM, "out of secure memory");
    rc = sfs_key_load_with(cli->key_file, u, cli->key_is_credential ? SFS_KEY_CREDENTIAL : 0,
                           &ring, err);
    sfs_key_free(ring);
    sfs_key_unlock_free(u);
    return rc;
}

int cli_passphrase_keep(struct cli *cli, sfs_arena **arena, const char **pass, size_t *len)
{
    struct kept_passphrase k = {NULL, 0};
    struct sfs_err err;
    char *buf;
    int rc;

    *arena = NULL;
    *pass = NULL;
    *len = 0;
    if (!cli->key_file || !sfs_key_file_protected(cli->key_file))
        return EXIT_OK;
    choose_source(cli);
    *arena = sfs_arena_new(SFS_PASSPHRASE_MAX);
    buf = *arena ? sfs_arena_alloc(*arena, SFS_PASSPHRASE_MAX) : NULL;
    if (!buf) {
        rc = sfs_err_set(&err, -ENOMEM, "out of secure memory for the passphrase");
        goto out;
    }
    rc = ask_passphrase(NULL, cli->key_file, false, buf, SFS_PASSPHRASE_MAX, &k.len, &err);
    k.pass = buf;
    if (rc == 0)
        rc = check_kept(cli, &k, &err);
out:
    if (rc < 0) {
        cli_error(cli, "%s%s", err.msg, rc == -EBADMSG ? "; nothing was started: give the "
                  "right one with --passphrase-file FILE (mode 0600) or "
                  "SECRETFS_PASSPHRASE_FD" : "");
        sfs_arena_free(*arena);
        *arena = NULL;
        return EXIT_FAIL;
    }
    *pass = buf;
    *len = k.len;
    return EXIT_OK;
}

/* ---- keygen ---- */

enum { OPT_PASSPHRASE = OPT_FIRST_COMMAND_OPTION + 40, OPT_KDF, OPT_STAGE, OPT_PROMOTE,
       OPT_FINISH, OPT_RESEAL };

static int parse_kdf(const char *s, enum sfs_kdf_level *out)
{
    if (strcmp(s, "interactive") == 0)
        *out = SFS_KDF_INTERACTIVE;
    else if (strcmp(s, "moderate") == 0)
        *out = SFS_KDF_MODERATE;
    else if (strcmp(s, "sensitive") == 0)
        *out = SFS_KDF_SENSITIVE;
    else
        return -EINVAL;
    return 0;
}

int cmd_keygen(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"passphrase", no_argument, NULL, OPT_PASSPHRASE},
        {"kdf", required_argument, NULL, OPT_KDF},
        {NULL, 0, NULL, 0},
    };
    enum sfs_kdf_level level = SFS_KDF_MODERATE;
    bool protect = false;
    struct sfs_err err;
    const char *path;
    void *ctx = NULL;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, keygen_help, true);
        if (cli_common_option(cli, opt, optarg))
            continue;
        if (opt == OPT_PASSPHRASE)
            protect = true;
        else if (opt != OPT_KDF || parse_kdf(optarg, &level) < 0)
            return cli_usage(cli, keygen_help, false);
    }
    if (argc - optind > 1) {
        cli_error(cli, "expected at most one PATH");
        return cli_usage(cli, keygen_help, false);
    }
    if (cli_load_config(cli) != EXIT_OK)
        return EXIT_FAIL;
    path = optind < argc ? argv[optind] : cli->key_file;
    if (protect) {
        sfs_passphrase_fn ask = cli_passphrase_source(cli, &ctx);
        cli->unlock = sfs_key_unlock_new(ask, ctx);
        if (!cli->unlock) {
            cli_error(cli, "out of secure memory");
            return EXIT_FAIL;
        }
    }
    rc = sfs_mkdir_parents(path, &err);
    if (rc == 0)
        rc = sfs_key_generate_with(path, protect ? cli->unlock : NULL, level, &err);
    if (rc < 0) {
        cli_error(cli, "%s", err.msg);
        return EXIT_FAIL;
    }
    printf("wrote a new key to %s (mode 0600%s); keep a copy somewhere safe: without it the "
           "store cannot be read\n", path, protect ? ", protected by your passphrase" : "");
    return EXIT_OK;
}

/* ---- rekey ---- */

enum rekey_mode { REKEY_ROTATE, REKEY_STAGE, REKEY_PROMOTE, REKEY_RESEAL, REKEY_FINISH };

static void id_hex(const sfs_key *key, char out[2 * SFS_KEY_ID_BYTES + 1])
{
    unsigned char id[SFS_KEY_ID_BYTES];

    sfs_key_id(key, id);
    for (int i = 0; i < SFS_KEY_ID_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int reseal_edit(sfs_set *set, void *ctx, struct sfs_err *err)
{
    (void)set;
    (void)ctx;
    (void)err;
    return 0;
}

/* Reseals the store under `ring`'s primary (a write like any other: lock, new version).  A
 * missing store is left missing.  Prints; returns an exit code. */
static int reseal(struct cli *cli, sfs_store *store, const sfs_key *ring)
{
    unsigned char ids[1][SFS_KEY_ID_BYTES];
    char hex[2 * SFS_KEY_ID_BYTES + 1];
    struct sfs_err err;
    size_t n = 0;
    int rc = sfs_store_key_ids(store, ids, 1, &n, &err);

    if (rc == -ENOENT) {
        printf("%s: no store yet; it will be sealed under the new key when first written\n",
               cli->store_path);
        return EXIT_OK;
    }
    rc = sfs_store_update(store, ring, reseal_edit, NULL, &err);
    if (rc < 0) {
        cli_error(cli, "%s; the key file holds every key it held before, so nothing fails: "
                  "run 'secretfs rekey --reseal' once the problem is fixed", err.msg);
        return EXIT_FAIL;
    }
    id_hex(ring, hex);
    printf("%s: resealed under key %s\n", cli->store_path, hex);
    return EXIT_OK;
}

/* Refuses unless every key id the store uses is the ring's primary.  Prints. */
static int check_finished(struct cli *cli, sfs_store *store, const sfs_key *ring)
{
    unsigned char ids[64][SFS_KEY_ID_BYTES], primary[SFS_KEY_ID_BYTES];
    struct sfs_err err;
    size_t n = 0;
    int rc = sfs_store_key_ids(store, ids, 64, &n, &err);

    if (rc == -ENOENT)
        return EXIT_OK;
    if (rc < 0) {
        cli_error(cli, "%s; cannot tell whether the old keys are still in use, so none is "
                  "dropped", err.msg);
        return EXIT_FAIL;
    }
    sfs_key_id(ring, primary);
    for (size_t i = 0; i < n; i++) {
        if (memcmp(ids[i], primary, SFS_KEY_ID_BYTES) != 0) {
            char hex[2 * SFS_KEY_ID_BYTES + 1];
            for (int j = 0; j < SFS_KEY_ID_BYTES; j++)
                snprintf(hex + 2 * j, 3, "%02x", ids[i][j]);
            cli_error(cli, "%s is still sealed under key %s, not the first key of %s; run "
                      "'secretfs rekey --reseal' (or --promote) first; no key was dropped",
                      cli->store_path, hex, cli->key_file);
            return EXIT_FAIL;
        }
    }
    return EXIT_OK;
}

/* The ring the mode asks for, or NULL with the reason printed. */
static sfs_key *next_ring(struct cli *cli, enum rekey_mode mode, const sfs_key *ring)
{
    sfs_key *next = NULL;

    if (mode == REKEY_ROTATE || mode == REKEY_STAGE)
        next = sfs_key_ring_insert(ring, mode == REKEY_STAGE ? 1 : 0);
    else if (mode == REKEY_PROMOTE)
        next = sfs_key_ring_promote(ring);
    else if (mode == REKEY_FINISH)
        next = sfs_key_ring_primary_only(ring);
    if (!next && mode == REKEY_PROMOTE)
        cli_error(cli, "%s holds one key: nothing is staged to promote (use 'secretfs rekey "
                  "--stage' first)", cli->key_file);
    else if (!next && sfs_key_count(ring) >= SFS_KEYRING_MAX)
        cli_error(cli, "%s holds %d keys, the most it may; run 'secretfs rekey --finish' "
                  "first", cli->key_file, SFS_KEYRING_MAX);
    else if (!next)
        cli_error(cli, "out of secure memory");
    return next;
}

static int rekey_run(struct cli *cli, enum rekey_mode mode, sfs_store *store)
{
    sfs_key *ring = NULL, *next = NULL;
    char hex[2 * SFS_KEY_ID_BYTES + 1];
    struct sfs_err err;
    int rc = cli_key_load(cli, &ring);

    if (rc != EXIT_OK)
        return rc;
    if (mode == REKEY_RESEAL) {
        rc = reseal(cli, store, ring);
        goto out;
    }
    rc = mode == REKEY_FINISH ? check_finished(cli, store, ring) : EXIT_OK;
    if (rc != EXIT_OK)
        goto out;
    next = next_ring(cli, mode, ring);
    if (!next) {
        rc = EXIT_FAIL;
        goto out;
    }
    if (sfs_key_save(cli->key_file, next, cli->unlock, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        rc = EXIT_FAIL;
        goto out;
    }
    id_hex(mode == REKEY_STAGE ? sfs_key_at(next, 1) : next, hex);
    printf("%s: %zu key%s; %s key %s\n", cli->key_file, sfs_key_count(next),
           sfs_key_count(next) == 1 ? "" : "s",
           mode == REKEY_STAGE ? "staged" : mode == REKEY_FINISH ? "kept only" : "sealing with",
           hex);
    if (mode == REKEY_ROTATE || mode == REKEY_PROMOTE)
        rc = reseal(cli, store, next);
    else if (mode == REKEY_STAGE)
        printf("copy %s to every host that reads the store, then run 'secretfs rekey "
               "--promote'\n", cli->key_file);
out:
    sfs_key_free(next);
    sfs_key_free(ring);
    return rc;
}

int cmd_rekey(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"stage", no_argument, NULL, OPT_STAGE},
        {"promote", no_argument, NULL, OPT_PROMOTE},
        {"reseal", no_argument, NULL, OPT_RESEAL},
        {"finish", no_argument, NULL, OPT_FINISH},
        {NULL, 0, NULL, 0},
    };
    enum rekey_mode mode = REKEY_ROTATE;
    sfs_store *store = NULL;
    int opt, modes = 0, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, rekey_help, true);
        if (cli_common_option(cli, opt, optarg))
            continue;
        modes++;
        if (opt == OPT_STAGE)
            mode = REKEY_STAGE;
        else if (opt == OPT_PROMOTE)
            mode = REKEY_PROMOTE;
        else if (opt == OPT_RESEAL)
            mode = REKEY_RESEAL;
        else if (opt == OPT_FINISH)
            mode = REKEY_FINISH;
        else
            return cli_usage(cli, rekey_help, false);
    }
    if (optind < argc || modes > 1) {
        cli_error(cli, modes > 1 ? "give at most one of --stage, --promote, --reseal, --finish"
                                 : "unexpected argument '%s'", argv[optind]);
        return cli_usage(cli, rekey_help, false);
    }
    if (cli_load_config(cli) != EXIT_OK)
        return EXIT_FAIL;
    if (cli->key_is_credential && mode != REKEY_RESEAL) {
        cli_error(cli, "%s is a systemd credential, which only systemd writes; rekey the key "
                  "file you encrypted it from, encrypt it again with systemd-creds, and "
                  "restart the service (README: Rotating keys)", cli->key_file);
        return EXIT_FAIL;
    }
    if (cli_store_open(cli, &store) != EXIT_OK)
        return EXIT_FAIL;
    rc = rekey_run(cli, mode, store);
    sfs_store_close(store);
    return rc;
}
