/* secrets/view.h — rendering the generated views (.env, .env.json) of a secret set.
 *
 * Renderers are snprintf-style: they write at most `cap` bytes to `out` (which may be NULL
 * when cap is 0) and return the full length, so callers measure, allocate the exact size
 * in secure memory, and render again.  Output order is the set's name order.
 */
#ifndef SFS_SECRETS_VIEW_H
#define SFS_SECRETS_VIEW_H

#include <stddef.h>

#include "secrets/set.h"

/* POSIX-shell view: a header comment, then `export NAME='value'` per entry whose name is a
 * shell identifier and whose value has no NUL byte (each ' written as '\''); every skipped
 * entry is named in a comment with the reason. */
size_t sfs_view_env(const sfs_set *set, char *out, size_t cap);

/* JSON view: one object name -> string.  Values that are not valid UTF-8 are left out (a
 * JSON string cannot carry them exactly); read those from their files. */
size_t sfs_view_json(const sfs_set *set, char *out, size_t cap);

#endif
