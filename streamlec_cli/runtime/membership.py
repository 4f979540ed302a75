"""Which incarnation of each worker slot is alive: the run's one failure detector.

A slot (``processor-3``) is filled by a sequence of incarnations, numbered by whoever places
them (the supervisor counts 1, 2, 3, ...). The membership is told three kinds of facts and
turns them into verdicts, each at most once per incarnation:

* ``placed``: a new incarnation was started in the slot (it becomes the current one);
* ``heard``: a message from an incarnation (hello, heartbeat);
* ``exited``: the launcher saw the incarnation's process end.

An incarnation fails when its process exited, or when it has been silent for longer than
``timeout`` after it was first heard from, or when it was placed with a deadline for its first
message (``expect_by``: a warm spare that should answer at once) and did not speak by then.
Silence is counted only over time the detector itself was running: when ``expire`` was not
called for a long stretch (the detecting process was stopped or starved), that stretch is
forgiven to everyone, so a paused detector accuses nobody of its own pause.

Sans-IO: no sockets, no processes, no clock of its own; ``now`` is always given.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Verdict:
    """Incarnation ``incarnation`` of ``worker`` has failed; ``how`` says why."""

    worker: str
    incarnation: int
    how: str
    silent: bool  # True: decided on silence (its process may still run: fence it)


@dataclass
class _Slot:
    incarnation: int
    last_heard: float | None = None  # None until its first message
    expect_by: float | None = None  # its first message is due by then (None: no deadline)
    failed: set[int] = field(default_factory=set)


class Membership:
    """Incarnations per slot and their failures; see the module docstring."""

    def __init__(self, timeout: float, pause: float | None = None) -> None:
        self.timeout = timeout
        # A gap between two ``expire`` calls longer than this is the detector's own pause.
        self.pause = timeout / 2 if pause is None else pause
        self.slots: dict[str, _Slot] = {}
        self._last_expire: float | None = None

    def placed(self, worker: str, incarnation: int, expect_by: float | None = None) -> None:
        """A new incarnation fills ``worker``'s slot; the earlier one no longer counts.
        ``expect_by``: the time its first message must come by, else it fails."""
        slot = self.slots.get(worker)
        if slot is None:
            self.slots[worker] = _Slot(incarnation, expect_by=expect_by)
            return
        slot.incarnation = incarnation
        slot.last_heard = None
        slot.expect_by = expect_by

    def forget(self, worker: str) -> None:
        """The slot no longer exists (a spare that took a processor's slot, or was retired)."""
        self.slots.pop(worker, None)

    def heard(self, worker: str, incarnation: int, now: float) -> None:
        """A message from this incarnation (ignored unless it is the current one)."""
        slot = self.slots.get(worker)
        if slot is not None and slot.incarnation == incarnation and incarnation not in slot.failed:
            slot.last_heard = now

    def exited(self, worker: str, incarnation: int, how: str) -> Verdict | None:
        """The launcher saw this incarnation end: a verdict unless it was already given."""
        slot = self.slots.get(worker)
        if slot is None or incarnation in slot.failed:
            return None
        slot.failed.add(incarnation)
        return Verdict(worker, incarnation, how, silent=False)

    def expire(self, now: float) -> list[Verdict]:
        """Verdicts on every current incarnation silent past the timeout."""
        if self._last_expire is not None and now - self._last_expire > self.pause:
            gap = now - self._last_expire  # we were not running: nobody was watched
            for slot in self.slots.values():
                if slot.last_heard is not None:
                    slot.last_heard += gap
                if slot.expect_by is not None:
                    slot.expect_by += gap
        self._last_expire = now
        verdicts = []
        for worker, slot in self.slots.items():
            if slot.incarnation in slot.failed:
                continue
            if slot.last_heard is None:
                if slot.expect_by is not None and now > slot.expect_by:
                    slot.failed.add(slot.incarnation)
                    how = "no hello by its deadline since it was placed"
                    verdicts.append(Verdict(worker, slot.incarnation, how, silent=True))
                continue
            silent = now - slot.last_heard
            if silent > self.timeout:
                slot.failed.add(slot.incarnation)
                how = f"no heartbeat for {silent:.2f} s (timeout {self.timeout:g} s)"
                verdicts.append(Verdict(worker, slot.incarnation, how, silent=True))
        return verdicts

    def current(self, worker: str) -> int | None:
        """The incarnation now filling ``worker``'s slot (None: never placed)."""
        slot = self.slots.get(worker)
        return None if slot is None else slot.incarnation

    def heard_from(self, worker: str) -> bool:
        """Whether the slot's current incarnation has not failed and has spoken."""
        slot = self.slots.get(worker)
        return self.alive(worker) and slot is not None and slot.last_heard is not None

    def whole(self) -> bool:
        """Whether every slot's current incarnation is alive and has been heard from: the
        group is back to the full tolerance of its scheme."""
        return all(self.heard_from(worker) for worker in self.slots)

    def alive(self, worker: str) -> bool:
        """Whether the slot's current incarnation has not failed."""
        slot = self.slots.get(worker)
        return slot is not None and slot.incarnation not in slot.failed

    def has_failed(self, worker: str, incarnation: int) -> bool:
        slot = self.slots.get(worker)
        return slot is not None and incarnation in slot.failed
