"""Lab 15 checks fail on plausible wrong answers, with a message that helps, and pass the right one."""

from __future__ import annotations

import time

import pytest
from verdicts import assert_fails, assert_not_done, assert_passes

from infracourse import notebook
from infracourse.checks import lab15 as checks
from infracourse.lessons.http_service import HttpService, Response
from infracourse.services import alerting_targets

REQUIREMENTS = {
    "1": {
        "with three receivers named `pager`, `tickets` and `db-team`": "test_routing_misnamed_receiver_fails",
        "each a webhook to its URL": "test_routing_swapped_urls_fails",
        'Alerts with `severity="page"` go to `pager`': "test_routing_pages_to_tickets_fails",
        'pages that also carry `team="db"` go to `db-team` as well': [
            "test_routing_without_continue_fails", "test_routing_db_route_first_without_continue_fails"],
        "Everything else (tickets, info, alerts without a severity) goes to `tickets`": [
            "test_routing_default_pager_fails", "test_routing_db_tickets_to_db_team_fails"],
        "Group notifications by `alertname`": "test_routing_without_group_by_fails",
        "with a `group_wait` of 1 s": "test_routing_default_group_wait_fails",
        "return an Alertmanager configuration (a dict": "test_routing_yaml_text_fails",
    },
    "2": {
        "`HighLatencyP95` of the same `instance` is muted": "test_inhibition_wrong_target_fails",
        "Latency alerts of other instances": "test_inhibition_without_equal_fails",
        "other alerts of the down instance": "test_inhibition_every_alert_fails",
        "and `ServiceDown` itself must still be delivered": "test_inhibition_reversed_fails",
        "return Alertmanager's `inhibit_rules` list": "test_inhibition_single_dict_fails",
    },
    "3": {
        "append `(fingerprint, status, startsAt)` to the list `pages`": "test_receiver_by_alertname_fails",
        "unless that same triple is already there": "test_receiver_without_dedup_fails",
        "`(fingerprint, status, startsAt)`": ["test_receiver_ignoring_resolved_fails",
                                              "test_receiver_without_starts_at_fails"],
        "acknowledge at once with a 2xx `Response`": ["test_receiver_answering_500_fails",
                                                      "test_receiver_returning_none_fails",
                                                      "test_receiver_slow_fails"],
    },
    "4": {
        "a group `checkout-slo` holding one alert `CheckoutFastBurn`": "test_burn_wrong_group_fails",
        "summed `by (namespace)`": ["test_burn_per_instance_fails", "test_burn_sum_without_by_fails"],
        "exceeds 14.4 times the error budget": "test_burn_wrong_budget_fails",
        "over both the last 1 hour and the last 5 minutes": ["test_burn_one_hour_only_fails",
                                                             "test_burn_five_minutes_only_fails"],
        "`for: 2m`": ["test_burn_without_for_fails", "test_burn_for_too_long_fails"],
        "label `severity: page`": "test_burn_without_severity_fails",
        "annotation `summary: checkout is burning its error budget fast`": "test_burn_other_summary_fails",
        'of `http_requests_total{endpoint="/checkout"}`': "test_burn_all_endpoints_fails",
        "the YAML text of a rule file": "test_burn_bad_yaml_fails",
    },
    "5": {
        "register a blackbox probe of the app's readiness URL": "test_probe_of_another_url_fails",
        "with `alerting_targets.register_probe`": "test_probe_never_registered_fails",
        "a group `uptime` holding one alert `ReadinessProbeFailed`": "test_probe_rule_wrong_name_fails",
        "has been 0 for 1 minute": ["test_probe_rule_without_for_fails", "test_probe_rule_inverted_fails"],
        "`probe_success` of the job `course-probes`": "test_probe_rule_on_up_fails",
        "with the label `severity: page`": "test_probe_rule_without_severity_fails",
        "a `summary` annotation that names the probed instance": "test_probe_rule_summary_without_instance_fails",
    },
    "6": {
        "It must pass against your `FAST_BURN`": "test_burn_test_failing_the_good_rule_fails",
        "fail against a rule that looks only at the last hour": "test_burn_test_without_recovery_fails",
        "against one that looks only at the last 5 minutes": "test_burn_test_without_blip_fails",
        "with `interval`, `input_series` and `alert_rule_test`": "test_burn_test_without_alert_rule_test_fails",
    },
}


