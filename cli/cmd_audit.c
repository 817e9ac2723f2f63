/* cli/cmd_audit.c — `secretfs audit`: who read which secret, from a mount's audit log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "crypto/aead.h"
#include "crypto/secmem.h"

static const char audit_help[] =
    "usage: secretfs audit [--name NAME] [--since TIME] [--fingerprint VALUE-FILE] [--json]\n"
    "                      [--key-file K] [--config F] [PATH]\n"
    "\n"
    "Print the records of an audit log (a mount's audit=PATH; default: [mount] audit):\n"
    "who opened which secret, when, and the fingerprint of the value they got; and each\n"
    "reload.  A table for a person, or with --json the records exactly as logged.\n"
    "\n"
    "  --name NAME          only opens of NAME (and the reloads that changed it)\n"
    "  --since TIME         only records from TIME on: 2026-11-28, 2026-11-28T17:55:00Z,\n"
    "                       an RFC 3339 time with an offset, or 30s, 15m, 2h, 7d ago\n"
    "  --fingerprint FILE   only opens that served exactly the bytes of FILE ('-': stdin),\n"
    "                       fingerprinted under the master key (--key-file, --config);\n"
    "                       a value is never taken from the command line\n"
    "  --json               print the matching records as they are, one per line\n"
    "\n"
    "Exit status: 0 (also when nothing matches), 1 the log or the key cannot be read,\n"
    "2 usage error.\n";

enum { OPT_NAME = OPT_FIRST_COMMAND_OPTION + 40, OPT_SINCE, OPT_FINGERPRINT, OPT_JSON };

struct audit_query {
    const char *path;
    const char *name;
    long long since_us;           /* -1: no bound */
    char fingerprint[SFS_FINGERPRINT_HEX + 1]; /* "" unless --fingerprint */
    bool json;
    size_t shown;
};

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static long long days_from_civil(int y, int m, int d)
{
    long long era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* An RFC 3339 time (or a date) as microseconds since the epoch; -1 if it is not one. */
static long long parse_time(const char *s)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, oh, om;
    long long us = 0, scale = 100000;
    const char *p;

    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || mo < 1 || mo > 12 || d < 1 ||
        d > 31)
        return -1;
    p = s + n;
    if (*p == '\0')
        return days_from_civil(y, mo, d) * 86400000000LL;
    if ((*p != 'T' && *p != 't' && *p != ' ') ||
        sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3)
        return -1;
    p += 1 + n;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            us += (*p - '0') * scale;
    us += ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000000LL + sec * 1000000LL;
    if ((*p == 'Z' || *p == 'z') && !p[1])
        return us;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) == 2 && !p[1 + n])
        return us - (*p == '+' ? 1 : -1) * (oh * 60 + om) * 60000000LL;
    return -1;
}

/* --since: a time, or an age such as 15m ("15 minutes ago"). */
static long long parse_since(const char *s)
{
    struct timespec now;
    char *end;
    long long n = strtoll(s, &end, 10), unit = 0;

    if (end != s && n >= 0 && end[0] && !end[1])
        unit = end[0] == 's' ? 1 : end[0] == 'm' ? 60 : end[0] == 'h' ? 3600
               : end[0] == 'd' ? 86400 : 0;
    if (!unit)
        return parse_time(s);
    clock_gettime(CLOCK_REALTIME, &now);
    return ((long long)now.tv_sec - n * unit) * 1000000LL + now.tv_nsec / 1000;
}

/* --fingerprint FILE: the fingerprint of FILE's bytes under the master key. */
static int fingerprint_of(struct cli *cli, const char *file, char *out)
{
    unsigned char fkey[SFS_FINGERPRINT_KEY_BYTES];
    struct sfs_err err;
    sfs_set *held = sfs_set_new(0);
    sfs_key *key = NULL;
    const sfs_entry *e;
    int rc = EXIT_FAIL;

    if (!held) {
        cli_error(cli, "out of memory");
        return EXIT_FAIL;
    }
    if (cli_read_value_file(file, cli->cfg.max_secret_size, held, "VALUE", 0, &err) < 0) {
        cli_error(cli, "--fingerprint %s", err.msg);
        goto out;
    }
    key = sfs_key_load(cli->key_file, &err);
    if (!key) {
        cli_error(cli, "%s (--fingerprint needs the master key the mount uses)", err.msg);
        goto out;
    }
    e = sfs_set_at(held, 0);
    sfs_fingerprint_key(key, fkey);
    sfs_fingerprint(fkey, e->value, e->len, out);
    sfs_wipe(fkey, sizeof fkey);
    rc = EXIT_OK;
out:
    sfs_key_free(key);
    sfs_set_free(held); /* wipes the value */
    return rc;
}

