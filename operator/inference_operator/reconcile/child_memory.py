"""What one operator process remembers of one service's children between passes (sync.py reads and writes it).

One small record per child, keyed by apiVersion, kind and name: the digest last applied, the live version
judged free of drift, the live version a replicas handover answered, the digest of an apply whose answer
was lost. A record is dropped once it holds nothing, so what a service keeps grows with its children only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

DELETED = ""  # as a child's applied digest: deleted by this process, maybe still on the watch
ChildKey = tuple[str, str, str]  # apiVersion, kind, name


def child_key(obj: Mapping[str, Any]) -> ChildKey:
    return obj["apiVersion"], obj["kind"], obj["metadata"]["name"]


@dataclass(slots=True)
class ChildRecord:
    """What one process remembers of one child of a service; None where it remembers nothing."""

    applied: str | None = None  # digest applied (or DELETED)
    judged: tuple[str, str] | None = None  # (live version, digest) judged free of drift
    handed: str | None = None  # live version a handover answered
    uncertain: str | None = None  # digest of an apply whose answer was lost

    def empty(self) -> bool:
        return self.applied is None and self.judged is None and self.handed is None and self.uncertain is None


class FieldView(MutableMapping[ChildKey, Any]):
    """One field of a service's child records as a dict of the children that have it set (ChildMemory.applied,
    .judged, ...): what a reader or a test sees, without a dict per field kept beside the records."""

    __slots__ = ("name", "records")

    def __init__(self, records: dict[ChildKey, ChildRecord], name: str) -> None:
        self.records, self.name = records, name

    def __getitem__(self, key: ChildKey) -> Any:
        value = getattr(self.records[key], self.name)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: ChildKey, value: Any) -> None:
        setattr(self.records.setdefault(key, ChildRecord()), self.name, value)

    def __delitem__(self, key: ChildKey) -> None:
        record = self.records.get(key)
        if record is None or getattr(record, self.name) is None:
            raise KeyError(key)
        setattr(record, self.name, None)
        if record.empty():
            del self.records[key]

    def __iter__(self) -> Iterator[ChildKey]:
        return iter([key for key, record in self.records.items() if getattr(record, self.name) is not None])

    def __len__(self) -> int:
        return sum(1 for record in self.records.values() if getattr(record, self.name) is not None)


@dataclass(slots=True)
class ChildMemory:
    """What one operator process remembers of one service's children (part of its ServiceRecord): one small
    record per child, dropped once it holds nothing."""

    records: dict[ChildKey, ChildRecord] = field(default_factory=dict)

    def record_of(self, key: ChildKey) -> ChildRecord:
        """The child's record, made when it has none (for a write to it)."""
        record = self.records.get(key)
        if record is None:
            record = self.records[key] = ChildRecord()
        return record

    def applied_of(self, key: ChildKey) -> str | None:
        record = self.records.get(key)
        return record.applied if record is not None else None

    def unset_applied(self, key: ChildKey) -> None:
        record = self.records.get(key)
        if record is not None:
            record.applied = None
            self._drop_if_empty(key, record)

    def unset_uncertain(self, key: ChildKey) -> None:
        record = self.records.get(key)
        if record is not None:
            record.uncertain = None
            self._drop_if_empty(key, record)

    def _drop_if_empty(self, key: ChildKey, record: ChildRecord) -> None:
        if record.empty():
            del self.records[key]

    @property
    def applied(self) -> FieldView:
        return FieldView(self.records, "applied")

    @property
    def judged(self) -> FieldView:
        return FieldView(self.records, "judged")

    @property
    def handed(self) -> FieldView:
        return FieldView(self.records, "handed")

    @property
    def uncertain(self) -> FieldView:
        return FieldView(self.records, "uncertain")

    def forget(self, obj: Mapping[str, Any]) -> None:
        """A child is gone (deleted by hand or by us): the next pass must not trust its fingerprint."""
        self.records.pop(child_key(obj), None)

    def forget_kind(self, kind: str) -> None:
        """Every child of a kind is gone (its CRD was removed): none is applied or judged any more."""
        for key in [key for key in self.records if key[1] == kind]:
            del self.records[key]
