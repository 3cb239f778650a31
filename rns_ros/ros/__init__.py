"""The ROS 2 glue around the engine (docs/ros.md, docs/architecture.md). Nothing here runs at import
time. The node on top only wires; each room below does one job.

node.py          the `rns` lifecycle node: parameters -> the parts, lifecycle transitions
params.py        the parameter table (ROS names -> config fields, validation, docs)
name_lists.py    list-of-names values ('a, b' or '[a, b]'), shared with the launch file
engine.py        EngineConfig, the device policy, build_engine (the one place touching rns_ros.core)
engine_log.py    the engine's notes and the core's log lines (a runtime's export) on the node's logger
frame_loop.py    a frame's way: subscription callback -> mailbox -> worker -> engine -> outputs
conversions.py   sensor_msgs/Image <-> numpy (step and endianness aware, no cv_bridge)
stats.py         counters, rates and latency windows (per camera and node totals)
guard.py         callbacks that never end the process (errors logged and counted)
spinning.py      executor spin/stop helpers (the safe shutdown order), stopping a node process

inputs/          camera subscriptions, decoding (raw, compressed), mailboxes, batching
outputs/         label/confidence/overlay images, class map and label info, /diagnostics
depth/           depth input, colour/depth pairing, labelled point clouds, the depth-aligned outputs
teaching/        the teaching services, their request checks, SAM 2 prompts, clicks, memory_dir
fleet/           the memory shared with other robots over ROS 2 topics (merge rules: core/fleet)
bags/            rosbag2 in/out and `rns-bag`'s run over a recording
demo/            image-folder camera, the demo's recorder, RViz config, sample images

The console scripts' mains are in rns_ros/cli/.
"""