static const char *field(json_t *rec, const char *key)
{
    const char *s = json_string_value(json_object_get(rec, key));
    return s ? s : "";
}

static bool array_has(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

static bool matches(const struct audit_query *q, json_t *rec)
{
    const char *ev = field(rec, "event");
    long long t = parse_time(field(rec, "time"));
    bool open = strcmp(ev, "open") == 0;

    if (q->since_us >= 0 && t < q->since_us)
        return false;
    if (q->fingerprint[0] && (!open || strcmp(field(rec, "fingerprint"), q->fingerprint)))
        return false;
    if (q->name && open)
        return strcmp(field(rec, "name"), q->name) == 0;
    if (q->name)
        return strcmp(ev, "reload") == 0 &&
               (array_has(json_object_get(rec, "added"), q->name) ||
                array_has(json_object_get(rec, "changed"), q->name) ||
                array_has(json_object_get(rec, "removed"), q->name));
    return true;
}

/* Prints `s` with control characters escaped (a caller's argv may hold anything). */
static void put_safe(const char *s, int width)
{
    int n = 0;

    for (; *s; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            n += printf("\\x%02x", c) - 1;
        else
            putchar(c);
    }
    for (; n < width; n++)
        putchar(' ');
}

static void put_list(const char *label, json_t *arr, bool *first)
{
    size_t i;
    json_t *v;

    if (!json_array_size(arr))
        return;
    printf("%s%s:", *first ? "" : "; ", label);
    json_array_foreach(arr, i, v) {
        putchar(' ');
        put_safe(json_string_value(v) ? json_string_value(v) : "?", 0);
    }
    *first = false;
}

/* The last column of a row: the caller's command line, or what a reload did. */
static void put_detail(json_t *rec, const char *ev)
{
    bool first = true;
    size_t i;
    json_t *v;

    if (strcmp(ev, "open") == 0) {
        json_array_foreach(json_object_get(rec, "cmdline"), i, v) {
            if (i)
                putchar(' ');
            put_safe(json_string_value(v) ? json_string_value(v) : "", 0);
        }
        if (strcmp(field(rec, "process"), "exited") == 0)
            fputs(i ? " (exited)" : "(exited before its command line was read)", stdout);
    } else if (strcmp(ev, "reload") == 0) {
        put_list("added", json_object_get(rec, "added"), &first);
        put_list("changed", json_object_get(rec, "changed"), &first);
        put_list("removed", json_object_get(rec, "removed"), &first);
        if (first)
            fputs("nothing changed", stdout);
    } else if (strcmp(ev, "reload_refused") == 0) {
        put_safe(field(rec, "error"), 0);
    } else if (strcmp(ev, "mount") == 0) {
        printf("%" JSON_INTEGER_FORMAT " secrets, %" JSON_INTEGER_FORMAT " platform entries",
               json_integer_value(json_object_get(rec, "secrets")),
               json_integer_value(json_object_get(rec, "platform")));
    }
}

static void print_row(const struct audit_query *q, json_t *rec)
{
    const char *ev = field(rec, "event");
    bool open = strcmp(ev, "open") == 0;
    char fp[17];

    if (q->shown == 0)
        printf("%-27s  %-14s  %-20s  %4s  %-16s  %7s  %6s  %6s  %-24s  %-28s  %s\n", "TIME",
               "EVENT", "NAME", "GEN", "FINGERPRINT", "PID", "UID", "GID", "EXE", "CGROUP",
               "COMMAND / WHAT");
    snprintf(fp, sizeof fp, "%s", open ? field(rec, "fingerprint") : "-");
    put_safe(field(rec, "time"), 27);
    fputs("  ", stdout);
    put_safe(ev, 14);
    fputs("  ", stdout);
    put_safe(open ? field(rec, "name") : "-", 20);
    printf("  %4" JSON_INTEGER_FORMAT "  %-16s  ",
           json_integer_value(json_object_get(rec, "generation")), fp);
    if (open)
        printf("%7" JSON_INTEGER_FORMAT "  %6" JSON_INTEGER_FORMAT "  %6" JSON_INTEGER_FORMAT
               "  ", json_integer_value(json_object_get(rec, "pid")),
               json_integer_value(json_object_get(rec, "uid")),
               json_integer_value(json_object_get(rec, "gid")));
    else
        printf("%7s  %6s  %6s  ", "-", "-", "-");
    put_safe(open ? (*field(rec, "exe") ? field(rec, "exe") : "?") : "-", 24);
    fputs("  ", stdout);
    put_safe(open ? (*field(rec, "cgroup") ? field(rec, "cgroup") : "?") : "-", 28);
    fputs("  ", stdout);
    put_detail(rec, ev);
    putchar('\n');
}

/* Reads the log line by line and prints what matches.  Returns an exit code. */
static int scan_log(struct cli *cli, struct audit_query *q)
{
    FILE *f = fopen(q->path, "re");
    char *line = NULL;
    size_t cap = 0, lineno = 0, bad = 0;
    ssize_t len;

    if (!f) {
        cli_error(cli, "%s: %s%s", q->path, strerror(errno),
                  errno == ENOENT ? "; give the log's path (the mount's audit=PATH)" : "");
        return EXIT_FAIL;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        json_t *rec = json_loadb(line, (size_t)len, 0, NULL);
        lineno++;
        if (!json_is_object(rec)) {
            if (bad++ < 3)
                cli_warn(cli, "%s:%zu: not an audit record (cut by a full disk?); skipped",
                         q->path, lineno);
        } else if (matches(q, rec)) {
            if (q->json)
                fwrite(line, 1, (size_t)len, stdout);
            else
                print_row(q, rec);
            q->shown++;
        }
        json_decref(rec);
    }
    free(line);
    fclose(f);
    if (bad > 3)
        cli_warn(cli, "%s: %zu lines in all were not audit records", q->path, bad);
    if (!q->shown && !q->json)
        fprintf(stderr, "no records match\n");
    return EXIT_OK;
}

/* PATH, else [mount] audit; "journal" is journald's to show. */
static int resolve_path(struct cli *cli, struct audit_query *q, const char *arg)
{
    q->path = arg ? arg : cli->cfg.audit;
    if (!q->path) {
        cli_error(cli, "which audit log? give its PATH, or set [mount] audit in %s",
                  cli->cfg.path ? cli->cfg.path : SFS_DEFAULT_CONFIG);
        return EXIT_USAGE;
    }
    if (strcmp(q->path, "journal") == 0) {
        cli_error(cli, "this mount audits to the journal: journalctl "
                  "SYSLOG_IDENTIFIER=secretfs-audit [SECRETFS_NAME=NAME] "
                  "[SECRETFS_FINGERPRINT=F] (-o json for every field)");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int cmd_audit(struct cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"name", required_argument, NULL, OPT_NAME},
        {"since", required_argument, NULL, OPT_SINCE},
        {"fingerprint", required_argument, NULL, OPT_FINGERPRINT},
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    struct audit_query q = {.since_us = -1};
    const char *value_file = NULL, *since = NULL;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h')
            return cli_usage(cli, audit_help, true);
        if (cli_common_option(cli, opt, optarg))
            continue;
        if (opt == OPT_NAME)
            q.name = optarg;
        else if (opt == OPT_SINCE)
            since = optarg;
        else if (opt == OPT_FINGERPRINT)
            value_file = optarg;
        else if (opt == OPT_JSON)
            q.json = true;
        else
            return cli_usage(cli, audit_help, false);
    }
    if (argc - optind > 1)
        return cli_usage(cli, audit_help, false);
    if (since && (q.since_us = parse_since(since)) < 0) {
        cli_error(cli, "--since %s: give a date (2026-11-28), an RFC 3339 time "
                  "(2026-11-28T17:55:00Z) or an age (30s, 15m, 2h, 7d)", since);
        return EXIT_USAGE;
    }
    if (cli_load_config(cli) != EXIT_OK)
        return EXIT_FAIL;
    rc = resolve_path(cli, &q, optind < argc ? argv[optind] : NULL);
    if (rc == EXIT_OK && value_file)
        rc = fingerprint_of(cli, value_file, q.fingerprint);
    return rc == EXIT_OK ? scan_log(cli, &q) : rc;
}