def _webhook(name, url):
    return {"name": name, "webhook_configs": [{"url": url}]}


def routing_reference(pager_url, tickets_url, db_url, *, routes=None, receiver="tickets", group_by=("alertname",),
                      group_wait="1s", names=("pager", "tickets", "db-team")):
    return {
        "route": {"receiver": receiver, "group_by": list(group_by), "group_wait": group_wait, "group_interval": "2s",
                  "routes": routes if routes is not None else [
                      {"matchers": ['severity="page"'], "receiver": "pager", "continue": True},
                      {"matchers": ['severity="page"', 'team="db"'], "receiver": "db-team"}]},
        "receivers": [_webhook(names[0], pager_url), _webhook(names[1], tickets_url), _webhook(names[2], db_url)],
    }


@pytest.fixture(autouse=True, scope="module")
def services():
    notebook.require("prometheus", "alertmanager", "blackbox")


# exercise 1 ---------------------------------------------------------------------------------------------
def test_routing_reference_passes():
    assert_passes(checks.routing_tree(routing_reference))


def test_routing_stub_is_not_done():
    def stub(pager_url, tickets_url, db_url):
        raise NotImplementedError

    assert_not_done(checks.routing_tree(stub))


def test_routing_yaml_text_fails():
    import yaml

    assert_fails(checks.routing_tree(lambda p, t, d: yaml.safe_dump(routing_reference(p, t, d))), "return a dict")


def test_routing_misnamed_receiver_fails():
    def routing(p, t, d):
        config = routing_reference(p, t, d, names=("pager", "tickets", "db"))
        config["route"]["routes"][1]["receiver"] = "db"
        return config

    assert_fails(checks.routing_tree(routing), "receivers are named", in_hint=("db-team",))


def test_routing_swapped_urls_fails():
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(t, p, d)), "deliveries had not arrived")


def test_routing_pages_to_tickets_fails():
    routes = [{"matchers": ['severity="page"', 'team="db"'], "receiver": "db-team"}]
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(p, t, d, routes=routes)), "severity")


def test_routing_without_continue_fails():
    routes = [{"matchers": ['severity="page"'], "receiver": "pager"},
              {"matchers": ['severity="page"', 'team="db"'], "receiver": "db-team"}]
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(p, t, d, routes=routes)),
                 "db-team", in_hint=("continue: true",))


def test_routing_db_route_first_without_continue_fails():
    routes = [{"matchers": ['severity="page"', 'team="db"'], "receiver": "db-team"},
              {"matchers": ['severity="page"'], "receiver": "pager"}]
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(p, t, d, routes=routes)), "pager")


def test_routing_default_pager_fails():
    routes = [{"matchers": ['severity="page"'], "receiver": "pager", "continue": True},
              {"matchers": ['severity="page"', 'team="db"'], "receiver": "db-team"},
              {"matchers": ['severity="ticket"'], "receiver": "tickets"}]
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(p, t, d, routes=routes, receiver="pager")),
                 "expected ['tickets']")


def test_routing_db_tickets_to_db_team_fails():
    routes = [{"matchers": ['severity="page"'], "receiver": "pager", "continue": True},
              {"matchers": ['team="db"'], "receiver": "db-team"}]
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(p, t, d, routes=routes)), "ticket")


def test_routing_without_group_by_fails():
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(p, t, d, group_by=())),
                 "several alert names", in_hint=("group_by",))


def test_routing_default_group_wait_fails():
    assert_fails(checks.routing_tree(lambda p, t, d: routing_reference(p, t, d, group_wait="30s")),
                 "had not arrived", in_hint=("group_wait",))


