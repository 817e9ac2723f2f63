/* tests/unit/test_docker_api.c — the Docker plugin's request handler (docker/plugin.h) with
 * fake side effects: replies, references, rollback on failure, the state JSON, recovery. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "docker/plugin.h"
#include "util/log.h"

struct fake {
    int mounts, unmounts, reloads, saves, removed;
    bool fail_mount, fail_unmount, fail_save;
    enum sfs_docker_probe probe;
    char last_secrets[256];
    char saved[8192];
};

static int f_mount(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct fake *f = ctx;

    if (f->fail_mount)
        return sfs_err_set(err, -EIO, "store unreadable");
    f->mounts++;
    snprintf(f->last_secrets, sizeof f->last_secrets, "%s", v->secrets ? v->secrets : "(all)");
    return 0;
}

static int f_unmount(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct fake *f = ctx;

    (void)v;
    f->unmounts++;
    return f->fail_unmount ? sfs_err_set(err, -EBUSY, "busy") : 0;
}

static int f_reload(void *ctx, const struct sfs_docker_volume *v, struct sfs_err *err)
{
    struct fake *f = ctx;

    (void)v;
    (void)err;
    f->reloads++;
    return 0;
}

static enum sfs_docker_probe f_probe(void *ctx, const struct sfs_docker_volume *v)
{
    (void)v;
    return ((struct fake *)ctx)->probe;
}

static int f_save(void *ctx, const char *json, size_t len, struct sfs_err *err)
{
    struct fake *f = ctx;

    if (f->fail_save)
        return sfs_err_set(err, -ENOSPC, "disk full");
    f->saves++;
    snprintf(f->saved, sizeof f->saved, "%.*s", (int)len, json);
    return 0;
}

static void f_removed(void *ctx, const struct sfs_docker_volume *v)
{
    (void)v;
    ((struct fake *)ctx)->removed++;
}

/* The fakes' volumes are held by a container while referenced. */
static int f_held(void *ctx, const struct sfs_docker_volume *v)
{
    (void)ctx;
    (void)v;
    return 1;
}

static sfs_docker_api *new_api(struct fake *f)
{
    struct sfs_docker_ops ops = {.ctx = f, .mount = f_mount, .unmount = f_unmount,
                                 .reload = f_reload, .probe = f_probe, .save = f_save,
                                 .removed = f_removed, .held = f_held};

    memset(f, 0, sizeof *f);
    f->probe = SFS_DOCKER_LIVE;
    return sfs_docker_api_new("/vols", &ops, 7, 8);
}

/* Sends a request; returns the reply parsed (caller decrefs) and the status. */
static json_t *call(sfs_docker_api *api, const char *ep, const char *body, int *status)
{
    struct sfs_docker_reply r;
    json_t *j;

    CHECK(sfs_docker_api_handle(api, ep, body, strlen(body), &r) == 0);
    *status = r.status;
    j = json_loads(r.body, 0, NULL);
    CHECK_MSG(json_is_object(j), "not an object: %s", r.body);
    free(r.body);
    return j;
}

static const char *err_of(json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "Err"));
    return e ? e : "";
}

/* Expects 200 and no Err. */
static void ok(sfs_docker_api *api, const char *ep, const char *body)
{
    int st;
    json_t *j = call(api, ep, body, &st);

    CHECK_MSG(st == 200 && !*err_of(j), "%s %s: %d %s", ep, body, st, err_of(j));
    json_decref(j);
}

/* Expects an error with `status` whose Err contains `needle`. */
static void fails(sfs_docker_api *api, const char *ep, const char *body, int status,
                  const char *needle)
{
    int st;
    json_t *j = call(api, ep, body, &st);

    CHECK_MSG(st == status, "%s %s: status %d, expected %d", ep, body, st, status);
    CHECK_STR_CONTAINS(err_of(j), needle);
    json_decref(j);
}

