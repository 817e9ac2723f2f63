/* tests/fuzz/fuzz_docker.c — fuzzes the Docker plugin's request handler
 * (sfs_docker_api_handle, docker/plugin.h) with fake side effects.
 *
 * Input: one or more requests (the first 64) separated by NUL bytes; each is
 * "ENDPOINT\nBODY" (no newline: the whole request is the endpoint and the body is empty).  A file holding one
 * request is simply an endpoint line and a body.  Every '@' in a body becomes a canary
 * ("@c4n4ry^Secr3t~"), standing for a value someone put in an option by mistake.
 *
 * The fake ops: mounting fails for volumes named "fail*", unmounting for "ufail*", saving
 * whenever a volume named "nosave" is in the table, and the mounts of "crash*" volumes are
 * found dead at the next Mount; they keep their own set of mounted volumes.  After every request:
 *   - the reply is a JSON object; a status other than 200 carries a non-empty "Err" string,
 *     a 200 carries no Err or an empty one; statuses are 200, 400, 404, 413 or 500;
 *   - no reply contains the canary (replies never echo option values);
 *   - a failed request changed nothing (the table's dump is the same), except an Unmount;
 *   - the fake's mounts are exactly the volumes the handler says are mounted, no volume is
 *     mounted twice or unmounted when it was not mounted, and a volume is mounted exactly
 *     when it has references;
 *   - the dump loads back (sfs_docker_api_load) into a handler whose dump is identical;
 *   - the table stays within SFS_DOCKER_MAX_VOLUMES.
 * At the end, a restart: the table is loaded back, recovery runs (the fake probe finds a
 * live, a stale or no mount by the name's length) and then reload_all; the fake's mounts
 * must again be exactly the handler's.
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/plugin.h"

#include "fuzz.h"

#define CANARY "@c4n4ry^Secr3t~"
#define MAX_FAKE 8192
#define MAX_REQUESTS 64 /* per input: longer sequences add little and cost much */

struct fake {
    char *mounted[MAX_FAKE];
    size_t n;
    bool restarting; /* sfs_docker_api_recover is running */
};

static bool prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static long fake_find(const struct fake *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->mounted[i], name) == 0)
            return (long)i;
    return -1;
}

static int fake_mount(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct fake *f = ctx;

    FUZZ_CHECK(fake_find(f, v->name) < 0, "volume %s mounted twice", v->name);
    FUZZ_CHECK(v->mountpoint && strstr(v->mountpoint, v->name), "mountpoint without the name");
    FUZZ_CHECK(v->mode <= 0777, "mode %o", (unsigned)v->mode);
    if (prefix(v->name, "fail"))
        return sfs_err_set(err, -EIO, "fake mount failure");
    FUZZ_CHECK(f->n < MAX_FAKE, "too many mounts");
    f->mounted[f->n] = strdup(v->name);
    FUZZ_CHECK(f->mounted[f->n], "out of memory");
    f->n++;
    return 0;
}

static int fake_unmount(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct fake *f = ctx;
    long i = fake_find(f, v->name);

    if (i >= 0) {
        free(f->mounted[i]);
        f->mounted[i] = f->mounted[--f->n];
    }
    if (prefix(v->name, "ufail"))
        return sfs_err_set(err, -EBUSY, "fake unmount failure");
    return 0;
}

static int fake_reload(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct fake *f = ctx;

    FUZZ_CHECK(fake_find(f, v->name) >= 0, "reload of %s, which is not mounted", v->name);
    return prefix(v->name, "r") ? sfs_err_set(err, -EIO, "fake reload failure") : 0;
}

/* While serving: what the fake mounted is live, except that "crash*" volumes' daemons
 * have died.  At a restart: something is mounted (live or stale) at every second or third
 * name's place. */
