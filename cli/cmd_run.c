/* cli/cmd_run.c — `secretfs run`: the command line.  Starts a program with the mount's secrets in its
 * environment, and restart or signal it when the mount serves a new generation.
 *
 * Who holds plaintext: only the child, between reading the mount and execve.  The parent
 * (the supervisor) never reads a value: it forks, the child reads one consistent snapshot of
 * the mount into a secure arena (locked, not dumpable, not inherited by fork), builds envp
 * there, reports the generation it read through a pipe and waits for the go-ahead, then
 * execs.  execve replaces the whole address space, so no copy outlives it except the
 * program's own environment.  Values travel only through envp: never argv, never a message.
 *
 * Change detection: the daemon rewrites a generation file (fs/notify.h; .status names it in
 * `notify=`) after every reload; the parent watches its directory with inotify and, on an
 * event, re-reads .status.  Without that file it reads .status once a second.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/run.h"
#include "secrets/names.h"

static const char run_help[] =
    "usage: secretfs run [--mount DIR] [--only NAME[,NAME...]] [--restart-on-change]\n"
    "                    [--signal SIG] [--grace SECONDS] [--config F] -- COMMAND [ARGS...]\n"
    "\n"
    "Run COMMAND with the mount's secrets and platform entries added to its environment,\n"
    "all read from one generation.  A secret overrides an inherited variable of the same\n"
    "name; platform entries (LIVEKIT_*) cannot be shadowed by secrets.  Names that are not\n"
    "environment variable names, unreadable files and values holding a NUL byte are skipped\n"
    "with a warning naming them.  Values reach COMMAND only through its environment.\n"
    "\n"
    "  --mount DIR          the mount to read (default: [mount] mountpoint, then\n"
    "                       " SFS_DEFAULT_MOUNTPOINT ")\n"
    "  --only NAMES         add only these names (comma separated)\n"
    "  --restart-on-change  when the mount serves a new generation: send SIGTERM (or\n"
    "                       --signal) to COMMAND's process group, wait --grace seconds,\n"
    "                       SIGKILL it if still running, start it again with the new values\n"
    "  --signal SIG         the signal for --restart-on-change; alone: only send SIG to the\n"
    "                       running COMMAND on a change (HUP, USR1, TERM, ... or a number)\n"
    "  --grace SECONDS      how long a restarted COMMAND may take to exit (default 10)\n"
    "\n"
    "COMMAND runs in its own process group; SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and\n"
    "SIGUSR2 sent to secretfs run are forwarded to that group.\n"
    "\n"
    "Exit status: COMMAND's exit status, or 128+N if it was killed by signal N; 1 if the\n"
    "mount cannot be read before COMMAND starts; 2 usage error; 126 if COMMAND cannot be\n"
    "executed, 127 if it is not found.\n";

enum { OPT_MOUNT = OPT_FIRST_COMMAND_OPTION + 40, OPT_RUN_ONLY, OPT_RESTART, OPT_SIGNAL,
       OPT_GRACE };

static int parse_signal(const char *s)
{
    static const struct { const char *name; int sig; } names[] = {
        {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH},
        {"CONT", SIGCONT}, {"KILL", SIGKILL},
    };
    char *end;
    size_t i;
    long n;

    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].sig;
    n = strtol(s, &end, 10);
    return *s && !*end && n > 0 && n < NSIG && n != SIGSTOP ? (int)n : -1;
}

static int parse_only(struct cli *cli, struct run_opts *o, const char *arg)
{
    char *save = NULL, *tok;
    size_t i;

    free(o->only_text);
    free(o->only);
    o->only = NULL;
    o->n_only = 0;
    o->only_text = strdup(arg);
    if (!o->only_text)
        return -ENOMEM;
    for (tok = strtok_r(o->only_text, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
        const char **grown;
        if (!sfs_name_is_shell_ident(tok) || strlen(tok) > SFS_NAME_MAX) {
            cli_error(cli, "--only: '%s' is not a valid environment variable name", tok);
            return -EINVAL;
        }
        for (i = 0; i < o->n_only && strcmp(o->only[i], tok) != 0; i++)
            ;
        if (i < o->n_only)
            continue; /* named twice */
        grown = realloc(o->only, (o->n_only + 1) * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        o->only = grown;
        o->only[o->n_only++] = tok;
    }
    if (!o->n_only) {
        cli_error(cli, "--only needs at least one name");
        return -EINVAL;
    }
    return 0;
}

static int parse_args(struct cli *cli, struct run_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"mount", required_argument, NULL, OPT_MOUNT},
        {"only", required_argument, NULL, OPT_RUN_ONLY},
        {"restart-on-change", no_argument, NULL, OPT_RESTART},
        {"signal", required_argument, NULL, OPT_SIGNAL},
        {"grace", required_argument, NULL, OPT_GRACE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int opt;

    optind = 1;
    opterr = 1;
    /* '+': stop at COMMAND, so its own options stay its own */
    while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            return cli_usage(cli, run_help, true);
        case OPT_MOUNT:
            o->mount = optarg;
            break;
        case OPT_RUN_ONLY:
            if (parse_only(cli, o, optarg) < 0)
                return EXIT_USAGE;
            break;
        case OPT_RESTART:
            o->restart = true;
            break;
        case OPT_SIGNAL:
            o->signal = parse_signal(optarg);
            if (o->signal < 0) {
                cli_error(cli, "--signal %s: not a signal (use a name such as HUP or TERM, "
                          "or a number)", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_GRACE:
            o->grace = strtod(optarg, &end);
            if (*end || !(o->grace >= 0 && o->grace <= 86400)) {
                cli_error(cli, "--grace %s: give seconds between 0 and 86400", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_CONFIG:
            cli->flag_config = optarg;
            break;
        default:
            return cli_usage(cli, run_help, false);
        }
    }
    if (optind >= argc) {
        cli_error(cli, "no COMMAND given (secretfs run [OPTIONS] -- COMMAND [ARGS...])");
        return cli_usage(cli, run_help, false);
    }
    o->argv = argv + optind;
    return -1;
}

/* `secretfs run [OPTIONS] -- COMMAND [ARGS...]` (argv[0] is "run").  Reads no value itself:
 * each start of COMMAND forks a child that reads the mount and execs.  Returns COMMAND's exit
 * status (128+N for signal N), or EXIT_FAIL / EXIT_USAGE / 126 / 127 as the help says. */
int cmd_run(struct cli *cli, int argc, char **argv)
{
    struct run_opts o = {.grace = 10.0};
    struct gen_key key;
    int rc = parse_args(cli, &o, argc, argv);

    if (rc >= 0)
        goto out;
    if (!o.mount) {
        if (cli_load_config(cli) != EXIT_OK) {
            rc = EXIT_FAIL;
            goto out;
        }
        o.mount = cli_default_mountpoint(cli);
    }
    rc = cli_run_read_key(o.mount, &key);
    if (rc < 0) {
        cli_error(cli, "%s/.status: %s; is a secretfs daemon serving %s? (choose the mount "
                  "with --mount)", o.mount, strerror(rc == -EBADMSG ? EBADMSG : -rc), o.mount);
        rc = EXIT_FAIL;
        goto out;
    }
    rc = cli_run_supervise(cli, &o, &key);
out:
    free(o.only_text);
    free(o.only);
    return rc;
}
