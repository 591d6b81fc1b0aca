"""The registry of well-known processes, looked up by name and semantic version.

Processes find each other through it instead of passing pids around, and a client can ask for
"the newest ``counter`` compatible with 1.1" while servers are upgraded. It is plain
data-structure logic, with no I/O and no locking, so that it can later run in its own process
behind message frames.
"""

from __future__ import annotations

from semantic_version import SimpleSpec, Version  # type: ignore[import-untyped,unused-ignore]

from lunatic_mp.errors import InvalidNameError

_OPERATORS = "^~=<>!*"
_ZERO = Version("0.0.0")
EXACT = "\x00"
"""Marks a name as opaque (see :func:`exact`): never parsed for a version."""


def exact(name: str) -> str:
    """The registry key of ``name`` taken as an opaque string, as lunatic's own registry functions
    take it (lunatic-rs names processes ``crate@version::module::Ident``).

    The key ``"\\x00" + name`` is stored as the unversioned entry of the whole name: a plain name
    without ``@`` is the same entry as ``put("counter")`` from the host; a lookup of it finds only
    that entry, never a version of it.
    """
    return EXACT + name


MAX_NAME_LENGTH = 1024
"""Bytes (UTF-8) of the longest name, with its version or requirement, that the registry takes:
a name is kept as long as its process lives, and sent to every worker that looks it up."""


def check_name_length(length: int) -> None:
    """Raise :class:`InvalidNameError` if a name of ``length`` bytes is too long (before a host
    function reads it from a guest's memory)."""
    if length > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"a registry name of {length} bytes is longer than the limit of {MAX_NAME_LENGTH}"
        )


def _split(name: str) -> tuple[str, str | None]:
    """``"counter@1.2"`` -> ``("counter", "1.2")``; ``"counter"`` -> ``("counter", None)``; an
    :func:`exact` key -> ``(name, None)``, whatever it contains."""
    if len(name) > MAX_NAME_LENGTH or not name.isascii():
        check_name_length(len(name.removeprefix(EXACT).encode(errors="surrogatepass")))
    if name.startswith(EXACT):
        return name[len(EXACT) :], None
    base, at, rest = (part.strip() for part in name.partition("@"))
    if not base:
        raise InvalidNameError(f"empty registry name in {name!r}")
    if at and not rest:
        raise InvalidNameError(f"empty version after '@' in {name!r}")
    return base, (rest if at else None)


def _version(text: str) -> Version:
    """A full version; build metadata is dropped, as it does not take part in precedence."""
    try:
        return Version(text).truncate("prerelease")
    except ValueError as exc:
        raise InvalidNameError(f"invalid version {text!r}: {exc}") from None


def _requirement(text: str) -> tuple[SimpleSpec, list[str]]:
    """Parse a Cargo requirement: comma-separated comparators, a bare one meaning ``^``."""
    parts = [p.strip() for p in text.split(",")]
    parts = [p if p.startswith(tuple(_OPERATORS)) else "^" + p for p in parts]
    try:
        return SimpleSpec(",".join(parts)), parts
    except ValueError as exc:
        raise InvalidNameError(f"invalid version requirement {text!r}: {exc}") from None


def _matches(spec: SimpleSpec, parts: list[str], v: Version) -> bool:
    """``spec`` plus Cargo's pre-release rule: a pre-release matches only if a comparator names a
    pre-release of the same major.minor.patch (``^1.2`` never picks ``1.3.0-alpha``;
    ``>=1.3.0-alpha`` may)."""
    if not spec.match(v):
        return False
    if not v.prerelease:
        return True
    for part in parts:
        try:
            named = Version(part.lstrip(_OPERATORS).strip())
        except ValueError:
            continue
        if named.prerelease and named.truncate("patch") == v.truncate("patch"):
            return True
    return False