static void test_protocol(void)
{
    struct fake f;
    sfs_docker_api *api = new_api(&f);
    json_t *j;
    int st;

    j = call(api, "/Plugin.Activate", "", &st);
    CHECK(st == 200 && strcmp(json_string_value(json_array_get(
                           json_object_get(j, "Implements"), 0)), "VolumeDriver") == 0);
    json_decref(j);
    j = call(api, "/VolumeDriver.Capabilities", "{}\n", &st);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "Capabilities"),
                                                   "Scope")), "local") == 0);
    json_decref(j);
    fails(api, "/VolumeDriver.Get", "{\"Name\":\"db\"}\n", 500, "no such volume: db");
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"db\",\"Opts\":null}\n");
    CHECK(f.saves == 1 && strstr(f.saved, "\"db\""));
    j = call(api, "/VolumeDriver.Get", "{\"Name\":\"db\"}", &st);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(json_object_get(j, "Volume"),
                                                                   "Status"), "owner")),
                 "7:8") == 0);
    json_decref(j);

    /* references */
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"db\",\"ID\":\"a\"}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"db\",\"ID\":\"a\"}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"db\",\"ID\":\"b\"}");
    CHECK(f.mounts == 1 && strcmp(f.last_secrets, "(all)") == 0);
    j = call(api, "/VolumeDriver.Path", "{\"Name\":\"db\"}", &st);
    CHECK(strcmp(json_string_value(json_object_get(j, "Mountpoint")), "/vols/db") == 0);
    json_decref(j);
    fails(api, "/VolumeDriver.Remove", "{\"Name\":\"db\"}", 500, "in use (3 mounts)");
    ok(api, "/VolumeDriver.Unmount", "{\"Name\":\"db\",\"ID\":\"zzz\"}");
    ok(api, "/VolumeDriver.Unmount", "{\"Name\":\"db\",\"ID\":\"a\"}");
    ok(api, "/VolumeDriver.Unmount", "{\"Name\":\"db\",\"ID\":\"b\"}");
    CHECK(f.unmounts == 0 && sfs_docker_api_mounted(api) == 1);
    ok(api, "/VolumeDriver.Unmount", "{\"Name\":\"db\",\"ID\":\"a\"}");
    CHECK(f.unmounts == 1 && sfs_docker_api_mounted(api) == 0);
    j = call(api, "/VolumeDriver.Path", "{\"Name\":\"db\"}", &st);
    CHECK(strcmp(json_string_value(json_object_get(j, "Mountpoint")), "") == 0);
    json_decref(j);
    ok(api, "/VolumeDriver.Remove", "{\"Name\":\"db\"}");
    CHECK(f.removed == 1 && sfs_docker_api_volumes(api) == 0);

    /* malformed */
    fails(api, "/VolumeDriver.Get", "{", 400, "malformed JSON");
    fails(api, "/VolumeDriver.Get", "[]", 400, "JSON object");
    fails(api, "/VolumeDriver.Get", "", 400, "empty request body");
    fails(api, "/VolumeDriver.Mount", "{\"Name\":\"x\",\"ID\":1}", 400, "ID");
    fails(api, "/Nope", "{}", 404, "unknown endpoint /Nope");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"a/b\"}", 500, "invalid volume name");
    sfs_docker_api_free(api);
}

static void test_options(void)
{
    struct fake f;
    sfs_docker_api *api = new_api(&f);

    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"PASSWORD\":\"hunter2\"}}", 500,
          "unknown option 'PASSWORD'");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"x=hunter2\":\"\"}}", 500,
          "not shown");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"uid\":\"root\"}}", 500,
          "option uid");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"mode\":\"1000\"}}", 500,
          "option mode");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"cache\":\"yes\"}}", 500,
          "option cache");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"A,,B\"}}", 500,
          "entry 2 is empty");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"A,b c\"}}", 500,
          "entry 2 has a character");
    ok(api, "/VolumeDriver.Create",
       "{\"Name\":\"v\",\"Opts\":{\"secrets\":\" B , A,B\",\"uid\":\"0\",\"mode\":\"440\"}}");
    ok(api, "/VolumeDriver.Create",
       "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"B,A\",\"uid\":\"0\",\"mode\":\"0440\"}}");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"A,B\"}}", 500,
          "already exists");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"v\",\"ID\":\"i\"}");
    CHECK(strcmp(f.last_secrets, "B,A") == 0);
    CHECK(strstr(f.saved, "\"mode\": \"0440\"") != NULL);
    sfs_docker_api_free(api);
}

