/* cli/cmd_docker.c — `secretfs docker-plugin`: parses the command line, hands over to docker/. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "docker/plugin.h"
#include "fs/daemon.h"
#include "util/log.h"

static const char docker_help[] =
    "usage: secretfs docker-plugin [--socket PATH] [--state DIR] [--volumes DIR]\n"
    "                              [--config F] [--store S] [--key-file K]\n"
    "                              [--passphrase-file F] [--audit journal|DIR]\n"
    "\n"
    "Serve Docker's volume plugin API on a unix socket, in the foreground, logging to\n"
    "stderr.  Each volume is a read-only secretfs mount of the store (or of a subset).\n"
    "\n"
    "  --socket PATH   the socket Docker connects to (mode 0600)\n"
    "                  (default " SFS_DOCKER_DEFAULT_SOCKET ")\n"
    "  --state DIR     volume definitions, kept across restarts (created mode 0700)\n"
    "                  (default " SFS_DOCKER_DEFAULT_STATE ")\n"
    "  --volumes DIR   where volumes are mounted, one directory each (created 0700)\n"
    "                  (default " SFS_DOCKER_DEFAULT_VOLUMES ")\n"
    "  --config, --store, --key-file   as for every command; passed to each mount\n"
    "  --passphrase-file F   the passphrase of a protected key file (else the\n"
    "                  descriptor in SECRETFS_PASSPHRASE_FD, else the terminal): asked\n"
    "                  once and checked at start, kept in locked memory, handed to each\n"
    "                  mount through a pipe\n"
    "  --audit journal|DIR   every volume's mount records each open of a secret, as\n"
    "                  secretfs mount -o audit= does (implies cache=none): to the journal,\n"
    "                  or to DIR/VOLUME.log (DIR created mode 0700)\n"
    "\n"
    "Volume options (docker volume create -d secretfs -o KEY=VALUE ...):\n"
    "  secrets=A,B     serve only these names (default: every secret); each must be in\n"
    "                  the store, unless listed in optional=\n"
    "  optional=A      names of secrets= the store may lack for now\n"
    "  uid=N, gid=N    numeric owner and group of the files (default: the plugin's)\n"
    "  mode=0440       permission bits of the files, octal (default 0400)\n"
    "  cache=kernel|none   as for secretfs mount (default kernel)\n"
    "\n"
    "Under systemd socket activation (LISTEN_FDS) it serves the socket systemd passes,\n"
    "so dockerd may start before or after it.\n"
    "\n"
    "SIGHUP reloads every mounted volume.  SIGTERM and SIGINT stop the plugin and leave\n"
    "the mounts serving; a restarted plugin adopts them.\n"
    "\n"
    "Exit status: 0 stopped by SIGTERM/SIGINT, 1 cannot start (socket in use, state\n"
    "directory locked or unreadable, bad config, wrong passphrase), 2 usage error.\n";

enum { OPT_SOCKET = OPT_FIRST_COMMAND_OPTION + 40, OPT_STATE, OPT_VOLUMES, OPT_AUDIT };

/* `path` made absolute against the working directory (it may not exist yet); malloc'd. */
static char *absolute_path(const char *path)
{
    char cwd[4096], *out;
    size_t len;

    if (!path)
        return NULL;
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return strdup(path);
    len = strlen(cwd) + strlen(path) + 2;
    out = malloc(len);
    if (out)
        snprintf(out, len, "%s/%s", cwd, path);
    return out;
}

struct plugin_args {
    const char *socket_path, *state, *volumes;
    const char *audit;  /* --audit journal|DIR, or NULL */
};

/* --audit, else the config's [docker] audit: "journal", or a directory whose NAME.log files
 * the mounts write, made absolute into *abs (the plugin passes it in -o, which a ',' would
 * split; a volume name has at most 255 bytes).  Prints the error; returns an exit code. */
