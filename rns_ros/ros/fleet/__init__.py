"""The fleet: the support memory shared with the other robots over the ROS 2 graph
(docs/teaching.md, "Fleet"; the merge rules are ROS-free, in rns_ros/core/fleet).

    config.py    FleetConfig (the fleet.* parameters), the robot id and the two topic names
    messages.py  rns_ros/FleetChange <-> core FleetUpdate (sizes checked before decoding)
    link.py      FleetLink: this node's changes out, the others' in, snapshots, /diagnostics status

Contract: changes go out as they are saved (the teaching path's `before_save` hook), never what was
received; what is received is merged under the engine lock and saved through `Teacher.start_save`
(written after the lock is let go), like a teach; a message that cannot be merged is refused and counted, never raised.
"""
