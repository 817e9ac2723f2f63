"""`secretfs reload` must not return 0 before the store it was asked to load is served,
even when another reload (a second admin, `[store] watch`, `set --reload`) is already
running.  A background loop sends SIGHUP all the time while, 20 times, the store is replaced
and `secretfs reload` run; after each call every value must be the new store's.  (Before
.status had `reloads_started`, the CLI waited for `reloads` to grow by one, which a reload
that began before the store changed could satisfy: stale reads after nearly every call.)
"""
import os
import signal
import threading
import time

from reloadlib import check, install_store, run_all, need_fuse, read, reload_cli, Sandbox

SECRETS = 5000
ROUNDS = 20


def test():
    need_fuse()
    with Sandbox() as sb:
        stores = []
        for k in range(2):
            path = os.path.join(sb.dir, "s%d.store" % k)
            env = os.path.join(sb.dir, "big%d.env" % k)
            with open(env, "w") as f:
                for i in range(SECRETS):
                    f.write("BIG_%d=%s\n" % (i, ("g%d" % k) * 200))
                f.write("V=gen-%d\n" % k)
            sb.run(["update-secrets", "--secrets-file", env, "--store", path])
            stores.append(path)
        install_store(sb, stores[0])
        mnt, pid = sb.mount(opts=["-o", "cache=none"])
        stop = threading.Event()

        def other_reloader():
            while not stop.is_set():
                os.kill(pid, signal.SIGHUP)
                time.sleep(0.0005)

        t = threading.Thread(target=other_reloader)
        t.start()
        stale = ok = 0
        try:
            for k in range(1, ROUNDS + 1):
                install_store(sb, stores[k % 2])
                p = reload_cli(sb, mnt)
                if p.returncode == 0:
                    ok += 1
                    if read(os.path.join(mnt, "V")) != b"gen-%d" % (k % 2):
                        stale += 1
        finally:
            stop.set()
            t.join()
        print("secretfs reload returned 0 %d/%d times; stale right after: %d" % (
            ok, ROUNDS, stale))
        check(ok == ROUNDS, "secretfs reload failed %d times" % (ROUNDS - ok))
        check(stale == 0, "%d reads right after `secretfs reload` returned 0 were stale "
              "(another reload was in progress)" % stale)


run_all(test)
