/* docker/api.c — Docker's volume plugin protocol as a pure function of (table, request).
 *
 * Endpoints and shapes are those the engine's plugin client sends (moby
 * volume/drivers/proxy.go): POST /Plugin.Activate (empty body), /VolumeDriver.Create
 * {"Name","Opts"}, .Remove/.Path/.Get {"Name"}, .Mount/.Unmount {"Name","ID"}, .List and
 * .Capabilities ({}).  Replies are JSON objects; an error is an "Err" with status 400
 * (the request itself is malformed) or 500 (it cannot be done), as Docker reads "Err"
 * from either.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docker/plugin.h"
#include "docker/volumes.h"
#include "secrets/names.h"
#include "util/log.h"

struct sfs_docker_api {
    struct sfs_vol_table t;
    struct sfs_docker_ops ops;
    char *volumes_dir;
    uid_t default_uid;
    gid_t default_gid;
    char *audit;              /* "journal", a directory, or NULL */
};

bool sfs_docker_volume_name_valid(const char *name)
{
    size_t i, len = strlen(name);

    if (len == 0 || len > 255)
        return false;
    for (i = 0; i < len; i++) {
        char c = name[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

sfs_docker_api *sfs_docker_api_new(const char *volumes_dir, const struct sfs_docker_ops *ops,
                                   uid_t default_uid, gid_t default_gid)
{
    sfs_docker_api *api = calloc(1, sizeof *api);

    if (!api)
        return NULL;
    api->volumes_dir = strdup(volumes_dir);
    if (!api->volumes_dir) {
        free(api);
        return NULL;
    }
    if (ops)
        api->ops = *ops;
    api->default_uid = default_uid;
    api->default_gid = default_gid;
    return api;
}

void sfs_docker_api_free(sfs_docker_api *api)
{
    if (!api)
        return;
    sfs_vol_table_clear(&api->t);
    free(api->volumes_dir);
    free(api->audit);
    free(api);
}

int sfs_docker_api_set_audit(sfs_docker_api *api, const char *audit)
{
    char *copy = audit ? strdup(audit) : NULL;

    if (audit && !copy)
        return -ENOMEM;
    free(api->audit);
    api->audit = copy;
    return 0;
}

int sfs_docker_api_load(sfs_docker_api *api, const char *json, size_t len, struct sfs_err *err)
{
    struct sfs_vol_table fresh = {0};
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;

    if (!root)
        return sfs_err_set(err, -EINVAL, "not valid JSON (line %d, column %d)", jerr.line,
                           jerr.column);
    rc = sfs_vol_table_from_json(root, api->volumes_dir, &fresh, err);
    json_decref(root);
    if (rc < 0)
        return rc;
    sfs_vol_table_clear(&api->t);
    api->t = fresh;
    return 0;
}

char *sfs_docker_api_dump(const sfs_docker_api *api, size_t *len)
{
    json_t *root = sfs_vol_table_to_json(&api->t);
    char *s = root ? json_dumps(root, JSON_INDENT(1)) : NULL;

    json_decref(root);
    if (s && len)
        *len = strlen(s);
    return s;
}

size_t sfs_docker_api_volumes(const sfs_docker_api *api)
{
    return api->t.n;
}

size_t sfs_docker_api_mounted(const sfs_docker_api *api)
{
    size_t i, n = 0;

    for (i = 0; i < api->t.n; i++)
        n += api->t.vols[i]->mounted;
    return n;
}

/* ---- side effects, through the ops ---- */

static int op_mount(sfs_docker_api *api, struct sfs_vol *v, struct sfs_err *err)
{
    return api->ops.mount ? api->ops.mount(api->ops.ctx, &v->pub, err) : 0;
}

static int op_unmount(sfs_docker_api *api, struct sfs_vol *v, struct sfs_err *err)
{
    return api->ops.unmount ? api->ops.unmount(api->ops.ctx, &v->pub, err) : 0;
}

static int op_held(sfs_docker_api *api, struct sfs_vol *v)
{
    return api->ops.held ? api->ops.held(api->ops.ctx, &v->pub) : -1;
}

static int save(sfs_docker_api *api, struct sfs_err *err)
{
    size_t len;
    char *json;
    int rc;

    if (!api->ops.save)
        return 0;
    json = sfs_docker_api_dump(api, &len);
    if (!json)
        return sfs_err_set(err, -ENOMEM, "out of memory");
    rc = api->ops.save(api->ops.ctx, json, len, err);
    free(json);
    return rc;
}

/* ---- replies ---- */

static int reply_take(struct sfs_docker_reply *r, int status, json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (!s)
        return -ENOMEM;
    r->status = status;
    r->body = s;
    r->len = strlen(s);
    return 0;
}

static int reply_err(struct sfs_docker_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reply_err(struct sfs_docker_reply *r, int status, const char *fmt, ...)
{
    char raw[SFS_ERR_MAX + 128], msg[sizeof raw];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sfs_vol_printable(msg, sizeof msg, raw, sizeof msg);
    if (!msg[0])
        snprintf(msg, sizeof msg, "error");
    return reply_take(r, status, json_pack("{s:s}", "Err", msg));
}

static int reply_ok(struct sfs_docker_reply *r)
{
    return reply_take(r, 200, json_pack("{s:s}", "Err", ""));
}

/* ---- names the store lacks ---- */

/* True when the newline separated `store` list holds `name` (len bytes). */
static bool store_has(const char *store, const char *name, size_t len)
{
    const char *p = store;

    while (p && *p) {
        size_t n = strcspn(p, "\n");
        if (n == len && memcmp(p, name, n) == 0)
            return true;
        p += n + (p[n] == '\n');
    }
    return false;
}

/* The names of def->secrets that `store` lacks (leaving out optional ones when
 * skip_optional, and platform names, which the platform serves), comma separated and
 * malloc'd into *out, or NULL when none is missing.  0 or -ENOMEM. */
static int find_missing(const struct sfs_vol_def *def, const char *store, bool skip_optional,
                        char **out)
{
    const char *p = def->secrets;
    size_t len = 0;

    *out = NULL;
    while (p && *p) {
        size_t n = strcspn(p, ",");
        char name[SFS_NAME_MAX + 1];

        snprintf(name, sizeof name, "%.*s", (int)n, p);
        if (!store_has(store, p, n) && !sfs_name_reserved(name, SFS_DEFAULT_RESERVED_PREFIX) &&
            !(skip_optional && sfs_vol_list_has(def->optional, p, n))) {
            char *grown = realloc(*out, len + n + 2);
            if (!grown) {
                free(*out);
                *out = NULL;
                return -ENOMEM;
            }
            if (len)
                grown[len++] = ',';
            memcpy(grown + len, p, n);
            len += n;
            grown[len] = '\0';
            *out = grown;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* What the store holds now, for volumes with a subset: 0 with *names malloc'd (NULL when
 * no callback: every name counts as present), or -errno with err. */
static int store_names(sfs_docker_api *api, bool fresh, char **names, struct sfs_err *err)
{
    *names = NULL;
    return api->ops.store_names ? api->ops.store_names(api->ops.ctx, fresh, names, err) : 0;
}

/* Refuses (-ENOENT, err naming them) a new volume whose secrets= names the store lacks,
 * unless optional= lets them be missing: a typo would otherwise make a volume without
 * that file. */
static int check_in_store(sfs_docker_api *api, const struct sfs_vol_def *def,
                          struct sfs_err *err)
{
    char *names = NULL, *missing = NULL;
    int rc;

    if (!def->secrets || !api->ops.store_names)
        return 0;
    rc = store_names(api, true, &names, err);
    if (rc < 0)
        return rc;
    rc = find_missing(def, names, true, &missing);
    if (rc < 0)
        rc = sfs_err_set(err, rc, "out of memory");
    else if (missing)
        rc = sfs_err_set(err, -ENOENT, "option secrets: %s not in the store (secretfs list "
                         "shows what is); fix the spelling, or add optional=%s if the volume "
                         "may be created before %s", missing, missing,
                         strchr(missing, ',') ? "they are stored" : "it is stored");
    free(missing);
    free(names);
    return rc;
}

/* Adds "missing" (names the store lacks now, or why that is unknown) to a Status. */
static int status_missing(json_t *status, const struct sfs_vol *v, const char *names,
                          const char *names_err)
{
    char *missing = NULL;
    int rc;

    if (!v->def.secrets || (!names && !names_err))
        return 0;
    if (names_err)
        return json_object_set_new(status, "missing", json_sprintf("(unknown: %s)", names_err));
    rc = find_missing(&v->def, names, false, &missing);
    if (rc == 0 && missing)
        rc = json_object_set_new(status, "missing", json_string(missing));
    free(missing);
    return rc;
}

/* Adds "audit" (journal, or the volume's log) to a Status. */
static int status_audit(json_t *status, const sfs_docker_api *api, const struct sfs_vol *v)
{
    if (!api->audit)
        return 0;
    if (strcmp(api->audit, "journal") == 0)
        return json_object_set_new(status, "audit", json_string("journal"));
    return json_object_set_new(status, "audit", json_sprintf("%s/%s.log", api->audit, v->name));
}

/* A volume as Get and List show it; names/names_err: what store_names answered. */
static json_t *volume_json(const sfs_docker_api *api, const struct sfs_vol *v,
                           const char *names, const char *names_err)
{
    char mode[8], owner[32];
    json_t *o;

    snprintf(mode, sizeof mode, "%04o", (unsigned)v->def.mode);
    snprintf(owner, sizeof owner, "%lu:%lu", (unsigned long)v->def.uid,
             (unsigned long)v->def.gid);
    o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:b, s:I}}", "Name", v->name,
                  "CreatedAt", v->created, "Status",
                  "secrets", v->def.secrets ? v->def.secrets : "(all)",
                  "owner", owner, "mode", mode,
                  "cache", v->def.cache_none || api->audit ? "none" : "kernel",
                  "mounted", (int)v->mounted,
                  "references", (json_int_t)sfs_vol_total_refs(v));
    if (o && v->mounted && json_object_set_new(o, "Mountpoint", json_string(v->mountpoint)))
        goto fail;
    if (o && v->def.optional &&
        json_object_set_new(json_object_get(o, "Status"), "optional",
                            json_string(v->def.optional)))
        goto fail;
    if (o && status_missing(json_object_get(o, "Status"), v, names, names_err) < 0)
        goto fail;
    if (o && status_audit(json_object_get(o, "Status"), api, v) < 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* ---- request fields ---- */

/* Name: present, a string, a valid volume name.  Replies (and returns NULL) otherwise. */
static const char *req_name(json_t *req, struct sfs_docker_reply *r, int *rc)
{
    const char *name = json_string_value(json_object_get(req, "Name"));

    if (!name) {
        *rc = reply_err(r, 400, "Name: missing or not a string");
        return NULL;
    }
    if (!sfs_docker_volume_name_valid(name)) {
        *rc = reply_err(r, 500, "invalid volume name: use 1-255 characters of A-Z a-z 0-9 "
                        "_ . - starting with a letter or digit");
        return NULL;
    }
    return name;
}

static struct sfs_vol *req_volume(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r,
                                  int *rc)
{
    const char *name = req_name(req, r, rc);
    struct sfs_vol *v;

    if (!name)
        return NULL;
    v = sfs_vol_find(&api->t, name);
    if (!v)
        *rc = reply_err(r, 500, "no such volume: %s", name);
    return v;
}

/* ID: absent (older engines) means "", else a string we can keep. */
static const char *req_id(json_t *req, struct sfs_docker_reply *r, int *rc)
{
    json_t *id = json_object_get(req, "ID");

    if (!id || json_is_null(id))
        return "";
    if (!json_is_string(id)) {
        *rc = reply_err(r, 400, "ID: not a string");
        return NULL;
    }
    if (!sfs_vol_id_valid(json_string_value(id), json_string_length(id))) {
        *rc = reply_err(r, 500, "invalid mount ID: at most %d printable characters without "
                        "spaces", SFS_DOCKER_MAX_ID_LEN);
        return NULL;
    }
    return json_string_value(id);
}

/* ---- endpoints ---- */

static int ep_activate(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    (void)api;
    (void)req;
    return reply_take(r, 200, json_pack("{s:[s]}", "Implements", "VolumeDriver"));
}

static int ep_capabilities(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    (void)api;
    (void)req;
    return reply_take(r, 200, json_pack("{s:{s:s}}", "Capabilities", "Scope", "local"));
}

static int ep_create(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    struct sfs_vol_def def = {0};
    struct sfs_vol *v, *existing;
    struct sfs_err err;
    const char *name;
    char created[32];
    struct tm tm;
    time_t now = time(NULL);
    int rc = 0;

    name = req_name(req, r, &rc);
    if (!name)
        return rc;
    if (sfs_vol_parse_opts(json_object_get(req, "Opts"), api->default_uid, api->default_gid,
                           &def, &err) < 0)
        return reply_err(r, 500, "%s", err.msg);
    existing = sfs_vol_find(&api->t, name);
    if (existing) {
        bool same = sfs_vol_def_equal(&existing->def, &def);
        sfs_vol_def_clear(&def);
        if (same)
            return reply_ok(r);
        return reply_err(r, 500, "volume %s already exists with other options; remove it "
                         "first", name);
    }
    if (api->t.n >= SFS_DOCKER_MAX_VOLUMES) {
        sfs_vol_def_clear(&def);
        return reply_err(r, 500, "too many volumes (at most %d)", SFS_DOCKER_MAX_VOLUMES);
    }
    if (check_in_store(api, &def, &err) < 0) {
        sfs_vol_def_clear(&def);
        return reply_err(r, 500, "%s", err.msg);
    }
    if (!gmtime_r(&now, &tm) || !strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(created, sizeof created, "1970-01-01T00:00:00Z");
    v = sfs_vol_new(api->volumes_dir, name, &def, created);
    if (!v)
        return -ENOMEM;
    rc = sfs_vol_insert(&api->t, v);
    if (rc < 0) {
        sfs_vol_free(v);
        return rc == -ENOMEM ? rc : reply_err(r, 500, "cannot create volume %s", name);
    }
    rc = save(api, &err);
    if (rc < 0) {
        sfs_vol_free(sfs_vol_take(&api->t, name));
        return reply_err(r, 500, "cannot save the volume table: %s", err.msg);
    }
    return reply_ok(r);
}

static int ep_remove(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    struct sfs_vol *v;
    struct sfs_err err;
    unsigned long refs;
    int rc = 0;

    v = req_volume(api, req, r, &rc);
    if (!v)
        return rc;
    refs = sfs_vol_total_refs(v);
    if (refs > 0 && op_held(api, v) == 1)
        return reply_err(r, 500, "volume %s is in use (%lu mount%s); stop the containers "
                         "using it first", v->name, refs, refs == 1 ? "" : "s");
    if (refs > 0) /* dockerd checked that no container uses it: an engine died unmounting */
        sfs_warn("volume %s: removing it with %lu stale reference%s (dockerd found no "
                 "container using it: it stopped without sending Unmount)", v->name, refs,
                 refs == 1 ? "" : "s");
    v = sfs_vol_take(&api->t, v->name);
    rc = save(api, &err);
    if (rc < 0) {
        rc = sfs_vol_insert(&api->t, v);
        if (rc < 0)
            sfs_vol_free(v);
        return reply_err(r, 500, "cannot save the volume table: %s", err.msg);
    }
    if (v->mounted) /* an orphan nobody holds: leave nothing mounted behind */
        (void)op_unmount(api, v, &err);
    if (api->ops.removed)
        api->ops.removed(api->ops.ctx, &v->pub);
    sfs_vol_free(v);
    return reply_ok(r);
}

static int ep_mount(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    struct sfs_vol *v;
    struct sfs_err err;
    const char *id;
    bool mounted_now = false;
    int rc = 0;

    id = req_id(req, r, &rc); /* the request's shape first (400), then the table (500) */
    if (!id)
        return rc;
    v = req_volume(api, req, r, &rc);
    if (!v)
        return rc;
    if (v->mounted && api->ops.probe &&
        api->ops.probe(api->ops.ctx, &v->pub) != SFS_DOCKER_LIVE) {
        sfs_warn("volume %s: the mount at %s is dead; mounting it again", v->name,
                 v->mountpoint);
        (void)op_unmount(api, v, &err);
        v->mounted = false;
    }
    rc = sfs_vol_ref_add(v, id);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return reply_err(r, 500, "volume %s: too many mounts (at most %d IDs, %d mounts per "
                         "ID)", v->name, SFS_DOCKER_MAX_IDS, SFS_DOCKER_MAX_ID_COUNT);
    if (!v->mounted) {
        rc = op_mount(api, v, &err);
        if (rc < 0) {
            sfs_vol_ref_drop(v, id);
            return reply_err(r, 500, "volume %s: cannot mount: %s", v->name, err.msg);
        }
        v->mounted = mounted_now = true;
    }
    rc = save(api, &err);
    if (rc < 0) {
        struct sfs_err ignored;

        sfs_vol_ref_drop(v, id);
        if (mounted_now) {
            (void)op_unmount(api, v, &ignored);
            v->mounted = false;
        }
        return reply_err(r, 500, "cannot save the volume table: %s", err.msg);
    }
    return reply_take(r, 200, json_pack("{s:s, s:s}", "Mountpoint", v->mountpoint, "Err", ""));
}

static int ep_unmount(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    struct sfs_err err, save_err;
    struct sfs_vol *v;
    const char *id;
    int rc = 0, urc = 0;

    id = req_id(req, r, &rc); /* the request's shape first (400), then the table (500) */
    if (!id)
        return rc;
    v = req_volume(api, req, r, &rc);
    if (!v)
        return rc;
    if (!sfs_vol_ref_drop(v, id))
        return reply_ok(r); /* an ID we never saw (or already released): nothing to do */
    if (sfs_vol_total_refs(v) == 0 && v->mounted) {
        urc = op_unmount(api, v, &err);
        v->mounted = false;
    }
    rc = save(api, &save_err);
    if (urc < 0)
        return reply_err(r, 500, "volume %s: cannot unmount: %s", v->name, err.msg);
    if (rc < 0)
        return reply_err(r, 500, "cannot save the volume table: %s", save_err.msg);
    return reply_ok(r);
}

static int ep_path(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    struct sfs_vol *v;
    int rc = 0;

    v = req_volume(api, req, r, &rc);
    if (!v)
        return rc;
    return reply_take(r, 200, json_pack("{s:s, s:s}", "Mountpoint",
                                        v->mounted ? v->mountpoint : "", "Err", ""));
}

static int ep_get(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    struct sfs_vol *v;
    json_t *vj;
    int rc = 0;

    char *names = NULL;
    struct sfs_err err;
    bool known;

    v = req_volume(api, req, r, &rc);
    if (!v)
        return rc;
    known = !v->def.secrets || store_names(api, false, &names, &err) == 0;
    vj = volume_json(api, v, names, known ? NULL : err.msg);
    free(names);
    if (!vj)
        return -ENOMEM;
    return reply_take(r, 200, json_pack("{s:o, s:s}", "Volume", vj, "Err", ""));
}

static int ep_list(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r)
{
    json_t *arr = json_array();
    char *names = NULL;
    struct sfs_err err;
    bool need = false, known = true;
    size_t i;

    (void)req;
    for (i = 0; i < api->t.n; i++)
        need |= api->t.vols[i]->def.secrets != NULL;
    if (need) /* one look at the store for the whole list */
        known = store_names(api, false, &names, &err) == 0;
    for (i = 0; arr && i < api->t.n; i++) {
        if (json_array_append_new(arr, volume_json(api, api->t.vols[i], names,
                                                   known ? NULL : err.msg)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(names);
    if (!arr)
        return -ENOMEM;
    return reply_take(r, 200, json_pack("{s:o, s:s}", "Volumes", arr, "Err", ""));
}

/* A path as an error may show it: only when it looks like one. */
static const char *shown_path(const char *path, char *buf, size_t size)
{
    size_t len = strlen(path);

    if (len == 0 || len > 64 || strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                             "0123456789./_-") != len)
        snprintf(buf, size, "(a path of %zu bytes, not shown)", len);
    else
        snprintf(buf, size, "%s", path);
    return buf;
}

struct endpoint {
    const char *path;
    int (*fn)(sfs_docker_api *api, json_t *req, struct sfs_docker_reply *r);
    bool takes_name; /* the body must be an object with a Name */
};

static const struct endpoint endpoints[] = {
    {"/Plugin.Activate", ep_activate, false},
    {"/VolumeDriver.Create", ep_create, true},
    {"/VolumeDriver.Remove", ep_remove, true},
    {"/VolumeDriver.Mount", ep_mount, true},
    {"/VolumeDriver.Unmount", ep_unmount, true},
    {"/VolumeDriver.Path", ep_path, true},
    {"/VolumeDriver.Get", ep_get, true},
    {"/VolumeDriver.List", ep_list, false},
    {"/VolumeDriver.Capabilities", ep_capabilities, false},
};

int sfs_docker_api_handle(sfs_docker_api *api, const char *endpoint, const void *body,
                          size_t len, struct sfs_docker_reply *reply)
{
    const struct endpoint *ep = NULL;
    json_error_t jerr;
    json_t *req = NULL;
    char shown[80];
    size_t i;
    int rc;

    memset(reply, 0, sizeof *reply);
    for (i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (strcmp(endpoint, endpoints[i].path) == 0)
            ep = &endpoints[i];
    if (!ep) {
        rc = reply_err(reply, 404, "unknown endpoint %s: this plugin implements "
                       "/Plugin.Activate and /VolumeDriver.{Create,Remove,Mount,Unmount,"
                       "Path,Get,List,Capabilities}", shown_path(endpoint, shown, sizeof shown));
        goto out;
    }
    if (len > SFS_DOCKER_MAX_BODY) {
        rc = reply_err(reply, 413, "request body larger than %u bytes", SFS_DOCKER_MAX_BODY);
        goto out;
    }
    if (len > 0) {
        /* jansson allows trailing whitespace (Go's encoder ends bodies with '\n') */
        req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req) {
            rc = reply_err(reply, 400, "malformed JSON body (line %d, column %d)", jerr.line,
                           jerr.column);
            goto out;
        }
        if (!json_is_object(req)) {
            rc = reply_err(reply, 400, "the request body must be a JSON object");
            goto out;
        }
    } else if (ep->takes_name) {
        rc = reply_err(reply, 400, "empty request body: expected a JSON object with a Name");
        goto out;
    }
    rc = ep->fn(api, req, reply);
out:
    json_decref(req);
    if (rc < 0) {
        free(reply->body);
        memset(reply, 0, sizeof *reply);
        return -ENOMEM;
    }
    return 0;
}

/* ---- restart recovery and reload ---- */

/* Forgets every reference of v (they are stale); returns how many there were. */
static unsigned long drop_all_refs(struct sfs_vol *v)
{
    unsigned long refs = sfs_vol_total_refs(v);

    while (v->n_refs > 0)
        sfs_vol_ref_drop(v, v->refs[0].id);
    return refs;
}

/* One volume after a (re)start; returns 0, or 1 when something could not be done.  Sets
 * *dropped when stale references went. */
static int recover_one(sfs_docker_api *api, struct sfs_vol *v, bool *dropped)
{
    enum sfs_docker_probe found = api->ops.probe ? api->ops.probe(api->ops.ctx, &v->pub)
                                                 : SFS_DOCKER_NOT_MOUNTED;
    unsigned long refs = sfs_vol_total_refs(v);
    struct sfs_err err;

    v->mounted = false;
    if (refs > 0 && op_held(api, v) == 0) {
        sfs_warn("volume %s: no container holds its mount: dropping %lu stale reference%s "
                 "(Docker stopped without sending Unmount)", v->name, refs,
                 refs == 1 ? "" : "s");
        drop_all_refs(v);
        refs = 0;
        *dropped = true;
    }
    if (refs > 0 && found == SFS_DOCKER_LIVE) {
        v->mounted = true;
        sfs_info("volume %s: adopted the live mount at %s (%lu reference%s)", v->name,
                 v->mountpoint, refs, refs == 1 ? "" : "s");
        return 0;
    }
    if (found != SFS_DOCKER_NOT_MOUNTED) {
        const char *what = found == SFS_DOCKER_LIVE ? "unused" : "stale";

        if (op_unmount(api, v, &err) < 0) {
            sfs_warn("volume %s: cannot unmount the %s mount at %s: %s", v->name, what,
                     v->mountpoint, err.msg);
            return 1;
        }
        sfs_info("volume %s: unmounted the %s mount at %s", v->name, what, v->mountpoint);
    }
    if (refs == 0)
        return 0;
    if (op_mount(api, v, &err) < 0) {
        sfs_warn("volume %s: cannot mount it again for its %lu reference%s: %s; the next "
                 "Mount retries", v->name, refs, refs == 1 ? "" : "s", err.msg);
        return 1;
    }
    v->mounted = true;
    sfs_info("volume %s: mounted again at %s for its %lu reference%s", v->name, v->mountpoint,
             refs, refs == 1 ? "" : "s");
    return 0;
}

int sfs_docker_api_recover(sfs_docker_api *api)
{
    bool dropped = false;
    struct sfs_err err;
    int failed = 0;
    size_t i;

    for (i = 0; i < api->t.n; i++)
        failed += recover_one(api, api->t.vols[i], &dropped);
    if (dropped && save(api, &err) < 0) {
        sfs_warn("cannot save the volume table: %s", err.msg);
        failed++;
    }
    return failed;
}

int sfs_docker_api_reload_all(sfs_docker_api *api)
{
    int failed = 0;
    size_t i;

    for (i = 0; i < api->t.n; i++) {
        struct sfs_vol *v = api->t.vols[i];
        struct sfs_err err;

        if (!v->mounted || !api->ops.reload)
            continue;
        if (api->ops.reload(api->ops.ctx, &v->pub, &err) < 0) {
            sfs_warn("volume %s: not reloaded: %s", v->name, err.msg);
            failed++;
        }
    }
    return failed;
}
