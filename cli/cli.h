/* cli/cli.h — what the subcommands share: resolved paths, exit codes, common options. */
#ifndef SFS_CLI_CLI_H
#define SFS_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli/config.h"
#include "crypto/key.h"
#include "crypto/secmem.h"
#include "secrets/set.h"
#include "store/store.h"

/* Exit codes, documented in `secretfs --help` and the README. */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,  /* operational failure: missing secret, bad store, wrong key, ... */
    EXIT_USAGE = 2, /* the command line is wrong */
};

/* Long-option ids of the options every store command takes. */
enum {
    OPT_STORE = 0x1000,
    OPT_KEY_FILE,
    OPT_CONFIG,
    OPT_HELP,
    OPT_RELOAD,
    OPT_PASSPHRASE_FILE,
    OPT_LOCK_TIMEOUT,
    OPT_FIRST_COMMAND_OPTION,
};

#define CLI_COMMON_OPTIONS \
    {"store", required_argument, NULL, OPT_STORE}, \
    {"key-file", required_argument, NULL, OPT_KEY_FILE}, \
    {"config", required_argument, NULL, OPT_CONFIG}, \
    {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE}, \
    {"help", no_argument, NULL, 'h'}
#define CLI_N_COMMON_OPTIONS 5

struct cli {
    const char *prog;          /* "secretfs" */
    const char *command;       /* "update-secrets", ... */
    const char *flag_store;    /* from the command line, or NULL */
    const char *flag_key_file;
    const char *flag_config;
    struct sfs_config cfg;     /* loaded by cli_load_config */
    const char *store_path;    /* resolved: flag, env, config, default */
    const char *key_file;
    bool key_is_credential;    /* key_file is in $CREDENTIALS_DIRECTORY (systemd) */
    const char *flag_passphrase_file; /* --passphrase-file, or NULL */
    sfs_key_unlock *unlock;    /* made by cli_key_load on first use; freed by main */
    bool want_reload;          /* --reload[=MOUNTPOINT] on a command that changes the store */
    const char *reload_mount;  /* its argument, or NULL for the default mountpoint */
    unsigned lock_timeout_ms;  /* --lock-timeout, 0: the store's default */
};

/* Handles --store/--key-file/--config; returns true if `opt` was one of them. */
bool cli_common_option(struct cli *cli, int opt, const char *arg);

/* Loads the config file (flag, SECRETFS_CONFIG, default) and resolves store_path and
 * key_file.  Prints the error and returns EXIT_FAIL on failure, else EXIT_OK. */
int cli_load_config(struct cli *cli);

/* Loads the key ring from cli->key_file, asking for a passphrase if the file is protected
 * (--passphrase-file, $SECRETFS_PASSPHRASE_FD, else the terminal; each asked once per
 * process).  Prints the error; returns an exit code. */
int cli_key_load(struct cli *cli, sfs_key **out);

/* The passphrase source for the daemon: a callback and its context (valid for the
 * process's lifetime), so the daemon can make its own sfs_key_unlock after forking.  For a
 * terminal, /dev/tty is opened now (the daemon has none after setsid). */
sfs_passphrase_fn cli_passphrase_source(struct cli *cli, void **ctx);

/* For a supervisor that hands the passphrase to the commands it runs (the Docker plugin):
 * when cli->key_file is passphrase-protected, asks for the passphrase once, as
 * cli_key_load would (--passphrase-file, $SECRETFS_PASSPHRASE_FD, the terminal), and
 * checks that it unlocks the key file (one Argon2id derivation).  On EXIT_OK, *pass and
 * *len are the passphrase in *arena (secure memory; the caller frees it with
 * sfs_arena_free, which wipes it), or *arena and *pass are NULL when the key file is not
 * protected.  Prints the error (a wrong passphrase says so); returns an exit code. */
int cli_passphrase_keep(struct cli *cli, sfs_arena **arena, const char **pass, size_t *len);

/* Resolves "%credential/NAME" (and [store] key_credential) against $CREDENTIALS_DIRECTORY
 * into cli->key_file.  Prints the error; returns an exit code. */
int cli_resolve_key_file(struct cli *cli, const char *picked);

/* The daemon's state directory: --state-dir (`flag`), $SECRETFS_STATE_DIR, [store]
 * state_dir (*explicit_dir true), else /var/lib/secretfs for root, $XDG_STATE_HOME/secretfs
 * or ~/.local/state/secretfs (false); NULL when there is none. */
const char *cli_state_dir(struct cli *cli, const char *flag, bool *explicit_dir);

/* Fills the etcd part of `o` from the [etcd] section (pointers borrowed from cli->cfg). */
void cli_etcd_options(const struct cli *cli, struct sfs_store_options *o);

/* Where a daemon of the etcd store `location` keeps its sealed local cache: [etcd]
 * cache_file, else /var/cache/secretfs/etcd-HASH.store for root or
 * ~/.cache/secretfs/etcd-HASH.store (the directory is made, mode 0700).  Returns a malloc'd
 * path, or NULL when there is nowhere to keep it. */
char *cli_etcd_cache_path(const struct cli *cli, const char *location);

/* Opens the store handle for cli->store_path with the options the config and flags give
 * (store/store.h).  Prints the error; returns an exit code. */
int cli_store_open(struct cli *cli, sfs_store **out);

/* Loads the key and reads the store.  A missing store is an empty set when
 * `missing_ok`, else an error saying how to create one.  Prints errors; returns an exit code. */
int cli_open_store(struct cli *cli, bool missing_ok, sfs_key **key, sfs_set **set);

/* Prints "secretfs COMMAND: error: ..." to stderr. */
void cli_error(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints the command's usage text to stdout (help) or a hint to stderr (usage error) and
 * returns the matching exit code. */
int cli_usage(const struct cli *cli, const char *text, bool asked);

/* Reads a whole file (at most `max` bytes, else -EFBIG) into a new set-owned secure buffer:
 * the bytes are stored as the value of `name` in `dst`.  err names the file. */
int cli_read_value_file(const char *path, size_t max, sfs_set *dst, const char *name,
                        int64_t now, struct sfs_err *err);


int cmd_keygen(struct cli *cli, int argc, char **argv);
int cmd_rekey(struct cli *cli, int argc, char **argv);
int cmd_update_secrets(struct cli *cli, int argc, char **argv);
int cmd_set(struct cli *cli, int argc, char **argv);
int cmd_rm(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_get(struct cli *cli, int argc, char **argv);
int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_reload(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_audit(struct cli *cli, int argc, char **argv);
int cmd_docker_plugin(struct cli *cli, int argc, char **argv);
int cmd_copy(struct cli *cli, int argc, char **argv);
/* mount(8) form: secretfs SOURCE MOUNTPOINT [-o OPTIONS]; argv[0] is the program. */
int cmd_mount_helper(struct cli *cli, int argc, char **argv);

/* Signals the daemon serving `mountpoint` (pid from its .status) and waits up to `timeout`
 * seconds for the outcome.  Prints it; returns an exit code. */
int cli_reload_mount(struct cli *cli, const char *mountpoint, double timeout);
/* [mount] mountpoint, else /run/secrets. */
const char *cli_default_mountpoint(struct cli *cli);

#endif