static void test_rollback(void)
{
    struct fake f;
    sfs_docker_api *api = new_api(&f);

    f.fail_save = true;
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\"}", 500, "disk full");
    CHECK(sfs_docker_api_volumes(api) == 0);
    f.fail_save = false;
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"v\"}");
    f.fail_mount = true;
    fails(api, "/VolumeDriver.Mount", "{\"Name\":\"v\",\"ID\":\"i\"}", 500, "store unreadable");
    CHECK(sfs_docker_api_mounted(api) == 0);
    f.fail_mount = false;
    f.fail_save = true;
    fails(api, "/VolumeDriver.Mount", "{\"Name\":\"v\",\"ID\":\"i\"}", 500, "disk full");
    CHECK(f.mounts == 1 && f.unmounts == 1 && sfs_docker_api_mounted(api) == 0);
    f.fail_save = false;
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"v\",\"ID\":\"i\"}");
    f.fail_unmount = true;
    fails(api, "/VolumeDriver.Unmount", "{\"Name\":\"v\",\"ID\":\"i\"}", 500, "busy");
    CHECK(sfs_docker_api_mounted(api) == 0); /* Docker has let go: the reference is gone */
    ok(api, "/VolumeDriver.Remove", "{\"Name\":\"v\"}");

    /* a mount found dead at the next Mount is replaced */
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"d\"}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"d\",\"ID\":\"1\"}");
    f.mounts = f.unmounts = 0;
    f.fail_unmount = false;
    f.probe = SFS_DOCKER_STALE;
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"d\",\"ID\":\"2\"}");
    CHECK(f.unmounts == 1 && f.mounts == 1 && sfs_docker_api_mounted(api) == 1);
    f.probe = SFS_DOCKER_LIVE;
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"d\",\"ID\":\"3\"}");
    CHECK(f.unmounts == 1 && f.mounts == 1);
    sfs_docker_api_free(api);
}

