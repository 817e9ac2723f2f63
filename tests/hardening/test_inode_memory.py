"""Issue 12, item 8: the inode table follows what is served, not every name ever served.
Ten reloads of 20,000 fresh names each (a quarter of them looked up, so the kernel holds and
then forgets their inodes) must not grow the daemon's memory round after round, and a name that
comes back after it was retired is served again (tests/unit/test_inodes.c checks that its
(inode, generation) pair is new)."""
import os


from harness import Sandbox, check, need_fuse, run_all
from reloadlib import sanitized_build

ROUNDS = 10
NAMES = 20000


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fresh_store(sb, n):
    path = os.path.join(sb.dir, "round.env")
    with open(path, "w") as f:
        for i in range(NAMES):
            f.write("R%02d_NAME_%05d=v%d\n" % (n, i, i))
    sb.run(["update-secrets", "--overwrite", "--secrets-file", path])


def test_fresh_names_do_not_grow_memory():
    need_fuse()
    if sanitized_build():
        print("skipped the memory figures: AddressSanitizer's quarantine holds freed memory")
        return
    with Sandbox() as sb:
        fresh_store(sb, 0)
        mnt, pid = sb.mount()
        rss = []
        for n in range(1, ROUNDS + 1):
            fresh_store(sb, n)
            sb.run(["reload", mnt])
            for i in range(0, NAMES, 4):  # a quarter looked up: the kernel holds, then forgets
                os.stat(os.path.join(mnt, "R%02d_NAME_%05d" % (n, i)))
            rss.append(rss_kb(pid))
        print("daemon RSS after each of %d reloads of %d fresh names (KiB): %s" % (
            ROUNDS, NAMES, " ".join(str(r) for r in rss)))
        growth = rss[-1] - rss[2]
        check(growth < 2048, "RSS grew %d KiB from reload 3 to reload %d (%d -> %d KiB)" % (
            growth, ROUNDS, rss[2], rss[-1]))


def test_returning_name_is_served():
    need_fuse()
    with Sandbox() as sb:
        sb.run(["set", "KEEP"], input=b"k")
        sb.run(["set", "BACK"], input=b"one")
        mnt, pid = sb.mount()
        sb.run(["rm", "BACK", "--reload=%s" % mnt])
        for _ in range(3):  # retired once gone from every live generation and forgotten
            sb.run(["set", "OTHER"], input=os.urandom(4).hex().encode())
            sb.run(["reload", mnt])
        sb.run(["set", "BACK", "--reload=%s" % mnt], input=b"two")
        with open(os.path.join(mnt, "BACK"), "rb") as f:
            check(f.read() == b"two", "the returning name does not serve its new value")
        with open(os.path.join(mnt, "KEEP"), "rb") as f:
            check(f.read() == b"k", "a surviving name lost its value")


if __name__ == "__main__":
    run_all(test_fresh_names_do_not_grow_memory, test_returning_name_is_served)
