"""The readers' header parser gives what nats-py's own gives, for every kind of header block."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from shared.stream_read import ReaderClient

BLOCKS = [
    b"Nats-Msg-Id: intake:1\r\nKring-Origin: intake\r\nKring-Position: 1\r\n\r\n",
    b"Nats-Stream: KRING\r\nNats-Subject: kring.intake.x\r\nNats-Sequence: 7\r\n"
    b"Nats-Time-Stamp: 2026-12-01T09:39:47.771559236Z\r\nNats-Num-Pending: 0\r\n\r\n",
    b"Kring-Position: abc\r\n",
    b"NoSpace:value\r\nTabbed:\tvalue\t\r\n  Padded  :  x  \r\n",
    b"Bad Name: dropped\r\nBad\x1fName: dropped too\r\n\xffName: not ascii\r\n",
    b"Value: caf\xc3\xa9 and \xff broken\r\n",
    b": no name\r\nno colon at all\r\n\r\n",
    b"Twice: first\r\nTwice: second\r\n",
    b"Empty:\r\n",
    b"",
]


@pytest.mark.parametrize("block", BLOCKS)
def test_the_fast_header_parser_agrees_with_nats_py(block: bytes) -> None:
    assert ReaderClient._parse_header_lines(block) == Client._parse_header_lines(block)
