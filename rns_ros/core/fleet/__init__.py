"""The fleet's shared memory, ROS-free: what one robot is taught, every robot of the fleet knows.

    items.py   what travels: class states, exemplars (identified by a content hash), updates, and
               the checks every received message passes before it may reach a memory
    ledger.py  what a robot remembers beyond its memory: removed exemplars (for good), the
               last-writer-wins stamp of every class name; saved with the memory (format 2)
    sync.py    `FleetSync`: this robot's changes as updates to publish (never what it received),
               the merge rules for what others send, snapshots for late joiners, the statistics

Contract: nothing here talks to a network; the transport (rns_ros/ros/fleet: ROS 2 topics) turns
messages into `FleetUpdate`s and back, and calls `FleetSync` under the lock that guards the memory,
then saves the memory (with its ledger) through the same path as a local teach.
"""