static void test_state_and_recovery(void)
{
    struct fake f;
    sfs_docker_api *api = new_api(&f), *back;
    struct sfs_err err;
    char *dump, *again;
    size_t len;

    ok(api, "/VolumeDriver.Create", "{\"Name\":\"held\",\"Opts\":{\"secrets\":\"A\"}}");
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"free\",\"Opts\":{\"cache\":\"none\"}}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"held\",\"ID\":\"x\"}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"held\",\"ID\":\"x\"}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"held\"}");
    dump = sfs_docker_api_dump(api, &len);
    CHECK(dump && strcmp(dump, f.saved) == 0);

    back = new_api(&f);
    CHECK(sfs_docker_api_load(back, dump, len, &err) == 0);
    again = sfs_docker_api_dump(back, NULL);
    CHECK(again && strcmp(dump, again) == 0);
    free(again);
    CHECK(sfs_docker_api_mounted(back) == 0);

    /* live and held: adopted; free: nothing mounted, nothing done */
    f.probe = SFS_DOCKER_LIVE;
    CHECK(sfs_docker_api_recover(back) == 0);
    CHECK(f.mounts == 0 && f.unmounts == 1 && sfs_docker_api_mounted(back) == 1);
    ok(back, "/VolumeDriver.Unmount", "{\"Name\":\"held\",\"ID\":\"x\"}");
    ok(back, "/VolumeDriver.Unmount", "{\"Name\":\"held\",\"ID\":\"x\"}");
    ok(back, "/VolumeDriver.Unmount", "{\"Name\":\"held\",\"ID\":\"\"}");
    CHECK(f.unmounts == 2 && sfs_docker_api_mounted(back) == 0);

    /* stale: unmounted, then mounted again for the references */
    CHECK(sfs_docker_api_load(back, dump, len, &err) == 0);
    memset(&f, 0, sizeof f);
    f.probe = SFS_DOCKER_STALE;
    CHECK(sfs_docker_api_recover(back) == 0);
    CHECK(f.unmounts == 2 && f.mounts == 1 && sfs_docker_api_mounted(back) == 1);
    CHECK(sfs_docker_api_reload_all(back) == 0 && f.reloads == 1);

    /* gone and unmountable: kept with its references, the next Mount retries */
    CHECK(sfs_docker_api_load(back, dump, len, &err) == 0);
    memset(&f, 0, sizeof f);
    f.fail_mount = true;
    CHECK(sfs_docker_api_recover(back) == 1 && sfs_docker_api_mounted(back) == 0);
    f.fail_mount = false;
    ok(back, "/VolumeDriver.Mount", "{\"Name\":\"held\",\"ID\":\"y\"}");
    CHECK(f.mounts == 1 && sfs_docker_api_mounted(back) == 1);

    /* refused state files leave the table as it was */
    {
        static const char *const bad[] = {
            "", "[]", "{\"version\":2,\"volumes\":[]}", "{\"version\":1}",
            "{\"version\":1,\"volumes\":[],\"x\":1}",
            "{\"version\":1,\"volumes\":[{\"name\":\"../x\"}]}",
            "{\"version\":1,\"volumes\":[{\"name\":\"a\",\"secrets\":null,\"uid\":-1,"
            "\"gid\":0,\"mode\":\"0400\",\"cache\":\"kernel\",\"created\":\"t\",\"mounts\":{}}]}",
            "{\"version\":1,\"volumes\":[{\"name\":\"a\",\"secrets\":\"A,,\",\"uid\":1,"
            "\"gid\":0,\"mode\":\"0400\",\"cache\":\"kernel\",\"created\":\"t\",\"mounts\":{}}]}",
            "{\"version\":1,\"volumes\":[{\"name\":\"a\",\"secrets\":null,\"uid\":1,"
            "\"gid\":0,\"mode\":\"0400\",\"cache\":\"kernel\",\"created\":\"t\",\"mounts\":"
            "{\"i d\":1}}]}",
            "{\"version\":1,\"volumes\":[{\"name\":\"a\",\"secrets\":null,\"uid\":1,"
            "\"gid\":0,\"mode\":\"0400\",\"cache\":\"kernel\",\"created\":\"t\",\"mounts\":"
            "{\"i\":0}}]}",
            "{\"version\":1,\"volumes\":[{\"name\":\"a\",\"secrets\":null,\"uid\":1,"
            "\"gid\":0,\"mode\":\"0400\",\"cache\":\"kernel\",\"created\":\"t\",\"mounts\":{},"
            "\"extra\":1}]}",
        };
        size_t n = sfs_docker_api_volumes(back);

        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            CHECK_MSG(sfs_docker_api_load(back, bad[i], strlen(bad[i]), &err) == -EINVAL,
                      "accepted: %s", bad[i]);
            CHECK(sfs_docker_api_volumes(back) == n);
        }
    }
    free(dump);
    sfs_docker_api_free(back);
    sfs_docker_api_free(api);
}

/* ---- names the store lacks, stale references ---- */

struct fake_store {
    struct fake f;
    const char *names; /* newline separated, or NULL: the store cannot be read */
    int held;          /* what ops.held answers: 1, 0, -1 */
    int asked, asked_fresh;
};

static int fs_names(void *ctx, bool fresh, char **names, struct sfs_err *err)
{
    struct fake_store *s = ctx;

    s->asked++;
    s->asked_fresh += fresh;

    if (!s->names)
        return sfs_err_set(err, -EBADMSG, "store.bin: wrong key");
    *names = strdup(s->names);
    return *names ? 0 : -ENOMEM;
}

static int fs_held(void *ctx, const struct sfs_docker_volume *v)
{
    (void)v;
    return ((struct fake_store *)ctx)->held;
}

static sfs_docker_api *new_store_api(struct fake_store *s, const char *names)
{
    struct sfs_docker_ops ops = {.ctx = s, .mount = f_mount, .unmount = f_unmount,
                                 .probe = f_probe, .save = f_save, .removed = f_removed,
                                 .store_names = fs_names, .held = fs_held};

    memset(s, 0, sizeof *s);
    s->f.probe = SFS_DOCKER_LIVE;
    s->names = names;
    s->held = 1;
    return sfs_docker_api_new("/vols", &ops, 0, 0);
}

