/* secrets/view.h — rendering the generated views (.env, .env.json, and one per dotenv
 * loader: .env.python, .env.node, .env.go, .env.docker) of a secret set.
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

/* Views for the consumers' own dotenv loaders.  Each writes a header comment, then per
 * entry a `NAME=value` line that its loader reads back as exactly the entry's bytes, or a
 * comment naming the entry and why it is left out (the rules, per loader and version, are
 * in the README, "Views for dotenv loaders"):
 *   python-dotenv's load_dotenv/dotenv_values with default arguments; */
size_t sfs_view_python(const sfs_set *set, char *out, size_t cap);
/*   npm dotenv's config({ path }) and parse; */
size_t sfs_view_node(const sfs_set *set, char *out, size_t cap);
/*   godotenv's Load/Read, which is also what `update-secrets --secrets-file` imports; */
size_t sfs_view_go(const sfs_set *set, char *out, size_t cap);
/*   docker run --env-file (no quoting: the value is the rest of the line). */
size_t sfs_view_docker(const sfs_set *set, char *out, size_t cap);

#endif
