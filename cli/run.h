/* cli/run.h — the parts of `secretfs run` (cli/cmd_run.c: the command; cli/run_env.c:
 * reading one generation of the mount into an environment; cli/run_supervise.c: the
 * supervisor that starts, restarts and signals COMMAND).  Internal to cli/.
 */
#ifndef SFS_CLI_RUN_H
#define SFS_CLI_RUN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli/cli.h"
#include "crypto/secmem.h"

#define ENV_VAR_MAX (32 * 4096) /* MAX_ARG_STRLEN: the kernel's limit for one "NAME=value" */
#define SNAPSHOT_TRIES 500
#define UNSTABLE_NAP_NS (20 * 1000 * 1000)
#define POLL_INTERVAL_MS 1000
#define DRAIN_POLL_MS 50

struct run_opts {
    const char *mount;
    char *only_text;
    const char **only;
    size_t n_only;
    bool restart;
    int signal;          /* --signal, 0 if not given */
    double grace;
    char **argv;         /* COMMAND ARGS..., NULL-terminated */
};

/* What identifies one generation of one daemon, as .status and the generation file say. */
struct gen_key {
    long pid;                       /* the daemon's */
    unsigned long long generation;
    char notify[PATH_MAX];          /* generation file named by .status, "" if none */
    bool has_seq;                   /* the generation file was read and is that daemon's */
    unsigned long long seq, file_generation;
};

/* Reads `mount`/.status and the generation file it names.  Returns 0 or -errno (-EBADMSG:
 * not a secretfs .status). */
int cli_run_read_key(const char *mount, struct gen_key *key);

/* No reload is running, and .status already shows its outcome. */
bool cli_run_key_stable(const struct gen_key *k);

/* Whether `a` is generation `gen` of daemon `pid`. */
bool cli_run_key_same(const struct gen_key *a, long pid, unsigned long long gen);

struct var {
    char *kv;        /* "NAME=value", NUL-terminated, in the arena */
    size_t name_len;
};

struct env_build {
    sfs_arena *arena;
    struct var *vars;
    size_t n, cap;
    char **skipped;  /* "NAME: why" lines, printed once the snapshot is final */
    size_t n_skipped;
};

/* Wipes and frees what a build holds; it can be reused. */
void cli_run_env_reset(struct env_build *b);

/* Reads one generation of the mount (the generation file, or .status, says the same with no
 * reload running before and after every file was read) into `b`.  On 0, *key is that
 * generation.  Prints errors; returns 0 or -errno. */
int cli_run_read_snapshot(struct cli *cli, const struct run_opts *o, struct env_build *b,
                          struct gen_key *key);

/* environ with `b`'s variables added (a secret overrides an inherited variable of the same
 * name); NULL on ENOMEM.  The strings stay `b`'s. */
char **cli_run_build_envp(const struct env_build *b);

/* Writes all of `s` to fd; false on error. */
bool cli_run_write_all(int fd, const char *s);

/* Runs COMMAND under supervision until it exits for good (the whole of `secretfs run` after
 * its arguments are parsed and `first` was read).  Returns the exit status as the help says. */
int cli_run_supervise(struct cli *cli, const struct run_opts *o, const struct gen_key *first);

#endif