static enum sfs_docker_probe fake_probe(void *ctx, const struct sfs_docker_volume *v)
{
    struct fake *f = ctx;
    enum sfs_docker_probe found = (enum sfs_docker_probe)(strlen(v->name) % 3);

    if (!f->restarting) {
        if (fake_find(f, v->name) < 0)
            return SFS_DOCKER_NOT_MOUNTED;
        return prefix(v->name, "crash") ? SFS_DOCKER_STALE : SFS_DOCKER_LIVE;
    }
    if (found != SFS_DOCKER_NOT_MOUNTED) {
        FUZZ_CHECK(fake_find(f, v->name) < 0 && f->n < MAX_FAKE, "probe bookkeeping");
        f->mounted[f->n] = strdup(v->name);
        FUZZ_CHECK(f->mounted[f->n], "out of memory");
        f->n++;
    }
    return found;
}

static int fake_save(void *ctx, const char *json, size_t len, struct sfs_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);

    (void)ctx;
    FUZZ_CHECK(root != NULL, "save got invalid JSON: %s", jerr.text);
    json_decref(root);
    if (strstr(json, "\"name\": \"nosave\""))
        return sfs_err_set(err, -EIO, "fake save failure");
    return 0;
}

static const struct sfs_docker_ops ops_template = {
    .mount = fake_mount, .unmount = fake_unmount, .reload = fake_reload,
    .probe = fake_probe, .save = fake_save, .removed = NULL,
};

/* Volumes with references, counted from a dump. */
static size_t referenced(const char *dump)
{
    json_t *root = json_loads(dump, 0, NULL), *vols, *v;
    size_t i, n = 0;

    FUZZ_CHECK(root, "the dump is not JSON");
    vols = json_object_get(root, "volumes");
    json_array_foreach(vols, i, v)
        n += json_object_size(json_object_get(v, "mounts")) > 0;
    json_decref(root);
    return n;
}

static void check_reply(const struct sfs_docker_reply *r)
{
    json_t *root, *e;

    FUZZ_CHECK(r->body != NULL, "no reply");
    FUZZ_CHECK(strlen(r->body) == r->len, "reply length");
    FUZZ_CHECK(!strstr(r->body, CANARY), "a reply echoes a value: %s", r->body);
    root = json_loads(r->body, 0, NULL);
    FUZZ_CHECK(json_is_object(root), "the reply is not a JSON object: %s", r->body);
    e = json_object_get(root, "Err");
    FUZZ_CHECK(r->status == 200 || r->status == 400 || r->status == 404 || r->status == 413 ||
               r->status == 500, "status %d", r->status);
    if (r->status != 200)
        FUZZ_CHECK(json_is_string(e) && json_string_length(e) > 0, "an error without Err: %s",
                   r->body);
    else
        FUZZ_CHECK(!e || (json_is_string(e) && json_string_length(e) == 0),
                   "a success with an Err: %s", r->body);
    json_decref(root);
}

static void check_consistent(struct fake *f, sfs_docker_api *api)
{
    char *dump = sfs_docker_api_dump(api, NULL), *again;
    struct sfs_err err;
    sfs_docker_api *copy;

    FUZZ_CHECK(dump, "no dump");
    FUZZ_CHECK(sfs_docker_api_volumes(api) <= SFS_DOCKER_MAX_VOLUMES, "too many volumes");
    FUZZ_CHECK(sfs_docker_api_mounted(api) == f->n, "handler says %zu mounted, fake has %zu",
               sfs_docker_api_mounted(api), f->n);
    copy = sfs_docker_api_new("/v", NULL, 0, 0);
    FUZZ_CHECK(copy, "out of memory");
    FUZZ_CHECK(sfs_docker_api_load(copy, dump, strlen(dump), &err) == 0,
               "the dump does not load back: %s", err.msg);
    again = sfs_docker_api_dump(copy, NULL);
    FUZZ_CHECK(again && strcmp(dump, again) == 0, "the dump changes when loaded back");
    free(again);
    sfs_docker_api_free(copy);
    free(dump);
}