static const char *status_field(sfs_docker_api *api, const char *name, const char *field,
                                char *buf, size_t size)
{
    char body[128];
    int st;
    json_t *j;
    const char *v;

    snprintf(body, sizeof body, "{\"Name\":\"%s\"}", name);
    j = call(api, "/VolumeDriver.Get", body, &st);
    v = json_string_value(json_object_get(
        json_object_get(json_object_get(j, "Volume"), "Status"), field));
    snprintf(buf, size, "%s", v ? v : "(none)");
    json_decref(j);
    return buf;
}

static void test_missing_names(void)
{
    struct fake_store s;
    sfs_docker_api *api = new_store_api(&s, "A\nB\n");
    char buf[256];

    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"A,TYPO\"}}",
          500, "option secrets: TYPO not in the store");
    CHECK(s.asked == 1 && s.asked_fresh == 1); /* Create may refuse: a fresh list */
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"X,A,Y\"}}",
          500, "X,Y not in the store (secretfs list shows what is); fix the spelling, or add "
          "optional=X,Y");
    CHECK(sfs_docker_api_volumes(api) == 0);
    /* platform names come from the platform, never the store */
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"p\",\"Opts\":{\"secrets\":\"A,LIVEKIT_URL\"}}");
    CHECK_MSG(strcmp(status_field(api, "p", "missing", buf, sizeof buf), "(none)") == 0, "%s", buf);
    CHECK(s.asked == 4 && s.asked_fresh == 3); /* Get: a kept list will do */
    ok(api, "/VolumeDriver.Create",
       "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"A,LATER\",\"optional\":\"LATER\"}}");
    CHECK_MSG(strcmp(status_field(api, "v", "missing", buf, sizeof buf), "LATER") == 0, "%s", buf);
    CHECK_MSG(strcmp(status_field(api, "v", "optional", buf, sizeof buf), "LATER") == 0, "%s", buf);
    s.names = "B\nLATER\n"; /* A went, LATER came */
    CHECK_MSG(strcmp(status_field(api, "v", "missing", buf, sizeof buf), "A") == 0, "%s", buf);
    s.names = NULL;
    CHECK_STR_CONTAINS(status_field(api, "v", "missing", buf, sizeof buf),
                       "(unknown: store.bin: wrong key)");
    fails(api, "/VolumeDriver.Create", "{\"Name\":\"w\",\"Opts\":{\"secrets\":\"A\"}}",
          500, "wrong key");
    /* every secret: nothing to check, the store is not even asked */
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"all\",\"Opts\":null}");
    /* optional= survives the state file */
    {
        size_t len;
        char *dump = sfs_docker_api_dump(api, &len);
        struct fake_store s2;
        sfs_docker_api *back = new_store_api(&s2, "A\n");
        struct sfs_err err;

        CHECK(dump && sfs_docker_api_load(back, dump, len, &err) == 0);
        CHECK_MSG(strcmp(status_field(back, "v", "optional", buf, sizeof buf), "LATER") == 0, "%s", buf);
        CHECK_MSG(strcmp(status_field(back, "v", "missing", buf, sizeof buf), "LATER") == 0, "%s", buf);
        free(dump);
        sfs_docker_api_free(back);
    }
    sfs_docker_api_free(api);
}

