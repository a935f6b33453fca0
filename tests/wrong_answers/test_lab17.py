"""Lab 17 checks fail on plausible wrong answers, with a message that helps, and pass the reference answers.

Static mistakes (a single stage, no USER, a shell-form CMD, ...) fail before any build, so most of these tests take
a second; the ones that must build or stop a container use small Containerfiles on top of the cached reference."""

from __future__ import annotations

import pytest
from verdicts import assert_fails, assert_not_done, assert_passes, scratch_namespace

from infracourse.checks import lab17 as checks
from infracourse.services import containers


@pytest.fixture(scope="module")
def lab():
    # a namespace of its own: with pytest-xdist both workers may hold this module's fixture, and a shared name
    # would be one container that either worker's test removes under the other's
    with scratch_namespace("postgres", "redis") as ns:
        made = checks.prepare(ns, containers.runtime())
        yield made
        checks.clean_up(made)


def containerfile(lab, final: str, build: str | None = None) -> str:
    """A Containerfile whose build stage is the reference's and whose final stage is FINAL."""
    build = build if build is not None else ("FROM ${BASE} AS build\nRUN python3 -m venv /opt/venv\n"
                                             "COPY pyproject.toml /src/\n" + lab.install_step + "\n")
    return "ARG BASE=localhost/course-python:3.11-bookworm\n\n" + build + "\n" + final


FINAL = """FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
COPY orders_service /app/orders_service
WORKDIR /app
ENV PATH=/opt/venv/bin:/usr/bin:/bin ORDERS_HTTP_HOST=0.0.0.0
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=5s CMD ["python", "-m", "orders_service", "probe"]
CMD ["python", "-m", "orders_service"]
"""


# 1 Containerfile ---------------------------------------------------------------------------------------------
def test_containerfile_reference_passes(lab):
    assert_passes(checks.containerfile(containerfile(lab, FINAL), lab))


def test_containerfile_not_done(lab):
    assert_not_done(checks.containerfile(..., lab))


def test_containerfile_single_stage_fails(lab):
    single = FINAL.replace("COPY --from=build /opt/venv /opt/venv\n", "")
    assert_fails(checks.containerfile("ARG BASE=localhost/course-python:3.11-bookworm\n" + single, lab), "1 stage")


def test_containerfile_without_copy_from_fails(lab):
    assert_fails(checks.containerfile(containerfile(lab, FINAL.replace("COPY --from=build /opt/venv /opt/venv\n",
                                                                       "")), lab), "copies nothing")


def test_containerfile_without_user_fails(lab):
    assert_fails(checks.containerfile(containerfile(lab, FINAL.replace("USER 10001:10001\n", "")), lab), "no USER")


@pytest.mark.parametrize("user", ["root", "0:0"])
def test_containerfile_as_root_fails(lab, user):  # hadolint's DL3002 or the check's own rule: both say "root"
    assert_fails(checks.containerfile(containerfile(lab, FINAL.replace("USER 10001:10001", f"USER {user}")), lab),
                 "root")


def test_containerfile_without_healthcheck_fails(lab):
    no_check = "\n".join(line for line in FINAL.splitlines() if not line.startswith("HEALTHCHECK"))
    assert_fails(checks.containerfile(containerfile(lab, no_check), lab), "no HEALTHCHECK")


def test_containerfile_shell_form_cmd_fails_hadolint(lab):
    shell = FINAL.replace('CMD ["python", "-m", "orders_service"]', "CMD python -m orders_service")
    assert_fails(checks.containerfile(containerfile(lab, shell), lab), "hadolint", "DL3025")


def test_containerfile_with_a_hadolint_finding_fails(lab):
    cd = FINAL.replace("WORKDIR /app\n", "RUN cd /app && true\n")
    assert_fails(checks.containerfile(containerfile(lab, cd), lab), "hadolint", "DL3003")


def test_containerfile_whose_healthcheck_never_passes_fails(lab):
    wrong = FINAL.replace('CMD ["python", "-m", "orders_service", "probe"]',
                          'CMD ["python", "-c", "import urllib.request as u; u.urlopen(\'http://127.0.0.1:9/\')"]')
    assert_fails(checks.containerfile(containerfile(lab, wrong), lab), "not healthy")


def test_containerfile_with_an_unpassed_base_fails(lab):
    fixed = containerfile(lab, FINAL).replace("FROM ${BASE}", "FROM localhost/no-such-base:1")
    assert_fails(checks.containerfile(fixed, lab), "the build failed")


