"""Reading what a cut-off MCAP recording holds: a recorder that crashed (or a disk that filled)
leaves a file without its summary, footer and end magic, which rosbags refuses to open.

The MCAP format allows reading a file front to back, record by record, without its summary
(https://mcap.dev/spec: "readers may choose to ignore the summary section"); foxglove's `mcap`
library does it (`mcap.stream_reader.StreamReader`, pinned in pyproject.toml), checking each
chunk's CRC. `SalvagedMcap` reads the file once to learn its channels and message counts and
where it breaks off, then offers the part of rosbags' `Reader` interface that rns-bag uses
(`connections`, `messages()`, `close()`), with the channels turned into rosbags `Connection`s
as rosbags builds them from an intact file (storage_mcap.get_msgdef, metadata.parse_qos). `note` says how
far the file could be read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from rosbags.interfaces import Connection, ConnectionExtRosbag2
from rosbags.rosbag2.metadata import parse_qos
from rosbags.rosbag2.storage_mcap import Schema as RosbagsSchema
from rosbags.rosbag2.storage_mcap import get_msgdef

from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader


class SalvagedMcap:
    """The readable part of one .mcap file, in rosbags `Reader`'s shape (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.connections: list[Connection] = []
        self.message_count = 0
        self.stopped_by = ""  # why reading stopped before the end ('' = the file is whole)
        counts: dict[int, int] = {}
        channels = {}
        for record in self._records():
            if isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Message):
                counts[record.channel_id] = counts.get(record.channel_id, 0) + 1
                self.message_count += 1
        self.connections = [self._connection(channel, counts.get(cid, 0)) for cid, channel in sorted(channels.items())]

    def _records(self) -> Iterator:
        """Every record up to where the file breaks off (noted in `stopped_by`)."""
        schemas: dict[int, Schema] = {}
        self._schemas = schemas
        with open(self.path, "rb") as stream:
            reader = StreamReader(stream, validate_crcs=True)
            try:
                for record in reader.records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record
                    yield record
            except (McapError, EOFError, ValueError, OSError) as exc:  # cut short, or a damaged record
                self.stopped_by = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.readable_bytes = stream.tell()
                return
        self.readable_bytes = self.size

    def _connection(self, channel: Channel, count: int) -> Connection:
        schema = self._schemas.get(channel.schema_id)
        definition = get_msgdef(RosbagsSchema(schema.id, schema.name, schema.encoding, schema.data.decode())
                                if schema is not None else None)
        profiles = channel.metadata.get("offered_qos_profiles", "")
        qos = parse_qos(profiles) if profiles else []
        msgtype = schema.name if schema is not None else ""
        return Connection(channel.id, channel.topic, msgtype, definition, "", count,
                          ConnectionExtRosbag2(channel.message_encoding, qos), self)

    @property
    def note(self) -> str:
        """How far the file was read, for the user."""
        return (f"{self.path.name} has no summary or end (a recording that was not closed): read "
                f"{self.message_count} messages, {self.readable_bytes} of {self.size} bytes; the rest is "
                f"{'a record cut short' if 'EndOfFile' in self.stopped_by else 'unreadable'} ({self.stopped_by})")

    def messages(self, connections=None) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, log time ns, serialised message) in file order, up to where the file breaks off."""
        wanted = {c.id: c for c in (connections if connections is not None else self.connections)}
        for record in self._records():
            if isinstance(record, Message) and record.channel_id in wanted:
                yield wanted[record.channel_id], record.log_time, record.data

    def close(self) -> None:
        pass
