/* secrets/dotenv.h — a faithful C port of godotenv 1.5.1's Parse (what `lk agent
 * --secrets-file` stores), plus warnings where godotenv's result is probably not what the
 * author meant.  Pure: parses a buffer it is handed, does no I/O.
 */
#ifndef SFS_SECRETS_DOTENV_H
#define SFS_SECRETS_DOTENV_H

#include <stddef.h>

#include "secrets/set.h"
#include "util/err.h"

/* Called once per warning, in line order.  `msg` is a full line such as
 * "secrets.env:4: $DB_HOST expands to nothing (not defined earlier in the file)";
 * it never contains a value. */
typedef void (*sfs_dotenv_warn_fn)(void *ctx, const char *msg);

/* Parses `len` bytes of dotenv text named `fname` (used in messages only).
 * On success returns 0 and *out is a new set (caller frees) holding exactly the keys and
 * values godotenv.Parse would return, each entry's `line` the line its key started on;
 * created/updated are 0.  On rejection returns -EINVAL (or -ENOMEM), *out is NULL, and
 * err says "FNAME:LINE:COL: what is wrong".  Name policy (storable names, LIVEKIT_*) is
 * not applied here. */
int sfs_dotenv_parse(const char *buf, size_t len, const char *fname, sfs_set **out,
                     sfs_dotenv_warn_fn warn, void *warn_ctx, struct sfs_err *err);

#endif