# exercise 2 ---------------------------------------------------------------------------------------------
def _rule(source, target, equal=("instance",)):
    return [{"source_matchers": [source], "target_matchers": [target], "equal": list(equal)}]


def test_inhibition_reference_passes():
    assert_passes(checks.inhibition(lambda: _rule('alertname="ServiceDown"', 'alertname="HighLatencyP95"')))


def test_inhibition_stub_is_not_done():
    def stub():
        raise NotImplementedError

    assert_not_done(checks.inhibition(stub))


def test_inhibition_single_dict_fails():
    assert_fails(checks.inhibition(lambda: _rule('alertname="ServiceDown"', 'alertname="HighLatencyP95"')[0]),
                 "return a list")


def test_inhibition_without_equal_fails():
    assert_fails(checks.inhibition(lambda: _rule('alertname="ServiceDown"', 'alertname="HighLatencyP95"', ())),
                 "api-2", in_hint=("equal",))


def test_inhibition_reversed_fails():
    assert_fails(checks.inhibition(lambda: _rule('alertname="HighLatencyP95"', 'alertname="ServiceDown"')),
                 "was not muted")


def test_inhibition_every_alert_fails():
    assert_fails(checks.inhibition(lambda: _rule('alertname="ServiceDown"', 'alertname=~".+"')), "muted")


def test_inhibition_wrong_target_fails():
    assert_fails(checks.inhibition(lambda: _rule('alertname="ServiceDown"', 'alertname="HighLatency"')),
                 "not muted")


# exercise 3 ---------------------------------------------------------------------------------------------
def receive_reference(request, pages):
    for alert in request.json()["alerts"]:
        key = (alert["fingerprint"], alert["status"], alert["startsAt"])
        if key not in pages:
            pages.append(key)
    return Response(200, "ok")


def test_receiver_reference_passes():
    assert_passes(checks.webhook_receiver(receive_reference))


def test_receiver_stub_is_not_done():
    def stub(request, pages):
        raise NotImplementedError

    assert_not_done(checks.webhook_receiver(stub))


def test_receiver_without_dedup_fails():
    def receive(request, pages):
        pages.extend((a["fingerprint"], a["status"], a["startsAt"]) for a in request.json()["alerts"])
        return Response(200, "ok")

    assert_fails(checks.webhook_receiver(receive), "repeated notification")


def test_receiver_by_alertname_fails():
    def receive(request, pages):
        for alert in request.json()["alerts"]:
            key = (alert["labels"]["alertname"], alert["status"], alert["startsAt"])
            if key not in pages:
                pages.append(key)
        return Response(200, "ok")

    assert_fails(checks.webhook_receiver(receive), "after two firing alerts")


def test_receiver_ignoring_resolved_fails():
    def receive(request, pages):
        for alert in request.json()["alerts"]:
            key = (alert["fingerprint"], alert["status"], alert["startsAt"])
            if alert["status"] == "firing" and key not in pages:
                pages.append(key)
        return Response(200, "ok")

    assert_fails(checks.webhook_receiver(receive), "resolved")


def test_receiver_without_starts_at_fails():
    def receive(request, pages):
        for alert in request.json()["alerts"]:
            if not any(p[:2] == (alert["fingerprint"], alert["status"]) for p in pages):
                pages.append((alert["fingerprint"], alert["status"], alert["startsAt"]))
        return Response(200, "ok")

    assert_fails(checks.webhook_receiver(receive), "fired again", in_hint=("startsAt",))


def test_receiver_answering_500_fails():
    def receive(request, pages):
        receive_reference(request, pages)
        return Response(500, "stored")

    assert_fails(checks.webhook_receiver(receive), "answered 500")


def test_receiver_returning_none_fails():
    def receive(request, pages):
        receive_reference(request, pages)

    assert_fails(checks.webhook_receiver(receive), "returned NoneType")


def test_receiver_slow_fails():
    def receive(request, pages):
        time.sleep(3)  # paging someone synchronously before answering
        return receive_reference(request, pages)

    assert_fails(checks.webhook_receiver(receive), "did not return within")