class Registry:
    """Maps ``name`` or ``name@version`` to a ``(node, pid)``.

    Versions are full semantic versions (``counter@1.2.0``). A name registered without a version
    is a separate *unversioned* entry: it ranks below every version of that name, so a plain
    ``get("counter")`` returns the newest versioned entry and falls back to the unversioned one
    only when there is no versioned entry; a version requirement never matches it. A plain
    ``get`` returns the newest version, pre-releases included; requirements follow Cargo.
    ``remove("counter")`` removes every entry of the name, the unversioned one included.
    Invalid names, versions and requirements raise :class:`InvalidNameError`.

    A key made by :func:`exact` is a name taken as it is (a guest's, through ``lunatic::registry``):
    it may contain ``@`` and ``::``, and means only its own unversioned entry.
    """

    def __init__(self) -> None:
        # name -> {version or None (unversioned) -> (node, pid)}
        self._entries: dict[str, dict[Version | None, tuple[int, int]]] = {}
        # pid -> {(name, version)}: what to drop when the process dies
        self._by_pid: dict[int, set[tuple[str, Version | None]]] = {}

    def put(self, name: str, node: int, pid: int) -> None:
        """Register ``name`` (optionally ``name@version``), replacing that exact entry if any."""
        base, text = _split(name)
        version = None if text is None else _version(text)
        versions = self._entries.setdefault(base, {})
        old = versions.get(version)
        if old is not None:
            self._unlink(old[1], base, version)
        versions[version] = (node, pid)
        self._by_pid.setdefault(pid, set()).add((base, version))

    def check_name(self, name: str) -> None:
        """Raise InvalidNameError unless ``put(name, ...)`` would accept ``name``."""
        _, text = _split(name)
        if text is not None:
            _version(text)

    def get(self, name: str) -> tuple[int, int] | None:
        """``(node, pid)`` of the newest entry matching ``name[@requirement]``, or None. An
        :func:`exact` key finds only the unversioned entry of its name."""
        base, text = _split(name)
        versions = self._entries.get(base)
        if name.startswith(EXACT):
            return None if versions is None else versions.get(None)
        spec, parts = (None, []) if text is None else _requirement(text)
        if not versions:
            return None
        candidates = [v for v in versions if v is not None and (spec is None or _matches(spec, parts, v))]
        if candidates:
            return versions[max(candidates)]
        return versions.get(None) if spec is None else None

    def remove(self, name: str) -> None:
        """Remove every entry of ``name``, or only ``name@version``, or only the unversioned entry
        of an :func:`exact` key; unknown names are ignored."""
        base, text = _split(name)
        versions = self._entries.get(base)
        if versions is None:
            if text is not None:
                _version(text)  # still reject an invalid version
            return
        if name.startswith(EXACT):
            targets: list[Version | None] = [None]
        else:
            targets = list(versions) if text is None else [_version(text)]
        for version in targets:
            entry = versions.pop(version, None)
            if entry is not None:
                self._unlink(entry[1], base, version)
        if not versions:
            del self._entries[base]

    def remove_process(self, pid: int) -> None:
        """Remove every entry registered to ``pid`` (called when the process dies)."""
        entries = self._by_pid.pop(pid, None)
        if entries is None:  # most processes: no names
            return
        for base, version in entries:
            versions = self._entries[base]
            del versions[version]
            if not versions:
                del self._entries[base]

    def names(self) -> list[tuple[str, str | None, int, int]]:
        """Every entry as ``(name, version or None, node, pid)``, sorted by name then version."""
        rows = [
            (base, version, node, pid)
            for base, versions in self._entries.items()
            for version, (node, pid) in versions.items()
        ]
        rows.sort(key=lambda r: (r[0], r[1] is not None, r[1] if r[1] is not None else _ZERO))
        return [(b, None if v is None else str(v), node, pid) for b, v, node, pid in rows]

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._entries.values())

    def _unlink(self, pid: int, base: str, version: Version | None) -> None:
        keys = self._by_pid.get(pid)
        if keys is not None:
            keys.discard((base, version))
            if not keys:
                del self._by_pid[pid]