static int audit_option(struct cli *cli, const char *audit, const char **out, char **abs)
{
    const char *what = "--audit";

    *out = NULL;
    if (!audit && cli->cfg.docker_audit) {
        audit = cli->cfg.docker_audit;
        what = "[docker] audit";
        if (strcmp(audit, "journal") != 0 && audit[0] != '/') {
            cli_error(cli, "%s: [docker] audit = %s: give 'journal' or an absolute directory",
                      cli->cfg.path, audit);
            return EXIT_FAIL;
        }
    }
    if (!audit) {
        if (cli->cfg.audit)
            cli_warn(cli, "%s: [mount] audit is for secretfs mount; Docker volumes are audited "
                      "only with docker-plugin --audit journal|DIR or [docker] audit",
                      cli->cfg.path);
        return EXIT_OK;
    }
    if (strcmp(audit, "journal") == 0) {
        *out = audit;
        return EXIT_OK;
    }
    *abs = absolute_path(audit);
    if (!*abs) {
        cli_error(cli, "out of memory");
        return EXIT_FAIL;
    }
    if (strchr(*abs, ',') || strlen(*abs) + sizeof "/.log" + 255 > PATH_MAX) {
        cli_error(cli, "%s %s: %s; choose another directory", what, *abs, strchr(*abs, ',') ?
                  "a ',' in the path would split the mount options it is passed in" :
                  "too long for a volume's log path");
        return EXIT_USAGE;
    }
    *out = *abs;
    return EXIT_OK;
}

/* Parses the command line into *a.  Returns -1 to go on, else the exit code. */
static int parse_args(struct cli *cli, int argc, char **argv, struct plugin_args *a)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"state", required_argument, NULL, OPT_STATE},
        {"volumes", required_argument, NULL, OPT_VOLUMES},
        {"audit", required_argument, NULL, OPT_AUDIT},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, docker_help, true);
        if (cli_common_option(cli, opt, optarg))
            continue;
        if (opt == OPT_SOCKET && optarg[0])
            a->socket_path = optarg;
        else if (opt == OPT_STATE && optarg[0])
            a->state = optarg;
        else if (opt == OPT_VOLUMES && optarg[0])
            a->volumes = optarg;
        else if (opt == OPT_AUDIT && optarg[0])
            a->audit = optarg;
        else
            return cli_usage(cli, docker_help, false);
    }
    return optind < argc ? cli_usage(cli, docker_help, false) : -1;
}

/* The paths of `o`, absolute (the plugin runs children from anywhere), into abs[0..6]. */
static bool plugin_paths(struct cli *cli, const struct plugin_args *a,
                         struct sfs_docker_plugin_opts *o, char **abs)
{
    o->socket_path = abs[0] = absolute_path(a->socket_path);
    o->state_dir = abs[1] = absolute_path(a->state);
    o->volumes_dir = abs[2] = absolute_path(a->volumes);
    /* children resolve the rest (environment, config file) as `secretfs mount` would */
    o->config_path = abs[3] = absolute_path(cli->cfg.path);
    o->store_path = abs[4] = absolute_path(cli->flag_store);
    o->key_file = abs[5] = absolute_path(cli->flag_key_file);
    o->store_file = abs[6] = sfs_store_is_path(cli->store_path)
                                 ? absolute_path(cli->store_path) : NULL;
    return o->socket_path && o->state_dir && o->volumes_dir &&
           (!cli->cfg.path || o->config_path) && (!cli->flag_store || o->store_path) &&
           (!cli->flag_key_file || o->key_file) &&
           (!sfs_store_is_path(cli->store_path) || o->store_file);
}

int cmd_docker_plugin(struct cli *cli, int argc, char **argv)
{
    struct plugin_args a = {SFS_DOCKER_DEFAULT_SOCKET, SFS_DOCKER_DEFAULT_STATE,
                            SFS_DOCKER_DEFAULT_VOLUMES, NULL};
    struct sfs_docker_plugin_opts o = {.exe = "/proc/self/exe", .listen_fd = -1};
    sfs_arena *passphrase = NULL;
    char *abs[8] = {NULL};
    struct sfs_err err;
    size_t i;
    int rc = parse_args(cli, argc, argv, &a);

    if (rc >= 0)
        return rc;
    rc = cli_load_config(cli);
    if (rc == EXIT_OK)
        rc = audit_option(cli, a.audit, &o.audit, &abs[7]);
    if (rc == EXIT_OK)
        rc = cli_passphrase_keep(cli, &passphrase, &o.passphrase, &o.passphrase_len);
    if (rc != EXIT_OK)
        goto out;
    if (!passphrase && cli->flag_passphrase_file)
        cli_warn(cli, "--passphrase-file: %s is not protected by a passphrase; ignored",
                 cli->key_file);
    if (!plugin_paths(cli, &a, &o, abs)) {
        cli_error(cli, "out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    sfs_log_init("secretfs docker-plugin", false);
    if (sfs_systemd_listen_fd(&o.listen_fd, &err) < 0 || sfs_docker_plugin_run(&o, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        rc = EXIT_FAIL;
    }
out:
    for (i = 0; i < sizeof abs / sizeof abs[0]; i++)
        free(abs[i]);
    sfs_arena_free(passphrase);
    return rc;
}