# exercise 4 ---------------------------------------------------------------------------------------------
def _ratio(window, selector='endpoint="/checkout"', by="sum by (namespace) "):
    errors = f'http_requests_total{{{selector}{", " if selector else ""}status=~"5.."}}'
    return f"({by}(rate({errors}[{window}])) / {by}(rate(http_requests_total{{{selector}}}[{window}])))"


def burn_rule(expr=None, *, budget="0.005", windows=("1h", "5m"), for_="2m", labels="severity: page",
              summary=checks.SUMMARY, group="checkout-slo", selector='endpoint="/checkout"',
              by="sum by (namespace) "):
    expr = expr or " and ".join(f"{_ratio(w, selector, by)} > (14.4 * {budget})" for w in windows)
    return f"""
groups:
  - name: {group}
    rules:
      - alert: CheckoutFastBurn
        expr: '{expr}'
        for: {for_}
        labels: {{{labels}}}
        annotations:
          summary: "{summary}"
"""


def test_burn_reference_passes():
    assert_passes(checks.burn_rate_rule(burn_rule()))


def test_burn_stub_is_not_done():
    assert_not_done(checks.burn_rate_rule(...))


def test_burn_bad_yaml_fails():
    assert_fails(checks.burn_rate_rule("groups:\n  - name: checkout-slo\n   rules: ["), "not valid YAML")


def test_burn_wrong_group_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(group="slo")), "no group named 'checkout-slo'")


def test_burn_without_severity_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(labels="team: web")), "severity: page")


def test_burn_other_summary_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(summary="checkout SLO burn")), "summary")


def test_burn_one_hour_only_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(windows=("1h",))), "after the incident ended",
                 in_hint=("5m window",))


def test_burn_five_minutes_only_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(windows=("5m",))), "blip")


def test_burn_wrong_budget_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(budget="0.001")), "steady 3%", in_hint=("0.005",))


def test_burn_all_endpoints_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(selector="")), "/products")


def test_burn_per_instance_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(by="sum by (namespace, instance) ")), "once per series",
                 in_hint=("sum by (namespace)",))


def test_burn_sum_without_by_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(by="sum ")), "namespace", in_hint=("sum by (namespace)",))


def test_burn_without_for_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(for_="0s")), "before the condition had held")


def test_burn_for_too_long_fails():
    assert_fails(checks.burn_rate_rule(burn_rule(for_="5m")), "too late")


# exercise 5 ---------------------------------------------------------------------------------------------
def probe_rule(expr='probe_success{job="course-probes"} == 0', *, for_="1m", name="ReadinessProbeFailed",
               labels="severity: page", summary="{{ $labels.instance }} is not ready"):
    return f"""
groups:
  - name: uptime
    rules:
      - alert: {name}
        expr: '{expr}'
        for: {for_}
        labels: {{{labels}}}
        annotations:
          summary: "{summary}"
"""


NAMESPACE = "alert15_wrong"


@pytest.fixture
def probed_app():
    ready = {"ok": True}
    app = HttpService({"GET /health/ready": lambda request: Response(200 if ready["ok"] else 503, "ready?"),
                       "GET /health/live": lambda request: Response(200, "alive")}).start()
    yield app, ready
    alerting_targets.unregister(NAMESPACE)
    app.close()


def _probe_check(probed_app, start_probe, rule=None):
    app, ready = probed_app
    return checks.probe_and_alert(start_probe, rule or probe_rule(), ready, app.url, NAMESPACE)


def test_probe_reference_passes(probed_app):
    app, _ = probed_app
    ready_url = app.url + "/health/ready"
    assert_passes(_probe_check(probed_app, lambda: alerting_targets.register_probe(NAMESPACE, ready_url)))


def test_probe_stub_is_not_done(probed_app):
    assert_not_done(checks.probe_and_alert(lambda: None, ..., {"ok": True}, probed_app[0].url, NAMESPACE))


