# SPDX-License-Identifier: LGPL-2.1-or-later
"""presence.py PORT ENTRY_JSON DIR NAME

Holds two connections to our broker on 127.0.0.1:PORT with the same key: the member of the
config.json mesh entry ENTRY_JSON, each with a real signed hello (brokertest.Client) and no
session key of its own, so both are online as the member's key. Steps are driven through files
in DIR: it writes "up" once both are in; on "close-one" it closes the first, broadcasts
"one closed" from the second and writes "one-closed"; on "close-all" the second and writes "all-closed", then exits."""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker"))
from brokertest import Client  # noqa: E402


class Broker:
    """What brokertest.Client needs of a broker it did not start."""

    def __init__(self, port):
        self.port = port
        self.clients = []


async def wait_for(path):
    while not os.path.exists(path):
        await asyncio.sleep(0.05)


def touch(path):
    with open(path, "w"):
        pass


async def main(port, entry, d, name):
    broker = Broker(port)
    first = Client(broker, entry, session=False, display_name=name)
    second = Client(broker, entry, session=False, display_name=name)
    await first.hello()
    await second.hello()
    touch(os.path.join(d, "up"))
    await wait_for(os.path.join(d, "close-one"))
    await first.close()
    # A broadcast behind the close: once a daemon has it, it has handled the peer_left before it
    # (shorter than a MAC, so it can only be plaintext).
    await second.send("*", "one closed")
    touch(os.path.join(d, "one-closed"))
    await wait_for(os.path.join(d, "close-all"))
    await second.close()
    touch(os.path.join(d, "all-closed"))


asyncio.run(main(int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]))
