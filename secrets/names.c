#include "secrets/names.h"

#include <string.h>

static bool name_char_ok(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool sfs_name_valid(const char *name, const char **why)
{
    size_t i, len = strlen(name);
    const char *dummy;

    if (!why)
        why = &dummy;
    if (len == 0) {
        *why = "is empty";
        return false;
    }
    if (len > SFS_NAME_MAX) {
        *why = "is longer than 255 bytes";
        return false;
    }
    if (name[0] == '.') {
        *why = "starts with '.' (reserved for generated views)";
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!name_char_ok((unsigned char)name[i])) {
            *why = "has a character outside A-Z a-z 0-9 . _ -";
            return false;
        }
    }
    return true;
}

bool sfs_name_reserved(const char *name, const char *prefix)
{
    size_t n = prefix ? strlen(prefix) : 0;

    return n > 0 && strncmp(name, prefix, n) == 0;
}

bool sfs_name_is_shell_ident(const char *name)
{
    size_t i;

    if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') ||
          name[0] == '_'))
        return false;
    for (i = 1; name[i]; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}
