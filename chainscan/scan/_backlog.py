"""Back-pressure from the writer to new connections: finished results never pile up.

Theory of operation
-------------------
A finished result is worth something only once its line is in ``manifest.jsonl``: until then a
crash loses it. The scheduler hands results to the writer through a bounded channel; when the
writer is slower than the handshakes (analysis and files cost about as much CPU as a handshake,
and on a loaded machine either side can fall behind), the channel fills and the tasks that
finish next wait in ``send``. Admission alone (``4 x --concurrency`` targets) does not stop the
scan then: the targets already admitted keep connecting, so up to all of them can finish and
wait, and the writer's backlog (the time a crash would cost) grows to seconds.

So a connection does not start while any finished result waits for room (``blocked > 0``): the
gate (``_schedule._Limits``) treats it as one more limit, waited for once the global slot is
taken (so targets already queued for a slot wait too, in their order), and the target's
deadline is paused while it waits, as for any limit (the server is not to blame).
Connections already open run to their end; then the scan proceeds at the writer's pace. What
waits for the writer is bounded by the channel's size, the writer's batch and the connections
open when the channel filled, whatever the input's length; throughput is the slower side's,
as before, because the channel still holds a full buffer of work for the writer.
"""

from __future__ import annotations

from typing import TypeVar

import trio

__all__ = ["Backlog"]

_T = TypeVar("_T")


class Backlog:
    """Counts finished results waiting for room in the result channel; new connections wait
    (:meth:`wait_room`) while there are any."""

    __slots__ = ("_room", "blocked")

    def __init__(self) -> None:
        self.blocked = 0
        """Results waiting in ``send`` for room in the channel."""
        self._room = trio.lowlevel.ParkingLot()

    @property
    def full(self) -> bool:
        """A connection must wait (results are blocked, or others wait already: no jumping)."""
        return self.blocked > 0 or len(self._room) > 0

    async def wait_room(self) -> None:
        """Return once no result waits for room (at once, without a checkpoint, if none does)."""
        while self.blocked > 0:
            await self._room.park()

    async def send(self, send: trio.MemorySendChannel[_T], item: _T) -> None:
        """``send.send(item)``, counted while it waits; without a yield when there is room."""
        try:
            send.send_nowait(item)
            return
        except trio.WouldBlock:
            pass
        self.blocked += 1
        try:
            await send.send(item)
        finally:
            self.blocked -= 1
            if self.blocked == 0:
                self._room.unpark_all()
