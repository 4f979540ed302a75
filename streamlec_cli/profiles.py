"""Named cluster profiles: what an emulated cluster stands for, and how it is scaled down.

A profile emulates hosts of ``cores`` cores on links of ``link`` bits per second at
``1 / dilation`` of their speed: each emulated host gets ``cores / dilation`` of a core and
``link / dilation`` of link rate. CPU and network are slowed together, so the ratio between
computing and moving items, the thing replication and coding trade, stays that of the real
cluster (time dilation). ``lan-1g``: 0.2 of a core and 200 Mbit/s per host behave like 1-core
hosts on 1 Gbit/s Ethernet, five times slower.

The profile's name, what it stands for and its dilation go in the resolved spec and in
``meta.json`` (``cluster.profile``), and every figure names it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    #: The real link each host stands for, bits per second (None: links are not shaped).
    link: float | None
    #: How many times slower than the real cluster the emulation runs.
    dilation: float = 5.0
    #: Cores of each real host.
    cores: float = 1.0

    @property
    def label(self) -> str:
        """The profile's name, with its dilation where it is not the default one
        (``lan-1g``, ``lan-1g-d20``): runs at other speeds are kept apart."""
        if self.dilation == Profile.dilation:
            return self.name
        return f"{self.name}-d{self.dilation:g}"

    @property
    def emulated_link(self) -> float | None:
        return None if self.link is None else self.link / self.dilation

    @property
    def emulated_cpu(self) -> float:
        return self.cores / self.dilation

    @property
    def stands_for(self) -> str:
        link = "unshaped links" if self.link is None else f"{_rate(self.link)} links"
        return f"{self.cores:g}-core hosts on {link}"

    def describe(self) -> str:
        """One line for a figure: the profile, what it stands for and how."""
        link = "" if self.link is None else f", {_rate(self.emulated_link)}"
        return (
            f"{self.label}: {self.stands_for} at 1/{self.dilation:g} speed "
            f"({self.emulated_cpu:g} CPU{link} per host)"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.describe(),
            "stands_for": self.stands_for,
            "dilation": self.dilation,
            "real_link_bit_s": self.link,
            "real_cores": self.cores,
        }


def _rate(bits: float | None) -> str:
    assert bits is not None
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= size:
            return f"{bits / size:g} {unit}"
    return f"{bits:g} bit/s"


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("lan-10g", 10e9),
        Profile("lan-1g", 1e9),
        Profile("lan-100m", 100e6),
        Profile("cores-only", None),
    )
}


def cluster_line(meta: dict) -> str:
    """Where a run's workers ran: this machine, or the emulated cluster (its profile, or what
    each host was given) with what one link and one host measured."""
    cluster = meta.get("cluster") or {}
    if not cluster.get("emulated"):
        return "this machine"
    asked, measured = cluster.get("asked") or {}, cluster.get("measured") or {}
    profile = cluster.get("profile")
    if profile:  # as the run recorded it
        hosts = f"{asked.get('hosts')} hosts, " if asked.get("hosts") else ""
        what = f"emulated cluster of {hosts}{profile.get('description') or profile['name']}"
    else:
        parts = [f"{asked.get('hosts')} hosts"]
        if asked.get("cpu"):
            parts.append(f"{asked['cpu']:g} CPU")
        if asked.get("link_bit_s"):
            parts.append(f"{asked['link_bit_s'] / 1e6:g} Mbit/s")
        what = "emulated cluster of " + ", ".join(parts) + " each"
    got = []
    if measured.get("cpu"):
        got.append(f"{measured['cpu']:.2f} CPU")
    if measured.get("link_bit_s"):
        got.append(f"{measured['link_bit_s'] / 1e6:.0f} Mbit/s")
    return what + (f", measured {', '.join(got)}" if got else "")


SHARED = "shared cores"  # the label of runs whose workers all ran on this machine, unconfined


def cluster_label(meta: dict) -> str:
    """A short name for where a run's workers ran, to keep runs of other conditions apart:
    ``shared cores``, a profile's name, ``emulated`` with what each host was given, or the
    launcher across real hosts."""
    cluster = meta.get("cluster") or {}
    if cluster.get("emulated"):
        profile = cluster.get("profile")
        if profile:
            return str(profile.get("label") or profile["name"])
        asked = cluster.get("asked") or {}
        given = [f"{asked.get('hosts')} hosts"]
        given += [f"{asked['cpu']:g} CPU"] if asked.get("cpu") else []
        given += [f"{asked['link_bit_s'] / 1e6:g} Mbit/s"] if asked.get("link_bit_s") else []
        return f"emulated ({', '.join(given)})"
    if cluster.get("launcher") in ("ssh", "slurm"):
        return f"{cluster['launcher']} hosts"
    return SHARED
