/* cli/config.h — the ini configuration file and where each setting comes from.
 *
 * The only code that includes ini.h.  Settings resolve in this order: command-line flag,
 * environment variable, config file, built-in default.  Other modules never see the file:
 * the CLI turns a loaded config into each module's own option struct.
 */
#ifndef SFS_CLI_CONFIG_H
#define SFS_CLI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

#define SFS_DEFAULT_CONFIG "/etc/secretfs/secretfs.ini"
#define SFS_DEFAULT_STORE "/var/lib/secretfs/secrets.store"
#define SFS_DEFAULT_KEY_FILE "/etc/secretfs/master.key"
#define SFS_DEFAULT_STATE_DIR "/var/lib/secretfs"
#define SFS_DEFAULT_MOUNTPOINT "/run/secrets"
#define SFS_DEFAULT_PLATFORM_ENV "LIVEKIT_URL LIVEKIT_API_KEY LIVEKIT_API_SECRET"
#define SFS_DEFAULT_MAX_SECRET (1u << 20)
#define SFS_DEFAULT_MAX_STORE (64u << 20)

/* A [secret:NAME] section. */
struct sfs_config_secret {
    char *name;
    bool has_uid, has_gid, has_mode;
    uid_t uid;
    gid_t gid;
    mode_t mode;
};

struct sfs_config {
    char *path;         /* the file that was read, or NULL if none */

    /* [store] */
    char *store_path;   /* NULL: not set in the file */
    char *key_file;
    char *key_credential; /* a systemd credential name, read from $CREDENTIALS_DIRECTORY */
    char *state_dir;      /* where the daemon remembers the store versions it served */
    size_t max_secret_size;
    size_t max_store_size;
    unsigned lock_timeout_ms; /* how long a write waits for another's store lock; 0: unset */
    bool watch;

    /* [mount] */
    char *mountpoint;
    bool has_uid, has_gid, has_mode;
    uid_t uid;
    gid_t gid;
    mode_t mode;
    char *cache;        /* "kernel" or "none", NULL if unset */
    char *audit;        /* audit log path or "journal", NULL if unset */
    char *only;         /* comma/space separated names, NULL if unset */
    int allow_other;    /* -1 unset, 0 no, 1 yes */

    /* [docker] (secretfs docker-plugin) */
    char *docker_audit; /* audit = journal|DIR: every volume's mount is audited; NULL: unset */

    /* [platform] */
    char *platform_env; /* space separated variable names, NULL: the default list */
    char *platform_file;
    char *reserved_prefix;

    /* [etcd] (store/store.h's sfs_store_options; paths as written) */
    char *etcd_ca_file;
    char *etcd_cert_file;
    char *etcd_key_file;
    char *etcd_user;
    char *etcd_password_file;
    char *etcd_cache_file;          /* the daemon's local sealed cache; NULL: the default */
    unsigned etcd_dial_timeout_ms;  /* 0: the store's default */
    unsigned etcd_request_timeout_ms;

    struct sfs_config_secret *secrets;
    size_t n_secrets;
};

/* Fills `cfg` with defaults, then reads `path` if it exists.  `explicit_path` says the user
 * named the file (flag or SECRETFS_CONFIG): then a missing file is an error; the default
 * path may be missing.  Rejects, naming FILE:LINE and the fix: unknown sections or keys,
 * repeated keys, lines inih cannot read whole (over 196 bytes), NUL bytes and other control
 * characters (tab and CRLF aside), indented lines (inih would join them to the previous
 * value), keys outside a section, text after a section's "]", section names inih would
 * cut (50 bytes or more), empty paths, and bad values.  Returns 0 or -errno; on
 * error cfg is still safe to free.  The caller owns cfg and frees it with sfs_config_free. */
int sfs_config_load(const char *path, bool explicit_path, struct sfs_config *cfg,
                    struct sfs_err *err);

void sfs_config_free(struct sfs_config *cfg);

/* Looks up a [secret:NAME] section; NULL if none. */
const struct sfs_config_secret *sfs_config_secret(const struct sfs_config *cfg,
                                                  const char *name);

/* Parses "0400"-style octal permission bits (at most 0777). */
int sfs_parse_mode(const char *s, mode_t *out);
/* Parses a user name or a numeric uid. */
int sfs_parse_uid(const char *s, uid_t *out);
/* Parses a group name or a numeric gid. */
int sfs_parse_gid(const char *s, gid_t *out);
/* Parses yes/no/true/false/on/off/1/0. */
int sfs_parse_bool(const char *s, bool *out);
/* Parses a byte size with optional K, M or G suffix (powers of 1024). */
int sfs_parse_size(const char *s, size_t *out);

#endif