static char *with_canary(const uint8_t *data, size_t size, size_t *out_len)
{
    size_t n = 0, o = 0;
    char *s;

    for (size_t i = 0; i < size; i++)
        n += data[i] == '@' ? sizeof CANARY - 1 : 1;
    s = malloc(n + 1);
    FUZZ_CHECK(s, "out of memory");
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '@') {
            memcpy(s + o, CANARY, sizeof CANARY - 1);
            o += sizeof CANARY - 1;
        } else {
            s[o++] = (char)data[i];
        }
    }
    s[o] = '\0';
    *out_len = o;
    return s;
}

static void one_request(struct fake *f, sfs_docker_api *api, const uint8_t *req, size_t len)
{
    const uint8_t *nl = memchr(req, '\n', len);
    size_t ep_len = nl ? (size_t)(nl - req) : len, body_len;
    char *endpoint = malloc(ep_len + 1), *body, *before, *after;
    struct sfs_docker_reply reply;
    size_t mounted_before = sfs_docker_api_mounted(api);

    FUZZ_CHECK(endpoint, "out of memory");
    memcpy(endpoint, req, ep_len);
    endpoint[ep_len] = '\0';
    body = nl ? with_canary(nl + 1, len - ep_len - 1, &body_len) : with_canary(req, 0, &body_len);
    before = sfs_docker_api_dump(api, NULL);
    FUZZ_CHECK(before, "no dump");
    FUZZ_CHECK(sfs_docker_api_handle(api, endpoint, body, body_len, &reply) == 0,
               "handle failed");
    check_reply(&reply);
    after = sfs_docker_api_dump(api, NULL);
    FUZZ_CHECK(after, "no dump");
    if (reply.status != 200 && strcmp(endpoint, "/VolumeDriver.Unmount") != 0) {
        FUZZ_CHECK(strcmp(before, after) == 0, "a failed %s changed the table: %s", endpoint,
                   reply.body);
        FUZZ_CHECK(sfs_docker_api_mounted(api) == mounted_before,
                   "a failed %s changed what is mounted", endpoint);
    }
    FUZZ_CHECK(referenced(after) == sfs_docker_api_mounted(api),
               "mounted volumes are not exactly those with references");
    check_consistent(f, api);
    free(reply.body);
    free(before);
    free(after);
    free(endpoint);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fake f = {.n = 0};
    struct sfs_docker_ops ops = ops_template;
    sfs_docker_api *api;
    size_t start = 0;

    ops.ctx = &f;
    api = sfs_docker_api_new("/v", &ops, 1000, 1000);
    FUZZ_CHECK(api, "out of memory");
    for (size_t i = 0, n = 0; i <= size && n < MAX_REQUESTS; i++) {
        if (i == size || data[i] == '\0') {
            one_request(&f, api, data + start, i - start);
            start = i + 1;
            n++;
        }
    }
    /* a restart: forget what is mounted, recover, then a SIGHUP */
    {
        char *dump = sfs_docker_api_dump(api, NULL);
        struct sfs_err err;

        FUZZ_CHECK(dump, "no dump");
        FUZZ_CHECK(sfs_docker_api_load(api, dump, strlen(dump), &err) == 0, "reload: %s",
                   err.msg);
        free(dump);
        for (size_t i = 0; i < f.n; i++)
            free(f.mounted[i]);
        f.n = 0;
        f.restarting = true;
        (void)sfs_docker_api_recover(api);
        f.restarting = false;
        FUZZ_CHECK(sfs_docker_api_mounted(api) == f.n, "after recovery: %zu mounted, fake %zu",
                   sfs_docker_api_mounted(api), f.n);
        (void)sfs_docker_api_reload_all(api);
    }
    for (size_t i = 0; i < f.n; i++)
        free(f.mounted[i]);
    sfs_docker_api_free(api);
    return 0;
}
