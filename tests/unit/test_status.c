/* tests/unit/test_status.c — fs/status.c's two small formats, without a mount: .status
 * rendered and parsed back in the host view and in the container view (-o status=container),
 * what is refused as "not a secretfs .status", and the generation file. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fs/status.h"

static struct sfs_status sample(void)
{
    struct sfs_status st;

    memset(&st, 0, sizeof st);
    st.generation = 7;
    st.store_version = 41;
    st.loaded_at = 1790000000;
    st.secrets = 3;
    st.platform = 2;
    st.pid = 4242;
    st.reloads = 6;
    st.started = 6;
    snprintf(st.last_reload, sizeof st.last_reload, "ok");
    snprintf(st.missing, sizeof st.missing, "API_TOKEN");
    snprintf(st.notify, sizeof st.notify, "/run/secretfs/srv-a/generation");
    snprintf(st.audit, sizeof st.audit, "/var/log/secretfs/audit.log");
    snprintf(st.backend, sizeof st.backend, "backend=etcd\nrevision=12\n");
    return st;
}

static void test_host_view_round_trip(void)
{
    struct sfs_status st = sample(), back;
    char text[SFS_STATUS_MAX];
    size_t len = sfs_status_render(&st, text, sizeof text);

    CHECK_STR_CONTAINS(text, "pid=4242\n");
    CHECK_STR_CONTAINS(text, "notify=/run/secretfs/srv-a/generation\n");
    CHECK(strstr(text, "view=") == NULL);
    CHECK(sfs_status_parse(text, len, &back) == 0);
    CHECK(back.pid == 4242 && !back.container_view);
    CHECK(back.generation == 7 && back.secrets == 3 && back.platform == 2);
    CHECK(strcmp(back.missing, "API_TOKEN") == 0);
    CHECK_STR_CONTAINS(text, "last_reload=ok\nstore_version=41\nmissing=API_TOKEN\n");
    CHECK(back.store_version == 41);
    CHECK(strcmp(back.notify, st.notify) == 0);
    CHECK(strcmp(back.backend, st.backend) == 0);
}

/* What the daemon renders for a container: no pid, no host path (serve.c blanks notify and
 * turns the audit path into "on" before rendering; the renderer drops pid=). */
static void test_container_view(void)
{
    struct sfs_status st = sample(), back;
    char text[SFS_STATUS_MAX];
    size_t len;

    st.container_view = true;
    st.pid = 0;
    st.notify[0] = '\0';
    snprintf(st.audit, sizeof st.audit, "on");
    len = sfs_status_render(&st, text, sizeof text);
    CHECK(strstr(text, "pid=") == NULL);
    CHECK(strstr(text, "/run/") == NULL && strstr(text, "/var/") == NULL);
    CHECK_STR_CONTAINS(text, "platform=2\nview=container\ncache=kernel\n");
    CHECK_STR_CONTAINS(text, "missing=API_TOKEN\n");
    CHECK(sfs_status_parse(text, len, &back) == 0);
    CHECK(back.container_view && back.pid == 0 && back.generation == 7);
    st.store_version = 0; /* a version-1 store has none: no line */
    sfs_status_render(&st, text, sizeof text);
    CHECK(strstr(text, "store_version") == NULL);
}

static void test_refused(void)
{
    static const char *const bad[] = {
        "",                                       /* empty */
        "generation=1\nsecrets=2\n",              /* neither pid= nor view=container */
        "pid=0\ngeneration=1\n",                  /* pid 0 */
        "view=host\ngeneration=1\n",              /* only view=container counts */
        "backend=file\npid=12\n",                 /* pid= inside the backend's lines */
    };
    struct sfs_status st;
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(sfs_status_parse(bad[i], strlen(bad[i]), &st) == -EBADMSG, "case %zu", i);
    /* a pid= beside view=container is not the host's: it is dropped */
    CHECK(sfs_status_parse("view=container\npid=1\n", 21, &st) == 0 && st.pid == 0);
}

static void test_genfile(void)
{
    struct sfs_genfile g = {99, 5, 10}, back;
    char text[128];
    size_t len = sfs_genfile_render(&g, text, sizeof text);

    CHECK(strcmp(text, "pid=99\ngeneration=5\nseq=10\n") == 0);
    CHECK(sfs_genfile_parse(text, len, &back) == 0);
    CHECK(back.pid == 99 && back.generation == 5 && back.seq == 10);
    CHECK(sfs_genfile_parse("pid=99\n", 7, &back) == -EBADMSG);
}

int main(void)
{
    test_host_view_round_trip();
    test_container_view();
    test_refused();
    test_genfile();
    return check_result();
}
