/* cli/cmd_docker.c — `secretfs docker-plugin`: parses the command line, hands over to docker/. */
#include <errno.h>
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
    "                              [--passphrase-file F]\n"
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

enum { OPT_SOCKET = OPT_FIRST_COMMAND_OPTION + 40, OPT_STATE, OPT_VOLUMES };

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

int cmd_docker_plugin(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"state", required_argument, NULL, OPT_STATE},
        {"volumes", required_argument, NULL, OPT_VOLUMES},
        {NULL, 0, NULL, 0},
    };
    const char *socket_path = SFS_DOCKER_DEFAULT_SOCKET, *state = SFS_DOCKER_DEFAULT_STATE,
               *volumes = SFS_DOCKER_DEFAULT_VOLUMES;
    struct sfs_docker_plugin_opts o = {.exe = "/proc/self/exe", .listen_fd = -1};
    sfs_arena *passphrase = NULL;
    char *abs[7] = {NULL};
    struct sfs_err err;
    size_t i;
    int opt, rc = EXIT_OK;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, docker_help, true);
        if (cli_common_option(cli, opt, optarg))
            continue;
        if (opt == OPT_SOCKET && optarg[0])
            socket_path = optarg;
        else if (opt == OPT_STATE && optarg[0])
            state = optarg;
        else if (opt == OPT_VOLUMES && optarg[0])
            volumes = optarg;
        else
            return cli_usage(cli, docker_help, false);
    }
    if (optind < argc)
        return cli_usage(cli, docker_help, false);
    if (cli_load_config(cli) != EXIT_OK ||
        cli_passphrase_keep(cli, &passphrase, &o.passphrase, &o.passphrase_len) != EXIT_OK)
        return EXIT_FAIL;
    if (!passphrase && cli->flag_passphrase_file)
        cli_warn(cli, "--passphrase-file: %s is not protected by a passphrase; ignored",
                 cli->key_file);
    o.socket_path = abs[0] = absolute_path(socket_path);
    o.state_dir = abs[1] = absolute_path(state);
    o.volumes_dir = abs[2] = absolute_path(volumes);
    /* children resolve the rest (environment, config file) as `secretfs mount` would */
    o.config_path = abs[3] = absolute_path(cli->cfg.path);
    o.store_path = abs[4] = absolute_path(cli->flag_store);
    o.key_file = abs[5] = absolute_path(cli->flag_key_file);
    o.store_file = abs[6] = sfs_store_is_path(cli->store_path) ? absolute_path(cli->store_path)
                                                               : NULL;
    if (!o.socket_path || !o.state_dir || !o.volumes_dir ||
        (cli->cfg.path && !o.config_path) || (cli->flag_store && !o.store_path) ||
        (cli->flag_key_file && !o.key_file) ||
        (sfs_store_is_path(cli->store_path) && !o.store_file)) {
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
