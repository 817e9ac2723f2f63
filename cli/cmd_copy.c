/* cli/cmd_copy.c — `secretfs copy`: a whole secret set from one store to another. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char copy_help[] =
    "usage: secretfs copy --from LOCATION --to LOCATION [--key-file PATH] [--config PATH]\n"
    "\n"
    "Copies the whole secret set at --from over the one at --to, atomically at the\n"
    "destination (a reader of --to sees the old set or the new one, never a mix).  A\n"
    "LOCATION is a store file or etcd://HOST:PORT[,HOST:PORT...]/PREFIX, so this moves a\n"
    "host's store into etcd, backs an etcd prefix up to a file (sealed, same key), or\n"
    "copies one prefix to another.  Both stores use the same key (--key-file); etcd\n"
    "connection settings come from the [etcd] section of the config.  On a failure\n"
    "nothing changes at --to.  Values are never printed.\n";

enum { OPT_FROM = OPT_FIRST_COMMAND_OPTION, OPT_TO };

static int parse(struct cli *cli, int argc, char **argv, const char **from, const char **to)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"from", required_argument, NULL, OPT_FROM},
        {"to", required_argument, NULL, OPT_TO},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, copy_help, true);
        if (opt == OPT_FROM || opt == OPT_TO) {
            *(opt == OPT_FROM ? from : to) = optarg;
        } else if (opt == OPT_STORE) {
            cli_error(cli, "copy takes --from and --to, not --store");
            return cli_usage(cli, copy_help, false);
        } else if (opt == '?' || !cli_common_option(cli, opt, optarg)) {
            return cli_usage(cli, copy_help, false);
        }
    }
    if (optind != argc || !*from || !*to) {
        cli_error(cli, optind != argc ? "unexpected argument '%s'" : "give --from and --to%s",
                  optind != argc ? argv[optind] : "");
        return cli_usage(cli, copy_help, false);
    }
    if (strcmp(*from, *to) == 0) {
        cli_error(cli, "--from and --to are the same store (%s)", *from);
        return EXIT_USAGE;
    }
    return -1;
}

static int open_at(struct cli *cli, const char *location, sfs_store **out)
{
    struct sfs_store_options o = { .lock_timeout_ms = cli->lock_timeout_ms };
    struct sfs_err err;

    cli_etcd_options(cli, &o);
    if (sfs_store_open(location, &o, out, &err) < 0) {
        cli_error(cli, "%s", err.msg);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Reads the whole set at `from` and replaces `to` with it. */
static int copy_set(struct cli *cli, sfs_store *src, sfs_store *dst, const sfs_key *key,
                    const char *from, const char *to)
{
    struct sfs_err err;
    sfs_set *set = NULL;
    int rc = sfs_store_load(src, key, SFS_LOAD_FRESH, &set, NULL, &err);

    if (rc < 0) {
        cli_error(cli, rc == -ENOENT ? "%s: nothing to copy: %s" : "%s: %s", from, err.msg);
        return EXIT_FAIL;
    }
    rc = sfs_store_replace(dst, key, set, &err);
    if (rc < 0)
        cli_error(cli, "%s: %s (the destination is unchanged)", to, err.msg);
    else
        printf("copied %zu secrets from %s to %s\n", sfs_set_count(set), from, to);
    sfs_set_free(set);
    return rc < 0 ? EXIT_FAIL : EXIT_OK;
}

int cmd_copy(struct cli *cli, int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    sfs_store *src = NULL, *dst = NULL;
    struct sfs_err err;
    sfs_key *key = NULL;
    int rc = parse(cli, argc, argv, &from, &to);

    if (rc >= 0)
        return rc;
    if (cli_load_config(cli) != EXIT_OK)
        return EXIT_FAIL;
    rc = EXIT_FAIL;
    if (open_at(cli, from, &src) != EXIT_OK || open_at(cli, to, &dst) != EXIT_OK)
        goto out;
    key = sfs_key_load(cli->key_file, &err);
    if (!key) {
        cli_error(cli, "%s", err.msg);
        goto out;
    }
    rc = copy_set(cli, src, dst, key, from, to);
out:
    sfs_key_free(key);
    sfs_store_close(dst);
    sfs_store_close(src);
    return rc;
}
