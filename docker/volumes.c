/* docker/volumes.c — the volume table, option parsing and the state file's JSON. */
#include "docker/volumes.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/names.h"

#define UID_MAX_VALUE 4294967294UL /* (uid_t)-1 means "unchanged" to the kernel */
#define KNOWN_OPTIONS "secrets, optional, uid, gid, mode, cache"

void sfs_vol_printable(char *dst, size_t size, const char *s, size_t max)
{
    size_t i, o = 0;

    if (size == 0)
        return;
    for (i = 0; s[i] && o + 1 < size; i++) {
        if (i == max) {
            if (o + 4 < size) {
                memcpy(dst + o, "...", 3);
                o += 3;
            }
            break;
        }
        dst[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    }
    dst[o] = '\0';
}

/* An option name as a message may show it: only when it looks like an option name, since
 * a mistyped -o could carry a value where the name should be. */
static const char *shown_key(const char *key, char *buf, size_t size)
{
    size_t i, len = strlen(key);

    for (i = 0; i < len && len <= 64; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            break;
    }
    if (len > 0 && i == len)
        snprintf(buf, size, "'%s'", key);
    else
        snprintf(buf, size, "(a name of %zu bytes, not shown)", len);
    return buf;
}

/* Appends `name` to the comma separated list in *out unless it is there already. */
static int list_add_unique(char **out, size_t *len, size_t *count, const char *name,
                           size_t name_len)
{
    char *grown;

    if (sfs_vol_list_has(*out, name, name_len))
        return 0;
    grown = realloc(*out, *len + name_len + 2);
    if (!grown)
        return -ENOMEM;
    if (*len)
        grown[(*len)++] = ',';
    memcpy(grown + *len, name, name_len);
    *len += name_len;
    grown[*len] = '\0';
    *out = grown;
    (*count)++;
    return 0;
}

/* A comma separated list of secret names for option `opt` (secrets=, optional=): each
 * valid, spaces around names ignored, repeats dropped; *out malloc'd. */
static int parse_names(const char *opt, const char *s, char **out, struct sfs_err *err)
{
    char name[SFS_NAME_MAX + 1];
    const char *why, *p = s;
    size_t len = 0, count = 0, entry = 0;
    int rc = 0;

    *out = NULL;
    if (strspn(s, " \t") == strlen(s))
        return sfs_err_set(err, -EINVAL, "option %s: empty; name at least one secret, "
                           "or leave the option out", opt);
    for (;;) {
        size_t n = strcspn(p, ","), b = 0, e = n;

        entry++;
        while (b < e && (p[b] == ' ' || p[b] == '\t'))
            b++;
        while (e > b && (p[e - 1] == ' ' || p[e - 1] == '\t'))
            e--;
        if (e == b) {
            rc = sfs_err_set(err, -EINVAL, "option %s: entry %zu is empty", opt, entry);
            goto out;
        }
        if (e - b > SFS_NAME_MAX) {
            rc = sfs_err_set(err, -EINVAL, "option %s: entry %zu is longer than %d bytes",
                             opt, entry, SFS_NAME_MAX);
            goto out;
        }
        memcpy(name, p + b, e - b);
        name[e - b] = '\0';
        if (!sfs_name_valid(name, &why)) {
            rc = sfs_err_set(err, -EINVAL, "option %s: entry %zu %s", opt, entry, why);
            goto out;
        }
        rc = list_add_unique(out, &len, &count, name, e - b);
        if (rc < 0) {
            sfs_err_set(err, rc, "out of memory");
            goto out;
        }
        if (count > SFS_DOCKER_MAX_SECRETS) {
            rc = sfs_err_set(err, -EINVAL, "option %s: more than %d names", opt,
                             SFS_DOCKER_MAX_SECRETS);
            goto out;
        }
        if (!p[n])
            break;
        p += n + 1;
    }
out:
    if (rc < 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static bool parse_decimal(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    size_t i;

    if (!s[0] || strlen(s) > 10)
        return false;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_octal_mode(const char *s, mode_t *out)
{
    unsigned v = 0;
    size_t i;

    if (!s[0] || strlen(s) > 4)
        return false;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '7')
            return false;
        v = v * 8 + (unsigned)(s[i] - '0');
    }
    if (v > 0777)
        return false;
    *out = (mode_t)v;
    return true;
}

bool sfs_vol_list_has(const char *list, const char *name, size_t name_len)
{
    const char *p = list;

    while (p && *p) {
        size_t n = strcspn(p, ",");
        if (n == name_len && memcmp(p, name, n) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

void sfs_vol_def_clear(struct sfs_vol_def *def)
{
    free(def->secrets);
    free(def->optional);
    def->secrets = def->optional = NULL;
}

/* Every optional= name must be one of secrets= (else it is a typo of its own). */
static int check_optional(const struct sfs_vol_def *def, struct sfs_err *err)
{
    const char *p = def->optional;

    if (p && !def->secrets)
        return sfs_err_set(err, -EINVAL, "option optional: only with secrets= (without it "
                           "the volume serves whatever the store holds)");
    while (p && *p) {
        size_t n = strcspn(p, ",");
        if (!sfs_vol_list_has(def->secrets, p, n))
            return sfs_err_set(err, -EINVAL, "option optional: %.*s is not one of secrets=; "
                               "list it there too", (int)n, p);
        p += n + (p[n] == ',');
    }
    return 0;
}

static void def_defaults(struct sfs_vol_def *def, uid_t uid, gid_t gid)
{
    def->secrets = NULL;
    def->optional = NULL;
    def->uid = uid;
    def->gid = gid;
    def->mode = 0400;
    def->cache_none = false;
}

int sfs_vol_parse_opts(json_t *opts, uid_t default_uid, gid_t default_gid,
                       struct sfs_vol_def *def, struct sfs_err *err)
{
    const char *key;
    json_t *val;
    char shown[80];
    unsigned long n;
    int rc = 0;

    def_defaults(def, default_uid, default_gid);
    if (!opts || json_is_null(opts))
        return 0;
    if (!json_is_object(opts))
        return sfs_err_set(err, -EINVAL, "Opts must be an object of strings (or null)");
    json_object_foreach(opts, key, val) {
        const char *s = json_string_value(val);

        if (!s) {
            rc = sfs_err_set(err, -EINVAL, "option %s: the value must be a string",
                             shown_key(key, shown, sizeof shown));
            break;
        }
        if (strcmp(key, "secrets") == 0) {
            free(def->secrets);
            rc = parse_names("secrets", s, &def->secrets, err);
        } else if (strcmp(key, "optional") == 0) {
            free(def->optional);
            rc = parse_names("optional", s, &def->optional, err);
        } else if (strcmp(key, "uid") == 0) {
            if (parse_decimal(s, UID_MAX_VALUE, &n))
                def->uid = (uid_t)n;
            else
                rc = sfs_err_set(err, -EINVAL, "option uid: must be a numeric user id "
                                 "(0 to %lu)", UID_MAX_VALUE);
        } else if (strcmp(key, "gid") == 0) {
            if (parse_decimal(s, UID_MAX_VALUE, &n))
                def->gid = (gid_t)n;
            else
                rc = sfs_err_set(err, -EINVAL, "option gid: must be a numeric group id "
                                 "(0 to %lu)", UID_MAX_VALUE);
        } else if (strcmp(key, "mode") == 0) {
            if (!parse_octal_mode(s, &def->mode))
                rc = sfs_err_set(err, -EINVAL, "option mode: must be octal permission bits "
                                 "such as 0440 (at most 0777)");
        } else if (strcmp(key, "cache") == 0) {
            if (strcmp(s, "kernel") == 0 || strcmp(s, "none") == 0)
                def->cache_none = strcmp(s, "none") == 0;
            else
                rc = sfs_err_set(err, -EINVAL, "option cache: must be kernel or none");
        } else {
            rc = sfs_err_set(err, -EINVAL, "unknown option %s (known: " KNOWN_OPTIONS ")",
                             shown_key(key, shown, sizeof shown));
        }
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = check_optional(def, err);
    if (rc < 0)
        sfs_vol_def_clear(def);
    return rc;
}

bool sfs_vol_def_equal(const struct sfs_vol_def *a, const struct sfs_vol_def *b)
{
    if (!a->secrets != !b->secrets || (a->secrets && strcmp(a->secrets, b->secrets) != 0))
        return false;
    if (!a->optional != !b->optional || (a->optional && strcmp(a->optional, b->optional) != 0))
        return false;
    return a->uid == b->uid && a->gid == b->gid && a->mode == b->mode &&
           a->cache_none == b->cache_none;
}

static void vol_sync_pub(struct sfs_vol *v)
{
    v->pub.name = v->name;
    v->pub.mountpoint = v->mountpoint;
    v->pub.secrets = v->def.secrets;
    v->pub.uid = v->def.uid;
    v->pub.gid = v->def.gid;
    v->pub.mode = v->def.mode;
    v->pub.cache_none = v->def.cache_none;
}

struct sfs_vol *sfs_vol_new(const char *volumes_dir, const char *name, struct sfs_vol_def *def,
                            const char *created)
{
    struct sfs_vol *v = calloc(1, sizeof *v);
    size_t len = strlen(volumes_dir) + strlen(name) + 2;

    if (!v || len > PATH_MAX)
        goto out_fail;
    v->name = strdup(name);
    v->mountpoint = malloc(len);
    if (!v->name || !v->mountpoint)
        goto out_fail;
    snprintf(v->mountpoint, len, "%s/%s", volumes_dir, name);
    snprintf(v->created, sizeof v->created, "%s", created);
    v->def = *def;
    def->secrets = def->optional = NULL;
    vol_sync_pub(v);
    return v;
out_fail:
    sfs_vol_def_clear(def);
    if (v) {
        free(v->name);
        free(v->mountpoint);
        free(v);
    }
    return NULL;
}

void sfs_vol_free(struct sfs_vol *v)
{
    size_t i;

    if (!v)
        return;
    for (i = 0; i < v->n_refs; i++)
        free(v->refs[i].id);
    free(v->refs);
    sfs_vol_def_clear(&v->def);
    free(v->name);
    free(v->mountpoint);
    free(v);
}

/* Index of `name`, or where it would go (then *found is false). */
static size_t table_pos(const struct sfs_vol_table *t, const char *name, bool *found)
{
    size_t lo = 0, hi = t->n;

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->vols[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct sfs_vol *sfs_vol_find(const struct sfs_vol_table *t, const char *name)
{
    bool found;
    size_t i = table_pos(t, name, &found);

    return found ? t->vols[i] : NULL;
}

int sfs_vol_insert(struct sfs_vol_table *t, struct sfs_vol *v)
{
    bool found;
    size_t i = table_pos(t, v->name, &found);

    if (found)
        return -EEXIST;
    if (t->n >= SFS_DOCKER_MAX_VOLUMES)
        return -ENOSPC;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct sfs_vol **grown = realloc(t->vols, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        t->vols = grown;
        t->cap = cap;
    }
    memmove(t->vols + i + 1, t->vols + i, (t->n - i) * sizeof *t->vols);
    t->vols[i] = v;
    t->n++;
    return 0;
}

struct sfs_vol *sfs_vol_take(struct sfs_vol_table *t, const char *name)
{
    bool found;
    size_t i = table_pos(t, name, &found);
    struct sfs_vol *v;

    if (!found)
        return NULL;
    v = t->vols[i];
    memmove(t->vols + i, t->vols + i + 1, (t->n - i - 1) * sizeof *t->vols);
    t->n--;
    return v;
}

void sfs_vol_table_clear(struct sfs_vol_table *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        sfs_vol_free(t->vols[i]);
    free(t->vols);
    t->vols = NULL;
    t->n = t->cap = 0;
}

unsigned long sfs_vol_total_refs(const struct sfs_vol *v)
{
    unsigned long total = 0;
    size_t i;

    for (i = 0; i < v->n_refs; i++)
        total += v->refs[i].count;
    return total;
}

bool sfs_vol_id_valid(const char *id, size_t len)
{
    size_t i;

    if (len > SFS_DOCKER_MAX_ID_LEN || strlen(id) != len)
        return false;
    for (i = 0; i < len; i++)
        if (id[i] <= 0x20 || id[i] >= 0x7f)
            return false;
    return true;
}

static struct sfs_vol_ref *ref_find(const struct sfs_vol *v, const char *id)
{
    size_t i;

    for (i = 0; i < v->n_refs; i++)
        if (strcmp(v->refs[i].id, id) == 0)
            return &v->refs[i];
    return NULL;
}

int sfs_vol_ref_add(struct sfs_vol *v, const char *id)
{
    struct sfs_vol_ref *r = ref_find(v, id), *grown;
    char *copy;

    if (r) {
        if (r->count >= SFS_DOCKER_MAX_ID_COUNT)
            return -ENOSPC;
        r->count++;
        return 0;
    }
    if (v->n_refs >= SFS_DOCKER_MAX_IDS)
        return -ENOSPC;
    copy = strdup(id);
    grown = copy ? realloc(v->refs, (v->n_refs + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
        return -ENOMEM;
    }
    v->refs = grown;
    v->refs[v->n_refs++] = (struct sfs_vol_ref){.id = copy, .count = 1};
    return 0;
}

bool sfs_vol_ref_drop(struct sfs_vol *v, const char *id)
{
    struct sfs_vol_ref *r = ref_find(v, id);

    if (!r)
        return false;
    if (--r->count == 0) {
        size_t i = (size_t)(r - v->refs);
        free(r->id);
        memmove(v->refs + i, v->refs + i + 1, (v->n_refs - i - 1) * sizeof *v->refs);
        v->n_refs--;
    }
    return true;
}

/* ---- the state file ---- */

static json_t *vol_to_json(const struct sfs_vol *v)
{
    json_t *o = json_object(), *mounts = json_object();
    char mode[8];
    size_t i;
    int bad = !o || !mounts;

    snprintf(mode, sizeof mode, "%04o", (unsigned)v->def.mode);
    for (i = 0; !bad && i < v->n_refs; i++)
        bad |= json_object_set_new(mounts, v->refs[i].id, json_integer(v->refs[i].count));
    if (!bad)
        bad |= json_object_set_new(o, "name", json_string(v->name)) |
               json_object_set_new(o, "secrets", v->def.secrets ? json_string(v->def.secrets)
                                                                : json_null()) |
               (v->def.optional ? json_object_set_new(o, "optional",
                                                      json_string(v->def.optional)) : 0) |
               json_object_set_new(o, "uid", json_integer(v->def.uid)) |
               json_object_set_new(o, "gid", json_integer(v->def.gid)) |
               json_object_set_new(o, "mode", json_string(mode)) |
               json_object_set_new(o, "cache", json_string(v->def.cache_none ? "none"
                                                                             : "kernel")) |
               json_object_set_new(o, "created", json_string(v->created)) |
               json_object_set(o, "mounts", mounts);
    json_decref(mounts);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *sfs_vol_table_to_json(const struct sfs_vol_table *t)
{
    json_t *root = json_object(), *arr = json_array();
    size_t i;
    int bad = !root || !arr;

    for (i = 0; !bad && i < t->n; i++)
        bad |= json_array_append_new(arr, vol_to_json(t->vols[i]));
    if (!bad)
        bad |= json_object_set_new(root, "version", json_integer(1)) |
               json_object_set(root, "volumes", arr);
    json_decref(arr);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The state file's fields, one reader each: each says what is wrong with its own field.
 * They return 0 or -EINVAL (-ENOMEM) with err naming the volume and the field. */

static const char *const vol_keys[] = {"name", "secrets", "optional", "uid", "gid", "mode",
                                       "cache", "created", "mounts"};

static int check_keys(json_t *o, size_t index, struct sfs_err *err)
{
    const char *key;
    json_t *val;
    char shown[80];
    size_t i;

    if (!json_is_object(o))
        return sfs_err_set(err, -EINVAL, "volume #%zu is not an object", index + 1);
    json_object_foreach(o, key, val) {
        for (i = 0; i < sizeof vol_keys / sizeof vol_keys[0]; i++)
            if (strcmp(key, vol_keys[i]) == 0)
                break;
        if (i == sizeof vol_keys / sizeof vol_keys[0])
            return sfs_err_set(err, -EINVAL, "volume #%zu: unknown field %s", index + 1,
                               shown_key(key, shown, sizeof shown));
    }
    return 0;
}

/* "secrets" (required: a list or null) and "optional" (absent, null or a list). */
static int field_names(json_t *o, const char *name, const char *key, bool required,
                       char **out, struct sfs_err *err)
{
    json_t *v = json_object_get(o, key);
    int rc;

    *out = NULL;
    if (!v && required)
        return sfs_err_set(err, -EINVAL, "volume %s: field %s is missing", name, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return sfs_err_set(err, -EINVAL, "volume %s: field %s must be a string or null",
                           name, key);
    rc = parse_names(key, json_string_value(v), out, err);
    if (rc < 0)
        sfs_err_prefix(err, "volume %s", name);
    return rc;
}

static int field_id(json_t *o, const char *name, const char *key, unsigned long *out,
                    struct sfs_err *err)
{
    json_t *v = json_object_get(o, key);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;

    if (n < 0 || (unsigned long long)n > UID_MAX_VALUE)
        return sfs_err_set(err, -EINVAL, "volume %s: field %s must be a number from 0 to %lu",
                           name, key, UID_MAX_VALUE);
    *out = (unsigned long)n;
    return 0;
}

static int field_mode(json_t *o, const char *name, mode_t *out, struct sfs_err *err)
{
    const char *mode = json_string_value(json_object_get(o, "mode"));

    if (!mode || !parse_octal_mode(mode, out))
        return sfs_err_set(err, -EINVAL, "volume %s: field mode must be octal permission bits "
                           "as a string, such as \"0440\"", name);
    return 0;
}

static int field_cache(json_t *o, const char *name, bool *none, struct sfs_err *err)
{
    const char *cache = json_string_value(json_object_get(o, "cache"));

    if (!cache || (strcmp(cache, "kernel") != 0 && strcmp(cache, "none") != 0))
        return sfs_err_set(err, -EINVAL, "volume %s: field cache must be \"kernel\" or "
                           "\"none\"", name);
    *none = strcmp(cache, "none") == 0;
    return 0;
}

static bool created_valid(const char *s)
{
    size_t i, len = strlen(s);

    if (len == 0 || len >= sizeof ((struct sfs_vol *)0)->created)
        return false;
    for (i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] >= 0x7f)
            return false;
    return true;
}

static int field_created(json_t *o, const char *name, const char **out, struct sfs_err *err)
{
    *out = json_string_value(json_object_get(o, "created"));
    if (!*out || !created_valid(*out))
        return sfs_err_set(err, -EINVAL, "volume %s: field created must be a timestamp "
                           "string", name);
    return 0;
}

/* "mounts": {"ID": COUNT, ...} into v's references. */
static int field_mounts(json_t *o, struct sfs_vol *v, struct sfs_err *err)
{
    json_t *mounts = json_object_get(o, "mounts"), *val;
    const char *key;

    if (!json_is_object(mounts))
        return sfs_err_set(err, -EINVAL, "volume %s: field mounts must be an object",
                           v->name);
    json_object_foreach(mounts, key, val) {
        json_int_t count = json_is_integer(val) ? json_integer_value(val) : 0, k;

        if (!sfs_vol_id_valid(key, strlen(key)))
            return sfs_err_set(err, -EINVAL, "volume %s: field mounts: an invalid mount ID",
                               v->name);
        if (count < 1 || count > SFS_DOCKER_MAX_ID_COUNT)
            return sfs_err_set(err, -EINVAL, "volume %s: field mounts: a count must be a "
                               "number from 1 to %d", v->name, SFS_DOCKER_MAX_ID_COUNT);
        for (k = 0; k < count; k++) {
            int r = sfs_vol_ref_add(v, key);
            if (r < 0)
                return sfs_err_set(err, r, "volume %s: %s", v->name,
                                   r == -ENOMEM ? "out of memory" : "too many mount IDs");
        }
    }
    return 0;
}

static int vol_from_json(json_t *o, size_t index, const char *volumes_dir, struct sfs_vol **out,
                         struct sfs_err *err)
{
    struct sfs_vol_def def;
    const char *name, *created;
    unsigned long uid, gid;
    struct sfs_vol *v = NULL;
    int rc;

    def_defaults(&def, 0, 0);
    *out = NULL;
    rc = check_keys(o, index, err);
    if (rc < 0)
        goto out;
    name = json_string_value(json_object_get(o, "name"));
    if (!name || !sfs_docker_volume_name_valid(name)) {
        rc = sfs_err_set(err, -EINVAL, "volume #%zu: field name is missing or not a volume "
                         "name", index + 1);
        goto out;
    }
    if ((rc = field_names(o, name, "secrets", true, &def.secrets, err)) < 0 ||
        (rc = field_names(o, name, "optional", false, &def.optional, err)) < 0 ||
        (rc = check_optional(&def, err)) < 0 || (rc = field_id(o, name, "uid", &uid, err)) < 0 ||
        (rc = field_id(o, name, "gid", &gid, err)) < 0 ||
        (rc = field_mode(o, name, &def.mode, err)) < 0 ||
        (rc = field_cache(o, name, &def.cache_none, err)) < 0 ||
        (rc = field_created(o, name, &created, err)) < 0)
        goto out;
    def.uid = (uid_t)uid;
    def.gid = (gid_t)gid;
    v = sfs_vol_new(volumes_dir, name, &def, created);
    if (!v) {
        rc = sfs_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    rc = field_mounts(o, v, err);
    if (rc < 0)
        goto out;
    *out = v;
    v = NULL;
out:
    sfs_vol_def_clear(&def);
    sfs_vol_free(v);
    return rc;
}

int sfs_vol_table_from_json(json_t *root, const char *volumes_dir, struct sfs_vol_table *out,
                            struct sfs_err *err)
{
    json_t *version = json_object_get(root, "version"), *arr = json_object_get(root, "volumes");
    size_t i;
    int rc = 0;

    if (!json_is_object(root) || !json_is_integer(version) || !json_is_array(arr) ||
        json_object_size(root) != 2)
        return sfs_err_set(err, -EINVAL, "expected {\"version\": 1, \"volumes\": [...]}");
    if (json_integer_value(version) != 1)
        return sfs_err_set(err, -EINVAL, "version %lld is not 1: written by a newer "
                           "secretfs; upgrade", (long long)json_integer_value(version));
    for (i = 0; i < json_array_size(arr); i++) {
        struct sfs_vol *v;

        rc = vol_from_json(json_array_get(arr, i), i, volumes_dir, &v, err);
        if (rc < 0)
            break;
        rc = sfs_vol_insert(out, v);
        if (rc < 0) {
            sfs_err_set(err, rc, "volume %s: %s", v->name,
                        rc == -EEXIST ? "listed twice"
                        : rc == -ENOSPC ? "more volumes than the limit"
                                        : "out of memory");
            sfs_vol_free(v);
            break;
        }
    }
    if (rc < 0)
        sfs_vol_table_clear(out);
    return rc;
}
