/* secrets/names.h — which names a secret may have.  Pure predicates, no allocation. */
#ifndef SFS_SECRETS_NAMES_H
#define SFS_SECRETS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define SFS_NAME_MAX 255
#define SFS_DEFAULT_RESERVED_PREFIX "LIVEKIT_"

/* A storable name: 1..255 bytes of [A-Za-z0-9._-], not starting with '.'.
 * On false, *why (if non-NULL) points to a static phrase such as
 * "contains ' ' (allowed: A-Z a-z 0-9 . _ -)"; the phrase never quotes a value. */
bool sfs_name_valid(const char *name, const char **why);

/* True when `name` starts with `prefix` (case-sensitive; an empty prefix reserves nothing). */
bool sfs_name_reserved(const char *name, const char *prefix);

/* True for a POSIX shell identifier: [A-Za-z_][A-Za-z0-9_]*. */
bool sfs_name_is_shell_ident(const char *name);

#endif
