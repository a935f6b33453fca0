"""Checks of labs/15_alerting_with_alertmanager.ipynb: a routing tree (amtool and live delivery), an inhibition
rule, a deduplicating webhook receiver, a burn-rate rule and a probe alert (promtool in simulated time), a live
blackbox probe, and a promtool test that tells a good burn-rate rule from broken ones.

Live checks run an Alertmanager of their own (not registered with Prometheus), so only the alerts a check posts
reach the learner's configuration."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from infracourse.checking import CheckFailed, exercise, expect, time_limit
from infracourse.checking.explain import one_line
from infracourse.clients import promql
from infracourse.clients.alertmanager import AlertmanagerError, amtool, now, routes_test
from infracourse.lessons.alert_inbox import Inbox
from infracourse.lessons.http_service import HttpService, Request, Response
from infracourse.lessons.private_alertmanager import PrivateAlertmanager

CALL_S = 5.0  # learner functions return data: they get a few seconds
DELIVERY_S = 6.0  # group_wait 1 s and a margin for a busy machine


def _yaml(value: object, what: str) -> str:
    try:
        return yaml.safe_dump(value, sort_keys=False)
    except yaml.YAMLError as exc:
        raise CheckFailed(f"{what} cannot be written as YAML: {one_line(exc)}",
                          hint="use plain dicts, lists, strings and numbers") from None


def _started(stack: ExitStack, config_text: str) -> PrivateAlertmanager:
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lab15-")))
    (folder / "alertmanager.yml").write_text(config_text)
    checked = amtool("check-config", str(folder / "alertmanager.yml"), check=False)
    expect("SUCCESS" in checked, f"Alertmanager rejects the configuration: {_last_error(checked)}",
           hint="compare with the configurations in the lesson (route, receivers, webhook_configs)")
    try:
        return stack.enter_context(PrivateAlertmanager(config_text))
    except AlertmanagerError as exc:
        raise CheckFailed(f"Alertmanager did not start with this configuration: {exc}"[:300]) from None


def _last_error(amtool_output: str) -> str:
    lines = [line.strip() for line in amtool_output.splitlines() if line.strip() and "Checking" not in line]
    return (lines[-1] if lines else amtool_output.strip())[:200]


def _delivered(inbox: Inbox) -> set[tuple[str, str]]:
    return {(d.channel, a["labels"]["alertname"]) for d in inbox.received() for a in d.body.get("alerts", [])}


# exercise 1 ----------------------------------------------------------------------------------------------
ROUTING_CASES = [  # labels -> the receivers they must reach
    ({"severity": "page"}, {"pager"}),
    ({"severity": "page", "team": "db"}, {"pager", "db-team"}),
    ({"severity": "ticket"}, {"tickets"}),
    ({"severity": "ticket", "team": "db"}, {"tickets"}),
    ({"severity": "info"}, {"tickets"}),
    ({}, {"tickets"}),
]
ROUTED_ALERTS = [("DiskFull", {"severity": "page", "instance": "web-1"}),
                 ("DiskFull", {"severity": "page", "instance": "web-2"}),
                 ("ReplicaLag", {"severity": "page", "team": "db"}),
                 ("CertExpiresSoon", {"severity": "ticket"}), ("Deployed", {})]


@exercise("1", "A routing tree for pages and tickets")
def routing_tree(routing) -> str:
    with ExitStack() as stack:
        inbox = stack.enter_context(Inbox())
        urls = {name: inbox.url(name) for name in ("pager", "tickets", "db-team")}
        config = time_limit.bounded(CALL_S, routing, urls["pager"], urls["tickets"], urls["db-team"],
                                    what="routing(...)")
        expect(isinstance(config, dict) and "route" in config and "receivers" in config,
               f"routing(...) returned {type(config).__name__}; return a dict with 'route' and 'receivers'",
               hint="the dict yaml.safe_load would make of an alertmanager.yml (no YAML text)")
        names = sorted(str(r.get("name")) for r in config["receivers"] if isinstance(r, dict))
        expect({"pager", "tickets", "db-team"} <= set(names), f"the receivers are named {names}",
               hint="name them pager, tickets and db-team")
        am = _started(stack, _yaml(config, "the configuration"))
        for labels, receivers in ROUTING_CASES:
            got = set(routes_test(am.config_file, labels))
            expect(got == receivers, f"amtool config routes test {labels or '(no labels)'} -> {sorted(got)}; "
                   f"expected {sorted(receivers)}", hint=_routing_hint(labels))
        am.post([{"labels": {"alertname": name, **labels}} for name, labels in ROUTED_ALERTS])
        expected = {("pager", "DiskFull"), ("pager", "ReplicaLag"), ("db-team", "ReplicaLag"),
                    ("tickets", "CertExpiresSoon"), ("tickets", "Deployed")}
        deadline = time.monotonic() + DELIVERY_S
        while not expected <= _delivered(inbox) and time.monotonic() < deadline:
            time.sleep(0.2)
        missing = sorted(expected - _delivered(inbox))
        expect(not missing, f"after {DELIVERY_S:g} s these (receiver, alert) deliveries had not arrived: {missing}",
               hint="each receiver's webhook_configs url is the one routing() got for it; group_wait: 1s")
        time.sleep(0.5)
        wrong = sorted(_delivered(inbox) - expected)
        expect(not wrong, f"notifications went where they should not: {wrong}",
               hint="check which url each receiver posts to")
        mixed = [sorted({a["labels"]["alertname"] for a in d.body["alerts"]}) for d in inbox.received()
                 if len({a["labels"]["alertname"] for a in d.body["alerts"]}) > 1]
        expect(not mixed, f"one notification carried several alert names: {mixed[0] if mixed else ''}",
               hint="group_by: [alertname] on the route")
        two = [len(d.body["alerts"]) for d in inbox.received("pager")
               if d.body["alerts"][0]["labels"]["alertname"] == "DiskFull"]
        expect(two and max(two) == 2, f"the two DiskFull alerts came in notifications of {two} alerts",
               hint="alerts with the same alertname belong in one notification: group_by: [alertname]")
    return f"{len(ROUTING_CASES)} label sets routed right by amtool, 5 deliveries live"


def _routing_hint(labels: dict[str, str]) -> str:
    if labels.get("team") == "db" and labels.get("severity") == "page":
        return "the pager route needs continue: true, and a second route matching severity=page and team=db"
    if labels.get("severity") == "page":
        return "a route with matchers ['severity=\"page\"'] to the pager receiver"
    return "make tickets the root route's receiver: alerts no child route matches go there"


# exercise 2 ----------------------------------------------------------------------------------------------
INHIBITION_ALERTS = [("ServiceDown", "api-1"), ("HighLatencyP95", "api-1"), ("HighLatencyP95", "api-2"),
                     ("ServiceDown", "api-3"), ("HighErrorRatio", "api-3")]


@exercise("2", "Inhibit latency while the service is down")
def inhibition(inhibit_rules) -> str:
    rules = time_limit.bounded(CALL_S, inhibit_rules, what="inhibit_rules()")
    expect(isinstance(rules, list) and rules and all(isinstance(r, dict) for r in rules),
           f"inhibit_rules() returned {type(rules).__name__}; return a list of inhibition rules (dicts)",
           hint="[{'source_matchers': [...], 'target_matchers': [...], 'equal': [...]}]")
    with ExitStack() as stack:
        inbox = stack.enter_context(Inbox())
        config = {"route": {"receiver": "hook", "group_by": ["alertname", "instance"], "group_wait": "1s",
                            "group_interval": "2s"},
                  "receivers": [{"name": "hook", "webhook_configs": [{"url": inbox.url("hook")}]}],
                  "inhibit_rules": rules}
        am = _started(stack, _yaml(config, "the inhibition rules"))
        am.post([{"labels": {"alertname": name, "instance": instance}} for name, instance in INHIBITION_ALERTS])
        time.sleep(3.5)
        state = {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"] for a in am.alerts()}
    suppressed = sorted(k for k, v in state.items() if v == "suppressed")
    expect(("HighLatencyP95", "api-1") in suppressed,
           "HighLatencyP95 of api-1 was not muted while ServiceDown of api-1 fired",
           hint="source_matchers: ServiceDown; target_matchers: HighLatencyP95")
    expect(("HighLatencyP95", "api-2") not in suppressed,
           "HighLatencyP95 of api-2 was muted although only api-1 is down",
           hint="equal: [instance] restricts the rule to alerts of the same instance")
    expect(not any(name == "ServiceDown" for name, _ in suppressed), "a ServiceDown alert was muted",
           hint="the outage is the page: ServiceDown is the source, never a target")
    expect(("HighErrorRatio", "api-3") not in suppressed, "HighErrorRatio was muted too",
           hint="target only HighLatencyP95: other alerts of a down instance still matter")
    expect(suppressed == [("HighLatencyP95", "api-1")], f"muted: {suppressed}")
    return "only api-1's latency alert was muted"


# exercise 3 ----------------------------------------------------------------------------------------------
def _payload(status: str, *alerts: tuple[str, str, str]) -> dict[str, Any]:
    """A webhook body: ALERTS are (fingerprint, status, startsAt)."""
    return {"version": "4", "status": status, "receiver": "pager", "groupLabels": {"alertname": "DiskFull"},
            "alerts": [{"status": s, "fingerprint": f, "startsAt": t, "labels": {"alertname": "DiskFull",
                        "instance": f"web-{f}"}, "annotations": {}} for f, s, t in alerts]}


def _deliver(receive, pages: list, body: dict[str, Any], step: str) -> None:
    request = Request("POST", "/alerts", {"Content-Type": "application/json"}, json.dumps(body).encode(),
                      route="/alerts")
    response = time_limit.bounded(1.0, receive, request, pages, what=f"receive() ({step})",
                                  hint="answer at once: Alertmanager times out and retries a slow receiver")
    expect(isinstance(response, Response), f"receive() returned {type(response).__name__} ({step})",
           hint="return a Response, e.g. Response(200, 'ok')")
    expect(200 <= response.status < 300, f"receive() answered {response.status} ({step})",
           hint="any non-2xx makes Alertmanager retry, which is how duplicates are born: acknowledge with 200")


@exercise("3", "A webhook receiver that deduplicates and acknowledges")
def webhook_receiver(receive) -> str:
    pages: list = []
    t1, t2 = "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z"
    _deliver(receive, pages, _payload("firing", ("a1", "firing", t1), ("b2", "firing", t1)), "first notification")
    expect(pages == [("a1", "firing", t1), ("b2", "firing", t1)],
           f"after two firing alerts, pages is {pages!r:.200}",
           hint="append (fingerprint, status, startsAt) for each alert of the body, in order")
    _deliver(receive, pages, _payload("firing", ("a1", "firing", t1), ("b2", "firing", t1)), "a repeat")
    expect(len(pages) == 2, f"a repeated notification added pages: {len(pages)} pages now",
           hint="skip an alert whose (fingerprint, status, startsAt) is already in pages")
    _deliver(receive, pages, _payload("resolved", ("a1", "resolved", t1)), "a resolved alert")
    expect(pages[2:] == [("a1", "resolved", t1)], "a resolved alert was not recorded once",
           hint="resolved is a status of its own: record it too")
    _deliver(receive, pages, _payload("firing", ("a1", "firing", t2)), "the same alert firing again later")
    expect(pages[3:] == [("a1", "firing", t2)], "an alert that fired again after resolving was not recorded",
           hint="a new startsAt is a new incident: include startsAt in what you compare")
    return _live_dedup(receive)


def _live_dedup(receive) -> str:
    pages: list = []
    with ExitStack() as stack:
        app = stack.enter_context(HttpService({"POST /alerts": lambda request: receive(request, pages)}))
        config = {"route": {"receiver": "hook", "group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"},
                  "receivers": [{"name": "hook", "webhook_configs": [{"url": f"{app.url}/alerts"}]}]}
        am = _started(stack, _yaml(config, "the check's configuration"))
        am.post([{"labels": {"alertname": "DiskFull", "instance": "web-9"}, "startsAt": now()}])
        time.sleep(5.5)
        metrics = am._call("GET", "/metrics")
    sent = _metric(metrics, 'alertmanager_notifications_total{integration="webhook"}')
    failed = _metric(metrics, 'alertmanager_notifications_failed_total{integration="webhook"}')
    expect(failed == 0, f"Alertmanager counted {failed:g} failed deliveries to receive()",
           hint="return Response(200, ...) for every notification, even one you ignore")
    expect(sent >= 2 and len(pages) == 1,
           f"Alertmanager sent {sent:g} notifications for one alert and {len(pages)} pages were recorded",
           hint="the repeats (repeat_interval) must not page again")
    return "repeats sent live, one page recorded, every notification acknowledged"


def _metric(text: str, name: str) -> float:
    found = re.search(re.escape(name) + r" (\S+)", text)
    return float(found.group(1)) if found else 0.0


# promtool ------------------------------------------------------------------------------------------------
def _rule_groups(text: object, what: str, group: str, alert: str) -> dict[str, Any]:
    expect(isinstance(text, str), f"{what} is {type(text).__name__}; write the rule file as a YAML string")
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CheckFailed(f"{what} is not valid YAML: {one_line(exc)}", hint="mind the indentation") from None
    groups = parsed.get("groups") if isinstance(parsed, dict) else None
    expect(isinstance(groups, list) and groups, f"{what} has no `groups:` list",
           hint="a rule file is groups: - name: ... rules: [...]")
    named = [g for g in groups if isinstance(g, dict) and g.get("name") == group]
    expect(named, f"{what} has no group named {group!r}", hint=f"groups: - name: {group}")
    rules = [r for r in named[0].get("rules") or [] if isinstance(r, dict) and r.get("alert") == alert]
    expect(len(rules) == 1, f"group {group} should have one alert named {alert}", hint=f"- alert: {alert}")
    with tempfile.TemporaryDirectory(prefix="lab15-rules-") as folder:
        path = Path(folder) / "rules.yml"
        path.write_text(text)
        checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True,
                                 timeout=30)
    expect(checked.returncode == 0, f"promtool check rules: {_promtool_error(checked.stdout + checked.stderr)}",
           hint="the message names the line; test the expression in the lesson's query cells first")
    return rules[0]


def _promtool_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip() and "Checking" not in line]
    return " ".join(lines)[:220] or "failed"


def _counter(per_step: list[float]) -> str:
    """promtool values of a counter that grows by PER_STEP[i] at step i."""
    total, values = 0.0, []
    for step in per_step:
        total += step
        values.append(f"{total:g}")
    return " ".join(values)


def promtool_run(rule_text: str, tests: list[dict[str, Any]], every: str = "1m") -> tuple[bool, str]:
    """Run promtool test rules on TESTS against RULE_TEXT, evaluating rules EVERY; (passed, output)."""
    with tempfile.TemporaryDirectory(prefix="lab15-promtool-") as folder:
        Path(folder, "rules.yml").write_text(rule_text)
        Path(folder, "test.yml").write_text(yaml.safe_dump(
            {"rule_files": ["rules.yml"], "evaluation_interval": every, "tests": tests}, sort_keys=False))
        done = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=folder, capture_output=True,
                              text=True, timeout=60)
    return done.returncode == 0, done.stdout + done.stderr


def firing(rule_text: str, alert: str, series: list[dict[str, str]], at: str, interval: str = "1m",
           labels: str = "") -> bool:
    """Whether ALERT fires at time AT (with LABELS among its labels) when RULE_TEXT sees SERIES."""
    selector = f'ALERTS{{alertname="{alert}", alertstate="firing"{labels}}}'
    case = {"interval": interval, "input_series": series,
            "promql_expr_test": [{"expr": f"count({selector}) > bool 0", "eval_time": at,
                                  "exp_samples": [{"labels": "{}", "value": 1}]}]}
    return promtool_run(rule_text, [case], every=interval)[0]


def count_firing(rule_text: str, alert: str, series: list[dict[str, str]], at: str) -> int:
    for n in range(0, 4):
        expr = f'count(ALERTS{{alertname="{alert}", alertstate="firing"}}) or vector(0)'
        case = {"interval": "1m", "input_series": series,
                "promql_expr_test": [{"expr": expr, "eval_time": at, "exp_samples": [{"labels": "{}", "value": n}]}]}
        if promtool_run(rule_text, [case])[0]:
            return n
    return 4


# exercise 4 ----------------------------------------------------------------------------------------------
FAST_BURN = "CheckoutFastBurn"
SUMMARY = "checkout is burning its error budget fast"
MINUTES = 300


def _errors(base: float, spikes: dict[tuple[int, int], float]) -> list[float]:
    rate = [base] * (MINUTES + 1)
    for (start, end), value in spikes.items():
        for minute in range(start, end):
            rate[minute] = value
    return rate


def checkout_series(error_ratio: list[float], endpoint: str = "/checkout", instance: str = "a",
                    namespace: str = "shop") -> list[dict[str, str]]:
    """1,000 requests a minute to ENDPOINT, of which ERROR_RATIO[minute] fail with 500."""
    labels = f'namespace="{namespace}", endpoint="{endpoint}", instance="{instance}"'
    ok, failed = _counter([1000 * (1 - e) for e in error_ratio]), _counter([1000 * e for e in error_ratio])
    return [{"series": f'http_requests_total{{{labels}, status="200"}}', "values": ok},
            {"series": f'http_requests_total{{{labels}, status="500"}}', "values": failed}]


INCIDENT = _errors(0.001, {(120, 160): 0.4})  # 40% errors for 40 minutes: 80x the 0.5% budget
BLIP = _errors(0.001, {(120, 125): 0.4})
STEADY_3_PERCENT = _errors(0.03, {})  # 6x burn: a slow-burn ticket, never a fast-burn page
INCIDENT_SERIES = checkout_series(INCIDENT, instance="a") + checkout_series(INCIDENT, instance="b")


@exercise("4", "A burn-rate rule for the checkout SLO")
def burn_rate_rule(rule_text) -> str:
    rule = _rule_groups(rule_text, "FAST_BURN", "checkout-slo", FAST_BURN)
    expect((rule.get("labels") or {}).get("severity") == "page", "the alert has no label severity: page",
           hint="labels: {severity: page}")
    expect((rule.get("annotations") or {}).get("summary") == SUMMARY, "its summary annotation is not the one asked for",
           hint=f"annotations: {{summary: {SUMMARY!r}}}")
    expect(firing(rule_text, FAST_BURN, INCIDENT_SERIES, "140m"),
           "it did not fire 20 minutes into a 40% error incident on /checkout",
           hint="error ratio = 5xx rate / all requests of endpoint=/checkout; threshold 14.4 * (1 - 0.995)")
    expect(firing(rule_text, FAST_BURN, INCIDENT_SERIES, "140m", labels=', severity="page", namespace="shop"'),
           "while firing, its labels lack severity=page or namespace", hint="sum by (namespace) (...)")
    expect(count_firing(rule_text, FAST_BURN, INCIDENT_SERIES, "140m") == 1,
           "it fired once per series (instance) instead of once per namespace",
           hint="aggregate numerator and denominator with sum by (namespace)")
    expect(not firing(rule_text, FAST_BURN, checkout_series(STEADY_3_PERCENT), "200m"),
           "it paged on a steady 3% error ratio (6x the budget: a slow burn, not a fast one)",
           hint="the budget of a 99.5% SLO is 0.005: 14.4 * 0.005 = 0.072")
    expect(not firing(rule_text, FAST_BURN, checkout_series(BLIP), "124m") and
           not firing(rule_text, FAST_BURN, checkout_series(BLIP), "127m"),
           "it paged for a 5-minute blip", hint="the 1h window must exceed 14.4x too: `and` both windows")
    expect(not firing(rule_text, FAST_BURN, INCIDENT_SERIES, "175m"),
           "it still fired 15 minutes after the incident ended",
           hint="the 5m window stops the alert soon after recovery: require both windows")
    other = checkout_series(_errors(0.5, {}), endpoint="/products") + checkout_series(_errors(0.001, {}))
    expect(not firing(rule_text, FAST_BURN, other, "200m"), "it paged for errors on /products",
           hint='select http_requests_total{endpoint="/checkout"} only')
    # in this replay both windows exceed 14.4x from minute 130 on
    expect(not firing(rule_text, FAST_BURN, INCIDENT_SERIES, "131m"),
           "it fired before the condition had held for 2 minutes", hint="for: 2m")
    expect(firing(rule_text, FAST_BURN, INCIDENT_SERIES, "133m"),
           "it fired too late: both windows burned from minute 130 and it had not fired by 133",
           hint="for: 2m (not longer)")
    return "paged 12 minutes into a 40% incident; quiet for a blip, a slow burn, /products and after recovery"


# exercise 5 ----------------------------------------------------------------------------------------------
PROBE_ALERT = "ReadinessProbeFailed"


def _probe_series(values: str, instance: str = "http://127.0.0.1:40000/health/ready") -> list[dict[str, str]]:
    return [{"series": f'probe_success{{job="course-probes", namespace="shop", instance="{instance}"}}',
             "values": values},
            {"series": 'up{job="course-apps", namespace="shop", instance="127.0.0.1:40000"}', "values": "1x20"}]


@exercise("5", "A probe of readiness and its alert")
def probe_and_alert(start_probe, rule_text, ready: dict, app_url: str, namespace: str) -> str:
    rule = _rule_groups(rule_text, "PROBE_RULE", "uptime", PROBE_ALERT)
    expect((rule.get("labels") or {}).get("severity") == "page", "the alert has no label severity: page",
           hint="labels: {severity: page}")
    expect("$labels.instance" in str((rule.get("annotations") or {}).get("summary", "")),
           "its summary annotation does not name the instance", hint="{{ $labels.instance }} in the summary")
    fails = "1 1 0 0 0 0 0 0 0 0 0 0"  # 15 s steps: failing from 30 s on
    expect(not firing(rule_text, PROBE_ALERT, _probe_series(fails), "45s", "15s"),
           "it fired after 15 seconds of failed probes", hint="for: 1m: one lost probe is not a page")
    expect(firing(rule_text, PROBE_ALERT, _probe_series(fails), "2m", "15s", labels=', severity="page"'),
           "it did not fire after 90 seconds of failed probes while `up` stayed 1",
           hint='probe_success{job="course-probes"} == 0, for: 1m (up sees /metrics, not what users see)')
    expect(not firing(rule_text, PROBE_ALERT, _probe_series("1x12"), "2m", "15s"),
           "it fired while every probe succeeded", hint="== 0, not == 1")
    time_limit.bounded(CALL_S, start_probe, what="start_probe()")
    selector = f'probe_success{{job="course-probes", namespace="{namespace}"}}'
    wanted = [f"{app_url}/health/ready"]

    def urls(found: list[dict[str, Any]]) -> list[str]:
        return sorted(s["metric"].get("instance", "") for s in found)

    try:  # a target registered before (another URL, an earlier run) takes a few seconds to disappear
        promql.wait_for(selector, until=lambda found: urls(found) == wanted, timeout_s=20)
    except TimeoutError:
        seen = urls(promql.query(selector))
        expect(seen, f"after 20 s Prometheus has no {selector}",
               hint="alerting_targets.register_probe(ns.slug, <the readiness URL>)")
        expect(False, f"the probe targets are {seen}", hint="probe the app's readiness URL: app.url + '/health/ready'")
    ready["ok"] = False
    try:
        promql.wait_for(f"{selector} == 0", timeout_s=20)
    except TimeoutError:
        raise CheckFailed("the app stopped being ready, and after 20 s probe_success was still not 0",
                          hint="the probe must ask /health/ready, the URL that fails") from None
    finally:
        ready["ok"] = True
    return "probe_success went to 0 when readiness failed; the rule fires after 1 minute of failures"


# exercise 6 ----------------------------------------------------------------------------------------------
def _window_rule(*windows: str) -> str:
    """A CheckoutFastBurn that looks at WINDOWS only: the broken rules a good test must catch."""
    ratio = ('(sum by (namespace) (rate(http_requests_total{{endpoint="/checkout", status=~"5.."}}[{w}]))'
             ' / sum by (namespace) (rate(http_requests_total{{endpoint="/checkout"}}[{w}]))) > (14.4 * 0.005)')
    rule = {"alert": FAST_BURN, "expr": " and ".join(ratio.format(w=w) for w in windows), "for": "2m",
            "labels": {"severity": "page"}, "annotations": {"summary": SUMMARY}}
    return yaml.safe_dump({"groups": [{"name": "checkout-slo", "rules": [rule]}]}, sort_keys=False)


BROKEN_RULES = {
    "a rule that looks at the last hour only": (_window_rule("1h"),
                                                "expect no alert a while after the incident ended"),
    "a rule that looks at the last 5 minutes only": (_window_rule("5m"),
                                                     "add a short blip of errors, and expect no alert during it"),
}


@exercise("6", "A promtool test that catches broken burn-rate rules", stretch=True)
def burn_rate_test(test_text, rule_text) -> str:
    expect(isinstance(test_text, str), f"FAST_BURN_TEST is {type(test_text).__name__}; write it as a YAML string")
    try:
        case = yaml.safe_load(test_text)
    except yaml.YAMLError as exc:
        raise CheckFailed(f"FAST_BURN_TEST is not valid YAML: {one_line(exc)}", hint="mind the indentation") from None
    expect(isinstance(case, dict) and case.get("input_series") and case.get("alert_rule_test"),
           "FAST_BURN_TEST should be one test case: a mapping with interval, input_series and alert_rule_test",
           hint="like one item under `tests:` in services/prometheus/tests/alerting_test.yml")
    expect(all(t.get("alertname") == FAST_BURN for t in case["alert_rule_test"] if isinstance(t, dict)),
           f"every alert_rule_test item should be about {FAST_BURN}", hint=f"alertname: {FAST_BURN}")
    try:
        burn_rate_rule.__wrapped__(rule_text)
    except CheckFailed as exc:
        raise CheckFailed(f"exercise 4's FAST_BURN must pass its check first ({exc})",
                          hint="your test runs against your rule") from None
    passed, output = promtool_run(rule_text, [case])
    expect(passed, f"against your FAST_BURN the test fails: {_promtool_error(output)}"[:320],
           hint="a test must pass against a correct rule: exp_labels need severity and namespace, and the summary")
    for name, (broken, hint) in BROKEN_RULES.items():
        expect(not promtool_run(broken, [case])[0], f"the test passes against {name}", hint=hint)
    return "passes against your rule, fails against both single-window rules"
