"""Recordings: rosbag2 in and out (through `rosbags`), `rns-bag`'s frame-by-frame run of the node's
engine over a recording (its command line is rns_ros/cli/bag.py), and a recorded image topic
replayed as a camera (`rns-demo --bag`).

    io.py      readers, BagWriter (temporary name, renamed when complete), message classes
    salvage.py a cut-off MCAP file (no summary, no end) read record by record, as far as it goes
    run.py     BagRun: the node's engine and conversions over every frame, into a new bag
    camera.py  a recorded image topic as a camera
"""
