"""The compose file's NATS nodes, run for real as three local nats-servers with its own config,
environment, health check and the authorization its one-shot renders: they form one JetStream
cluster that lets only Kring's identities in, the KRING stream gets its three replicas, and a
write is acknowledged with one node away."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nats.js.api import StreamInfo

from shared.bus import ensure_streams
from shared.subjects import STREAM
from tests.deploy.compose_processes import Topology, nats_only
from tests.harness import eventually


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Topology]:
    running = nats_only(tmp_path)
    running.up()
    yield running
    running.down()


async def _all_healthy(cluster: Topology) -> bool:
    nodes = [c for name in ("nats-1", "nats-2", "nats-3") for c in cluster.containers[name]]
    return all(await asyncio.gather(*(asyncio.to_thread(cluster.healthy, n) for n in nodes)))


async def test_the_three_nodes_form_a_closed_cluster_that_keeps_three_copies(
    cluster: Topology,
) -> None:
    for name in ("nats-1", "nats-2", "nats-3"):
        (node,) = cluster.containers[name]
        varz = httpx.get(f"http://127.0.0.1:{node.ports[8222]}/varz", timeout=5).json()
        assert varz["auth_required"] is True, name  # nobody without an identity
    client = await cluster.connect("intake", connect_timeout=2)
    try:
        js = client.jetstream(timeout=10)

        async def streams_made() -> bool:
            try:
                await ensure_streams(js, replicas=3)
                return True
            except Exception:  # JetStream's meta leader still being elected
                return False

        await eventually(
            streams_made, timeout=60, what="KRING made with three replicas", interval=0.5
        )
        info: StreamInfo = await js.stream_info(STREAM)
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        await js.publish("kring.intake.probe", b"1", headers={"Nats-Msg-Id": "probe:1"})

        # One node away (a node stopped for an upgrade): two of three still acknowledge a write.
        (away,) = cluster.containers[info.cluster.leader or "nats-1"]
        away.stop()

        async def acknowledged() -> bool:
            try:
                await js.publish("kring.intake.probe", b"2", headers={"Nats-Msg-Id": "probe:2"})
                return True
            except Exception:  # the stream's new leader still being elected
                return False

        await eventually(
            acknowledged, timeout=60, what="a write acked with one node away", interval=0.5
        )
        assert (await js.stream_info(STREAM)).state.messages == 2
        away.start()
        await eventually(
            lambda: _all_healthy(cluster), timeout=60, what="the node back", interval=0.3
        )
    finally:
        await client.close()
