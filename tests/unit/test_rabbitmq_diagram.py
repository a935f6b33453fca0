import matplotlib

matplotlib.use("Agg")

from infracourse.lessons import rabbitmq_diagram  # noqa: E402


def test_labels_show_routing_keys_or_header_arguments():
    assert rabbitmq_diagram.binding_label({"routing_key": "order.#", "arguments": {}}) == "order.#"
    assert rabbitmq_diagram.binding_label({"routing_key": "", "arguments": {}}) == "(any)"
    label = rabbitmq_diagram.binding_label({"routing_key": "", "arguments": {"x-match": "all", "format": "pdf"}})
    assert label == "format=pdf, x-match=all"


def test_draws_one_arrow_per_binding_without_the_namespace():
    bindings = [
        {"source": "ns.jobs", "destination": "ns.thumbnails", "routing_key": "image.resize", "arguments": {}},
        {"source": "ns.jobs", "destination": "ns.emails", "routing_key": "email.send", "arguments": {}},
        {"source": "ns.all", "destination": "ns.emails", "routing_key": "", "arguments": {}},
    ]
    fig = rabbitmq_diagram.draw_bindings(bindings, {"ns.jobs": "direct", "ns.all": "fanout"}, strip="ns.")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "jobs\n[direct]" in texts and "emails" in texts and "image.resize" in texts
    assert not any(t.startswith("ns.") for t in texts)
    assert sum(1 for child in fig.axes[0].get_children() if type(child).__name__ == "Annotation") == 3
