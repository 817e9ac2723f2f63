"""`[store] watch = yes`: replacing the store with `secretfs set` / `secretfs rm` reloads the
mount by itself (debounced); unrelated files in the store's directory do not."""
import os
import time

from reloadlib import absent, check, each_mode, run_all, need_fuse, read, status


def until(cond, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    check(False, "%s within %.0f s" % (what, timeout))


def scenario(sb, cache):
    sb.write_config("watch = yes\n")
    sb.set_secrets({"DB_PASSWORD": b"first"})
    mnt, _ = sb.mount(opts=["-o", "cache=%s" % cache])
    path = os.path.join(mnt, "DB_PASSWORD")
    check(read(path) == b"first", "DB_PASSWORD wrong at mount")

    sb.run(["set", "DB_PASSWORD"], input=b"second, longer value")
    until(lambda: read(path) == b"second, longer value", "no automatic reload after set")
    until(lambda: status(mnt)["last_reload"] == "ok", "status not ok")
    gen = int(status(mnt)["generation"])

    added = os.path.join(mnt, "ADDED")
    check(absent(added), "ADDED exists too early")
    sb.run(["set", "ADDED"], input=b"x")
    until(lambda: os.path.exists(added) and read(added) == b"x",
          "ADDED not visible after set (with a cached miss)")
    sb.run(["rm", "ADDED"])
    until(lambda: absent(added), "ADDED still there after rm")

    # a burst of writes ends with the last value served
    for i in range(10):
        sb.run(["set", "DB_PASSWORD"], input=b"burst-%d" % i)
    until(lambda: read(path) == b"burst-9", "burst: last value not served")
    st = status(mnt)
    print("  reloads after 13 store writes: %s (generation %s)" % (st["reloads"],
                                                                 st["generation"]))
    check(int(st["generation"]) > gen, "generation did not move")

    # unrelated files in the directory do not trigger a reload
    time.sleep(0.5)
    before = status(mnt)["reloads"]
    with open(os.path.join(sb.dir, "unrelated.txt"), "w") as f:
        f.write("x")
    os.rename(os.path.join(sb.dir, "unrelated.txt"), os.path.join(sb.dir, "other.txt"))
    time.sleep(1.0)
    check(status(mnt)["reloads"] == before, "an unrelated file in the store's directory "
          "triggered a reload")


def test():
    need_fuse()
    each_mode(scenario)


run_all(test)