def test_probe_of_another_url_fails(probed_app):
    live_url = probed_app[0].url + "/health/live"
    assert_fails(_probe_check(probed_app, lambda: alerting_targets.register_probe(NAMESPACE, live_url)),
                 "probe targets are", in_hint=("/health/ready",))


def test_probe_never_registered_fails(probed_app):
    assert_fails(_probe_check(probed_app, lambda: None), "has no probe_success", in_hint=("register_probe",))


def test_probe_rule_wrong_name_fails(probed_app):
    assert_fails(_probe_check(probed_app, lambda: None, probe_rule(name="ProbeFailed")), "ReadinessProbeFailed")


def test_probe_rule_without_for_fails(probed_app):
    assert_fails(_probe_check(probed_app, lambda: None, probe_rule(for_="0s")), "15 seconds", in_hint=("for: 1m",))


def test_probe_rule_inverted_fails(probed_app):
    assert_fails(_probe_check(probed_app, lambda: None, probe_rule('probe_success{job="course-probes"} == 1')),
                 "did not fire")


def test_probe_rule_on_up_fails(probed_app):
    assert_fails(_probe_check(probed_app, lambda: None, probe_rule('up{job="course-apps"} == 0')), "up` stayed 1")


def test_probe_rule_without_severity_fails(probed_app):
    assert_fails(_probe_check(probed_app, lambda: None, probe_rule(labels="team: web")), "severity")


def test_probe_rule_summary_without_instance_fails(probed_app):
    assert_fails(_probe_check(probed_app, lambda: None, probe_rule(summary="not ready")), "name the instance")


# exercise 6 ---------------------------------------------------------------------------------------------
BLIP_AND_INCIDENT = """
interval: 1m
input_series:
  - series: 'http_requests_total{namespace="shop", endpoint="/checkout", status="200"}'
    values: '0+999x300'
  - series: 'http_requests_total{namespace="shop", endpoint="/checkout", status="500"}'
    values: '0+1x60 460+400x4 2061+1x54 2515+400x39 18116+1x139'
alert_rule_test:
"""
DURING_BLIP = """
  - eval_time: 64m
    alertname: CheckoutFastBurn
    exp_alerts: []
"""
DURING_INCIDENT = f"""
  - eval_time: 140m
    alertname: CheckoutFastBurn
    exp_alerts:
      - exp_labels: {{severity: page, namespace: shop}}
        exp_annotations: {{summary: {checks.SUMMARY}}}
"""
AFTER_RECOVERY = """
  - eval_time: 185m
    alertname: CheckoutFastBurn
    exp_alerts: []
"""


def test_burn_test_reference_passes():
    assert_passes(checks.burn_rate_test(BLIP_AND_INCIDENT + DURING_BLIP + DURING_INCIDENT + AFTER_RECOVERY,
                                        burn_rule()))


def test_burn_test_stub_is_not_done():
    assert_not_done(checks.burn_rate_test(..., burn_rule()))


def test_burn_test_without_recovery_fails():
    assert_fails(checks.burn_rate_test(BLIP_AND_INCIDENT + DURING_BLIP + DURING_INCIDENT, burn_rule()),
                 "last hour only")


def test_burn_test_without_blip_fails():
    assert_fails(checks.burn_rate_test(BLIP_AND_INCIDENT + DURING_INCIDENT + AFTER_RECOVERY, burn_rule()),
                 "5 minutes only", in_hint=("blip",))


def test_burn_test_failing_the_good_rule_fails():
    wrong_labels = DURING_INCIDENT.replace("severity: page", "severity: ticket")
    assert_fails(checks.burn_rate_test(BLIP_AND_INCIDENT + DURING_BLIP + wrong_labels + AFTER_RECOVERY, burn_rule()),
                 "against your FAST_BURN the test fails")


def test_burn_test_without_alert_rule_test_fails():
    assert_fails(checks.burn_rate_test(BLIP_AND_INCIDENT.replace("alert_rule_test:\n", ""), burn_rule()),
                 "one test case")