static void test_audit_status(void)
{
    struct fake_store s;
    sfs_docker_api *api = new_store_api(&s, "A\n");
    char buf[256];

    ok(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"cache\":\"kernel\"}}");
    CHECK_MSG(strcmp(status_field(api, "v", "audit", buf, sizeof buf), "(none)") == 0, "%s", buf);
    CHECK_MSG(strcmp(status_field(api, "v", "cache", buf, sizeof buf), "kernel") == 0, "%s", buf);
    CHECK(sfs_docker_api_set_audit(api, "/var/log/secretfs") == 0);
    CHECK_MSG(strcmp(status_field(api, "v", "audit", buf, sizeof buf),
                     "/var/log/secretfs/v.log") == 0, "%s", buf);
    CHECK_MSG(strcmp(status_field(api, "v", "cache", buf, sizeof buf), "none") == 0, "%s", buf);
    CHECK(sfs_docker_api_set_audit(api, "journal") == 0);
    CHECK_MSG(strcmp(status_field(api, "v", "audit", buf, sizeof buf), "journal") == 0, "%s", buf);
    /* the volume's own option is unchanged: the same Create is still the same volume */
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"cache\":\"kernel\"}}");
    sfs_docker_api_free(api);
}

static void test_stale_references(void)
{
    struct fake_store s;
    sfs_docker_api *api = new_store_api(&s, "A\n");
    struct sfs_err err;
    size_t len;
    char *dump;

    ok(api, "/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"secrets\":\"A\"}}");
    ok(api, "/VolumeDriver.Create", "{\"Name\":\"w\",\"Opts\":{\"secrets\":\"A\"}}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"v\",\"ID\":\"x\"}");
    ok(api, "/VolumeDriver.Mount", "{\"Name\":\"w\",\"ID\":\"y\"}");
    fails(api, "/VolumeDriver.Remove", "{\"Name\":\"v\"}", 500, "is in use (1 mount)");
    s.held = 0; /* the engine died; its containers are gone */
    ok(api, "/VolumeDriver.Remove", "{\"Name\":\"v\"}");
    CHECK(s.f.unmounts == 1 && s.f.removed == 1 && sfs_docker_api_volumes(api) == 1);
    /* after a restart, references nobody holds are dropped and saved so */
    dump = sfs_docker_api_dump(api, &len);
    CHECK(dump && strstr(dump, "\"y\""));
    {
        struct fake_store s2;
        sfs_docker_api *back = new_store_api(&s2, "A\n");

        s2.held = -1; /* cannot tell (a managed plugin): the references stay */
        CHECK(dump && sfs_docker_api_load(back, dump, len, &err) == 0);
        CHECK(sfs_docker_api_recover(back) == 0);
        CHECK(sfs_docker_api_mounted(back) == 1 && s2.f.saves == 0);
        s2.held = 0;
        CHECK(sfs_docker_api_load(back, dump, len, &err) == 0);
        CHECK(sfs_docker_api_recover(back) == 0);
        CHECK(sfs_docker_api_mounted(back) == 0 && s2.f.mounts == 0);
        CHECK(s2.f.unmounts == 1); /* the live mount nobody holds */
        CHECK(s2.f.saves == 1 && !strstr(s2.f.saved, "\"y\""));
        /* and a Remove that cannot tell trusts dockerd's own in-use check */
        s2.held = -1;
        ok(back, "/VolumeDriver.Mount", "{\"Name\":\"w\",\"ID\":\"z\"}");
        ok(back, "/VolumeDriver.Remove", "{\"Name\":\"w\"}");
        CHECK(s2.f.removed == 1 && sfs_docker_api_volumes(back) == 0);
        sfs_docker_api_free(back);
    }
    free(dump);
    sfs_docker_api_free(api);
}

static void test_names(void)
{
    CHECK(sfs_docker_volume_name_valid("a"));
    CHECK(sfs_docker_volume_name_valid("db-secrets_1.x"));
    CHECK(!sfs_docker_volume_name_valid(""));
    CHECK(!sfs_docker_volume_name_valid("."));
    CHECK(!sfs_docker_volume_name_valid(".."));
    CHECK(!sfs_docker_volume_name_valid("a/b"));
    CHECK(!sfs_docker_volume_name_valid("-a"));
    CHECK(!sfs_docker_volume_name_valid("_a"));
    CHECK(!sfs_docker_volume_name_valid("a b"));
}

int main(void)
{
    sfs_log_init("test_docker_api", false);
    test_protocol();
    test_options();
    test_rollback();
    test_state_and_recovery();
    test_names();
    test_missing_names();
    test_audit_status();
    test_stale_references();
    return check_result();
}