def test_containerfile_without_the_venv_on_path_fails(lab):
    no_path = FINAL.replace("ENV PATH=/opt/venv/bin:/usr/bin:/bin ORDERS_HTTP_HOST=0.0.0.0",
                            "ENV ORDERS_HTTP_HOST=0.0.0.0")
    assert_fails(checks.containerfile(containerfile(lab, no_path), lab), "did not start", "python")


# 2 .dockerignore ----------------------------------------------------------------------------------------------
DOCKERIGNORE = "*\n!pyproject.toml\n!orders_service/\n!rootfs.py\n**/.env\n**/__pycache__\n"


def test_dockerignore_reference_passes(lab):
    assert_passes(checks.dockerignore(DOCKERIGNORE, lab))


def test_dockerignore_not_done(lab):
    assert_not_done(checks.dockerignore(..., lab))


def test_dockerignore_empty_ships_the_secrets(lab):
    assert_fails(checks.dockerignore("", lab), "still contains", ".env", ".venv")


def test_dockerignore_top_level_env_only_misses_the_nested_one(lab):
    assert_fails(checks.dockerignore(".env\n.venv\n.git\n", lab), "orders_service/.env")


def test_dockerignore_reinclusion_after_the_env_rule_lets_it_back(lab):
    assert_fails(checks.dockerignore("*\n**/.env\n!pyproject.toml\n!orders_service/\n!rootfs.py\n", lab),
                 "orders_service/.env")


def test_dockerignore_forgetting_git_ships_it(lab):
    assert_fails(checks.dockerignore("**/.env\n.venv\n", lab), ".git/config")


def test_dockerignore_everything_excluded_lacks_the_app(lab):
    assert_fails(checks.dockerignore("*\n", lab), "lacks", "pyproject.toml")


# 3 drain handler ----------------------------------------------------------------------------------------------
def reference_main():
    import signal
    import threading

    from orders_service import app
    from orders_service.settings import load_settings

    settings = load_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service = app.OrdersService(settings)
    service.open()
    server = app.make_server(service, settings.http_host, settings.http_port)
    loop = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    loop.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    loop.join()
    left = service.wait_idle(settings.shutdown_grace_s)
    service.close()
    raise SystemExit(0 if left == 0 else 1)


def no_handler_main():
    from orders_service import app
    from orders_service.settings import load_settings

    settings = load_settings()
    service = app.OrdersService(settings)
    service.open()
    app.make_server(service, settings.http_host, settings.http_port).serve_forever()


def exits_at_once_main():
    import os
    import signal

    from orders_service import app
    from orders_service.settings import load_settings

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    settings = load_settings()
    service = app.OrdersService(settings)
    service.open()
    app.make_server(service, settings.http_host, settings.http_port).serve_forever()


