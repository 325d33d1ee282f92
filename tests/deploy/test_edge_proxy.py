"""compose's edge proxy (deploy/compose/edge.conf), parsed by NGINX's own parser (crossplane,
strict: every directive known, in a context that allows it, with the arguments it takes)."""

from __future__ import annotations

import crossplane

from tests.deploy.files import ROOT, compose, environment_of

EDGE = ROOT / "deploy" / "compose" / "edge.conf"


def _parse(path: str) -> dict:
    return crossplane.parse(path, strict=True, check_ctx=True, check_args=True, single=True)


def test_the_edge_config_parses_strictly() -> None:
    parsed = _parse(str(EDGE))
    assert parsed["errors"] == [], parsed["errors"]


def test_the_parser_would_catch_a_mistake(tmp_path) -> None:
    broken = tmp_path / "edge.conf"
    broken.write_text(
        EDGE.read_text().replace("proxy_next_upstream_tries", "proxy_next_upstream_trys")
    )
    assert _parse(str(broken))["errors"]


def test_every_published_port_is_a_server_that_proxies_to_its_service() -> None:
    (config,) = _parse(str(EDGE))["config"]
    (http,) = [d for d in config["parsed"] if d["directive"] == "http"]
    servers = [d for d in http["block"] if d["directive"] == "server"]
    proxied = {}
    for server in servers:
        listen = next(d["args"][0] for d in server["block"] if d["directive"] == "listen")
        (location,) = [d for d in server["block"] if d["directive"] == "location"]
        sets = {d["args"][0]: d["args"][1] for d in location["block"] if d["directive"] == "set"}
        passes = [d["args"][0] for d in location["block"] if d["directive"] == "proxy_pass"]
        if sets:
            proxied[listen] = next(iter(sets.values()))
        elif passes and passes[0].startswith("http://127.0.0.1:"):
            proxied[listen] = passes[0].removeprefix("http://")
    published = [p.split(":")[2] for p in compose()["services"]["edge"]["ports"]]
    assert sorted(proxied) == sorted(published)
    services = compose()["services"]
    # In the edge's own network namespace, the loopback is the services that share it.
    sharing = [n for n, s in services.items() if s.get("network_mode") == "service:edge"]
    for target in proxied.values():
        host, port = target.split(":")
        if host == "127.0.0.1":
            assert [
                n for n in sharing if environment_of(services[n]).get("KRING_CONSOLE_PORT") == port
            ] == ["console"], target
        else:
            assert host in services, target
    resolver = next(d for d in http["block"] if d["directive"] == "resolver")
    assert resolver["args"][0] == "127.0.0.11"  # compose's DNS, asked again every few seconds
