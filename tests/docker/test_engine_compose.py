"""The README's Compose example, as written there, with docker-compose 1.29 against a real
dockerd: `up` creates the volume through the plugin and the service reads its secrets as
the granted user; `down -v` removes the volume."""
import os
import re

from enginelib import IMAGE, check, harness, run_module

COMPOSE = "/usr/bin/docker-compose"


def readme_compose():
    with open(os.path.join(harness.SRC, "..", "README.md")) as f:
        text = f.read()
    m = re.search(r"With Compose:\n\n```yaml\n(.*?)```", text, re.S)
    check(m, "the README has a Compose example")
    return m.group(1)


def test_readme_compose_example(dk, sb):
    if not os.path.exists(COMPOSE):
        print("(skipped: %s missing)" % COMPOSE)
        return
    values = {"DB_PASSWORD": harness.canary("db"), "API_TOKEN": harness.canary("api"),
              "OTHER": harness.canary("o")}
    sb.set_secrets(values)
    sb.start_plugin()
    yml = readme_compose()
    check("driver: secretfs" in yml and "image: app" in yml, "the example is the one we test")
    # only what must differ here: our driver's name, our image, a command that shows the
    # files (the user 1000 the example grants is the one reading)
    yml = yml.replace("driver: secretfs", "driver: " + sb.driver)
    yml = yml.replace("image: app", 'image: %s\n    command: ["sh", "-c", "id -u; cat '
                      '/run/secrets/DB_PASSWORD /run/secrets/API_TOKEN; ls /run/secrets"]'
                      % IMAGE)
    proj = os.path.join(sb.dir, "compose")
    os.makedirs(proj)
    with open(os.path.join(proj, "docker-compose.yml"), "w") as f:
        f.write(yml)
    env = dict(dk.env, COMPOSE_PROJECT_NAME="sfs%d" % os.getpid())
    up = dk.docker_compose(["up", "--no-color", "--abort-on-container-exit"], env, proj)
    logs = dk.docker_compose(["logs", "--no-color", "app"], env, proj).stdout
    vol = "sfs%d_db-secrets" % os.getpid()
    try:
        check(up.returncode == 0, "docker-compose up: %s" % harness.redact(up.stderr)[-600:])
        check(b"1000\n" in logs, "the service runs as uid 1000")
        check(values["DB_PASSWORD"] + values["API_TOKEN"] in logs,
              "user 1000 reads both secrets of the subset")
        check(values["OTHER"] not in logs and b"OTHER" not in logs,
              "the subset leaves the other secret out")
        st = dk.inspect_volume(vol)["Status"]
        check(st["owner"].startswith("1000:") and st["mode"] == "0400",
              "the driver_opts reached the plugin: %s" % st)
    finally:
        down = dk.docker_compose(["down", "-v"], env, proj)
    check(down.returncode == 0, "docker-compose down -v: %s" % harness.redact(down.stderr)[-600:])
    check(vol not in dk.volumes(sb.driver), "down -v removes the volume")
    check(not os.path.exists(sb.volume_dir(vol)), "and the plugin removed its directory")


if __name__ == "__main__":
    run_module([test_readme_compose_example])
