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
 * "secrets.env:4: DB_URL: $DB_HOST expands to nothing (not defined earlier in the file)":
 * file, line, the key, what happened.  It never contains a value (a variable name that
 * follows `$` is named).  Warnings are given where godotenv's result is probably not what
 * the author meant; the value is stored as godotenv stores it all the same:
 *   - $NAME / ${NAME} not defined earlier in the file (expands to nothing; the process
 *     environment is never consulted);
 *   - $( : godotenv reads $(NAME as $NAME and keeps $(other literally;
 *   - \" (or \') right before the closing quote: the quote is lost, the backslash kept;
 *   - an escape other than \n \r \\ \" \' \$ in double quotes (the backslash is dropped),
 *     once per value with the column of the first;
 *   - \\" inside double quotes, which godotenv does not take as the closing quote;
 *   - a key set again (both lines named; the last value wins).
 * At most 16 per statement, then one "N more warnings" line. */
typedef void (*sfs_dotenv_warn_fn)(void *ctx, const char *msg);

/* Parses `len` bytes of dotenv text named `fname` (used in messages only).
 * On success returns 0 and *out is a new set (caller frees) holding exactly the keys and
 * values godotenv.Parse would return, each entry's `line` the line its key started on;
 * created/updated are 0.  On rejection returns -EINVAL (or -ENOMEM), *out is NULL, and
 * err says "FNAME:LINE:COL: what is wrong": LINE counts LF (a lone CR does not start a
 * line), COL counts characters (UTF-8 code points, an invalid byte as one) from 1, and
 * both point at the offending character (for an unterminated quote, its opening quote).
 * godotenv rejects exactly: a character outside letters, digits, '_', '.' and spaces
 * before the '=' or ':' of a statement (this includes a line without '=' and text after
 * a closing quote), "export " with nothing after it, and an unterminated quote.  Beyond
 * godotenv, a file whose values would total more than 64 MiB over its own size (through
 * variable expansion) is rejected.  Name policy (storable names, LIVEKIT_*) is not
 * applied here: a name may be empty or hold spaces.  Plaintext copies made while parsing
 * live in secure memory and are wiped before return.  `warn` may be NULL. */
int sfs_dotenv_parse(const char *buf, size_t len, const char *fname, sfs_set **out,
                     sfs_dotenv_warn_fn warn, void *warn_ctx, struct sfs_err *err);

#endif