def unbounded_wait_main():
    import signal
    import threading

    from orders_service import app
    from orders_service.settings import load_settings

    settings = load_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service = app.OrdersService(settings)
    service.open()
    server = app.make_server(service, settings.http_host, settings.http_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    server.shutdown()
    server.server_close()
    while service.wait_idle(1.0):
        pass
    service.close()


def keeps_accepting_main():
    import signal
    import threading

    from orders_service import app
    from orders_service.settings import load_settings

    settings = load_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service = app.OrdersService(settings)
    service.open()
    server = app.make_server(service, settings.http_host, settings.http_port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    left = service.wait_idle(settings.shutdown_grace_s)
    service.close()
    raise SystemExit(0 if left == 0 else 1)


def exits_non_zero_main():
    import signal
    import threading

    from orders_service import app
    from orders_service.settings import load_settings

    settings = load_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    service = app.OrdersService(settings)
    service.open()
    server = app.make_server(service, settings.http_host, settings.http_port)
    loop = threading.Thread(target=server.serve_forever)
    loop.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    loop.join()
    service.wait_idle(settings.shutdown_grace_s)
    service.close()
    raise SystemExit(3)


def stub_main():
    # TODO: serve, and drain on SIGTERM
    raise NotImplementedError


def test_drain_reference_passes(lab):
    assert_passes(checks.drain_handler(reference_main, lab))


def test_drain_not_done(lab):
    assert_not_done(checks.drain_handler(stub_main, lab))


def test_drain_without_a_handler_is_killed(lab):
    assert_fails(checks.drain_handler(no_handler_main, lab), "SIGTERM did not stop", in_hint=("signal.signal",))


def test_drain_exiting_in_the_handler_fails_the_in_flight_orders(lab):
    assert_fails(checks.drain_handler(exits_at_once_main, lab), "in-flight orders failed")


def test_drain_without_a_bound_is_killed_in_the_slow_case(lab):
    assert_fails(checks.drain_handler(unbounded_wait_main, lab), "longer than shutdown_grace_s")


def test_drain_that_keeps_accepting_fails(lab):
    assert_fails(checks.drain_handler(keeps_accepting_main, lab), "kept accepting")


def test_drain_exiting_non_zero_fails(lab):
    assert_fails(checks.drain_handler(exits_non_zero_main, lab), "exited 3, expected 0")


# 4 hardened run -----------------------------------------------------------------------------------------------
HARDENED = ["--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"]


def test_hardened_reference_passes(lab):
    assert_passes(checks.hardened_run(HARDENED, lab))


def test_hardened_not_done(lab):
    assert_not_done(checks.hardened_run(..., lab))


def test_hardened_writable_root_fails(lab):
    assert_fails(checks.hardened_run(HARDENED[1:], lab), "writable")


def test_hardened_keeping_capabilities_fails(lab):
    assert_fails(checks.hardened_run([HARDENED[0], HARDENED[2]], lab), "capabilities")


def test_hardened_adding_a_capability_back_fails(lab):
    assert_fails(checks.hardened_run([*HARDENED, "--cap-add=NET_ADMIN"], lab), "capabilities")


def test_hardened_without_no_new_privileges_fails(lab):
    assert_fails(checks.hardened_run(HARDENED[:2], lab), "NoNewPrivs")


def test_hardened_as_root_fails(lab):
    assert_fails(checks.hardened_run([*HARDENED, "--user=0"], lab), "root")


# 5 token build ------------------------------------------------------------------------------------------------
TOKEN_HEAD = "ARG BASE\nFROM ${BASE}\n"


def test_token_reference_passes(lab):
    text = TOKEN_HEAD + "RUN --mount=type=secret,id=token sha256sum /run/secrets/token > /token.sha256\n"
    assert_passes(checks.token_build(text, lab))


def test_token_not_done(lab):
    assert_not_done(checks.token_build(..., lab))


def test_token_as_build_argument_leaks_into_history(lab):
    text = TOKEN_HEAD + 'ARG TOKEN\nRUN printf %s "$TOKEN" | sha256sum > /token.sha256\n'
    assert_fails(checks.token_build(text, lab), "history", in_hint=("--mount=type=secret",))


def test_token_copied_then_removed_stays_in_a_layer(lab):
    text = TOKEN_HEAD + "COPY token.txt /token.txt\nRUN sha256sum /token.txt > /token.sha256 && rm /token.txt\n"
    assert_fails(checks.token_build(text, lab), "a layer")


def test_token_in_env_leaks(lab):
    text = TOKEN_HEAD + 'ARG TOKEN\nENV TOKEN=$TOKEN\nRUN printf %s "$TOKEN" | sha256sum > /token.sha256\n'
    result = checks.token_build(text, lab)
    assert_fails(result, "can be read from the image")


def test_token_not_used_fails(lab):
    assert_fails(checks.token_build(TOKEN_HEAD + "RUN echo nothing > /token.sha256\n", lab), "does not hold")


def test_token_without_the_file_fails(lab):
    assert_fails(checks.token_build(TOKEN_HEAD + "RUN true\n", lab), "no /token.sha256")


# 6 distroless -------------------------------------------------------------------------------------------------
DISTROLESS_FINAL = """FROM scratch
COPY --from=build /rootfs /
COPY orders_service /app/orders_service
WORKDIR /app
ENV PATH=/opt/venv/bin ORDERS_HTTP_HOST=0.0.0.0
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=5s CMD ["python", "-m", "orders_service", "probe"]
CMD ["python", "-m", "orders_service"]
"""
ROOTFS = "COPY rootfs.py /src/\nRUN python3 /src/rootfs.py /rootfs /opt/venv\n"


def distroless(lab, final):
    build = ("FROM ${BASE} AS build\nRUN python3 -m venv /opt/venv\nCOPY pyproject.toml /src/\n" + lab.install_step
             + "\n" + ROOTFS)
    return containerfile(lab, final, build=build)


def test_distroless_reference_passes(lab):
    assert_passes(checks.distroless(distroless(lab, DISTROLESS_FINAL), lab))


def test_distroless_not_done(lab):
    assert_not_done(checks.distroless(..., lab))


def test_distroless_the_slim_image_is_not_from_scratch(lab):
    assert_fails(checks.distroless(containerfile(lab, FINAL), lab), "scratch")


def test_distroless_copying_the_whole_usr_keeps_the_os(lab):  # (`COPY --from=build / /` fails hadolint's DL3067)
    whole = DISTROLESS_FINAL.replace("COPY --from=build /rootfs /",
                                     "COPY --from=build /usr /usr\nCOPY --from=build /opt/venv /opt/venv")
    assert_fails(checks.distroless(distroless(lab, whole), lab), "not much was left out")


def test_distroless_with_a_shell_fails(lab):
    shell = DISTROLESS_FINAL.replace("COPY --from=build /rootfs /",
                                     "COPY --from=build /rootfs /\nCOPY --from=build /usr/bin/dash /bin/sh")
    assert_fails(checks.distroless(distroless(lab, shell), lab), "still has a shell")


def test_distroless_as_root_fails(lab):
    assert_fails(checks.distroless(distroless(lab, DISTROLESS_FINAL.replace("USER 10001:10001\n", "")), lab),
                 "no USER")


REQUIREMENTS = {
    "1": {
        "uses `FROM ${BASE}`": "test_containerfile_with_an_unpassed_base_fails",
        "hadolint reports nothing": "test_containerfile_with_a_hadolint_finding_fails",
        "two stages at least": "test_containerfile_single_stage_fails",
        "takes the venv with `COPY --from=...`": "test_containerfile_without_copy_from_fails",
        "the final stage runs as a non-root `USER`": ("test_containerfile_without_user_fails",
                                                      "test_containerfile_as_root_fails"),
        "has a `HEALTHCHECK`": ("test_containerfile_without_healthcheck_fails",
                                "test_containerfile_whose_healthcheck_never_passes_fails"),
        "an exec-form `CMD`": "test_containerfile_shell_form_cmd_fails_hadolint",
        "with the venv's `python` on `PATH`": "test_containerfile_without_the_venv_on_path_fails",
    },
    "2": {
        "a `.env` at the top and one inside `orders_service/`": ("test_dockerignore_empty_ships_the_secrets",
                                                                 "test_dockerignore_top_level_env_only_misses_the_nested_one",
                                                                 "test_dockerignore_reinclusion_after_the_env_rule_lets_it_back"),
        "a `.venv/` and a `.git/`": ("test_dockerignore_empty_ships_the_secrets",
                                     "test_dockerignore_forgetting_git_ships_it"),
        "everything the Containerfile copies": "test_dockerignore_everything_excluded_lacks_the_app",
    },
    "3": {
        "on SIGTERM, stops accepting new connections": ("test_drain_without_a_handler_is_killed",
                                                        "test_drain_that_keeps_accepting_fails"),
        "lets the requests in flight finish": "test_drain_exiting_in_the_handler_fails_the_in_flight_orders",
        "and exits 0": "test_drain_exiting_non_zero_fails",
        "it never waits longer than `settings.shutdown_grace_s`":
            "test_drain_without_a_bound_is_killed_in_the_slow_case",
    },
    "4": {
        "a read-only root filesystem": "test_hardened_writable_root_fails",
        "remove every Linux capability": ("test_hardened_keeping_capabilities_fails",
                                          "test_hardened_adding_a_capability_back_fails"),
        "forbid gaining privileges": "test_hardened_without_no_new_privileges_fails",
        "it keeps running as its non-root user": "test_hardened_as_root_fails",
    },
    "5": {
        "writes the SHA-256 of the token": ("test_token_not_used_fails", "test_token_without_the_file_fails"),
        "in no layer": "test_token_copied_then_removed_stays_in_a_layer",
        "not in the image's history": "test_token_as_build_argument_leaks_into_history",
        "not in its configuration": "test_token_in_env_leaks",
    },
    "6": {
        "the final stage starts `FROM scratch`": "test_distroless_the_slim_image_is_not_from_scratch",
        "under 70% of the reference image's size": "test_distroless_copying_the_whole_usr_keeps_the_os",
        "have no shell": "test_distroless_with_a_shell_fails",
        "still turn healthy as a non-root user": "test_distroless_as_root_fails",
    },
}
